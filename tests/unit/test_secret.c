/*
 * test_secret.c - the refcounted secret buffer: references, the wipe on the
 * last unref, tables (building, ordering rules, lookup) and the locked heap.
 *
 * The wipe is proven twice: through secret_set_free_hook(), and independently
 * of it through OpenSSL's allocator hooks, which see every block freed on the
 * ordinary heap and check that it is all zeros when free() gets it.  The
 * secure heap test runs last because it changes where every later secret
 * lives.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "secretfs/secret.h"
#include "secretfs/util.h"

/* ---- OpenSSL allocator hooks: every ordinary-heap free is checked for zeros ---- */

struct mem_hdr {
	size_t size;
	max_align_t align[];
};

static bool mem_hooks;		  /* CRYPTO_set_mem_functions() took our functions */
static const void *last_free_ptr; /* the block handed to the last free */
static size_t last_free_size;
static bool last_free_zero; /* whether all its bytes were zero */

static void *mem_malloc(size_t size, const char *file, int line)
{
	struct mem_hdr *h = malloc(sizeof(*h) + size);

	if (!h)
		return NULL;
	h->size = size;
	return h->align;
}

static void mem_free(void *p, const char *file, int line)
{
	struct mem_hdr *h;
	const unsigned char *c = p;
	bool zero = true;

	if (!p)
		return;
	h = (struct mem_hdr *)((char *)p - offsetof(struct mem_hdr, align));
	for (size_t i = 0; i < h->size; i++)
		zero = zero && c[i] == 0;
	last_free_ptr = p;
	last_free_size = h->size;
	last_free_zero = zero;
	free(h);
}

static void *mem_realloc(void *p, size_t size, const char *file, int line)
{
	struct mem_hdr *h;
	void *n;

	if (!p)
		return mem_malloc(size, file, line);
	h = (struct mem_hdr *)((char *)p - offsetof(struct mem_hdr, align));
	n = mem_malloc(size, file, line);
	if (!n)
		return NULL;
	memcpy(n, p, h->size < size ? h->size : size);
	free(h); /* not a secret's block: OpenSSL never reallocs those */
	return n;
}

/* ---- the free hook ---- */

static int hook_calls;
static uintptr_t hook_data; /* address of the data handed to the hook */
static size_t hook_len;
static bool hook_zero;

static void record_free(const unsigned char *data, size_t len)
{
	bool zero = true;

	for (size_t i = 0; i < len; i++)
		zero = zero && data[i] == 0;
	hook_calls++;
	hook_data = (uintptr_t)data;
	hook_len = len;
	hook_zero = zero;
}

static void hook_reset(void)
{
	hook_calls = 0;
	hook_data = 0;
	hook_len = 0;
	hook_zero = false;
	last_free_ptr = NULL;
	last_free_size = 0;
	last_free_zero = false;
}

static int teardown_hook(void **state)
{
	secret_set_free_hook(NULL);
	hook_reset();
	return 0;
}

/* ---- refcounting ---- */

static void test_new_zeroed(void **state)
{
	long live0 = secret_live_count();
	struct secret *s = secret_new(64), *e = secret_new(0);

	assert_non_null(s);
	assert_non_null(e);
	assert_int_equal(s->refs, 1);
	assert_int_equal(s->kind, SECRET_BLOB);
	assert_int_equal(s->len, 64);
	assert_true(s->cap >= s->len);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(s->data[i], 0);
	assert_int_equal(e->len, 0);
	assert_int_equal(secret_live_count(), live0 + 2);
	secret_unref(s);
	secret_unref(e);
	assert_int_equal(secret_live_count(), live0);
	/* Absurd sizes fail cleanly. */
	assert_null(secret_new(SIZE_MAX));
	assert_null(secret_new(SIZE_MAX - sizeof(struct secret) + 1));
	assert_int_equal(secret_live_count(), live0);
}

