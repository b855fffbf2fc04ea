/*
 * control.h - the admin control interface: a unix socket that answers
 * `secretfs ctl` (status, metrics, flush, refresh, reload).
 *
 * Only root, the daemon's own user and the configured admin uid are served;
 * the peer is checked with SO_PEERCRED before a byte of the request is read,
 * and everyone else gets "error: permission denied" (and is counted).  The
 * control interface never returns a secret value: status and metrics hold
 * counts, names and versions; flush and refresh answer with secret ids.
 *
 * Protocol: the client sends one line, "COMMAND[ ARGUMENT]\n", at most
 * CONTROL_REQUEST_MAX bytes; the daemon answers once and closes.  status
 * answers JSON, metrics the Prometheus text format, the others one line,
 * "ok ..." or "error: ...".
 */
#ifndef SECRETFS_CONTROL_H
#define SECRETFS_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "secretfs/auditlog.h"
#include "secretfs/fs.h"
#include "secretfs/source.h"

#define CONTROL_REQUEST_MAX 4200 /* a command, a blank and a PATH_MAX path */
#define CONTROL_ERR_MAX	    512

enum control_command {
	CONTROL_STATUS,
	CONTROL_METRICS,
	CONTROL_FLUSH,	 /* arg: a tree path, or NULL for everything */
	CONTROL_REFRESH, /* arg: a tree path, or NULL for everything cached */
	CONTROL_RELOAD,
};

struct control_request {
	enum control_command command;
	/* In the parsed line: a tree path with no leading or trailing '/'; NULL if none. */
	const char *arg;
};

/*
 * Parses one request line (@line, @len bytes, the newline optional; modified
 * in place: the path is normalised there).  Returns 0, or -EINVAL with @err
 * saying what is wrong (an unknown command, a missing or extra argument, a
 * path with "." or ".." or control characters).
 */
int control_parse_request(char *line, size_t len, struct control_request *ret, char *err,
			  size_t errlen);

/*
 * The socket path for the setting @setting: NULL or "" is none (*ret =
 * NULL), an absolute path is itself, "auto" is $RUNTIME_DIRECTORY/secretfs.sock
 * (the first directory of the list) or else /run/secretfs/NAME.sock, NAME
 * the last component of @mountpoint (and /run/secretfs is created, 0755).
 * Returns 0 or a negative errno with @err set.
 */
int control_socket_path(const char *setting, const char *mountpoint, char **ret, char *err,
			size_t errlen);

/* What the control thread works with; everything borrowed, alive until control_stop(). */
struct control_params {
	const char *socket_path; /* from control_socket_path() */
	const char *admin;	 /* NAME or UID, or NULL: root and the daemon's user only */
	const char *mountpoint;
	const char *policy_path; /* NULL: no policy */
	struct source *source;
	struct fs *fs;		/* NULL in tests: no access counters */
	struct auditlog *audit; /* NULL: no audit */
	/*
	 * The SIGHUP work (policy reload, audit reopen).  Returns 0 with @msg
	 * saying what was done, or a negative errno with @msg saying what failed.
	 */
	int (*reload)(void *ctx, char *msg, size_t msglen);
	void *reload_ctx;
};

struct control;

/*
 * Resolves the admin, creates the socket (replacing a stale one, refusing to
 * take over a live one or a file that is not a socket) and starts the thread
 * that serves it.  The socket is 0600, or 0660 with the admin's primary group
 * when the admin is another user, owned by the daemon's user.
 */
int control_start(const struct control_params *p, struct control **ret, char *err, size_t errlen);
/* Stops the thread and removes the socket (if it is still ours).  NULL is a no-op. */
void control_stop(struct control *c);

/* `secretfs ctl [--socket PATH] COMMAND [ARG]`: 0 ok, 1 "error:", 2 usage or connection. */
int control_client_main(int argc, char **argv);

#endif
