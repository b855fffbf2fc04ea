/*
 * fs.h - the FUSE side: the low-level ops table and its state.
 */
#ifndef SECRETFS_FS_H
#define SECRETFS_FS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "secretfs/auditlog.h"
#include "secretfs/policy.h"
#include "secretfs/source.h"
#include "secretfs/template.h"

struct fs_params {
	struct source *source;
	uint64_t attr_timeout_usec;
	uid_t owner; /* without a policy, the only uid that may read */
	gid_t group;
	struct policy *policy;	/* taken over; NULL: owner only */
	struct auditlog *audit; /* borrowed; NULL: no audit */
	bool show_denied;	/* listings show entries the caller may not open */
	/*
	 * A secret file's st_size is 0 for callers the policy does not permit;
	 * secret files then get an attribute timeout of 0 (the kernel caches
	 * attributes per inode, not per caller).
	 */
	bool hide_denied_size;
	/* How long a denied lookup of one path by one uid is not audited again. */
	uint64_t lookup_audit_usec;
	size_t max_handles_per_uid;	/* 0: no cap */
	const char *meta_dir;		/* the meta directory's name; NULL: ".secretfs" */
	bool show_meta;			/* the root lists the meta directory */
	bool view_env_upper;		/* env and shell views write keys as UPPER_SNAKE */
	struct template_set *templates; /* taken over; NULL: none */
	size_t max_render;		/* bytes of a rendered template at most */
};

struct fs;

int fs_new(const struct fs_params *p, struct fs **ret);
void fs_free(struct fs *fs);
/* Swaps in a reloaded policy; takes over @p's reference. */
void fs_set_policy(struct fs *fs, struct policy *p);
/* Swaps in reloaded templates (NULL: none); takes over @t's reference. */
void fs_set_templates(struct fs *fs, struct template_set *t);
/* The session the ops run in, for notifications to the kernel. */
void fs_set_session(struct fs *fs, struct fuse_session *se);
/*
 * After fuse_session_mount(), before the loop: the session reads and writes
 * the device through fs.c, which tells the kernel at INIT that lookups and
 * readdirs of one directory may run in parallel (@parallel_dirops; not for
 * a single-threaded loop).  libfuse before 3.16 never sends that flag.
 */
int fs_session_io(struct fs *fs, struct fuse_session *se, bool parallel_dirops);

struct fs_stats {
	uint64_t access_denied;	  /* opens, listings and access(2) the decision refused */
	uint64_t handles_open;	  /* open files and directories, all uids */
	uint64_t handles_refused; /* opens refused with EMFILE: the uid was at its cap */
};

/* Thread-safe; for the control interface. */
void fs_get_stats(struct fs *fs, struct fs_stats *ret);

extern const struct fuse_lowlevel_ops fs_ops;

#endif
