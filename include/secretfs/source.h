/*
 * source.h - one configured backend instance together with its caches: one
 * for values, one for folder listings (listings are cheap to keep and, for
 * some stores, expensive to ask for).  Wires the backend's events: a store
 * change flushes both caches; an error outside a request is logged.
 */
#ifndef SECRETFS_SOURCE_H
#define SECRETFS_SOURCE_H

#include "secretfs/backend.h"
#include "secretfs/cache.h"
#include "secretfs/config.h"
#include "secretfs/metrics.h"
#include "secretfs/selector.h"

/* Every call into the backend, timed and counted by outcome (lock-free). */
struct source_op_metrics {
	struct metrics_errno_counter outcomes; /* 0 = ok, else the errno returned */
	struct metrics_histogram duration;
};

struct source {
	struct backend *backend;
	struct cache *values;
	struct cache *listings;			/* NULL when the backend cannot list */
	/*
	 * Named versions (NULL when the backend keeps none), keyed
	 * "SELECTOR/ID": @at for the selectors that move (previous, pending,
	 * label:), on the values' ttl; @pinned for N and id:, which name one
	 * version forever and stay until evicted.
	 */
	struct cache *at;
	struct cache *pinned;
	struct source_op_metrics fetch_metrics; /* backend fetch calls */
	struct source_op_metrics list_metrics;	/* backend list calls */
	uint64_t malformed; /* answers with a malformed body (EBADMSG); atomic */
	uint64_t fetch_timeout_usec;
};

/* Opens the backend of cfg->source and checks it is usable.  No threads yet. */
int source_open(const struct config *cfg, struct source **ret, char *reason, size_t reasonlen);
/* After daemonizing: lets the backend start its threads (file watching). */
int source_start(struct source *s, char *reason, size_t reasonlen);
void source_close(struct source *s);

int source_value(struct source *s, const char *id, struct cache_result *ret, char *reason,
		 size_t reasonlen);
int source_listing(struct source *s, const char *prefix, struct cache_result *ret, char *reason,
		   size_t reasonlen);
/*
 * The same for a request that must be answered by @deadline_usec
 * (now_usec() time, 0 = none of its own; see cache_get_until()): one FUSE
 * request that needs a listing and then a value waits fetch_timeout in all.
 */
int source_value_until(struct source *s, const char *id, uint64_t deadline_usec,
		       struct cache_result *ret, char *reason, size_t reasonlen);
int source_listing_until(struct source *s, const char *prefix, uint64_t deadline_usec,
			 struct cache_result *ret, char *reason, size_t reasonlen);
/*
 * The version of @id that @sel names: source_value_until() for current,
 * else through the @at or @pinned cache.  -ENOENT (with @reason) when the
 * backend keeps no versions.
 */
int source_value_at(struct source *s, const char *id, const struct selector *sel,
		    uint64_t deadline_usec, struct cache_result *ret, char *reason, size_t reasonlen);
/*
 * The versions of @id as a JSON array (backend_ops.list_versions), not
 * cached; -ENOENT when the backend cannot list them.
 */
int source_versions(struct source *s, const char *id, struct json_t **ret_list, char *reason,
		    size_t reasonlen);
/* now_usec() + fetch_timeout: the deadline of a request that starts now. */
uint64_t source_deadline(const struct source *s);
void source_flush(struct source *s);
/*
 * Drops the named versions (at and pinned caches) of the secret at @path,
 * of those below it, and of the object whose key @path names; how many.
 */
size_t source_flush_versions(struct source *s, const char *path);
/* Before `ctl refresh`: the backend asks the store on its next fetch (backend_ops.revalidate). */
void source_revalidate(struct source *s);
/* Drops expired entries; main calls it periodically. */
void source_expire(struct source *s);

#endif
