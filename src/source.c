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
#include "secretfs/namespace.h"
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
		  s->uri, key, reason[0] ? reason : "malformed", tail);
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
	struct backend *b = source_backend(s);
	uint64_t start = now_usec();
	int r;

	if (!b)
		return -EAGAIN; /* an optional source went down between the route and here */
	r = b->ops->fetch(b, key, ret_value, ret_info, reason, reasonlen);
	return backend_result(s, &s->fetch_metrics, key, r, start, reason);
}

/* A key of the at and pinned caches: "SELECTOR/ID" (a selector holds no '/'). */
static int fetch_at(void *ctx, const char *key, struct secret **ret_value,
		    struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct source *s = ctx;
	struct backend *b = source_backend(s);
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
	if (!b || !b->ops->fetch_at)
		return b ? -ENOENT : -EAGAIN;
	r = b->ops->fetch_at(b, slash + 1, &sel, ret_value, ret_info, reason, reasonlen);
	return backend_result(s, &s->fetch_metrics, slash + 1, r, start, reason);
}

static int fetch_listing(void *ctx, const char *key, struct secret **ret_value,
			 struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct source *s = ctx;
	struct backend *b = source_backend(s);
	uint64_t start = now_usec();
	int r;

	*ret_info = (struct backend_info){ .version = "" };
	if (!b || !b->ops->list)
		return b ? -ENOSYS : -EAGAIN;
	r = b->ops->list(b, key, ret_value, reason, reasonlen);
	return backend_result(s, &s->list_metrics, key, r, start, reason);
}

/*
 * How long a listing is fresh.  AWS's ListSecrets has a small quota and
 * lags about 5 minutes behind, so the AWS stores' listings keep their own
 * time (aws_list_ttl); every other store's follow the values' ttl.
 */
static uint64_t listing_ttl(const struct config *cfg)
{
	return strncmp(cfg->source, "aws-", 4) == 0 ? cfg->aws_list_ttl_usec : cfg->ttl_usec;
}

static void on_changed(void *ctx)
{
	struct source *s = ctx;

	log_info("%s: store changed, cache flushed", s->uri);
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
	log_warn("%s: serving a stale value of '%s': %s%s", s->uri, id,
		 reason[0] ? reason : "the store failed", tail);
}

/* A background refresh failed: nobody waited for it, so it is said here. */
static void on_stale(void *ctx, const char *key, int err, const char *reason)
{
	log_stale(ctx, key, reason);
}

/* An optional source that is down tries again after 1s, 2s, 4s, ... at most 5 minutes. */
#define RETRY_FIRST_USEC (1 * USEC_PER_SEC)
#define RETRY_MAX_USEC	 (300 * USEC_PER_SEC)

static int leaf_backend_open(struct source *s, const struct config *cfg, struct backend **ret,
			     char *reason, size_t reasonlen)
{
	struct backend_events ev = { .changed = on_changed, .error = on_error, .ctx = s };

	return backend_open(cfg->source, cfg, &ev, ret, reason, reasonlen);
}

/* "source 'NAME': " before @reason: which of several stores failed. */
static void prefix_reason(char *reason, size_t reasonlen, const char *name)
{
	char *was = strdup(reason);

	if (was) {
		snprintf(reason, reasonlen, "source '%s': %s", name, was);
		free(was);
	}
}

/*
 * One store and its caches.  The caches exist before the backend, so an
 * optional source that is down at start has them when it comes up; its
 * listing cache exists then even if the backend turns out unable to list.
 */
