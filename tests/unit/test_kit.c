/*
 * test_kit.c - the backend kit (src/backends/kit*.c): RFC 3339 times, the
 * status and error-code tables, the JSON error document, paging in its
 * three styles, the environment and credential-file helpers, the HTTP
 * settings and TLS policy, and the token source under threads (one refresh
 * for many callers, a 401 that invalidates one generation, a failing
 * refresh, a stale refresh dropped, the bounded wait, the wipe).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "backends/kit.h"
#include "secretfs/config.h"
#include "secretfs/util.h"

extern char **environ;

/* ---- time ---- */

static void test_time(void **state)
{
	static const struct {
		const char *in;
		unsigned flags;
		int64_t usec;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0, 0 },
		{ "2024-02-29T12:00:00Z", 0, INT64_C(1709208000000000) },
		{ "2018-04-17T11:35:54.466476078-04:00", 0, INT64_C(1523979354466476) },
		{ "2024-02-29T23:59:59+01:00", 0, INT64_C(1709247599000000) },
		{ "2000-01-01t00:00:00.5z", 0, INT64_C(946684800500000) },
		{ "2016-12-31T23:59:60Z", 0, INT64_C(1483228800000000) }, /* a leap second */
		{ "1969-12-31T23:59:59Z", 0, -INT64_C(1000000) },
		/* Google sends nanoseconds, Azure seconds since the epoch elsewhere. */
		{ "2024-05-01T10:00:00.123456789Z", 0, INT64_C(1714557600123456) },
		/* The ISO 8601 forms AWS's endpoints send. */
		{ "2019-11-09 13:34:41Z", KIT_TIME_ISO8601, INT64_C(1573306481000000) },
		{ "2019-11-09T15:34:41+0200", KIT_TIME_ISO8601, INT64_C(1573306481000000) },
		{ "2019-11-09T15:34:41+02", KIT_TIME_ISO8601, INT64_C(1573306481000000) },
		{ "2019-11-09T15:34:41+02:00", KIT_TIME_ISO8601, INT64_C(1573306481000000) },
	};
	static const struct {
		const char *in;
		unsigned flags;
	} bad[] = {
		{ "", 0 },
		{ "2024-02-31T00:00:00Z", 0 }, /* the two old copies disagreed on this one */
		{ "2024-02-31T00:00:00Z", KIT_TIME_ISO8601 },
		{ "2023-02-29T12:00:00Z", 0 },
		{ "2024-04-31T00:00:00Z", 0 },
		{ "2024-00-10T00:00:00Z", 0 },
		{ "2024-13-10T00:00:00Z", 0 },
		{ "2024-01-00T00:00:00Z", 0 },
		{ "2024-01-01T24:00:00Z", 0 },
		{ "2024-01-01T00:60:00Z", 0 },
		{ "2024-01-01T00:00:61Z", 0 },
		{ "2024-01-01", 0 },
		{ "2024-01-01T00:00:00", 0 },
		{ "2024-01-01T00:00:00.Z", 0 },
		{ "2024-01-01T00:00:00Zjunk", 0 },
		{ "2024-01-01 00:00:00Z", 0 },	   /* strict: 'T' */
		{ "2024-01-01T00:00:00+0400", 0 }, /* strict: +HH:MM */
		{ "2024-01-01T00:00:00+04", 0 },
		{ "2024-01-01T00:00:00+24:00", 0 },
		{ "2024-01-01T00:00:00+2:00", KIT_TIME_ISO8601 },
		{ "2024-01-01T00:00:00+02:0", KIT_TIME_ISO8601 },
		{ "2024-01-01T00:00:00+02:00x", KIT_TIME_ISO8601 },
		{ "20240101T000000Z", KIT_TIME_ISO8601 },
		{ "1573306481", 0 },
	};
	int64_t t = 42;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		if (kit_parse_time(good[i].in, good[i].flags, &t) != 0)
			fail_msg("'%s' refused", good[i].in);
		if (t != good[i].usec)
			fail_msg("'%s': got %lld, want %lld", good[i].in, (long long)t,
				 (long long)good[i].usec);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		t = 42;
		if (kit_parse_time(bad[i].in, bad[i].flags, &t) != -EINVAL)
			fail_msg("'%s' (flags %u) accepted", bad[i].in, bad[i].flags);
		if (t != 42)
			fail_msg("'%s': the result was written on failure", bad[i].in);
	}
	assert_int_equal(kit_parse_time(NULL, 0, &t), -EINVAL);
}

/* ---- errors ---- */

