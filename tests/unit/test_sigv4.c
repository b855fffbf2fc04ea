/*
 * test_sigv4.c - the SigV4 signer (src/backends/aws_sigv4.c) against AWS's
 * Signature Version 4 test suite in $SECRETFS_FIXTURES/sigv4: all 31 cases,
 * each compared byte for byte on the canonical request (.creq), the string
 * to sign (.sts) and the Authorization value (.authz), and checked against
 * the signed request (.sreq).  Then what the suite does not show: query and
 * path forms the AWS backend and botocore produce, header rules, the
 * signing-key cache (one derivation per day, region and service; wiped by a
 * clear; a changed secret never reuses a key), threads, and refusals with
 * their reasons.
 *
 * Where the suite and botocore could part, the signer follows botocore (the
 * differential test in tests/integration/test_sigv4_botocore.py holds it to
 * botocore byte for byte).  They agree on all 31 cases, with two notes:
 *
 * - normalize-path cases: botocore's SigV4Auth normalises paths for every
 *   service but S3 (remove_dot_segments, '//' collapsed), exactly as these
 *   cases expect; get-space and get-utf8 are the raw bytes encoded once,
 *   which is what botocore's quote(path, safe='/~') does.  So no flag.
 * - get-header-value-multiline: the .req folds My-Header1 over three lines
 *   (obs-fold) and the .creq joins the lines with ','.  The signer refuses
 *   CR and LF in a value (header injection), so the request parser here
 *   turns each continuation line into one more My-Header1 value; repeated
 *   headers are joined with ',' in order, which gives the suite's line.
 * - post-sts-token cases: "before" signs X-Amz-Security-Token (botocore's way
 *   and the default); "after" adds it unsigned: SIGV4_TOKEN_AFTER.  Both
 *   cases run, and the "after" request signed without the flag must equal
 *   "before".
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "secretfs/aws_sigv4.h"
#include "secretfs/util.h"

/* The suite's parameters (NOTICE.md). */
#define SUITE_AKID    "AKIDEXAMPLE"
#define SUITE_SECRET  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_REGION  "us-east-1"
#define SUITE_SERVICE "service"
#define SUITE_DATE    "20150830T123600Z"
#define SUITE_TIME    (UINT64_C(1440938160) * USEC_PER_SEC) /* 2015-08-30T12:36:00Z */
#define DAY	      (UINT64_C(86400) * USEC_PER_SEC)

#define MAX_HEADERS 16

/* Every case of the suite, so a missing file fails instead of shrinking the run. */
#define SUITE_CASES(X)                                                                             \
	X("get-header-key-duplicate")                                                              \
	X("get-header-value-multiline")                                                            \
	X("get-header-value-order")                                                                \
	X("get-header-value-trim")                                                                 \
	X("get-unreserved")                                                                        \
	X("get-utf8")                                                                              \
	X("get-vanilla")                                                                           \
	X("get-vanilla-empty-query-key")                                                           \
	X("get-vanilla-query")                                                                     \
	X("get-vanilla-query-order-key")                                                           \
	X("get-vanilla-query-order-key-case")                                                      \
	X("get-vanilla-query-order-value")                                                         \
	X("get-vanilla-query-unreserved")                                                          \
	X("get-vanilla-utf8-query")                                                                \
	X("normalize-path/get-relative")                                                           \
	X("normalize-path/get-relative-relative")                                                  \
	X("normalize-path/get-slash")                                                              \
	X("normalize-path/get-slash-dot-slash")                                                    \
	X("normalize-path/get-slash-pointless-dot")                                                \
	X("normalize-path/get-slashes")                                                            \
	X("normalize-path/get-space")                                                              \
	X("post-header-key-case")                                                                  \
	X("post-header-key-sort")                                                                  \
	X("post-header-value-case")                                                                \
	X("post-sts-token/post-sts-header-after")                                                  \
	X("post-sts-token/post-sts-header-before")                                                 \
	X("post-vanilla")                                                                          \
	X("post-vanilla-empty-query-value")                                                        \
	X("post-vanilla-query")                                                                    \
	X("post-x-www-form-urlencoded")                                                            \
	X("post-x-www-form-urlencoded-parameters")

#define CASE_NAME(name) name,
static const char *const suite_cases[] = { SUITE_CASES(CASE_NAME) };

/* ---- fixtures ---- */

static const char *fixture_dir(void)
{
	const char *dir = getenv("SECRETFS_FIXTURES");

	return dir ? dir : "tests/data/fixtures"; /* the copy in the repo, from its root */
}

