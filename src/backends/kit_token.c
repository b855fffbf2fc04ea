/*
 * kit_token.c - the token source (see kit.h): one bearer token, or any
 * credential with an expiry, shared by every request of a backend.
 *
 * The point is that a token endpoint sees one request per refresh however
 * many readers need the token: one caller at a time fetches (refreshing is
 * the flag), the others either go on with the current token, while it still
 * works, or wait for the new one, never past wait_usec.  A failed refresh
 * is not tried again before a jittered, doubling backoff, so a token
 * endpoint that is down is not hammered by every read.  A generation number
 * names each token: a 401 invalidates only the generation it was sent with,
 * and a refresh or renewal that finds a newer generation installed drops
 * its result.  Tokens are struct secret buffers (locked, wiped by the last
 * unref), so the one being replaced is wiped once no request holds it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/kit.h"
#include "secretfs/util.h"

#define DEFAULT_REFRESH_BEFORE_USEC (5 * 60 * USEC_PER_SEC)
#define DEFAULT_RETRY_MIN_USEC	    (1 * USEC_PER_SEC)
#define DEFAULT_RETRY_MAX_USEC	    (60 * USEC_PER_SEC)
#define DEFAULT_WAIT_USEC	    (30 * USEC_PER_SEC)

struct kit_token_source {
	struct kit_token_config cfg;
	char what[96];

	pthread_mutex_t lock;
	pthread_cond_t cond;	/* a refresh ended; CLOCK_MONOTONIC */
	struct secret *tok;	/* protected by lock */
	uint64_t expires_usec;	/* protected by lock: CLOCK_REALTIME, 0 = never */
	uint64_t gen;		/* protected by lock: bumped for every new token */
	bool forced;		/* protected by lock: the store refused this generation */
	bool refreshing;	/* protected by lock: a fetch is in flight */
	unsigned failures;	/* protected by lock: failed refreshes in a row */
	uint64_t next_try_usec; /* protected by lock: monotonic; no refresh before */
	int last_err;		/* protected by lock */
	char last_why[BACKEND_REASON_MAX]; /* protected by lock */
};

int kit_token_new(const struct kit_token_config *cfg, struct kit_token_source **ret)
{
	struct kit_token_source *ts = calloc(1, sizeof(*ts));
	pthread_condattr_t ca;

	if (!ts)
		return -ENOMEM;
	ts->cfg = *cfg;
	snprintf(ts->what, sizeof(ts->what), "%s", cfg->what ? cfg->what : "the token");
	ts->cfg.what = ts->what;
	if (!ts->cfg.refresh_before_usec)
		ts->cfg.refresh_before_usec = DEFAULT_REFRESH_BEFORE_USEC;
	if (!ts->cfg.retry_min_usec)
		ts->cfg.retry_min_usec = DEFAULT_RETRY_MIN_USEC;
	if (!ts->cfg.retry_max_usec)
		ts->cfg.retry_max_usec = DEFAULT_RETRY_MAX_USEC;
	if (ts->cfg.retry_max_usec < ts->cfg.retry_min_usec)
		ts->cfg.retry_max_usec = ts->cfg.retry_min_usec;
	if (!ts->cfg.wait_usec)
		ts->cfg.wait_usec = DEFAULT_WAIT_USEC;
	pthread_mutex_init(&ts->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ts->cond, &ca);
	pthread_condattr_destroy(&ca);
	*ret = ts;
	return 0;
}

void kit_token_free(struct kit_token_source *ts)
{
	if (!ts)
		return;
	secret_unref(ts->tok);
	explicit_bzero(ts->last_why, sizeof(ts->last_why));
	pthread_mutex_destroy(&ts->lock);
	pthread_cond_destroy(&ts->cond);
	free(ts);
}

/* Installs @token as a new generation; lock held. */
static uint64_t install_locked(struct kit_token_source *ts, struct secret *token,
			       uint64_t expires_usec)
{
	secret_unref(ts->tok);
	ts->tok = token;
	ts->expires_usec = expires_usec;
	ts->forced = false;
	ts->failures = 0;
	ts->last_err = 0;
	ts->last_why[0] = '\0';
	ts->next_try_usec = 0;
	return ++ts->gen;
}

uint64_t kit_token_set(struct kit_token_source *ts, struct secret *token, uint64_t expires_usec)
{
	uint64_t gen;

	pthread_mutex_lock(&ts->lock);
	gen = install_locked(ts, token, expires_usec);
	pthread_cond_broadcast(&ts->cond);
	pthread_mutex_unlock(&ts->lock);
	return gen;
}

bool kit_token_extend(struct kit_token_source *ts, uint64_t gen, uint64_t expires_usec)
{
	bool current;

	pthread_mutex_lock(&ts->lock);
	current = ts->tok && ts->gen == gen;
	if (current)
		ts->expires_usec = expires_usec;
	pthread_mutex_unlock(&ts->lock);
	return current;
}

void kit_token_invalidate(struct kit_token_source *ts, uint64_t gen)
{
	pthread_mutex_lock(&ts->lock);
	if (ts->gen == gen)
		ts->forced = true;
	pthread_mutex_unlock(&ts->lock);
}

