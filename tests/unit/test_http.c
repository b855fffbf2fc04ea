/*
 * test_http.c - the HTTP layer against a scripted HTTP/1.1 server that runs
 * in this process, on 127.0.0.1, in plain text or TLS.
 *
 * The server answers each request with the next entry of a script (status,
 * headers, body, delay, hang, close) and records what it saw: method,
 * target, header block, body, arrival time, and how many connections it
 * accepted, so retries, keep-alive and timeouts are checked from the wire.
 * TLS certificates are made at test time with the openssl CLI, the way
 * tests/servers/certs.py makes them.  Server threads never assert: they
 * record, and the test thread checks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "secretfs/backend.h"
#include "secretfs/http.h"
#include "secretfs/util.h"

#define MSEC USEC_PER_MSEC
#define SEC  USEC_PER_SEC

/* ---- the scripted server ---- */

#define SRV_MAX_SCRIPT 16
#define SRV_MAX_SEEN   64
#define SRV_MAX_CONNS  128
#define SRV_REQ_MAX    16384

struct script {
	int status;
	const char *headers; /* extra header lines, each ending in "\r\n" */
	const char *body;    /* NULL: empty */
	size_t body_len;     /* 0: strlen(body) */
	long content_length; /* announced length when > 0 (a short body); else the real one */
	bool chunked;	     /* Transfer-Encoding: chunked instead of Content-Length */
	bool echo;	     /* the body is the request target */
	unsigned delay_ms;   /* before answering */
	bool hang;	     /* never answer */
	bool no_response;    /* close without answering */
	bool close_after;    /* close after answering */
};

struct seen {
	char method[16];
	char target[256];
	char head[2048]; /* the header lines, as received */
	char body[512];
	size_t body_len;
	uint64_t at_usec;
	unsigned conn;
};

struct conn {
	struct srv *s;
	pthread_t tid;
	int fd;
	unsigned id;
};

struct srv {
	int lfd;
	int port;
	SSL_CTX *tls; /* NULL: plain HTTP */
	pthread_t acceptor;
	atomic_bool stop;

	pthread_mutex_t lock;
	struct script script[SRV_MAX_SCRIPT]; /* protected by lock */
	unsigned nscript, next;		      /* protected by lock */
	struct seen seen[SRV_MAX_SEEN];	      /* protected by lock */
	unsigned nseen;			      /* all requests, recorded or not; protected by lock */
	unsigned accepts;		      /* protected by lock */
	unsigned handshake_failures;	      /* protected by lock */
	size_t last_body_sent;		      /* protected by lock */
	struct conn conns[SRV_MAX_CONNS];     /* protected by lock */
	unsigned nconn;			      /* protected by lock */
};

static void srv_add(struct srv *s, struct script sc)
{
	pthread_mutex_lock(&s->lock);
	assert_true(s->nscript < SRV_MAX_SCRIPT);
	s->script[s->nscript++] = sc;
	pthread_mutex_unlock(&s->lock);
}

