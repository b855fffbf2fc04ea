/*
 * http.h - the HTTP layer every network backend uses (libcurl).
 *
 * TLS peer and host verification are always on unless the user asked for
 * `insecure` explicitly.  Connections are reused: the client keeps a small
 * pool of curl easy handles, each used by one thread at a time.  Response
 * bodies are bounded (default 1 MiB): past the bound the request fails, it
 * is never truncated.  Bodies and headers that may hold secrets are wiped.
 * Retries: exponential backoff with full jitter on connection errors (a
 * body cut short included), 429, 5xx and 412, honouring Retry-After, capped
 * in attempts and total time.  This module knows no backend's JSON and does
 * not log.
 */
#ifndef SECRETFS_HTTP_H
#define SECRETFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_config {
	const char *ca_file;	       /* PEM bundle; NULL: the system's */
	const char *ca_path;	       /* directory of hashed certificates; NULL: none */
	const char *client_cert;       /* PEM, for mTLS; NULL: none */
	const char *client_key;	       /* PEM; NULL: in client_cert or none */
	bool insecure;		       /* skip peer and host verification (explicit opt-in only) */
	uint64_t connect_timeout_usec; /* 0: 5 s */
	uint64_t timeout_usec;	       /* whole request, per attempt; 0: 30 s */
	size_t max_body;	       /* 0: 1 MiB */
	unsigned max_attempts;	       /* 0: 4 (1 means no retry) */
	uint64_t max_retry_usec;       /* total time across attempts; 0: 60 s */
	uint64_t backoff_base_usec;    /* first backoff; 0: 100 ms */
	uint64_t backoff_max_usec;     /* largest single backoff; 0: 10 s */
};

struct http_header {
	const char *name;
	const char *value;
	bool secret; /* a token: wiped from every copy after the request */
};

struct http_request {
	const char *method; /* "GET", "POST", "PUT", "DELETE", "LIST", ... */
	const char *url;
	const struct http_header *headers;
	size_t nheaders;
	const void *body; /* NULL: none */
	size_t body_len;
	const char *content_type; /* NULL: none, or "application/json" etc. */
};

/* A response body: malloc'ed, wiped by http_response_done(). */
struct http_response {
	long status; /* 0 when no response arrived */
	char *body;  /* NUL-terminated for convenience; may hold secrets */
	size_t body_len;
	unsigned attempts; /* requests sent, retries included; set on failure too */
	/*
	 * x-amzn-ErrorType as sent, trimmed and cut to fit ("" if absent); the
	 * AWS backend takes the code from it (before ':', after '#').
	 */
	char header_error_type[128];
	/*
	 * The ETag as sent, trimmed ("" if absent or longer than fits: a tag
	 * cut short would never match), for a later If-None-Match.
	 */
	char etag[128];
};

/*
 * A client: its settings and a pool of connections.  http_do() may be called
 * from any number of threads at once on one client; http_client_free() only
 * once none is in flight.  The config's strings are copied.  @cfg NULL: all
 * defaults.
 */
struct http_client;

int http_client_new(const struct http_config *cfg, struct http_client **ret, char *reason,
		    size_t reasonlen);
void http_client_free(struct http_client *c);
/*
 * Closes the idle handles (and their connections), so that the last
 * responses libcurl keeps in its buffers are wiped now.  Thread-safe.
 */
void http_client_drop_idle(struct http_client *c);

/*
 * Sends @req, retrying as described above, and returns the last response
 * whatever its status (the caller maps it with http_status_to_errno()).
 * Returns 0 when a response arrived, or a negative errno when none did:
 * -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT, -ECONNRESET (the connection was
 * reset or dropped, or the body was cut short: fewer bytes than its
 * Content-Length), -EFBIG (body past max_body), -EIO (TLS verification
 * failed, protocol error), -EINVAL (a malformed request or URL), -ENOMEM,
 * with @reason set.  A transfer is retried exactly when its errno is
 * transient (backend_error_is_transient).  A reason names
 * the failure (curl's own words for transport and TLS errors) and never
 * quotes a body or a header value.
 *
 * On failure *@ret holds no body, status 0 and the number of attempts, so
 * http_response_done() is safe on it either way.
 *
 * A retry waits Retry-After if the server sent one, else a random time up
 * to backoff_base_usec doubled per retry (at most backoff_max_usec).  No
 * retry starts whose wait would end past max_retry_usec: the last response
 * or error is returned instead, and a retry's timeout is cut to the time left.
 *
 * Every method is retried, POST included: what secretfs sends are reads, and
 * logins or renewals that are safe to repeat.  Redirects are not followed
 * (curl would send our token headers to wherever they point).  Proxies come
 * from http_proxy, https_proxy and no_proxy, read by curl itself.
 */
int http_do(struct http_client *c, const struct http_request *req, struct http_response *ret,
	    char *reason, size_t reasonlen);
/* Wipes and frees the body; safe on an empty or already-done response. */
void http_response_done(struct http_response *r);

/* The one libcurl result (a CURLcode) -> errno table; http_do() returns these. */
int http_curl_errno(int code);
/* The one status -> errno table: 0 for 2xx. */
int http_status_to_errno(long status);
/* Whether @status is retried: 412, 429, 500, 502, 503, 504. */
bool http_status_is_retryable(long status);

/*
 * Process-wide setup: curl_global_init_mem() with wiping allocators, so
 * every buffer libcurl frees is cleansed first.  Call once before threads
 * and before any other use of libcurl.  Requests set CURLOPT_NOSIGNAL, so
 * the process should ignore SIGPIPE.
 */
int http_global_init(void);
void http_global_cleanup(void);

/*
 * Percent-encodes @in for a URL path: RFC 3986 unreserved characters stay,
 * '/' stays when @keep_slash, every other byte becomes %XX (uppercase).
 * Returns a malloc'ed string, or NULL on ENOMEM.
 */
char *http_escape_path(const char *in, bool keep_slash);

#endif