static void test_ref_unref(void **state)
{
	long live0 = secret_live_count();
	struct secret *s = secret_new(8), *t;

	assert_non_null(s);
	assert_int_equal(secret_live_count(), live0 + 1);
	t = secret_ref(s);
	assert_ptr_equal(t, s);
	assert_int_equal(s->refs, 2);
	secret_ref(s);
	assert_int_equal(s->refs, 3);
	secret_unref(s);
	secret_unref(s);
	assert_int_equal(s->refs, 1);
	assert_int_equal(secret_live_count(), live0 + 1);
	secret_unref(t);
	assert_int_equal(secret_live_count(), live0);

	/* NULL is a no-op both ways. */
	assert_null(secret_ref(NULL));
	secret_unref(NULL);
	assert_int_equal(secret_live_count(), live0);

	/* The cleanup attribute drops the reference at scope exit. */
	{
		_cleanup_secret_ struct secret *c = secret_dup("x", 1);

		assert_non_null(c);
		assert_int_equal(secret_live_count(), live0 + 1);
	}
	assert_int_equal(secret_live_count(), live0);
}

static void test_wipe_on_last_unref(void **state)
{
	static const char value[] = "hunter2-top-secret";
	const size_t len = sizeof(value) - 1;
	long live0 = secret_live_count();
	struct secret *s, *t;
	uintptr_t data;
	const void *block;

	hook_reset();
	secret_set_free_hook(record_free);
	s = secret_dup(value, len);
	assert_non_null(s);
	block = s;
	data = (uintptr_t)s->data;
	t = secret_ref(s);

	/* Not the last reference: nothing is wiped, nothing is freed. */
	secret_unref(s);
	assert_int_equal(hook_calls, 0);
	assert_true(last_free_ptr != block);
	assert_int_equal(t->len, len);
	assert_memory_equal(t->data, value, len);
	assert_int_equal(secret_live_count(), live0 + 1);

	/* The last one: the hook sees every byte zeroed, then the block is freed. */
	secret_unref(t);
	assert_int_equal(hook_calls, 1);
	assert_true(hook_data == data);
	assert_int_equal(hook_len, len);
	assert_true(hook_zero);
	assert_int_equal(secret_live_count(), live0);

	/* Without relying on the hook's own cleanse: free() got a zeroed block,
	 * header included. */
	assert_true(mem_hooks);
	assert_ptr_equal(last_free_ptr, block);
	assert_int_equal(last_free_size, sizeof(struct secret) + len);
	assert_true(last_free_zero);
}

static void test_wipe_without_hook(void **state)
{
	struct secret *s = secret_dup("correct horse battery staple", 28);
	const void *block = s;

	hook_reset();
	secret_set_free_hook(NULL);
	assert_non_null(s);
	secret_unref(s);
	assert_int_equal(hook_calls, 0);
	assert_true(mem_hooks);
	assert_ptr_equal(last_free_ptr, block);
	assert_int_equal(last_free_size, sizeof(struct secret) + 28);
	assert_true(last_free_zero);
}

static void test_wipe_covers_table_slack(void **state)
{
	struct secret_table_builder b;
	struct secret *t = NULL;
	const void *block;
	size_t cap;

	hook_reset();
	secret_set_free_hook(record_free);
	/* Declare far more bytes than used: the wipe covers the whole allocation. */
	assert_int_equal(secret_table_begin(&b, 1, 200), 0);
	assert_int_equal(secret_table_add(&b, "password", 8, "s3cr3t", 6), 0);
	assert_int_equal(secret_table_finish(&b, &t), 0);
	assert_true(t->len < t->cap);
	cap = t->cap;
	block = t;
	secret_unref(t);
	assert_int_equal(hook_calls, 1);
	assert_int_equal(hook_len, cap);
	assert_true(hook_zero);
	assert_ptr_equal(last_free_ptr, block);
	assert_int_equal(last_free_size, sizeof(struct secret) + cap);
	assert_true(last_free_zero);
}

