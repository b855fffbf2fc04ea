/*
 * policy.h - who may read which path (docs/design.md section 5).
 *
 * A policy file is line-based, like doas.conf.  The example is in line
 * comments: its globs hold the characters that would open a block comment.
 */
//   # action  subject          path glob            options
//   permit    user:www-data    prod/tls/**          owner=www-data mode=0400
//   permit    group:app        prod/db/*
//   deny      user:mallory     prod/**
//   permit    user:postgres    prod/db/password     exe=/usr/lib/postgresql/15/bin/postgres
//   permit    *                public/*
//   permit    user:deploy      prod/db/*            versions=previous,pending
/*
 * Subjects: user:NAME|UID, group:NAME|GID (primary or supplementary), "*".
 * exe=PATH names a binary by the (device, inode) that stat(2) gives PATH,
 * symlinks followed, when the policy is loaded: a reload resolves it again,
 * and a PATH that cannot be resolved is a load error.
 * versions (every selector) or versions=KIND,... (previous, pending, number,
 * id, label) on a permit: what the reader may open under META/at/SELECTOR/
 * of the paths it matches; without it, current only.
 * Globs: "*" within one component, "**" (a whole component) across any
 * number of components, "?" and "[...]" as in fnmatch(3).  Paths are relative
 * to the mount root, without a leading "/".  The last matching rule decides;
 * no match denies; root is not exempt.  A policy is immutable once loaded and
 * shared by reference, so a reload swaps it without stopping readers.  This
 * module does not log: it returns decisions and error text.
 */
#ifndef SECRETFS_POLICY_H
#define SECRETFS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define POLICY_ERR_MAX 512

struct policy;

/*
 * The caller, as the fs layer knows it from the FUSE request and /proc.
 * What cannot be known fails closed: with @groups_incomplete a deny rule on
 * a group matches and a permit rule on a group other than @gid does not;
 * without @exe_known an exe= deny rule matches and an exe= permit does not.
 */
struct policy_subject {
	uid_t uid;
	gid_t gid;	     /* primary: from the request, always known */
	const gid_t *groups; /* supplementary groups; may be NULL when !policy_uses_groups() */
	size_t ngroups;
	bool groups_incomplete; /* @groups may lack some: unreadable, or cut short */
	/* The running executable: stat(2) of /proc/PID/exe, which follows the magic link. */
	bool exe_known;
	dev_t exe_dev;
	ino_t exe_ino;
};

/* What stat shows for a path; a field is used only when its has_ flag is set. */
struct policy_attrs {
	bool has_owner, has_group, has_mode;
	uid_t owner;
	gid_t group;
	mode_t mode; /* permission bits only, <= 07777 */
};

struct policy_decision {
	bool permit;
	unsigned line; /* the deciding rule's line; 0 when no rule matched */
	/*
	 * policy_decide(): the selector kinds (selector.h SELECTOR_BIT) the
	 * deciding permit grants under META/at/: current only, unless it has
	 * the option versions (all) or versions=KIND,...; 0 on a refusal.
	 */
	unsigned versions;
};

/*
 * Loads and validates the policy in @path.  Errors name "FILE:LINE: what"
 * (unknown user or group, bad glob, bad mode, unknown option, missing field,
 * an exe= path that does not resolve to a regular file)
 * or "FILE: what" (cannot open, writable by group or others, not owned by
 * root or the daemon's user).  Returns 0 or a negative errno.
 */
int policy_load(const char *path, struct policy **ret, char *err, size_t errlen);
/* The same from memory, @name standing for the file in messages (fuzzing, tests). */
int policy_parse(const char *text, size_t len, const char *name, struct policy **ret, char *err,
		 size_t errlen);
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* The file the policy came from, for "FILE:LINE" in audit records. */
const char *policy_file(const struct policy *p);
/* Whether any rule names a group, or restricts the executable: the caller
 * only gathers what is needed. */
bool policy_uses_groups(const struct policy *p);
bool policy_uses_exe(const struct policy *p);
/* Whether some rule's subject is group @gid: the caller keeps only those groups. */
bool policy_names_group(const struct policy *p, gid_t gid);

/* May @who open the file at @path?  The last matching rule decides. */
void policy_decide(const struct policy *p, const char *path, const struct policy_subject *who,
		   struct policy_decision *ret);
/*
 * May @who open the directory @path ("" is the root)?  Permitted when some
 * permit rule for @who can match a path at or below @path and no later deny
 * rule for @who matches everything below it (e.g. a deny of "**" below
 * "prod" hides "prod").
 * Opening a file below is still decided by policy_decide().
 */
void policy_decide_dir(const struct policy *p, const char *path, const struct policy_subject *who,
		       struct policy_decision *ret);
/*
 * What stat shows for @path: from the last matching rule that sets owner,
 * group or mode, whoever its subject is (the kernel caches attributes per
 * inode, not per caller, so they cannot depend on who asks).
 */
void policy_attrs(const struct policy *p, const char *path, struct policy_attrs *ret);

/*
 * `secretfs check-policy FILE USER [--exe PATH] [--dir] PATH`, argv[0] being
 * "check-policy": loads FILE, takes USER (a name or a uid) with its primary
 * and supplementary groups from the user database, the executable as the
 * file that stat(2) of --exe's PATH finds (symlinks followed, as for exe=
 * rules; without --exe, unknown, as for the daemon), decides for PATH (a
 * directory when it ends in "/" or with --dir) and prints the decision, the
 * deciding rule and what stat would show.  Needs no mount and no privilege.
 * Returns the exit status: 0 permit, 1 deny, 2 usage or load error.
 */
int policy_check_main(int argc, char **argv);

#endif
