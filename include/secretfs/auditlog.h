/*
 * auditlog.h - one JSON object per line for every access decision
 * (docs/design.md section 6).
 *
 *   {"time":"2026-11-26T12:00:00.123456Z","uid":33,"gid":33,"pid":812,
 *    "exe":"/usr/sbin/nginx","exe_dev":2049,"exe_ino":1835123,
 *    "op":"open","path":"prod/tls/key.pem",
 *    "source":"file:/etc/secretfs/store.json","decision":"permit",
 *    "rule":"/etc/secretfs/policy:3","errno":0,"cache":"hit","version":"7"}
 *
 * A template's render adds "template":"NAME" to its open record and writes
 * one "op":"render" record per reference.
 *
 * Never a value, never a token: a record has no field that could hold one.
 * Targets: a file (O_APPEND, created 0600, reopened by auditlog_reopen() so
 * logrotate works), syslog, or stderr.  A failed write is counted and
 * reported through the returned stats; it never blocks or fails the read.
 * Thread-safe.  The prefix is auditlog_, not audit_ (libaudit's).
 */
#ifndef SECRETFS_AUDITLOG_H
#define SECRETFS_AUDITLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct auditlog;

struct auditlog_record {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	const char *exe; /* what /proc/PID/exe shows; NULL: unknown */
	bool exe_known;	 /* exe_dev and exe_ino: the binary, as exe= rules match it */
	dev_t exe_dev;
	ino_t exe_ino;
	const char *op;	    /* "open", "opendir", "list" */
	const char *path;   /* relative to the mount root */
	const char *source; /* the SOURCE string */
	bool permit;
	const char *rule;    /* "FILE:LINE", or NULL when no rule matched / no policy */
	int error;	     /* errno returned to the caller, 0 on success */
	const char *cache;   /* "hit", "miss", "stale", "negative", or NULL */
	const char *version; /* backend version, NULL or "" when unknown */
	/*
	 * The template being rendered, or NULL: its open (op "open", the
	 * template's path) and one record per reference (op "render", the
	 * reference's path and the version it used) carry its name.
	 */
	const char *template_name;
};

struct auditlog_stats {
	uint64_t records;
	uint64_t write_errors;
};

/*
 * @target: "syslog", "stderr", or an absolute file path.  Returns 0 or a
 * negative errno with @err set ("FILE: cannot open: ...").
 */
int auditlog_open(const char *target, struct auditlog **ret, char *err, size_t errlen);
void auditlog_close(struct auditlog *a);
/* Reopens a file target (after logrotate moved it); a no-op for the others. */
int auditlog_reopen(struct auditlog *a, char *err, size_t errlen);
/*
 * A reload: points the log at @target ("syslog" or an absolute file path),
 * or reopens it when @target is the current one.  The new file is opened
 * before the switch, so on error the log keeps its old target.  Switching
 * to or from "stderr" is refused (-EINVAL): that needs a restart.  Called
 * from one thread at a time, like auditlog_reopen().
 */
int auditlog_retarget(struct auditlog *a, const char *target, char *err, size_t errlen);
/*
 * Writes one record.  Returns 0, or a negative errno when the write failed
 * (counted; the caller may warn, rate-limited).  Never blocks on a full
 * disk or a slow reader beyond one write(2).
 */
int auditlog_write(struct auditlog *a, const struct auditlog_record *r);
void auditlog_get_stats(struct auditlog *a, struct auditlog_stats *ret);

#endif