static void test_dup_exact(void **state)
{
	static const unsigned char bytes[] = { 'a', 0, 'b', 0, 0xff, 0x80, 0, '\n', 0 };
	long live0 = secret_live_count();
	struct secret *s = secret_dup(bytes, sizeof(bytes)), *e = secret_dup("", 0),
		      *n = secret_dup(NULL, 0);

	assert_non_null(s);
	assert_int_equal(s->kind, SECRET_BLOB);
	assert_int_equal(s->len, sizeof(bytes));
	assert_memory_equal(s->data, bytes, sizeof(bytes));
	assert_non_null(e);
	assert_int_equal(e->len, 0);
	assert_non_null(n);
	assert_int_equal(n->len, 0);
	/* A copy, not an alias. */
	assert_ptr_not_equal(s->data, bytes);
	secret_unref(s);
	secret_unref(e);
	secret_unref(n);
	assert_int_equal(secret_live_count(), live0);
}

/* ---- tables ---- */

static void assert_entry(const struct secret *t, size_t i, const char *name, const void *value,
			 size_t valuelen)
{
	struct secret_entry e;

	assert_true(secret_table_at(t, i, &e));
	assert_int_equal(e.namelen, strlen(name));
	assert_memory_equal(e.name, name, e.namelen);
	assert_int_equal(e.name[e.namelen], '\0');
	assert_int_equal(e.valuelen, valuelen);
	if (valuelen)
		assert_memory_equal(e.value, value, valuelen);
}

static void test_table_small(void **state)
{
	long live0 = secret_live_count();
	struct secret_table_builder b;
	struct secret *t = NULL;
	struct secret_entry e;

	assert_int_equal(secret_table_begin(&b, 3, 5 + 4 + 5 + 3 + 0 + 4), 0);
	assert_int_equal(secret_table_add(&b, "alpha", 5, "a\0b\xff", 4), 0);
	assert_int_equal(secret_table_add(&b, "beta", 4, "", 0), 0);
	assert_int_equal(secret_table_add(&b, "gamma", 5, "g\0g", 3), 0);
	assert_int_equal(secret_table_finish(&b, &t), 0);
	secret_table_abort(&b); /* safe after finish */
	assert_non_null(t);
	assert_int_equal(t->kind, SECRET_TABLE);
	assert_int_equal(t->refs, 1);
	assert_int_equal(secret_table_count(t), 3);

	assert_entry(t, 0, "alpha", "a\0b\xff", 4);
	assert_entry(t, 1, "beta", "", 0);
	assert_entry(t, 2, "gamma", "g\0g", 3);
	assert_false(secret_table_at(t, 3, &e));
	assert_false(secret_table_at(t, SIZE_MAX, &e));

	assert_true(secret_table_find(t, "beta", &e));
	assert_int_equal(e.valuelen, 0);
	assert_true(secret_table_find(t, "gamma", &e));
	assert_memory_equal(e.value, "g\0g", 3);
	assert_true(secret_table_find(t, "alpha", &e));
	assert_memory_equal(e.value, "a\0b\xff", 4);
	for (const char *const *m =
		     (const char *const[]){ "", "a", "alph", "alphaa", "b", "betas", "delta",
					    "gammaz", "zzz", "Alpha", NULL };
	     *m; m++)
		assert_false(secret_table_find(t, *m, &e));

	/* A blob is not a table. */
	{
		struct secret *s = secret_dup("alpha", 5);

		assert_int_equal(secret_table_count(s), 0);
		assert_false(secret_table_at(s, 0, &e));
		assert_false(secret_table_find(s, "alpha", &e));
		secret_unref(s);
	}
	secret_unref(t);
	assert_int_equal(secret_live_count(), live0);
}

