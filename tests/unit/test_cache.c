/*
 * test_cache.c - the cache's promises, each checked against exact backend
 * call counts.
 *
 * The backend is a script: per key, what a fetch returns, plus a gate that
 * holds the next fetches in flight.  Time is a fake clock the tests move by
 * hand; only the fetch deadline runs on real time, because that is its point.
 * Threads never assert: they record, and the test thread checks.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "secretfs/backend.h"
#include "secretfs/cache.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"

#define SEC	    USEC_PER_SEC
#define TB_MAX_KEYS 16

struct tb_key {
	char key[32];
	int calls;
	int err;
	char value[64];
	char version[BACKEND_VERSION_MAX];
	uint64_t ttl_hint_usec;
};

/* The scripted backend and the fake clock. */
struct tb {
	pthread_mutex_t lock;
	struct tb_key keys[TB_MAX_KEYS]; /* protected by lock */
	int block_next;			 /* fetches still to hold at the gate; protected by lock */
	int miss_calls;			 /* fetches of "miss/..." keys; protected by lock */
	sem_t entered;			 /* posted by a fetch about to wait at the gate */
	sem_t gate;			 /* a held fetch waits here */
	uint64_t now;			 /* fake clock, atomic */
};

struct fx {
	struct tb tb;
	struct cache_config cfg;
	struct cache *c;
	long live0;
};

static struct tb_key *tb_key_locked(struct tb *tb, const char *key)
{
	for (size_t i = 0; i < TB_MAX_KEYS; i++) {
		struct tb_key *k = &tb->keys[i];

		if (strcmp(k->key, key) == 0)
			return k;
		if (!k->key[0]) {
			snprintf(k->key, sizeof(k->key), "%s", key);
			snprintf(k->value, sizeof(k->value), "value-of-%s", key);
			snprintf(k->version, sizeof(k->version), "v1");
			return k;
		}
	}
	return NULL;
}

/* What the next fetch of @key returns: @err, or @value with @version and @ttl_hint_usec. */
static void tb_set(struct tb *tb, const char *key, int err, const char *value, const char *version,
		   uint64_t ttl_hint_usec)
{
	struct tb_key *k;

	pthread_mutex_lock(&tb->lock);
	k = tb_key_locked(tb, key);
	assert_non_null(k);
	k->err = err;
	if (value)
		snprintf(k->value, sizeof(k->value), "%s", value);
	if (version)
		snprintf(k->version, sizeof(k->version), "%s", version);
	k->ttl_hint_usec = ttl_hint_usec;
	pthread_mutex_unlock(&tb->lock);
}

static void tb_set_value(struct tb *tb, const char *key, const char *value)
{
	tb_set(tb, key, 0, value, NULL, 0);
}

static void tb_set_error(struct tb *tb, const char *key, int err)
{
	tb_set(tb, key, err, NULL, NULL, 0);
}

static int tb_calls(struct tb *tb, const char *key)
{
	struct tb_key *k;
	int n;

	pthread_mutex_lock(&tb->lock);
	k = tb_key_locked(tb, key);
	n = k ? k->calls : -1;
	pthread_mutex_unlock(&tb->lock);
	return n;
}

/* Holds the next @n fetches at the gate until the test posts it. */
static void tb_hold_next(struct tb *tb, int n)
{
	pthread_mutex_lock(&tb->lock);
	tb->block_next = n;
	pthread_mutex_unlock(&tb->lock);
}

static void tb_release(struct tb *tb)
{
	sem_post(&tb->gate);
}

static int tb_fetch(void *ctx, const char *key, struct secret **ret_value,
		    struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct tb *tb = ctx;
	struct tb_key *k, now;
	struct secret *s;
	bool hold;

	pthread_mutex_lock(&tb->lock);
	if (strncmp(key, "miss/", 5) == 0) {
		/* A flood of names that do not exist: no slot, one counter. */
		tb->miss_calls++;
		pthread_mutex_unlock(&tb->lock);
		snprintf(reason, reasonlen, "not found");
		return -ENOENT;
	}
	k = tb_key_locked(tb, key);
	if (!k) {
		pthread_mutex_unlock(&tb->lock);
		snprintf(reason, reasonlen, "test backend out of keys");
		return -EIO;
	}
	k->calls++;
	/*
	 * The answer is fixed at call time, as a store's would be: a test may
	 * script the next answer while this fetch is held.
	 */
	now = *k;
	hold = tb->block_next > 0;
	if (hold)
		tb->block_next--;
	pthread_mutex_unlock(&tb->lock);

	if (hold) {
		sem_post(&tb->entered);
		while (sem_wait(&tb->gate) < 0)
			;
	}
	if (now.err) {
		snprintf(reason, reasonlen, "scripted error %d", now.err);
		return now.err;
	}
	s = secret_dup(now.value, strlen(now.value));
	if (!s)
		return -ENOMEM;
	snprintf(ret_info->version, sizeof(ret_info->version), "%s", now.version);
	ret_info->ttl_hint_usec = now.ttl_hint_usec;
	*ret_value = s;
	return 0;
}

static uint64_t fake_clock(void *ctx)
{
	struct tb *tb = ctx;

	return __atomic_load_n(&tb->now, __ATOMIC_SEQ_CST);
}

static void advance(struct fx *fx, uint64_t usec)
{
	__atomic_add_fetch(&fx->tb.now, usec, __ATOMIC_SEQ_CST);
}

/* TTL 10 s, stale window 100 s, negative TTL 5 s, deadline 10 s, unbounded. */
static void fx_setup(struct fx *fx)
{
	memset(fx, 0, sizeof(*fx));
	pthread_mutex_init(&fx->tb.lock, NULL);
	sem_init(&fx->tb.entered, 0, 0);
	sem_init(&fx->tb.gate, 0, 0);
	fx->tb.now = 1000 * SEC;
	fx->cfg.ttl_usec = 10 * SEC;
	fx->cfg.stale_usec = 100 * SEC;
	fx->cfg.negative_usec = 5 * SEC;
	fx->cfg.fetch_timeout_usec = 10 * SEC;
	fx->cfg.clock = fake_clock;
	fx->cfg.clock_ctx = &fx->tb;
	fx->live0 = secret_live_count();
}

static void fx_start(struct fx *fx)
{
	assert_int_equal(cache_new(&fx->cfg, tb_fetch, &fx->tb, &fx->c), 0);
}

static void fx_init(struct fx *fx)
{
	fx_setup(fx);
	fx_start(fx);
}

static void fx_done(struct fx *fx)
{
	cache_free(fx->c);
	fx->c = NULL;
	assert_int_equal(secret_live_count(), fx->live0);
	sem_destroy(&fx->tb.entered);
	sem_destroy(&fx->tb.gate);
	pthread_mutex_destroy(&fx->tb.lock);
}