/* The whole file, NUL-terminated (malloc'ed); *@ret_len without the NUL. */
static char *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		fail_msg("%s: %s (set SECRETFS_FIXTURES to the shared fixtures folder)", path,
			 strerror(errno));
	do {
		if (cap - len < 4096) {
			cap = cap ? 2 * cap : 8192;
			buf = realloc(buf, cap + 1);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	assert_false(ferror(f));
	fclose(f);
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return buf;
}

/* $SECRETFS_FIXTURES/sigv4/CASE/BASENAME.EXT, where BASENAME is CASE's last component. */
static char *case_file(const char *name, const char *ext, size_t *ret_len)
{
	const char *base = strrchr(name, '/');
	char path[4096];

	base = base ? base + 1 : name;
	snprintf(path, sizeof(path), "%s/sigv4/%s/%s.%s", fixture_dir(), name, base, ext);
	return read_file(path, ret_len);
}

/* The token of post-sts-token/readme.txt: its last non-empty line (CRLF endings). */
static char *suite_token(void)
{
	char path[4096], *text, *end, *start, *tok;
	size_t len;

	snprintf(path, sizeof(path), "%s/sigv4/post-sts-token/readme.txt", fixture_dir());
	text = read_file(path, &len);
	end = text + len;
	while (end > text && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	*end = '\0';
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	assert_true(end - start > 100);
	tok = strdup(start);
	assert_non_null(tok);
	free(text);
	return tok;
}

/* ---- the .req parser ---- */

struct parsed {
	char *text; /* the .req, cut in place */
	const char *method;
	const char *path;
	const char *query; /* NULL: no '?' */
	const char *host;
	const char *date;
	const char *token; /* X-Amz-Security-Token, taken out of the headers */
	struct http_header headers[MAX_HEADERS];
	size_t nheaders;
	const char *body;
	size_t body_len;
};

/*
 * Parses a suite request: "METHOD TARGET HTTP/1.1" (the target may hold a
 * space: get-space), header lines "Name:value", continuation lines that
 * start with a blank, a blank line, the body.  Lines end in LF.  Host,
 * X-Amz-Date and X-Amz-Security-Token are taken out: the signer adds them.
 */
static void parse_req(char *text, size_t len, struct parsed *p)
{
	char *line = text, *end = text + len, *nl, *sp, *last_sp, *q;
	const char *prev_name = NULL;

	memset(p, 0, sizeof(*p));
	p->text = text;
	p->body = "";

	nl = memchr(line, '\n', (size_t)(end - line));
	if (nl)
		*nl = '\0';
	sp = strchr(line, ' ');
	last_sp = strrchr(line, ' ');
	assert_non_null(sp);
	assert_true(sp < last_sp);
	assert_string_equal(last_sp + 1, "HTTP/1.1");
	*sp = '\0';
	*last_sp = '\0';
	p->method = line;
	p->path = sp + 1;
	q = strchr(sp + 1, '?');
	if (q) {
		*q = '\0';
		p->query = q + 1;
	}

	while (nl && nl + 1 <= end) {
		char *colon;

		line = nl + 1;
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl)
			*nl = '\0';
		if (!*line) {
			/* The blank line: the rest is the body, exactly. */
			if (nl) {
				p->body = nl + 1;
				p->body_len = (size_t)(end - (nl + 1));
			}
			break;
		}
		assert_true(p->nheaders < MAX_HEADERS);
		if (*line == ' ' || *line == '\t') {
			/* obs-fold: one more value of the header above (see the top comment). */
			assert_non_null(prev_name);
			p->headers[p->nheaders++] = (struct http_header){ prev_name, line, false };
			continue;
		}
		colon = strchr(line, ':');
		assert_non_null(colon);
		*colon = '\0';
		if (strcasecmp(line, "Host") == 0) {
			p->host = colon + 1;
		} else if (strcasecmp(line, "X-Amz-Date") == 0) {
			p->date = colon + 1;
		} else if (strcasecmp(line, "X-Amz-Security-Token") == 0) {
			p->token = colon + 1;
		} else {
			p->headers[p->nheaders++] = (struct http_header){ line, colon + 1, false };
		}
		prev_name = line;
	}
	assert_non_null(p->host);
	assert_non_null(p->date);
}

static struct sigv4_request request_of(const struct parsed *p)
{
	return (struct sigv4_request){
		.method = p->method,
		.host = p->host,
		.path = p->path,
		.query = p->query,
		.headers = p->headers,
		.nheaders = p->nheaders,
		.body = p->body,
		.body_len = p->body_len,
	};
}

/* ---- helpers ---- */

static void expect_text(const char *name, const char *what, const char *got, const char *want)
{
	if (!got || strcmp(got, want) != 0)
		fail_msg("%s: %s differs\n--- ours\n%s\n--- suite\n%s\n---", name, what,
			 got ? got : "(null)", want);
}

static int sign_suite(const char *token, const struct sigv4_request *req, unsigned flags,
		      struct sigv4_signed *ret, char *reason, size_t reasonlen)
{
	struct aws_credentials cred = {
		.access_key_id = (char *)SUITE_AKID,
		.secret_access_key = (char *)SUITE_SECRET,
		.session_token = (char *)token,
	};

	return sigv4_sign(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, req, flags, ret, reason,
			  reasonlen);
}

/* Line @n (from 0) of the canonical request, copied into @buf. */
static const char *creq_line(const char *creq, int n, char *buf, size_t len)
{
	const char *p = creq, *e;

	for (; n > 0; n--) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	e = strchr(p, '\n');
	if (!e)
		e = p + strlen(p);
	assert_true((size_t)(e - p) < len);
	memcpy(buf, p, (size_t)(e - p));
	buf[e - p] = '\0';
	return buf;
}

/* Signs a plain GET with the suite's credentials and returns the canonical request. */
static char *canonical_of(const char *method, const char *path, const char *query,
			  const struct http_header *headers, size_t nheaders)
{
	struct sigv4_request req = {
		.method = method,
		.host = "example.amazonaws.com",
		.path = path,
		.query = query,
		.headers = headers,
		.nheaders = nheaders,
	};
	struct sigv4_signed s = { 0 };
	char reason[256] = "";
	char *creq;
	int r;

	r = sign_suite(NULL, &req, SIGV4_KEEP_TEXT, &s, reason, sizeof(reason));
	if (r < 0)
		fail_msg("sign: %d %s", r, reason);
	creq = strdup(s.canonical_request);
	sigv4_signed_done(&s);
	return creq;
}

/* ---- the suite ---- */

static void test_suite_case(void **state)
{
	const char *name = *state;
	char *req_text, *creq, *sts, *authz, *sreq, *token = NULL, *want_line;
	struct sigv4_signed s = { 0 };
	struct http_header added[SIGV4_ADDED_HEADERS];
	struct sigv4_request req;
	struct parsed p;
	char reason[256] = "";
	unsigned flags = SIGV4_KEEP_TEXT;
	size_t len, nadded;
	int r;

	req_text = case_file(name, "req", &len);
	creq = case_file(name, "creq", NULL);
	sts = case_file(name, "sts", NULL);
	authz = case_file(name, "authz", NULL);
	sreq = case_file(name, "sreq", NULL);

	parse_req(req_text, len, &p);
	assert_string_equal(p.date, SUITE_DATE);
	if (p.token)
		token = strdup(p.token);
	if (strcmp(name, "post-sts-token/post-sts-header-after") == 0) {
		/* Signed without the token, which is then added: see the top comment. */
		token = suite_token();
		flags |= SIGV4_TOKEN_AFTER;
	}
	req = request_of(&p);

	r = sign_suite(token, &req, flags, &s, reason, sizeof(reason));
	if (r < 0)
		fail_msg("%s: sigv4_sign: %d %s", name, r, reason);
	expect_text(name, "canonical request", s.canonical_request, creq);
	expect_text(name, "string to sign", s.string_to_sign, sts);
	expect_text(name, "Authorization", s.authorization, authz);
	assert_string_equal(s.amz_date, SUITE_DATE);
	assert_string_equal(s.host, p.host);

	/* The signed request carries our Authorization line. */
	assert_true(asprintf(&want_line, "\nAuthorization: %s", s.authorization) > 0);
	if (!strstr(sreq, want_line))
		fail_msg("%s: .sreq lacks our Authorization line", name);
	free(want_line);

	/* What the request must carry next to its own headers. */
	nadded = sigv4_added_headers(&s, added);
	assert_int_equal(nadded, token ? 4 : 3);
	assert_string_equal(added[0].name, "Host");
	assert_string_equal(added[0].value, p.host);
	assert_string_equal(added[1].name, "X-Amz-Date");
	assert_string_equal(added[1].value, SUITE_DATE);
	if (token) {
		assert_string_equal(added[2].name, "X-Amz-Security-Token");
		assert_string_equal(added[2].value, token);
		assert_true(added[2].secret);
		/* Both token cases send it: the .sreq has it either way. */
		assert_true(asprintf(&want_line, "\nX-Amz-Security-Token:%s\n", token) > 0);
		assert_non_null(strstr(sreq, want_line));
		free(want_line);
	}
	assert_string_equal(added[nadded - 1].name, "Authorization");
	assert_string_equal(added[nadded - 1].value, authz);

	sigv4_signed_done(&s);
	sigv4_signed_done(&s); /* twice is safe */
	free(token);
	free(req_text);
	free(creq);
	free(sts);
	free(authz);
	free(sreq);
}

/*
 * Every .req under the fixture folder is a listed case: nothing skipped, and
 * a case added to the fixtures fails here until it runs.
 */
static int nreq;

static int count_req(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	size_t n = strlen(path);
	const char *rel;
	bool known = false;

	if (type != FTW_F || n < 4 || strcmp(path + n - 4, ".req") != 0)
		return 0;
	rel = strstr(path, "/sigv4/") + strlen("/sigv4/");
	for (size_t i = 0; i < ARRAY_SIZE(suite_cases); i++) {
		const char *base = strrchr(suite_cases[i], '/');
		char want[512];

		base = base ? base + 1 : suite_cases[i];
		snprintf(want, sizeof(want), "%s/%s.req", suite_cases[i], base);
		known |= strcmp(rel, want) == 0;
	}
	if (!known)
		fail_msg("%s: a suite case this test does not run", rel);
	nreq++;
	return 0;
}

static void test_suite_complete(void **state)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/sigv4", fixture_dir());
	nreq = 0;
	assert_int_equal(nftw(dir, count_req, 8, FTW_PHYS), 0);
	assert_int_equal(nreq, 31);
	assert_int_equal(ARRAY_SIZE(suite_cases), 31);
}

