/*
 * kit.h - what every network backend shares (private to src/backends).
 *
 * Vault and AWS were written side by side and repeated each other; this is
 * the one copy of those pieces, for them and for the backends after them
 * (Google Secret Manager, Azure Key Vault, ...).  docs/design.md section 10
 * says which backend uses what.
 *
 *   time       kit_parse_time(): RFC 3339 (and the ISO 8601 forms AWS sends)
 *   errors     kit_status_errno(), kit_error_find(): HTTP status and a
 *              store's own error code ("NOT_FOUND", "SecretNotFound",
 *              "ThrottlingException") -> errno, in one table per backend;
 *              kit_parse_json_error(): {"error":{"code","message","status"}}
 *   reasons    kit_reason_prefix(), kit_format_duration()
 *   jitter     kit_random_below(), kit_backoff_usec(), kit_sleep_usec()
 *   env        kit_env(), kit_env_take()
 *   files      kit_read_credential(), kit_read_secret_file(): the owner and
 *              mode checks of trusted_file_read(), into locked memory
 *   http       kit_http_client_new(): [http] plus the backend's environment
 *              fallbacks, the plain-HTTP refusal and the `insecure` warning
 *   paging     kit_paginate() with kit_page_token() (a token in the body:
 *              AWS NextToken, Google nextPageToken) or kit_page_link() (a
 *              URL: Azure nextLink, kept on the same scheme, host and port)
 *   tokens     struct kit_token_source: a bearer token (or any credential)
 *              with an expiry, refreshed before it expires by one thread at
 *              a time, with jittered retry; see kit_token_get()
 *
 * Like the rest of src/backends, nothing here logs: functions return a
 * negative errno and write a reason that never quotes a secret.
 */
#ifndef SECRETFS_BACKENDS_KIT_H
#define SECRETFS_BACKENDS_KIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretfs/backend.h"
#include "secretfs/http.h"
#include "secretfs/secret.h"

struct config;
struct json_t;

/* ---- time (kit_parse.c) ---- */

enum {
	/*
	 * Also the ISO 8601 forms AWS's endpoints and credential_process
	 * programs send, as botocore reads them: a ' ' for the 'T', and
	 * offsets +HHMM and +HH besides +HH:MM.
	 */
	KIT_TIME_ISO8601 = 1 << 0,
};

/*
 * "2024-02-29T12:00:00Z", "2018-04-17T11:35:54.466476078-04:00" -> the
 * microseconds since the epoch (negative before 1970).  Strict RFC 3339:
 * four-digit year, a real calendar date (2024-02-31 and 2023-02-29 are
 * refused, not rolled over), hours to 23, minutes to 59, a leap second 60,
 * any number of fraction digits (cut to microseconds), 'Z' or an offset
 * +HH:MM; 'T'/'t' and 'Z'/'z' in either case.  Nothing may follow.
 * Returns 0 or -EINVAL (@s NULL too); *ret_usec is written only on success.
 */
int kit_parse_time(const char *s, unsigned flags, int64_t *ret_usec);

/* ---- versions (kit_parse.c) ---- */

/*
 * One entry of a versions listing (backend_ops.list_versions): {"id",
 * "labels": [...], "created": RFC 3339 (left out when @created_usec is 0),
 * "state"}.  NULL on ENOMEM.  Never a value.
 */
struct json_t *kit_version_entry(const char *id, const char *const *labels, size_t nlabels,
				 int64_t created_usec, const char *state);

/* ---- errors (kit_parse.c) ---- */

/*
 * HTTP status -> errno, for a backend: 0 for 2xx, otherwise one of
 * backend.h's set.  One table, http_status_to_errno(), narrowed: 401 and
 * 403 -EACCES, 404 -ENOENT, 408 -ETIMEDOUT, 409 -EBUSY (transient), 412,
 * 429 and other 5xx -EAGAIN; everything else -EIO (a 400 or 405 is the
 * store saying no in its own words, nothing to wait for).
 */
int kit_status_errno(long status);

enum {
	KIT_CODE_THROTTLED = 1 << 0, /* retry here with backoff (AWS sends these as 400) */
	KIT_CODE_REAUTH = 1 << 1,    /* the token is no longer good: refresh once, send again */
};

/* A store's own error code: one row of a backend's table. */
struct kit_error_code {
	const char *code; /* "NOT_FOUND", "SecretNotFound", "ThrottlingException" */
	int err;	  /* negative errno; 0: let the HTTP status decide */
	unsigned flags;	  /* KIT_CODE_* */
};

