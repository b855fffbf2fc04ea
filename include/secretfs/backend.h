/*
 * backend.h - the one shape every secret store has.
 *
 * A backend is a static const struct backend_ops found by scheme in the
 * registry (src/backends/registry.c).  A configured instance is a struct
 * backend.  Backends know nothing about caching, FUSE or logging: they return
 * negative errno values and a human reason, and the layers above decide what
 * to log.  Errors:
 *   -ENOENT       not found
 *   -EACCES       denied by the backend
 *   -EAGAIN       throttled or transient (5xx)
 *   -ETIMEDOUT, -EHOSTUNREACH, -ECONNREFUSED, -ECONNRESET   transport
 *                 (-ECONNRESET: the connection was reset or dropped, or the
 *                 body was cut short)
 *   -EBADMSG      a malformed answer: a 2xx whose body is not the document
 *                 asked for (does not parse, wrong shape), as from a proxy
 *                 gone wrong.  Transient; readers see it as -EAGAIN.
 *   -ENOMEM       out of (secure) memory
 *   -EIO          anything else, including a well-formed answer whose
 *                 secret cannot be shown
 * Which of these are transient is decided in one place,
 * backend_error_is_transient() (src/backends/errors.c).
 */
#ifndef SECRETFS_BACKEND_H
#define SECRETFS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretfs/secret.h"

struct config;
struct json_t;
struct selector; /* jansson's json_t, for describe() */

#define BACKEND_VERSION_MAX 64
#define BACKEND_REASON_MAX  256

/* What a fetch learnt besides the value. */
struct backend_info {
	char version[BACKEND_VERSION_MAX]; /* the store's version id, "" when unknown */
	uint64_t ttl_hint_usec; /* the store's own TTL (Vault lease_duration), 0 = none */
};

/* Flags of a listing entry, stored as the one-byte value of a listing table. */
enum {
	BACKEND_LIST_SECRET = 1 << 0, /* the name is a secret */
	BACKEND_LIST_FOLDER = 1 << 1, /* the name is a prefix of other secrets */
};

struct backend;

/*
 * Events a backend may raise from its own threads.  The source layer wires
 * them to the cache and the log; both may be called concurrently with any op.
 */
struct backend_events {
	/* The store changed: cached values and listings are out of date. */
	void (*changed)(void *ctx);
	/* Something went wrong outside a request; @reason names file and line. */
	void (*error)(void *ctx, const char *reason);
	void *ctx;
};