static void check_value(const struct secret *s, const char *want)
{
	assert_non_null(s);
	assert_int_equal(s->len, strlen(want));
	assert_memory_equal(s->data, want, strlen(want));
}

/* Gets @key, expects success in @state with @want, and drops the reference. */
static void get_ok(struct fx *fx, const char *key, enum cache_state state, const char *want)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;

	assert_int_equal(cache_get(fx->c, key, &res, reason, sizeof(reason)), 0);
	assert_int_equal(res.state, state);
	check_value(res.value, want);
	secret_unref(res.value);
}

/* Gets @key and expects @err; returns the state the cache reported. */
/*
 * Fills @key under a deadline shorter than a loaded machine may need to start
 * a thread: a reader that times out rejoins the same fetch, so the backend
 * still sees one call.
 */
static void fill(struct fx *fx, const char *key, const char *want)
{
	uint64_t t0 = now_usec();
	struct cache_result res;
	int r;

	while ((r = cache_get(fx->c, key, &res, NULL, 0)) == -EAGAIN)
		assert_true(now_usec() - t0 < 20 * SEC);
	assert_int_equal(r, 0);
	check_value(res.value, want);
	secret_unref(res.value);
}

static enum cache_state get_err(struct fx *fx, const char *key, int err)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;

	assert_int_equal(cache_get(fx->c, key, &res, reason, sizeof(reason)), err);
	assert_null(res.value);
	assert_true(reason[0] != '\0');
	return res.state;
}

static struct cache_stats stats(struct fx *fx)
{
	struct cache_stats st;

	cache_get_stats(fx->c, &st);
	return st;
}

/* Polls the stats until @cond holds; real time bounded, for thread hand-offs only. */
#define WAIT_STATS(fx, st, cond)                                                                   \
	do {                                                                                       \
		uint64_t t0_ = now_usec();                                                         \
		for (;;) {                                                                         \
			(st) = stats(fx);                                                          \
			if (cond)                                                                  \
				break;                                                             \
			assert_true(now_usec() - t0_ < 20 * SEC);                                  \
			sched_yield();                                                             \
		}                                                                                  \
	} while (0)

/* Waits (real time, bounded) until the background refresh of @key stored @want. */
static void wait_value(struct fx *fx, const char *key, const char *want)
{
	uint64_t t0 = now_usec();
	struct secret *v;

	for (;;) {
		v = cache_peek(fx->c, key);
		if (v && v->len == strlen(want) && memcmp(v->data, want, v->len) == 0)
			break;
		secret_unref(v);
		assert_true(now_usec() - t0 < 20 * SEC);
		sched_yield();
	}
	secret_unref(v);
}

struct reader {
	pthread_t tid;
	struct cache *c;
	const char *key;
	int r;
	struct cache_result res;
	char reason[BACKEND_REASON_MAX];
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	rd->r = cache_get(rd->c, rd->key, &rd->res, rd->reason, sizeof(rd->reason));
	return NULL;
}

static void reader_start(struct reader *rd, struct cache *c, const char *key)
{
	memset(rd, 0, sizeof(*rd));
	rd->c = c;
	rd->key = key;
	assert_int_equal(pthread_create(&rd->tid, NULL, reader_main, rd), 0);
}

static void reader_join(struct reader *rd)
{
	assert_int_equal(pthread_join(rd->tid, NULL), 0);
}

/* ---- tests ---- */

