/*
 * util.c - time, and the parsers for durations, sizes and booleans that the
 * command line and the config file share, so both accept the same spellings.
 */
#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
