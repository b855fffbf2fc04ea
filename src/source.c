/*
 * source.c - a backend plus the caches in front of it.
 *
 * The cache calls the backend through the two functions below, which time
 * every call and count it by outcome for the metrics.  They run on the
 * cache's fetch threads only, so a cache hit never reaches them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretfs/log.h"
#include "secretfs/source.h"
#include "secretfs/util.h"

/* How long a value named by number or id stays: until evicted, in practice (ten years). */
#define PINNED_TTL_USEC (UINT64_C(10) * 365 * 24 * 3600 * 1000000)

static void op_record(struct source_op_metrics *m, int r, uint64_t start_usec)
{
	uint64_t end = now_usec();

	metrics_errno_count(&m->outcomes, r < 0 ? r : 0);
	metrics_histogram_observe(&m->duration, end > start_usec ? end - start_usec : 0);
}

/*
 * A malformed answer (a 200 whose body is not the document asked for: a
 * proxy gone wrong) is transient, so a cached value is served stale over it;
 * it is still worth an operator's attention, so it is said loudly, at most
 * once a window per key, counted, and never quoted.
 */
static void note_malformed(struct source *s, const char *key, const char *reason)
{
	unsigned more = 0;
	char tail[48] = "";

	__atomic_add_fetch(&s->malformed, 1, __ATOMIC_RELAXED);
	if (!log_limit("malformed", key, -EBADMSG, now_usec(), &more))
		return;
	if (more)
		snprintf(tail, sizeof(tail), " (%u similar suppressed)", more);
	log_error("%s: the store answered '%s' with a malformed body (a proxy or the store "
		  "is broken; a cached value, if any, is served stale meanwhile): %s%s",
		  s->backend->source, key, reason[0] ? reason : "malformed", tail);
}

/*
 * Holds backends to docs/design.md section 8's error set (backend_error_normalise),
 * so the cache's idea of "transient" and the reader's errno mean the same
 * for every store.  Metrics see the backend's own errno (EBADMSG included).
 */
static int backend_result(struct source *s, struct source_op_metrics *m, const char *key, int r,
			  uint64_t start_usec, const char *reason)
{
	op_record(m, r, start_usec);
	if (r == -EBADMSG)
		note_malformed(s, key[0] ? key : "/", reason);
	return backend_error_normalise(r);
}

static int fetch_value(void *ctx, const char *key, struct secret **ret_value,
		       struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct source *s = ctx;
	struct backend *b = s->backend;
	uint64_t start = now_usec();
	int r;

	r = b->ops->fetch(b, key, ret_value, ret_info, reason, reasonlen);
	return backend_result(s, &s->fetch_metrics, key, r, start, reason);
}

/* A key of the at and pinned caches: "SELECTOR/ID" (a selector holds no '/'). */
static int fetch_at(void *ctx, const char *key, struct secret **ret_value,
		    struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct source *s = ctx;
	struct backend *b = s->backend;
	const char *slash = strchr(key, '/');
	char spelled[SELECTOR_ARG_MAX + 8];
	struct selector sel;
	uint64_t start = now_usec();
	size_t n;
	int r;

	n = slash ? (size_t)(slash - key) : 0;
	if (!slash || n >= sizeof(spelled))
		return -EINVAL; /* only source_value_at() makes keys */
	memcpy(spelled, key, n);
	spelled[n] = '\0';
	if (selector_parse(spelled, &sel) < 0)
		return -EINVAL;
	r = b->ops->fetch_at(b, slash + 1, &sel, ret_value, ret_info, reason, reasonlen);
	return backend_result(s, &s->fetch_metrics, slash + 1, r, start, reason);
}

static int fetch_listing(void *ctx, const char *key, struct secret **ret_value,
			 struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct source *s = ctx;
	struct backend *b = s->backend;
	uint64_t start = now_usec();
	int r;

	*ret_info = (struct backend_info){ .version = "" };
	r = b->ops->list(b, key, ret_value, reason, reasonlen);
	return backend_result(s, &s->list_metrics, key, r, start, reason);
}

/*
 * How long a listing is fresh.  AWS's ListSecrets has a small quota and
 * lags about 5 minutes behind, so the AWS stores' listings keep their own
 * time (aws_list_ttl); every other store's follow the values' ttl.
 */