static void test_transient_errors(void **state)
{
	static const struct {
		int err;
		int transient;
	} table[] = {
		{ -EAGAIN, 1 },	      { -ETIMEDOUT, 1 },  { -EHOSTUNREACH, 1 }, { -ENETUNREACH, 1 },
		{ -ECONNREFUSED, 1 }, { -ECONNRESET, 1 }, { -EBUSY, 1 },	{ -ENOENT, 0 },
		{ -EACCES, 0 },	      { -EIO, 0 },	  { -ENOMEM, 0 },	{ -EINVAL, 0 },
		{ -EPERM, 0 },	      { 0, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(table); i++)
		assert_int_equal(backend_error_is_transient(table[i].err), table[i].transient);
}

static void test_fresh_hit(void **state)
{
	struct cache_result res;
	struct fx fx;

	fx_init(&fx);
	tb_set(&fx.tb, "a", 0, "alpha", "v7", 0);
	assert_int_equal(cache_get(fx.c, "a", &res, NULL, 0), 0);
	assert_int_equal(res.state, CACHE_MISS);
	assert_string_equal(res.version, "v7");
	check_value(res.value, "alpha");
	secret_unref(res.value);

	assert_int_equal(cache_get(fx.c, "a", &res, NULL, 0), 0);
	assert_int_equal(res.state, CACHE_HIT);
	assert_string_equal(res.version, "v7");
	check_value(res.value, "alpha");
	secret_unref(res.value);
	assert_int_equal(tb_calls(&fx.tb, "a"), 1);
	fx_done(&fx);
}

static void test_ttl_expiry(void **state)
{
	struct fx fx;

	fx_init(&fx);
	tb_set_value(&fx.tb, "a", "one");
	get_ok(&fx, "a", CACHE_MISS, "one");
	tb_set_value(&fx.tb, "a", "two");
	advance(&fx, 10 * SEC - 1);
	get_ok(&fx, "a", CACHE_HIT, "one");
	assert_int_equal(tb_calls(&fx.tb, "a"), 1);
	advance(&fx, 1);
	/* Expired: served at once while one refresh runs (stale-while-revalidate). */
	get_ok(&fx, "a", CACHE_STALE, "one");
	wait_value(&fx, "a", "two");
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	get_ok(&fx, "a", CACHE_HIT, "two");
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	fx_done(&fx);
}

static void test_ttl_hint(void **state)
{
	struct fx fx;

	fx_init(&fx);
	/* A shorter hint than the configured 10 s. */
	tb_set(&fx.tb, "short", 0, "s", "v1", 2 * SEC);
	get_ok(&fx, "short", CACHE_MISS, "s");
	advance(&fx, 2 * SEC - 1);
	get_ok(&fx, "short", CACHE_HIT, "s");
	tb_set(&fx.tb, "short", 0, "s2", "v2", 2 * SEC);
	advance(&fx, 1);
	get_ok(&fx, "short", CACHE_STALE, "s");
	wait_value(&fx, "short", "s2");
	assert_int_equal(tb_calls(&fx.tb, "short"), 2);

	/* A longer one. */
	tb_set(&fx.tb, "long", 0, "l", "v1", 60 * SEC);
	get_ok(&fx, "long", CACHE_MISS, "l");
	advance(&fx, 30 * SEC);
	get_ok(&fx, "long", CACHE_HIT, "l");
	advance(&fx, 30 * SEC - 1);
	get_ok(&fx, "long", CACHE_HIT, "l");
	assert_int_equal(tb_calls(&fx.tb, "long"), 1);
	tb_set(&fx.tb, "long", 0, "l2", "v2", 60 * SEC);
	advance(&fx, 1);
	get_ok(&fx, "long", CACHE_STALE, "l");
	wait_value(&fx, "long", "l2");
	assert_int_equal(tb_calls(&fx.tb, "long"), 2);
	fx_done(&fx);
}

static void test_single_flight(void **state)
{
	enum { N = 16 };
	struct reader rd[N];
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	tb_set_value(&fx.tb, "cold", "the-one-value");
	tb_hold_next(&fx.tb, 1);
	for (int i = 0; i < N; i++)
		reader_start(&rd[i], fx.c, "cold");
	sem_wait(&fx.tb.entered);
	/* A miss is counted under the lock right before the reader waits. */
	WAIT_STATS(&fx, st, st.misses == N);
	assert_int_equal(tb_calls(&fx.tb, "cold"), 1);
	tb_release(&fx.tb);
	for (int i = 0; i < N; i++) {
		reader_join(&rd[i]);
		assert_int_equal(rd[i].r, 0);
		assert_int_equal(rd[i].res.state, CACHE_MISS);
		check_value(rd[i].res.value, "the-one-value");
		secret_unref(rd[i].res.value);
	}
	assert_int_equal(tb_calls(&fx.tb, "cold"), 1);
	st = stats(&fx);
	assert_int_equal(st.fetches, 1);
	assert_int_equal(st.misses, N);
	get_ok(&fx, "cold", CACHE_HIT, "the-one-value");
	assert_int_equal(tb_calls(&fx.tb, "cold"), 1);
	fx_done(&fx);
}

static void check_stale_if_error(int err)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	tb_set(&fx.tb, "a", 0, "old", "v1", 0);
	get_ok(&fx, "a", CACHE_MISS, "old");
	advance(&fx, 11 * SEC);
	tb_set_error(&fx.tb, "a", err);

	/* Served at once, not after the store's answer; the refresh fails behind it. */
	assert_int_equal(cache_get(fx.c, "a", &res, reason, sizeof(reason)), 0);
	assert_int_equal(res.state, CACHE_STALE);
	assert_int_equal(res.stale_err, 0);
	assert_string_equal(res.version, "v1");
	check_value(res.value, "old");
	secret_unref(res.value);
	assert_non_null(strstr(reason, "refreshing"));
	WAIT_STATS(&fx, st, st.fetch_errors == 1);
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);

	/* For a moment the store is spared: stale again, without a call, saying why. */
	assert_int_equal(cache_get(fx.c, "a", &res, reason, sizeof(reason)), 0);
	assert_int_equal(res.state, CACHE_STALE);
	assert_int_equal(res.stale_err, err);
	check_value(res.value, "old");
	secret_unref(res.value);
	assert_non_null(strstr(reason, "failed a moment ago"));
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);

	/* Times are not extended: after the pause the next read tries the store again. */
	advance(&fx, 1 * SEC);
	get_ok(&fx, "a", CACHE_STALE, "old");
	WAIT_STATS(&fx, st, st.fetch_errors == 2);
	assert_int_equal(tb_calls(&fx.tb, "a"), 3);
	st = stats(&fx);
	assert_int_equal(st.stale_served, 3);
	assert_int_equal(st.fetch_errors, 2);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes, 3);

	/* The store is back: the stale value is served once more while it refreshes. */
	tb_set(&fx.tb, "a", 0, "new", "v2", 0);
	advance(&fx, 1 * SEC);
	get_ok(&fx, "a", CACHE_STALE, "old");
	wait_value(&fx, "a", "new");
	get_ok(&fx, "a", CACHE_HIT, "new");
	assert_int_equal(tb_calls(&fx.tb, "a"), 4);
	fx_done(&fx);
}

static void test_stale_if_error(void **state)
{
	check_stale_if_error(-EAGAIN);
	check_stale_if_error(-ETIMEDOUT);
	check_stale_if_error(-ECONNREFUSED);
}

static void test_past_stale_window(void **state)
{
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	tb_set_value(&fx.tb, "a", "old");
	get_ok(&fx, "a", CACHE_MISS, "old");
	tb_set_error(&fx.tb, "a", -EAGAIN);
	/* stale-until = fetch + 10 s + 100 s: one microsecond before, still served. */
	advance(&fx, 110 * SEC - 1);
	get_ok(&fx, "a", CACHE_STALE, "old");
	WAIT_STATS(&fx, st, st.fetch_errors == 1);
	advance(&fx, 1);
	assert_int_equal(get_err(&fx, "a", -EAGAIN), CACHE_MISS);
	assert_int_equal(tb_calls(&fx.tb, "a"), 3);
	st = stats(&fx);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.fetch_errors, 2);
	assert_int_equal(st.stale_served, 1);
	fx_done(&fx);
}

static void check_non_transient(int err)
{
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	tb_set_value(&fx.tb, "a", "old");
	get_ok(&fx, "a", CACHE_MISS, "old");
	advance(&fx, 11 * SEC);
	tb_set_error(&fx.tb, "a", err);
	/* Served once while the refresh runs; its answer ends the value. */
	get_ok(&fx, "a", CACHE_STALE, "old");
	WAIT_STATS(&fx, st, st.fetch_errors == 1);
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	st = stats(&fx);
	assert_int_equal(st.entries, err == -EACCES ? 1 : 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.stale_served, 1);
	if (err != -EACCES) {
		assert_int_equal(get_err(&fx, "a", err), CACHE_MISS);
		assert_int_equal(tb_calls(&fx.tb, "a"), 3);
	}
	if (err == -EACCES) {
		/* A denial is an answer: remembered for the negative TTL, like not-found. */
		assert_int_equal(get_err(&fx, "a", -EACCES), CACHE_NEGATIVE);
		assert_int_equal(tb_calls(&fx.tb, "a"), 2);
		advance(&fx, 5 * SEC);
	}

	/* The value is gone: even a transient error now has nothing to serve. */
	tb_set_error(&fx.tb, "a", -EAGAIN);
	get_err(&fx, "a", -EAGAIN);
	assert_int_equal(tb_calls(&fx.tb, "a"), err == -EACCES ? 3 : 4);

	tb_set_value(&fx.tb, "a", "new");
	get_ok(&fx, "a", CACHE_MISS, "new");
	assert_int_equal(tb_calls(&fx.tb, "a"), err == -EACCES ? 4 : 5);
	fx_done(&fx);
}