static unsigned srv_nseen(struct srv *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->nseen;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static unsigned srv_accepts(struct srv *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->accepts;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* A copy of the @i-th request seen. */
static struct seen srv_seen(struct srv *s, unsigned i)
{
	struct seen r;

	pthread_mutex_lock(&s->lock);
	assert_true(i < s->nseen && i < SRV_MAX_SEEN);
	r = s->seen[i];
	pthread_mutex_unlock(&s->lock);
	return r;
}

struct io {
	int fd;
	SSL *ssl;
};

static ssize_t io_read(struct io *io, char *buf, size_t n)
{
	if (io->ssl) {
		int r = SSL_read(io->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);

		return r > 0 ? r : -1;
	}
	return recv(io->fd, buf, n, 0);
}

static bool io_write(struct io *io, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w;

		if (io->ssl) {
			int r = SSL_write(io->ssl, p, n > INT_MAX ? INT_MAX : (int)n);

			w = r > 0 ? r : -1;
		} else {
			w = send(io->fd, p, n, MSG_NOSIGNAL);
		}
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void io_close(struct io *io)
{
	if (io->ssl)
		SSL_shutdown(io->ssl);
	shutdown(io->fd, SHUT_RDWR);
}

/* Sleeps @ms in small steps, so a stopping server does not wait for it. */
static void srv_pause(struct srv *s, unsigned ms)
{
	uint64_t end = now_usec() + ms * MSEC;

	while (!atomic_load(&s->stop) && now_usec() < end)
		usleep(5000);
}

/* Reads one request into @ret; false when the peer closed or sent nonsense. */
static bool read_request(struct io *io, char *buf, size_t *have, struct seen *ret)
{
	char *end, *sp1, *sp2, *line, *cl;
	size_t headlen, bodylen = 0, total;

	while (!(end = memmem(buf, *have, "\r\n\r\n", 4))) {
		ssize_t r;

		if (*have >= SRV_REQ_MAX - 1)
			return false;
		r = io_read(io, buf + *have, SRV_REQ_MAX - 1 - *have);
		if (r <= 0)
			return false;
		*have += (size_t)r;
	}
	headlen = (size_t)(end - buf) + 4;
	*ret = (struct seen){ 0 };
	line = memmem(buf, headlen, "\r\n", 2);
	sp1 = memchr(buf, ' ', (size_t)(line - buf));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || (size_t)(sp1 - buf) >= sizeof(ret->method) ||
	    (size_t)(sp2 - sp1 - 1) >= sizeof(ret->target))
		return false;
	memcpy(ret->method, buf, (size_t)(sp1 - buf));
	memcpy(ret->target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	snprintf(ret->head, sizeof(ret->head), "%.*s", (int)(headlen - (size_t)(line + 2 - buf)),
		 line + 2);
	/* At the start of a line only: not inside another header's value. */
	cl = strcasestr(ret->head, "content-length:");
	while (cl && cl != ret->head && cl[-1] != '\n')
		cl = strcasestr(cl + 1, "content-length:");
	if (cl)
		bodylen = strtoul(cl + 15, NULL, 10);
	if (bodylen > SRV_REQ_MAX / 2)
		return false;
	total = headlen + bodylen;
	while (*have < total) {
		ssize_t r = io_read(io, buf + *have, SRV_REQ_MAX - 1 - *have);

		if (r <= 0)
			return false;
		*have += (size_t)r;
	}
	ret->body_len = bodylen;
	memcpy(ret->body, buf + headlen, bodylen < sizeof(ret->body) ? bodylen : sizeof(ret->body));
	memmove(buf, buf + total, *have - total);
	*have -= total;
	ret->at_usec = now_usec();
	return true;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 404:
		return "Not Found";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Whatever";
	}
}

/* Answers per @sc; false when the connection is done. */
static bool respond(struct srv *s, struct io *io, const struct script *sc, const struct seen *req)
{
	const char *body = sc->echo ? req->target : sc->body ? sc->body : "";
	size_t blen = sc->echo ? strlen(req->target) : sc->body_len ? sc->body_len : strlen(body);
	char head[2048];
	int n;

	if (sc->hang) {
		while (!atomic_load(&s->stop)) {
			struct pollfd p = { .fd = io->fd, .events = POLLIN };
			char c;

			/* Until the client gives up (plain HTTP) or the server stops. */
			if (poll(&p, 1, 20) > 0 && !io->ssl &&
			    recv(io->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
				break;
		}
		return false;
	}
	if (sc->delay_ms)
		srv_pause(s, sc->delay_ms);
	if (sc->no_response)
		return false;
	if (sc->chunked)
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d %s\r\nTransfer-Encoding: chunked\r\n%s%s\r\n", sc->status,
			     reason_phrase(sc->status), sc->headers ? sc->headers : "",
			     sc->close_after ? "Connection: close\r\n" : "");
	else
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d %s\r\nContent-Length: %ld\r\n%s%s\r\n", sc->status,
			     reason_phrase(sc->status),
			     sc->content_length > 0 ? sc->content_length : (long)blen,
			     sc->headers ? sc->headers : "",
			     sc->close_after ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head) || !io_write(io, head, (size_t)n))
		return false;
	if (sc->chunked) {
		size_t off = 0;

		while (off < blen) {
			size_t k = blen - off < 65536 ? blen - off : 65536;
			char sz[32];

			n = snprintf(sz, sizeof(sz), "%zx\r\n", k);
			if (!io_write(io, sz, (size_t)n) || !io_write(io, body + off, k) ||
			    !io_write(io, "\r\n", 2))
				break;
			off += k;
			pthread_mutex_lock(&s->lock);
			s->last_body_sent = off;
			pthread_mutex_unlock(&s->lock);
		}
		if (off < blen || !io_write(io, "0\r\n\r\n", 5))
			return false;
	} else {
		if (!io_write(io, body, blen))
			return false;
		pthread_mutex_lock(&s->lock);
		s->last_body_sent = blen;
		pthread_mutex_unlock(&s->lock);
	}
	return !sc->close_after;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct srv *s = c->s;
	struct io io = { .fd = c->fd };
	static const struct script echo = { .status = 200, .echo = true };
	char *buf = malloc(SRV_REQ_MAX);
	size_t have = 0;

	if (!buf)
		goto out;
	if (s->tls) {
		io.ssl = SSL_new(s->tls);
		if (!io.ssl || !SSL_set_fd(io.ssl, c->fd) || SSL_accept(io.ssl) != 1) {
			pthread_mutex_lock(&s->lock);
			s->handshake_failures++;
			pthread_mutex_unlock(&s->lock);
			goto out;
		}
	}
	for (;;) {
		struct seen req;
		struct script sc;

		if (!read_request(&io, buf, &have, &req))
			break;
		req.conn = c->id;
		pthread_mutex_lock(&s->lock);
		if (s->nseen < SRV_MAX_SEEN)
			s->seen[s->nseen] = req;
		s->nseen++;
		if (s->next < s->nscript)
			sc = s->script[s->next++];
		else
			sc = s->nscript ? s->script[s->nscript - 1] : echo;
		pthread_mutex_unlock(&s->lock);
		if (!respond(s, &io, &sc, &req))
			break;
	}
out:
	io_close(&io);
	SSL_free(io.ssl);
	ERR_clear_error();
	free(buf);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);

		if (fd < 0) {
			if (atomic_load(&s->stop))
				break;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		pthread_mutex_lock(&s->lock);
		if (s->nconn == SRV_MAX_CONNS || atomic_load(&s->stop)) {
			pthread_mutex_unlock(&s->lock);
			close(fd);
			continue;
		}
		s->accepts++;
		s->conns[s->nconn] = (struct conn){ .s = s, .fd = fd, .id = s->nconn };
		if (pthread_create(&s->conns[s->nconn].tid, NULL, conn_main, &s->conns[s->nconn]))
			close(fd);
		else
			s->nconn++;
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

static int listen_any(int *ret_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
		close(fd);
		return -1;
	}
	*ret_port = ntohs(a.sin_port);
	return fd;
}

static struct srv *srv_start(SSL_CTX *tls)
{
	struct srv *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	pthread_mutex_init(&s->lock, NULL);
	s->tls = tls;
	s->lfd = listen_any(&s->port);
	assert_true(s->lfd >= 0);
	assert_int_equal(pthread_create(&s->acceptor, NULL, accept_main, s), 0);
	return s;
}

static void srv_stop(struct srv *s)
{
	unsigned n;

	atomic_store(&s->stop, true);
	shutdown(s->lfd, SHUT_RDWR); /* wakes accept() */
	pthread_join(s->acceptor, NULL);
	close(s->lfd);
	pthread_mutex_lock(&s->lock);
	n = s->nconn;
	for (unsigned i = 0; i < n; i++)
		shutdown(s->conns[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < n; i++) {
		pthread_join(s->conns[i].tid, NULL);
		close(s->conns[i].fd);
	}
	if (s->tls)
		SSL_CTX_free(s->tls);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- client helpers ---- */

/* Fast retries, so a test spends its time where it means to. */
static struct http_config fast_cfg(void)
{
	return (struct http_config){
		.backoff_base_usec = 1 * MSEC,
		.backoff_max_usec = 10 * MSEC,
	};
}

static struct http_client *client_new(const struct http_config *cfg)
{
	struct http_client *c = NULL;
	char reason[256] = "";

	assert_int_equal(http_client_new(cfg, &c, reason, sizeof(reason)), 0);
	assert_non_null(c);
	return c;
}

static void url_of(char *buf, size_t len, const struct srv *s, const char *path)
{
	snprintf(buf, len, "%s://127.0.0.1:%d%s", s->tls ? "https" : "http", s->port, path);
}

static int do_req(struct http_client *c, struct srv *s, const char *method, const char *path,
		  struct http_response *resp, char *reason, size_t reasonlen)
{
	char url[512];
	struct http_request req = { .method = method, .url = url };

	url_of(url, sizeof(url), s, path);
	return http_do(c, &req, resp, reason, reasonlen);
}

static int do_get(struct http_client *c, struct srv *s, const char *path,
		  struct http_response *resp, char *reason, size_t reasonlen)
{
	return do_req(c, s, "GET", path, resp, reason, reasonlen);
}

static int setup_srv(void **state)
{
	*state = srv_start(NULL);
	return 0;
}

static int teardown_srv(void **state)
{
	srv_stop(*state);
	return 0;
}

/* ---- tables ---- */

static void test_status_table(void **state)
{
	static const struct {
		long status;
		int err;
		bool retry;
	} cases[] = {
		{ 200, 0, false },	    { 201, 0, false },	     { 204, 0, false },
		{ 299, 0, false },	    { 100, -EIO, false },    { 301, -EIO, false },
		{ 304, -EIO, false },	    { 400, -EINVAL, false }, { 401, -EACCES, false },
		{ 403, -EACCES, false },    { 404, -ENOENT, false }, { 405, -EOPNOTSUPP, false },
		{ 408, -ETIMEDOUT, false }, { 409, -EBUSY, false },  { 410, -EIO, false },
		{ 412, -EAGAIN, true },	    { 413, -EFBIG, false },  { 418, -EIO, false },
		{ 429, -EAGAIN, true },	    { 500, -EAGAIN, true },  { 501, -EOPNOTSUPP, false },
		{ 502, -EAGAIN, true },	    { 503, -EAGAIN, true },  { 504, -EAGAIN, true },
		{ 505, -EAGAIN, false },    { 599, -EAGAIN, false }, { 600, -EIO, false },
		{ 0, -EIO, false },	    { -1, -EIO, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (http_status_to_errno(cases[i].status) != cases[i].err ||
		    http_status_is_retryable(cases[i].status) != cases[i].retry)
			fail_msg("status %ld: errno %d retry %d, expected %d %d", cases[i].status,
				 http_status_to_errno(cases[i].status),
				 http_status_is_retryable(cases[i].status), cases[i].err,
				 cases[i].retry);
	}
}

/*
 * Transient or permanent, decided once (backend_error_is_transient): a failed
 * transfer's errno, whether it is retried, and what the cache makes of it
 * after backend_error_normalise() all agree.
 */
static void test_transient_table(void **state)
{
	static const struct {
		int code;
		int err;
		bool transient;
	} curl_cases[] = {
		{ CURLE_PARTIAL_FILE, -ECONNRESET, true }, /* a body cut short (Content-Length) */
		{ CURLE_RECV_ERROR, -ECONNRESET, true },   /* a reset */
		{ CURLE_SEND_ERROR, -ECONNRESET, true },
		{ CURLE_GOT_NOTHING, -ECONNRESET, true }, /* a dropped connection */
		{ CURLE_HTTP2, -ECONNRESET, true },
		{ CURLE_HTTP2_STREAM, -ECONNRESET, true },
		{ CURLE_COULDNT_CONNECT, -ECONNREFUSED, true },
		{ CURLE_COULDNT_RESOLVE_HOST, -EHOSTUNREACH, true },
		{ CURLE_COULDNT_RESOLVE_PROXY, -EHOSTUNREACH, true },
		{ CURLE_OPERATION_TIMEDOUT, -ETIMEDOUT, true },
		{ CURLE_PEER_FAILED_VERIFICATION, -EIO, false },
		{ CURLE_SSL_CACERT_BADFILE, -EIO, false },
		{ CURLE_URL_MALFORMAT, -EINVAL, false },
		{ CURLE_UNSUPPORTED_PROTOCOL, -EINVAL, false },
		{ CURLE_FILESIZE_EXCEEDED, -EFBIG, false },
		{ CURLE_OUT_OF_MEMORY, -ENOMEM, false },
		{ CURLE_WEIRD_SERVER_REPLY, -EIO, false },
	};
	static const struct {
		int err;
		bool transient;
		int normalised;
	} errno_cases[] = {
		{ -EAGAIN, true, -EAGAIN },
		{ -ETIMEDOUT, true, -ETIMEDOUT },
		{ -EHOSTUNREACH, true, -EHOSTUNREACH },
		{ -ENETUNREACH, true, -ENETUNREACH },
		{ -ECONNREFUSED, true, -ECONNREFUSED },
		{ -ECONNRESET, true, -ECONNRESET },
		{ -EBADMSG, true, -EAGAIN }, /* a malformed 200: stale kept, readers get EAGAIN */
		{ -EBUSY, true, -EAGAIN },
		{ -EPIPE, true, -EAGAIN },
		{ -ECONNABORTED, true, -EAGAIN },
		{ -ENOENT, false, -ENOENT },
		{ -EACCES, false, -EACCES },
		{ -ENOMEM, false, -ENOMEM },
		{ -EIO, false, -EIO },
		{ -EINVAL, false, -EIO },
		{ -EFBIG, false, -EIO },
		{ -EOPNOTSUPP, false, -EIO },
		{ -EPERM, false, -EIO },
		{ 0, false, 0 },
		{ 7, false, 7 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(curl_cases); i++) {
		int err = http_curl_errno(curl_cases[i].code);

		if (err != curl_cases[i].err ||
		    !!backend_error_is_transient(err) != curl_cases[i].transient)
			fail_msg("CURLcode %d: errno %d transient %d, expected %d %d",
				 curl_cases[i].code, err, backend_error_is_transient(err),
				 curl_cases[i].err, curl_cases[i].transient);
	}
	for (size_t i = 0; i < ARRAY_SIZE(errno_cases); i++) {
		int err = errno_cases[i].err;

		if (!!backend_error_is_transient(err) != errno_cases[i].transient ||
		    backend_error_normalise(err) != errno_cases[i].normalised)
			fail_msg("errno %d: transient %d normalised %d, expected %d %d", err,
				 backend_error_is_transient(err), backend_error_normalise(err),
				 errno_cases[i].transient, errno_cases[i].normalised);
	}
	/* Normalising never turns transient into permanent, or the other way. */
	for (int e = 1; e < 134; e++)
		if (!!backend_error_is_transient(-e) !=
		    !!backend_error_is_transient(backend_error_normalise(-e)))
			fail_msg("errno %d changes kind when normalised", e);
	/* Every transient status is transient for the cache too; 403 and 404 are not. */
	for (long st = 400; st < 600; st++)
		if (http_status_is_retryable(st) &&
		    !backend_error_is_transient(http_status_to_errno(st)))
			fail_msg("status %ld is retried but permanent", st);
	assert_false(backend_error_is_transient(http_status_to_errno(403)));
	assert_false(backend_error_is_transient(http_status_to_errno(404)));
}

static void test_escape_path(void **state)
{
	static const struct {
		const char *in;
		bool keep_slash;
		const char *out;
	} cases[] = {
		{ "", false, "" },
		{ "plain", false, "plain" },
		{ "AZaz09-._~", false, "AZaz09-._~" },
		{ "a/b/c", true, "a/b/c" },
		{ "a/b/c", false, "a%2Fb%2Fc" },
		{ "a b", true, "a%20b" },
		{ "100%", true, "100%25" },
		{ "?#[]@!$&'()*+,;=:", true,
		  "%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A" },
		{ "\x01\x7f\xff", false, "%01%7F%FF" },
		{ "caf\xc3\xa9/x", true, "caf%C3%A9/x" },
		{ "../etc", true, "../etc" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *out = http_escape_path(cases[i].in, cases[i].keep_slash);

		assert_non_null(out);
		assert_string_equal(out, cases[i].out);
		free(out);
	}
}

static void test_client_config(void **state)
{
	struct http_config cfg = { .client_key = "/nonexistent/key.pem" };
	struct http_client *c = NULL;
	struct http_response resp = { 0 };
	char reason[256] = "";

	assert_int_equal(http_client_new(&cfg, &c, reason, sizeof(reason)), -EINVAL);
	assert_null(c);
	assert_non_null(strstr(reason, "client certificate"));

	/* NULL: every default. */
	assert_int_equal(http_client_new(NULL, &c, reason, sizeof(reason)), 0);
	http_client_free(c);
	http_client_free(NULL);

	/* Done twice, or on an empty response: harmless. */
	http_response_done(&resp);
	http_response_done(&resp);
}

/* ---- plain HTTP ---- */

static void test_body_exact(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "";
	static char bin[3000];
	size_t big_len = 600 * 1024;
	char *big = malloc(big_len);

	assert_non_null(big);
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (char)(i * 7);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)('a' + i % 26);
	srv_add(s, (struct script){ .status = 200, .body = bin, .body_len = sizeof(bin) });
	srv_add(s, (struct script){
			   .status = 200, .body = big, .body_len = big_len, .chunked = true });
	srv_add(s, (struct script){ .status = 204 });

	assert_int_equal(do_get(c, s, "/bin", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 1);
	assert_int_equal(resp.body_len, sizeof(bin));
	assert_memory_equal(resp.body, bin, sizeof(bin));
	assert_int_equal(resp.body[resp.body_len], '\0');
	assert_string_equal(resp.header_error_type, "");
	http_response_done(&resp);
	assert_null(resp.body);

	/* Many writes, many grows. */
	assert_int_equal(do_get(c, s, "/big", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.body_len, big_len);
	assert_memory_equal(resp.body, big, big_len);
	http_response_done(&resp);

	/* No body at all: still a NUL-terminated string. */
	assert_int_equal(do_get(c, s, "/empty", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 204);
	assert_int_equal(resp.body_len, 0);
	assert_non_null(resp.body);
	assert_string_equal(resp.body, "");
	http_response_done(&resp);

	assert_string_equal(srv_seen(s, 0).method, "GET");
	assert_string_equal(srv_seen(s, 0).target, "/bin");
	http_client_free(c);
	free(big);
}

static void test_keepalive(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	char reason[256] = "";

	for (int i = 0; i < 5; i++) {
		struct http_response resp = { 0 };
		char path[32];

		snprintf(path, sizeof(path), "/k%d", i);
		assert_int_equal(do_get(c, s, path, &resp, reason, sizeof(reason)), 0);
		assert_string_equal(resp.body, path);
		http_response_done(&resp);
	}
	assert_int_equal(srv_nseen(s), 5);
	assert_int_equal(srv_accepts(s), 1);
	http_client_free(c);
}

static void test_retry_503_then_200(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "";

	srv_add(s, (struct script){ .status = 503,
				    .body = "busy",
				    .headers = "x-amzn-ErrorType: ThrottlingException\r\n" });
	srv_add(s, (struct script){ .status = 200, .body = "fine" });
	assert_int_equal(do_get(c, s, "/r", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 2);
	assert_string_equal(resp.body, "fine");
	/* Each attempt starts afresh: nothing of the 503 is left. */
	assert_string_equal(resp.header_error_type, "");
	assert_int_equal(srv_nseen(s), 2);
	http_response_done(&resp);
	http_client_free(c);
}

static void test_retry_after_seconds(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "";

	srv_add(s, (struct script){ .status = 429, .headers = "Retry-After: 1\r\n" });
	srv_add(s, (struct script){ .status = 200, .body = "ok" });
	assert_int_equal(do_get(c, s, "/ra", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 2);
	assert_int_equal(srv_nseen(s), 2);
	assert_true(srv_seen(s, 1).at_usec - srv_seen(s, 0).at_usec >= 1 * SEC);
	http_response_done(&resp);
	http_client_free(c);
}

static void test_retry_after_date(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };
	char reason[256] = "", future[128], hdr[160];
	time_t t = time(NULL) + 3600;
	struct tm tm;
	uint64_t t0;

	/* A date in the past: retry at once. */
	srv_add(s, (struct script){ .status = 503,
				    .headers = "Retry-After: Thu, 01 Jan 1970 00:00:00 GMT\r\n" });
	srv_add(s, (struct script){ .status = 200, .body = "ok" });
	c = client_new(&cfg);
	t0 = now_usec();
	assert_int_equal(do_get(c, s, "/d1", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 2);
	assert_true(now_usec() - t0 < 1 * SEC);
	http_response_done(&resp);

	/* An hour from now, past the 60 s default budget: the 503 comes back at once. */
	gmtime_r(&t, &tm);
	strftime(future, sizeof(future), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(hdr, sizeof(hdr), "Retry-After: %s\r\n", future);
	srv_add(s, (struct script){ .status = 503, .headers = hdr });
	t0 = now_usec();
	assert_int_equal(do_get(c, s, "/d2", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 503);
	assert_int_equal(resp.attempts, 1);
	assert_true(now_usec() - t0 < 1 * SEC);
	http_response_done(&resp);
	http_client_free(c);
}

static void test_retry_after_past_budget(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };
	char reason[256] = "";
	uint64_t t0;

	cfg.max_retry_usec = 500 * MSEC;
	c = client_new(&cfg);
	srv_add(s, (struct script){ .status = 429,
				    .headers = "Retry-After: 5\r\n",
				    .body = "{\"errors\":[\"slow down\"]}" });
	t0 = now_usec();
	assert_int_equal(do_get(c, s, "/cap", &resp, reason, sizeof(reason)), 0);
	assert_true(now_usec() - t0 < 400 * MSEC);
	assert_int_equal(resp.status, 429);
	assert_int_equal(resp.attempts, 1);
	assert_string_equal(resp.body, "{\"errors\":[\"slow down\"]}");
	assert_int_equal(http_status_to_errno(resp.status), -EAGAIN);
	assert_int_equal(srv_nseen(s), 1);
	http_response_done(&resp);
	http_client_free(c);
}

static void test_max_attempts(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };
	char reason[256] = "";

	cfg.max_attempts = 3;
	c = client_new(&cfg);
	srv_add(s, (struct script){ .status = 500, .body = "down" });
	assert_int_equal(do_get(c, s, "/500", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 500);
	assert_int_equal(resp.attempts, 3);
	assert_string_equal(resp.body, "down");
	assert_int_equal(srv_nseen(s), 3);
	http_response_done(&resp);
	http_client_free(c);
}

static void test_no_retry_404(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "";

	srv_add(s, (struct script){ .status = 404, .body = "{\"errors\":[]}" });
	assert_int_equal(do_get(c, s, "/nope", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 404);
	assert_int_equal(resp.attempts, 1);
	assert_int_equal(http_status_to_errno(resp.status), -ENOENT);
	assert_int_equal(srv_nseen(s), 1);
	http_response_done(&resp);
	http_client_free(c);
}

static void test_connection_refused(void **state)
{
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { .status = 42 };
	struct http_request req = { .method = "GET" };
	char reason[256] = "", url[64];
	int port, fd = listen_any(&port);

	/* A port that was just ours and is closed now. */
	assert_true(fd >= 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	req.url = url;
	cfg.max_attempts = 3;
	c = client_new(&cfg);
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), -ECONNREFUSED);
	assert_int_equal(resp.attempts, 3);
	assert_int_equal(resp.status, 0);
	assert_null(resp.body);
	assert_non_null(strstr(reason, "connection refused"));
	assert_non_null(strstr(reason, "3 attempts"));
	http_response_done(&resp);
	http_client_free(c);
}

/* Accepts @n connections on @fd and resets each (SO_LINGER 0) once its first bytes came. */
struct resetter {
	int fd;
	int n;
};

static void *reset_connections(void *arg)
{
	struct resetter *r = arg;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char buf[256];

	for (int i = 0; i < r->n; i++) {
		int c = accept(r->fd, NULL, NULL);

		if (c < 0)
			break;
		(void)!recv(c, buf, sizeof(buf), 0); /* the ClientHello */
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c);
	}
	return NULL;
}

/*
 * A reset in the middle of the TLS handshake (a load balancer or a server
 * restarting) is a reset like any other: ECONNRESET, retried, transient.
 * libcurl reports it as CURLE_SSL_CONNECT_ERROR, like a real TLS failure.
 */
static void test_reset_during_tls_handshake(void **state)
{
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };
	struct http_request req = { .method = "GET" };
	char reason[256] = "", url[64];
	struct resetter r = { .n = 3 };
	pthread_t t;
	int port;

	r.fd = listen_any(&port);
	assert_true(r.fd >= 0);
	assert_int_equal(pthread_create(&t, NULL, reset_connections, &r), 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
	req.url = url;
	cfg.max_attempts = 3;
	cfg.insecure = true;
	c = client_new(&cfg);
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), -ECONNRESET);
	assert_int_equal(resp.attempts, 3);
	assert_non_null(strstr(reason, "connection lost"));
	http_response_done(&resp);
	http_client_free(c);
	pthread_join(t, NULL);
	close(r.fd);
}

static void test_body_too_big(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "";
	size_t len = 2 * 1024 * 1024;
	char *big = malloc(len);

	assert_non_null(big);
	for (size_t i = 0; i < len; i++)
		big[i] = 's';
	/* Announced in Content-Length: refused before the body is read. */
	srv_add(s, (struct script){ .status = 200, .body = big, .body_len = len });
	assert_int_equal(do_get(c, s, "/big1", &resp, reason, sizeof(reason)), -EFBIG);
	assert_string_equal(reason, "response body larger than 1048576 bytes");
	assert_null(resp.body);
	assert_int_equal(resp.attempts, 1);

	/* Chunked: the write callback stops it mid-stream. */
	srv_add(s, (struct script){ .status = 200, .body = big, .body_len = len, .chunked = true });
	reason[0] = '\0';
	assert_int_equal(do_get(c, s, "/big2", &resp, reason, sizeof(reason)), -EFBIG);
	assert_string_equal(reason, "response body larger than 1048576 bytes");
	assert_null(resp.body);
	assert_int_equal(resp.attempts, 1);
	assert_int_equal(srv_nseen(s), 2);
	http_client_free(c);
	free(big);
}

static void test_body_limit_exact(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };
	char reason[256] = "";
	static char body[4097];

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('0' + i % 10);
	cfg.max_body = 4096;
	c = client_new(&cfg);
	srv_add(s,
		(struct script){ .status = 200, .body = body, .body_len = 4096, .chunked = true });
	srv_add(s,
		(struct script){ .status = 200, .body = body, .body_len = 4097, .chunked = true });
	assert_int_equal(do_get(c, s, "/4096", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.body_len, 4096);
	assert_memory_equal(resp.body, body, 4096);
	http_response_done(&resp);
	assert_int_equal(do_get(c, s, "/4097", &resp, reason, sizeof(reason)), -EFBIG);
	assert_string_equal(reason, "response body larger than 4096 bytes");
	http_client_free(c);
}

static void test_short_body(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };
	char reason[256] = "";

	cfg.max_attempts = 2;
	c = client_new(&cfg);
	srv_add(s, (struct script){ .status = 200,
				    .body = "0123456789",
				    .content_length = 100,
				    .close_after = true });
	/* Fewer bytes than Content-Length: the connection died, transient like a reset. */
	assert_int_equal(do_get(c, s, "/short", &resp, reason, sizeof(reason)), -ECONNRESET);
	assert_non_null(strstr(reason, "response body cut short"));
	assert_null(strstr(reason, "0123456789"));
	assert_null(resp.body);
	/* A connection that died mid-body is tried again, like any dropped connection. */
	assert_int_equal(resp.attempts, 2);
	assert_int_equal(srv_nseen(s), 2);
	http_client_free(c);
}

static void test_no_response(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "";

	/* The connection closes twice without a word (an empty reply), then all is well. */
	srv_add(s, (struct script){ .no_response = true });
	srv_add(s, (struct script){ .no_response = true });
	srv_add(s, (struct script){ .status = 200, .body = "third time" });
	assert_int_equal(do_get(c, s, "/flaky", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.attempts, 3);
	assert_string_equal(resp.body, "third time");
	http_response_done(&resp);
	http_client_free(c);
}

static void test_methods(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "", url[512];
	struct http_request req = { .url = url };
	struct seen w;

	assert_int_equal(
		do_req(c, s, "LIST", "/v1/secret/metadata/app/", &resp, reason, sizeof(reason)), 0);
	http_response_done(&resp);
	w = srv_seen(s, 0);
	assert_string_equal(w.method, "LIST");
	assert_string_equal(w.target, "/v1/secret/metadata/app/");
	assert_int_equal(w.body_len, 0);

	url_of(url, sizeof(url), s, "/v1/auth/approle/login");
	req.method = "POST";
	req.body = "{\"role_id\":\"r\"}";
	req.body_len = strlen(req.body);
	req.content_type = "application/json";
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), 0);
	http_response_done(&resp);
	w = srv_seen(s, 1);
	assert_string_equal(w.method, "POST");
	assert_int_equal(w.body_len, strlen(req.body));
	assert_memory_equal(w.body, req.body, w.body_len);
	assert_non_null(strstr(w.head, "Content-Type: application/json\r\n"));
	assert_null(strcasestr(w.head, "Expect:"));

	/* PUT with a body and no content type: no form-urlencoded label slips in. */
	req.method = "PUT";
	req.content_type = NULL;
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), 0);
	http_response_done(&resp);
	w = srv_seen(s, 2);
	assert_string_equal(w.method, "PUT");
	assert_memory_equal(w.body, req.body, w.body_len);
	assert_null(strcasestr(w.head, "Content-Type"));

	/* The same handle next: none of the body options linger. */
	assert_int_equal(do_req(c, s, "DELETE", "/x", &resp, reason, sizeof(reason)), 0);
	http_response_done(&resp);
	assert_int_equal(do_req(c, s, "GET", "/y", &resp, reason, sizeof(reason)), 0);
	http_response_done(&resp);
	w = srv_seen(s, 3);
	assert_string_equal(w.method, "DELETE");
	assert_int_equal(w.body_len, 0);
	w = srv_seen(s, 4);
	assert_string_equal(w.method, "GET");
	assert_int_equal(w.body_len, 0);
	assert_null(strcasestr(w.head, "Content-Type"));

	/* POST without a body: an empty one. */
	url_of(url, sizeof(url), s, "/renew");
	req = (struct http_request){ .method = "POST", .url = url };
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), 0);
	http_response_done(&resp);
	w = srv_seen(s, 5);
	assert_string_equal(w.method, "POST");
	assert_non_null(strcasestr(w.head, "Content-Length: 0\r\n"));

	req.method = "GET POST";
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), -EINVAL);
	assert_int_equal(srv_accepts(s), 1);
	http_client_free(c);
}

