/*
 * http.c - the one place secretfs talks HTTP: libcurl easy handles with TLS
 * verification on, a small pool of them so connections stay alive between
 * requests, bounded response bodies, retries with backoff, and the one table
 * that turns an HTTP status into an errno.
 *
 * Every byte that may hold a secret is wiped before its memory goes back:
 * response bodies here, request headers here, and everything libcurl itself
 * allocates (request buffers, header copies) through the wiping allocators
 * that http_global_init() installs.  Request bodies belong to the caller.
 *
 * Redirects are not followed: libcurl would resend our custom token headers
 * (X-Vault-Token and the like) to wherever a Location points.
 *
 * One copy outlives a request: curl keeps its receive buffer with the easy
 * handle, so the last response's bytes sit in an idle pooled handle (in the
 * locked heap, like everything libcurl allocates) until the next transfer
 * overwrites them or the handle is cleaned up and wiped:
 * http_client_drop_idle(), at a flush.  libcurl has no call to clear it.
 *
 * Nothing here logs.  Failures come back as a negative errno and a reason
 * that names what went wrong; a reason never quotes a body or a header
 * value, since either may be a secret.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "secretfs/backend.h"
#include "secretfs/http.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"

#ifndef SECRETFS_VERSION
#define SECRETFS_VERSION "0"
#endif

/* Idle handles kept; a thread that finds none makes one (and drops it if the pool is full). */
#define HTTP_POOL_MAX 8

#define DEFAULT_CONNECT_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define DEFAULT_TIMEOUT_USEC	     (30 * USEC_PER_SEC)
#define DEFAULT_MAX_BODY	     ((size_t)1024 * 1024)
/* A CA bundle (Debian's whole one is about 200 KiB). */
#define HTTP_CA_FILE_MAX	  ((size_t)16 * 1024 * 1024)
#define DEFAULT_MAX_ATTEMPTS	  4
#define DEFAULT_MAX_RETRY_USEC	  (60 * USEC_PER_SEC)
#define DEFAULT_BACKOFF_BASE_USEC (100 * USEC_PER_MSEC)
#define DEFAULT_BACKOFF_MAX_USEC  (10 * USEC_PER_SEC)

/* The first allocation for a body; it doubles from there up to max_body + 1. */
#define BODY_INITIAL_CAP 1024

/* A Retry-After longer than this is no promise worth keeping in a number. */
#define RETRY_AFTER_MAX_USEC (86400 * USEC_PER_SEC)

struct http_client {
	struct http_config cfg; /* defaults filled in; the strings are our copies */
	CURLSH *share;		/* DNS cache and TLS sessions, shared by the pool's handles */
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t lock;
	CURL *idle[HTTP_POOL_MAX]; /* protected by lock */
	unsigned nidle;		   /* protected by lock */
	uint64_t rng;		   /* backoff jitter state; protected by lock */

	/* cfg.ca_file's bytes, read once through the trusted-file checks; handed to curl. */
	struct curl_blob ca_blob;
};

/* What one attempt collected; reset before each attempt. */
struct http_attempt {
	char *body; /* malloc'ed, NUL-terminated when not NULL */
	size_t len;
	size_t cap;
	size_t max_body;
	bool too_big;
	bool nomem;
	bool has_retry_after;
	uint64_t retry_after_usec;
	char error_type[sizeof(((struct http_response *)0)->header_error_type)];
	char etag[sizeof(((struct http_response *)0)->etag)];
};

int http_global_init(void)
{
	/* A second call (or curl already initialised) only bumps curl's counter. */
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, secret_mem_alloc, secret_mem_free,
				 secret_mem_realloc, secret_mem_strdup,
				 secret_mem_calloc) != CURLE_OK)
		return -EIO;
	return 0;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