static void test_non_transient_ends_entry(void **state)
{
	check_non_transient(-EACCES);
	check_non_transient(-EIO);
}

static void test_negative(void **state)
{
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	tb_set_error(&fx.tb, "gone", -ENOENT);
	assert_int_equal(get_err(&fx, "gone", -ENOENT), CACHE_MISS);
	assert_int_equal(get_err(&fx, "gone", -ENOENT), CACHE_NEGATIVE);
	assert_int_equal(tb_calls(&fx.tb, "gone"), 1);
	advance(&fx, 5 * SEC - 1);
	assert_int_equal(get_err(&fx, "gone", -ENOENT), CACHE_NEGATIVE);
	assert_int_equal(tb_calls(&fx.tb, "gone"), 1);
	advance(&fx, 1);
	tb_set_value(&fx.tb, "gone", "back");
	get_ok(&fx, "gone", CACHE_MISS, "back");
	assert_int_equal(tb_calls(&fx.tb, "gone"), 2);
	st = stats(&fx);
	assert_int_equal(st.negative_hits, 2);
	assert_int_equal(st.fetch_errors, 0);

	/* -ENOENT on refetch ends a value and is remembered in its place. */
	advance(&fx, 11 * SEC);
	tb_set_error(&fx.tb, "gone", -ENOENT);
	get_ok(&fx, "gone", CACHE_STALE, "back");
	WAIT_STATS(&fx, st, st.bytes == 0);
	assert_int_equal(get_err(&fx, "gone", -ENOENT), CACHE_NEGATIVE);
	assert_int_equal(tb_calls(&fx.tb, "gone"), 3);
	st = stats(&fx);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes, 0);
	fx_done(&fx);
}

static void test_lru_entries(void **state)
{
	struct cache_stats st;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.max_entries = 2;
	fx_start(&fx);
	tb_set_value(&fx.tb, "a", "A");
	tb_set_value(&fx.tb, "b", "B");
	tb_set_value(&fx.tb, "c", "C");
	get_ok(&fx, "a", CACHE_MISS, "A");
	get_ok(&fx, "b", CACHE_MISS, "B");
	get_ok(&fx, "a", CACHE_HIT, "A"); /* b is now the least recently used */
	get_ok(&fx, "c", CACHE_MISS, "C");
	st = stats(&fx);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 1);

	get_ok(&fx, "c", CACHE_HIT, "C"); /* now a is */
	get_ok(&fx, "b", CACHE_MISS, "B");
	assert_int_equal(tb_calls(&fx.tb, "a"), 1);
	assert_int_equal(tb_calls(&fx.tb, "b"), 2);
	assert_int_equal(tb_calls(&fx.tb, "c"), 1);
	st = stats(&fx);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 2);
	get_ok(&fx, "b", CACHE_HIT, "B");
	get_ok(&fx, "c", CACHE_HIT, "C");

	/* Negative entries have bounds of their own: they take no value's slot. */
	tb_set_error(&fx.tb, "n", -ENOENT);
	get_err(&fx, "n", -ENOENT);
	st = stats(&fx);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.evictions, 2);
	get_ok(&fx, "c", CACHE_HIT, "C");
	get_ok(&fx, "b", CACHE_HIT, "B");
	assert_int_equal(tb_calls(&fx.tb, "b"), 2);
	assert_int_equal(tb_calls(&fx.tb, "c"), 1);
	fx_done(&fx);
}

static void test_lru_bytes(void **state)
{
	struct cache_stats st;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.max_bytes = 10;
	fx_start(&fx);
	tb_set_value(&fx.tb, "a", "aaaa");
	tb_set_value(&fx.tb, "b", "bbbb");
	tb_set_value(&fx.tb, "c", "cccc");
	get_ok(&fx, "a", CACHE_MISS, "aaaa");
	get_ok(&fx, "b", CACHE_MISS, "bbbb");
	st = stats(&fx);
	assert_int_equal(st.bytes, 8);
	get_ok(&fx, "a", CACHE_HIT, "aaaa");
	get_ok(&fx, "c", CACHE_MISS, "cccc"); /* 12 bytes: b goes */
	st = stats(&fx);
	assert_int_equal(st.bytes, 8);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 1);
	get_ok(&fx, "a", CACHE_HIT, "aaaa");
	get_ok(&fx, "c", CACHE_HIT, "cccc");
	get_ok(&fx, "b", CACHE_MISS, "bbbb");
	assert_int_equal(tb_calls(&fx.tb, "b"), 2);
	assert_int_equal(tb_calls(&fx.tb, "a"), 1);

	/* A value over the whole budget is handed out but not kept: the others stay. */
	tb_set_value(&fx.tb, "big", "0123456789ab");
	get_ok(&fx, "big", CACHE_MISS, "0123456789ab");
	get_ok(&fx, "big", CACHE_MISS, "0123456789ab");
	assert_int_equal(tb_calls(&fx.tb, "big"), 2);
	st = stats(&fx);
	assert_int_equal(st.bytes, 8);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 2);
	get_ok(&fx, "b", CACHE_HIT, "bbbb");
	get_ok(&fx, "c", CACHE_HIT, "cccc");
	fx_done(&fx);
}

static void test_deadline_cold(void **state)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;
	struct cache_stats st;
	uint64_t t0;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.fetch_timeout_usec = 20 * USEC_PER_MSEC;
	fx_start(&fx);
	tb_set_value(&fx.tb, "slow", "finally");
	tb_hold_next(&fx.tb, 1);
	t0 = now_usec();
	assert_int_equal(cache_get(fx.c, "slow", &res, reason, sizeof(reason)), -EAGAIN);
	assert_true(now_usec() - t0 >= 20 * USEC_PER_MSEC);
	assert_null(res.value);
	assert_string_equal(reason, "fetch timed out after 20 ms");

	/* A second reader joins the same fetch rather than starting one. */
	assert_int_equal(cache_get(fx.c, "slow", &res, reason, sizeof(reason)), -EAGAIN);
	sem_wait(&fx.tb.entered);
	assert_int_equal(tb_calls(&fx.tb, "slow"), 1);
	st = stats(&fx);
	assert_int_equal(st.fetches, 1);

	/* The fetch goes on and fills the cache. */
	tb_release(&fx.tb);
	WAIT_STATS(&fx, st, st.bytes == strlen("finally"));
	get_ok(&fx, "slow", CACHE_HIT, "finally");
	assert_int_equal(tb_calls(&fx.tb, "slow"), 1);
	fx_done(&fx);
}