static void test_request_headers(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "", url[512];
	const struct http_header headers[] = {
		{ .name = "X-Vault-Token", .value = "hvs.CAESIJlU-secret-token", .secret = true },
		{ .name = "X-Vault-Namespace", .value = "team/a" },
		{ .name = "X-Empty", .value = "" },
	};
	const struct http_header bad[] = {
		{ .name = "X-Vault-Token", .value = "hvs.evil\r\nX-Injected: 1", .secret = true },
	};
	struct http_request req = {
		.method = "GET", .url = url, .headers = headers, .nheaders = 3
	};
	struct seen w;

	url_of(url, sizeof(url), s, "/h");
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), 0);
	http_response_done(&resp);
	w = srv_seen(s, 0);
	assert_non_null(strstr(w.head, "X-Vault-Token: hvs.CAESIJlU-secret-token\r\n"));
	assert_non_null(strstr(w.head, "X-Vault-Namespace: team/a\r\n"));
	assert_non_null(strstr(w.head, "X-Empty:"));
	assert_non_null(strstr(w.head, "User-Agent: secretfs/"));

	/* The caller's strings are untouched (curl wiped its own copies). */
	assert_string_equal(headers[0].value, "hvs.CAESIJlU-secret-token");

	/* Header injection: refused, and the reason names the header, not its value. */
	req.headers = bad;
	req.nheaders = 1;
	resp.status = 42;
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), -EINVAL);
	assert_int_equal(resp.status, 0);
	assert_int_equal(resp.attempts, 0);
	assert_null(resp.body);
	assert_non_null(strstr(reason, "X-Vault-Token"));
	assert_null(strstr(reason, "evil"));
	assert_int_equal(srv_nseen(s), 1);
	http_client_free(c);
}

