/*
 * util.h - small helpers shared by every module: cleanup attributes in the
 * systemd style, time, and parsing of durations and sizes.
 */
#ifndef SECRETFS_UTIL_H
#define SECRETFS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ __attribute__((cleanup(freep)))

static inline void *take_ptr_(void **p)
{
	void *v = *p;
	*p = NULL;
	return v;
}
#define TAKE_PTR(p) ((__typeof__(p))take_ptr_((void **)&(p)))

uint64_t now_usec(void);      /* CLOCK_MONOTONIC */
uint64_t realtime_usec(void); /* CLOCK_REALTIME */

/*
 * "300", "1.5s", "250ms", "5m", "2h", "1d" -> microseconds.  A bare number is
 * seconds.  Returns 0 or -EINVAL.
 */
int parse_duration(const char *s, uint64_t *ret_usec);
/* "1048576", "64K", "16M", "1G" -> bytes.  Returns 0 or -EINVAL. */
int parse_size(const char *s, size_t *ret);
/* "1", "true", "yes", "on" / "0", "false", "no", "off".  Returns 0 or -EINVAL. */
int parse_bool(const char *s, bool *ret);
/* Decimal unsigned with range check.  Returns 0 or -EINVAL/-ERANGE. */
int parse_uint(const char *s, uint64_t max, uint64_t *ret);

/* Wipes and frees a heap string; NULL is a no-op. */
void wipe_free(void *p, size_t len);

/* A CLOCK_REALTIME time as RFC 3339 UTC, "2026-11-26T12:00:00Z"; @len >= 21.  0 or -EINVAL. */
int format_rfc3339(uint64_t realtime_usec, char *buf, size_t len);

/*
 * getpwnam_r(), or getpwuid_r() when @name is NULL (getgrnam_r/getgrgid_r for
 * groups).  *ret_buf holds the strings the result points to; the caller
 * frees it.  Returns 0, -ENOENT when there is no such entry (however NSS
 * says so), or another negative errno.
 */
struct passwd;
struct group;
struct stat;
int user_lookup(const char *name, uid_t uid, struct passwd *ret_pw, char **ret_buf);
int group_lookup(const char *name, gid_t gid, struct group *ret_gr, char **ret_buf);

/*
 * Files that can change what the daemon decides (the config file, the
 * policy, a store, credential and CA files) are opened only through these,
 * which check them as OpenSSH's safe_path() does: the file is a regular
 * file, not on procfs or sysfs, owned by root or the daemon's user (the
 * effective uid) and not writable by group or others; so is every
 * directory above it on the path reached after symlinks, except that a
 * directory writable by others is accepted when it is sticky (/tmp), since
 * nobody else can then rename or replace the entry, itself owned by root or
 * the daemon's user.  The checks are made on the descriptor that was
 * opened (fstat, fstatfs; the directories of its realpath, which must lead
 * to the same inode), so the file checked is the file read.
 *
 * @what names the file in a refusal: "PATH: refusing a WHAT that is
 * writable by group or others (mode 0666); run: chmod go-w PATH".  Errors
 * (with @reason naming the file and why): those of open(2), -EINVAL for
 * a file that is not a regular file or is on procfs or sysfs, -EPERM for
 * an owner or mode, -EAGAIN when the path changed while being checked.
 */
/* Returns a descriptor (O_RDONLY, O_CLOEXEC, O_NONBLOCK); *ret_st (may be NULL) is its fstat. */
int trusted_file_open(const char *path, const char *what, struct stat *ret_st, char *reason,
		      size_t reasonlen);
/*
 * trusted_file_open(), then the whole file, at most @max bytes (-EFBIG past
 * it), into *ret, NUL-terminated.  The caller wipes and frees it:
 * wipe_free(*ret, *ret_len + 1).
 */
int trusted_file_read(const char *path, const char *what, size_t max, char **ret, size_t *ret_len,
		      struct stat *ret_st, char *reason, size_t reasonlen);
/* "a directory", "a FIFO", "a character device"...: what a stat mode is, for messages. */
const char *file_kind_name(mode_t m);

/*
 * Formats an error text into @err (when @errlen) and returns @r: the one
 * helper behind "return set_error(err, errlen, -EINVAL, "%s:%u: ...", ...)".
 */
int set_error(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The same checks for a directory (a CA directory): itself, as the file, and those above it. */
int trusted_dir_check(const char *path, const char *what, char *reason, size_t reasonlen);
/*
 * A program the daemon runs (AWS credential_process): @cmd is found like
 * execvp(3) does (in $PATH when it has no '/'), and the file found gets the
 * checks of trusted_file_open().  *ret is the path to run (the caller frees
 * it), so that the program checked is the one started.
 */
int trusted_program(const char *cmd, const char *what, char **ret, char *reason, size_t reasonlen);

#endif