static int leaf_open(const struct config *cfg, const struct config_source *cs, struct source **ret,
		     char *reason, size_t reasonlen)
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
	struct backend *b = NULL;
	struct source *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->uri = strdup(cfg->source);
	if (cs) {
		s->name = strdup(cs->name);
		s->prefix = strdup(cs->prefix);
		s->optional = cs->optional;
	}
	if (!s->uri || (cs && (!s->name || !s->prefix))) {
		r = -ENOMEM;
		snprintf(reason, reasonlen, "out of memory");
		goto fail;
	}
	s->fetch_timeout_usec = cfg->fetch_timeout_usec;
	cc.stale_event = on_stale;
	cc.stale_event_ctx = s;
	r = cache_new(&cc, fetch_value, s, &s->values);
	if (r >= 0) {
		/*
		 * Listings hold names, not values: they live in the ordinary heap
		 * (ns_listing_from_*), with a byte budget of their own as large as
		 * the values'.
		 */
		cc.ttl_usec = listing_ttl(cfg);
		cc.stale_event = NULL; /* a listing's failure is not a value's */
		r = cache_new(&cc, fetch_listing, s, &s->listings);
	}
	/* Before the backend is known (an optional one may be down): any store may keep versions.
	 */
	if (r >= 0) {
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
	r = leaf_backend_open(s, cfg, &b, reason, reasonlen);
	if (r < 0 && !s->optional) {
		if (s->name)
			prefix_reason(reason, reasonlen, s->name);
		goto fail;
	}
	if (r < 0) {
		log_error("source '%s' (optional) is down, shown as an empty directory and tried "
			  "again: %s",
			  s->name, reason);
		snprintf(s->down_reason, sizeof(s->down_reason), "%s", reason);
		reason[0] = '\0';
		s->retry_backoff_usec = RETRY_FIRST_USEC;
		s->retry_usec = now_usec() + RETRY_FIRST_USEC;
	}
	if (b && !b->ops->list) {
		cache_free(s->listings);
		s->listings = NULL;
	}
	s->backend = b;
	*ret = s;
	return 0;
fail:
	source_close(s);
	return r;
}

int source_open(const struct config *cfg, struct source **ret, char *reason, size_t reasonlen)
{
	struct source *router;
	int r;

	cache_set_max_fetches((unsigned)cfg->max_fetches);
	if (!cfg->nsources)
		return leaf_open(cfg, NULL, ret, reason, reasonlen);

	router = calloc(1, sizeof(*router));
	if (!router)
		return -ENOMEM;
	router->uri = strdup("several stores");
	router->children = calloc(cfg->nsources, sizeof(*router->children));
	if (!router->uri || !router->children) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->nsources; i++) {
		struct config *own = calloc(1, sizeof(*own));
		struct source *child = NULL;

		r = own ? config_source_config(cfg, i, own, reason, reasonlen) : -ENOMEM;
		if (r < 0) {
			free(own);
			goto fail;
		}
		r = leaf_open(own, &cfg->sources[i], &child, reason, reasonlen);
		if (r < 0) {
			config_done(own);
			free(own);
			goto fail;
		}
		child->cfg = own; /* the backend may keep pointers into it */
		router->children[router->nchildren++] = child;
		if (child->fetch_timeout_usec > router->fetch_timeout_usec)
			router->fetch_timeout_usec = child->fetch_timeout_usec;
	}
	*ret = router;
	return 0;
fail:
	source_close(router);
	return r;
}

struct source *source_route(struct source *s, const char *id, const char **ret_rest)
{
	size_t len;

	if (!s->children) {
		*ret_rest = id;
		return s;
	}
	if (!id[0]) {
		*ret_rest = "";
		return NULL;
	}
	len = strcspn(id, "/");
	for (size_t i = 0; i < s->nchildren; i++) {
		struct source *c = s->children[i];

		if (strlen(c->prefix) == len && strncmp(c->prefix, id, len) == 0) {
			*ret_rest = id + len + (id[len] == '/');
			return c;
		}
	}
	*ret_rest = NULL;
	return NULL;
}

bool source_no_folders(struct source *s, const char *id)
{
	const char *rest;
	struct source *leaf = source_route(s, id, &rest);
	struct backend *b = leaf ? source_backend(leaf) : NULL;

	return b && b->ops->no_folders;
}