/*
 * OpenSSL decrypts a record in place in its read buffer, which it allocates
 * itself (the ordinary heap, wiped on free: secret_wipe_openssl_allocations).
 * With RELEASE_BUFFERS the buffers go back, and are wiped, as soon as they
 * are empty, instead of holding the last response for the connection's life.
 */
static CURLcode on_ssl_ctx(CURL *h, void *ssl_ctx, void *userdata)
{
	SSL_CTX_set_mode((SSL_CTX *)ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
	return CURLE_OK;
}

/* ---- status and error tables ---- */

int http_status_to_errno(long status)
{
	static const struct {
		long status;
		int err;
	} table[] = {
		{ 400, -EINVAL },     { 401, -EACCES },	   { 403, -EACCES },	 { 404, -ENOENT },
		{ 405, -EOPNOTSUPP }, { 408, -ETIMEDOUT }, { 409, -EBUSY },	 { 412, -EAGAIN },
		{ 413, -EFBIG },      { 429, -EAGAIN },	   { 501, -EOPNOTSUPP },
	};

	if (status >= 200 && status <= 299)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(table); i++)
		if (table[i].status == status)
			return table[i].err;
	/* Every other 5xx is the server's trouble, and usually passes. */
	if (status >= 500 && status <= 599)
		return -EAGAIN;
	return -EIO;
}

bool http_status_is_retryable(long status)
{
	switch (status) {
	case 412: /* Vault: a performance standby has not caught up yet */
	case 429:
	case 500:
	case 502:
	case 503:
	case 504:
		return true;
	default:
		return false;
	}
}

/*
 * What a failed transfer means, as an errno.  Whether it is transient (and
 * so retried here, and ridden out with a stale value by the cache) is
 * backend_error_is_transient()'s call, the one place that decides: no
 * failure is retried as a dead connection and then treated as permanent.
 */
static const struct {
	CURLcode rc;
	int err;
	const char *what;
} curl_errors[] = {
	{ CURLE_COULDNT_CONNECT, -ECONNREFUSED, "connection refused" },
	{ CURLE_COULDNT_RESOLVE_HOST, -EHOSTUNREACH, "cannot resolve host" },
	{ CURLE_COULDNT_RESOLVE_PROXY, -EHOSTUNREACH, "cannot resolve host" },
	{ CURLE_OPERATION_TIMEDOUT, -ETIMEDOUT, "timed out" },
	/* The connection died: reset, dropped, or closed before the whole answer. */
	{ CURLE_SEND_ERROR, -ECONNRESET, "connection lost" },
	{ CURLE_RECV_ERROR, -ECONNRESET, "connection lost" },
	{ CURLE_GOT_NOTHING, -ECONNRESET, "connection lost" },
	{ CURLE_PARTIAL_FILE, -ECONNRESET, "response body cut short" },
	{ CURLE_HTTP2, -ECONNRESET, "connection lost" },
	{ CURLE_HTTP2_STREAM, -ECONNRESET, "connection lost" },
	{ CURLE_URL_MALFORMAT, -EINVAL, "bad URL" },
	{ CURLE_UNSUPPORTED_PROTOCOL, -EINVAL, "bad URL" },
	{ CURLE_FILESIZE_EXCEEDED, -EFBIG, "response body too large" },
	{ CURLE_OUT_OF_MEMORY, -ENOMEM, "out of memory" },
};

int http_curl_errno(int code)
{
	for (size_t i = 0; i < ARRAY_SIZE(curl_errors); i++)
		if ((int)curl_errors[i].rc == code)
			return curl_errors[i].err;
	return -EIO; /* TLS verification, protocol errors, ...: not worth a retry */
}

/*
 * A connection reset during the TLS handshake (a server restarting, a load
 * balancer dropping it) comes back as CURLE_SSL_CONNECT_ERROR, like a real
 * TLS failure; the socket's errno tells them apart.  A reset is a reset
 * whichever layer saw it.
 */