static void test_etag_header(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "", longhdr[400];

	srv_add(s, (struct script){ .status = 200, .headers = "ETag:  \"abc123\"  \r\n" });
	snprintf(longhdr, sizeof(longhdr), "etag: \"%0300d\"\r\n", 7);
	srv_add(s, (struct script){ .status = 200, .headers = longhdr });
	srv_add(s, (struct script){ .status = 304 });

	assert_int_equal(do_get(c, s, "/doc", &resp, reason, sizeof(reason)), 0);
	assert_string_equal(resp.etag, "\"abc123\"");
	http_response_done(&resp);
	/* A tag too long to keep whole is not kept at all: cut short, it would never match. */
	assert_int_equal(do_get(c, s, "/doc", &resp, reason, sizeof(reason)), 0);
	assert_string_equal(resp.etag, "");
	http_response_done(&resp);
	assert_int_equal(do_get(c, s, "/doc", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 304);
	assert_string_equal(resp.etag, "");
	http_response_done(&resp);
	http_client_free(c);
}

static void test_error_type_header(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	char reason[256] = "", longhdr[400];

	srv_add(s, (struct script){
			   .status = 400,
			   .headers = "X-Amzn-ErrorType: ResourceNotFoundException:http://internal."
				      "amazon.com/coral/com.amazon.coral.validate/\r\n",
			   .body = "{\"__type\":\"ResourceNotFoundException\"}" });
	snprintf(longhdr, sizeof(longhdr), "x-amzn-errortype:   %0300d  \r\n", 7);
	srv_add(s, (struct script){ .status = 400, .headers = longhdr });
	srv_add(s, (struct script){ .status = 200 });

	assert_int_equal(do_get(c, s, "/aws", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 400);
	assert_string_equal(resp.header_error_type,
			    "ResourceNotFoundException:http://internal.amazon.com/coral/"
			    "com.amazon.coral.validate/");
	http_response_done(&resp);

	/* Bounded: cut to the field, trimmed of blanks. */
	assert_int_equal(do_get(c, s, "/aws", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(strlen(resp.header_error_type), sizeof(resp.header_error_type) - 1);
	assert_int_equal(resp.header_error_type[0], '0');
	http_response_done(&resp);

	assert_int_equal(do_get(c, s, "/aws", &resp, reason, sizeof(reason)), 0);
	assert_string_equal(resp.header_error_type, "");
	http_response_done(&resp);
	http_client_free(c);
}

static void test_timeout(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };
	char reason[256] = "";
	uint64_t t0, dt;

	cfg.timeout_usec = 300 * MSEC;
	cfg.max_attempts = 1;
	c = client_new(&cfg);
	srv_add(s, (struct script){ .hang = true });
	t0 = now_usec();
	assert_int_equal(do_get(c, s, "/hang", &resp, reason, sizeof(reason)), -ETIMEDOUT);
	dt = now_usec() - t0;
	assert_true(dt >= 280 * MSEC);
	assert_true(dt < 2 * SEC);
	assert_non_null(strstr(reason, "timed out"));
	http_client_free(c);
}

/* The retries share the total budget: a second 300 ms attempt is cut to what is left. */
static void test_timeout_budget(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };
	char reason[256] = "";
	uint64_t t0, dt;

	cfg.timeout_usec = 300 * MSEC;
	cfg.max_retry_usec = 450 * MSEC;
	cfg.max_attempts = 10;
	c = client_new(&cfg);
	srv_add(s, (struct script){ .hang = true });
	t0 = now_usec();
	assert_int_equal(do_get(c, s, "/hang", &resp, reason, sizeof(reason)), -ETIMEDOUT);
	dt = now_usec() - t0;
	assert_true(resp.attempts >= 2);
	assert_true(dt >= 400 * MSEC);
	assert_true(dt < 1 * SEC);
	http_client_free(c);
}

static void test_proxy_env(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };
	struct http_request req = { .method = "GET", .url = "http://secretfs.invalid/via-proxy" };
	char reason[256] = "", proxy[64];

	/* curl reads the proxy variables itself; http.c must not turn that off. */
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", s->port);
	setenv("http_proxy", proxy, 1);
	assert_int_equal(http_do(c, &req, &resp, reason, sizeof(reason)), 0);
	http_response_done(&resp);
	unsetenv("http_proxy");
	assert_string_equal(srv_seen(s, 0).target, "http://secretfs.invalid/via-proxy");
	http_client_free(c);
}

#define CC_THREADS  8
#define CC_REQUESTS 50

struct cc_arg {
	struct http_client *c;
	struct srv *s;
	int id;
	int ok;
};

static void *cc_main(void *arg)
{
	struct cc_arg *a = arg;

	for (int i = 0; i < CC_REQUESTS; i++) {
		struct http_response resp = { 0 };
		char path[64], reason[256];

		snprintf(path, sizeof(path), "/t%d/r%d", a->id, i);
		if (do_get(a->c, a->s, path, &resp, reason, sizeof(reason)) == 0 &&
		    resp.status == 200 && resp.attempts == 1 && strcmp(resp.body, path) == 0)
			a->ok++;
		http_response_done(&resp);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct srv *s = *state;
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	pthread_t t[CC_THREADS];
	struct cc_arg args[CC_THREADS];

	for (int i = 0; i < CC_THREADS; i++) {
		args[i] = (struct cc_arg){ .c = c, .s = s, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, cc_main, &args[i]), 0);
	}
	for (int i = 0; i < CC_THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].ok, CC_REQUESTS);
	}
	assert_int_equal(srv_nseen(s), CC_THREADS * CC_REQUESTS);
	/* At most one handle per thread, and each keeps its connection. */
	assert_true(srv_accepts(s) <= CC_THREADS);
	http_client_free(c);
}