static void test_status_errno(void **state)
{
	static const struct {
		long status;
		int err;
	} cases[] = {
		{ 200, 0 },	  { 204, 0 },	    { 400, -EIO },    { 401, -EACCES },
		{ 403, -EACCES }, { 404, -ENOENT }, { 405, -EIO },    { 408, -ETIMEDOUT },
		{ 409, -EBUSY },  { 412, -EAGAIN }, { 413, -EIO },    { 418, -EIO },
		{ 429, -EAGAIN }, { 500, -EAGAIN }, { 501, -EIO },    { 502, -EAGAIN },
		{ 503, -EAGAIN }, { 504, -EAGAIN }, { 599, -EAGAIN }, { 302, -EIO },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (kit_status_errno(cases[i].status) != cases[i].err)
			fail_msg("%ld: got %d, want %d", cases[i].status,
				 kit_status_errno(cases[i].status), cases[i].err);
	/* Every non-2xx result is one backend.h names, and transient ones stay transient. */
	for (long s = 100; s < 600; s++) {
		int r = kit_status_errno(s);

		if (s >= 200 && s <= 299)
			continue;
		if (r != backend_error_normalise(r) && r != -EBUSY)
			fail_msg("%ld gives %d, outside backend.h's set", s, r);
		if ((s == 429 || s == 503) && !backend_error_is_transient(r))
			fail_msg("%ld is not transient", s);
	}
}

/* The shape of the tables the Google and Azure backends will have. */
static const struct kit_error_code google[] = {
	{ "NOT_FOUND", -ENOENT, 0 },
	{ "PERMISSION_DENIED", -EACCES, 0 },
	{ "UNAUTHENTICATED", -EACCES, KIT_CODE_REAUTH },
	{ "RESOURCE_EXHAUSTED", -EAGAIN, KIT_CODE_THROTTLED },
	{ "UNAVAILABLE", -EAGAIN, 0 },
	{ "FAILED_PRECONDITION", -ENOENT, 0 },
	{ "INVALID_ARGUMENT", 0, 0 }, /* the status decides */
};
static const struct kit_error_code azure[] = {
	{ "SecretNotFound", -ENOENT, 0 },
	{ "SecretDisabled", -EACCES, 0 },
	{ "Forbidden", -EACCES, 0 },
	{ "Unauthorized", -EACCES, KIT_CODE_REAUTH },
	{ "Throttled", -EAGAIN, KIT_CODE_THROTTLED },
};

static void test_error_codes(void **state)
{
	static const struct {
		const struct kit_error_code *t;
		size_t n;
		const char *code;
		long status;
		int err;
		unsigned flags;
	} cases[] = {
		{ google, ARRAY_SIZE(google), "NOT_FOUND", 404, -ENOENT, 0 },
		{ google, ARRAY_SIZE(google), "PERMISSION_DENIED", 403, -EACCES, 0 },
		{ google, ARRAY_SIZE(google), "UNAUTHENTICATED", 401, -EACCES, KIT_CODE_REAUTH },
		{ google, ARRAY_SIZE(google), "RESOURCE_EXHAUSTED", 429, -EAGAIN,
		  KIT_CODE_THROTTLED },
		{ google, ARRAY_SIZE(google), "UNAVAILABLE", 503, -EAGAIN, 0 },
		/* A disabled or destroyed version: 400 FAILED_PRECONDITION, yet not found. */
		{ google, ARRAY_SIZE(google), "FAILED_PRECONDITION", 400, -ENOENT, 0 },
		{ google, ARRAY_SIZE(google), "INVALID_ARGUMENT", 400, -EIO, 0 },
		{ google, ARRAY_SIZE(google), "INVALID_ARGUMENT", 503, -EAGAIN, 0 },
		{ google, ARRAY_SIZE(google), "SOMETHING_NEW", 404, -ENOENT, 0 },
		{ google, ARRAY_SIZE(google), "", 429, -EAGAIN, 0 },
		{ google, ARRAY_SIZE(google), NULL, 500, -EAGAIN, 0 },
		{ google, ARRAY_SIZE(google), "not_found", 400, -EIO, 0 }, /* exact case */
		{ azure, ARRAY_SIZE(azure), "SecretNotFound", 404, -ENOENT, 0 },
		{ azure, ARRAY_SIZE(azure), "SecretDisabled", 403, -EACCES, 0 },
		{ azure, ARRAY_SIZE(azure), "Unauthorized", 401, -EACCES, KIT_CODE_REAUTH },
		{ azure, ARRAY_SIZE(azure), "Throttled", 429, -EAGAIN, KIT_CODE_THROTTLED },
		{ azure, ARRAY_SIZE(azure), "BadParameter", 400, -EIO, 0 },
		/* A 2xx with an error code is still an error. */
		{ azure, ARRAY_SIZE(azure), "Whatever", 200, -EIO, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct kit_error_code *e =
			kit_error_find(cases[i].t, cases[i].n, cases[i].code);
		int r = kit_error_errno(cases[i].t, cases[i].n, cases[i].code, cases[i].status);

		if (r != cases[i].err)
			fail_msg("%s/%ld: got %d, want %d",
				 cases[i].code ? cases[i].code : "(null)", cases[i].status, r,
				 cases[i].err);
		if ((e ? e->flags : 0) != cases[i].flags)
			fail_msg("%s: flags %u", cases[i].code, e ? e->flags : 0);
	}
}

static void test_json_error(void **state)
{
	static const struct {
		const char *body;
		const char *member;
		const char *code;
		const char *msg;
	} cases[] = {
		{ "{\"error\":{\"code\":404,\"message\":\"Secret [projects/1/secrets/db] not "
		  "found or has no versions.\",\"status\":\"NOT_FOUND\"}}",
		  "status", "NOT_FOUND",
		  "Secret [projects/1/secrets/db] not found or has no versions." },
		{ "{\"error\":{\"code\":\"SecretNotFound\",\"message\":\"A secret with (name/id) "
		  "db "
		  "was not found in this key vault.\"}}",
		  "code", "SecretNotFound",
		  "A secret with (name/id) db was not found in this key vault." },
		/* Only the first line, control characters blanked. */
		{ "{\"error\":{\"code\":\"X\",\"message\":\"first\\tline\\nsecond s3cr3t\"}}",
		  "code", "X", "first line" },
		/* Google's "code" is a number: not a symbolic code. */
		{ "{\"error\":{\"code\":403}}", "code", "", "" },
		{ "{\"errors\":[\"vault style\"]}", "code", "", "" },
		{ "not json s3cr3t", "code", "", "" },
		{ "", "code", "", "" },
		{ "{\"error\":\"a string\"}", "code", "", "" },
	};
	char code[KIT_ERROR_CODE_MAX], msg[KIT_ERROR_MESSAGE_MAX], small[8];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		kit_parse_json_error(cases[i].body, strlen(cases[i].body), cases[i].member, code,
				     sizeof(code), msg, sizeof(msg));
		assert_string_equal(code, cases[i].code);
		assert_string_equal(msg, cases[i].msg);
	}
	kit_parse_json_error(cases[0].body, strlen(cases[0].body), "status", small, sizeof(small),
			     msg, sizeof(msg));
	assert_string_equal(small, "NOT_FOU");
	kit_parse_json_error(NULL, 0, "code", code, sizeof(code), msg, sizeof(msg));
	assert_string_equal(code, "");
}

/* ---- reasons and jitter ---- */

static void test_reason_and_jitter(void **state)
{
	char reason[64] = "connection refused", d[16];

	kit_reason_prefix(reason, sizeof(reason), "vault: GET %s", "/v1/secret/data/db");
	assert_string_equal(reason, "vault: GET /v1/secret/data/db: connection refused");
	kit_format_duration(45 * USEC_PER_SEC, d, sizeof(d));
	assert_string_equal(d, "45s");
	kit_format_duration(185 * USEC_PER_SEC, d, sizeof(d));
	assert_string_equal(d, "3m05s");
	kit_format_duration(7800 * USEC_PER_SEC, d, sizeof(d));
	assert_string_equal(d, "2h10m");

	assert_int_equal(kit_random_below(0), 0);
	assert_int_equal(kit_backoff_usec(5, 0, 100), 0);
	for (unsigned retry = 0; retry < 70; retry++) {
		uint64_t cap = retry < 20 ? (UINT64_C(100) << retry) : 5000, seen_max = 0;

		if (cap > 5000)
			cap = 5000;
		for (int i = 0; i < 200; i++) {
			uint64_t b = kit_backoff_usec(retry, 100, 5000);

			if (b > cap)
				fail_msg("retry %u: %llu past %llu", retry, (unsigned long long)b,
					 (unsigned long long)cap);
			seen_max = b > seen_max ? b : seen_max;
		}
		/* Jitter, not a constant: 200 draws land above a quarter of the cap. */
		assert_true(seen_max > cap / 4);
	}
}

/* ---- paging ---- */

static void test_page_token(void **state)
{
	static const struct {
		const char *doc;
		int r;
		const char *want;
	} cases[] = {
		{ "{\"nextPageToken\":\"CiAKGjBh\"}", 0, "CiAKGjBh" },
		{ "{}", 0, NULL },
		{ "{\"nextPageToken\":null}", 0, NULL },
		{ "{\"nextPageToken\":\"\"}", 0, NULL },
		{ "{\"nextPageToken\":7}", -EBADMSG, NULL },
		{ "{\"nextPageToken\":\"a b\"}", -EBADMSG, NULL },
		{ "{\"nextPageToken\":\"a\\u0000b\"}", -EBADMSG, NULL },
		{ "{\"nextPageToken\":\"a\\nb\"}", -EBADMSG, NULL },
	};
	char reason[128], *tok;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_t *root = json_loads(cases[i].doc, JSON_ALLOW_NUL, NULL);

		assert_non_null(root);
		tok = (char *)1;
		reason[0] = '\0';
		assert_int_equal(
			kit_page_token(root, "nextPageToken", &tok, reason, sizeof(reason)),
			cases[i].r);
		if (cases[i].want)
			assert_string_equal(tok, cases[i].want);
		else
			assert_null(tok);
		if (cases[i].r < 0)
			assert_non_null(strstr(reason, "nextPageToken"));
		free(tok);
		json_decref(root);
	}
}

