/*
 * secret.h - the one buffer type that holds secret values.
 *
 * A struct secret is reference counted; the last secret_unref() wipes the
 * bytes and frees them.  Buffers come from a locked, non-dumpable heap
 * (OpenSSL's secure heap) once secret_heap_init() has run, and from the
 * ordinary heap before that (unit tests).
 *
 * A secret is either a blob (the raw bytes of a value) or a table: a packed,
 * name-sorted list of (name, value) pairs used for secrets whose value is a
 * JSON object (one file per key) and for directory listings.  The table
 * layout lives in the secret buffer itself, so a directory secret is wiped
 * like any other value.
 */
#ifndef SECRETFS_SECRET_H
#define SECRETFS_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum secret_kind {
	SECRET_BLOB = 0,
	SECRET_TABLE = 1,
};

/* Where a secret's buffer lives; the free matches it. */
enum secret_where {
	SECRET_IN_HEAP = 0, /* the locked heap (the ordinary heap before secret_heap_init) */
	SECRET_IN_ORDINARY, /* the ordinary heap on purpose: names, not values (listings) */
	SECRET_IN_ONE_OFF,  /* a mapping of its own, locked and not dumped: too big for the heap */
};

struct secret {
	uint32_t refs;	/* atomic */
	uint16_t kind;	/* enum secret_kind */
	uint16_t where; /* enum secret_where; immutable */
	size_t len;	/* bytes of the value in data[] */
	size_t cap;	/* bytes allocated for data[]; the wipe covers all of them */
	unsigned char data[];
};

/*
 * Sets up the locked heap of @size bytes (rounded up to a power of two).
 * Returns 0 when the heap is locked, 1 when it exists but mlock() failed (the
 * caller warns), negative errno on failure.  @hint receives a one-line fix.
 */
int secret_heap_init(size_t size, char *hint, size_t hintlen);
void secret_heap_done(void);
/* Bytes of the secure heap in use; 0 without a heap. */
size_t secret_heap_used(void);
/* Whether mlock() of @size bytes would succeed for this process right now. */
bool secret_heap_can_lock(size_t size);

/*
 * Scratch memory for everything else that may hold a copy of a secret while
 * it is being worked on: jansson trees, libcurl's buffers and header lists,
 * HTTP response bodies.  From the locked heap when it exists and has room;
 * otherwise (before secret_heap_init(), or when the heap is full) from the
 * ordinary heap, counted in secret_heap_fallbacks().  Either way every block
 * is wiped when it is freed or moved by a realloc, and secret_mem_free()
 * takes blocks of both kinds.  Signatures fit json_set_alloc_funcs() and
 * curl_global_init_mem().
 */
void *secret_mem_alloc(size_t size);
void *secret_mem_calloc(size_t nmemb, size_t size);
void *secret_mem_realloc(void *p, size_t size);
char *secret_mem_strdup(const char *s);
void secret_mem_free(void *p);
/*
 * While @on, this thread's scratch blocks come from the ordinary heap (still
 * wiped when freed): for a copy that is no more exposed there than its source
 * already is, such as the parse tree of a store file whose bytes were read
 * into ordinary memory, so that it does not take the locked heap from values.
 */
void secret_mem_scratch_unlocked(bool on);
/* Scratch blocks that did not fit the locked heap since start. */
unsigned long secret_heap_fallbacks(void);
/*
 * Routes OpenSSL's own allocations (TLS record buffers hold decrypted
 * responses) through a wiping allocator on the ordinary heap.  Must run
 * before OpenSSL allocates anything; returns false when it was too late.
 */
bool secret_wipe_openssl_allocations(void);

/*
 * A new blob of @len bytes, refs = 1, contents zeroed.  NULL on ENOMEM.
 * From the locked heap; a value too big for the heap (more than a quarter
 * of it, which a buddy allocator cannot promise to find in one piece) that
 * the heap cannot hold gets a locked, non-dumpable mapping of its own,
 * unmapped by the last unref (counted in secret_one_off_count()).
 */
struct secret *secret_new(size_t len);
/*
 * The same from the ordinary heap, still wiped by the last unref: for
 * buffers that hold names, not values (folder listings), so that they never
 * take locked memory from values.
 */
struct secret *secret_new_unlocked(size_t len);
/* Whether @s takes locked memory (the heap or a one-off mapping). */
bool secret_is_locked(const struct secret *s);
/* One-off mappings made since start, and how many of them mlock() refused. */
unsigned long secret_one_off_count(void);
unsigned long secret_one_off_unlocked_count(void);
/* A new blob holding a copy of @data. */
struct secret *secret_dup(const void *data, size_t len);
struct secret *secret_ref(struct secret *s);
/* Drops one reference; the last one wipes and frees.  NULL is a no-op. */
void secret_unref(struct secret *s);
/* Number of live secret buffers, for leak and wipe checks. */
long secret_live_count(void);
/*
 * Test hook: called with the data of a secret after it was wiped and before it
 * is freed, so a test can prove the wipe.
 */
void secret_set_free_hook(void (*hook)(const unsigned char *data, size_t len));

static inline void secret_unrefp(struct secret **s)
{
	secret_unref(*s);
}
#define _cleanup_secret_ __attribute__((cleanup(secret_unrefp)))

/*
 * Tables.  Declare the number of entries and the total bytes of names and
 * values up front, add entries in strictly increasing name order (memcmp),
 * then finish.  The table is allocated once, in the secure heap.
 */
struct secret_table_builder {
	struct secret *table;
	size_t count; /* declared */
	size_t added;
	size_t used; /* bytes of table->data in use */
};

/* Returns 0 or -ENOMEM/-EINVAL. */
int secret_table_begin(struct secret_table_builder *b, size_t count, size_t names_and_values);
/* The same in the ordinary heap (secret_new_unlocked): for listings. */
int secret_table_begin_unlocked(struct secret_table_builder *b, size_t count,
				size_t names_and_values);
/*
 * What an entry's value was in the store's JSON, for the format views (JSON
 * and YAML keep numbers, booleans and nested objects as they were): a string
 * (or binary, or not JSON at all: a listing's flags), served as its bytes;
 * or any other JSON value, served as its compact JSON text.  A key's file
 * shows the same bytes either way.
 */
enum secret_value_type {
	SECRET_VALUE_TEXT = 0,
	SECRET_VALUE_JSON = 1,
};

/* Returns 0, or -EINVAL when out of order or out of room.  The value is SECRET_VALUE_TEXT. */
int secret_table_add(struct secret_table_builder *b, const char *name, size_t namelen,
		     const void *value, size_t valuelen);
/* The same with the value's type. */
int secret_table_add_typed(struct secret_table_builder *b, const char *name, size_t namelen,
			   const void *value, size_t valuelen, enum secret_value_type type);
/* Hands over the table; -EINVAL when fewer entries were added than declared. */
int secret_table_finish(struct secret_table_builder *b, struct secret **ret);
/* Drops an unfinished table (wiping it).  Safe after finish. */
void secret_table_abort(struct secret_table_builder *b);

struct secret_entry {
	const char *name; /* NUL-terminated inside the table */
	size_t namelen;
	const unsigned char *value;
	size_t valuelen;
	unsigned char type; /* enum secret_value_type */
};

size_t secret_table_count(const struct secret *t);
/* Entry @i in name order; returns false past the end. */
bool secret_table_at(const struct secret *t, size_t i, struct secret_entry *ret);
/* Finds @name; returns false when absent. */
bool secret_table_find(const struct secret *t, const char *name, struct secret_entry *ret);

#endif
