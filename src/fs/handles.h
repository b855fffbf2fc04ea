/*
 * handles.h - open handles per uid, and the cap on them (private to src/fs).
 *
 * Every open file and directory costs the daemon memory until it is closed,
 * and a reader chooses how many it keeps: -o max_handles_per_uid bounds what
 * one uid can hold, so one reader cannot exhaust the daemon for the others.
 */
#ifndef SECRETFS_FS_HANDLES_H
#define SECRETFS_FS_HANDLES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HANDLES_BUCKETS 256

struct handles_uid;

struct handles {
	pthread_mutex_t lock;
	size_t max;				      /* per uid; 0 = no cap; immutable */
	struct handles_uid *buckets[HANDLES_BUCKETS]; /* protected by lock */
	uint64_t open;				      /* atomic */
	uint64_t refused;			      /* atomic */
};

void handles_init(struct handles *h, size_t max);
void handles_done(struct handles *h);
/* One more handle for @uid: 0, -EMFILE at the cap (counted), or -ENOMEM. */
int handles_take(struct handles *h, uid_t uid);
/* Gives back a handle handles_take() counted for @uid. */
void handles_put(struct handles *h, uid_t uid);

#endif
