/*
 * source.c - a backend plus the caches in front of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretfs/log.h"
#include "secretfs/source.h"

static int fetch_value(void *ctx, const char *key, struct secret **ret_value,
		       struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct backend *b = ctx;

	return b->ops->fetch(b, key, ret_value, ret_info, reason, reasonlen);
}

static int fetch_listing(void *ctx, const char *key, struct secret **ret_value,
			 struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct backend *b = ctx;

	*ret_info = (struct backend_info){ .version = "" };
	return b->ops->list(b, key, ret_value, reason, reasonlen);
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

int source_open(const struct config *cfg, struct source **ret, char *reason, size_t reasonlen)
{
	struct cache_config cc = {
		.ttl_usec = cfg->ttl_usec,
		.stale_usec = cfg->stale_ttl_usec,
		.negative_usec = cfg->negative_ttl_usec,
		.fetch_timeout_usec = cfg->fetch_timeout_usec,
		.max_entries = cfg->cache_max_entries,
		.max_bytes = cfg->cache_max_bytes,
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
	r = cache_new(&cc, fetch_value, s->backend, &s->values);
	if (r >= 0 && s->backend->ops->list) {
		/* Listings hold names only; bound them by count, not by the value budget. */
		cc.max_bytes = 0;
		r = cache_new(&cc, fetch_listing, s->backend, &s->listings);
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
	backend_close(s->backend);
	free(s);
}

int source_value(struct source *s, const char *id, struct cache_result *ret, char *reason,
		 size_t reasonlen)
{
	return cache_get(s->values, id, ret, reason, reasonlen);
}

int source_listing(struct source *s, const char *prefix, struct cache_result *ret, char *reason,
		   size_t reasonlen)
{
	if (!s->listings)
		return -ENOSYS;
	return cache_get(s->listings, prefix, ret, reason, reasonlen);
}

void source_flush(struct source *s)
{
	cache_flush(s->values, NULL);
	if (s->listings)
		cache_flush(s->listings, NULL);
}

void source_expire(struct source *s)
{
	cache_expire(s->values);
	if (s->listings)
		cache_expire(s->listings);
}