/* post-sts-header-after signed with the token and no flag is post-sts-header-before. */
static void test_token_signed_by_default(void **state)
{
	char *req_text = case_file("post-sts-token/post-sts-header-after", "req", NULL);
	char *authz = case_file("post-sts-token/post-sts-header-before", "authz", NULL);
	char *token = suite_token();
	struct sigv4_signed s = { 0 };
	struct sigv4_request req;
	struct parsed p;

	parse_req(req_text, strlen(req_text), &p);
	req = request_of(&p);
	assert_int_equal(sign_suite(token, &req, 0, &s, NULL, 0), 0);
	assert_string_equal(s.authorization, authz);
	assert_null(s.canonical_request);
	assert_null(s.string_to_sign);
	assert_string_equal(s.security_token, token);
	sigv4_signed_done(&s);

	/* An empty token is no token, as in botocore. */
	assert_int_equal(sign_suite("", &req, 0, &s, NULL, 0), 0);
	assert_null(s.security_token);
	assert_non_null(strstr(s.authorization, "SignedHeaders=host;x-amz-date,"));
	sigv4_signed_done(&s);
	free(token);
	free(authz);
	free(req_text);
}

/* ---- beyond the suite: paths, queries, headers ---- */

static void test_canonical_uri(void **state)
{
	static const struct {
		const char *path, *want;
	} cases[] = {
		{ NULL, "/" },
		{ "", "/" },
		{ "/", "/" },
		{ "/a/b", "/a/b" },
		{ "/a/b/", "/a/b/" },
		{ "/./a//b/../c/", "/a/c/" },
		{ "/a/..", "/" },
		{ "/a/../", "/" },
		{ "/..", "/" },
		{ "/a/.", "/a" },
		{ "/.../a", "/.../a" },
		{ "/~user/x_y-z.w", "/~user/x_y-z.w" },
		/* Sent encoded, signed encoded again (botocore, and AWS for non-S3). */
		{ "/a%20b", "/a%2520b" },
		{ "/%E1%88%B4", "/%25E1%2588%25B4" },
		/* Raw bytes are encoded once (get-utf8, get-space). */
		{ "/a b", "/a%20b" },
		{ "/\xe1\x88\xb4", "/%E1%88%B4" },
		{ "/a+b=c;d:e@f!$&'()*,", "/a%2Bb%3Dc%3Bd%3Ae%40f%21%24%26%27%28%29%2A%2C" },
		/* "%2E" is no dot segment: only literal dots are. */
		{ "/a/%2E%2E/b", "/a/%252E%252E/b" },
	};
	char line[512];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *creq = canonical_of("GET", cases[i].path, NULL, NULL, 0);

		if (strcmp(creq_line(creq, 1, line, sizeof(line)), cases[i].want) != 0)
			fail_msg("path \"%s\": got %s, want %s",
				 cases[i].path ? cases[i].path : "(null)", line, cases[i].want);
		free(creq);
	}
}

