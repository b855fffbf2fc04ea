/*
 * auditlog.c - one JSON object per line for every access decision, written to
 * a file, to syslog or to stderr.
 *
 * A record is formatted by hand into a fixed buffer on the caller's stack: this
 * runs on every open and every listing, so it allocates nothing.  Strings are
 * escaped so that each line is always valid JSON whatever bytes a path holds:
 * control characters become \uXXXX and ill-formed UTF-8 becomes U+FFFD.  Each
 * string field has an encoded budget, so a huge path is cut, with a marker, at
 * a character boundary instead of losing the record.
 *
 * Each line goes out in a single write(2), under a mutex and on an O_APPEND
 * descriptor, so lines never interleave.  auditlog_reopen() opens the new file
 * before it swaps the descriptor under the same mutex, and closes the old one
 * only after the swap: a writer never uses a closed descriptor, and a failed
 * reopen keeps logging to the old file.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "secretfs/auditlog.h"
#include "secretfs/util.h"

#define AUDITLOG_LINE_MAX 8448

/*
 * Encoded size of each string field, quotes included.  The path budget holds
 * any ASCII path up to PATH_MAX unescaped; the others are generous for what
 * they carry.  Together with the fixed part they fit AUDITLOG_LINE_MAX.
 */
#define BUDGET_EXE	1024
#define BUDGET_OP	64
#define BUDGET_PATH	4608
#define BUDGET_SOURCE	1024
#define BUDGET_RULE	768
#define BUDGET_CACHE	32
#define BUDGET_VERSION	256
#define BUDGET_TEMPLATE 160 /* a template's name: at most 64 characters */
/* Keys, punctuation, the time, six numbers and the newline: about 290 bytes. */
#define FIXED_MAX 384

_Static_assert(BUDGET_EXE + BUDGET_OP + BUDGET_PATH + BUDGET_SOURCE + BUDGET_RULE + BUDGET_CACHE +
			       BUDGET_VERSION + BUDGET_TEMPLATE + FIXED_MAX <
		       AUDITLOG_LINE_MAX,
	       "audit record budgets exceed the line buffer");

/* Appended to a string cut to its budget; plain ASCII, so grep finds it. */
#define TRUNC_MARKER "...[truncated]"

enum auditlog_kind {
	AUDITLOG_FILE,
	AUDITLOG_SYSLOG,
	AUDITLOG_STDERR,
};

/*
 * kind, path and fd change only in auditlog_reopen() and auditlog_retarget(),
 * which the one reload thread calls; it may read them without the lock.
 */
struct auditlog {
	enum auditlog_kind kind; /* protected by lock */
	char *path;		 /* file target only; protected by lock */
	pthread_mutex_t lock;
	int fd;		       /* protected by lock; -1 for syslog */
	uint64_t records;      /* atomic */
	uint64_t write_errors; /* atomic */
};

/*
 * Opens the file target.  O_NOFOLLOW so that nobody can point the log at a
 * file of their choosing through a symlink; O_NONBLOCK so that a FIFO put in
 * its place cannot hang the open, cleared again once it is known to be a
 * regular file.  An existing file keeps its mode: 0600 applies to creation.
 */