static CURLcode reset_is_reset(CURL *h, CURLcode rc)
{
	long os_errno = 0;

	if (rc != CURLE_SSL_CONNECT_ERROR ||
	    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
		return rc;
	switch (os_errno) {
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
		return CURLE_RECV_ERROR;
	default:
		return rc;
	}
}

static bool curl_is_retryable(CURLcode rc)
{
	return backend_error_is_transient(http_curl_errno((int)rc));
}

static bool curl_is_tls(CURLcode rc)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return true;
	default:
		return false;
	}
}

static void set_reason(char *reason, size_t reasonlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_reason(char *reason, size_t reasonlen, const char *fmt, ...)
{
	va_list ap;

	if (!reason || !reasonlen)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, reasonlen, fmt, ap);
	va_end(ap);
}

/*
 * Maps a failed transfer to an errno and a reason.  curl's error buffer names
 * hosts, ports and certificate problems; it never holds a body.
 */
static int curl_failure(CURLcode rc, const struct http_attempt *a, const char *errbuf,
			unsigned attempts, char *reason, size_t reasonlen)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	const char *what;
	char tries[32] = "";
	int err;

	if ((rc == CURLE_WRITE_ERROR && a->too_big) || rc == CURLE_FILESIZE_EXCEEDED) {
		set_reason(reason, reasonlen, "response body larger than %zu bytes", a->max_body);
		return -EFBIG;
	}
	if ((rc == CURLE_WRITE_ERROR && a->nomem) || rc == CURLE_OUT_OF_MEMORY) {
		set_reason(reason, reasonlen, "out of memory");
		return -ENOMEM;
	}
	err = http_curl_errno((int)rc);
	what = curl_is_tls(rc) ? "TLS" : "HTTP transfer failed";
	for (size_t i = 0; i < ARRAY_SIZE(curl_errors); i++)
		if (curl_errors[i].rc == rc)
			what = curl_errors[i].what;
	if (attempts > 1)
		snprintf(tries, sizeof(tries), " (%u attempts)", attempts);
	set_reason(reason, reasonlen, "%s: %s%s", what, detail, tries);
	return err;
}

/* ---- response callbacks ---- */

static void attempt_reset(struct http_attempt *a, size_t max_body)
{
	secret_mem_free(a->body);
	*a = (struct http_attempt){ .max_body = max_body };
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct http_attempt *a = userdata;
	size_t n = size * nmemb; /* curl documents size as always 1 */
	size_t need, cap;
	char *nb;

	/* Returning less than n makes curl fail the transfer with CURLE_WRITE_ERROR. */
	if (n > a->max_body - a->len || a->len + n == SIZE_MAX) {
		a->too_big = true;
		return 0;
	}
	need = a->len + n + 1;
	if (need > a->cap) {
		cap = a->cap ? a->cap : BODY_INITIAL_CAP;
		while (cap < need && cap <= SIZE_MAX / 2)
			cap *= 2;
		if (cap < need)
			cap = need;
		/* No point in room past the bound (max_body + 1 cannot wrap: need fit). */
		if (cap > a->max_body + 1 && a->max_body < SIZE_MAX)
			cap = a->max_body + 1;
		/* Copy, then wipe the old buffer: realloc could leave it on the heap intact. */
		nb = secret_mem_alloc(cap);
		if (!nb) {
			a->nomem = true;
			return 0;
		}
		if (a->body)
			memcpy(nb, a->body, a->len);
		secret_mem_free(a->body);
		a->body = nb;
		a->cap = cap;
	}
	memcpy(a->body + a->len, data, n);
	a->len += n;
	a->body[a->len] = '\0';
	return n;
}

/*
 * If the header line @data (not NUL-terminated, ends in CRLF) is named @name,
 * returns its value trimmed of blanks, through @ret_value and @ret_len.
 */
