/*
 * secret.c - the refcounted secret buffer and the locked heap behind it.
 *
 * Values live in OpenSSL's secure heap: one mmap()ed arena, mlock()ed, marked
 * MADV_DONTDUMP and fenced by guard pages.  CRYPTO_secure_clear_free()
 * cleanses before it frees, so the last secret_unref() always wipes.  Before
 * secret_heap_init() (unit tests, tools) the same calls use the ordinary heap
 * and still wipe.
 *
 * Scratch memory (secret_mem_*) comes from the same heap, for the copies
 * that are not values yet or any more: jansson trees, libcurl's buffers,
 * response bodies.  Each block carries its size in front, so a free wipes it
 * all whichever heap it came from.  When the locked heap is full a scratch
 * block comes from the ordinary heap instead (counted): a read that would
 * fail is worse than a copy that is wiped when it is freed.  Values
 * (secret_new) never fall back.
 *
 * Tables: data[] = u64 count | u32 offset[count] | entries, where each entry
 * is u32 namelen | u32 valuelen | name NUL | u8 type | value, in strictly
 * increasing name order (memcmp), so a lookup is a binary search.  The type
 * byte says what JSON the value was in the store (enum secret_value_type).
 */
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "secretfs/secret.h"

#define TABLE_HDR sizeof(uint64_t)
#define ENTRY_HDR (2 * sizeof(uint32_t))

static long live_count;
/* This thread's scratch goes to the ordinary heap (still wiped when freed). */
static __thread bool scratch_unlocked;
/* The heap's size, once set up; 0 without one. */
static size_t heap_size;
static unsigned long one_offs, one_offs_unlocked;
static unsigned long fallbacks;
static void (*free_hook)(const unsigned char *data, size_t len);

static size_t round_pow2(size_t n)
{
	size_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

int secret_heap_init(size_t size, char *hint, size_t hintlen)
{
	int r;

	size = round_pow2(size < 65536 ? 65536 : size);
	r = CRYPTO_secure_malloc_init(size, 32);
	if (r == 0) {
		snprintf(hint, hintlen, "cannot set up a secure heap of %zu bytes", size);
		return -ENOMEM;
	}
	if (r == 2) {
		snprintf(hint, hintlen,
			 "cannot lock %zu KiB of secret memory, values may be swapped: raise the "
			 "memlock limit (LimitMEMLOCK= in the unit, ulimit -l) or run with "
			 "CAP_IPC_LOCK",
			 size / 1024);
		heap_size = size;
		return 1;
	}
	heap_size = size;
	return 0;
}

void secret_heap_done(void)
{
	if (CRYPTO_secure_malloc_initialized())
		CRYPTO_secure_malloc_done();
	heap_size = 0;
}

size_t secret_heap_used(void)
{
	return CRYPTO_secure_malloc_initialized() ? CRYPTO_secure_used() : 0;
}

bool secret_heap_can_lock(size_t size)
{
	void *p;
	bool ok;

	size = round_pow2(size < 65536 ? 65536 : size);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	/* The call OpenSSL's heap makes, so the answer is the same (and no
	 * sanitizer interceptor pretends it worked). */
	ok = syscall(SYS_mlock2, p, size, MLOCK_ONFAULT) == 0;
	if (ok)
		munlock(p, size);
	munmap(p, size);
	return ok;
}

static size_t page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return n > SIZE_MAX - page ? 0 : (n + page - 1) / page * page;
}

/*
 * A locked, non-dumpable mapping for one buffer too big for the heap.  When
 * mlock() is refused (the memlock limit) the mapping is used anyway, not
 * dumped and wiped when freed, and counted: a read that fails is worse.
 */
static struct secret *one_off_new(size_t total)
{
	size_t size = page_round(total);
	void *p;

	if (size == 0)
		return NULL;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, size, MADV_DONTDUMP);
	if (mlock(p, size) < 0)
		__atomic_add_fetch(&one_offs_unlocked, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&one_offs, 1, __ATOMIC_RELAXED);
	return p; /* mmap() zeroes */
}

