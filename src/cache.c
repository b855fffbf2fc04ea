/*
 * cache.c - the value cache between the filesystem and one backend.
 *
 * A chained hash table finds an entry by key and two doubly linked lists
 * order the entries by use, most recent first, for LRU eviction: one for
 * entries holding a value, one for the rest (a remembered not-found or
 * denial, or a fetch under way).  Each list has its own bounds, so names that
 * do not exist, which any reader can make up by the thousand, never push a
 * value out.  One mutex guards the table and both lists.  One condition variable, on
 * CLOCK_MONOTONIC so that a reader's deadline ignores steps of the wall clock, wakes readers when a
 * fetch ends and wakes cache_free() when the last fetch thread is done.
 *
 * Every backend call is a struct cache_fetch run by a detached fetch thread;
 * at most max_fetches run at once over all caches, the others queue, and a
 * thread that finishes takes the next one (cache_set_max_fetches()).
 * Readers of a key join the fetch already running for it (single-flight) and
 * wait for it at most fetch_timeout (or their own deadline); a reader that
 * gives up leaves the fetch running, and its result still fills the cache.
 * An expired value within its stale window is served at once while one
 * fetch refreshes it (stale-while-revalidate): only a reader with nothing to
 * serve waits.  A fetch pins its entry, so an entry is never freed, evicted
 * or expired under a running fetch or a waiting reader.
 *
 * The locked heap is one per process: a fetch that gets -ENOMEM evicts the
 * least recently used values in locked memory from every cache (a registry
 * of caches, and one use counter for all) and asks the backend again.
 *
 * cache_flush() cannot stop a backend call already made, so it bumps the
 * entry's generation instead: a fetch started under an older generation hands
 * its result to the readers that waited for it, but does not store it, and the
 * next reader starts a new fetch.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerrordesc_np: strerror() is not thread-safe */
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secretfs/backend.h"
#include "secretfs/cache.h"
#include "secretfs/util.h"

#define CACHE_MIN_BUCKETS 64

struct cache_entry;

/* One backend call and what it returned, shared by the readers waiting for it. */
/* How long a transient failure spares the store more questions about a key. */
#define CACHE_RETRY_HOLD_USEC (1 * USEC_PER_SEC)

struct cache_fetch {
	struct cache *c;
	struct cache_entry *e; /* immutable; pinned until this fetch is freed */
	uint64_t gen;	       /* immutable; e->gen when the fetch started */
	unsigned refs;	       /* the fetch thread + waiting readers; protected by c->lock */
	bool done;	       /* protected by c->lock */
	int err;	       /* the fetch's return, once done; protected by c->lock */
	struct secret *value;  /* a reference for the readers, once done; protected by c->lock */
	char version[BACKEND_VERSION_MAX]; /* protected by c->lock */
	char reason[BACKEND_REASON_MAX];   /* protected by c->lock */
	/*
	 * When readers stop waiting for this fetch (CLOCK_MONOTONIC); immutable.
	 * It belongs to the fetch, not to each reader: one open(2) is several
	 * FUSE requests (lookups, getattr, open) that all wait on the same
	 * fetch, and together they must not wait longer than fetch_timeout.
	 */
	struct timespec deadline;
	struct cache_fetch *qnext; /* waiting for a fetch thread; protected by pool.lock */
};

struct cache_entry {
	struct cache_entry *hnext;		 /* bucket chain; protected by c->lock */
	struct cache_entry *lru_prev, *lru_next; /* protected by c->lock */
	uint64_t hash;				 /* immutable */
	/* The cache's reference; NULL when negative or nothing is cached yet. */
	struct secret *value;		   /* protected by c->lock */
	char version[BACKEND_VERSION_MAX]; /* protected by c->lock */
	uint64_t fresh_until_usec;	   /* protected by c->lock */
	/* For a negative entry, the end of its TTL. */
	uint64_t stale_until_usec; /* protected by c->lock */
	bool negative;		   /* neg_err is remembered; protected by c->lock */
	int neg_err;		   /* -ENOENT or -EACCES; protected by c->lock */
	unsigned char list;	   /* LRU_VALUES or LRU_OTHERS; protected by c->lock */
	/*
	 * After a transient failure, the stale value is served without asking
	 * the store again until then: one open(2) is several FUSE requests, and
	 * a store that is down must not be asked (and waited for) by each of
	 * them.  Protected by c->lock.
	 */
	uint64_t retry_after_usec;
	int last_err;	   /* that failure, 0 after a success; protected by c->lock */
	char *last_reason; /* and what the store said, or NULL; malloc'ed; c->lock */
	/*
	 * cache_invalidate(), or a TTL of 0 ("ask the store at every read"):
	 * the next reader waits for the store.  Protected by c->lock.
	 */
	bool must_revalidate;
	uint64_t used_tick;	   /* when last used, on the tick shared by all caches; c->lock */
	uint64_t gen;		   /* bumped by a flush; protected by c->lock */
	struct cache_fetch *fetch; /* the fetch new readers join, or NULL; protected by c->lock */
	unsigned pins;		   /* fetches pointing here, alive; protected by c->lock */
	char key[];		   /* immutable */
};