static bool header_value(const char *data, size_t n, const char *name, const char **ret_value,
			 size_t *ret_len)
{
	size_t nlen = strlen(name);
	const char *v, *end = data + n;

	if (n <= nlen || strncasecmp(data, name, nlen) != 0 || data[nlen] != ':')
		return false;
	v = data + nlen + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*ret_value = v;
	*ret_len = (size_t)(end - v);
	return true;
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3).  Unparsable: ignored. */
static bool parse_retry_after(const char *v, size_t len, uint64_t *ret_usec)
{
	char buf[64];
	uint64_t secs = 0;
	size_t i;
	time_t when, now;

	if (len == 0 || len >= sizeof(buf))
		return false;
	for (i = 0; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
		secs = secs * 10 + (uint64_t)(v[i] - '0');
		if (secs * USEC_PER_SEC > RETRY_AFTER_MAX_USEC) {
			*ret_usec = RETRY_AFTER_MAX_USEC;
			return true;
		}
	}
	if (i == len) {
		*ret_usec = secs * USEC_PER_SEC;
		return true;
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	when = curl_getdate(buf, NULL);
	if (when == -1)
		return false;
	now = time(NULL);
	if (when <= now)
		*ret_usec = 0;
	else if ((uint64_t)(when - now) * USEC_PER_SEC > RETRY_AFTER_MAX_USEC)
		*ret_usec = RETRY_AFTER_MAX_USEC;
	else
		*ret_usec = (uint64_t)(when - now) * USEC_PER_SEC;
	return true;
}

/* Keeps Retry-After and x-amzn-ErrorType; every other header is left alone. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct http_attempt *a = userdata;
	size_t n = size * nmemb;
	const char *v;
	size_t vlen;

	if (n >= 5 && strncasecmp(data, "HTTP/", 5) == 0) {
		/* A new response begins (after a 1xx or a proxy's CONNECT): forget the last. */
		a->has_retry_after = false;
		a->retry_after_usec = 0;
		a->error_type[0] = '\0';
		a->etag[0] = '\0';
	} else if (header_value(data, n, "etag", &v, &vlen)) {
		if (vlen < sizeof(a->etag)) {
			memcpy(a->etag, v, vlen);
			a->etag[vlen] = '\0';
		} else {
			a->etag[0] = '\0';
		}
	} else if (header_value(data, n, "retry-after", &v, &vlen)) {
		a->has_retry_after = parse_retry_after(v, vlen, &a->retry_after_usec);
	} else if (header_value(data, n, "x-amzn-errortype", &v, &vlen)) {
		/* Bounded: a longer value is cut; the error code comes first in it anyway. */
		if (vlen >= sizeof(a->error_type))
			vlen = sizeof(a->error_type) - 1;
		memcpy(a->error_type, v, vlen);
		a->error_type[vlen] = '\0';
	}
	return n;
}

/* ---- the client ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userptr)
{
	struct http_client *c = userptr;

	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userptr)
{
	struct http_client *c = userptr;

	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_locks[data]);
}

static int dup_opt(const char *s, const char **ret)
{
	char *d;

	if (!s) {
		*ret = NULL;
		return 0;
	}
	d = strdup(s);
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

void http_client_drop_idle(struct http_client *c)
{
	CURL *idle[HTTP_POOL_MAX];
	unsigned n;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	n = c->nidle;
	memcpy(idle, c->idle, n * sizeof(*idle));
	c->nidle = 0;
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < n; i++)
		curl_easy_cleanup(idle[i]);
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	/* Every handle is back in the pool by now: using a client while freeing it is a bug. */
	for (unsigned i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	if (c->share)
		curl_share_cleanup(c->share);
	for (size_t i = 0; i < ARRAY_SIZE(c->share_locks); i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->lock);
	free((char *)c->cfg.ca_file);
	free((char *)c->cfg.ca_path);
	free((char *)c->cfg.client_cert);
	free((char *)c->cfg.client_key);
	free(c->ca_blob.data);
	free(c);
}