static struct secret *secret_init(struct secret *s, size_t len, enum secret_where where)
{
	s->refs = 1;
	s->kind = SECRET_BLOB;
	s->where = where;
	s->len = len;
	s->cap = len;
	__atomic_add_fetch(&live_count, 1, __ATOMIC_RELAXED);
	return s;
}

struct secret *secret_new(size_t len)
{
	struct secret *s;

	if (len > SIZE_MAX - sizeof(*s))
		return NULL;
	s = OPENSSL_secure_zalloc(sizeof(*s) + len);
	if (s)
		return secret_init(s, len, SECRET_IN_HEAP);
	if (!CRYPTO_secure_malloc_initialized() || sizeof(*s) + len <= heap_size / 4)
		return NULL;
	s = one_off_new(sizeof(*s) + len);
	return s ? secret_init(s, len, SECRET_IN_ONE_OFF) : NULL;
}

struct secret *secret_new_unlocked(size_t len)
{
	struct secret *s;

	if (len > SIZE_MAX - sizeof(*s))
		return NULL;
	s = OPENSSL_zalloc(sizeof(*s) + len);
	return s ? secret_init(s, len, SECRET_IN_ORDINARY) : NULL;
}

bool secret_is_locked(const struct secret *s)
{
	return s->where == SECRET_IN_ONE_OFF ||
	       (s->where == SECRET_IN_HEAP && CRYPTO_secure_malloc_initialized() &&
		CRYPTO_secure_allocated(s));
}

unsigned long secret_one_off_count(void)
{
	return __atomic_load_n(&one_offs, __ATOMIC_RELAXED);
}

unsigned long secret_one_off_unlocked_count(void)
{
	return __atomic_load_n(&one_offs_unlocked, __ATOMIC_RELAXED);
}

struct secret *secret_dup(const void *data, size_t len)
{
	struct secret *s = secret_new(len);

	if (s && len)
		memcpy(s->data, data, len);
	return s;
}