static void test_deadline_stale(void **state)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;
	struct cache_stats st;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.fetch_timeout_usec = 20 * USEC_PER_MSEC;
	fx_start(&fx);
	tb_set_value(&fx.tb, "a", "old");
	fill(&fx, "a", "old");
	assert_int_equal(tb_calls(&fx.tb, "a"), 1);
	advance(&fx, 11 * SEC);
	tb_set_value(&fx.tb, "a", "newer");
	tb_hold_next(&fx.tb, 1);
	assert_int_equal(cache_get(fx.c, "a", &res, reason, sizeof(reason)), 0);
	assert_int_equal(res.state, CACHE_STALE);
	check_value(res.value, "old");
	secret_unref(res.value);
	assert_string_equal(reason, "expired, refreshing in the background");
	sem_wait(&fx.tb.entered);
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);

	tb_release(&fx.tb);
	WAIT_STATS(&fx, st, st.bytes == strlen("newer"));
	get_ok(&fx, "a", CACHE_HIT, "newer");
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	st = stats(&fx);
	assert_int_equal(st.stale_served, 1);
	assert_int_equal(st.fetch_errors, 0);
	fx_done(&fx);
}

static void check_flush_in_flight(const char *flush_key)
{
	struct cache_stats st;
	struct reader rd;
	struct fx fx;

	fx_init(&fx);
	tb_set_value(&fx.tb, "a", "old");
	tb_hold_next(&fx.tb, 1);
	reader_start(&rd, fx.c, "a");
	sem_wait(&fx.tb.entered);
	cache_flush(fx.c, flush_key);
	tb_set_value(&fx.tb, "a", "new");
	tb_release(&fx.tb);
	reader_join(&rd);
	/* The reader asked before the flush and gets what it asked for... */
	assert_int_equal(rd.r, 0);
	assert_int_equal(rd.res.state, CACHE_MISS);
	check_value(rd.res.value, "old");
	secret_unref(rd.res.value);
	/* ...but the cache does not keep it. */
	st = stats(&fx);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	get_ok(&fx, "a", CACHE_MISS, "new");
	get_ok(&fx, "a", CACHE_HIT, "new");
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	fx_done(&fx);
}

static void test_flush_in_flight(void **state)
{
	check_flush_in_flight("a");
	check_flush_in_flight(NULL);
}

/* A fetch started after the flush wins even when the older one ends last. */
static void test_flush_generation(void **state)
{
	struct reader rd;
	struct fx fx;

	fx_init(&fx);
	tb_set_value(&fx.tb, "a", "old");
	tb_hold_next(&fx.tb, 1);
	reader_start(&rd, fx.c, "a");
	sem_wait(&fx.tb.entered);
	cache_flush(fx.c, NULL);
	tb_set_value(&fx.tb, "a", "new");
	/* The old fetch is still held: this one starts a second fetch. */
	get_ok(&fx, "a", CACHE_MISS, "new");
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	tb_release(&fx.tb);
	reader_join(&rd);
	assert_int_equal(rd.r, 0);
	check_value(rd.res.value, "old");
	secret_unref(rd.res.value);
	get_ok(&fx, "a", CACHE_HIT, "new");
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	fx_done(&fx);
}

static long freed_count;
static long freed_dirty;

static void count_free(const unsigned char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i]) {
			__atomic_add_fetch(&freed_dirty, 1, __ATOMIC_SEQ_CST);
			break;
		}
	}
	__atomic_add_fetch(&freed_count, 1, __ATOMIC_SEQ_CST);
}

static long freed(void)
{
	assert_int_equal(__atomic_load_n(&freed_dirty, __ATOMIC_SEQ_CST), 0);
	return __atomic_load_n(&freed_count, __ATOMIC_SEQ_CST);
}

static int wipe_setup(void **state)
{
	freed_count = 0;
	freed_dirty = 0;
	secret_set_free_hook(count_free);
	return 0;
}

static int wipe_teardown(void **state)
{
	secret_set_free_hook(NULL);
	return 0;
}

static void test_wipe_evict(void **state)
{
	struct cache_result held;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.max_entries = 1;
	fx_start(&fx);
	get_ok(&fx, "a", CACHE_MISS, "value-of-a");
	assert_int_equal(freed(), 0);
	get_ok(&fx, "b", CACHE_MISS, "value-of-b"); /* evicts a */
	assert_int_equal(freed(), 1);
	assert_int_equal(secret_live_count(), fx.live0 + 1);

	/* A reader's reference keeps an evicted value until it lets go. */
	assert_int_equal(cache_get(fx.c, "b", &held, NULL, 0), 0);
	get_ok(&fx, "c", CACHE_MISS, "value-of-c"); /* evicts b */
	assert_int_equal(freed(), 1);
	check_value(held.value, "value-of-b");
	secret_unref(held.value);
	assert_int_equal(freed(), 2);
	fx_done(&fx);
	assert_int_equal(freed(), 3);
}

static void test_wipe_expire(void **state)
{
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	get_ok(&fx, "a", CACHE_MISS, "value-of-a");
	tb_set_error(&fx.tb, "n", -ENOENT);
	get_err(&fx, "n", -ENOENT);
	advance(&fx, 5 * SEC);
	cache_expire(fx.c); /* the negative entry goes; a is fresh */
	st = stats(&fx);
	assert_int_equal(st.entries, 1);
	assert_int_equal(freed(), 0);
	advance(&fx, 50 * SEC);
	cache_expire(fx.c); /* a is expired but within its stale window */
	assert_int_equal(freed(), 0);
	advance(&fx, 55 * SEC); /* 110 s: past stale-until */
	cache_expire(fx.c);
	assert_int_equal(freed(), 1);
	st = stats(&fx);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(secret_live_count(), fx.live0);
	fx_done(&fx);
}

static void test_wipe_flush(void **state)
{
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	get_ok(&fx, "a", CACHE_MISS, "value-of-a");
	get_ok(&fx, "b", CACHE_MISS, "value-of-b");
	get_ok(&fx, "c", CACHE_MISS, "value-of-c");
	cache_flush(fx.c, "a");
	assert_int_equal(freed(), 1);
	cache_flush(fx.c, "missing");
	assert_int_equal(freed(), 1);
	cache_flush(fx.c, NULL);
	assert_int_equal(freed(), 3);
	st = stats(&fx);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(secret_live_count(), fx.live0);
	fx_done(&fx);
}

static void test_wipe_free(void **state)
{
	struct fx fx;

	fx_init(&fx);
	get_ok(&fx, "a", CACHE_MISS, "value-of-a");
	get_ok(&fx, "b", CACHE_MISS, "value-of-b");
	assert_int_equal(secret_live_count(), fx.live0 + 2);
	assert_int_equal(freed(), 0);
	fx_done(&fx); /* checks the live count too */
	assert_int_equal(freed(), 2);
}