/* ---- TLS ---- */

static char pki[64]; /* the test PKI's directory; "" when openssl is missing */

static int openssl_cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int openssl_cli(const char *fmt, ...)
{
	char cmd[2048];
	int n, r;
	va_list ap;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 64, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 64)
		return -1;
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, " >/dev/null 2>&1");
	r = system(cmd);
	return r == 0 ? 0 : -1;
}

/* As tests/servers/certs.py: P-256 keys, a CA, leaves signed by it. */
static int make_leaf(const char *name, const char *cn, const char *ext)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.ext", pki, name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"basicConstraints=critical,CA:FALSE\n"
		"keyUsage=critical,digitalSignature,keyEncipherment\n"
		"subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n%s\n",
		ext);
	fclose(f);
	if (openssl_cli("cd %s && openssl req -new -nodes -newkey ec -pkeyopt "
			"ec_paramgen_curve:prime256v1 -sha256 -keyout %s.key -out %s.csr "
			"-subj '/O=secretfs tests/CN=%s'",
			pki, name, name, cn) < 0)
		return -1;
	return openssl_cli("cd %s && openssl x509 -req -sha256 -in %s.csr -CA ca.pem -CAkey ca.key "
			   "-set_serial 0x%08x%08x -days 7 -extfile %s.ext -out %s.pem",
			   pki, name, (unsigned)random(), (unsigned)random(), name, name);
}