static void test_same_origin(void **state)
{
	static const struct {
		const char *base, *url;
		bool same;
	} cases[] = {
		{ "https://v.vault.azure.net/secrets?api-version=7.4",
		  "https://v.vault.azure.net/secrets?api-version=7.4&$skiptoken=x", true },
		{ "https://v.vault.azure.net/x", "HTTPS://V.VAULT.AZURE.NET:443/y", true },
		{ "https://127.0.0.1:8443/x", "https://127.0.0.1:8443/y", true },
		{ "https://[::1]:8443/x", "https://[::1]:8443/y", true },
		{ "http://h/x", "http://h:80/y", true },
		{ "https://127.0.0.1:8443/x", "https://127.0.0.1:8444/y", false },
		{ "https://127.0.0.1:8443/x", "http://127.0.0.1:8443/y", false },
		{ "https://v.vault.azure.net/x", "https://evil.example/y", false },
		{ "https://v.vault.azure.net/x", "https://v.vault.azure.net.evil.example/y",
		  false },
		{ "https://v.vault.azure.net/x", "https://v.vault.azure.net@evil.example/y",
		  false },
		{ "https://v.vault.azure.net/x", "https://evil@v.vault.azure.net/y", false },
		{ "https://v.vault.azure.net/x", "//v.vault.azure.net/y", false },
		{ "https://v.vault.azure.net/x", "/secrets?page=2", false },
		{ "https://v.vault.azure.net/x", "ftp://v.vault.azure.net/y", false },
		{ "https://h:8443/x", "https://h:8443junk/y", false },
		{ "https://h:8443/x", "https://h:99999/y", false },
		{ "https://[::1]:8443/x", "https://[::2]:8443/y", false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (kit_same_origin(cases[i].base, cases[i].url) != cases[i].same)
			fail_msg("%s ~ %s: want %d", cases[i].base, cases[i].url, cases[i].same);
}

static void test_page_link(void **state)
{
	json_t *ok = json_pack("{s:s}", "nextLink",
			       "https://127.0.0.1:8443/secrets?api-version=7.4&$skiptoken=abc");
	json_t *away = json_pack("{s:s}", "nextLink", "https://attacker.example/secrets");
	json_t *end = json_pack("{s:n}", "nextLink");
	char reason[256] = "", *link = (char *)1;

	assert_int_equal(kit_page_link(ok, "nextLink", "https://127.0.0.1:8443/secrets?x=1", &link,
				       reason, sizeof(reason)),
			 0);
	assert_string_equal(link, "https://127.0.0.1:8443/secrets?api-version=7.4&$skiptoken=abc");
	free(link);
	assert_int_equal(kit_page_link(away, "nextLink", "https://127.0.0.1:8443/secrets", &link,
				       reason, sizeof(reason)),
			 -EIO);
	assert_null(link);
	assert_non_null(strstr(reason, "nextLink"));
	/* The reason does not repeat where it pointed. */
	assert_null(strstr(reason, "attacker"));
	link = (char *)1;
	assert_int_equal(kit_page_link(end, "nextLink", "https://127.0.0.1:8443/", &link, reason,
				       sizeof(reason)),
			 0);
	assert_null(link);
	json_decref(ok);
	json_decref(away);
	json_decref(end);
}

/* A fake store of @npages pages, in the style @style, read through kit_paginate(). */
struct pager_ctx {
	int style; /* 0: NextToken in the body, 1: nextPageToken, 2: nextLink */
	unsigned npages, calls;
	const char *base;
	char seen[256]; /* the items, in order */
	bool empty_pages;
	bool foreign_link; /* page 2's nextLink leads elsewhere */
};

static int fake_page(void *vctx, const char *next, char **ret_next, char *reason, size_t reasonlen)
{
	struct pager_ctx *c = vctx;
	unsigned page = 0;
	char doc[512], marker[128];
	json_t *root;
	int r;

	c->calls++;
	if (next) {
		const char *p = strrchr(next, 'p');

		assert_non_null(p);
		page = (unsigned)atoi(p + 1);
		if (c->style == 2)
			assert_true(kit_same_origin(c->base, next));
	}
	if (page + 1 < c->npages) {
		if (c->style == 2)
			snprintf(marker, sizeof(marker), "\"%s%s%sp%u\"",
				 c->foreign_link && page == 1 ? "https://elsewhere.example"
							      : c->base,
				 "/secrets?$skiptoken=", "", page + 1);
		else
			snprintf(marker, sizeof(marker), "\"tok-p%u\"", page + 1);
	} else {
		snprintf(marker, sizeof(marker), c->style == 0 ? "null" : "\"\"");
	}
	snprintf(doc, sizeof(doc), "{\"items\":[%s%u%s],\"%s\":%s}", c->empty_pages ? "" : "\"",
		 page, c->empty_pages ? "" : "\"",
		 c->style == 0	 ? "NextToken"
		 : c->style == 1 ? "nextPageToken"
				 : "nextLink",
		 marker);
	if (c->empty_pages)
		snprintf(doc, sizeof(doc), "{\"items\":[],\"%s\":%s}",
			 c->style == 0	 ? "NextToken"
			 : c->style == 1 ? "nextPageToken"
					 : "nextLink",
			 marker);
	root = json_loads(doc, 0, NULL);
	assert_non_null(root);
	if (!c->empty_pages) {
		size_t n = strlen(c->seen);

		snprintf(c->seen + n, sizeof(c->seen) - n, "%s%s", n ? "," : "",
			 json_string_value(json_array_get(json_object_get(root, "items"), 0)));
	}
	if (c->style == 0)
		r = kit_page_token(root, "NextToken", ret_next, reason, reasonlen);
	else if (c->style == 1)
		r = kit_page_token(root, "nextPageToken", ret_next, reason, reasonlen);
	else
		r = kit_page_link(root, "nextLink", c->base, ret_next, reason, reasonlen);
	json_decref(root);
	return r;
}

static void test_paginate(void **state)
{
	char reason[256];

	for (int style = 0; style < 3; style++) {
		struct pager_ctx c = { .style = style,
				       .npages = 4,
				       .base = "https://127.0.0.1:8443" };

		assert_int_equal(kit_paginate(10, fake_page, &c, "list", reason, sizeof(reason)),
				 0);
		assert_int_equal(c.calls, 4);
		assert_string_equal(c.seen, "0,1,2,3");

		/* One page only. */
		c = (struct pager_ctx){ .style = style, .npages = 1, .base = c.base };
		assert_int_equal(kit_paginate(10, fake_page, &c, "list", reason, sizeof(reason)),
				 0);
		assert_int_equal(c.calls, 1);

		/* Empty pages with a next marker go on (Parameter Store does this). */
		c = (struct pager_ctx){
			.style = style, .npages = 5, .base = c.base, .empty_pages = true
		};
		assert_int_equal(kit_paginate(10, fake_page, &c, "list", reason, sizeof(reason)),
				 0);
		assert_int_equal(c.calls, 5);

		/* Past the bound: an error, not a truncated listing. */
		c = (struct pager_ctx){ .style = style, .npages = 50, .base = c.base };
		assert_int_equal(kit_paginate(7, fake_page, &c, "aws-sm: ListSecrets", reason,
					      sizeof(reason)),
				 -EFBIG);
		assert_int_equal(c.calls, 7);
		assert_string_equal(reason, "aws-sm: ListSecrets: more than 7 pages");
	}
	{
		struct pager_ctx c = { .style = 2,
				       .npages = 5,
				       .base = "https://127.0.0.1:8443",
				       .foreign_link = true };

		assert_int_equal(kit_paginate(10, fake_page, &c, "list", reason, sizeof(reason)),
				 -EIO);
		assert_int_equal(c.calls, 2); /* the foreign link was never followed */
	}
}

static void test_url_add_query(void **state)
{
	char *u = kit_url_add_query("https://h/v1/projects/p/secrets?pageSize=100", "pageToken",
				    "a b/c+=&");

	assert_string_equal(
		u, "https://h/v1/projects/p/secrets?pageSize=100&pageToken=a%20b%2Fc%2B%3D%26");
	free(u);
	u = kit_url_add_query("https://h/x", "a", "1");
	assert_string_equal(u, "https://h/x?a=1");
	free(u);
}

/* ---- the environment ---- */

static void test_env(void **state)
{
	char *v;
	bool left = false;

	setenv("KIT_TEST_SECRET", "s3cr3t-env-value", 1);
	setenv("KIT_TEST_EMPTY", "", 1);
	assert_string_equal(kit_env("KIT_TEST_SECRET"), "s3cr3t-env-value");
	assert_null(kit_env("KIT_TEST_EMPTY"));
	assert_null(kit_env("KIT_TEST_UNSET_XYZ"));

	v = kit_env_take("KIT_TEST_SECRET");
	assert_string_equal(v, "s3cr3t-env-value");
	wipe_free(v, strlen(v));
	assert_null(getenv("KIT_TEST_SECRET"));
	for (char **p = environ; *p; p++)
		if (strstr(*p, "s3cr3t-env-value"))
			left = true;
	assert_false(left);
	assert_null(kit_env_take("KIT_TEST_EMPTY"));
	assert_null(getenv("KIT_TEST_EMPTY"));
	assert_null(kit_env_take("KIT_TEST_UNSET_XYZ"));

	setenv("HOME", "/home/kit-test", 1);
	assert_string_equal(kit_home_dir(), "/home/kit-test");
}

/* ---- credential files ---- */

static char dirpath[64];

static int files_setup(void **state)
{
	snprintf(dirpath, sizeof(dirpath), "/tmp/secretfs-test-kit-XXXXXX");
	return mkdtemp(dirpath) ? 0 : -1;
}

static int files_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dirpath);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *put(const char *name, const char *text, size_t len, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dirpath, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void test_read_credential(void **state)
{
	static const struct {
		const char *name, *text;
		mode_t mode;
		int r;
		const char *want; /* the token, or a needle of the reason */
	} cases[] = {
		{ "tok", "hvs.CAESIabc\n", 0600, 0, "hvs.CAESIabc" },
		{ "crlf", "  tok-123\r\n\r\n", 0400, 0, "tok-123" },
		{ "empty", "\n \t\n", 0600, -EINVAL, "empty" },
		{ "twolines", "a\nb\n", 0600, -EINVAL, "not one line" },
		{ "space", "a b", 0600, -EINVAL, "not one line" },
		{ "ctl", "a\001b", 0600, -EINVAL, "not one line" },
		{ "utf8", "caf\xc3\xa9", 0600, -EINVAL, "not one line" },
		{ "writable", "tok\n", 0666, -EPERM, "writable by group or others" },
		{ "big", "0123456789012345678901234567890123456789", 0600, -EFBIG, "big" },
	};
	char reason[512];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *path =
			put(cases[i].name, cases[i].text, strlen(cases[i].text), cases[i].mode);
		struct secret *s = NULL;
		int r;

		reason[0] = '\0';
		r = kit_read_credential(path, "token file", 32, &s, reason, sizeof(reason));
		if (r != cases[i].r)
			fail_msg("%s: got %d (%s), want %d", cases[i].name, r, reason, cases[i].r);
		if (r == 0) {
			assert_string_equal(kit_cred_str(s), cases[i].want);
			assert_int_equal(s->len, strlen(cases[i].want) + 1);
			secret_unref(s);
			continue;
		}
		assert_null(s);
		if (!strstr(reason, cases[i].want) || !strstr(reason, "token file") ||
		    !strstr(reason, cases[i].name))
			fail_msg("%s: reason '%s'", cases[i].name, reason);
		/* A refusal never quotes the content. */
		if (strlen(cases[i].text) > 3 && strstr(reason, cases[i].text))
			fail_msg("%s: the reason quotes the file", cases[i].name);
	}
	{
		struct secret *s = NULL;
		char path[128];

		snprintf(path, sizeof(path), "%s/missing", dirpath);
		assert_int_equal(
			kit_read_credential(path, "JWT file", 32, &s, reason, sizeof(reason)),
			-ENOENT);
		assert_non_null(strstr(reason, "JWT file"));
	}
}

static void test_read_secret_file(void **state)
{
	static const char doc[] = "{\"type\":\"service_account\",\"client_email\":\"a@p.example\"}";
	const char *path = put("sa.json", doc, sizeof(doc) - 1, 0600);
	struct secret *s = NULL;
	char reason[256];

	assert_int_equal(
		kit_read_secret_file(path, "credentials file", 4096, &s, reason, sizeof(reason)),
		0);
	assert_int_equal(s->len, sizeof(doc));
	assert_string_equal(kit_cred_str(s), doc);
	secret_unref(s);
	s = NULL;
	assert_int_equal(
		kit_read_secret_file(path, "credentials file", 16, &s, reason, sizeof(reason)),
		-EFBIG);
	path = put("empty.json", "", 0, 0600);
	assert_int_equal(
		kit_read_secret_file(path, "credentials file", 4096, &s, reason, sizeof(reason)),
		-EINVAL);
	path = put("loose.json", doc, sizeof(doc) - 1, 0644 | 0020);
	assert_int_equal(
		kit_read_secret_file(path, "credentials file", 4096, &s, reason, sizeof(reason)),
		-EPERM);
	assert_null(s);
}

/* ---- HTTP settings ---- */

static void test_http_config(void **state)
{
	struct config cfg = { 0 };
	struct kit_http_opts o = {
		.name = "vault",
		.url = "http://127.0.0.1:8200",
		.tls = false,
		.credential = "the Vault token",
		.ca_file_env = "KIT_TEST_CACERT",
		.client_cert_env = "KIT_TEST_CERT",
	};
	struct http_config hc;
	char reason[512] = "", warning[512] = "";

	/* Plain HTTP is refused without -o insecure. */
	assert_int_equal(
		kit_http_config(&cfg, &o, &hc, warning, sizeof(warning), reason, sizeof(reason)),
		-EPERM);
	assert_string_equal(reason, "vault: http://127.0.0.1:8200 is plain HTTP, which would send "
				    "the Vault token and the secrets in clear: use https://, or "
				    "pass -o insecure");
	assert_string_equal(warning, "");

	/* With it, a warning. */
	cfg.http_insecure = true;
	assert_int_equal(
		kit_http_config(&cfg, &o, &hc, warning, sizeof(warning), reason, sizeof(reason)),
		0);
	assert_string_equal(warning, "vault http://127.0.0.1:8200: plain HTTP (-o insecure): "
				     "anyone on the network path can read the Vault token and the "
				     "secrets");
	assert_true(hc.insecure);
	o.tls = true;
	o.url = "https://127.0.0.1:8200";
	assert_int_equal(
		kit_http_config(&cfg, &o, &hc, warning, sizeof(warning), reason, sizeof(reason)),
		0);
	assert_non_null(strstr(warning, "TLS certificate verification is off (-o insecure)"));

	/* Without: no warning; [http] wins over the environment, which fills the rest. */
	cfg.http_insecure = false;
	warning[0] = '\0';
	setenv("KIT_TEST_CACERT", "/env/ca.pem", 1);
	setenv("KIT_TEST_CERT", "/env/cert.pem", 1);
	cfg.http_ca_file = (char *)"/cfg/ca.pem";
	cfg.http_timeout_usec = 7 * USEC_PER_SEC;
	cfg.http_max_attempts = 2;
	assert_int_equal(
		kit_http_config(&cfg, &o, &hc, warning, sizeof(warning), reason, sizeof(reason)),
		0);
	assert_string_equal(warning, "");
	assert_false(hc.insecure);
	assert_string_equal(hc.ca_file, "/cfg/ca.pem");
	assert_string_equal(hc.client_cert, "/env/cert.pem");
	assert_null(hc.ca_path);
	assert_null(hc.client_key);
	assert_int_equal(hc.timeout_usec, 7 * USEC_PER_SEC);
	assert_int_equal(hc.max_attempts, 2);
	cfg.http_ca_file = NULL;
	assert_int_equal(
		kit_http_config(&cfg, &o, &hc, warning, sizeof(warning), reason, sizeof(reason)),
		0);
	assert_string_equal(hc.ca_file, "/env/ca.pem");
	unsetenv("KIT_TEST_CACERT");
	unsetenv("KIT_TEST_CERT");
}

static void test_http_client_new(void **state)
{
	struct config cfg = { 0 };
	struct kit_http_opts o = {
		.name = "azure-kv",
		.url = "http://127.0.0.1:8443",
		.tls = false,
		.credential = "the access token",
	};
	struct http_client *c = NULL;
	char reason[512] = "", warning[512] = "";

	/* Refused: no client, no warning. */
	assert_int_equal(
		kit_http_client_new(&cfg, &o, &c, warning, sizeof(warning), reason, sizeof(reason)),
		-EPERM);
	assert_null(c);
	assert_non_null(strstr(reason, "azure-kv: http://127.0.0.1:8443 is plain HTTP"));
	assert_string_equal(warning, "");

	/* A CA file that does not exist: the client's own error, named after the backend. */
	o.tls = true;
	o.url = "https://127.0.0.1:8443";
	cfg.http_ca_file = (char *)"/nonexistent/kit-test-ca.pem";
	assert_true(kit_http_client_new(&cfg, &o, &c, warning, sizeof(warning), reason,
					sizeof(reason)) < 0);
	assert_null(c);
	assert_true(strncmp(reason, "azure-kv: ", 10) == 0);

	cfg.http_ca_file = NULL;
	assert_int_equal(
		kit_http_client_new(&cfg, &o, &c, warning, sizeof(warning), reason, sizeof(reason)),
		0);
	assert_non_null(c);
	assert_string_equal(warning, "");
	http_client_free(c);
}

/* ---- the token source ---- */

struct fake_issuer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned calls;
	int fail;		/* the next fetches fail with this; 0: they work */
	uint64_t lifetime_usec; /* of each token; 0: never expires */
	bool hold;		/* fetches wait until released */
	bool in_fetch;		/* a fetch is waiting (hold) */
	struct kit_token_source *ts;
	bool set_meanwhile; /* a login installs a newer token during the fetch */
};