/* cache_free waits for a fetch that is still running and frees its value. */
static void test_free_waits_for_fetch(void **state)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.fetch_timeout_usec = 1 * USEC_PER_MSEC;
	fx_start(&fx);
	tb_hold_next(&fx.tb, 1);
	assert_int_equal(cache_get(fx.c, "a", &res, reason, sizeof(reason)), -EAGAIN);
	sem_wait(&fx.tb.entered);
	tb_release(&fx.tb);
	fx_done(&fx);
	assert_int_equal(freed(), 1);
}

static void test_stats(void **state)
{
	struct cache_stats st;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.max_entries = 2;
	fx_start(&fx);
	tb_set_value(&fx.tb, "a", "12345");
	tb_set_value(&fx.tb, "b", "123");
	tb_set_error(&fx.tb, "n", -ENOENT);
	st = stats(&fx);
	assert_int_equal(st.hits + st.misses + st.fetches + st.entries + st.bytes, 0);

	get_ok(&fx, "a", CACHE_MISS, "12345"); /* miss, fetch */
	get_ok(&fx, "a", CACHE_HIT, "12345");  /* hit */
	get_err(&fx, "n", -ENOENT);	       /* miss, fetch */
	get_err(&fx, "n", -ENOENT);	       /* negative hit */
	advance(&fx, 11 * SEC);
	tb_set_error(&fx.tb, "a", -EAGAIN);
	get_ok(&fx, "a", CACHE_STALE, "12345"); /* stale, fetch (error) behind it */
	WAIT_STATS(&fx, st, st.fetch_errors == 1);
	get_ok(&fx, "b", CACHE_MISS, "123"); /* miss, fetch; n has its own bound */

	st = stats(&fx);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.stale_served, 1);
	assert_int_equal(st.negative_hits, 1);
	assert_int_equal(st.fetches, 4);
	assert_int_equal(st.fetch_errors, 1);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.bytes, 8);
	assert_int_equal(tb_calls(&fx.tb, "n"), 1);
	fx_done(&fx);
}

static int no_value_fetch(void *ctx, const char *key, struct secret **ret_value,
			  struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	return 0;
}

static void test_bad_calls(void **state)
{
	struct cache_config cfg = { .ttl_usec = SEC };
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;
	struct cache *c;

	assert_int_equal(cache_new(NULL, no_value_fetch, NULL, &c), -EINVAL);
	assert_int_equal(cache_new(&cfg, NULL, NULL, &c), -EINVAL);
	assert_int_equal(cache_new(&cfg, no_value_fetch, NULL, &c), 0);
	assert_int_equal(cache_get(c, NULL, &res, reason, sizeof(reason)), -EINVAL);
	/* A backend that claims success without a value is an I/O error. */
	assert_int_equal(cache_get(c, "x", &res, reason, sizeof(reason)), -EIO);
	assert_string_equal(reason, "backend returned no value");
	cache_free(c);
	cache_free(NULL);
}

struct stress {
	struct fx *fx;
	unsigned seed;
	int bad;
};

static void *stress_main(void *arg)
{
	struct stress *s = arg;

	for (int i = 0; i < 400; i++) {
		unsigned r = (unsigned)rand_r(&s->seed);
		char key[8], want[32];
		struct cache_result res;
		int ret;

		snprintf(key, sizeof(key), "k%u", r % 6);
		snprintf(want, sizeof(want), "value-of-%s", key);
		switch (r / 8 % 16) {
		case 0:
			cache_flush(s->fx->c, r % 2 ? key : NULL);
			break;
		case 1:
			cache_expire(s->fx->c);
			break;
		case 2:
			advance(s->fx, 7 * SEC);
			break;
		default:
			ret = cache_get(s->fx->c, key, &res, NULL, 0);
			if (ret != 0 || res.value->len != strlen(want) ||
			    memcmp(res.value->data, want, strlen(want)) != 0)
				s->bad++;
			if (ret == 0)
				secret_unref(res.value);
		}
	}
	return NULL;
}