static int setup_pki(void **state)
{
	snprintf(pki, sizeof(pki), "/tmp/secretfs-test-http-XXXXXX");
	if (!mkdtemp(pki))
		goto none;
	if (openssl_cli("cd %s && openssl req -x509 -nodes -newkey ec -pkeyopt "
			"ec_paramgen_curve:prime256v1 -sha256 -keyout ca.key -out ca.pem -days 7 "
			"-subj '/O=secretfs tests/CN=secretfs test CA' "
			"-addext basicConstraints=critical,CA:TRUE "
			"-addext keyUsage=critical,keyCertSign,cRLSign "
			"-addext subjectKeyIdentifier=hash",
			pki) < 0 ||
	    make_leaf("server", "localhost",
		      "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost") <
		    0 ||
	    make_leaf("client", "secretfs-client", "extendedKeyUsage=clientAuth") < 0 ||
	    make_leaf("wronghost", "wrong.invalid",
		      "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:wrong.invalid") < 0)
		goto none;
	return 0;
none:
	if (pki[0])
		openssl_cli("rm -rf %s", pki);
	pki[0] = '\0';
	return 0;
}

static int teardown_pki(void **state)
{
	if (pki[0])
		openssl_cli("rm -rf %s", pki);
	return 0;
}

static const char *pki_file(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", pki, name);
	return buf;
}

