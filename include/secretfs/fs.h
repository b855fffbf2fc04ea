/*
 * fs.h - the FUSE side: the low-level ops table and its state.
 */
#ifndef SECRETFS_FS_H
#define SECRETFS_FS_H

#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "secretfs/source.h"

struct fs_params {
	struct source *source;
	uint64_t attr_timeout_usec;
	uid_t owner; /* the only uid that may read until access policy lands */
	gid_t group;
};

struct fs;

int fs_new(const struct fs_params *p, struct fs **ret);
void fs_free(struct fs *fs);
/* The session the ops run in, for notifications to the kernel. */
void fs_set_session(struct fs *fs, struct fuse_session *se);

extern const struct fuse_lowlevel_ops fs_ops;

#endif