static int fake_fetch(void *vctx, struct secret **ret, uint64_t *ret_exp, char *reason,
		      size_t reasonlen)
{
	struct fake_issuer *f = vctx;
	char tok[64];
	unsigned n;
	int fail;

	pthread_mutex_lock(&f->lock);
	n = ++f->calls;
	f->in_fetch = true;
	pthread_cond_broadcast(&f->cond);
	while (f->hold)
		pthread_cond_wait(&f->cond, &f->lock);
	f->in_fetch = false;
	fail = f->fail;
	pthread_mutex_unlock(&f->lock);
	if (f->set_meanwhile)
		kit_token_set(f->ts, secret_dup("login-token", sizeof("login-token")), 0);
	/* Give other callers time to pile up behind the refresh (not asserted on). */
	usleep(2000);
	if (fail) {
		snprintf(reason, reasonlen, "the token endpoint answered 503");
		return fail;
	}
	snprintf(tok, sizeof(tok), "token-%u", n);
	*ret = secret_dup(tok, strlen(tok) + 1);
	*ret_exp = f->lifetime_usec ? realtime_usec() + f->lifetime_usec : 0;
	return *ret ? 0 : -ENOMEM;
}

static struct kit_token_source *source(struct fake_issuer *f, uint64_t wait_usec)
{
	struct kit_token_config cfg = {
		.what = "the test token",
		.fetch = fake_fetch,
		.ctx = f,
		.refresh_before_usec = 60 * USEC_PER_SEC,
		/* Long: a second try never starts during a test by itself. */
		.retry_min_usec = 3600 * USEC_PER_SEC,
		.retry_max_usec = 3600 * USEC_PER_SEC,
		.wait_usec = wait_usec,
	};
	struct kit_token_source *ts = NULL;

	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	assert_int_equal(kit_token_new(&cfg, &ts), 0);
	f->ts = ts;
	return ts;
}