/* Names "0", "2", "4", ... "2(n-1)" zero-padded; every odd number lies between two of them. */
static void test_table_find_every_size(void **state)
{
	long live0 = secret_live_count();

	for (size_t n = 0; n <= 40; n++) {
		struct secret_table_builder b;
		struct secret *t = NULL;
		struct secret_entry e;
		char name[16];

		assert_int_equal(secret_table_begin(&b, n, n * (3 + sizeof(size_t))), 0);
		for (size_t i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "%03zu", 2 * i);
			assert_int_equal(secret_table_add(&b, name, 3, &i, sizeof(i)), 0);
		}
		assert_int_equal(secret_table_finish(&b, &t), 0);
		assert_int_equal(secret_table_count(t), n);
		for (size_t k = 0; k <= 2 * n + 1; k++) {
			bool present = k % 2 == 0 && k < 2 * n;

			snprintf(name, sizeof(name), "%03zu", k);
			if (!present) {
				assert_false(secret_table_find(t, name, &e));
				continue;
			}
			assert_true(secret_table_find(t, name, &e));
			assert_int_equal(e.valuelen, sizeof(size_t));
			assert_memory_equal(e.value, &(size_t){ k / 2 }, sizeof(size_t));
		}
		secret_unref(t);
	}
	assert_int_equal(secret_live_count(), live0);
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 1000 names that are prefixes of one another ("1" < "10" < "100"): memcmp order. */
static void test_table_1000(void **state)
{
	enum { N = 1000 };
	long live0 = secret_live_count();
	static char names[N][8];
	const char *sorted[N];
	struct secret_table_builder b;
	struct secret *t = NULL;
	struct secret_entry e;
	size_t total = 0;
	char v[16];

	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "%zu", i);
		sorted[i] = names[i];
		total += strlen(names[i]) * 2 + 1; /* name, and "v" + name as value */
	}
	qsort(sorted, N, sizeof(sorted[0]), cmp_cstr);
	assert_string_equal(sorted[0], "0");
	assert_string_equal(sorted[1], "1");
	assert_string_equal(sorted[2], "10");
	assert_string_equal(sorted[3], "100");

	assert_int_equal(secret_table_begin(&b, N, total), 0);
	for (size_t i = 0; i < N; i++) {
		snprintf(v, sizeof(v), "v%s", sorted[i]);
		assert_int_equal(secret_table_add(&b, sorted[i], strlen(sorted[i]), v, strlen(v)),
				 0);
	}
	assert_int_equal(secret_table_finish(&b, &t), 0);
	assert_int_equal(secret_table_count(t), N);

	for (size_t i = 0; i < N; i++) {
		snprintf(v, sizeof(v), "v%s", sorted[i]);
		assert_entry(t, i, sorted[i], v, strlen(v));
		snprintf(v, sizeof(v), "v%zu", i);
		assert_true(secret_table_find(t, names[i], &e));
		assert_int_equal(e.namelen, strlen(names[i]));
		assert_string_equal(e.name, names[i]);
		assert_int_equal(e.valuelen, strlen(v));
		assert_memory_equal(e.value, v, e.valuelen);
	}
	for (const char *const *m = (const char *const[]){ "", "1000", "01", "00", "10a", "9990",
							   "99a", "a", "-1", " 1", "1 ", NULL };
	     *m; m++)
		assert_false(secret_table_find(t, *m, &e));
	secret_unref(t);
	assert_int_equal(secret_live_count(), live0);
}