struct secret *secret_ref(struct secret *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void secret_unref(struct secret *s)
{
	size_t total;

	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	total = sizeof(*s) + s->cap;
	if (free_hook) {
		OPENSSL_cleanse(s->data, s->cap);
		free_hook(s->data, s->cap);
	}
	if (s->where == SECRET_IN_ONE_OFF) {
		OPENSSL_cleanse(s, total);
		munmap(s, page_round(total));
	} else {
		/* Takes ordinary-heap blocks too: cleansed, then freed. */
		OPENSSL_secure_clear_free(s, total);
	}
	__atomic_sub_fetch(&live_count, 1, __ATOMIC_RELAXED);
}

long secret_live_count(void)
{
	return __atomic_load_n(&live_count, __ATOMIC_RELAXED);
}

void secret_set_free_hook(void (*hook)(const unsigned char *data, size_t len))
{
	free_hook = hook;
}

/* ---- scratch memory ---- */

struct mem_hdr {
	_Alignas(max_align_t) size_t size; /* bytes the caller asked for */
};

void *secret_mem_alloc(size_t size)
{
	size_t total = sizeof(struct mem_hdr) + size;
	struct mem_hdr *h = NULL;

	if (size > SIZE_MAX - sizeof(struct mem_hdr))
		return NULL;
	if (CRYPTO_secure_malloc_initialized() && !scratch_unlocked) {
		/* No file and line: a full heap must not leave an error on OpenSSL's queue. */
		h = CRYPTO_secure_malloc(total, NULL, 0);
		if (!h)
			__atomic_add_fetch(&fallbacks, 1, __ATOMIC_RELAXED);
	}
	if (!h)
		h = malloc(total);
	if (!h)
		return NULL;
	h->size = size;
	return h + 1;
}

void *secret_mem_calloc(size_t nmemb, size_t size)
{
	void *p;

	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	p = secret_mem_alloc(nmemb * size);
	if (p)
		memset(p, 0, nmemb * size);
	return p;
}

void secret_mem_free(void *p)
{
	struct mem_hdr *h;
	size_t total;

	if (!p)
		return;
	h = (struct mem_hdr *)p - 1;
	total = sizeof(*h) + h->size;
	OPENSSL_cleanse(h, total);
	if (CRYPTO_secure_malloc_initialized() && CRYPTO_secure_allocated(h))
		CRYPTO_secure_free(h, NULL, 0);
	else
		free(h);
}

/* Never realloc() in place on the ordinary heap: the old block must be wiped, not left. */
void *secret_mem_realloc(void *p, size_t size)
{
	struct mem_hdr *h;
	void *n;

	if (!p)
		return secret_mem_alloc(size);
	h = (struct mem_hdr *)p - 1;
	if (size <= h->size) {
		OPENSSL_cleanse((char *)p + size, h->size - size);
		h->size = size;
		return p;
	}
	if (CRYPTO_secure_malloc_initialized() && CRYPTO_secure_allocated(h) &&
	    CRYPTO_secure_actual_size(h) >= sizeof(*h) + size) {
		h->size = size;
		return p;
	}
	n = secret_mem_alloc(size);
	if (!n)
		return NULL;
	memcpy(n, p, h->size);
	secret_mem_free(p);
	return n;
}

char *secret_mem_strdup(const char *s)
{
	size_t len = strlen(s) + 1;
	char *n = secret_mem_alloc(len);

	if (n)
		memcpy(n, s, len);
	return n;
}

void secret_mem_scratch_unlocked(bool on)
{
	scratch_unlocked = on;
}

unsigned long secret_heap_fallbacks(void)
{
	return __atomic_load_n(&fallbacks, __ATOMIC_RELAXED);
}

/*
 * OpenSSL's own allocations: the ordinary heap, wiped on free (see secret.h).
 * No size header: code (ours included) hands OpenSSL's free plain malloc()ed
 * blocks, e.g. OPENSSL_clear_free() of a strdup(), so the size to wipe comes
 * from malloc_usable_size().
 */
static void *ossl_malloc(size_t num, const char *file, int line)
{
	return malloc(num);
}

static void ossl_free(void *p, const char *file, int line)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, malloc_usable_size(p));
	free(p);
}

static void *ossl_realloc(void *p, size_t num, const char *file, int line)
{
	size_t old;
	void *n;

	if (!p)
		return malloc(num);
	if (num == 0) {
		ossl_free(p, file, line);
		return NULL;
	}
	old = malloc_usable_size(p);
	n = malloc(num);
	if (!n)
		return NULL;
	memcpy(n, p, old < num ? old : num);
	ossl_free(p, file, line);
	return n;
}

bool secret_wipe_openssl_allocations(void)
{
	return CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) == 1;
}

/* ---- tables ---- */

static uint64_t table_count(const struct secret *t)
{
	uint64_t n;

	memcpy(&n, t->data, sizeof(n));
	return n;
}

static uint32_t table_offset(const struct secret *t, size_t i)
{
	uint32_t off;

	memcpy(&off, t->data + TABLE_HDR + i * sizeof(uint32_t), sizeof(off));
	return off;
}

static int table_begin(struct secret_table_builder *b, size_t count, size_t names_and_values,
		       bool locked)
{
	uint64_t n = count;
	size_t size;

	memset(b, 0, sizeof(*b));
	if (count > UINT32_MAX / 4 || names_and_values > UINT32_MAX / 2)
		return -EINVAL;
	size = TABLE_HDR + count * (sizeof(uint32_t) + ENTRY_HDR + 2) + names_and_values;
	b->table = locked ? secret_new(size) : secret_new_unlocked(size);
	if (!b->table)
		return -ENOMEM;
	b->table->kind = SECRET_TABLE;
	memcpy(b->table->data, &n, sizeof(n));
	b->count = count;
	b->used = TABLE_HDR + count * sizeof(uint32_t);
	return 0;
}