static uint64_t listing_ttl(const struct config *cfg, const struct backend *b)
{
	return strncmp(b->ops->scheme, "aws-", 4) == 0 ? cfg->aws_list_ttl_usec : cfg->ttl_usec;
}

static void on_changed(void *ctx)
{
	struct source *s = ctx;

	log_info("%s: store changed, cache flushed", s->backend->source);
	source_flush(s);
}

static void on_error(void *ctx, const char *reason)
{
	log_error("%s", reason);
}

/* A stale serve over a failure is a failure too: said at most once a second. */
/* A stale serve is a failure too: said once a window per path (log_limit). */
static void log_stale(const struct source *s, const char *id, const char *reason)
{
	unsigned more = 0;
	char tail[48] = "";

	if (!log_limit("stale", id, 0, now_usec(), &more))
		return;
	if (more)
		snprintf(tail, sizeof(tail), " (%u similar suppressed)", more);
	log_warn("%s: serving a stale value of '%s': %s%s", s->backend->source, id,
		 reason[0] ? reason : "the store failed", tail);
}

/* A background refresh failed: nobody waited for it, so it is said here. */
static void on_stale(void *ctx, const char *key, int err, const char *reason)
{
	log_stale(ctx, key, reason);
}

int source_open(const struct config *cfg, struct source **ret, char *reason, size_t reasonlen)
{
	struct cache_config cc = {
		.ttl_usec = cfg->ttl_usec,
		.stale_usec = cfg->stale_ttl_usec,
		.negative_usec = cfg->negative_ttl_usec,
		.fetch_timeout_usec = cfg->fetch_timeout_usec,
		.max_entries = cfg->cache_max_entries,
		.max_bytes = cfg->cache_max_bytes,
		/*
		 * Remembered not-found and denied answers: as many again, and
		 * their names within the value budget, apart from the values.
		 */
		.max_negative_entries = cfg->cache_max_entries,
		.max_negative_bytes = cfg->cache_max_bytes,
	};
	struct backend_events ev = { .changed = on_changed, .error = on_error };
	struct source *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ev.ctx = s;
	r = backend_open(cfg->source, cfg, &ev, &s->backend, reason, reasonlen);
	if (r < 0)
		goto fail;
	cache_set_max_fetches((unsigned)cfg->max_fetches);
	s->fetch_timeout_usec = cfg->fetch_timeout_usec;
	cc.stale_event = on_stale;
	cc.stale_event_ctx = s;
	r = cache_new(&cc, fetch_value, s, &s->values);
	if (r >= 0 && s->backend->ops->list) {
		/*
		 * Listings hold names, not values: they live in the ordinary heap
		 * (ns_listing_from_*), with a byte budget of their own as large as
		 * the values'.
		 */
		cc.ttl_usec = listing_ttl(cfg, s->backend);
		cc.stale_event = NULL; /* a listing's failure is not a value's */
		r = cache_new(&cc, fetch_listing, s, &s->listings);
	}
	if (r >= 0 && s->backend->ops->fetch_at) {
		cc.ttl_usec = cfg->ttl_usec;
		cc.stale_event = on_stale;
		r = cache_new(&cc, fetch_at, s, &s->at);
		/* A number or an id names the same bytes forever: kept until evicted. */
		cc.ttl_usec = PINNED_TTL_USEC;
		if (r >= 0)
			r = cache_new(&cc, fetch_at, s, &s->pinned);
	}
	if (r < 0) {
		snprintf(reason, reasonlen, "cannot set up the cache: %s", strerror(-r));
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	source_close(s);
	return r;
}

int source_start(struct source *s, char *reason, size_t reasonlen)
{
	if (!s->backend->ops->start)
		return 0;
	return s->backend->ops->start(s->backend, reason, reasonlen);
}

void source_close(struct source *s)
{
	if (!s)
		return;
	/* Stop the backend's threads first: they may flush the caches. */
	if (s->backend && s->backend->ops->stop)
		s->backend->ops->stop(s->backend);
	if (s->values)
		cache_free(s->values);
	if (s->listings)
		cache_free(s->listings);
	if (s->at)
		cache_free(s->at);
	if (s->pinned)
		cache_free(s->pinned);
	backend_close(s->backend);
	free(s);
}

uint64_t source_deadline(const struct source *s)
{
	uint64_t now = now_usec();

	return now > UINT64_MAX - s->fetch_timeout_usec ? UINT64_MAX : now + s->fetch_timeout_usec;
}

int source_value(struct source *s, const char *id, struct cache_result *ret, char *reason,
		 size_t reasonlen)
{
	return source_value_until(s, id, 0, ret, reason, reasonlen);
}

int source_value_until(struct source *s, const char *id, uint64_t deadline_usec,
		       struct cache_result *ret, char *reason, size_t reasonlen)
{
	int r = cache_get_until(s->values, id, deadline_usec, ret, reason, reasonlen);

	/* One that only waits for a refresh (stale-while-revalidate) is not a failure. */
	if (r >= 0 && ret->state == CACHE_STALE && ret->stale_err)
		log_stale(s, id, reason);
	return r;
}

int source_listing(struct source *s, const char *prefix, struct cache_result *ret, char *reason,
		   size_t reasonlen)
{
	return source_listing_until(s, prefix, 0, ret, reason, reasonlen);
}

int source_listing_until(struct source *s, const char *prefix, uint64_t deadline_usec,
			 struct cache_result *ret, char *reason, size_t reasonlen)
{
	if (!s->listings)
		return -ENOSYS;
	return cache_get_until(s->listings, prefix, deadline_usec, ret, reason, reasonlen);
}

int source_value_at(struct source *s, const char *id, const struct selector *sel,
		    uint64_t deadline_usec, struct cache_result *ret, char *reason, size_t reasonlen)
{
	char spelled[SELECTOR_ARG_MAX + 8];
	_cleanup_free_ char *key = NULL;
	int r;

	if (sel->kind == SELECTOR_CURRENT)
		return source_value_until(s, id, deadline_usec, ret, reason, reasonlen);
	if (!s->at) {
		snprintf(reason, reasonlen, "%s keeps no versions", s->backend->ops->scheme);
		return -ENOENT;
	}
	selector_format(sel, spelled, sizeof(spelled));
	if (asprintf(&key, "%s/%s", spelled, id) < 0) {
		key = NULL;
		return -ENOMEM;
	}
	r = cache_get_until(selector_is_pinned(sel) ? s->pinned : s->at, key, deadline_usec, ret,
			    reason, reasonlen);
	if (r >= 0 && ret->state == CACHE_STALE && ret->stale_err)
		log_stale(s, key, reason);
	return r;
}

int source_versions(struct source *s, const char *id, struct json_t **ret_list, char *reason,
		    size_t reasonlen)
{
	struct backend *b = s->backend;
	uint64_t start = now_usec();
	int r;

	if (!b->ops->list_versions) {
		snprintf(reason, reasonlen, "%s cannot list versions", b->ops->scheme);
		return -ENOENT;
	}
	r = b->ops->list_versions(b, id, ret_list, reason, reasonlen);
	return backend_result(s, &s->list_metrics, id, r, start, reason);
}

/* Whether path @a is @b or below it. */
static bool path_under(const char *a, const char *b)
{
	size_t n = strlen(b);

	return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

static size_t flush_versions_of(struct cache *c, const char *path)
{
	char **keys = NULL;
	size_t n = 0, dropped = 0;

	if (!c || cache_keys(c, &keys, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *id = strchr(keys[i], '/');

		/* the secret itself, one below it, or the object whose key @path names */
		if (id && (path_under(id + 1, path) || path_under(path, id + 1))) {
			cache_flush(c, keys[i]);
			dropped++;
		}
		free(keys[i]);
	}
	free(keys);
	return dropped;
}

size_t source_flush_versions(struct source *s, const char *path)
{
	return flush_versions_of(s->at, path) + flush_versions_of(s->pinned, path);
}

void source_flush(struct source *s)
{
	cache_flush(s->values, NULL);
	if (s->listings)
		cache_flush(s->listings, NULL);
	if (s->at)
		cache_flush(s->at, NULL);
	if (s->pinned)
		cache_flush(s->pinned, NULL);
	if (s->backend->ops->forget)
		s->backend->ops->forget(s->backend);
}

void source_revalidate(struct source *s)
{
	if (s->backend->ops->revalidate)
		s->backend->ops->revalidate(s->backend);
}

void source_expire(struct source *s)
{
	cache_expire(s->values);
	if (s->listings)
		cache_expire(s->listings);
	if (s->at)
		cache_expire(s->at);
	if (s->pinned)
		cache_expire(s->pinned);
}
