/*
 * access.c - the caller, the decision and the audit record, for fs.c.
 *
 * A request carries the caller's uid, primary gid and pid (the thread's id);
 * supplementary groups and the executable are read from /proc/PID, and only
 * when the policy or the audit log needs them.  Groups are read from the
 * "Groups:" line of /proc/PID/status, all of them (fuse_req_getgroups()
 * stops at a fixed count), keeping those the policy names.  The executable
 * is the (device, inode) of the file /proc/PID/exe leads to, which a mount
 * namespace of the caller's cannot fake; its path text is for the audit log
 * only.  Whatever cannot be read is unknown, and the policy fails closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/access.h"
#include "secretfs/log.h"
#include "secretfs/selector.h"
#include "secretfs/util.h"

struct policy *access_policy(struct access *a)
{
	struct policy *p;

	pthread_mutex_lock(&a->lock);
	p = a->policy ? policy_ref(a->policy) : NULL;
	pthread_mutex_unlock(&a->lock);
	return p;
}

void access_set_policy(struct access *a, struct policy *p)
{
	struct policy *old;

	pthread_mutex_lock(&a->lock);
	old = a->policy;
	a->policy = p;
	pthread_mutex_unlock(&a->lock);
	if (old)
		policy_unref(old);
}

static bool want_exe(struct access *a, const struct policy *p)
{
	return a->audit || (p && policy_uses_exe(p));
}

/*
 * Whether the pids in requests can be looked up in our /proc.  FUSE gives a
 * pid in the pid namespace the mount was made in, ours, and 0 for a caller
 * outside it; /proc may still belong to another namespace (a daemon started
 * with `unshare -pf` and the host's /proc), where that pid is some other
 * process.  Decided once: neither changes while we run.
 */
static bool proc_is_ours_v;

static void proc_is_ours_init(void)
{
	char buf[32];
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);
	char self[32];

	if (n <= 0)
		return;
	buf[n] = '\0';
	snprintf(self, sizeof(self), "%d", (int)getpid());
	proc_is_ours_v = strcmp(buf, self) == 0;
}

static bool proc_is_ours(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, proc_is_ours_init);
	return proc_is_ours_v;
}

/*
 * A streaming reader of /proc/PID/status for the lines "Uid:", "Gid:" and
 * "Groups:".  Groups has one number per group, up to NGROUPS_MAX (65536), so
 * it is parsed as it comes rather than held; only the groups the policy
 * names are kept.
 */
struct status_reader {
	const struct policy *p;
	struct caller *c;
	char key[16];
	size_t klen;
	bool in_value, skip;
	char val[128]; /* the Uid: or Gid: value */
	size_t vlen;
	uint64_t num;
	bool in_num;
	bool have_uid, have_gid, have_groups, truncated, bad;
	uid_t fsuid;
	gid_t fsgid;
};

static void status_group(struct status_reader *sr)
{
	struct caller *c = sr->c;

	if (sr->num > UINT32_MAX) {
		sr->bad = true;
		return;
	}
	if (!sr->p || !policy_names_group(sr->p, (gid_t)sr->num))
		return;
	if (c->subject.ngroups == ACCESS_MAX_GROUPS) {
		sr->truncated = true;
		return;
	}
	c->groups[c->subject.ngroups++] = (gid_t)sr->num;
}

/* The fourth of "real effective saved fs": the id the kernel checks access with. */
static bool status_fs_id(const char *val, unsigned *ret)
{
	unsigned r, e, s, f;

	if (sscanf(val, "%u %u %u %u", &r, &e, &s, &f) != 4)
		return false;
	*ret = f;
	return true;
}

static void status_end_line(struct status_reader *sr)
{
	unsigned id;

	if (sr->in_value && !sr->skip) {
		if (strcmp(sr->key, "Groups") == 0) {
			if (sr->in_num)
				status_group(sr);
			sr->have_groups = true;
		} else if (sr->vlen < sizeof(sr->val)) {
			sr->val[sr->vlen] = '\0';
			if (!status_fs_id(sr->val, &id))
				sr->bad = true;
			else if (strcmp(sr->key, "Uid") == 0)
				sr->have_uid = true, sr->fsuid = id;
			else
				sr->have_gid = true, sr->fsgid = id;
		} else {
			sr->bad = true;
		}
	}
	sr->klen = sr->vlen = 0;
	sr->num = 0;
	sr->in_value = sr->skip = sr->in_num = false;
}