static void issuer_done(struct fake_issuer *f)
{
	kit_token_free(f->ts);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
}

#define READERS 16

struct reader {
	struct kit_token_source *ts;
	pthread_barrier_t *start;
	uint64_t invalidate_gen; /* 0: none */
	int r;
	char token[64];
	uint64_t gen;
};

static void *reader_thread(void *arg)
{
	struct reader *rd = arg;
	struct kit_token_ref ref = { 0 };
	char reason[BACKEND_REASON_MAX];

	pthread_barrier_wait(rd->start);
	if (rd->invalidate_gen)
		kit_token_invalidate(rd->ts, rd->invalidate_gen); /* each one got a 401 */
	rd->r = kit_token_get(rd->ts, &ref, reason, sizeof(reason));
	if (rd->r == 0) {
		snprintf(rd->token, sizeof(rd->token), "%s", kit_cred_str(ref.s));
		rd->gen = ref.gen;
		kit_token_put(&ref);
	}
	return NULL;
}

/* READERS threads call get() at once (after invalidating @inval_gen); returns their results. */
static void run_readers(struct kit_token_source *ts, uint64_t inval_gen, struct reader *rd)
{
	pthread_t th[READERS];
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, READERS);
	for (int i = 0; i < READERS; i++) {
		rd[i] = (struct reader){ .ts = ts, .start = &start, .invalidate_gen = inval_gen };
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &rd[i]), 0);
	}
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
}