/*
 * The TLS files decide which server is believed: they get the policy's
 * checks (trusted_file_open()), naming the setting in a refusal.  The CA
 * file is read here, once, and curl gets its bytes, so the file checked is
 * the file used.  A CA directory (OpenSSL looks certificates up in it by
 * hash when it needs them) and the client certificate and key are opened
 * by curl by name; their directories are checked, so only root or the
 * daemon's user could swap them.
 */
static int check_tls_files(struct http_client *c, char *reason, size_t reasonlen)
{
	const struct {
		const char *path, *what;
	} files[] = {
		{ c->cfg.client_cert, "client certificate" },
		{ c->cfg.client_key, "client key" },
	};
	size_t len = 0;
	char *buf;
	int r;

	if (c->cfg.ca_file) {
		r = trusted_file_read(c->cfg.ca_file, "CA file", HTTP_CA_FILE_MAX, &buf, &len, NULL,
				      reason, reasonlen);
		if (r < 0)
			return r;
		c->ca_blob =
			(struct curl_blob){ .data = buf, .len = len, .flags = CURL_BLOB_NOCOPY };
	}
	if (c->cfg.ca_path) {
		r = trusted_dir_check(c->cfg.ca_path, "CA directory", reason, reasonlen);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (!files[i].path)
			continue;
		r = trusted_file_open(files[i].path, files[i].what, NULL, reason, reasonlen);
		if (r < 0)
			return r;
		close(r);
	}
	return 0;
}

