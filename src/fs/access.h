/*
 * access.h - who is calling, may they, and the audit record of the answer
 * (private to src/fs).
 *
 * Decisions are made in open, opendir and access, which the kernel sends on
 * every open(2), never in lookup or getattr, whose answers the kernel caches
 * per inode for every uid (libfuse issue 15).  Without a policy only the
 * mounting user may read.
 */
#ifndef SECRETFS_FS_ACCESS_H
#define SECRETFS_FS_ACCESS_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>

#include <fuse_lowlevel.h>

#include "secretfs/auditlog.h"
#include "secretfs/cache.h"
#include "secretfs/policy.h"
#include "secretfs/source.h"

/* Of the caller's groups, those the policy names: more than this fails closed. */
#define ACCESS_MAX_GROUPS 256
#define ACCESS_RULE_MAX	  (PATH_MAX + 16)
/* Denied lookups remembered so each (uid, path) is audited once per window. */
#define ACCESS_SEEN_SLOTS 4096
#define ACCESS_SEEN_PROBE 8

struct access_seen {
	uint64_t key; /* hash of (uid, path); 0: free */
	uint64_t until_usec;
};

struct access {
	pthread_mutex_t lock;
	struct policy *policy;	/* protected by lock; NULL: owner only */
	struct auditlog *audit; /* NULL: no audit */
	struct source *source; /* audit records name the one a path routes to */
	uid_t owner;
	bool show_denied;
	uint64_t audit_errors_logged; /* protected by lock */
	uint64_t denied;	      /* decisions that refused the caller; atomic */
	uint64_t lookup_audit_usec;   /* window of seen[] */
	struct access_seen *seen;     /* protected by lock; NULL: not allocated yet */
};

struct caller {
	struct policy_subject subject;
	pid_t pid;
	gid_t groups[ACCESS_MAX_GROUPS]; /* only groups the policy names */
	char exe[PATH_MAX];		 /* "" when unknown */
};

/* The policy in force, with a reference the caller drops with policy_unref(). */
struct policy *access_policy(struct access *a);
/* Replaces the policy (a reload); takes over @p's reference. */
void access_set_policy(struct access *a, struct policy *p);

/*
 * Fills @ret from the request, gathering groups and exe only when needed,
 * from /proc/PID of the caller (FUSE's pid is the calling thread's id).
 * When that process cannot be read, or is no longer the caller, its groups
 * and exe are unknown, which the policy treats as failing closed; a warning
 * says so, at most every five minutes.
 */
void access_caller(struct access *a, fuse_req_t req, const struct policy *p, struct caller *ret);

/*
 * 0 or -EACCES for @c opening @path (a directory when @dir).  @rule gets
 * "FILE:LINE" of the deciding rule, or "" when none decided.  A refusal is
 * counted in a->denied.
 */
int access_check(struct access *a, const struct policy *p, const struct caller *c, const char *path,
		 bool dir, char *rule, size_t rulelen);

/* The policy's answer for @c at @path (a directory when @dir), without counting it. */
bool access_permits(struct access *a, const struct policy *p, const struct caller *c,
		    const char *path, bool dir, char *rule, size_t rulelen);

/*
 * The file decision for @path, and whether the deciding permit grants one
 * of the selector kinds in @want (SELECTOR_BIT; policy_decision.versions).
 * Without a policy, the owner may read every version.  Counts nothing.
 */
bool access_permits_versions(struct access *a, const struct policy *p, const struct caller *c,
			     const char *path, unsigned want, char *rule, size_t rulelen);

/*
 * A lookup or stat of @path that the policy refuses @c: one "lookup" record,
 * unless the same uid's lookup of the same path was recorded within
 * lookup_audit_usec (a bounded table: past ACCESS_SEEN_SLOTS busy entries the
 * oldest nearby one is forgotten, so a flood can only add records, never hide one).
 */
void access_audit_lookup(struct access *a, const struct caller *c, const char *path,
			 const char *rule);

/* Whether a listing shows @path to @c (show_denied shows everything). */
bool access_visible(struct access *a, const struct policy *p, const struct caller *c,
		    const char *path, bool dir, bool maybe_dir);

/*
 * One audit record: @permit is the policy's answer, @error what the caller
 * got (a permitted open may still fail to fetch); @res may be NULL.
 */
void access_audit(struct access *a, const struct caller *c, const char *op, const char *path,
		  bool permit, int error, const char *rule, const struct cache_result *res);
/* The same for a template's render: the record carries the template's @name. */
void access_audit_template(struct access *a, const struct caller *c, const char *op,
			   const char *path, bool permit, int error, const char *rule,
			   const struct cache_result *res, const char *name);

#endif