/* get() gives the token @want; the reference goes back at once. */
static void expect_token(struct kit_token_source *ts, const char *want)
{
	struct kit_token_ref ref = { 0 };
	char reason[BACKEND_REASON_MAX] = "";

	if (kit_token_get(ts, &ref, reason, sizeof(reason)) != 0)
		fail_msg("no token: %s", reason);
	assert_string_equal(kit_cred_str(ref.s), want);
	kit_token_put(&ref);
}

static void test_token_one_refresh_for_many(void **state)
{
	struct fake_issuer f = { .lifetime_usec = 3600 * USEC_PER_SEC };
	struct kit_token_source *ts = source(&f, 30 * USEC_PER_SEC);
	struct reader rd[READERS];

	/* No token yet: READERS callers, one fetch, all get its token. */
	run_readers(ts, 0, rd);
	assert_int_equal(f.calls, 1);
	for (int i = 0; i < READERS; i++) {
		assert_int_equal(rd[i].r, 0);
		assert_string_equal(rd[i].token, "token-1");
	}
	/* Fresh: no fetch at all. */
	run_readers(ts, 0, rd);
	assert_int_equal(f.calls, 1);
	issuer_done(&f);
}

static void test_token_invalidate_after_401(void **state)
{
	struct fake_issuer f = { .lifetime_usec = 3600 * USEC_PER_SEC };
	struct kit_token_source *ts = source(&f, 30 * USEC_PER_SEC);
	struct kit_token_ref ref = { 0 };
	struct reader rd[READERS];
	char reason[BACKEND_REASON_MAX];
	uint64_t gen1;

	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), 0);
	gen1 = ref.gen;
	kit_token_put(&ref);
	assert_int_equal(f.calls, 1);

	/* Every reader got a 401 with generation 1: one refresh, nobody keeps the refused token. */
	run_readers(ts, gen1, rd);
	assert_int_equal(f.calls, 2);
	for (int i = 0; i < READERS; i++) {
		assert_int_equal(rd[i].r, 0);
		assert_string_equal(rd[i].token, "token-2");
		assert_true(rd[i].gen > gen1);
	}
	/* A late 401 of the old generation changes nothing. */
	kit_token_invalidate(ts, gen1);
	expect_token(ts, "token-2");
	assert_int_equal(f.calls, 2);
	issuer_done(&f);
}