int http_client_new(const struct http_config *cfg, struct http_client **ret, char *reason,
		    size_t reasonlen)
{
	static const struct http_config none;
	struct http_client *c;
	int r;

	if (!cfg)
		cfg = &none;
	if (cfg->client_key && !cfg->client_cert) {
		set_reason(reason, reasonlen, "a client key needs a client certificate");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		set_reason(reason, reasonlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(c->share_locks); i++)
		pthread_mutex_init(&c->share_locks[i], NULL);

	c->cfg = *cfg;
	c->cfg.ca_file = c->cfg.ca_path = c->cfg.client_cert = c->cfg.client_key = NULL;
	if (dup_opt(cfg->ca_file, &c->cfg.ca_file) < 0 ||
	    dup_opt(cfg->ca_path, &c->cfg.ca_path) < 0 ||
	    dup_opt(cfg->client_cert, &c->cfg.client_cert) < 0 ||
	    dup_opt(cfg->client_key, &c->cfg.client_key) < 0) {
		http_client_free(c);
		set_reason(reason, reasonlen, "out of memory");
		return -ENOMEM;
	}
	r = check_tls_files(c, reason, reasonlen);
	if (r < 0) {
		http_client_free(c);
		return r;
	}
	if (!c->cfg.connect_timeout_usec)
		c->cfg.connect_timeout_usec = DEFAULT_CONNECT_TIMEOUT_USEC;
	if (!c->cfg.timeout_usec)
		c->cfg.timeout_usec = DEFAULT_TIMEOUT_USEC;
	if (!c->cfg.max_body)
		c->cfg.max_body = DEFAULT_MAX_BODY;
	if (!c->cfg.max_attempts)
		c->cfg.max_attempts = DEFAULT_MAX_ATTEMPTS;
	if (!c->cfg.max_retry_usec)
		c->cfg.max_retry_usec = DEFAULT_MAX_RETRY_USEC;
	if (!c->cfg.backoff_base_usec)
		c->cfg.backoff_base_usec = DEFAULT_BACKOFF_BASE_USEC;
	if (!c->cfg.backoff_max_usec)
		c->cfg.backoff_max_usec = DEFAULT_BACKOFF_MAX_USEC;

	/* Jitter needs no cryptographic strength, only threads and clients that differ. */
	if (getrandom(&c->rng, sizeof(c->rng), GRND_NONBLOCK) != sizeof(c->rng))
		c->rng = now_usec() ^ (uint64_t)(uintptr_t)c;

	/*
	 * The share saves a DNS lookup and a full TLS handshake when a request
	 * lands on a handle that has no live connection yet.  Connections
	 * themselves are not shared: each handle keeps its own.
	 */
	c->share = curl_share_init();
	if (!c->share || curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) {
		http_client_free(c);
		set_reason(reason, reasonlen, "cannot set up a libcurl share");
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

static CURL *handle_take(struct http_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->nidle)
		h = c->idle[--c->nidle];
	pthread_mutex_unlock(&c->lock);
	return h ? h : curl_easy_init();
}

static void handle_give_back(struct http_client *c, CURL *h)
{
	/*
	 * Drop every option, so an idle handle points at no freed header list,
	 * caller's body or stack error buffer.  Live connections, the DNS and
	 * TLS session caches and the share survive a reset.
	 */
	curl_easy_reset(h);
	pthread_mutex_lock(&c->lock);
	if (c->nidle < HTTP_POOL_MAX) {
		c->idle[c->nidle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_cleanup(h);
}

/* splitmix64: tiny, and fine for spreading retries apart. */
static uint64_t client_random(struct http_client *c)
{
	uint64_t z;

	pthread_mutex_lock(&c->lock);
	z = (c->rng += UINT64_C(0x9e3779b97f4a7c15));
	pthread_mutex_unlock(&c->lock);
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Full jitter: uniform in [0, min(backoff_max, base * 2^retry)]. */
static uint64_t backoff_usec(struct http_client *c, unsigned retry)
{
	uint64_t cap = c->cfg.backoff_base_usec;

	for (unsigned i = 0; i < retry && cap < c->cfg.backoff_max_usec; i++)
		cap = cap > UINT64_MAX / 2 ? UINT64_MAX : cap * 2;
	if (cap > c->cfg.backoff_max_usec)
		cap = c->cfg.backoff_max_usec;
	if (cap == UINT64_MAX)
		return client_random(c);
	return client_random(c) % (cap + 1);
}

static void sleep_until(uint64_t when_usec)
{
	struct timespec ts = {
		.tv_sec = (time_t)(when_usec / USEC_PER_SEC),
		.tv_nsec = (long)(when_usec % USEC_PER_SEC) * 1000,
	};

	/* now_usec() is CLOCK_MONOTONIC too. */
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* curl takes milliseconds, and 0 there means "no timeout": round up. */
static long usec_to_ms(uint64_t usec)
{
	uint64_t ms = (usec + USEC_PER_MSEC - 1) / USEC_PER_MSEC;

	if (ms == 0)
		return 1;
	return ms > LONG_MAX ? LONG_MAX : (long)ms;
}

static bool has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* Wipes every header string curl copied, then frees the list. */
static void headers_free(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

/* Appends a copy of @line to *list; on failure the list is left as it was. */
static int headers_add_line(struct curl_slist **list, const char *line)
{
	struct curl_slist *n = curl_slist_append(*list, line);

	if (!n)
		return -ENOMEM;
	*list = n;
	return 0;
}

/* Appends "name: value" to *list; on failure the list is left as it was. */
static int headers_add(struct curl_slist **list, const char *name, const char *value)
{
	size_t nlen = strlen(name), vlen = strlen(value);
	char *line;
	int r;

	if (nlen > SIZE_MAX / 2 || vlen > SIZE_MAX / 2)
		return -ENOMEM;
	line = secret_mem_alloc(nlen + vlen + 3);
	if (!line)
		return -ENOMEM;
	memcpy(line, name, nlen);
	if (vlen) {
		line[nlen] = ':';
		line[nlen + 1] = ' ';
		memcpy(line + nlen + 2, value, vlen);
		line[nlen + 2 + vlen] = '\0';
	} else {
		/* curl's spelling of "send this header empty"; "Name:" would remove it. */
		line[nlen] = ';';
		line[nlen + 1] = '\0';
	}
	r = headers_add_line(list, line);
	secret_mem_free(line);
	return r;
}

/*
 * Builds the request's header list.  Every string in it is wiped when it is
 * freed, whether or not its header is marked secret: telling them apart
 * again later would cost more than the wipe.
 */
static int headers_build(const struct http_request *req, struct curl_slist **ret, char *reason,
			 size_t reasonlen)
{
	struct curl_slist *list = NULL;
	int r = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (!h->name || !h->name[0] || !h->value || strpbrk(h->name, ":; \t\r\n") ||
		    has_crlf(h->value)) {
			/* Name only: the value may be a token. */
			set_reason(reason, reasonlen, "invalid request header '%s'",
				   h->name && !has_crlf(h->name) ? h->name : "?");
			headers_free(list);
			return -EINVAL;
		}
		r = headers_add(&list, h->name, h->value);
		if (r < 0)
			goto fail;
	}
	if (req->content_type) {
		if (has_crlf(req->content_type)) {
			set_reason(reason, reasonlen, "invalid content type");
			headers_free(list);
			return -EINVAL;
		}
		r = headers_add(&list, "Content-Type", req->content_type);
	} else if (req->body) {
		/* Otherwise curl labels the body application/x-www-form-urlencoded. */
		r = headers_add_line(&list, "Content-Type:");
	}
	/* No "Expect: 100-continue" round trip: our bodies are small. */
	if (r >= 0)
		r = headers_add_line(&list, "Expect:");
	if (r < 0)
		goto fail;
	*ret = list;
	return 0;
fail:
	headers_free(list);
	set_reason(reason, reasonlen, "out of memory");
	return r;
}

static bool method_is_valid(const char *m)
{
	if (!m || !m[0])
		return false;
	for (; *m; m++)
		if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z') || *m == '-' ||
		      *m == '_'))
			return false;
	return true;
}

/* Sets every option a request needs: the handle comes reset from the pool. */
static CURLcode handle_setup(struct http_client *c, CURL *h, const struct http_request *req,
			     struct curl_slist *headers, struct http_attempt *a, char *errbuf)
{
	const struct http_config *cfg = &c->cfg;
	CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(h, opt, val);                                        \
	} while (0)

	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_SHARE, c->share);
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	/* Threads: no SIGALRM for DNS timeouts (this curl resolves asynchronously). */
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_USERAGENT, "secretfs/" SECRETFS_VERSION);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, usec_to_ms(cfg->connect_timeout_usec));
	SET(CURLOPT_TIMEOUT_MS, usec_to_ms(cfg->timeout_usec));

	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	SET(CURLOPT_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
	if (c->ca_blob.data) {
		/* The bytes read and checked at start; the blob overrides CURLOPT_CAINFO. */
		SET(CURLOPT_CAINFO_BLOB, &c->ca_blob);
		SET(CURLOPT_CAINFO, NULL);
	}
	if (cfg->ca_path)
		SET(CURLOPT_CAPATH, cfg->ca_path);
	if (cfg->client_cert) {
		SET(CURLOPT_SSLCERTTYPE, "PEM");
		SET(CURLOPT_SSLCERT, cfg->client_cert);
	}
	if (cfg->client_key) {
		SET(CURLOPT_SSLKEYTYPE, "PEM");
		SET(CURLOPT_SSLKEY, cfg->client_key);
	}
	/* Proxies: with CURLOPT_PROXY unset, curl reads http_proxy, https_proxy, no_proxy. */

	/* Fails early on an announced Content-Length; on_body() catches the rest. */
	SET(CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)(a->max_body > (size_t)INT64_MAX ? INT64_MAX : (int64_t)a->max_body));
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, a);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, a);
	SET(CURLOPT_HTTPHEADER, headers);

	if (strcmp(req->method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (req->body || strcmp(req->method, "POST") == 0) {
		/* POST mode sends the body; a custom method replaces the word on the wire. */
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
		if (strcmp(req->method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, req->method);
	} else {
		SET(CURLOPT_HTTPGET, 1L);
		if (strcmp(req->method, "GET") != 0)
			SET(CURLOPT_CUSTOMREQUEST, req->method);
	}
#undef SET
	return rc;
}

int http_do(struct http_client *c, const struct http_request *req, struct http_response *ret,
	    char *reason, size_t reasonlen)
{
	struct http_attempt a = { .max_body = c->cfg.max_body };
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE];
	uint64_t deadline, now;
	unsigned attempt = 0;
	long status = 0;
	CURLcode rc;
	CURL *h;
	int r;

	/* Whatever happens, the caller gets a response http_response_done() accepts. */
	*ret = (struct http_response){ 0 };
	if (!req || !req->url || !method_is_valid(req->method) ||
	    (!req->headers && req->nheaders)) {
		set_reason(reason, reasonlen, "invalid request");
		return -EINVAL;
	}
	r = headers_build(req, &headers, reason, reasonlen);
	if (r < 0)
		return r;
	h = handle_take(c);
	if (!h) {
		headers_free(headers);
		set_reason(reason, reasonlen, "out of memory");
		return -ENOMEM;
	}

	deadline = now_usec() + c->cfg.max_retry_usec;
	errbuf[0] = '\0';
	rc = handle_setup(c, h, req, headers, &a, errbuf);
	/*
	 * Every request is retried, whatever its method: the ones secretfs sends
	 * are reads, or logins and renewals that are safe to repeat.
	 */
	while (rc == CURLE_OK) { /* once a transfer ran, only a break leaves */
		uint64_t wait;
		bool retry;

		attempt++;
		attempt_reset(&a, c->cfg.max_body);
		errbuf[0] = '\0';
		status = 0;
		rc = curl_easy_perform(h);
		rc = reset_is_reset(h, rc);
		if (rc == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			retry = http_status_is_retryable(status);
		} else {
			retry = curl_is_retryable(rc);
		}
		if (!retry || attempt >= c->cfg.max_attempts)
			break;

		/* The server's word beats our guess; the budget beats both. */
		wait = rc == CURLE_OK && a.has_retry_after ? a.retry_after_usec
							   : backoff_usec(c, attempt - 1);
		now = now_usec();
		if (now >= deadline || wait >= deadline - now)
			break;
		sleep_until(now + wait);
		/* A retry may not run past the budget either. */
		now = now_usec();
		if (now >= deadline)
			break;
		if (deadline - now < c->cfg.timeout_usec)
			(void)curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, usec_to_ms(deadline - now));
		rc = CURLE_OK;
	}

	handle_give_back(c, h);
	headers_free(headers);

	if (rc != CURLE_OK) {
		r = curl_failure(rc, &a, errbuf, attempt, reason, reasonlen);
		attempt_reset(&a, 0);
		/* No response: the caller still learns how many attempts were made. */
		ret->attempts = attempt;
		return r;
	}
	if (!a.body) {
		a.body = secret_mem_calloc(1, 1);
		if (!a.body) {
			set_reason(reason, reasonlen, "out of memory");
			ret->attempts = attempt;
			return -ENOMEM;
		}
	}
	*ret = (struct http_response){
		.status = status,
		.body = a.body,
		.body_len = a.len,
		.attempts = attempt,
	};
	memcpy(ret->header_error_type, a.error_type, sizeof(ret->header_error_type));
	memcpy(ret->etag, a.etag, sizeof(ret->etag));
	return 0;
}

void http_response_done(struct http_response *r)
{
	if (!r)
		return;
	if (r->body)
		secret_mem_free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

char *http_escape_path(const char *in, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(in);
	char *out, *o;

	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	o = out;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		/* RFC 3986 section 2.3 unreserved characters. */
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
		    (*p == '/' && keep_slash)) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 0xf];
		}
	}
	*o = '\0';
	return out;
}
