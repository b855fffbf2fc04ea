/*
 * util.c - time, and the parsers for durations, sizes and booleans that the
 * command line and the config file share, so both accept the same spellings;
 * user database lookups; and the one way to open a file the daemon trusts
 * (config, policy, store, credentials, CA), checked like OpenSSH's safe_path().
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "secretfs/util.h"

static uint64_t clock_usec(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t now_usec(void)
{
	return clock_usec(CLOCK_MONOTONIC);
}

uint64_t realtime_usec(void)
{
	return clock_usec(CLOCK_REALTIME);
}

/* Parses a non-negative decimal number with an optional fraction. */
static int parse_number(const char *s, double *ret, const char **ret_end)
{
	char *end;
	double v;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || !isfinite(v) || v < 0)
		return -EINVAL;
	*ret = v;
	*ret_end = end;
	return 0;
}

int parse_duration(const char *s, uint64_t *ret_usec)
{
	static const struct {
		const char *suffix;
		double usec;
	} units[] = {
		{ "", 1e6 },   { "s", 1e6 },	{ "ms", 1e3 },	 { "us", 1 },
		{ "m", 60e6 }, { "min", 60e6 }, { "h", 3600e6 }, { "d", 86400e6 },
	};
	const char *end;
	double v;

	if (parse_number(s, &v, &end) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			double us = v * units[i].usec;

			if (us > 1e18)
				return -EINVAL;
			*ret_usec = (uint64_t)us;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_size(const char *s, size_t *ret)
{
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {
		{ "", 1 },
		{ "K", 1024.0 },
		{ "M", 1024.0 * 1024 },
		{ "G", 1024.0 * 1024 * 1024 },
	};
	const char *end;
	double v;

	if (parse_number(s, &v, &end) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcasecmp(end, units[i].suffix) == 0 ||
		    (units[i].suffix[0] && end[0] && strcasecmp(end + 1, "iB") == 0 &&
		     toupper((unsigned char)end[0]) == units[i].suffix[0])) {
			double b = v * units[i].mult;

			if (b > (double)SIZE_MAX / 2 || b != (double)(size_t)b)
				return -EINVAL;
			*ret = (size_t)b;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

void wipe_free(void *p, size_t len)
{
	if (!p)
		return;
	explicit_bzero(p, len);
	free(p);
}

int format_rfc3339(uint64_t realtime_usec, char *buf, size_t len)
{
	time_t t = (time_t)(realtime_usec / USEC_PER_SEC);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -EINVAL;
	return 0;
}

/* ---- the user database ---- */

/* getpwnam_r() and friends report "not found" through any of these, depending on NSS. */
static bool db_not_found(int e)
{
	return e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM;
}

/*
 * getpwnam_r(), or getpwuid_r() when @name is NULL.  *ret_buf holds the
 * strings *ret_pw points to; the caller frees it.  Returns 0, -ENOENT when
 * there is no such user, or another negative errno.
 */
int user_lookup(const char *name, uid_t uid, struct passwd *ret_pw, char **ret_buf)
{
	struct passwd pw, *res = NULL;
	size_t len = 1024;
	char *buf;
	int e;

	for (;;) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
		e = name ? getpwnam_r(name, &pw, buf, len, &res)
			 : getpwuid_r(uid, &pw, buf, len, &res);
		if (e != ERANGE || len >= 1024 * 1024)
			break;
		free(buf);
		len *= 4;
	}
	if (!res) {
		free(buf);
		return db_not_found(e) ? -ENOENT : -e;
	}
	*ret_pw = pw;
	*ret_buf = buf;
	return 0;
}

/* The same for groups. */
int group_lookup(const char *name, gid_t gid, struct group *ret_gr, char **ret_buf)
{
	struct group gr, *res = NULL;
	size_t len = 1024;
	char *buf;
	int e;

	for (;;) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
		e = name ? getgrnam_r(name, &gr, buf, len, &res)
			 : getgrgid_r(gid, &gr, buf, len, &res);
		if (e != ERANGE || len >= 1024 * 1024)
			break;
		free(buf);
		len *= 4;
	}
	if (!res) {
		free(buf);
		return db_not_found(e) ? -ENOENT : -e;
	}
	*ret_gr = gr;
	*ret_buf = buf;
	return 0;
}

int set_error(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ---- files the daemon trusts ---- */

/* Kernel filesystems whose files hold text that processes (the attacker's too) choose. */
static const struct {
	unsigned long magic;
	const char *name;
} pseudo_fs[] = {
	{ PROC_SUPER_MAGIC, "procfs" },	      { SYSFS_MAGIC, "sysfs" },
	{ DEBUGFS_MAGIC, "debugfs" },	      { TRACEFS_MAGIC, "tracefs" },
	{ SECURITYFS_MAGIC, "securityfs" },   { CGROUP_SUPER_MAGIC, "cgroupfs" },
	{ CGROUP2_SUPER_MAGIC, "cgroup2fs" },
};

/*
 * FUSE: the owner and mode a FUSE mount shows are whatever its server says,
 * and a user allowed to mount FUSE can mount over a directory of theirs that
 * sits in a root-owned or sticky one.  Neither the file nor a directory
 * above it may be on one.
 */
#define FUSE_MAGIC 0x65735546UL

static bool trusted_owner(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

const char *file_kind_name(mode_t m)
{
	if (S_ISREG(m))
		return "a file";
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "something other than a regular file";
}

/*
 * Checks the opened @fd (a regular file, or a directory when @dir) and the
 * directories above its real path.  @path is the name the caller gave.
 */
static int trusted_check(int fd, const char *path, const char *what, bool dir, struct stat *ret_st,
			 char *reason, size_t reasonlen)
{
	struct stat st, cur;
	struct statfs sfs;
	uid_t child_uid;
	char *real, *slash;
	int r = 0;

	if (fstat(fd, &st) < 0)
		return set_error(reason, reasonlen, -errno, "%s: cannot stat: %s", path,
				 strerror(errno));
	if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
		return set_error(reason, reasonlen, -EINVAL, "%s: not a %s (%s)", path,
				 dir ? "directory" : "regular file", file_kind_name(st.st_mode));
	if (fstatfs(fd, &sfs) < 0)
		return set_error(reason, reasonlen, -errno, "%s: cannot statfs: %s", path,
				 strerror(errno));
	for (size_t i = 0; i < ARRAY_SIZE(pseudo_fs); i++)
		if ((unsigned long)sfs.f_type == pseudo_fs[i].magic)
			return set_error(reason, reasonlen, -EINVAL,
					 "%s: refusing a %s that is on %s", path, what,
					 pseudo_fs[i].name);
	if ((unsigned long)sfs.f_type == FUSE_MAGIC)
		return set_error(
			reason, reasonlen, -EPERM,
			"%s: refusing a %s that is on a FUSE filesystem (its server chooses "
			"the owner and mode it shows)",
			path, what);
	/* Whoever can write it decides what the daemon does. */
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return set_error(
			reason, reasonlen, -EPERM,
			"%s: refusing a %s that is writable by group or others (mode %04o); "
			"run: chmod go-w %s",
			path, what, (unsigned)(st.st_mode & 07777), path);
	if (!trusted_owner(st.st_uid))
		return set_error(
			reason, reasonlen, -EPERM,
			"%s: refusing a %s owned by uid %u: it must belong to root or to the "
			"daemon's user (uid %u)",
			path, what, (unsigned)st.st_uid, (unsigned)geteuid());

	/* The directories of the path that was opened: the one realpath() finds, same inode. */
	real = realpath(path, NULL);
	if (!real)
		return set_error(reason, reasonlen, -errno, "%s: cannot resolve: %s", path,
				 strerror(errno));
	if (stat(real, &cur) < 0 || cur.st_dev != st.st_dev || cur.st_ino != st.st_ino) {
		r = set_error(reason, reasonlen, -EAGAIN, "%s: changed while being checked", path);
		goto out;
	}
	child_uid = st.st_uid;
	while ((slash = strrchr(real, '/')) && real[1]) {
		if (slash == real)
			slash[1] = '\0'; /* the root directory */
		else
			*slash = '\0';
		/* lstat: a component swapped for a symlink since realpath() is a change. */
		if (lstat(real, &cur) < 0) {
			r = set_error(reason, reasonlen, -errno, "%s: directory %s: %s", path, real,
				      strerror(errno));
			goto out;
		}
		if (!S_ISDIR(cur.st_mode)) {
			r = set_error(reason, reasonlen, -EAGAIN, "%s: changed while being checked",
				      path);
			goto out;
		}
		if (!trusted_owner(cur.st_uid)) {
			r = set_error(
				reason, reasonlen, -EPERM,
				"%s: directory %s is owned by uid %u, not root or the daemon's "
				"user",
				path, real, (unsigned)cur.st_uid);
			goto out;
		}
		if (statfs(real, &sfs) == 0 && (unsigned long)sfs.f_type == FUSE_MAGIC) {
			r = set_error(
				reason, reasonlen, -EPERM,
				"%s: directory %s is on a FUSE filesystem (its server chooses "
				"the owner and mode it shows)",
				path, real);
			goto out;
		}
		/*
		 * Sticky (/tmp): others may add entries but not rename or remove
		 * ours, and the entry on our path belongs to root or us.
		 */
		if ((cur.st_mode & (S_IWGRP | S_IWOTH)) &&
		    (!(cur.st_mode & S_ISVTX) || !trusted_owner(child_uid))) {
			r = set_error(
				reason, reasonlen, -EPERM,
				"%s: directory %s is writable by group or others (mode %04o)%s",
				path, real, (unsigned)(cur.st_mode & 07777),
				cur.st_mode & S_ISVTX ? "" : " and not sticky");
			goto out;
		}
		child_uid = cur.st_uid;
	}
	if (ret_st)
		*ret_st = st;
out:
	free(real);
	return r;
}

int trusted_program(const char *cmd, const char *what, char **ret, char *reason, size_t reasonlen)
{
	const char *search, *p, *end;
	char *path = NULL;
	int fd;

	if (strchr(cmd, '/')) {
		path = strdup(cmd);
	} else {
		search = getenv("PATH");
		if (!search || !*search)
			search = "/usr/local/bin:/usr/bin:/bin";
		for (p = search; !path; p = end + 1) {
			struct stat st;
			char *cand;

			end = strchrnul(p, ':');
			if (asprintf(&cand, "%.*s%s%s", (int)(end - p), p, end > p ? "/" : "",
				     cmd) < 0)
				return set_error(reason, reasonlen, -ENOMEM, "%s: out of memory",
						 cmd);
			if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
				path = cand;
			else
				free(cand);
			if (!*end)
				break;
		}
		if (!path)
			return set_error(reason, reasonlen, -ENOENT, "%s: %s not found in $PATH",
					 cmd, what);
	}
	if (!path)
		return set_error(reason, reasonlen, -ENOMEM, "%s: out of memory", cmd);
	fd = trusted_file_open(path, what, NULL, reason, reasonlen);
	if (fd < 0) {
		free(path);
		return fd;
	}
	close(fd);
	*ret = path;
	return 0;
}

int trusted_file_open(const char *path, const char *what, struct stat *ret_st, char *reason,
		      size_t reasonlen)
{
	int fd, r;

	/* O_NONBLOCK: a FIFO put in the file's place must not hang us (it is refused). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return set_error(reason, reasonlen, -errno, "%s: cannot open: %s", path,
				 strerror(errno));
	r = trusted_check(fd, path, what, false, ret_st, reason, reasonlen);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int trusted_file_read(const char *path, const char *what, size_t max, char **ret, size_t *ret_len,
		      struct stat *ret_st, char *reason, size_t reasonlen)
{
	size_t len = 0, cap;
	struct stat st;
	char *buf;
	int fd, r;

	fd = trusted_file_open(path, what, &st, reason, reasonlen);
	if (fd < 0)
		return fd;
	if ((uintmax_t)st.st_size > max) {
		r = -EFBIG;
		goto too_big;
	}
	/* One byte more than the file holds: filling it means the file grew while read. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return set_error(reason, reasonlen, -ENOMEM, "%s: out of memory", path);
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = set_error(reason, reasonlen, -errno, "%s: read error: %s", path,
				      strerror(errno));
			wipe_free(buf, cap);
			close(fd);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			wipe_free(buf, cap);
			close(fd);
			return set_error(reason, reasonlen, -EAGAIN, "%s: changed while being read",
					 path);
		}
	}
	close(fd);
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	if (ret_st)
		*ret_st = st;
	return 0;
too_big:
	close(fd);
	if (max % (1024 * 1024) == 0)
		return set_error(reason, reasonlen, r, "%s: larger than %zu MiB", path,
				 max / (1024 * 1024));
	return set_error(reason, reasonlen, r, "%s: larger than %zu bytes", path, max);
}

int trusted_dir_check(const char *path, const char *what, char *reason, size_t reasonlen)
{
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_DIRECTORY);
	if (fd < 0)
		return set_error(reason, reasonlen, -errno, "%s: cannot open: %s", path,
				 strerror(errno));
	r = trusted_check(fd, path, what, true, NULL, reason, reasonlen);
	close(fd);
	return r;
}