static int leaf_start(struct source *s, char *reason, size_t reasonlen)
{
	struct backend *b = source_backend(s);
	int r;

	if (!b || !b->ops->start)
		return 0;
	r = b->ops->start(b, reason, reasonlen);
	if (r < 0 && s->name)
		prefix_reason(reason, reasonlen, s->name);
	return r;
}

int source_start(struct source *s, char *reason, size_t reasonlen)
{
	int r;

	if (!s->children)
		return leaf_start(s, reason, reasonlen);
	for (size_t i = 0; i < s->nchildren; i++) {
		r = leaf_start(s->children[i], reason, reasonlen);
		if (r < 0)
			return r;
	}
	return 0;
}

void source_close(struct source *s)
{
	struct backend *b;

	if (!s)
		return;
	for (size_t i = 0; i < s->nchildren; i++)
		source_close(s->children[i]);
	free(s->children);
	b = source_backend(s);
	/* Stop the backend's threads first: they may flush the caches. */
	if (b && b->ops->stop)
		b->ops->stop(b);
	if (s->values)
		cache_free(s->values);
	if (s->listings)
		cache_free(s->listings);
	if (s->at)
		cache_free(s->at);
	if (s->pinned)
		cache_free(s->pinned);
	backend_close(b);
	if (s->cfg) {
		config_done(s->cfg);
		free(s->cfg);
	}
	free(s->name);
	free(s->prefix);
	free(s->uri);
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
	const char *rest;
	struct source *leaf = source_route(s, id, &rest);
	int r;

	/* The root of several stores, a prefix nobody has, a source that is down: nothing. */
	if (!leaf || !source_backend(leaf))
		return -ENOENT;
	r = cache_get_until(leaf->values, rest, deadline_usec, ret, reason, reasonlen);
	/* One that only waits for a refresh (stale-while-revalidate) is not a failure. */
	if (r >= 0 && ret->state == CACHE_STALE && ret->stale_err)
		log_stale(leaf, id, reason);
	return r;
}

int source_listing(struct source *s, const char *prefix, struct cache_result *ret, char *reason,
		   size_t reasonlen)
{
	return source_listing_until(s, prefix, 0, ret, reason, reasonlen);
}

/* The root of several stores: their prefixes, as folders. */
static int root_listing(struct source *s, struct cache_result *ret)
{
	const char **keys = calloc(s->nchildren, sizeof(*keys));
	char **owned = calloc(s->nchildren, sizeof(*owned));
	struct secret *v = NULL;
	int r = -ENOMEM;

	if (!keys || !owned)
		goto out;
	for (size_t i = 0; i < s->nchildren; i++) {
		if (asprintf(&owned[i], "%s/", s->children[i]->prefix) < 0) {
			owned[i] = NULL;
			goto out;
		}
		keys[i] = owned[i];
	}
	r = ns_listing_from_keys(keys, s->nchildren, &v);
	if (r >= 0)
		*ret = (struct cache_result){ .value = v, .state = CACHE_HIT };
out:
	for (size_t i = 0; owned && i < s->nchildren; i++)
		free(owned[i]);
	free(owned);
	free(keys);
	return r;
}

int source_listing_until(struct source *s, const char *prefix, uint64_t deadline_usec,
			 struct cache_result *ret, char *reason, size_t reasonlen)
{
	const char *rest;
	struct source *leaf = source_route(s, prefix, &rest);
	struct backend *b;
	struct secret *v;
	int r;

	if (!leaf)
		return rest ? root_listing(s, ret) : -ENOENT;
	b = source_backend(leaf);
	if (!b && rest[0])
		return -ENOENT;
	if (!b) {
		/* An optional source that is down: an empty directory. */
		r = ns_listing_from_keys(NULL, 0, &v);
		if (r >= 0)
			*ret = (struct cache_result){ .value = v, .state = CACHE_HIT };
		return r;
	}
	if (!b->ops->list || !leaf->listings)
		return -ENOSYS;
	return cache_get_until(leaf->listings, rest, deadline_usec, ret, reason, reasonlen);
}