struct backend_ops {
	/* Scheme in SOURCE, e.g. "file" for "file:/etc/secretfs/store.json". */
	const char *scheme;
	/*
	 * The store has no folders at all (Doppler): when the listing is denied, a
	 * name that no fetch finds is not taken for a folder we may not see,
	 * and the fetch's own error (EACCES) is the answer.
	 */
	bool no_folders;
	/*
	 * Called once, after daemonizing and after the locked heap is set up
	 * (so that a token read here lands in it), before mounting: parse @arg (what
	 * follows "scheme:"), check the store is usable, start no threads.
	 * @cfg holds the settings of every section (a backend reads its own).
	 * May set b->priv.  Returns 0 or a negative errno with @reason set.
	 */
	int (*init)(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		    size_t reasonlen);
	/* Called after daemonizing; may start threads.  Optional. */
	int (*start)(struct backend *b, char *reason, size_t reasonlen);
	/* Stops the threads start() started; no events are raised afterwards.  Optional. */
	void (*stop)(struct backend *b);
	/* Frees b->priv, wiping whatever it held.  stop() has run. */
	void (*done)(struct backend *b);
	/*
	 * Fetches the secret @id ("prod/db", never empty, never with "." or ".."
	 * components).  On success *ret_value holds a new reference owned by the
	 * caller: a SECRET_BLOB, or a SECRET_TABLE for a secret whose value is an
	 * object.  Called from any thread; must be thread-safe.
	 */
	int (*fetch)(struct backend *b, const char *id, struct secret **ret_value,
		     struct backend_info *ret_info, char *reason, size_t reasonlen);
	/*
	 * Fetches the version of @id that @sel names (selector.h): never
	 * SELECTOR_CURRENT, which is fetch().  The same contract as fetch;
	 * ret_info->version is the version it resolved to.  -ENOENT when there
	 * is no such version, when it is deleted or destroyed, and when the
	 * store cannot serve this kind of selector; @reason says which (fs logs
	 * it at debug level).  NULL when the store keeps no versions.
	 */
	int (*fetch_at)(struct backend *b, const char *id, const struct selector *sel,
			struct secret **ret_value, struct backend_info *ret_info, char *reason,
			size_t reasonlen);
	/*
	 * The versions of @id, newest first: *ret_list gets a JSON array of
	 * {"id", "labels": [...], "created": RFC 3339 or absent, "state":
	 * "enabled" | "deleted" | "destroyed" | "disabled"} (kit_version_entry()),
	 * never a value, owned by the caller.  -ENOENT when @id does not exist.
	 * NULL when the store cannot list versions.  Any thread.
	 */
	int (*list_versions)(struct backend *b, const char *id, struct json_t **ret_list,
			     char *reason, size_t reasonlen);
	/*
	 * Lists the direct children of the folder @prefix ("" is the top): a
	 * SECRET_TABLE whose values are one byte of BACKEND_LIST_* flags.
	 * -ENOENT when the folder does not exist.  NULL when the store cannot
	 * list; then every name is looked up by fetching it.
	 */
	int (*list)(struct backend *b, const char *prefix, struct secret **ret_listing,
		    char *reason, size_t reasonlen);
	/*
	 * Adds what an operator wants to know about this instance to the JSON
	 * object @obj for `secretfs ctl status`: where the store is, how it
	 * authenticates ("auth": method, state, "token_expires" in RFC 3339,
	 * "renewable"), a document version.  Never a token, a key or a value.
	 * Called from the control thread at any time after init; must be
	 * thread-safe.  Returns 0 or -ENOMEM.  Optional.
	 */
	int (*describe)(struct backend *b, struct json_t *obj);
	/*
	 * Called after every cached value was dropped (`secretfs ctl flush`, a
	 * store change): let go of every copy of a value the backend still
	 * holds, such as values kept for revalidation and idle connections
	 * whose buffers hold the last response.  Any thread.  Optional.
	 */
	void (*forget)(struct backend *b);
	/*
	 * Called before `secretfs ctl refresh` fetches again: whatever the
	 * backend would serve without asking the store (Doppler's document
	 * within its ttl) must be asked about on the next fetch.  Unlike
	 * forget(), what it keeps to revalidate cheaply (an ETag) may stay.
	 * Any thread.  Optional.
	 */
	void (*revalidate)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	char *source; /* the SOURCE string as given, for logs and audit */
	struct backend_events events;
	void *priv;
	/*
	 * Set by init when the source works but the user should hear about
	 * something (TLS verification turned off); "" otherwise.  Backends do
	 * not log: main prints it once, as "secretfs: warning: ...".
	 */
	char warning[BACKEND_REASON_MAX];
};

/* Finds the backend for @source ("file:...") and runs its init. */
int backend_open(const char *source, const struct config *cfg, const struct backend_events *events,
		 struct backend **ret, char *reason, size_t reasonlen);
void backend_close(struct backend *b);
/*
 * Whether @err is transient: stale values may be served over it, and the
 * HTTP layer retries it.
 */
int backend_error_is_transient(int err);
/*
 * Holds a backend's error to docs/design.md section 8's set (ENOENT EACCES EAGAIN ETIMEDOUT
 * EHOSTUNREACH ENETUNREACH ECONNREFUSED ECONNRESET ENOMEM EIO): another
 * transient errno (EBADMSG, EBUSY, ...) becomes -EAGAIN, anything else -EIO,
 * so transient stays transient.  Non-negative values pass.
 */
int backend_error_normalise(int err);

#endif
