/*
 * service.c - readiness, reload and stop, as a supervisor sees them.
 *
 * Under systemd (Type=notify) the daemon says READY=1 once the mount is
 * served, RELOADING=1 ... READY=1 around a SIGHUP reload (the protocol of
 * systemd 253's Type=notify-reload; older managers accept it too) and
 * STOPPING=1 when the loop ends, each with a STATUS= line for `systemctl
 * status`.  Without systemd, a ready file does the same job for a container
 * entrypoint: it exists exactly while the mount is served.
 *
 * sd_notify() is a no-op without $NOTIFY_SOCKET and its failures are ignored,
 * as sd_notify(3) recommends: the daemon serves whether or not anyone listens.
 * Reloads run on the reload thread, everything else on the main thread; the
 * serving status is written once, before `ready` is published.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "secretfs/service.h"
#include "secretfs/util.h"

static char *ready_path;     /* absolute, or NULL: no ready file */
static char *serving_status; /* "Serving SOURCE at MOUNTPOINT", set before ready */
static bool ready;	     /* atomic: READY=1 was sent and the ready file written */

/* A newline would end the STATUS= line and start another variable: keep one line. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

int service_init(const char *ready_file, char *err, size_t errlen)
{
	_cleanup_free_ char *abs = NULL, *dir = NULL;
	char cwd[PATH_MAX], *slash;

	if (!ready_file)
		return 0;
	if (!*ready_file)
		return set_error(err, errlen, -EINVAL, "--ready-file: empty path");
	/* A daemon runs from "/": the path must not move when it detaches. */
	if (ready_file[0] == '/') {
		abs = strdup(ready_file);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return set_error(err, errlen, -errno, "--ready-file %s: getcwd: %m",
					 ready_file);
		if (asprintf(&abs, "%s/%s", cwd, ready_file) < 0)
			abs = NULL;
	}
	if (!abs)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	if (abs[strlen(abs) - 1] == '/')
		return set_error(err, errlen, -EISDIR, "--ready-file %s: names a directory", abs);
	dir = strdup(abs);
	if (!dir)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	slash = strrchr(dir, '/');
	slash[slash == dir] = '\0'; /* "/ready" -> "/" */
	/* Said now, before anything is mounted, rather than after the mount. */
	if (access(dir, W_OK | X_OK) < 0)
		return set_error(err, errlen, -errno,
				 "--ready-file %s: cannot create files in %s: %m", abs, dir);
	/* A file left by a daemon that was killed would announce a mount that is not there. */
	if (unlink(abs) < 0 && errno != ENOENT)
		return set_error(err, errlen, -errno,
				 "--ready-file %s: cannot remove the old file: %m", abs);
	free(ready_path);
	ready_path = TAKE_PTR(abs);
	return 0;
}

/* The pid and a newline, like a pid file; a waiter only needs the file to exist. */
static int write_ready_file(char *err, size_t errlen)
{
	_cleanup_free_ char *tmp = NULL;
	int fd, r;

	if (asprintf(&tmp, "%s.XXXXXX", ready_path) < 0)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return set_error(err, errlen, -errno, "--ready-file %s: cannot create: %m",
				 ready_path);
	r = fchmod(fd, 0644) < 0 || dprintf(fd, "%ld\n", (long)getpid()) < 0 ? -errno : 0;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, ready_path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		errno = -r;
		return set_error(err, errlen, r, "--ready-file %s: cannot write: %m", ready_path);
	}
	return 0;
}

int service_ready(const char *source, const char *mountpoint, char *err, size_t errlen)
{
	int r;

	free(serving_status);
	if (asprintf(&serving_status, "Serving %s at %s", source, mountpoint) < 0) {
		serving_status = NULL;
		return set_error(err, errlen, -ENOMEM, "out of memory");
	}
	one_line(serving_status);
	if (ready_path) {
		r = write_ready_file(err, errlen);
		if (r < 0)
			return r;
	}
	sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%ld", serving_status, (long)getpid());
	__atomic_store_n(&ready, true, __ATOMIC_RELEASE);
	return 0;
}

void service_reloading(void)
{
	/* A SIGHUP before the first READY=1 must not announce readiness early. */
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return;
	sd_notifyf(0, "RELOADING=1\nSTATUS=Reloading\nMONOTONIC_USEC=%" PRIu64, now_usec());
}

void service_reloaded(const char *failure)
{
	_cleanup_free_ char *why = NULL;

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return;
	if (!failure) {
		sd_notifyf(0, "READY=1\nSTATUS=%s", serving_status);
		return;
	}
	why = strdup(failure);
	if (why)
		one_line(why);
	sd_notifyf(0, "READY=1\nSTATUS=%s; reload failed: %s", serving_status,
		   why ? why : "out of memory");
}

void service_stopping(void)
{
	if (!__atomic_exchange_n(&ready, false, __ATOMIC_ACQ_REL))
		return;
	/* First, so that nobody who waits on the file starts using a mount that is going away. */
	if (ready_path)
		unlink(ready_path);
	sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
}

void service_done(void)
{
	free(ready_path);
	ready_path = NULL;
	free(serving_status);
	serving_status = NULL;
}