/* The wait after the failures-th failure in a row: half to all of min * 2^(failures-1). */
static uint64_t retry_delay(const struct kit_token_source *ts)
{
	uint64_t cap = ts->cfg.retry_min_usec;

	for (unsigned i = 1; i < ts->failures && cap < ts->cfg.retry_max_usec; i++)
		cap *= 2;
	if (cap > ts->cfg.retry_max_usec)
		cap = ts->cfg.retry_max_usec;
	return cap / 2 + kit_random_below(cap / 2 + 1);
}

/* Waits for the refresh in flight until @deadline (monotonic); false when it passed. */
static bool wait_locked(struct kit_token_source *ts, uint64_t deadline)
{
	struct timespec ts_abs = {
		.tv_sec = (time_t)(deadline / USEC_PER_SEC),
		.tv_nsec = (long)(deadline % USEC_PER_SEC) * 1000,
	};

	if (now_usec() >= deadline)
		return false;
	pthread_cond_timedwait(&ts->cond, &ts->lock, &ts_abs);
	return true;
}

/*
 * Runs the fetch without the lock, then records what came of it.  A token
 * that arrives after a newer one was installed meanwhile is dropped.
 * Returns the fetch's result; lock held on entry and exit.
 */
static int refresh_locked(struct kit_token_source *ts, char *why, size_t whylen)
{
	struct secret *tok = NULL;
	uint64_t exp = 0, gen = ts->gen;
	int r;

	ts->refreshing = true;
	pthread_mutex_unlock(&ts->lock);
	r = ts->cfg.fetch(ts->cfg.ctx, &tok, &exp, why, whylen);
	pthread_mutex_lock(&ts->lock);
	ts->refreshing = false;
	pthread_cond_broadcast(&ts->cond);
	if (r >= 0) {
		if (ts->gen == gen)
			install_locked(ts, tok, exp);
		else
			secret_unref(tok); /* a newer token came meanwhile */
		return 0;
	}
	ts->failures++;
	ts->last_err = r;
	snprintf(ts->last_why, sizeof(ts->last_why), "%s", why);
	ts->next_try_usec = now_usec() + retry_delay(ts);
	return r;
}

int kit_token_get(struct kit_token_source *ts, struct kit_token_ref *ret, char *reason,
		  size_t reasonlen)
{
	uint64_t deadline = now_usec() + ts->cfg.wait_usec;
	char why[BACKEND_REASON_MAX] = "";
	bool refreshed = false;
	int r;

	pthread_mutex_lock(&ts->lock);
	for (;;) {
		uint64_t now = realtime_usec(), exp = ts->expires_usec;
		bool usable = ts->tok && (!exp || exp > now);
		bool fresh =
			usable && !ts->forced && (!exp || exp - now > ts->cfg.refresh_before_usec);
		bool forced = ts->forced;

		if (fresh || (usable && (!ts->cfg.fetch || refreshed)))
			break;
		if (!ts->cfg.fetch || (refreshed && !usable)) {
			r = ts->tok ? -EACCES : -ENOKEY;
			pthread_mutex_unlock(&ts->lock);
			snprintf(reason, reasonlen, "%s %s", ts->what,
				 r == -ENOKEY ? "is missing" : "has expired");
			return r;
		}
		if (ts->refreshing) {
			if (usable && !forced)
				break; /* the current one still works meanwhile */
			if (!wait_locked(ts, deadline)) {
				pthread_mutex_unlock(&ts->lock);
				snprintf(reason, reasonlen, "%s: a refresh is taking too long",
					 ts->what);
				return -ETIMEDOUT;
			}
			continue;
		}
		if (!forced && ts->last_err && now_usec() < ts->next_try_usec) {
			if (usable)
				break;
			r = ts->last_err;
			snprintf(reason, reasonlen, "%s could not be refreshed: %s", ts->what,
				 ts->last_why);
			pthread_mutex_unlock(&ts->lock);
			return r;
		}
		r = refresh_locked(ts, why, sizeof(why));
		if (r >= 0) {
			refreshed = true;
			continue;
		}
		ts->forced = false;
		if (usable && !forced)
			break; /* the old one still works for a while */
		pthread_mutex_unlock(&ts->lock);
		snprintf(reason, reasonlen, "%s could not be refreshed: %s", ts->what, why);
		return r;
	}
	ret->s = secret_ref(ts->tok);
	ret->gen = ts->gen;
	ret->expires_usec = ts->expires_usec;
	pthread_mutex_unlock(&ts->lock);
	return 0;
}

void kit_token_put(struct kit_token_ref *r)
{
	secret_unref(r->s);
	*r = (struct kit_token_ref){ 0 };
}

void kit_token_state(struct kit_token_source *ts, struct kit_token_state *ret)
{
	pthread_mutex_lock(&ts->lock);
	*ret = (struct kit_token_state){
		.have = ts->tok != NULL,
		.gen = ts->gen,
		.expires_usec = ts->expires_usec,
		.failures = ts->failures,
		.last_err = ts->last_err,
	};
	snprintf(ret->last_why, sizeof(ret->last_why), "%s", ts->last_why);
	pthread_mutex_unlock(&ts->lock);
}
