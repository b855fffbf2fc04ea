/*
 * source.h - one configured backend instance together with its caches: one
 * for values, one for folder listings (listings are cheap to keep and, for
 * some stores, expensive to ask for).  Wires the backend's events: a store
 * change flushes both caches; an error outside a request is logged.
 *
 * Several stores in one mount ([source NAME] sections): one source routes,
 * with no backend or caches of its own, to its children, each a plain source
 * shown under a directory of the root (its prefix).  Ids given to the
 * source_value/listing functions are mount paths; source_route() splits one
 * into the child and the id within it.
 */
#ifndef SECRETFS_SOURCE_H
#define SECRETFS_SOURCE_H

#include "secretfs/backend.h"
#include "secretfs/cache.h"
#include "secretfs/config.h"
#include "secretfs/metrics.h"
#include "secretfs/selector.h"

/* A reason from opening a store: a backend's, with the credential chain it tried. */
#define SOURCE_REASON_MAX 512

/* Every call into the backend, timed and counted by outcome (lock-free). */
struct source_op_metrics {
	struct metrics_errno_counter outcomes; /* 0 = ok, else the errno returned */
	struct metrics_histogram duration;
};

struct source {
	/* NULL while an optional source is down (read atomically); NULL for a router. */
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

	/* Several stores in one mount. */
	char *name;		  /* [source NAME]; NULL for a plain mount's one source */
	char *prefix;		  /* its directory at the root; NULL for a plain mount */
	struct source **children; /* a router's sources, in config order; else NULL */
	size_t nchildren;
	/* A child's own settings; an optional one that is down reopens with them. */
	struct config *cfg;
	bool optional;
	char *uri;	     /* the SOURCE, also while the backend is down */
	uint64_t retry_usec; /* down: when housekeeping tries again (now_usec()) */
	uint64_t retry_backoff_usec;
	char down_reason[SOURCE_REASON_MAX]; /* down: why, for ctl status; never a value */
};

/*
 * Opens the backend of cfg->source and checks it is usable; with
 * [source NAME] sections, a router and one child per section, each opened
 * so (an optional one that fails is logged and left down, to be retried by
 * source_expire()).  No threads yet.
 */
int source_open(const struct config *cfg, struct source **ret, char *reason, size_t reasonlen);
/*
 * The source that holds mount path @id, and @id within it in *@ret_rest:
 * @s itself for a plain mount.  NULL for the root of several (*@ret_rest
 * "") or a name no source has (*@ret_rest NULL).
 */
struct source *source_route(struct source *s, const char *id, const char **ret_rest);
/* The backend a leaf serves with now, or NULL while it is down. */
static inline struct backend *source_backend(const struct source *s)
{
	return __atomic_load_n(&s->backend, __ATOMIC_ACQUIRE);
}
/* Whether the store that holds mount path @id has no folders (Doppler: flat). */
bool source_no_folders(struct source *s, const char *id);
/* The name that metrics, status and audit records give @s: its [source NAME], else its SOURCE. */
static inline const char *source_label(const struct source *s)
{
	return s->name ? s->name : s->uri;
}
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
/* Drops expired entries and retries optional sources that are down; main calls it each second. */
void source_expire(struct source *s);

#endif