int secret_table_begin(struct secret_table_builder *b, size_t count, size_t names_and_values)
{
	return table_begin(b, count, names_and_values, true);
}

int secret_table_begin_unlocked(struct secret_table_builder *b, size_t count,
				size_t names_and_values)
{
	return table_begin(b, count, names_and_values, false);
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int secret_table_add(struct secret_table_builder *b, const char *name, size_t namelen,
		     const void *value, size_t valuelen)
{
	return secret_table_add_typed(b, name, namelen, value, valuelen, SECRET_VALUE_TEXT);
}

int secret_table_add_typed(struct secret_table_builder *b, const char *name, size_t namelen,
			   const void *value, size_t valuelen, enum secret_value_type type)
{
	struct secret *t = b->table;
	uint32_t off, nl = (uint32_t)namelen, vl = (uint32_t)valuelen;

	if (!t || b->added >= b->count || namelen > t->len || valuelen > t->len ||
	    b->used + ENTRY_HDR + namelen + 2 + valuelen > t->len ||
	    (type != SECRET_VALUE_TEXT && type != SECRET_VALUE_JSON))
		return -EINVAL;
	if (b->added > 0) {
		struct secret_entry prev;

		secret_table_at(t, b->added - 1, &prev);
		if (name_cmp(prev.name, prev.namelen, name, namelen) >= 0)
			return -EINVAL;
	}
	off = (uint32_t)b->used;
	memcpy(t->data + off, &nl, sizeof(nl));
	memcpy(t->data + off + sizeof(nl), &vl, sizeof(vl));
	memcpy(t->data + off + ENTRY_HDR, name, namelen);
	t->data[off + ENTRY_HDR + namelen] = '\0';
	t->data[off + ENTRY_HDR + namelen + 1] = (unsigned char)type;
	if (valuelen)
		memcpy(t->data + off + ENTRY_HDR + namelen + 2, value, valuelen);
	memcpy(t->data + TABLE_HDR + b->added * sizeof(uint32_t), &off, sizeof(off));
	b->added++;
	b->used = off + ENTRY_HDR + namelen + 2 + valuelen;
	return 0;
}

int secret_table_finish(struct secret_table_builder *b, struct secret **ret)
{
	if (!b->table || b->added != b->count)
		return -EINVAL;
	b->table->len = b->used;
	*ret = b->table;
	b->table = NULL;
	return 0;
}

void secret_table_abort(struct secret_table_builder *b)
{
	secret_unref(b->table);
	b->table = NULL;
}

size_t secret_table_count(const struct secret *t)
{
	return t->kind == SECRET_TABLE ? (size_t)table_count(t) : 0;
}

bool secret_table_at(const struct secret *t, size_t i, struct secret_entry *ret)
{
	uint32_t off, nl, vl;

	if (t->kind != SECRET_TABLE || i >= table_count(t))
		return false;
	off = table_offset(t, i);
	if (off == 0)
		return false;
	memcpy(&nl, t->data + off, sizeof(nl));
	memcpy(&vl, t->data + off + sizeof(nl), sizeof(vl));
	ret->name = (const char *)t->data + off + ENTRY_HDR;
	ret->namelen = nl;
	ret->type = t->data[off + ENTRY_HDR + nl + 1];
	ret->value = t->data + off + ENTRY_HDR + nl + 2;
	ret->valuelen = vl;
	return true;
}

bool secret_table_find(const struct secret *t, const char *name, struct secret_entry *ret)
{
	size_t lo = 0, hi = secret_table_count(t), namelen = strlen(name);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct secret_entry e;
		int c;

		if (!secret_table_at(t, mid, &e))
			return false;
		c = name_cmp(e.name, e.namelen, name, namelen);
		if (c == 0) {
			*ret = e;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}