/* Which LRU list an entry is on: it holds a value, or it does not. */
enum { LRU_VALUES, LRU_OTHERS, LRU_LISTS };

struct cache_lru {
	struct cache_entry *head, *tail;
	size_t n;
	size_t key_bytes; /* the keys' lengths, which bound LRU_OTHERS */
};

struct cache {
	struct cache_config cfg; /* immutable */
	cache_fetch_fn fetch;	 /* immutable */
	void *fetch_ctx;	 /* immutable */

	pthread_mutex_t lock;
	pthread_cond_t cond;		   /* a fetch ended; CLOCK_MONOTONIC */
	struct cache_entry **buckets;	   /* protected by c->lock */
	size_t nbuckets;		   /* a power of two; protected by c->lock */
	struct cache_lru lru[LRU_LISTS];   /* protected by c->lock */
	unsigned running;		   /* fetches not done, queued too; protected by c->lock */
	struct cache_stats stats;	   /* entries and bytes too; protected by c->lock */
	size_t locked_bytes;		   /* of values in locked memory; protected by c->lock */
	struct cache *reg_prev, *reg_next; /* protected by registry.lock */
};

/*
 * Every cache, for reclaim_locked_memory(): the locked heap is one per
 * process, so a fetch that cannot get memory evicts from any cache, least
 * recently used first.  Lock order: registry.lock, then a cache's lock.
 */
static struct {
	pthread_mutex_t lock;
	struct cache *head;
} registry = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Orders uses across caches for that eviction. */
static uint64_t use_tick; /* atomic */

/*
 * The fetch threads of all caches: at most max fetches run at once (0: no
 * bound), the rest wait in a queue, and a thread that finishes a fetch takes
 * the next one.  Lock order: a cache's lock, then pool.lock.
 */