static void test_table_rejects(void **state)
{
	long live0 = secret_live_count();
	struct secret_table_builder b;
	struct secret *t = NULL;

	/* Out of order: refused, and the refused entry leaves no trace. */
	assert_int_equal(secret_table_begin(&b, 2, 10), 0);
	assert_int_equal(secret_table_add(&b, "b", 1, "1", 1), 0);
	assert_int_equal(secret_table_add(&b, "a", 1, "2", 1), -EINVAL);
	assert_int_equal(secret_table_add(&b, "c", 1, "3", 1), 0);
	assert_int_equal(secret_table_finish(&b, &t), 0);
	assert_int_equal(secret_table_count(t), 2);
	assert_entry(t, 0, "b", "1", 1);
	assert_entry(t, 1, "c", "3", 1);
	secret_unref(t);

	/* A longer name before its own prefix is out of order. */
	assert_int_equal(secret_table_begin(&b, 2, 10), 0);
	assert_int_equal(secret_table_add(&b, "ab", 2, "", 0), 0);
	assert_int_equal(secret_table_add(&b, "a", 1, "", 0), -EINVAL);
	secret_table_abort(&b);

	/* Duplicates. */
	assert_int_equal(secret_table_begin(&b, 2, 10), 0);
	assert_int_equal(secret_table_add(&b, "a", 1, "1", 1), 0);
	assert_int_equal(secret_table_add(&b, "a", 1, "2", 1), -EINVAL);
	secret_table_abort(&b);

	/* More entries than declared, even with bytes to spare. */
	assert_int_equal(secret_table_begin(&b, 2, 100), 0);
	assert_int_equal(secret_table_add(&b, "a", 1, "1", 1), 0);
	assert_int_equal(secret_table_add(&b, "b", 1, "2", 1), 0);
	assert_int_equal(secret_table_add(&b, "c", 1, "3", 1), -EINVAL);
	assert_int_equal(secret_table_finish(&b, &t), 0);
	assert_int_equal(secret_table_count(t), 2);
	secret_unref(t);

	/* More bytes than declared: an exact fit works, one byte more does not. */
	assert_int_equal(secret_table_begin(&b, 1, 3), 0);
	assert_int_equal(secret_table_add(&b, "ab", 2, "cd", 2), -EINVAL);
	assert_int_equal(secret_table_add(&b, "ab", 2, "c", 1), 0);
	assert_int_equal(secret_table_finish(&b, &t), 0);
	assert_entry(t, 0, "ab", "c", 1);
	secret_unref(t);
	assert_int_equal(secret_table_begin(&b, 1, 0), 0);
	assert_int_equal(secret_table_add(&b, "x", 1, "", 0), -EINVAL);
	secret_table_abort(&b);

	/* Finishing short of the declared count. */
	t = (struct secret *)&b; /* sentinel: must not be written on failure */
	assert_int_equal(secret_table_begin(&b, 3, 10), 0);
	assert_int_equal(secret_table_add(&b, "a", 1, "1", 1), 0);
	assert_int_equal(secret_table_add(&b, "b", 1, "2", 1), 0);
	assert_int_equal(secret_table_finish(&b, &t), -EINVAL);
	assert_ptr_equal(t, (struct secret *)&b);
	secret_table_abort(&b);
	secret_table_abort(&b); /* twice is harmless */

	/* Absurd declarations are refused without allocating. */
	assert_int_equal(secret_table_begin(&b, SIZE_MAX, 0), -EINVAL);
	assert_int_equal(secret_table_begin(&b, 1, SIZE_MAX), -EINVAL);
	assert_int_equal(secret_table_add(&b, "a", 1, "", 0), -EINVAL);
	assert_int_equal(secret_table_finish(&b, &t), -EINVAL);
	secret_table_abort(&b);

	assert_int_equal(secret_live_count(), live0);
}

static void test_table_empty(void **state)
{
	long live0 = secret_live_count();
	struct secret_table_builder b;
	struct secret *t = NULL;
	struct secret_entry e;

	assert_int_equal(secret_table_begin(&b, 0, 0), 0);
	assert_int_equal(secret_table_add(&b, "a", 1, "", 0), -EINVAL);
	assert_int_equal(secret_table_finish(&b, &t), 0);
	assert_non_null(t);
	assert_int_equal(t->kind, SECRET_TABLE);
	assert_int_equal(secret_table_count(t), 0);
	assert_false(secret_table_at(t, 0, &e));
	assert_false(secret_table_find(t, "", &e));
	assert_false(secret_table_find(t, "a", &e));
	secret_unref(t);
	assert_int_equal(secret_live_count(), live0);
}

/* Bytes >= 0x80 sort after ASCII: the order is memcmp's, on unsigned bytes. */
static void test_table_non_ascii(void **state)
{
	static const char *const names[] = {
		"Z",	"z", "\xc3\xa9t\xc3\xa9", "\xc3\xbc", "\xe2\x82\xac", "\xf0\x9f\x94\x91",
		"\xff",
	};
	struct secret_table_builder b;
	struct secret *t = NULL;
	struct secret_entry e;

	assert_int_equal(secret_table_begin(&b, ARRAY_SIZE(names), 64), 0);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		assert_int_equal(secret_table_add(&b, names[i], strlen(names[i]), &i, 1), 0);
	assert_int_equal(secret_table_finish(&b, &t), 0);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		assert_entry(t, i, names[i], &i, 1);
		assert_true(secret_table_find(t, names[i], &e));
		assert_int_equal(e.value[0], i);
	}
	assert_false(secret_table_find(t, "\xc3\xa9", &e));
	assert_false(secret_table_find(t, "\xc3", &e));
	assert_false(secret_table_find(t, "e", &e));
	secret_unref(t);

	/* Non-ASCII before ASCII is out of order. */
	assert_int_equal(secret_table_begin(&b, 2, 64), 0);
	assert_int_equal(secret_table_add(&b, "\xc3\xa9", 2, "", 0), 0);
	assert_int_equal(secret_table_add(&b, "z", 1, "", 0), -EINVAL);
	secret_table_abort(&b);
}