static void test_token_failing_refresh(void **state)
{
	struct fake_issuer f = { .lifetime_usec = 3600 * USEC_PER_SEC, .fail = -EAGAIN };
	struct kit_token_source *ts = source(&f, 30 * USEC_PER_SEC);
	struct kit_token_ref ref = { 0 };
	struct kit_token_state st;
	struct reader rd[READERS];
	char reason[BACKEND_REASON_MAX] = "";

	/* No token, and the endpoint fails: one try for all the readers, each gets its error. */
	run_readers(ts, 0, rd);
	assert_int_equal(f.calls, 1);
	for (int i = 0; i < READERS; i++)
		assert_int_equal(rd[i].r, -EAGAIN);
	/* Within the backoff, no new try: the error of the last one. */
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), -EAGAIN);
	assert_int_equal(f.calls, 1);
	assert_string_equal(reason, "the test token could not be refreshed: the token endpoint "
				    "answered 503");
	kit_token_state(ts, &st);
	assert_false(st.have);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.last_err, -EAGAIN);

	/* A token near its end whose refresh fails is still served while it works. */
	kit_token_set(ts, secret_dup("near-end", sizeof("near-end")),
		      realtime_usec() + 30 * USEC_PER_SEC);
	expect_token(ts, "near-end");
	assert_int_equal(f.calls, 2); /* it was tried, and failed */
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), 0);
	kit_token_put(&ref);
	assert_int_equal(f.calls, 2); /* backoff: not tried again at once */

	/* A 401 forces a try past the backoff; when that fails, the error. */
	kit_token_get(ts, &ref, reason, sizeof(reason));
	kit_token_invalidate(ts, ref.gen);
	kit_token_put(&ref);
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), -EAGAIN);
	assert_int_equal(f.calls, 3);

	/* The endpoint recovers; the next try (forced by another 401) installs a token. */
	f.fail = 0;
	kit_token_state(ts, &st);
	kit_token_invalidate(ts, st.gen);
	expect_token(ts, "token-4");
	kit_token_state(ts, &st);
	assert_int_equal(st.failures, 0);
	assert_int_equal(st.last_err, 0);
	issuer_done(&f);
}