static void status_feed(struct status_reader *sr, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = buf[i];

		if (ch == '\n') {
			status_end_line(sr);
		} else if (sr->skip) {
			continue;
		} else if (!sr->in_value) {
			if (ch == ':') {
				sr->key[sr->klen] = '\0';
				sr->in_value = true;
				sr->skip = strcmp(sr->key, "Uid") != 0 &&
					   strcmp(sr->key, "Gid") != 0 &&
					   strcmp(sr->key, "Groups") != 0;
			} else if (sr->klen + 1 < sizeof(sr->key)) {
				sr->key[sr->klen++] = ch;
			} else {
				sr->skip = true;
			}
		} else if (strcmp(sr->key, "Groups") == 0) {
			if (ch >= '0' && ch <= '9') {
				sr->num = sr->num * 10 + (uint64_t)(ch - '0');
				if (sr->num > UINT32_MAX)
					sr->num = UINT64_C(1) << 33; /* stays too big */
				sr->in_num = true;
			} else if (sr->in_num) {
				status_group(sr);
				sr->num = 0;
				sr->in_num = false;
			}
		} else if (sr->vlen < sizeof(sr->val)) {
			sr->val[sr->vlen++] = ch;
		}
	}
}

/*
 * Checks that the process at @dfd is still the caller: its fs uid and gid
 * those of the request (a pid reused by another user's process is not), and
 * with @p, puts its groups that @p names into @c.  Returns 0, or a negative
 * errno (-ESRCH: not the caller) with what went wrong in @why.
 */
static int proc_status(int dfd, const struct fuse_ctx *ctx, const struct policy *p,
		       struct caller *c, const char **why)
{
	struct status_reader sr = { .p = p, .c = c };
	char buf[4096];
	ssize_t n;
	int fd;

	fd = openat(dfd, "status", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = "cannot read /proc/PID/status";
		return -errno;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why = "cannot read /proc/PID/status";
			n = -errno;
			close(fd);
			return (int)n;
		}
		status_feed(&sr, buf, (size_t)n);
	}
	close(fd);
	status_end_line(&sr);
	c->subject.groups = c->groups;
	if (sr.bad || !sr.have_uid || !sr.have_gid || !sr.have_groups) {
		*why = "/proc/PID/status has no readable Uid, Gid or Groups line";
		return -EIO;
	}
	if (sr.fsuid != ctx->uid || sr.fsgid != ctx->gid) {
		*why = "the process at that pid is no longer the caller";
		return -ESRCH;
	}
	if (sr.truncated) {
		*why = "in more of the policy's groups than can be held";
		return -E2BIG;
	}
	return 0;
}

/* Said once a window per reason (log_limit): every request of such a caller meets it. */
static void warn_unknown_groups(const struct fuse_ctx *ctx, const char *why)
{
	unsigned more = 0;

	if (!log_limit("groups unknown", why, 0, now_usec(), &more))
		return;
	log_warn("policy: the supplementary groups of pid %d (uid %u) are unknown: %s; "
		 "group rules fail closed for such callers (a deny on a group matches, a "
		 "permit on a supplementary group does not); %u similar suppressed",
		 (int)ctx->pid, (unsigned)ctx->uid, why, more);
}