/* ---- the secure heap (last: every later secret would live in it) ---- */

static bool all_zero(const volatile unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void test_secure_heap(void **state)
{
	static const char value[] = "secure-heap-secret-value";
	const size_t len = sizeof(value) - 1;
	bool can_lock = secret_heap_can_lock(1 << 20);
	long live0 = secret_live_count();
	struct secret_table_builder b;
	struct secret *s, *d, *t = NULL;
	const volatile unsigned char *data;
	size_t used0, used1;
	char hint[256] = "";
	int r;

	assert_int_equal(secret_heap_used(), 0);
	assert_false(CRYPTO_secure_malloc_initialized());
	r = secret_heap_init(1 << 20, hint, sizeof(hint));
	if (can_lock) {
		assert_int_equal(r, 0);
	} else {
		/* Not locked: the caller gets a hint naming the fix. */
		assert_int_equal(r, 1);
		assert_non_null(strstr(hint, "memlock"));
	}
	assert_true(CRYPTO_secure_malloc_initialized());
	used0 = secret_heap_used();

	s = secret_new(100);
	assert_non_null(s);
	assert_true(CRYPTO_secure_allocated(s));
	used1 = secret_heap_used();
	assert_true(used1 >= used0 + sizeof(*s) + 100);

	d = secret_dup(value, len);
	assert_non_null(d);
	assert_true(CRYPTO_secure_allocated(d));
	assert_memory_equal(d->data, value, len);
	assert_true(secret_heap_used() > used1);

	assert_int_equal(secret_table_begin(&b, 1, 16), 0);
	assert_int_equal(secret_table_add(&b, "k", 1, "v", 1), 0);
	assert_int_equal(secret_table_finish(&b, &t), 0);
	assert_true(CRYPTO_secure_allocated(t));

	/* Still wiped in the secure heap: the hook sees zeros... */
	hook_reset();
	secret_set_free_hook(record_free);
	secret_unref(t);
	assert_int_equal(hook_calls, 1);
	assert_true(hook_zero);
	secret_set_free_hook(NULL);

	/* ...and so does the arena itself after a free without the hook.  The
	 * arena stays mapped; the allocator writes its free-list pointers only at
	 * the start of the block, inside the struct header, never over data[]. */
	data = d->data;
	secret_unref(d);
	assert_true(all_zero(data, len));

	secret_unref(s);
	assert_int_equal(secret_heap_used(), used0);
	assert_int_equal(secret_live_count(), live0);

	secret_heap_done();
	assert_false(CRYPTO_secure_malloc_initialized());
	assert_int_equal(secret_heap_used(), 0);

	/* Back on the ordinary heap. */
	s = secret_new(8);
	assert_non_null(s);
	assert_false(CRYPTO_secure_allocated(s));
	secret_unref(s);
	assert_int_equal(secret_live_count(), live0);
}

/* Scratch blocks: in the heap while it has room, else ordinary (counted); wiped either way. */
static void test_scratch_memory(void **state)
{
	const volatile unsigned char *data;
	unsigned long fb0 = secret_heap_fallbacks();
	char hint[256] = "", *p, *q, *big;
	size_t used0;

	/* Before the heap: ordinary memory, and free takes it. */
	p = secret_mem_alloc(40);
	assert_non_null(p);
	memset(p, 'x', 40);
	secret_mem_free(p);
	assert_int_equal(secret_heap_fallbacks(), fb0);

	assert_true(secret_heap_init(1 << 16, hint, sizeof(hint)) >= 0);
	used0 = secret_heap_used();
	p = secret_mem_alloc(40);
	assert_non_null(p);
	assert_true(CRYPTO_secure_allocated(p));
	memcpy(p, "scratch-copy-of-a-secret-0123456789abcde", 40);
	/* Growing within the buddy block keeps the pointer; past it, copies. */
	q = secret_mem_realloc(p, 44);
	assert_ptr_equal(q, p);
	q = secret_mem_realloc(p, 5000);
	assert_non_null(q);
	assert_true(CRYPTO_secure_allocated(q));
	assert_memory_equal(q, "scratch-copy-of-a-secret-0123456789abcde", 40);
	/* The old block was wiped (the arena stays mapped; the allocator's
	 * free-list pointers go in the block's first bytes, the size header). */
	data = (const unsigned char *)p;
	assert_true(all_zero(data + 16, 24));
	secret_mem_free(q);
	assert_true(secret_mem_calloc(SIZE_MAX / 2, 4) == NULL);

	/* Larger than the whole heap: ordinary memory, counted, still freed and wiped. */
	big = secret_mem_alloc(1 << 17);
	assert_non_null(big);
	assert_false(CRYPTO_secure_allocated(big));
	assert_int_equal(secret_heap_fallbacks(), fb0 + 1);
	q = secret_mem_strdup("short");
	assert_true(CRYPTO_secure_allocated(q));
	secret_mem_free(q);
	secret_mem_free(big);
	assert_int_equal(secret_heap_used(), used0);
	secret_heap_done();
	assert_false(CRYPTO_secure_malloc_initialized());
}

/*
 * Issue 10: a value too big for the locked heap gets a locked mapping of
 * its own rather than ENOMEM; a listing (names) takes no locked memory.
 */
static void test_one_off_and_unlocked(void **state)
{
	char hint[256] = "";
	struct secret *small, *big, *names;
	unsigned long n0 = secret_one_off_count();
	long live0 = secret_live_count();

	/* Before the heap: no one-off mapping, just the ordinary heap. */
	big = secret_new(100 * 1024);
	assert_non_null(big);
	assert_int_equal(big->where, SECRET_IN_HEAP);
	secret_unref(big);

	assert_true(secret_heap_init(1 << 16, hint, sizeof(hint)) >= 0);
	small = secret_new(100);
	assert_non_null(small);
	assert_true(secret_is_locked(small));
	/* 100 KiB never fits a 64 KiB heap. */
	big = secret_new(100 * 1024);
	assert_non_null(big);
	assert_int_equal(big->where, SECRET_IN_ONE_OFF);
	assert_true(secret_is_locked(big));
	assert_int_equal(secret_one_off_count(), n0 + 1);
	assert_int_equal(big->len, 100 * 1024);
	assert_true(all_zero(big->data, big->len));
	memset(big->data, 'v', big->len);
	names = secret_new_unlocked(300);
	assert_non_null(names);
	assert_int_equal(names->where, SECRET_IN_ORDINARY);
	assert_false(secret_is_locked(names));
	assert_false(CRYPTO_secure_allocated(names));
	secret_unref(names);
	secret_unref(big);
	secret_unref(small);
	assert_int_equal(secret_live_count(), live0);
	secret_heap_done();
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_zeroed),
		cmocka_unit_test(test_ref_unref),
		cmocka_unit_test_teardown(test_wipe_on_last_unref, teardown_hook),
		cmocka_unit_test_teardown(test_wipe_without_hook, teardown_hook),
		cmocka_unit_test_teardown(test_wipe_covers_table_slack, teardown_hook),
		cmocka_unit_test(test_dup_exact),
		cmocka_unit_test(test_table_small),
		cmocka_unit_test(test_table_find_every_size),
		cmocka_unit_test(test_table_1000),
		cmocka_unit_test(test_table_rejects),
		cmocka_unit_test(test_table_empty),
		cmocka_unit_test(test_table_non_ascii),
		cmocka_unit_test_teardown(test_secure_heap, teardown_hook),
		cmocka_unit_test(test_scratch_memory),
		cmocka_unit_test(test_one_off_and_unlocked),
	};
	/* clang-format on */

	/* Before OpenSSL allocates anything, or it keeps its own functions. */
	mem_hooks = CRYPTO_set_mem_functions(mem_malloc, mem_realloc, mem_free) == 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