static struct {
	pthread_mutex_t lock;
	unsigned max;	  /* atomic */
	unsigned threads; /* running fetch threads; protected by lock */
	struct cache_fetch *head, *tail;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

void cache_set_max_fetches(unsigned n)
{
	__atomic_store_n(&pool.max, n, __ATOMIC_RELAXED);
}

static void set_reason(char *reason, size_t reasonlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_reason(char *reason, size_t reasonlen, const char *fmt, ...)
{
	va_list ap;

	if (!reason || reasonlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, reasonlen, fmt, ap);
	va_end(ap);
}

/* strerror() shares a buffer between threads; this is constant text. */
static const char *errno_desc(int err)
{
	const char *desc = strerrordesc_np(-err);

	return desc ? desc : "unknown error";
}

static uint64_t add_usec(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t cache_now(const struct cache *c)
{
	return c->cfg.clock ? c->cfg.clock(c->cfg.clock_ctx) : now_usec();
}

/* FNV-1a: keys are short paths and chains stay short because the table grows. */
static uint64_t hash_key(const char *key)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= UINT64_C(1099511628211);
	}
	return h;
}

/* ---- LRU list and hash table; all called with c->lock held ---- */

static void lru_unlink(struct cache *c, struct cache_entry *e)
{
	struct cache_lru *l = &c->lru[e->list];

	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		l->head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		l->tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
	l->n--;
	l->key_bytes -= strlen(e->key);
}

static void lru_push_front(struct cache *c, struct cache_entry *e)
{
	struct cache_lru *l = &c->lru[e->list];

	e->used_tick = __atomic_add_fetch(&use_tick, 1, __ATOMIC_RELAXED);
	e->lru_prev = NULL;
	e->lru_next = l->head;
	if (l->head)
		l->head->lru_prev = e;
	else
		l->tail = e;
	l->head = e;
	l->n++;
	l->key_bytes += strlen(e->key);
}

/* Most recently used, on the list its content belongs to. */
static void lru_touch(struct cache *c, struct cache_entry *e)
{
	unsigned char list = e->value ? LRU_VALUES : LRU_OTHERS;

	if (c->lru[list].head == e) {
		e->used_tick = __atomic_add_fetch(&use_tick, 1, __ATOMIC_RELAXED);
		return;
	}
	lru_unlink(c, e);
	e->list = list;
	lru_push_front(c, e);
}

/* After e->value came or went: moves @e to the other list if it belongs there. */
static void lru_reclass(struct cache *c, struct cache_entry *e)
{
	if (e->list != (e->value ? LRU_VALUES : LRU_OTHERS))
		lru_touch(c, e);
}

/* The next entry of the walk over both lists; NULL at the end. */
static struct cache_entry *lru_next_any(struct cache *c, struct cache_entry *e)
{
	if (e->lru_next)
		return e->lru_next;
	for (unsigned l = e->list + 1u; l < LRU_LISTS; l++)
		if (c->lru[l].head)
			return c->lru[l].head;
	return NULL;
}

static struct cache_entry *lru_first_any(struct cache *c)
{
	for (unsigned l = 0; l < LRU_LISTS; l++)
		if (c->lru[l].head)
			return c->lru[l].head;
	return NULL;
}

static struct cache_entry *entry_find(struct cache *c, const char *key, uint64_t hash)
{
	for (struct cache_entry *e = c->buckets[hash & (c->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* Doubles the table; when memory is short the chains just get longer. */
static void table_grow(struct cache *c)
{
	size_t n = c->nbuckets * 2;
	struct cache_entry **b;

	if (n > SIZE_MAX / sizeof(*b))
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct cache_entry *e, *next;

		for (e = c->buckets[i]; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = n;
}

/* Adds an empty entry for @key at the front of the LRU list. */
static int entry_add(struct cache *c, const char *key, uint64_t hash, struct cache_entry **ret_e)
{
	size_t keylen = strlen(key);
	struct cache_entry *e;
	size_t i;

	if (keylen > SIZE_MAX - sizeof(*e) - 1)
		return -ENOMEM;
	e = calloc(1, sizeof(*e) + keylen + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, keylen + 1);
	e->hash = hash;
	e->list = LRU_OTHERS;
	if (c->stats.entries >= c->nbuckets)
		table_grow(c);
	i = hash & (c->nbuckets - 1);
	e->hnext = c->buckets[i];
	c->buckets[i] = e;
	lru_push_front(c, e);
	c->stats.entries++;
	*ret_e = e;
	return 0;
}

static void account_value(struct cache *c, const struct secret *v, bool add)
{
	if (add) {
		c->stats.bytes += v->len;
		if (secret_is_locked(v))
			c->locked_bytes += v->len;
	} else {
		c->stats.bytes -= v->len;
		if (secret_is_locked(v))
			c->locked_bytes -= v->len;
	}
}

/* Drops the cache's reference; the last holder of the value wipes it. */
static void entry_drop_value(struct cache *c, struct cache_entry *e)
{
	if (e->value) {
		account_value(c, e->value, false);
		secret_unref(e->value);
		e->value = NULL;
		lru_reclass(c, e);
	}
	e->version[0] = '\0';
}

static void entry_remove(struct cache *c, struct cache_entry *e)
{
	struct cache_entry **p = &c->buckets[e->hash & (c->nbuckets - 1)];

	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	lru_unlink(c, e);
	if (e->value) {
		account_value(c, e->value, false);
		secret_unref(e->value);
	}
	c->stats.entries--;
	free(e->last_reason);
	free(e);
}

/* Nothing to serve and nobody working on it: such an entry only costs a slot. */
static bool entry_is_empty(const struct cache_entry *e)
{
	return !e->value && !e->negative && !e->fetch;
}

static bool cache_over_bounds(const struct cache *c, unsigned list)
{
	const struct cache_lru *l = &c->lru[list];

	if (list == LRU_VALUES)
		return (c->cfg.max_entries && l->n > c->cfg.max_entries) ||
		       (c->cfg.max_bytes && c->stats.bytes > c->cfg.max_bytes);
	return (c->cfg.max_negative_entries && l->n > c->cfg.max_negative_entries) ||
	       (c->cfg.max_negative_bytes && l->key_bytes > c->cfg.max_negative_bytes);
}

/*
 * Evicts least recently used entries that no fetch or reader holds, each
 * list within its own bounds: entries without a value never evict one.
 */
static void cache_shrink(struct cache *c)
{
	struct cache_entry *e, *prev;

	for (unsigned l = 0; l < LRU_LISTS; l++) {
		for (e = c->lru[l].tail; e && cache_over_bounds(c, l); e = prev) {
			prev = e->lru_prev;
			if (e->pins)
				continue;
			entry_remove(c, e);
			c->stats.evictions++;
		}
	}
}

static void entry_unpin(struct cache *c, struct cache_entry *e)
{
	if (--e->pins > 0)
		return;
	if (entry_is_empty(e))
		entry_remove(c, e);
	else
		/* The bounds may have been exceeded while every old entry was pinned. */
		cache_shrink(c);
}

static void fetch_unref(struct cache *c, struct cache_fetch *f)
{
	struct cache_entry *e = f->e;

	if (--f->refs > 0)
		return;
	secret_unref(f->value);
	free(f);
	entry_unpin(c, e);
}

/* Serves @e's expired value while it is within its stale window. */
static bool entry_serve_stale(struct cache *c, struct cache_entry *e, uint64_t now,
			      struct cache_result *ret)
{
	if (!e->value || now >= e->stale_until_usec)
		return false;
	lru_touch(c, e);
	ret->value = secret_ref(e->value);
	ret->state = CACHE_STALE;
	memcpy(ret->version, e->version, sizeof(ret->version));
	c->stats.stale_served++;
	return true;
}

/* ---- fetch threads ---- */

/* Called with c->lock held once the backend answered for @f. */
static void fetch_finish(struct cache *c, struct cache_fetch *f, int err, struct secret *value,
			 const struct backend_info *info, const char *reason)
{
	struct cache_entry *e = f->e;
	uint64_t now = cache_now(c);

	f->err = err;
	f->value = value;
	memcpy(f->version, info->version, sizeof(f->version));
	memcpy(f->reason, reason, sizeof(f->reason));
	if (err < 0 && err != -ENOENT)
		c->stats.fetch_errors++; /* a denial too: the store refused us */
	if (e->fetch == f)
		e->fetch = NULL;

	/* A flush since the fetch started: its result is older than the flush. */
	if (f->gen == e->gen) {
		if (err == 0 && c->cfg.max_bytes && value->len > c->cfg.max_bytes) {
			/* Kept, it would push every other value out; the readers still get it. */
			entry_drop_value(c, e);
			e->negative = false;
		} else if (err == 0) {
			uint64_t ttl = info->ttl_hint_usec ? info->ttl_hint_usec : c->cfg.ttl_usec;

			entry_drop_value(c, e);
			e->value = secret_ref(value);
			account_value(c, value, true);
			memcpy(e->version, info->version, sizeof(e->version));
			e->negative = false;
			e->fresh_until_usec = add_usec(now, ttl);
			e->retry_after_usec = 0;
			e->last_err = 0;
			free(e->last_reason);
			e->last_reason = NULL;
			e->stale_until_usec = add_usec(e->fresh_until_usec, c->cfg.stale_usec);
			lru_touch(c, e);
		} else if (err == -ENOENT || err == -EACCES) {
			/*
			 * Remembered, as an answer, for the negative TTL: a
			 * token that may read but not list makes every lookup a
			 * fetch, and the store must not be asked each time.
			 */
			entry_drop_value(c, e);
			e->negative = true;
			e->neg_err = err;
			e->stale_until_usec = add_usec(now, c->cfg.negative_usec);
			lru_touch(c, e);
		} else if (!backend_error_is_transient(err) || !e->value ||
			   now >= e->stale_until_usec) {
			/*
			 * A broken answer ends the entry.  After a
			 * transient error the expired value stays, times
			 * unchanged, and the store is asked again after a pause.
			 */
			entry_drop_value(c, e);
		} else {
			e->retry_after_usec = add_usec(now, CACHE_RETRY_HOLD_USEC);
			e->last_err = err;
			free(e->last_reason);
			e->last_reason = reason[0] ? strdup(reason) : NULL;
			if (c->cfg.stale_event)
				c->cfg.stale_event(c->cfg.stale_event_ctx, e->key, err, reason);
		}
	}
	if (f->gen == e->gen)
		e->must_revalidate = err == 0 && e->value && e->fresh_until_usec <= now;
	f->done = true;
	pthread_cond_broadcast(&c->cond);
	cache_shrink(c);
}

/*
 * The locked heap is full: evicts values in locked memory that no reader
 * or fetch holds, from every cache, least recently used first, until about
 * @want bytes are gone (SIZE_MAX: all of them).  Called with no lock held.
 * Returns the number of entries evicted.
 */
static size_t reclaim_locked_memory(size_t want)
{
	size_t freed = 0, evicted = 0;

	pthread_mutex_lock(&registry.lock);
	while (freed < want) {
		struct cache *best = NULL;
		uint64_t best_tick = UINT64_MAX, next_tick = UINT64_MAX;
		size_t round = 0;

		/* The cache whose oldest evictable value is the oldest of all. */
		for (struct cache *c = registry.head; c; c = c->reg_next) {
			pthread_mutex_lock(&c->lock);
			for (struct cache_entry *e = c->locked_bytes ? c->lru[LRU_VALUES].tail
								     : NULL;
			     e; e = e->lru_prev) {
				if (e->pins || !secret_is_locked(e->value))
					continue;
				if (e->used_tick < best_tick) {
					next_tick = best_tick;
					best_tick = e->used_tick;
					best = c;
				} else if (e->used_tick < next_tick) {
					next_tick = e->used_tick;
				}
				break;
			}
			pthread_mutex_unlock(&c->lock);
		}
		if (!best)
			break;
		/* From it, everything older than the next cache's oldest (one at least). */
		pthread_mutex_lock(&best->lock);
		for (struct cache_entry *e = best->lru[LRU_VALUES].tail, *prev; e && freed < want;
		     e = prev) {
			prev = e->lru_prev;
			if (e->pins || !secret_is_locked(e->value))
				continue;
			if (e->used_tick > next_tick && round > 0)
				break;
			freed += e->value->len + sizeof(struct secret);
			entry_remove(best, e);
			best->stats.evictions++;
			evicted++;
			round++;
		}
		pthread_mutex_unlock(&best->lock);
	}
	pthread_mutex_unlock(&registry.lock);
	return evicted;
}

/*
 * Calls the backend for @f.  A backend that finds the locked heap full gets
 * it emptied of the least recently used values and is asked again: first
 * an eighth of the locked values, then all that nobody holds.
 */
static int fetch_call(struct cache_fetch *f, struct secret **value, struct backend_info *info,
		      char *reason, size_t reasonlen)
{
	struct cache *c = f->c;
	size_t want;
	int r;

	for (unsigned attempt = 0;; attempt++) {
		*value = NULL;
		*info = (struct backend_info){ .version = "" };
		reason[0] = '\0';
		r = c->fetch(c->fetch_ctx, f->e->key, value, info, reason, reasonlen);
		if (r != -ENOMEM || attempt == 2)
			return r;
		secret_unref(*value);
		*value = NULL;
		want = attempt == 0 ? 64 * 1024 : SIZE_MAX;
		if (attempt == 0) {
			size_t total = 0;

			pthread_mutex_lock(&registry.lock);
			for (struct cache *o = registry.head; o; o = o->reg_next) {
				pthread_mutex_lock(&o->lock);
				total += o->locked_bytes;
				pthread_mutex_unlock(&o->lock);
			}
			pthread_mutex_unlock(&registry.lock);
			if (total / 8 > want)
				want = total / 8;
		}
		if (reclaim_locked_memory(want) == 0)
			return r;
	}
}

/* Runs one fetch and hands its result over; @f may be freed on return. */
static void fetch_run(struct cache_fetch *f)
{
	struct cache *c = f->c;
	struct backend_info info = { .version = "" };
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *value = NULL;
	int r;

	r = fetch_call(f, &value, &info, reason, sizeof(reason));
	if (r >= 0 && !value) {
		r = -EIO;
		set_reason(reason, sizeof(reason), "backend returned no value");
	}
	if (r < 0) {
		secret_unref(value);
		value = NULL;
	} else {
		r = 0;
	}
	info.version[sizeof(info.version) - 1] = '\0';
	reason[sizeof(reason) - 1] = '\0';
	if (r < 0 && !reason[0])
		set_reason(reason, sizeof(reason), "fetch failed: %s", errno_desc(r));

	pthread_mutex_lock(&c->lock);
	fetch_finish(c, f, r, value, &info, reason);
	c->running--;
	fetch_unref(c, f);
	/* After this unlock cache_free() may free c: touch nothing of it more. */
	pthread_mutex_unlock(&c->lock);
}

/* A fetch thread: runs its fetch, then the queued ones, then ends. */
static void *fetch_thread(void *arg)
{
	struct cache_fetch *f = arg;

	while (f) {
		fetch_run(f);
		pthread_mutex_lock(&pool.lock);
		f = pool.head;
		if (f) {
			pool.head = f->qnext;
			if (!pool.head)
				pool.tail = NULL;
		} else {
			pool.threads--;
		}
		pthread_mutex_unlock(&pool.lock);
	}
	return NULL;
}

static int thread_start(struct cache_fetch *f)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t tid;
	int r;

	r = pthread_attr_init(&attr);
	if (r)
		return -r;
	/*
	 * Signals are for the main thread; a fetch thread inherits the mask of
	 * its creator, which may be any caller.  (libfuse does the same for
	 * its workers.)
	 */
	sigfillset(&all);
	r = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (r == 0)
		r = pthread_sigmask(SIG_SETMASK, &all, &old);
	if (r == 0) {
		r = pthread_create(&tid, &attr, fetch_thread, f);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_attr_destroy(&attr);
	return -r;
}

/*
 * Starts a fetch of @e: on a new thread while fewer than max_fetches run,
 * else queued for the next thread that finishes.  Called with c->lock held.
 */
static int fetch_start(struct cache *c, struct cache_entry *e, struct cache_fetch **ret_f)
{
	struct cache_fetch *f;
	unsigned max = __atomic_load_n(&pool.max, __ATOMIC_RELAXED);
	bool queue;
	int r = 0;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->c = c;
	f->e = e;
	clock_gettime(CLOCK_MONOTONIC, &f->deadline);
	f->deadline.tv_sec += (time_t)(c->cfg.fetch_timeout_usec / USEC_PER_SEC);
	f->deadline.tv_nsec += (long)(c->cfg.fetch_timeout_usec % USEC_PER_SEC) * 1000;
	if (f->deadline.tv_nsec >= 1000000000L) {
		f->deadline.tv_sec++;
		f->deadline.tv_nsec -= 1000000000L;
	}
	f->gen = e->gen;
	f->refs = 1;

	/* The fetch blocks on c->lock, which we hold, until this is set up. */
	pthread_mutex_lock(&pool.lock);
	queue = max && pool.threads >= max;
	if (!queue) {
		pool.threads++;
		r = thread_start(f);
		if (r < 0) {
			pool.threads--;
			/* A thread that is running will take it. */
			queue = pool.threads > 0;
		}
	}
	if (queue) {
		r = 0;
		if (pool.tail)
			pool.tail->qnext = f;
		else
			pool.head = f;
		pool.tail = f;
	}
	pthread_mutex_unlock(&pool.lock);
	if (r < 0) {
		free(f);
		return r;
	}
	e->fetch = f;
	e->pins++;
	c->running++;
	c->stats.fetches++;
	*ret_f = f;
	return 0;
}

static void timespec_from_usec(uint64_t usec, struct timespec *ret)
{
	ret->tv_sec = (time_t)(usec / USEC_PER_SEC);
	ret->tv_nsec = (long)(usec % USEC_PER_SEC) * 1000;
}

static bool timespec_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/*
 * Waits for @f until its deadline or the reader's @deadline_usec
 * (CLOCK_MONOTONIC, 0 = none), whichever comes first.  Called with c->lock
 * held.
 */
static bool fetch_wait(struct cache *c, struct cache_fetch *f, uint64_t deadline_usec)
{
	struct timespec until = f->deadline, mine;

	if (deadline_usec) {
		/*
		 * Already past: answer without waiting.  A timed wait would
		 * still let go of the lock, and a fetch that ends in that
		 * window would turn "joined, not waited for" into a race.
		 */
		if (now_usec() >= deadline_usec)
			return f->done;
		timespec_from_usec(deadline_usec, &mine);
		if (c->cfg.fetch_timeout_usec == 0 || timespec_before(&mine, &until))
			until = mine;
	} else if (c->cfg.fetch_timeout_usec == 0) {
		while (!f->done)
			pthread_cond_wait(&c->cond, &c->lock);
		return true;
	}
	while (!f->done)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT)
			return f->done;
	return true;
}

/* ---- the API ---- */

int cache_new(const struct cache_config *cfg, cache_fetch_fn fetch, void *fetch_ctx,
	      struct cache **ret)
{
	pthread_condattr_t attr;
	struct cache *c;
	int r;

	if (!cfg || !fetch || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->fetch = fetch;
	c->fetch_ctx = fetch_ctx;
	c->nbuckets = CACHE_MIN_BUCKETS;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->buckets) {
		r = -ENOMEM;
		goto out_free;
	}
	r = -pthread_mutex_init(&c->lock, NULL);
	if (r < 0)
		goto out_free;
	r = -pthread_condattr_init(&attr);
	if (r < 0)
		goto out_mutex;
	r = -pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (r == 0)
		r = -pthread_cond_init(&c->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (r < 0)
		goto out_mutex;
	pthread_mutex_lock(&registry.lock);
	c->reg_next = registry.head;
	if (registry.head)
		registry.head->reg_prev = c;
	registry.head = c;
	pthread_mutex_unlock(&registry.lock);
	*ret = c;
	return 0;

out_mutex:
	pthread_mutex_destroy(&c->lock);
out_free:
	free(c->buckets);
	free(c);
	return r;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&registry.lock);
	if (c->reg_prev)
		c->reg_prev->reg_next = c->reg_next;
	else
		registry.head = c->reg_next;
	if (c->reg_next)
		c->reg_next->reg_prev = c->reg_prev;
	pthread_mutex_unlock(&registry.lock);
	pthread_mutex_lock(&c->lock);
	while (c->running > 0)
		pthread_cond_wait(&c->cond, &c->lock);
	/* No fetch runs now, and no reader may still be inside cache_get(). */
	while (lru_first_any(c))
		entry_remove(c, lru_first_any(c));
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
}

/*
 * Starts a refresh of @e that nobody waits for, unless one runs already or
 * the store failed a moment ago.  Called with c->lock held.
 */
static void refresh_in_background(struct cache *c, struct cache_entry *e, uint64_t now)
{
	struct cache_fetch *f;

	if (e->fetch || now < e->retry_after_usec)
		return;
	/* The fetch holds its own reference; nobody waits for it. */
	(void)fetch_start(c, e, &f);
}

int cache_get(struct cache *c, const char *key, struct cache_result *ret, char *reason,
	      size_t reasonlen)
{
	return cache_get_until(c, key, 0, ret, reason, reasonlen);
}

int cache_get_until(struct cache *c, const char *key, uint64_t deadline_usec,
		    struct cache_result *ret, char *reason, size_t reasonlen)
{
	uint64_t hash, now;
	struct cache_entry *e;
	struct cache_fetch *f;
	int r;

	if (!c || !key || !ret)
		return -EINVAL;
	ret->value = NULL;
	ret->state = CACHE_MISS;
	ret->version[0] = '\0';
	ret->stale_err = 0;
	hash = hash_key(key);

	pthread_mutex_lock(&c->lock);
	now = cache_now(c);
	e = entry_find(c, key, hash);
	if (e && e->negative) {
		if (now < e->stale_until_usec) {
			r = e->neg_err;
			c->stats.negative_hits++;
			lru_touch(c, e);
			ret->state = CACHE_NEGATIVE;
			pthread_mutex_unlock(&c->lock);
			set_reason(reason, reasonlen, "%s (remembered)",
				   r == -EACCES ? "permission denied" : "not found");
			return r;
		}
		e->negative = false;
	}
	if (e && e->value && !e->must_revalidate) {
		if (now < e->fresh_until_usec) {
			c->stats.hits++;
			lru_touch(c, e);
			ret->value = secret_ref(e->value);
			ret->state = CACHE_HIT;
			memcpy(ret->version, e->version, sizeof(ret->version));
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		/* Too old even to serve over an error: a plain miss. */
		if (now >= e->stale_until_usec) {
			entry_drop_value(c, e);
		} else {
			/*
			 * Stale-while-revalidate (RFC 5861): serve the expired
			 * value now, while one refresh runs in the background.
			 */
			refresh_in_background(c, e, now);
			entry_serve_stale(c, e, now, ret);
			ret->stale_err = e->last_err;
			if (ret->stale_err)
				set_reason(reason, reasonlen, "the store failed a moment ago: %s",
					   e->last_reason ? e->last_reason
							  : errno_desc(ret->stale_err));
			else
				set_reason(reason, reasonlen,
					   "expired, refreshing in the background");
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
	}

	/* Nothing to serve (or an invalidated value): wait for the store. */
	c->stats.misses++;
	if (!e) {
		r = entry_add(c, key, hash, &e);
		if (r < 0) {
			pthread_mutex_unlock(&c->lock);
			set_reason(reason, reasonlen, "out of memory for a cache entry");
			return r;
		}
	}
	f = e->fetch;
	if (!f) {
		r = fetch_start(c, e, &f);
		if (r < 0) {
			set_reason(reason, reasonlen, "cannot start a fetch: %s", errno_desc(r));
			if (entry_serve_stale(c, e, now, ret)) {
				ret->stale_err = r;
				r = 0;
			} else if (!e->pins && entry_is_empty(e)) {
				entry_remove(c, e);
			}
			pthread_mutex_unlock(&c->lock);
			return r;
		}
	}

	f->refs++;
	if (fetch_wait(c, f, deadline_usec)) {
		now = cache_now(c);
		if (f->err == 0) {
			/* Even after a flush: these readers asked before it. */
			ret->value = secret_ref(f->value);
			memcpy(ret->version, f->version, sizeof(ret->version));
			r = 0;
		} else if (backend_error_is_transient(f->err) && f->gen == e->gen &&
			   entry_serve_stale(c, e, now, ret)) {
			ret->stale_err = f->err;
			r = 0;
		} else {
			r = f->err;
		}
		/* On a stale serve too, so the caller can log why. */
		set_reason(reason, reasonlen, "%s", f->reason);
	} else {
		/* The fetch goes on and will fill the cache; this reader stops here. */
		now = cache_now(c);
		r = f->gen == e->gen && entry_serve_stale(c, e, now, ret) ? 0 : -EAGAIN;
		if (r == 0)
			ret->stale_err = -ETIMEDOUT;
		if (deadline_usec && now_usec() >= deadline_usec)
			set_reason(reason, reasonlen,
				   "the request's deadline (fetch_timeout %" PRIu64
				   " ms) passed while waiting for the store",
				   c->cfg.fetch_timeout_usec / USEC_PER_MSEC);
		else
			set_reason(reason, reasonlen, "fetch timed out after %" PRIu64 " ms",
				   c->cfg.fetch_timeout_usec / USEC_PER_MSEC);
	}
	fetch_unref(c, f);
	pthread_mutex_unlock(&c->lock);
	return r;
}

void cache_flush(struct cache *c, const char *key)
{
	struct cache_entry *e, *next;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	for (e = key ? entry_find(c, key, hash_key(key)) : lru_first_any(c); e; e = next) {
		next = key ? NULL : lru_next_any(c, e);
		if (!e->pins) {
			entry_remove(c, e);
			continue;
		}
		/*
		 * A fetch or a reader still holds the entry: empty it in place
		 * and move it to a new generation, so the running fetch does
		 * not store its result and the next reader starts a new one.
		 * The last unpin removes it if nothing filled it meanwhile.
		 */
		entry_drop_value(c, e);
		e->negative = false;
		e->gen++;
		e->fetch = NULL;
	}
	pthread_mutex_unlock(&c->lock);
}

void cache_expire(struct cache *c)
{
	struct cache_entry *e, *next;
	uint64_t now;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	now = cache_now(c);
	for (e = lru_first_any(c); e; e = next) {
		next = lru_next_any(c, e);
		if (!e->pins && ((!e->negative && !e->value) || now >= e->stale_until_usec))
			entry_remove(c, e);
	}
	pthread_mutex_unlock(&c->lock);
}

void cache_get_stats(struct cache *c, struct cache_stats *ret)
{
	pthread_mutex_lock(&c->lock);
	*ret = c->stats;
	pthread_mutex_unlock(&c->lock);
}

struct secret *cache_peek(struct cache *c, const char *key)
{
	struct cache_entry *e;
	struct secret *v = NULL;

	pthread_mutex_lock(&c->lock);
	e = entry_find(c, key, hash_key(key));
	if (e && e->value)
		v = secret_ref(e->value);
	pthread_mutex_unlock(&c->lock);
	return v;
}

void cache_invalidate(struct cache *c, const char *key)
{
	struct cache_entry *e;

	pthread_mutex_lock(&c->lock);
	e = entry_find(c, key, hash_key(key));
	if (e) {
		/* As a flush does for a running fetch: its result predates the request. */
		e->fresh_until_usec = 0;
		e->retry_after_usec = 0;   /* ask the store now, even right after a failure */
		e->must_revalidate = true; /* and the next reader waits for its answer */
		e->negative = false;
		e->gen++;
		e->fetch = NULL;
	}
	pthread_mutex_unlock(&c->lock);
}

int cache_keys(struct cache *c, char ***ret_keys, size_t *ret_n)
{
	struct cache_entry *e;
	char **keys;
	size_t n = 0;

	pthread_mutex_lock(&c->lock);
	keys = calloc(c->stats.entries + 1, sizeof(*keys));
	for (e = lru_first_any(c); keys && e; e = lru_next_any(c, e)) {
		keys[n] = strdup(e->key);
		if (!keys[n]) {
			while (n > 0)
				free(keys[--n]);
			free(keys);
			keys = NULL;
		} else {
			n++;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (!keys)
		return -ENOMEM;
	*ret_keys = keys;
	*ret_n = n;
	return 0;
}