/* The row of @table for @code (exact, case-sensitive), or NULL (@code NULL or "" too). */
const struct kit_error_code *kit_error_find(const struct kit_error_code *table, size_t n,
					    const char *code);
/* @code's errno from @table, else kit_status_errno(@status); never 0 for a non-2xx. */
int kit_error_errno(const struct kit_error_code *table, size_t n, const char *code, long status);

/*
 * Appends @n bytes of @s (from a store's answer) to @buf as printable
 * ASCII: blanks and control characters become one space, bytes past 0x7e
 * '?'; stops when @buf (of @buflen, NUL-ended at *pos) is full.
 */
void kit_append_clean(char *buf, size_t buflen, size_t *pos, const char *s, size_t n);
/* Whether @s (@len bytes) is a credential: 1 to @max printable ASCII characters, no blank. */
bool kit_credential_is_valid(const char *s, size_t len, size_t max);

#define KIT_ERROR_CODE_MAX    64
#define KIT_ERROR_MESSAGE_MAX 160

/*
 * The error document of Google and Azure (and others of that family):
 * {"error":{"code":..,"message":"..","status":".."}}.  @code_member names
 * the member that holds the symbolic code: "status" for Google (whose
 * "code" is the HTTP status as a number), "code" for Azure.  The code goes
 * to @code (printable ASCII, cut to fit, "" when absent), the message's
 * first line to @msg (control characters blanked, cut to fit, "" when
 * absent).  Never fails: an unreadable body gives two empty strings.
 */
void kit_parse_json_error(const char *body, size_t len, const char *code_member, char *code,
			  size_t codelen, char *msg, size_t msglen);

/* ---- reasons and jitter (kit.c) ---- */

