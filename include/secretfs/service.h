/*
 * service.h - telling a supervisor how the daemon is doing.
 *
 * Two channels, both optional: sd_notify(3) messages when systemd started us
 * with Type=notify ($NOTIFY_SOCKET), and a ready file (--ready-file PATH) for
 * supervisors without systemd, e.g. a container entrypoint that waits for the
 * mount.  Only main calls these; they return errors with a reason and never
 * log.  A lost notification is not an error: the daemon serves regardless.
 */
#ifndef SECRETFS_SERVICE_H
#define SECRETFS_SERVICE_H

#include <stddef.h>

/*
 * Before the mount: remembers @ready_file (NULL: none) as an absolute path,
 * checks that its directory is writable and removes a stale file left by a
 * daemon that was killed, so that nobody waits on a lie.  0 or -errno.
 */
int service_init(const char *ready_file, char *err, size_t errlen);

/*
 * Once the mount is served: STATUS=Serving SOURCE at MOUNTPOINT, READY=1 and
 * MAINPID=, then the ready file (written atomically: a temporary file and a
 * rename).  Fails only when the ready file cannot be written.
 */
int service_ready(const char *source, const char *mountpoint, char *err, size_t errlen);

/* SIGHUP: RELOADING=1 with MONOTONIC_USEC= and STATUS=Reloading. */
void service_reloading(void);

/* The reload is over: READY=1 and the serving status, with @failure appended if not NULL. */
void service_reloaded(const char *failure);

/*
 * The loop has ended: removes the ready file, then STOPPING=1 and
 * STATUS=Stopping.  Does nothing unless service_ready() succeeded, and only
 * once.
 */
void service_stopping(void);

/* Frees what service_init() and service_ready() kept. */
void service_done(void);

#endif