/* A TLS server with the leaf @name; requiring a client certificate when @mtls. */
static struct srv *tls_srv(const char *name, bool mtls)
{
	char cert[128], key[128], ca[128], n[64];
	SSL_CTX *ctx;

	if (!pki[0])
		skip();
	ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	snprintf(n, sizeof(n), "%s.pem", name);
	pki_file(cert, sizeof(cert), n);
	snprintf(n, sizeof(n), "%s.key", name);
	pki_file(key, sizeof(key), n);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	if (mtls) {
		assert_int_equal(SSL_CTX_load_verify_locations(
					 ctx, pki_file(ca, sizeof(ca), "ca.pem"), NULL),
				 1);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return srv_start(ctx);
}

static void test_tls_verified(void **state)
{
	struct srv *s = tls_srv("server", false);
	char ca[128], reason[256] = "";
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };

	cfg.ca_file = pki_file(ca, sizeof(ca), "ca.pem");
	c = client_new(&cfg);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(do_get(c, s, "/tls", &resp, reason, sizeof(reason)), 0);
		assert_int_equal(resp.status, 200);
		assert_string_equal(resp.body, "/tls");
		http_response_done(&resp);
	}
	assert_int_equal(srv_accepts(s), 1);
	http_client_free(c);

	/* The same CA as a hashed directory. */
	assert_int_equal(openssl_cli("openssl rehash %s", pki), 0);
	cfg.ca_file = NULL;
	cfg.ca_path = pki;
	c = client_new(&cfg);
	assert_int_equal(do_get(c, s, "/capath", &resp, reason, sizeof(reason)), 0);
	assert_string_equal(resp.body, "/capath");
	http_response_done(&resp);
	http_client_free(c);
	srv_stop(s);
}