/* Many readers, flushes, expiries and evictions at once; for the sanitizers. */
static void test_concurrent(void **state)
{
	enum { N = 8 };
	struct stress s[N];
	pthread_t tid[N];
	struct cache_stats st;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.max_entries = 4;
	fx.cfg.max_bytes = 40;
	fx_start(&fx);
	for (int i = 0; i < N; i++) {
		s[i] = (struct stress){ .fx = &fx, .seed = (unsigned)i + 1 };
		assert_int_equal(pthread_create(&tid[i], NULL, stress_main, &s[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_int_equal(s[i].bad, 0);
	}
	st = stats(&fx);
	assert_true(st.entries <= 4);
	assert_true(st.bytes <= 40);
	fx_done(&fx);
}

/*
 * One reader asking for names that do not exist (a lookup flood in
 * read-but-not-list mode) must never push out a value another reader
 * depends on, and the remembered misses stay within their own bound.
 */
static void test_negative_flood_keeps_values(void **state)
{
	char key[64];
	struct cache_stats st;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.max_entries = 2;
	fx.cfg.max_bytes = 64;
	fx.cfg.max_negative_entries = 8;
	fx.cfg.max_negative_bytes = 4096;
	fx_start(&fx);
	tb_set_value(&fx.tb, "a", "AAAA");
	tb_set_value(&fx.tb, "b", "BBBB");
	get_ok(&fx, "a", CACHE_MISS, "AAAA");
	get_ok(&fx, "b", CACHE_MISS, "BBBB");
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "miss/%d", i);
		assert_int_equal(get_err(&fx, key, -ENOENT), CACHE_MISS);
	}
	st = stats(&fx);
	assert_true(st.entries <= 2 + 8);

	/* The most recent misses are still remembered, the oldest were let go. */
	assert_int_equal(get_err(&fx, "miss/999", -ENOENT), CACHE_NEGATIVE);
	assert_int_equal(fx.tb.miss_calls, 1000);
	assert_int_equal(get_err(&fx, "miss/0", -ENOENT), CACHE_MISS);
	assert_int_equal(fx.tb.miss_calls, 1001);
	/* The store goes down: both values are still there to be served stale. */
	advance(&fx, 11 * SEC);
	tb_set_error(&fx.tb, "a", -EAGAIN);
	tb_set_error(&fx.tb, "b", -EAGAIN);
	get_ok(&fx, "a", CACHE_STALE, "AAAA");
	get_ok(&fx, "b", CACHE_STALE, "BBBB");
	WAIT_STATS(&fx, st, st.fetch_errors == 2);
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	assert_int_equal(tb_calls(&fx.tb, "b"), 2);

	fx_done(&fx);
}

/* Long names are bounded by their bytes too, not only by their count. */
static void test_negative_bytes_bound(void **state)
{
	char key[600];
	struct cache_stats st;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.max_entries = 2;
	fx.cfg.max_negative_entries = 1000;
	fx.cfg.max_negative_bytes = 2048;
	fx_start(&fx);
	tb_set_value(&fx.tb, "a", "AAAA");
	get_ok(&fx, "a", CACHE_MISS, "AAAA");
	memset(key, 'x', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	memcpy(key, "miss/", 5);
	for (int i = 0; i < 100; i++) {
		key[5] = (char)('A' + i % 26);
		key[6] = (char)('A' + i / 26);
		get_err(&fx, key, -ENOENT);
	}
	st = stats(&fx);
	/* 2048 bytes of names hold three of 599 bytes; plus the value. */
	assert_true(st.entries <= 1 + 3);
	get_ok(&fx, "a", CACHE_HIT, "AAAA");
	fx_done(&fx);
}

/*
 * A denial (EACCES: a token that may read but not list, or not read this
 * path) is remembered for the negative TTL like a not-found, and, like
 * it, never costs a value its place.
 */
static void test_denial_remembered(void **state)
{
	char key[64];
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.max_entries = 1;
	fx.cfg.max_negative_entries = 4;
	fx_start(&fx);
	tb_set_value(&fx.tb, "a", "AAAA");
	get_ok(&fx, "a", CACHE_MISS, "AAAA");
	tb_set_error(&fx.tb, "denied", -EACCES);
	assert_int_equal(get_err(&fx, "denied", -EACCES), CACHE_MISS);
	assert_int_equal(get_err(&fx, "denied", -EACCES), CACHE_NEGATIVE);
	assert_int_equal(tb_calls(&fx.tb, "denied"), 1);
	advance(&fx, 5 * SEC - 1);
	assert_int_equal(get_err(&fx, "denied", -EACCES), CACHE_NEGATIVE);
	assert_int_equal(tb_calls(&fx.tb, "denied"), 1);
	advance(&fx, 1);
	tb_set_value(&fx.tb, "denied", "granted");
	get_ok(&fx, "denied", CACHE_MISS, "granted");
	assert_int_equal(tb_calls(&fx.tb, "denied"), 2);
	/* Still only room for one value: "a" made way for it, as any LRU does. */
	get_ok(&fx, "denied", CACHE_HIT, "granted");

	/* Denials of many names: the value stays. */
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "d%d", i % 12);
		tb_set_error(&fx.tb, key, -EACCES);
		get_err(&fx, key, -EACCES);
	}
	get_ok(&fx, "denied", CACHE_HIT, "granted");
	fx_done(&fx);
}

/* ---- issue 10: stale-while-revalidate, one deadline, max_fetches, a full heap ---- */

/*
 * An expired value within its stale window: every reader gets it at once,
 * while the store is held, and the store is asked exactly once.
 */
static void test_swr_serves_at_once_one_refresh(void **state)
{
	enum { N = 16 };
	struct reader rd[N];
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	tb_set_value(&fx.tb, "a", "old");
	get_ok(&fx, "a", CACHE_MISS, "old");
	advance(&fx, 11 * SEC);
	tb_set_value(&fx.tb, "a", "new");
	tb_hold_next(&fx.tb, 1);
	for (int i = 0; i < N; i++)
		reader_start(&rd[i], fx.c, "a");
	/* All of them are answered while the refresh is still held at the gate. */
	for (int i = 0; i < N; i++) {
		reader_join(&rd[i]);
		assert_int_equal(rd[i].r, 0);
		assert_int_equal(rd[i].res.state, CACHE_STALE);
		assert_int_equal(rd[i].res.stale_err, 0);
		check_value(rd[i].res.value, "old");
		secret_unref(rd[i].res.value);
	}
	sem_wait(&fx.tb.entered);
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	st = stats(&fx);
	assert_int_equal(st.fetches, 2);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.stale_served, N);
	tb_release(&fx.tb);
	wait_value(&fx, "a", "new");
	get_ok(&fx, "a", CACHE_HIT, "new");
	assert_int_equal(tb_calls(&fx.tb, "a"), 2);
	fx_done(&fx);
}

/* A refresh that keeps failing transiently: stale, to the end of the window, one call a pause. */
static void test_swr_failing_refresh_keeps_stale(void **state)
{
	struct cache_stats st;
	struct fx fx;

	fx_init(&fx);
	tb_set_value(&fx.tb, "a", "old");
	get_ok(&fx, "a", CACHE_MISS, "old");
	tb_set_error(&fx.tb, "a", -ECONNREFUSED);
	for (int i = 1; i <= 5; i++) {
		advance(&fx, 20 * SEC); /* 10 s fresh, then 100 s stale */
		get_ok(&fx, "a", CACHE_STALE, "old");
		WAIT_STATS(&fx, st, st.fetch_errors == (uint64_t)i);
		get_ok(&fx, "a", CACHE_STALE, "old"); /* within the pause: no call */
		assert_int_equal(tb_calls(&fx.tb, "a"), 1 + i);
	}
	advance(&fx, 10 * SEC); /* past the window */
	assert_int_equal(get_err(&fx, "a", -ECONNREFUSED), CACHE_MISS);
	fx_done(&fx);
}

/*
 * Lets the held fetch go after 5 s unless stopped first: a reader that
 * waited for the store instead of its deadline then gets the value, and
 * the test fails rather than hangs.
 */
struct watchdog {
	pthread_t tid;
	sem_t stop;
	struct tb *tb;
};

static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	while (sem_timedwait(&w->stop, &until) < 0)
		if (errno == ETIMEDOUT) {
			tb_release(w->tb);
			break;
		}
	return NULL;
}