static void test_canonical_query(void **state)
{
	static const struct {
		const char *query, *want;
	} cases[] = {
		{ NULL, "" },
		{ "", "" },
		{ "a", "a=" },
		{ "a=", "a=" },
		{ "b=2&a=1&a=", "a=&a=1&b=2" },
		/* Sorted by name, then value: not as joined strings ('-' < '='). */
		{ "a-b=1&a=2", "a=2&a-b=1" },
		{ "B=1&a=1", "B=1&a=1" },
		/* As sent: escapes kept as they are; other bytes encoded. */
		{ "k=%E1%88%B4&x=a%20b", "k=%E1%88%B4&x=a%20b" },
		{ "x=a b", "x=a%20b" },
		{ "x=a+b", "x=a%2Bb" },
		{ "x=%zz", "x=%25zz" },
		{ "x=%4", "x=%254" },
		{ "x=a=b", "x=a%3Db" },
		{ "\xe1\x88\xb4=bar", "%E1%88%B4=bar" },
		{ "-._~=-._~", "-._~=-._~" },
		/* Empty pieces stay pairs, as in botocore. */
		{ "&", "=&=" },
		{ "b=1&&a=2", "=&a=2&b=1" },
	};
	char line[512];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *creq = canonical_of("GET", "/", cases[i].query, NULL, 0);

		if (strcmp(creq_line(creq, 2, line, sizeof(line)), cases[i].want) != 0)
			fail_msg("query \"%s\": got %s, want %s",
				 cases[i].query ? cases[i].query : "(null)", line, cases[i].want);
		free(creq);
	}
}