static void test_tls_unknown_ca(void **state)
{
	struct srv *s = tls_srv("server", false);
	char reason[256] = "";
	struct http_config cfg = fast_cfg();
	struct http_client *c = client_new(&cfg);
	struct http_response resp = { 0 };

	/* The system's CAs do not know ours. */
	assert_int_equal(do_get(c, s, "/tls", &resp, reason, sizeof(reason)), -EIO);
	assert_non_null(strstr(reason, "certificate"));
	assert_int_equal(resp.attempts, 1);
	assert_int_equal(srv_nseen(s), 0);
	http_client_free(c);
	srv_stop(s);
}

static void test_tls_wrong_host(void **state)
{
	struct srv *s = tls_srv("wronghost", false);
	char ca[128], reason[256] = "";
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };

	cfg.ca_file = pki_file(ca, sizeof(ca), "ca.pem");
	c = client_new(&cfg);
	assert_int_equal(do_get(c, s, "/tls", &resp, reason, sizeof(reason)), -EIO);
	assert_non_null(strstr(reason, "TLS"));
	assert_non_null(strstr(reason, "certificate"));
	assert_int_equal(srv_nseen(s), 0);
	http_client_free(c);

	/* insecure: the explicit opt-out connects anyway, even without the CA. */
	cfg.ca_file = NULL;
	cfg.insecure = true;
	c = client_new(&cfg);
	assert_int_equal(do_get(c, s, "/insecure", &resp, reason, sizeof(reason)), 0);
	assert_string_equal(resp.body, "/insecure");
	http_response_done(&resp);
	http_client_free(c);
	srv_stop(s);
}

static void test_tls_client_cert(void **state)
{
	struct srv *s = tls_srv("server", true);
	char ca[128], cert[128], key[128], reason[256] = "";
	struct http_config cfg = fast_cfg();
	struct http_client *c;
	struct http_response resp = { 0 };

	cfg.ca_file = pki_file(ca, sizeof(ca), "ca.pem");
	cfg.max_attempts = 1;
	c = client_new(&cfg);
	assert_true(do_get(c, s, "/mtls", &resp, reason, sizeof(reason)) < 0);
	assert_null(resp.body);
	assert_int_equal(srv_nseen(s), 0);
	http_client_free(c);

	cfg.client_cert = pki_file(cert, sizeof(cert), "client.pem");
	cfg.client_key = pki_file(key, sizeof(key), "client.key");
	c = client_new(&cfg);
	assert_int_equal(do_get(c, s, "/mtls", &resp, reason, sizeof(reason)), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "/mtls");
	http_response_done(&resp);
	http_client_free(c);

	/* A missing key file is refused when the client is made, naming it. */
	cfg.client_key = "/nonexistent/client.key";
	c = NULL;
	assert_int_equal(http_client_new(&cfg, &c, reason, sizeof(reason)), -ENOENT);
	assert_null(c);
	assert_string_equal(reason,
			    "/nonexistent/client.key: cannot open: No such file or directory");
	srv_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_transient_table),
		cmocka_unit_test(test_escape_path),
		cmocka_unit_test(test_client_config),
		cmocka_unit_test_setup_teardown(test_body_exact, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_keepalive, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_retry_503_then_200, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_retry_after_seconds, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_retry_after_date, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_retry_after_past_budget, setup_srv,
						teardown_srv),
		cmocka_unit_test_setup_teardown(test_max_attempts, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_no_retry_404, setup_srv, teardown_srv),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_reset_during_tls_handshake),
		cmocka_unit_test_setup_teardown(test_body_too_big, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_body_limit_exact, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_short_body, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_no_response, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_methods, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_request_headers, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_error_type_header, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_timeout, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_etag_header, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_timeout, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_timeout_budget, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_proxy_env, setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_concurrent, setup_srv, teardown_srv),
		cmocka_unit_test(test_tls_verified),
		cmocka_unit_test(test_tls_unknown_ca),
		cmocka_unit_test(test_tls_wrong_host),
		cmocka_unit_test(test_tls_client_cert),
	};
	static const char *const proxy_vars[] = { "http_proxy", "https_proxy", "HTTPS_PROXY",
						  "all_proxy",	"ALL_PROXY",   "no_proxy",
						  "NO_PROXY" };
	int r;

	/* A server thread may write to a connection the client already dropped. */
	signal(SIGPIPE, SIG_IGN);
	/* Only the proxy test wants a proxy. */
	for (size_t i = 0; i < ARRAY_SIZE(proxy_vars); i++)
		unsetenv(proxy_vars[i]);
	if (http_global_init() < 0)
		return 1;
	r = cmocka_run_group_tests_name("http", tests, setup_pki, teardown_pki);
	http_global_cleanup();
	return r;
}