static int open_file(const char *path, int *ret_fd, char *err, size_t errlen)
{
	struct stat st;
	int fd, flags, r;

	fd = open(path,
		  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
		  0600);
	if (fd < 0) {
		r = -errno;
		/* ELOOP, EISDIR and ENXIO say little; name what is in the way instead. */
		if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
			return set_error(err, errlen, r, "%s: refusing %s as the audit log", path,
					 file_kind_name(st.st_mode));
		errno = -r;
		return set_error(err, errlen, r, "%s: cannot open: %m", path);
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		errno = -r;
		return set_error(err, errlen, r, "%s: cannot stat: %m", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return set_error(err, errlen, -EINVAL, "%s: refusing %s as the audit log", path,
				 file_kind_name(st.st_mode));
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		r = -errno;
		close(fd);
		errno = -r;
		return set_error(err, errlen, r, "%s: cannot set flags: %m", path);
	}
	*ret_fd = fd;
	return 0;
}

int auditlog_open(const char *target, struct auditlog **ret, char *err, size_t errlen)
{
	struct auditlog *a;
	int r;

	if (!target || !*target)
		return set_error(err, errlen, -EINVAL, "empty audit log target");

	a = calloc(1, sizeof(*a));
	if (!a)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	a->fd = -1;
	if (strcmp(target, "syslog") == 0) {
		a->kind = AUDITLOG_SYSLOG;
	} else if (strcmp(target, "stderr") == 0) {
		a->kind = AUDITLOG_STDERR;
		a->fd = STDERR_FILENO;
	} else if (target[0] != '/') {
		/* The daemon runs from "/" once detached: a relative path would move. */
		free(a);
		return set_error(err, errlen, -EINVAL,
				 "%s: not \"syslog\", \"stderr\" or an absolute path", target);
	} else {
		a->kind = AUDITLOG_FILE;
		a->path = strdup(target);
		if (!a->path) {
			free(a);
			return set_error(err, errlen, -ENOMEM, "out of memory");
		}
		r = open_file(a->path, &a->fd, err, errlen);
		if (r < 0) {
			free(a->path);
			free(a);
			return r;
		}
	}
	r = pthread_mutex_init(&a->lock, NULL);
	if (r != 0) {
		if (a->kind == AUDITLOG_FILE)
			close(a->fd);
		free(a->path);
		free(a);
		return set_error(err, errlen, -r, "cannot create a mutex");
	}
	*ret = a;
	return 0;
}

void auditlog_close(struct auditlog *a)
{
	if (!a)
		return;
	/* Nothing is buffered: every record already went out in its own write(2). */
	if (a->kind == AUDITLOG_FILE && a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
}

int auditlog_reopen(struct auditlog *a, char *err, size_t errlen)
{
	int fd, old, r;

	assert(a);
	if (a->kind != AUDITLOG_FILE)
		return 0;
	r = open_file(a->path, &fd, err, errlen);
	if (r < 0)
		return r;
	pthread_mutex_lock(&a->lock);
	old = a->fd;
	a->fd = fd;
	pthread_mutex_unlock(&a->lock);
	/* No writer can hold the old descriptor now: they all take the lock to use it. */
	close(old);
	return 0;
}

int auditlog_retarget(struct auditlog *a, const char *target, char *err, size_t errlen)
{
	enum auditlog_kind kind, old_kind;
	char *path = NULL, *old_path;
	int fd = -1, old_fd, r;

	assert(a && target);
	if (strcmp(target, "syslog") == 0)
		kind = AUDITLOG_SYSLOG;
	else if (strcmp(target, "stderr") == 0)
		kind = AUDITLOG_STDERR;
	else if (target[0] == '/')
		kind = AUDITLOG_FILE;
	else
		return set_error(err, errlen, -EINVAL,
				 "%s: not \"syslog\", \"stderr\" or an absolute path", target);
	if (kind == a->kind && (kind != AUDITLOG_FILE || strcmp(target, a->path) == 0))
		return auditlog_reopen(a, err, errlen);
	/* A daemon's stderr is /dev/null: whether it still has one is main's to know. */
	if (kind == AUDITLOG_STDERR || a->kind == AUDITLOG_STDERR)
		return set_error(err, errlen, -EINVAL,
				 "switching the audit log to or from stderr needs a restart");
	if (kind == AUDITLOG_FILE) {
		path = strdup(target);
		if (!path)
			return set_error(err, errlen, -ENOMEM, "out of memory");
		r = open_file(path, &fd, err, errlen);
		if (r < 0) {
			free(path);
			return r;
		}
	}
	pthread_mutex_lock(&a->lock);
	old_kind = a->kind;
	old_fd = a->fd;
	old_path = a->path;
	a->kind = kind;
	a->fd = fd;
	a->path = path;
	pthread_mutex_unlock(&a->lock);
	if (old_kind == AUDITLOG_FILE)
		close(old_fd);
	free(old_path);
	return 0;
}

/* A bounded output buffer; overflow is sticky and checked once at the end. */
struct line {
	char *buf;
	size_t len, cap;
	bool overflow;
};

static void put_mem(struct line *l, const void *p, size_t n)
{
	if (l->overflow || n > l->cap - l->len) {
		l->overflow = true;
		return;
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
}

static void put_str(struct line *l, const char *s)
{
	put_mem(l, s, strlen(s));
}

static void put_fmt(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_fmt(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, l->cap - l->len, fmt, ap);
	va_end(ap);
	/* vsnprintf needs room for its NUL too; the NUL is not part of the line. */
	if (n < 0 || (size_t)n >= l->cap - l->len) {
		l->overflow = true;
		return;
	}
	l->len += (size_t)n;
}

/*
 * Length of the well-formed UTF-8 sequence at @p (2 to 4), or 0 with @ret_bad
 * set to the length of its maximal ill-formed subpart, which becomes a single
 * U+FFFD: the Unicode recommended practice, and what Python's and browsers'
 * decoders do.  Overlong forms, surrogates and code points past U+10FFFF are
 * ill-formed.  Stops at a NUL, which is never a continuation byte.
 */
static size_t utf8_seq(const unsigned char *p, size_t *ret_bad)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else {
		*ret_bad = 1;
		return 0;
	}
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* past U+10FFFF */
	if (p[1] < lo || p[1] > hi) {
		*ret_bad = 1;
		return 0;
	}
	for (i = 2; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			*ret_bad = i;
			return 0;
		}
	}
	return n;
}

/*
 * Writes @s as a JSON string of at most @budget bytes, or null for NULL.  A
 * string that does not fit is cut at the last character after which the
 * marker still fits.  DEL and the C1 controls are escaped too, though JSON
 * does not require it: an audit line is read in terminals.
 */
static void put_json_string(struct line *l, const char *s, size_t budget)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t start, fit;

	if (!s) {
		put_str(l, "null");
		return;
	}
	start = l->len;
	put_mem(l, "\"", 1);
	fit = l->len;
	while (*p) {
		char esc[6] = { '\\', 'u', '0', '0' };
		const void *unit = esc;
		size_t ulen = 2, adv = 1, bad, n;

		if (*p == '"' || *p == '\\') {
			esc[1] = (char)*p;
		} else if (*p == '\n') {
			esc[1] = 'n';
		} else if (*p == '\t') {
			esc[1] = 't';
		} else if (*p == '\r') {
			esc[1] = 'r';
		} else if (*p < 0x20 || *p == 0x7f) {
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 0xf];
			ulen = 6;
		} else if (*p < 0x80) {
			unit = p;
			ulen = 1;
		} else if ((n = utf8_seq(p, &bad)) == 0) {
			unit = "\\ufffd";
			ulen = 6;
			adv = bad;
		} else if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
			/* C1 control, U+0080 to U+009F */
			esc[4] = hex[p[1] >> 4];
			esc[5] = hex[p[1] & 0xf];
			ulen = 6;
			adv = 2;
		} else {
			unit = p;
			ulen = adv = n;
		}
		/* +1: the closing quote */
		if (l->len - start + ulen + 1 > budget) {
			l->len = fit;
			put_str(l, TRUNC_MARKER);
			break;
		}
		put_mem(l, unit, ulen);
		p += adv;
		if (l->len - start + strlen(TRUNC_MARKER) + 1 <= budget)
			fit = l->len;
	}
	put_mem(l, "\"", 1);
}