static void test_canonical_headers(void **state)
{
	const struct http_header h[] = {
		{ "X-B", "  two   words\there\t ", false },
		{ "x-a", "1", false },
		{ "User-Agent", "secretfs/0.1", false }, /* sent, not signed */
		{ "X-A", "\t2 ", false },
		{ "Expect", "100-continue", false },
		{ "X-Amzn-Trace-Id", "Root=1", false },
		{ "x-empty", "", false },
		{ "x-blank", "   ", false },
		{ "X-A", "", false },
	};
	/* A lowercase method is signed uppercase, as botocore does. */
	char *creq = canonical_of("get", "/", NULL, h, ARRAY_SIZE(h));
	char line[512];

	assert_string_equal(creq_line(creq, 0, line, sizeof(line)), "GET");
	assert_string_equal(creq_line(creq, 3, line, sizeof(line)), "host:example.amazonaws.com");
	assert_string_equal(creq_line(creq, 4, line, sizeof(line)), "x-a:1,2,");
	assert_string_equal(creq_line(creq, 5, line, sizeof(line)), "x-amz-date:" SUITE_DATE);
	assert_string_equal(creq_line(creq, 6, line, sizeof(line)), "x-b:two words here");
	assert_string_equal(creq_line(creq, 7, line, sizeof(line)), "x-blank:");
	assert_string_equal(creq_line(creq, 8, line, sizeof(line)), "x-empty:");
	assert_string_equal(creq_line(creq, 9, line, sizeof(line)), "");
	assert_string_equal(creq_line(creq, 10, line, sizeof(line)),
			    "host;x-a;x-amz-date;x-b;x-blank;x-empty");
	assert_string_equal(creq_line(creq, 11, line, sizeof(line)),
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	free(creq);
}

/* The caller's X-Amz-Content-SHA256 is the payload hash, as botocore does. */
static void test_payload_header(void **state)
{
	const struct http_header h[] = { { "X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD", false } };
	struct sigv4_request req = {
		.method = "PUT",
		.host = "Example.AmazonAWS.com",
		.path = "/",
		.headers = h,
		.nheaders = 1,
		.body = "ignored",
		.body_len = 7,
	};
	struct sigv4_signed s = { 0 };
	char line[512];

	assert_int_equal(sign_suite(NULL, &req, SIGV4_KEEP_TEXT, &s, NULL, 0), 0);
	assert_string_equal(s.content_sha256, "UNSIGNED-PAYLOAD");
	assert_string_equal(creq_line(s.canonical_request, 7, line, sizeof(line)),
			    "host;x-amz-content-sha256;x-amz-date");
	assert_string_equal(creq_line(s.canonical_request, 8, line, sizeof(line)),
			    "UNSIGNED-PAYLOAD");
	/* The host is signed and sent lowercase. */
	assert_string_equal(s.host, "example.amazonaws.com");
	assert_string_equal(creq_line(s.canonical_request, 3, line, sizeof(line)),
			    "host:example.amazonaws.com");
	sigv4_signed_done(&s);

	/* Otherwise the body's hash. */
	req.nheaders = 0;
	assert_int_equal(sign_suite(NULL, &req, 0, &s, NULL, 0), 0);
	assert_string_equal(s.content_sha256, /* sha256("ignored") */
			    "3514cf816e5407a39cb7a1c1e1243f176dda121e06398a8934edb1dc426b0b34");
	sigv4_signed_done(&s);
}

/* ---- the key cache ---- */

static struct sigv4_request vanilla = {
	.method = "GET",
	.host = "example.amazonaws.com",
	.path = "/",
};

static int sign_with(const char *akid, const char *secret, const char *region, const char *service,
		     uint64_t t, struct sigv4_signed *ret)
{
	struct aws_credentials cred = {
		.access_key_id = (char *)akid,
		.secret_access_key = (char *)secret,
	};
	char reason[256] = "";
	int r = sigv4_sign(&cred, region, service, t, &vanilla, 0, ret, reason, sizeof(reason));

	if (r < 0)
		fail_msg("sign: %d %s", r, reason);
	return r;
}

static struct sigv4_cache_stats stats(void)
{
	struct sigv4_cache_stats st;

	sigv4_cache_get_stats(&st);
	return st;
}

static void sign_once(const char *akid, const char *secret, const char *region, const char *service,
		      uint64_t t)
{
	struct sigv4_signed s = { 0 };

	sign_with(akid, secret, region, service, t, &s);
	sigv4_signed_done(&s);
}

static void test_cache_reuse(void **state)
{
	struct sigv4_cache_stats a, b;
	struct sigv4_signed s1 = { 0 }, s2 = { 0 };
	char *authz = case_file("get-vanilla", "authz", NULL);

	sigv4_cache_clear();
	a = stats();
	assert_int_equal(a.entries, 0);
	assert_int_equal(a.key_bytes_set, 0);

	/* Same day, region, service: one derivation, then hits (other times of day too). */
	sign_with(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &s1);
	sign_with(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &s2);
	assert_string_equal(s1.authorization, authz);
	assert_string_equal(s2.authorization, authz);
	sign_once(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE,
		  SUITE_TIME - 12 * 3600 * USEC_PER_SEC);
	sign_once(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE,
		  SUITE_TIME + 11 * 3600 * USEC_PER_SEC);
	b = stats();
	assert_int_equal(b.derivations - a.derivations, 1);
	assert_int_equal(b.hits - a.hits, 3);
	assert_int_equal(b.entries, 1);
	assert_true(b.key_bytes_set > 0);

	/* Another service, region, access key: one derivation each. */
	a = b;
	sign_once(SUITE_AKID, SUITE_SECRET, SUITE_REGION, "secretsmanager", SUITE_TIME);
	sign_once(SUITE_AKID, SUITE_SECRET, "eu-west-1", SUITE_SERVICE, SUITE_TIME);
	sign_once("AKIDOTHER", SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME);
	sign_once(SUITE_AKID, SUITE_SECRET, SUITE_REGION, "secretsmanager", SUITE_TIME);
	b = stats();
	assert_int_equal(b.derivations - a.derivations, 3);
	assert_int_equal(b.hits - a.hits, 1);
	assert_int_equal(b.entries, 4);

	/* The next day replaces the slot of the day before instead of taking a new one. */
	a = b;
	sign_once(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME + DAY);
	sign_once(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME + DAY);
	b = stats();
	assert_int_equal(b.derivations - a.derivations, 1);
	assert_int_equal(b.hits - a.hits, 1);
	assert_int_equal(b.entries, 4);

	sigv4_signed_done(&s1);
	sigv4_signed_done(&s2);
	free(authz);
}

/* A secret changed under the same access key id derives anew: no stale key. */
static void test_cache_secret_change(void **state)
{
	char *authz = case_file("get-vanilla", "authz", NULL);
	struct sigv4_cache_stats a, b;
	struct sigv4_signed s = { 0 };

	sigv4_cache_clear();
	a = stats();
	sign_with(SUITE_AKID, "a-typo-in-the-secret", SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &s);
	assert_string_not_equal(s.authorization, authz);
	sigv4_signed_done(&s);
	sign_with(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &s);
	assert_string_equal(s.authorization, authz);
	sigv4_signed_done(&s);
	b = stats();
	assert_int_equal(b.derivations - a.derivations, 2);
	assert_int_equal(b.hits - a.hits, 0);
	assert_int_equal(b.entries, 1); /* the wrong key's slot was reused, and wiped */
	free(authz);
}

static void test_cache_clear_wipes(void **state)
{
	struct sigv4_cache_stats a, b;

	sign_once(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME);
	sign_once(SUITE_AKID, SUITE_SECRET, "ap-south-1", "ssm", SUITE_TIME);
	a = stats();
	assert_true(a.entries >= 2);
	assert_true(a.key_bytes_set > 0);

	sigv4_cache_clear();
	b = stats();
	assert_int_equal(b.entries, 0);
	assert_int_equal(b.key_bytes_set, 0);

	/* After a clear, the next signature derives again, with the same result. */
	sign_once(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME);
	a = stats();
	assert_int_equal(a.derivations - b.derivations, 1);
	sigv4_cache_clear();
}

/* More keys than slots: the least recently used goes, and correctness stays. */
static void test_cache_eviction(void **state)
{
	char *authz = case_file("get-vanilla", "authz", NULL);
	struct sigv4_cache_stats a, b;
	struct sigv4_signed s = { 0 };
	char region[32];
	size_t cap;

	sigv4_cache_clear();
	a = stats();
	cap = a.capacity;
	assert_true(cap >= 2);
	for (size_t i = 0; i < 3 * cap; i++) {
		snprintf(region, sizeof(region), "xx-test-%zu", i);
		sign_once(SUITE_AKID, SUITE_SECRET, region, SUITE_SERVICE, SUITE_TIME);
	}
	b = stats();
	assert_int_equal(b.entries, cap);
	assert_int_equal(b.derivations - a.derivations, 3 * cap);

	/* The newest is still there; the oldest is not. */
	a = b;
	snprintf(region, sizeof(region), "xx-test-%zu", 3 * cap - 1);
	sign_once(SUITE_AKID, SUITE_SECRET, region, SUITE_SERVICE, SUITE_TIME);
	sign_with(SUITE_AKID, SUITE_SECRET, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &s);
	assert_string_equal(s.authorization, authz);
	sigv4_signed_done(&s);
	b = stats();
	assert_int_equal(b.hits - a.hits, 1);
	assert_int_equal(b.derivations - a.derivations, 1);

	/* Names too long for a slot are signed all the same, just not cached. */
	a = b;
	memset(region, 'r', sizeof(region) - 1);
	region[sizeof(region) - 1] = '\0';
	{
		char longsvc[200];

		memset(longsvc, 's', sizeof(longsvc) - 1);
		longsvc[sizeof(longsvc) - 1] = '\0';
		sign_once(SUITE_AKID, SUITE_SECRET, region, longsvc, SUITE_TIME);
		sign_once(SUITE_AKID, SUITE_SECRET, region, longsvc, SUITE_TIME);
	}
	b = stats();
	assert_int_equal(b.derivations - a.derivations, 2);
	sigv4_cache_clear();
	free(authz);
}

#define THREADS	    8
#define THREAD_RUNS 200

struct thread_arg {
	const char *want[2];
	int failures;
};

static void *signer_thread(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < THREAD_RUNS; i++) {
		struct aws_credentials cred = {
			.access_key_id = (char *)SUITE_AKID,
			.secret_access_key = (char *)SUITE_SECRET,
		};
		struct sigv4_signed s = { 0 };
		const char *service = i % 2 ? SUITE_SERVICE : "sts";

		if (sigv4_sign(&cred, SUITE_REGION, service, SUITE_TIME, &vanilla, 0, &s, NULL, 0) <
			    0 ||
		    strcmp(s.authorization, a->want[i % 2]) != 0)
			a->failures++;
		sigv4_signed_done(&s);
		if (i % 50 == 0)
			sigv4_cache_clear();
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct thread_arg args[THREADS];
	pthread_t t[THREADS];
	struct sigv4_signed sts = { 0 };
	char *authz = case_file("get-vanilla", "authz", NULL);

	sign_with(SUITE_AKID, SUITE_SECRET, SUITE_REGION, "sts", SUITE_TIME, &sts);
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){ { sts.authorization, authz }, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, signer_thread, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
	sigv4_signed_done(&sts);
	sigv4_cache_clear();
	free(authz);
}

/* ---- refusals ---- */

/* Expects -@err with @needle in the reason, and *ret left alone. */
static void expect_refusal(const struct aws_credentials *cred, const char *region,
			   const char *service, uint64_t t, const struct sigv4_request *req,
			   unsigned flags, int err, const char *needle)
{
	struct sigv4_signed s, untouched;
	char reason[256] = "";
	int r;

	memset(&s, 0x5a, sizeof(s));
	memcpy(&untouched, &s, sizeof(s));
	r = sigv4_sign(cred, region, service, t, req, flags, &s, reason, sizeof(reason));
	if (r != -err)
		fail_msg("want %d (%s), got %d: %s", -err, needle, r, reason);
	if (!strstr(reason, needle))
		fail_msg("reason \"%s\" lacks \"%s\"", reason, needle);
	assert_memory_equal(&s, &untouched, sizeof(s));
	/* And without a reason buffer. */
	assert_int_equal(sigv4_sign(cred, region, service, t, req, flags, &s, NULL, 0), -err);
}

static void test_refusals(void **state)
{
	struct aws_credentials cred = {
		.access_key_id = (char *)SUITE_AKID,
		.secret_access_key = (char *)SUITE_SECRET,
	};
	struct aws_credentials c;
	struct sigv4_request req = vanilla;
	struct http_header h[2];
	static char big[1100 * 1024];

	expect_refusal(NULL, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "no credentials");
	expect_refusal(&cred, "", SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "empty region");
	expect_refusal(&cred, NULL, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "empty region");
	expect_refusal(&cred, SUITE_REGION, "", SUITE_TIME, &req, 0, EINVAL, "empty service");
	expect_refusal(&cred, "us/east", SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "region");
	expect_refusal(&cred, SUITE_REGION, "a b", SUITE_TIME, &req, 0, EINVAL, "service");
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, NULL, 0, EINVAL,
		       "no request");
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0x80, EINVAL,
		       "unknown flags");

	c = cred;
	c.access_key_id = (char *)"";
	expect_refusal(&c, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "access key id");
	c.access_key_id = (char *)"AKID/x";
	expect_refusal(&c, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "access key id");
	c = cred;
	c.secret_access_key = NULL;
	expect_refusal(&c, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "empty secret");
	c = cred;
	c.session_token = (char *)"tok\r\nX-Evil: 1";
	expect_refusal(&c, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "session token");
	c = cred;
	c.expiration_usec = SUITE_TIME;
	expect_refusal(&c, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EKEYEXPIRED,
		       "expired");
	c.expiration_usec = SUITE_TIME + 1;
	{
		struct sigv4_signed s = { 0 };

		assert_int_equal(sigv4_sign(&c, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0,
					    &s, NULL, 0),
				 0);
		sigv4_signed_done(&s);
	}

	/* The year 10000 does not fit X-Amz-Date. */
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, UINT64_C(253402300800) * USEC_PER_SEC,
		       &req, 0, EINVAL, "9999");

	req = vanilla;
	req.method = "GE T";
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "method");
	req.method = NULL;
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "method");
	req = vanilla;
	req.host = "";
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "host");
	req.host = "a.example\r\nX: y";
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "host");
	req = vanilla;
	req.path = "relative";
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "path");
	req.path = "/a?b=c";
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "query");
	req = vanilla;
	req.query = "a=1#frag";
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "'#'");
	req = vanilla;
	req.body_len = 3;
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "body");
	req = vanilla;
	req.nheaders = 1;
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "headers");

	/* Headers the signer owns, in any case. */
	req = vanilla;
	req.headers = h;
	req.nheaders = 1;
	static const char *const owned[] = { "Host", "X-AMZ-DATE", "x-amz-security-token",
					     "Authorization", "Date" };
	for (size_t i = 0; i < ARRAY_SIZE(owned); i++) {
		char lower[64];
		size_t j;

		h[0] = (struct http_header){ owned[i], "v", false };
		for (j = 0; owned[i][j]; j++)
			lower[j] = (char)(owned[i][j] | 0x20);
		lower[j] = '\0';
		expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
			       lower);
	}
	/* Bad names, values with CR/LF (the reason never quotes the value). */
	h[0] = (struct http_header){ "Bad Name", "v", false };
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "header 0: invalid name");
	h[0] = (struct http_header){ "", "v", false };
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "invalid name");
	h[0] = (struct http_header){ "X-Ok", "s3cr3t\r\nX-Injected: 1", false };
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "control character");
	{
		char reason[256] = "";
		struct sigv4_signed s = { 0 };

		assert_int_equal(sigv4_sign(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0,
					    &s, reason, sizeof(reason)),
				 -EINVAL);
		assert_null(strstr(reason, "s3cr3t"));
	}
	h[0] = (struct http_header){ "X-Ok", NULL, false };
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL, "no value");
	h[0] = (struct http_header){ "x-amz-content-sha256", "E3B0C442", false };
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, EINVAL,
		       "x-amz-content-sha256");

	/* A canonical request past 1 MiB. */
	memset(big, 'x', sizeof(big) - 1);
	h[0] = (struct http_header){ "X-Big", big, false };
	expect_refusal(&cred, SUITE_REGION, SUITE_SERVICE, SUITE_TIME, &req, 0, E2BIG, "1 MiB");
}