int source_value_at(struct source *s, const char *id, const struct selector *sel,
		    uint64_t deadline_usec, struct cache_result *ret, char *reason,
		    size_t reasonlen)
{
	char spelled[SELECTOR_ARG_MAX + 8];
	_cleanup_free_ char *key = NULL;
	struct backend *b;
	const char *rest;
	int r;

	if (sel->kind == SELECTOR_CURRENT)
		return source_value_until(s, id, deadline_usec, ret, reason, reasonlen);
	/* The source of several that holds @id, and @id within it. */
	s = source_route(s, id, &rest);
	b = s ? source_backend(s) : NULL;
	if (!b)
		return -ENOENT;
	id = rest;
	if (!s->at || !b->ops->fetch_at) {
		snprintf(reason, reasonlen, "%s keeps no versions", b->ops->scheme);
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
	const char *rest;
	struct backend *b;
	uint64_t start = now_usec();
	int r;

	/* The source of several that holds @id, and @id within it. */
	s = source_route(s, id, &rest);
	b = s ? source_backend(s) : NULL;
	if (!b)
		return -ENOENT;
	id = rest;
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
	struct backend *b = source_backend(s);

	for (size_t i = 0; i < s->nchildren; i++)
		source_flush(s->children[i]);
	if (s->values)
		cache_flush(s->values, NULL);
	if (s->listings)
		cache_flush(s->listings, NULL);
	if (s->at)
		cache_flush(s->at, NULL);
	if (s->pinned)
		cache_flush(s->pinned, NULL);
	if (b && b->ops->forget)
		b->ops->forget(b);
}

/* An optional source that is down, due for another try: opened and started, or later again. */
static void leaf_retry(struct source *s)
{
	char why[SOURCE_REASON_MAX] = "";
	struct backend *b = NULL;
	uint64_t now = now_usec();
	int r;

	if (source_backend(s) || !s->cfg || now < s->retry_usec)
		return;
	r = leaf_backend_open(s, s->cfg, &b, why, sizeof(why));
	if (r >= 0 && b->ops->start) {
		r = b->ops->start(b, why, sizeof(why));
		if (r < 0) {
			backend_close(b);
			b = NULL;
		}
	}
	if (r < 0) {
		s->retry_backoff_usec = s->retry_backoff_usec * 2 > RETRY_MAX_USEC
						? RETRY_MAX_USEC
						: s->retry_backoff_usec * 2;
		s->retry_usec = now + s->retry_backoff_usec;
		snprintf(s->down_reason, sizeof(s->down_reason), "%s", why);
		log_error("source '%s' is still down, next try in %llus: %s", s->name,
			  (unsigned long long)(s->retry_backoff_usec / USEC_PER_SEC), why);
		return;
	}
	s->down_reason[0] = '\0';
	if (b->warning[0])
		log_warn("source '%s': %s", s->name, b->warning);
	__atomic_store_n(&s->backend, b, __ATOMIC_RELEASE);
	log_info("source '%s' is up", s->name);
}

void source_revalidate(struct source *s)
{
	struct backend *b = source_backend(s);

	for (size_t i = 0; i < s->nchildren; i++)
		source_revalidate(s->children[i]);
	if (b && b->ops->revalidate)
		b->ops->revalidate(b);
}

void source_expire(struct source *s)
{
	for (size_t i = 0; i < s->nchildren; i++)
		source_expire(s->children[i]);
	if (s->optional)
		leaf_retry(s);
	if (s->values)
		cache_expire(s->values);
	if (s->listings)
		cache_expire(s->listings);
	if (s->at)
		cache_expire(s->at);
	if (s->pinned)
		cache_expire(s->pinned);
}
