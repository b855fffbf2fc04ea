/*
 * access.c - the caller, the decision and the audit record, for fs.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/access.h"
#include "secretfs/log.h"
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

void access_caller(struct access *a, fuse_req_t req, const struct policy *p, struct caller *ret)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char proc[32];
	ssize_t n;
	int ng;

	memset(&ret->subject, 0, sizeof(ret->subject));
	ret->subject.uid = ctx->uid;
	ret->subject.gid = ctx->gid;
	ret->pid = ctx->pid;
	if (p && policy_uses_groups(p)) {
		/* Supplementary groups are not in the request: libfuse reads /proc. */
		ng = fuse_req_getgroups(req, ACCESS_MAX_GROUPS, ret->groups);
		if (ng > 0) {
			ret->subject.groups = ret->groups;
			ret->subject.ngroups =
				(size_t)(ng < ACCESS_MAX_GROUPS ? ng : ACCESS_MAX_GROUPS);
		}
	}
	if (want_exe(a, p)) {
		snprintf(proc, sizeof(proc), "/proc/%d/exe", (int)ctx->pid);
		n = readlink(proc, ret->exe, sizeof(ret->exe) - 1);
		if (n > 0) {
			ret->exe[n] = '\0';
			ret->subject.exe = ret->exe;
		}
	}
}

bool access_permits(struct access *a, const struct policy *p, const struct caller *c,
		    const char *path, bool dir, char *rule, size_t rulelen)
{
	struct policy_decision d;

	rule[0] = '\0';
	if (!p)
		return c->subject.uid == a->owner;
	if (dir)
		policy_decide_dir(p, path, &c->subject, &d);
	else
		policy_decide(p, path, &c->subject, &d);
	if (d.line)
		snprintf(rule, rulelen, "%s:%u", policy_file(p), d.line);
	return d.permit;
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
	a->seen[victim] = (struct access_seen){ .key = key, .until_usec = now + a->lookup_audit_usec };
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
		access_audit(a, c, "lookup", path, false, 0, rule, NULL); /* answered, not refused */
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

void access_audit(struct access *a, const struct caller *c, const char *op, const char *path,
		  bool permit, int error, const char *rule, const struct cache_result *res)
{
	struct auditlog_record r = {
		.uid = c->subject.uid,
		.gid = c->subject.gid,
		.pid = c->pid,
		.exe = c->subject.exe,
		.op = op,
		.path = path,
		.source = a->source,
		.permit = permit,
		.rule = rule && rule[0] ? rule : NULL,
		.error = -error,
		.cache = res ? cache_state_name(res->state) : NULL,
		.version = res && res->version[0] ? res->version : NULL,
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