/* Nothing to serve: a reader waits at most its own deadline, not the store. */
static void test_deadline_of_the_request(void **state)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct cache_result res;
	struct cache_stats st;
	struct watchdog w;
	struct fx fx;

	fx_setup(&fx);
	fx.cfg.fetch_timeout_usec = 60 * SEC;
	fx_start(&fx);
	tb_set_value(&fx.tb, "slow", "finally");
	tb_hold_next(&fx.tb, 1);
	w.tb = &fx.tb;
	sem_init(&w.stop, 0, 0);
	assert_int_equal(pthread_create(&w.tid, NULL, watchdog_main, &w), 0);
	/* The store is held until the test lets it go: only the deadline ends this wait. */
	assert_int_equal(cache_get_until(fx.c, "slow", now_usec() + 20 * USEC_PER_MSEC, &res,
					 reason, sizeof(reason)),
			 -EAGAIN);
	assert_null(res.value);
	sem_wait(&fx.tb.entered);
	/* A deadline already past: the fetch it needs is joined, not waited for. */
	assert_int_equal(
		cache_get_until(fx.c, "slow", now_usec() - 1, &res, reason, sizeof(reason)),
		-EAGAIN);
	/* Past its deadline a second key still gets its fetch started. */
	tb_set_value(&fx.tb, "other", "o");
	assert_int_equal(cache_get_until(fx.c, "other", 1, &res, reason, sizeof(reason)), -EAGAIN);
	st = stats(&fx);
	assert_int_equal(st.fetches, 2);
	assert_int_equal(tb_calls(&fx.tb, "slow"), 1);
	sem_post(&w.stop);
	pthread_join(w.tid, NULL);
	sem_destroy(&w.stop);
	tb_release(&fx.tb);
	WAIT_STATS(&fx, st, st.bytes == strlen("finally") + 1);
	get_ok(&fx, "slow", CACHE_HIT, "finally");
	get_ok(&fx, "other", CACHE_HIT, "o");
	fx_done(&fx);
}

/* A backend that counts how many of its calls run at once. */
static struct {
	pthread_mutex_t lock;
	int inflight, max_inflight, calls;
} slow = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int slow_fetch(void *ctx, const char *key, struct secret **ret_value,
		      struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct timespec pause = { .tv_nsec = 2 * 1000 * 1000 };

	pthread_mutex_lock(&slow.lock);
	slow.calls++;
	if (++slow.inflight > slow.max_inflight)
		slow.max_inflight = slow.inflight;
	pthread_mutex_unlock(&slow.lock);
	nanosleep(&pause, NULL); /* a slow store: the others pile up meanwhile */
	pthread_mutex_lock(&slow.lock);
	slow.inflight--;
	pthread_mutex_unlock(&slow.lock);
	*ret_value = secret_dup(key, strlen(key));
	return *ret_value ? 0 : -ENOMEM;
}

static void test_max_fetches(void **state)
{
	enum { N = 100, MAX = 4 };
	static char keys[N][16];
	struct reader rd[N];
	struct cache_config cfg = { .ttl_usec = 10 * SEC, .fetch_timeout_usec = 60 * SEC };
	struct cache *c;
	long live0 = secret_live_count();

	slow.inflight = slow.max_inflight = slow.calls = 0;
	cache_set_max_fetches(MAX);
	assert_int_equal(cache_new(&cfg, slow_fetch, NULL, &c), 0);
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k/%d", i);
		reader_start(&rd[i], c, keys[i]);
	}
	for (int i = 0; i < N; i++) {
		reader_join(&rd[i]);
		assert_int_equal(rd[i].r, 0);
		check_value(rd[i].res.value, keys[i]);
		secret_unref(rd[i].res.value);
	}
	cache_free(c);
	cache_set_max_fetches(0);
	assert_int_equal(slow.calls, N);
	assert_true(slow.max_inflight <= MAX);
	assert_true(slow.max_inflight >= 1);
	assert_int_equal(secret_live_count(), live0);
}

/* Each fetch makes a new value of 4000 bytes in the locked heap. */
static int big_fetch(void *ctx, const char *key, struct secret **ret_value,
		     struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	*ret_value = secret_new(4000);
	if (!*ret_value) {
		snprintf(reason, reasonlen, "locked heap full");
		return -ENOMEM;
	}
	return 0;
}

/*
 * A full locked heap: the fetch that cannot get memory evicts the least
 * recently used values, of any cache, and is asked again.
 */
static void test_full_heap_evicts_and_retries(void **state)
{
	char hint[256], key[32];
	struct cache_config cfg = { .ttl_usec = 10 * SEC, .fetch_timeout_usec = 60 * SEC };
	struct cache *a, *b;
	struct cache_result res;
	struct cache_stats sa, sb;

	assert_true(secret_heap_init(65536, hint, sizeof(hint)) >= 0);
	assert_int_equal(cache_new(&cfg, big_fetch, NULL, &a), 0);
	assert_int_equal(cache_new(&cfg, big_fetch, NULL, &b), 0);
	/* Cache a fills the heap (no bound of its own), then b needs room. */
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "a/%d", i);
		assert_int_equal(cache_get(a, key, &res, NULL, 0), 0);
		assert_true(secret_is_locked(res.value));
		secret_unref(res.value);
	}
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "b/%d", i);
		assert_int_equal(cache_get(b, key, &res, NULL, 0), 0);
		secret_unref(res.value);
	}
	cache_get_stats(a, &sa);
	cache_get_stats(b, &sb);
	assert_true(sa.evictions > 0);
	/* The oldest went first: the last values of b are still there. */
	assert_non_null(res.value = cache_peek(b, "b/39"));
	secret_unref(res.value);
	assert_null(cache_peek(a, "a/0"));
	cache_free(a);
	cache_free(b);
	secret_heap_done();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transient_errors),
		cmocka_unit_test(test_fresh_hit),
		cmocka_unit_test(test_ttl_expiry),
		cmocka_unit_test(test_ttl_hint),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_stale_if_error),
		cmocka_unit_test(test_past_stale_window),
		cmocka_unit_test(test_non_transient_ends_entry),
		cmocka_unit_test(test_negative),
		cmocka_unit_test(test_lru_entries),
		cmocka_unit_test(test_lru_bytes),
		cmocka_unit_test(test_deadline_cold),
		cmocka_unit_test(test_deadline_stale),
		cmocka_unit_test(test_flush_in_flight),
		cmocka_unit_test(test_flush_generation),
		cmocka_unit_test_setup_teardown(test_wipe_evict, wipe_setup, wipe_teardown),
		cmocka_unit_test_setup_teardown(test_wipe_expire, wipe_setup, wipe_teardown),
		cmocka_unit_test_setup_teardown(test_wipe_flush, wipe_setup, wipe_teardown),
		cmocka_unit_test_setup_teardown(test_wipe_free, wipe_setup, wipe_teardown),
		cmocka_unit_test_setup_teardown(test_free_waits_for_fetch, wipe_setup,
						wipe_teardown),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_bad_calls),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_negative_flood_keeps_values),
		cmocka_unit_test(test_negative_bytes_bound),
		cmocka_unit_test(test_denial_remembered),
		cmocka_unit_test(test_swr_serves_at_once_one_refresh),
		cmocka_unit_test(test_swr_failing_refresh_keeps_stale),
		cmocka_unit_test(test_deadline_of_the_request),
		cmocka_unit_test(test_max_fetches),
		cmocka_unit_test(test_full_heap_evicts_and_retries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
