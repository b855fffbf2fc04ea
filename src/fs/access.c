/*
 * access.c - the caller, the decision and the audit record, for fs.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs/access.h"
#include "secretfs/log.h"

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

int access_check(struct access *a, const struct policy *p, const struct caller *c, const char *path,
		 bool dir, char *rule, size_t rulelen)
{
	struct policy_decision d;
	bool permit;

	rule[0] = '\0';
	if (!p) {
		permit = c->subject.uid == a->owner;
	} else {
		if (dir)
			policy_decide_dir(p, path, &c->subject, &d);
		else
			policy_decide(p, path, &c->subject, &d);
		if (d.line)
			snprintf(rule, rulelen, "%s:%u", policy_file(p), d.line);
		permit = d.permit;
	}
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