/* Prefixes @reason with "@fmt...: " (a reason already written by a callee). */
void kit_reason_prefix(char *reason, size_t reasonlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "45s", "3m05s", "2h10m": a duration for messages. */
void kit_format_duration(uint64_t usec, char *buf, size_t len);
/* Uniform in [0, @n) from getrandom(); 0 when @n is 0. */
uint64_t kit_random_below(uint64_t n);
/*
 * Full jitter: uniform in [0, min(@max, @base * 2^@retry)] (AWS's "full
 * jitter"), so that clients that failed together do not retry together.
 */
uint64_t kit_backoff_usec(unsigned retry, uint64_t base_usec, uint64_t max_usec);
/* Sleeps @usec, resuming after signals. */
void kit_sleep_usec(uint64_t usec);

/* ---- the environment (kit.c) ---- */

/* getenv(@name) when set and not empty, else NULL. */
const char *kit_env(const char *name);
/*
 * Takes a secret from the environment: copies $@name, then wipes every
 * "NAME=" entry of environ where it lives (the first ones are the block
 * /proc/PID/environ shows) and unsets it, so that neither a reader of /proc
 * nor a child sees it.  Returns a malloc'ed copy (the caller wipes it with
 * wipe_free(s, strlen(s))), or NULL when it was unset, empty or on ENOMEM;
 * the variable is gone either way.  A later take of the same @name (a
 * string literal) returns the value taken first, kept in locked memory: two
 * sources of one kind share it, and an optional source reopens with it.
 */
char *kit_env_take(const char *name);
/* The home directory: $HOME, else the passwd entry of the real uid; NULL if none. */
const char *kit_home_dir(void);

/* ---- credential files (kit.c) ---- */

/*
 * A small credential file (a token, a role_id, a JWT): read through
 * trusted_file_read(), so owner and mode are checked like the policy's (a
 * token that another user can write or swap decides whose identity the
 * daemon takes).  The file is at most @max bytes; surrounding blanks (a
 * final newline) are dropped, and what is left must be one or more
 * printable ASCII characters (0x21-0x7e) and nothing else.  *ret is a
 * secret holding the string and its NUL (len counts the NUL).  Every
 * intermediate buffer is wiped.
 *
 * Errors, with @reason "@what PATH: why": those of trusted_file_read()
 * (-ENOENT when missing, -EPERM for an owner or mode, -EFBIG past @max),
 * -EINVAL when empty or not one line of printable characters, -ENOMEM.
 */
int kit_read_credential(const char *path, const char *what, size_t max, struct secret **ret,
			char *reason, size_t reasonlen);
/*
 * A whole credential document (a service account key, a JSON credentials
 * file) of at most @max bytes, through trusted_file_read(), into a secret
 * holding its bytes and a NUL (len counts the NUL).  Errors as above, with
 * @reason "@what PATH: why"; -EINVAL for an empty file.
 */
int kit_read_secret_file(const char *path, const char *what, size_t max, struct secret **ret,
			 char *reason, size_t reasonlen);
/* The string of a credential secret made by the two above (or NUL-ended by hand). */
static inline const char *kit_cred_str(const struct secret *s)
{
	return (const char *)s->data;
}

/* ---- HTTP settings and TLS policy (kit.c) ---- */

struct kit_http_opts {
	const char *name;	/* "vault", "aws-sm": starts every reason and warning */
	const char *url;	/* the endpoint, for messages */
	bool tls;		/* every endpoint the backend talks to is https:// */
	const char *credential; /* what plain HTTP would expose: "the Vault token" */
	/* Environment fallbacks for [http] settings left unset (NULL: none). */
	const char *ca_file_env;     /* VAULT_CACERT, AWS_CA_BUNDLE */
	const char *ca_path_env;     /* VAULT_CAPATH */
	const char *client_cert_env; /* VAULT_CLIENT_CERT */
	const char *client_key_env;  /* VAULT_CLIENT_KEY */
};

/*
 * The http_config for a backend: [http] (ca_file, ca_path, client_cert,
 * client_key, insecure, timeouts, max_body, max_attempts), each unset
 * setting taken from @o's environment variable.  Then the TLS policy every
 * backend follows: plain HTTP is refused (-EPERM, "NAME: URL is plain HTTP,
 * which would send CREDENTIAL and the secrets in clear: use https://, or
 * pass -o insecure") unless `insecure` was given, and with `insecure` the
 * user is warned through @warning (for backend.warning: "NAME URL: TLS
 * certificate verification is off (-o insecure): anyone on the network path
 * can read CREDENTIAL and the secrets").  The strings in *ret point into
 * @cfg and the environment.  Returns 0 or -EPERM.
 */
int kit_http_config(const struct config *cfg, const struct kit_http_opts *o,
		    struct http_config *ret, char *warning, size_t warninglen, char *reason,
		    size_t reasonlen);
/* kit_http_config(), then http_client_new(); a reason starts "NAME: ". */
int kit_http_client_new(const struct config *cfg, const struct kit_http_opts *o,
			struct http_client **ret, char *warning, size_t warninglen, char *reason,
			size_t reasonlen);

/* ---- paging (kit.c and kit_parse.c) ---- */

/*
 * Fetches one page.  @next is NULL for the first page, else what the
 * previous page gave (a token or a URL).  Sets *ret_next to a malloc'ed
 * marker for the next page, or NULL after the last one.  Returns 0 or a
 * negative errno with @reason set.
 */
typedef int (*kit_page_fn)(void *ctx, const char *next, char **ret_next, char *reason,
			   size_t reasonlen);
/*
 * Calls @page until it gives no next marker, at most @max_pages times
 * (past that, -EFBIG and "WHAT: more than N pages").  Pages may be empty
 * and still have a next marker (Parameter Store).  The markers are freed.
 */
int kit_paginate(unsigned max_pages, kit_page_fn page, void *ctx, const char *what, char *reason,
		 size_t reasonlen);
/*
 * The next-page token in the parsed answer @root: member @member
 * ("NextToken", "nextPageToken").  Absent, null or "" ends the paging
 * (*ret = NULL).  Anything but a string of 1 to 8192 printable ASCII
 * characters is -EBADMSG.  *ret is malloc'ed.
 */
int kit_page_token(const struct json_t *root, const char *member, char **ret, char *reason,
		   size_t reasonlen);
/*
 * The next-page URL in @root's @member ("nextLink"), as kit_page_token(),
 * but it must be an absolute URL with the same scheme, host and port as
 * @base (the first request's URL; a port left out is the scheme's
 * default), or it is refused with -EIO: a store's answer may not send our
 * bearer token elsewhere.
 */
int kit_page_link(const struct json_t *root, const char *member, const char *base, char **ret,
		  char *reason, size_t reasonlen);
/* Whether @url has the same scheme, host and port as @base (case-insensitive). */
bool kit_same_origin(const char *base, const char *url);
/*
 * @url with "NAME=VALUE" appended to its query ('?' or '&'), VALUE
 * percent-encoded.  Malloc'ed; NULL on ENOMEM.
 */
char *kit_url_add_query(const char *url, const char *name, const char *value);

/* ---- the token source (kit_token.c) ---- */

/*
 * Fetches a new token: *ret_token a secret holding it (a bearer token and
 * its NUL, or any credential blob the backend packs), *ret_expires_usec
 * when it expires (CLOCK_REALTIME, 0 = never).  Called by one thread at a
 * time, without the source's lock.  Returns 0 or a negative errno with
 * @reason set (it becomes part of the reason of kit_token_get()).
 */
typedef int (*kit_token_fetch_fn)(void *ctx, struct secret **ret_token, uint64_t *ret_expires_usec,
				  char *reason, size_t reasonlen);

struct kit_token_config {
	const char *what;	  /* "the Google access token": for reasons */
	kit_token_fetch_fn fetch; /* NULL: the token is installed by hand and never refreshed */
	void *ctx;
	/* A token that expires within this is refreshed; 0: 5 minutes. */
	uint64_t refresh_before_usec;
	/*
	 * After a failed refresh, none is tried again before a jittered
	 * backoff: between half and all of retry_min_usec doubled per failure
	 * in a row, at most retry_max_usec.  0: 1 s and 60 s.
	 */
	uint64_t retry_min_usec, retry_max_usec;
	/* How long get() waits for another thread's refresh (fetch_timeout); 0: 30 s. */
	uint64_t wait_usec;
};

struct kit_token_source;

/* A token for one request: holds a reference, so a refresh never pulls it away. */
struct kit_token_ref {
	struct secret *s;
	uint64_t gen;	       /* which token this is, for kit_token_invalidate() */
	uint64_t expires_usec; /* CLOCK_REALTIME, 0 = never */
};

int kit_token_new(const struct kit_token_config *cfg, struct kit_token_source **ret);
/* Wipes the token.  No get() may be running. */
void kit_token_free(struct kit_token_source *ts);
/*
 * Installs @token (taken; a new generation) expiring at @expires_usec: a
 * token obtained at init, or by a login the backend drives itself.
 * Returns the new generation.
 */
uint64_t kit_token_set(struct kit_token_source *ts, struct secret *token, uint64_t expires_usec);
/*
 * A renewal: the token of generation @gen now expires at @expires_usec.
 * Returns false (and changes nothing) when @gen is no longer current, so a
 * slow renewal of an old token cannot overwrite a newer one.
 */
bool kit_token_extend(struct kit_token_source *ts, uint64_t gen, uint64_t expires_usec);
/*
 * The current token for one request:
 *   - fresh (not within refresh_before of its expiry): returned at once;
 *   - within the window but not expired: one caller refreshes, the others
 *     go on with the current token meanwhile; a failed refresh keeps it
 *     (the next try after a jittered backoff);
 *   - expired, missing or invalidated: one caller refreshes and the others
 *     wait for it, at most wait_usec (then -ETIMEDOUT); after a failed
 *     refresh, callers get its error until the backoff has passed instead of
 *     hammering the token endpoint.
 * A refresh that finds a newer token installed meanwhile (kit_token_set())
 * drops its own.  Errors: the fetch's (reason "WHAT could not be
 * refreshed: why"), -EACCES when the token expired and there is no fetch
 * ("WHAT has expired"), -ENOKEY when there is neither a token nor a fetch,
 * -ETIMEDOUT.  Thread-safe.
 */
int kit_token_get(struct kit_token_source *ts, struct kit_token_ref *ret, char *reason,
		  size_t reasonlen);
void kit_token_put(struct kit_token_ref *r);
/*
 * The store refused the token of generation @gen (a 401): the next get()
 * refreshes it even if it looks fresh, past any backoff, once.  Nothing
 * happens when @gen is no longer current (someone refreshed already), so
 * 64 readers that all got a 401 cause one refresh.
 */
void kit_token_invalidate(struct kit_token_source *ts, uint64_t gen);

/* What `secretfs ctl status` may show: never the token. */
struct kit_token_state {
	bool have;
	uint64_t gen;
	uint64_t expires_usec; /* CLOCK_REALTIME, 0 = never */
	unsigned failures;     /* failed refreshes in a row */
	int last_err;	       /* of the last refresh, 0 when it worked */
	char last_why[BACKEND_REASON_MAX];
};
void kit_token_state(struct kit_token_source *ts, struct kit_token_state *ret);

#endif