void access_caller(struct access *a, fuse_req_t req, const struct policy *p, struct caller *ret)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	bool groups = p && policy_uses_groups(p), exe = want_exe(a, p);
	const char *why = NULL;
	char proc[32];
	struct stat st;
	ssize_t n;
	int dfd = -1, r = 0;

	memset(&ret->subject, 0, sizeof(ret->subject));
	ret->subject.uid = ctx->uid;
	ret->subject.gid = ctx->gid;
	ret->pid = ctx->pid;
	ret->exe[0] = '\0';
	if (!groups && !exe)
		return;
	/*
	 * One handle on the process for every read below, so that they all
	 * describe the same one even if the pid is reused meanwhile.
	 */
	if (ctx->pid <= 0) {
		why = "pid 0: the caller is in a pid namespace the daemon cannot see into";
		r = -ESRCH;
	} else if (!proc_is_ours()) {
		why = "/proc is not the daemon's pid namespace's";
		r = -ESRCH;
	} else {
		snprintf(proc, sizeof(proc), "/proc/%d", (int)ctx->pid);
		dfd = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			why = "no such process in /proc";
			r = -errno;
		}
	}
	/* Read for a decision, so checked to be the caller's; the audit log alone takes it as is.
	 */
	if (r == 0 && (groups || (p && policy_uses_exe(p))))
		r = proc_status(dfd, ctx, groups ? p : NULL, ret, &why);
	if (groups && r < 0) {
		ret->subject.groups_incomplete = true;
		warn_unknown_groups(ctx, why);
	}
	/* A pid now someone else's: its exe is not the caller's either. */
	if (exe && dfd >= 0 && r != -ESRCH) {
		/* stat() follows the magic link to the file that is running. */
		if (fstatat(dfd, "exe", &st, 0) == 0) {
			ret->subject.exe_known = true;
			ret->subject.exe_dev = st.st_dev;
			ret->subject.exe_ino = st.st_ino;
		}
		n = readlinkat(dfd, "exe", ret->exe, sizeof(ret->exe) - 1);
		ret->exe[n > 0 ? n : 0] = '\0';
	}
	if (dfd >= 0)
		close(dfd);
}

/* The policy's decision for @path in @d (without a policy: the owner only), its rule in @rule. */
static bool decide(struct access *a, const struct policy *p, const struct caller *c,
		   const char *path, bool dir, struct policy_decision *d, char *rule,
		   size_t rulelen)
{
	rule[0] = '\0';
	*d = (struct policy_decision){ .versions = SELECTOR_ALL };
	if (!p)
		return c->subject.uid == a->owner;
	if (dir)
		policy_decide_dir(p, path, &c->subject, d);
	else
		policy_decide(p, path, &c->subject, d);
	if (d->line)
		snprintf(rule, rulelen, "%s:%u", policy_file(p), d->line);
	return d->permit;
}

bool access_permits(struct access *a, const struct policy *p, const struct caller *c,
		    const char *path, bool dir, char *rule, size_t rulelen)
{
	struct policy_decision d;

	return decide(a, p, c, path, dir, &d, rule, rulelen);
}

bool access_permits_versions(struct access *a, const struct policy *p, const struct caller *c,
			     const char *path, unsigned want, char *rule, size_t rulelen)
{
	struct policy_decision d;

	/* without a policy the owner reads every version (d.versions stays SELECTOR_ALL) */
	return decide(a, p, c, path, false, &d, rule, rulelen) && (d.versions & want);
}

int access_check(struct access *a, const struct policy *p, const struct caller *c, const char *path,
		 bool dir, char *rule, size_t rulelen)
{
	bool permit = access_permits(a, p, c, path, dir, rule, rulelen);

	if (!permit)
		__atomic_fetch_add(&a->denied, 1, __ATOMIC_RELAXED);
	return permit ? 0 : -EACCES;
}

bool access_visible(struct access *a, const struct policy *p, const struct caller *c,
		    const char *path, bool dir, bool maybe_dir)
{
	struct policy_decision d;

	if (!p || a->show_denied)
		return true; /* without a policy, whoever may list may read */
	if (dir) {
		policy_decide_dir(p, path, &c->subject, &d);
		return d.permit;
	}
	policy_decide(p, path, &c->subject, &d);
	if (d.permit || !maybe_dir)
		return d.permit;
	/* A secret not yet fetched may turn out to be an object, i.e. a directory. */
	policy_decide_dir(p, path, &c->subject, &d);
	return d.permit;
}

static uint64_t seen_key(uid_t uid, const char *path)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)uid; /* FNV-1a over uid, then path */

	for (; *path; path++)
		h = (h ^ (unsigned char)*path) * 1099511628211ull;
	h ^= h >> 29; /* spread the high bits into the slot index */
	return h ? h : 1;
}