static void test_token_refresh_window(void **state)
{
	struct fake_issuer f = { .lifetime_usec = 3600 * USEC_PER_SEC };
	struct kit_token_source *ts = source(&f, 30 * USEC_PER_SEC);
	struct kit_token_ref ref = { 0 };
	char reason[BACKEND_REASON_MAX];

	/* Installed by hand, expiring inside the window: the next get refreshes first. */
	kit_token_set(ts, secret_dup("initial", sizeof("initial")),
		      realtime_usec() + 10 * USEC_PER_SEC);
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), 0);
	assert_string_equal(kit_cred_str(ref.s), "token-1");
	assert_true(ref.expires_usec > realtime_usec() + 3000 * USEC_PER_SEC);
	kit_token_put(&ref);

	/* Expired: refreshed before use. */
	kit_token_set(ts, secret_dup("old", sizeof("old")), realtime_usec() - 1);
	expect_token(ts, "token-2");

	/* A renewal of an old generation is refused; of the current one, taken. */
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), 0);
	assert_false(kit_token_extend(ts, ref.gen - 1, 1));
	assert_true(kit_token_extend(ts, ref.gen, 0));
	kit_token_put(&ref);
	issuer_done(&f);
}

static void test_token_stale_refresh_dropped(void **state)
{
	struct fake_issuer f = { .lifetime_usec = 3600 * USEC_PER_SEC, .set_meanwhile = true };
	struct kit_token_source *ts = source(&f, 30 * USEC_PER_SEC);
	struct kit_token_ref ref = { 0 };
	char reason[BACKEND_REASON_MAX];
	long live = secret_live_count();

	/* While the refresh ran, a login installed a newer token: the refresh's is dropped. */
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), 0);
	assert_string_equal(kit_cred_str(ref.s), "login-token");
	assert_int_equal(f.calls, 1);
	kit_token_put(&ref);
	assert_int_equal(secret_live_count(), live + 1); /* only the installed one lives */
	issuer_done(&f);
	assert_int_equal(secret_live_count(), live);
}

static struct kit_token_source *waiter_ts;
static int waiter_r;

static void *first_getter(void *arg)
{
	struct kit_token_ref ref = { 0 };
	char reason[BACKEND_REASON_MAX];

	waiter_r = kit_token_get(waiter_ts, &ref, reason, sizeof(reason));
	kit_token_put(&ref);
	return NULL;
}

static void test_token_wait_is_bounded(void **state)
{
	struct fake_issuer f = { .hold = true };
	struct kit_token_source *ts = source(&f, 50 * USEC_PER_MSEC);
	struct kit_token_ref ref = { 0 };
	char reason[BACKEND_REASON_MAX];
	pthread_t th;

	waiter_ts = ts;
	assert_int_equal(pthread_create(&th, NULL, first_getter, NULL), 0);
	pthread_mutex_lock(&f.lock);
	while (!f.in_fetch)
		pthread_cond_wait(&f.cond, &f.lock);
	pthread_mutex_unlock(&f.lock);
	/* The refresh hangs: a second caller gives up after wait_usec instead of hanging too. */
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), -ETIMEDOUT);
	assert_non_null(strstr(reason, "the test token"));
	pthread_mutex_lock(&f.lock);
	f.hold = false;
	pthread_cond_broadcast(&f.cond);
	pthread_mutex_unlock(&f.lock);
	pthread_join(th, NULL);
	assert_int_equal(waiter_r, 0);
	assert_int_equal(f.calls, 1);
	issuer_done(&f);
}

static bool wiped_ok;
static size_t wiped_n;

static void check_wiped(const unsigned char *data, size_t len)
{
	wiped_n++;
	for (size_t i = 0; i < len; i++)
		if (data[i])
			wiped_ok = false;
}

static void test_token_static_and_wipe(void **state)
{
	struct kit_token_config cfg = { .what = "the Vault token" }; /* no fetch */
	struct kit_token_source *ts = NULL;
	struct kit_token_ref ref = { 0 };
	char reason[BACKEND_REASON_MAX];

	assert_int_equal(kit_token_new(&cfg, &ts), 0);
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), -ENOKEY);
	kit_token_set(ts, secret_dup("static-1", sizeof("static-1")), 0);
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), 0);
	assert_string_equal(kit_cred_str(ref.s), "static-1");

	/* Replaced while a request holds it: wiped when that request lets go, not before. */
	wiped_ok = true;
	wiped_n = 0;
	secret_set_free_hook(check_wiped);
	kit_token_set(ts, secret_dup("static-2", sizeof("static-2")),
		      realtime_usec() - USEC_PER_SEC);
	assert_int_equal(wiped_n, 0);
	assert_string_equal(kit_cred_str(ref.s), "static-1");
	kit_token_put(&ref);
	assert_int_equal(wiped_n, 1);
	assert_true(wiped_ok);

	/* Expired and nothing to refresh it with. */
	assert_int_equal(kit_token_get(ts, &ref, reason, sizeof(reason)), -EACCES);
	assert_string_equal(reason, "the Vault token has expired");
	kit_token_free(ts);
	assert_int_equal(wiped_n, 2);
	assert_true(wiped_ok);
	secret_set_free_hook(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_status_errno),
		cmocka_unit_test(test_error_codes),
		cmocka_unit_test(test_json_error),
		cmocka_unit_test(test_reason_and_jitter),
		cmocka_unit_test(test_page_token),
		cmocka_unit_test(test_same_origin),
		cmocka_unit_test(test_page_link),
		cmocka_unit_test(test_paginate),
		cmocka_unit_test(test_url_add_query),
		cmocka_unit_test(test_env),
		cmocka_unit_test_setup_teardown(test_read_credential, files_setup, files_teardown),
		cmocka_unit_test_setup_teardown(test_read_secret_file, files_setup, files_teardown),
		cmocka_unit_test(test_http_config),
		cmocka_unit_test(test_http_client_new),
		cmocka_unit_test(test_token_one_refresh_for_many),
		cmocka_unit_test(test_token_invalidate_after_401),
		cmocka_unit_test(test_token_failing_refresh),
		cmocka_unit_test(test_token_refresh_window),
		cmocka_unit_test(test_token_stale_refresh_dropped),
		cmocka_unit_test(test_token_wait_is_bounded),
		cmocka_unit_test(test_token_static_and_wipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