static void test_credentials_wipe(void **state)
{
	struct aws_credentials c = {
		.access_key_id = strdup(SUITE_AKID),
		.secret_access_key = strdup(SUITE_SECRET),
		.session_token = strdup("token"),
		.expiration_usec = 42,
	};

	aws_credentials_wipe(&c);
	assert_null(c.access_key_id);
	assert_null(c.secret_access_key);
	assert_null(c.session_token);
	assert_int_equal(c.expiration_usec, 0);
	aws_credentials_wipe(&c);
	aws_credentials_wipe(NULL);
	sigv4_signed_done(NULL);
}

/* One cmocka test per case, named after it. */
#define SUITE(name) { "suite " name, test_suite_case, NULL, NULL, (void *)(name) },

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite_complete),
		/* clang-format off: one test per case of the list at the top */
		SUITE_CASES(SUITE)
		/* clang-format on */
		cmocka_unit_test(test_token_signed_by_default),
		cmocka_unit_test(test_canonical_uri),
		cmocka_unit_test(test_canonical_query),
		cmocka_unit_test(test_canonical_headers),
		cmocka_unit_test(test_payload_header),
		cmocka_unit_test(test_cache_reuse),
		cmocka_unit_test(test_cache_secret_change),
		cmocka_unit_test(test_cache_clear_wipes),
		cmocka_unit_test(test_cache_eviction),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_credentials_wipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