/* Whether (uid, path) is new within the window; marks it seen.  a->lock held. */
static bool seen_first(struct access *a, uint64_t key, uint64_t now)
{
	size_t base = key & (ACCESS_SEEN_SLOTS - 1), victim = base;

	for (size_t i = 0; i < ACCESS_SEEN_PROBE; i++) {
		struct access_seen *s = &a->seen[(base + i) & (ACCESS_SEEN_SLOTS - 1)];

		if (s->key == key && s->until_usec > now)
			return false;
		if (s->key == key || s->key == 0 || s->until_usec <= now) {
			victim = (base + i) & (ACCESS_SEEN_SLOTS - 1);
			break;
		}
		if (s->until_usec < a->seen[victim].until_usec)
			victim = (base + i) & (ACCESS_SEEN_SLOTS - 1);
	}
	a->seen[victim] =
		(struct access_seen){ .key = key, .until_usec = now + a->lookup_audit_usec };
	return true;
}

void access_audit_lookup(struct access *a, const struct caller *c, const char *path,
			 const char *rule)
{
	uint64_t now = now_usec();
	bool first = true;

	if (!a->audit)
		return;
	if (a->lookup_audit_usec) {
		pthread_mutex_lock(&a->lock);
		if (!a->seen)
			a->seen = calloc(ACCESS_SEEN_SLOTS, sizeof(*a->seen));
		if (a->seen)
			first = seen_first(a, seen_key(c->subject.uid, path), now);
		pthread_mutex_unlock(&a->lock);
	}
	if (first)
		access_audit(a, c, "lookup", path, false, 0, rule,
			     NULL); /* answered, not refused */
}

static const char *cache_state_name(enum cache_state s)
{
	switch (s) {
	case CACHE_HIT:
		return "hit";
	case CACHE_MISS:
		return "miss";
	case CACHE_STALE:
		return "stale";
	case CACHE_NEGATIVE:
		return "negative";
	}
	return NULL;
}

/*
 * The source an audit record names: the one @path routes to ([source NAME]
 * of several, or the one SOURCE); the root, and the meta tree of several,
 * are the whole mount's.
 */
static const char *audit_source(struct access *a, const char *path)
{
	const char *rest;
	struct source *leaf;

	if (!a->source)
		return NULL;
	leaf = source_route(a->source, path, &rest);
	return source_label(leaf ? leaf : a->source);
}

void access_audit(struct access *a, const struct caller *c, const char *op, const char *path,
		  bool permit, int error, const char *rule, const struct cache_result *res)
{
	access_audit_template(a, c, op, path, permit, error, rule, res, NULL);
}

void access_audit_template(struct access *a, const struct caller *c, const char *op,
			   const char *path, bool permit, int error, const char *rule,
			   const struct cache_result *res, const char *name)
{
	struct auditlog_record r = {
		.uid = c->subject.uid,
		.gid = c->subject.gid,
		.pid = c->pid,
		.exe = c->exe[0] ? c->exe : NULL,
		.exe_known = c->subject.exe_known,
		.exe_dev = c->subject.exe_dev,
		.exe_ino = c->subject.exe_ino,
		.op = op,
		.path = path,
		.source = audit_source(a, path),
		.permit = permit,
		.rule = rule && rule[0] ? rule : NULL,
		.error = -error,
		.cache = res ? cache_state_name(res->state) : NULL,
		.version = res && res->version[0] ? res->version : NULL,
		.template_name = name,
	};
	struct auditlog_stats st;
	bool report;

	if (!a->audit || auditlog_write(a->audit, &r) >= 0)
		return;
	/* Never fail the read over the audit log; say so, but not once per read. */
	auditlog_get_stats(a->audit, &st);
	pthread_mutex_lock(&a->lock);
	report = st.write_errors >= 2 * a->audit_errors_logged;
	if (report)
		a->audit_errors_logged = st.write_errors;
	pthread_mutex_unlock(&a->lock);
	if (report)
		log_error("audit log: %llu records could not be written",
			  (unsigned long long)st.write_errors);
}
