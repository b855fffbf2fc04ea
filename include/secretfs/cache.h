/*
 * cache.h - the value cache that sits between the filesystem and a backend.
 *
 * Keyed by string (the secret id or folder prefix); one cache instance per
 * (source, kind of data), so keys need no source prefix.  The cache never
 * knows which backend it wraps: it calls one fetch function.
 *
 * Semantics (docs/design.md section 4):
 *  - fresh hit: no backend call;
 *  - miss: exactly one fetch per key however many readers wait (single-flight);
 *    the fetch runs on its own thread so a reader's deadline is real;
 *  - expired but within the stale window: served at once while one refresh
 *    runs in the background (stale-while-revalidate, RFC 5861); a transient
 *    error (backend_error_is_transient) of the refresh keeps it being served
 *    until stale-until, any other error ends the entry;
 *  - a reader waits for the store only when there is nothing to serve (or
 *    after cache_invalidate());
 *  - -ENOENT and -EACCES are remembered for negative_ttl;
 *  - a reader waits at most fetch_timeout for a fetch, then gets the stale
 *    value or -EAGAIN;
 *  - bounded by entries and by bytes, least recently used first; entries
 *    without a value (remembered answers, fetches under way) have bounds of
 *    their own, so they never evict a value;
 *  - eviction, expiry past the stale window, flush and cache_free drop the
 *    cache's reference, so the last holder wipes the value;
 *  - a value larger than max_bytes is handed to the readers of its fetch and
 *    not kept;
 *  - a fetch that finds the locked heap full (-ENOMEM) evicts the least
 *    recently used values in locked memory, from every cache, and is asked
 *    again before it fails.
 */
#ifndef SECRETFS_CACHE_H
#define SECRETFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretfs/backend.h"
#include "secretfs/secret.h"

/*
 * Fetches @key.  Called on a cache-owned thread, never with a cache lock
 * held.  Same contract as backend_ops.fetch.
 */
typedef int (*cache_fetch_fn)(void *ctx, const char *key, struct secret **ret_value,
			      struct backend_info *ret_info, char *reason, size_t reasonlen);
typedef uint64_t (*cache_clock_fn)(void *ctx);

struct cache_config {
	uint64_t ttl_usec;	     /* fresh time after a fetch (a backend hint overrides) */
	uint64_t stale_usec;	     /* how long past fresh a value may be served on error */
	uint64_t negative_usec;	     /* how long -ENOENT and -EACCES are remembered */
	uint64_t fetch_timeout_usec; /* longest a reader waits for a fetch, in real time */
	size_t max_entries;	     /* 0 = unbounded */
	size_t max_bytes;	     /* sum of value lengths; 0 = unbounded */
	/* Entries without a value: their count and the sum of their key lengths. */
	size_t max_negative_entries; /* 0 = unbounded */
	size_t max_negative_bytes;   /* 0 = unbounded */
	cache_clock_fn clock;	     /* NULL = CLOCK_MONOTONIC; tests inject one */
	void *clock_ctx;
	/*
	 * Optional: a refresh failed transiently and the expired value goes on
	 * being served (stale-while-revalidate leaves nobody waiting to be
	 * told).  Called on a fetch thread with the cache's lock held: it must
	 * not call into the cache.
	 */
	void (*stale_event)(void *ctx, const char *key, int err, const char *reason);
	void *stale_event_ctx;
};

enum cache_state {
	CACHE_HIT,	/* fresh value from memory */
	CACHE_MISS,	/* fetched for this call (or for a reader it waited with) */
	CACHE_STALE,	/* expired value served because the refetch failed or is late */
	CACHE_NEGATIVE, /* -ENOENT or -EACCES remembered from an earlier fetch */
};

struct cache_result {
	struct secret *value; /* a reference owned by the caller; NULL on error */
	enum cache_state state;
	char version[BACKEND_VERSION_MAX];
	/*
	 * CACHE_STALE: the store's failure the stale value stands in for, or 0
	 * when the value merely expired and a refresh runs in the background.
	 */
	int stale_err;
};

struct cache_stats {
	uint64_t hits, misses, stale_served, negative_hits, fetches, fetch_errors, evictions;
	size_t entries, bytes;
};

struct cache;

int cache_new(const struct cache_config *cfg, cache_fetch_fn fetch, void *fetch_ctx,
	      struct cache **ret);
/* Waits for in-flight fetches to finish, then drops every value. */
void cache_free(struct cache *c);

/*
 * Looks up @key, fetching it if needed.  Returns 0 and fills @ret, or a
 * negative errno with @reason set (for -ENOENT or -EACCES from a negative
 * entry, ret->state is still set to CACHE_NEGATIVE).
 */
int cache_get(struct cache *c, const char *key, struct cache_result *ret, char *reason,
	      size_t reasonlen);
/*
 * cache_get() for a reader that must be answered by @deadline_usec
 * (CLOCK_MONOTONIC, as now_usec(); 0 = no deadline of its own): it waits for
 * a fetch until the fetch's deadline or its own, whichever comes first, so
 * that the several fetches one request needs (a listing, then a value) share
 * one fetch_timeout.  Past its deadline a reader still starts the fetch it
 * needs, but does not wait for it.
 */
int cache_get_until(struct cache *c, const char *key, uint64_t deadline_usec,
		    struct cache_result *ret, char *reason, size_t reasonlen);
/*
 * At most @n fetches run at once, over every cache of the process (0: no
 * bound); the others wait in a queue, first come first served, and their
 * readers' deadlines still hold.  Default: no bound.
 */
void cache_set_max_fetches(unsigned n);
/* Drops the entry for @key, or every entry when @key is NULL. */
void cache_flush(struct cache *c, const char *key);
/* Drops entries past their stale window and negative entries past their TTL. */
void cache_expire(struct cache *c);
void cache_get_stats(struct cache *c, struct cache_stats *ret);

/*
 * For the control interface (status, flush, refresh); none of these fetch or
 * count a hit or a miss.
 *
 * cache_peek: a new reference to the value cached for @key, fresh or stale,
 * or NULL when there is none.
 */
struct secret *cache_peek(struct cache *c, const char *key);
/*
 * Makes the next cache_get() of @key fetch again (a fetch already running is
 * left to finish but its result is not stored), while the value stays
 * available as a stale one should that fetch fail transiently.
 */
void cache_invalidate(struct cache *c, const char *key);
/*
 * Every key with an entry (a value, a remembered not-found or a fetch under
 * way), most recently used first: *ret_keys is a malloc'ed array of @ret_n
 * malloc'ed strings.  Returns 0 or -ENOMEM.
 */
int cache_keys(struct cache *c, char ***ret_keys, size_t *ret_n);

#endif