/* Formats @r as one JSON line ending in '\n' into @buf; returns its length. */
static int format_record(char *buf, size_t cap, const struct auditlog_record *r)
{
	struct line l = { .buf = buf, .cap = cap };
	uint64_t now = realtime_usec();
	time_t sec = (time_t)(now / USEC_PER_SEC);
	long long err = r->error;
	struct tm tm;

	if (!gmtime_r(&sec, &tm))
		return -EOVERFLOW;
	/* Either sign means the same errno; the record shows it positive. */
	if (err < 0)
		err = -err;
	put_fmt(&l, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06uZ\"", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		(unsigned)(now % USEC_PER_SEC));
	put_fmt(&l, ",\"uid\":%u,\"gid\":%u,\"pid\":%d", (unsigned)r->uid, (unsigned)r->gid,
		(int)r->pid);
	put_str(&l, ",\"exe\":");
	put_json_string(&l, r->exe, BUDGET_EXE);
	if (r->exe_known)
		put_fmt(&l, ",\"exe_dev\":%llu,\"exe_ino\":%llu", (unsigned long long)r->exe_dev,
			(unsigned long long)r->exe_ino);
	else
		put_str(&l, ",\"exe_dev\":null,\"exe_ino\":null");
	put_str(&l, ",\"op\":");
	put_json_string(&l, r->op, BUDGET_OP);
	put_str(&l, ",\"path\":");
	put_json_string(&l, r->path, BUDGET_PATH);
	put_str(&l, ",\"source\":");
	put_json_string(&l, r->source, BUDGET_SOURCE);
	put_str(&l, r->permit ? ",\"decision\":\"permit\"" : ",\"decision\":\"deny\"");
	put_str(&l, ",\"rule\":");
	put_json_string(&l, r->rule, BUDGET_RULE);
	put_fmt(&l, ",\"errno\":%lld", err);
	put_str(&l, ",\"cache\":");
	put_json_string(&l, r->cache, BUDGET_CACHE);
	put_str(&l, ",\"version\":");
	/* The header gives NULL and "" the same meaning; a reader sees one spelling. */
	put_json_string(&l, r->version && *r->version ? r->version : NULL, BUDGET_VERSION);
	/* Only in the records of a template's render, so other records keep their shape. */
	if (r->template_name) {
		put_str(&l, ",\"template\":");
		put_json_string(&l, r->template_name, BUDGET_TEMPLATE);
	}
	put_str(&l, "}\n");
	/* The budgets make this unreachable; the check keeps the buffer safe if they drift. */
	if (l.overflow || l.len >= cap)
		return -EMSGSIZE;
	buf[l.len] = '\0';
	return (int)l.len;
}

