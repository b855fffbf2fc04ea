/*
 * kept.h - values a backend keeps for revalidation (private to src/backends).
 *
 * When the cache asks for a value again, a store that can say cheaply
 * whether a version is still current (Secret Manager's versions/latest,
 * AWS's DescribeSecret) lets the backend answer with the value it kept
 * instead of reading it again.  A kept_map is a small map id -> (version,
 * value), least recently used first out, bounded like the cache.  Values are
 * secrets (references); dropping one unrefs it, so the last copy is wiped.
 */
#ifndef SECRETFS_KEPT_H
#define SECRETFS_KEPT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "secretfs/backend.h"
#include "secretfs/secret.h"

struct kept;

struct kept_map {
	pthread_mutex_t lock;
	struct kept **buckets; /* protected by lock; NULL: keeping is off */
	size_t nbuckets;
	struct kept *newest, *oldest; /* protected by lock */
	size_t n, bytes;	      /* protected by lock */
	size_t max_n, max_bytes;      /* max_bytes 0: no byte bound */
};

/* At most @max_n values (0: 1024) and @max_bytes bytes of them (0: no bound). -ENOMEM. */
int kept_map_init(struct kept_map *m, size_t max_n, size_t max_bytes);
/* Drops every value; the map may not be used afterwards. */
void kept_map_done(struct kept_map *m);
/* A new reference to the value kept for @id, its version into @version; NULL if none. */
struct secret *kept_map_get(struct kept_map *m, const char *id, char version[BACKEND_VERSION_MAX]);
/* Keeps @value (a new reference) as @id at @version; no-op for an empty version. */
void kept_map_put(struct kept_map *m, const char *id, const char *version, struct secret *value);
void kept_map_forget(struct kept_map *m, const char *id);
/* Drops every value (a flush); the map stays usable. */
void kept_map_clear(struct kept_map *m);

#endif