/* One write(2) of the whole line: O_APPEND places it, the caller's lock orders it. */
static int write_line(int fd, const char *buf, size_t len)
{
	ssize_t n;

	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* Not retried: the rest would land after another process's line, or block. */
	if ((size_t)n != len) {
		/*
		 * A full disk takes part of a line.  Cut the fragment off again, so
		 * the next record does not start in the middle of an unfinished line
		 * (for a file; on a pipe or terminal the bytes are gone already).
		 */
		off_t end = lseek(fd, 0, SEEK_END);

		if (end >= n && ftruncate(fd, end - n) < 0) {
			/* Nothing better to do: the count below reports the failure. */
		}
		return -ENOSPC;
	}
	return 0;
}

int auditlog_write(struct auditlog *a, const struct auditlog_record *r)
{
	char buf[AUDITLOG_LINE_MAX];
	int n, ret;

	assert(a && r);
	n = format_record(buf, sizeof(buf), r);
	if (n < 0) {
		ret = n;
	} else {
		/* Under the lock even for syslog: a reload may switch the target. */
		pthread_mutex_lock(&a->lock);
		if (a->kind == AUDITLOG_SYSLOG) {
			/* syslog(3) reports no failure. */
			buf[n - 1] = '\0';
			syslog(LOG_AUTHPRIV | LOG_INFO, "%s", buf);
			ret = 0;
		} else {
			ret = write_line(a->fd, buf, (size_t)n);
		}
		pthread_mutex_unlock(&a->lock);
	}
	if (ret < 0)
		__atomic_add_fetch(&a->write_errors, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&a->records, 1, __ATOMIC_RELAXED);
	return ret;
}

void auditlog_get_stats(struct auditlog *a, struct auditlog_stats *ret)
{
	assert(a && ret);
	ret->records = __atomic_load_n(&a->records, __ATOMIC_RELAXED);
	ret->write_errors = __atomic_load_n(&a->write_errors, __ATOMIC_RELAXED);
}
