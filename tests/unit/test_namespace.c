/*
 * test_namespace.c - path components and ids (tables of safe and unsafe
 * names), joining, the JSON-to-secret mapping (blobs, tables, base64, and
 * errors whose reason names the key but never echoes the value), and folder
 * listings built from secret ids.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "secretfs/backend.h"
#include "secretfs/namespace.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"

#define S_ BACKEND_LIST_SECRET
#define F_ BACKEND_LIST_FOLDER

/* ---- names and ids ---- */

struct name_case {
	const char *name;
	size_t len;
	bool safe;
};

/* clang-format off */
static const struct name_case name_cases[] = {
	{ "a", 1, true },
	{ "db", 2, true },
	{ "...", 3, true },
	{ ".a", 2, true },
	{ "a.", 2, true },
	{ "..a", 3, true },
	{ " ", 1, true },
	{ "api-key_2.json", 14, true },
	{ "\xc3\xa9t\xc3\xa9", 5, true },
	{ "\xf0\x9f\x94\x91", 4, true },
	{ "", 0, false },
	{ ".", 1, false },
	{ "..", 2, false },
	{ "/", 1, false },
	{ "a/b", 3, false },
	{ "a/", 2, false },
	{ "/a", 2, false },
	{ "a\0b", 3, false },
	{ "a\0", 2, false },
	/* Only the first len bytes count. */
	{ "a/b", 1, true },
	{ "../", 2, false },
	{ "...", 2, false },
};
/* clang-format on */

static void test_name_is_safe(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(name_cases); i++) {
		const struct name_case *c = &name_cases[i];

		if (ns_name_is_safe(c->name, c->len) != c->safe)
			fail_msg("ns_name_is_safe(\"%.*s\", %zu) should be %s", (int)c->len,
				 c->name, c->len, c->safe ? "true" : "false");
	}
}

struct id_case {
	const char *id;
	bool safe;
};

/* clang-format off */
static const struct id_case id_cases[] = {
	{ "a", true },
	{ "prod", true },
	{ "prod/db", true },
	{ "a/b/c/d", true },
	{ "...", true },
	{ "a/.../b", true },
	{ "..a/b..", true },
	{ ".hidden/x", true },
	{ "\xc3\xa9t\xc3\xa9/\xe2\x82\xac", true },
	{ "", false },
	{ ".", false },
	{ "..", false },
	{ "/", false },
	{ "//", false },
	{ "/a", false },
	{ "a/", false },
	{ "a//b", false },
	{ "a/../b", false },
	{ "a/./b", false },
	{ "../a", false },
	{ "./a", false },
	{ "a/..", false },
	{ "a/.", false },
	{ "/a/b", false },
	{ "a/b/", false },
};
/* clang-format on */

static void test_id_is_safe(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(id_cases); i++) {
		const struct id_case *c = &id_cases[i];

		if (ns_id_is_safe(c->id) != c->safe)
			fail_msg("ns_id_is_safe(\"%s\") should be %s", c->id,
				 c->safe ? "true" : "false");
	}
}

static void test_join(void **state)
{
	static const struct {
		const char *prefix, *name, *want;
	} cases[] = {
		{ "", "prod", "prod" },
		{ "prod", "db", "prod/db" },
		{ "a/b", "c", "a/b/c" },
		{ "", "", "" },
		{ "\xc3\xa9", "\xe2\x82\xac", "\xc3\xa9/\xe2\x82\xac" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *j = ns_join(cases[i].prefix, cases[i].name);

		assert_non_null(j);
		assert_string_equal(j, cases[i].want);
		free(j);
	}
}

/* ---- JSON values ---- */

/* Converts @v (taking the reference) and expects a blob of exactly @want. */
static void expect_blob(json_t *v, unsigned flags, const void *want, size_t wantlen)
{
	struct secret *s = NULL;
	char reason[256] = "";

	assert_non_null(v);
	assert_int_equal(ns_secret_from_json(v, flags, &s, reason, sizeof(reason)), 0);
	assert_non_null(s);
	assert_int_equal(s->kind, SECRET_BLOB);
	assert_int_equal(s->len, wantlen);
	if (wantlen)
		assert_memory_equal(s->data, want, wantlen);
	secret_unref(s);
	json_decref(v);
}

/* Parses @text and expects the compact JSON @want as the blob. */
static void expect_text(const char *text, const char *want)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);

	if (!v)
		fail_msg("cannot parse %s: %s", text, je.text);
	expect_blob(v, NS_JSON_BASE64, want, strlen(want));
}

static void test_from_json_scalars(void **state)
{
	long live0 = secret_live_count();

	expect_blob(json_string("hunter2"), 0, "hunter2", 7);
	expect_blob(json_string(""), 0, "", 0);
	expect_blob(json_stringn("a\0b\0", 4), 0, "a\0b\0", 4);
	expect_blob(json_stringn("\0", 1), NS_JSON_BASE64, "\0", 1);
	expect_blob(json_string("\xc3\xa9t\xc3\xa9\n"), 0, "\xc3\xa9t\xc3\xa9\n", 6);
	/* A string is raw bytes, never JSON text: no quotes, no escapes. */
	expect_blob(json_string("say \"hi\"\\"), 0, "say \"hi\"\\", 9);

	expect_text("42", "42");
	expect_text("-7", "-7");
	expect_text("1.5", "1.5");
	expect_text("true", "true");
	expect_text("false", "false");
	expect_text("null", "null");
	expect_text("[]", "[]");
	expect_text("[1, \"x\", {\"a\": 1}, null]", "[1,\"x\",{\"a\":1},null]");
	expect_text(" [ \"a\\u0000b\" ] ", "[\"a\\u0000b\"]");
	assert_int_equal(secret_live_count(), live0);
}

/*
 * Expects a table whose entries are @n (name, value) pairs in this order;
 * @valuelens gives the lengths of values with NULs, SIZE_MAX means strlen().
 */
static void expect_table(const struct secret *t, size_t n, const char *const *names,
			 const char *const *values, const size_t *valuelens)
{
	struct secret_entry e;

	assert_int_equal(t->kind, SECRET_TABLE);
	assert_int_equal(secret_table_count(t), n);
	for (size_t i = 0; i < n; i++) {
		size_t vl =
			valuelens && valuelens[i] != SIZE_MAX ? valuelens[i] : strlen(values[i]);

		assert_true(secret_table_at(t, i, &e));
		assert_string_equal(e.name, names[i]);
		if (e.valuelen != vl || memcmp(e.value, values[i], vl) != 0)
			fail_msg("entry '%s': got '%.*s', want '%.*s'", names[i], (int)e.valuelen,
				 (const char *)e.value, (int)vl, values[i]);
		assert_true(secret_table_find(t, names[i], &e));
	}
}

static void test_from_json_object(void **state)
{
	static const char doc[] = "{\"z\": \"last\", \"a\": \"first\", \"m\": {\"k\": [1, 2], "
				  "\"a/b\": null}, \"n\": 5, \"t\": true, \"nul\": \"x\\u0000y\", "
				  "\"b64\": {\"$base64\": \"AAEC/w==\"}, \"\xc3\xa9\": \"e\", "
				  "\"B\": \"upper\"}";
	static const char *const names[] = {
		"B", "a", "b64", "m", "n", "nul", "t", "z", "\xc3\xa9"
	};
	static const char *const with_b64[] = {
		"upper",
		"first",
		"\x00\x01\x02\xff",
		"{\"k\":[1,2],\"a/b\":null}",
		"5",
		"x\0y",
		"true",
		"last",
		"e",
	};
	static const char *const without_b64[] = {
		"upper",
		"first",
		"{\"$base64\":\"AAEC/w==\"}",
		"{\"k\":[1,2],\"a/b\":null}",
		"5",
		"x\0y",
		"true",
		"last",
		"e",
	};
#define L_ SIZE_MAX
	static const size_t lens_with[] = { L_, L_, 4, L_, L_, 3, L_, L_, L_ };
	static const size_t lens_without[] = { L_, L_, L_, L_, L_, 3, L_, L_, L_ };
#undef L_
	long live0 = secret_live_count();
	struct secret *t = NULL;
	char reason[256] = "";
	json_t *v = json_loads(doc, JSON_ALLOW_NUL, NULL);

	assert_non_null(v);
	assert_int_equal(ns_secret_from_json(v, NS_JSON_BASE64, &t, reason, sizeof(reason)), 0);
	expect_table(t, ARRAY_SIZE(names), names, with_b64, lens_with);
	/* Strings and binary values are text; numbers, booleans, objects keep their JSON type. */
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		static const unsigned char types[] = { SECRET_VALUE_TEXT, SECRET_VALUE_TEXT,
						       SECRET_VALUE_TEXT, SECRET_VALUE_JSON,
						       SECRET_VALUE_JSON, SECRET_VALUE_TEXT,
						       SECRET_VALUE_JSON, SECRET_VALUE_TEXT,
						       SECRET_VALUE_TEXT };
		struct secret_entry e;

		assert_true(secret_table_at(t, i, &e));
		assert_int_equal(e.type, types[i]);
	}
	secret_unref(t);

	t = NULL;
	assert_int_equal(ns_secret_from_json(v, 0, &t, reason, sizeof(reason)), 0);
	expect_table(t, ARRAY_SIZE(names), names, without_b64, lens_without);
	{
		struct secret_entry e;

		/* Without the $base64 convention that object is a nested object. */
		assert_true(secret_table_find(t, "b64", &e));
		assert_int_equal(e.type, SECRET_VALUE_JSON);
	}
	secret_unref(t);
	json_decref(v);

	/* An empty object is an empty directory. */
	v = json_object();
	t = NULL;
	assert_int_equal(ns_secret_from_json(v, NS_JSON_BASE64, &t, reason, sizeof(reason)), 0);
	assert_int_equal(t->kind, SECRET_TABLE);
	assert_int_equal(secret_table_count(t), 0);
	secret_unref(t);
	json_decref(v);
	assert_int_equal(secret_live_count(), live0);
}

static void test_from_json_base64(void **state)
{
	static const struct {
		const char *b64;
		const char *bytes;
		size_t len;
	} cases[] = {
		{ "AAEC/w==", "\x00\x01\x02\xff", 4 },
		{ "", "", 0 },
		{ "QQ==", "A", 1 },
		{ "QUI=", "AB", 2 },
		{ "QUJD", "ABC", 3 },
		{ "+/+/", "\xfb\xff\xbf", 3 },
		{ "AAAA", "\0\0\0", 3 },
		{ "aHVudGVyMg==", "hunter2", 7 },
	};
	long live0 = secret_live_count();
	struct secret *t = NULL;
	struct secret_entry e;
	char reason[256] = "";
	json_t *v;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		expect_blob(json_pack("{ss}", "$base64", cases[i].b64), NS_JSON_BASE64,
			    cases[i].bytes, cases[i].len);

	/* Without the flag, or with more members, or a non-string, it is an object. */
	v = json_pack("{ss}", "$base64", "AAEC/w==");
	assert_int_equal(ns_secret_from_json(v, 0, &t, reason, sizeof(reason)), 0);
	expect_table(t, 1, (const char *const[]){ "$base64" }, (const char *const[]){ "AAEC/w==" },
		     NULL);
	secret_unref(t);
	json_decref(v);

	v = json_pack("{sssi}", "$base64", "AAEC/w==", "x", 1);
	assert_int_equal(ns_secret_from_json(v, NS_JSON_BASE64, &t, reason, sizeof(reason)), 0);
	expect_table(t, 2, (const char *const[]){ "$base64", "x" },
		     (const char *const[]){ "AAEC/w==", "1" }, NULL);
	secret_unref(t);
	json_decref(v);

	v = json_pack("{si}", "$base64", 5);
	assert_int_equal(ns_secret_from_json(v, NS_JSON_BASE64, &t, reason, sizeof(reason)), 0);
	assert_int_equal(t->kind, SECRET_TABLE);
	assert_true(secret_table_find(t, "$base64", &e));
	assert_int_equal(e.valuelen, 1);
	assert_memory_equal(e.value, "5", 1);
	secret_unref(t);
	json_decref(v);
	assert_int_equal(secret_live_count(), live0);
}

/* Each is invalid; the reason must never echo it (it is a secret's value). */
/* clang-format off */
static const char *const bad_base64[] = {
	"c2VjcmV0X3Rva2Vu0",	/* length 17 */
	"c2VjcmV0X3Rva2V",	/* length 15 */
	"c2VjcmV0X3Rva2VuMQ=",	/* length 19 */
	"c2Vj=mV0X3Rva2Vu",	/* '=' in the middle */
	"c2VjcmV0X3Rva2V=MQ==", /* '=' before the padding */
	"c2VjcmV0X3Rva2Vu====", /* too much padding */
	"c2VjcmV0X3Rva2V===",	/* too much padding, length 18 */
	"c2Vj cmV0X3Rva2V",	/* space */
	"c2VjcmV0\nX3Rva2V",	/* newline */
	"c2VjcmV0X3Rva2V\n",	/* trailing newline */
	"\tc2VjcmV0X3Rva2V",	/* leading tab */
	"c2VjcmV0*3Rva2Vu",	/* bad character */
	"c2VjcmV0X3Rva2V-",	/* base64url */
	"c2VjcmV0X3Rva2V_",	/* base64url */
	"c2VjcmV0X3Rva\xc3\xa9u", /* non-ASCII */
};
/* clang-format on */

static void test_from_json_bad_base64(void **state)
{
	long live0 = secret_live_count();

	for (size_t i = 0; i < ARRAY_SIZE(bad_base64); i++) {
		struct secret *sentinel = (struct secret *)&live0, *s = sentinel;
		char reason[256] = "";
		json_t *v = json_pack("{ss}", "$base64", bad_base64[i]);
		int r;

		assert_non_null(v);
		r = ns_secret_from_json(v, NS_JSON_BASE64, &s, reason, sizeof(reason));
		if (r != -EINVAL)
			fail_msg("base64 '%s': got %d, want -EINVAL", bad_base64[i], r);
		assert_ptr_equal(s, sentinel);
		assert_non_null(strstr(reason, "base64"));
		if (strstr(reason, bad_base64[i]) || strstr(reason, "c2Vj"))
			fail_msg("the reason echoes the value: %s", reason);
		json_decref(v);

		/* Inside an object: the reason names the key, not the value. */
		v = json_pack("{s{ss}}", "tls-key", "$base64", bad_base64[i]);
		reason[0] = '\0';
		r = ns_secret_from_json(v, NS_JSON_BASE64, &s, reason, sizeof(reason));
		if (r != -EINVAL)
			fail_msg("nested base64 '%s': got %d, want -EINVAL", bad_base64[i], r);
		assert_ptr_equal(s, sentinel);
		assert_non_null(strstr(reason, "'tls-key'"));
		assert_non_null(strstr(reason, "base64"));
		if (strstr(reason, "c2Vj"))
			fail_msg("the reason echoes the value: %s", reason);
		json_decref(v);
	}
	assert_int_equal(secret_live_count(), live0);
}

/*
 * EVP_DecodeBlock() drops trailing characters it classes as end-of-data
 * ('-' among them) before it decodes, so the strictness check in
 * base64_decode() has to reject them itself.
 */
static void test_from_json_base64_dash_padding(void **state)
{
	static const char *const bad[] = { "c2VjcmV0X3Rva2Vu----", "QUJD----" };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct secret *s = NULL;
		char reason[256] = "";
		json_t *v = json_pack("{ss}", "$base64", bad[i]);
		int r = ns_secret_from_json(v, NS_JSON_BASE64, &s, reason, sizeof(reason));

		json_decref(v);
		if (r != -EINVAL) {
			print_error("base64 '%s': got %d and %zu bytes '%.*s', want -EINVAL\n",
				    bad[i], r, s ? s->len : 0, s ? (int)s->len : 0,
				    s ? (const char *)s->data : "");
			secret_unref(s);
			fail();
		}
	}
}

static void test_from_json_unsafe_keys(void **state)
{
	static const char *const keys[] = { "a/b", "..", ".", "", "/x", "x/" };
	long live0 = secret_live_count();

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		struct secret *sentinel = (struct secret *)&live0, *s = sentinel;
		char reason[256] = "", want[64];
		json_t *v = json_pack("{sssssi}", "good", "hunter2value", keys[i], "v", "zz", 1);

		assert_non_null(v);
		/* Strict (the file store): an error naming the key, never the values. */
		assert_int_equal(ns_secret_from_json(v, NS_JSON_BASE64 | NS_JSON_STRICT_NAMES, &s,
						     reason, sizeof(reason)),
				 -EINVAL);
		assert_ptr_equal(s, sentinel);
		snprintf(want, sizeof(want), "'%s'", keys[i]);
		if (!strstr(reason, want))
			fail_msg("reason '%s' does not name key %s", reason, want);
		assert_null(strstr(reason, "hunter2value"));
		/* Otherwise (network stores): the key is hidden, the rest is served. */
		s = NULL;
		assert_int_equal(ns_secret_from_json(v, NS_JSON_BASE64, &s, reason, sizeof(reason)),
				 0);
		expect_table(s, 2, (const char *const[]){ "good", "zz" },
			     (const char *const[]){ "hunter2value", "1" }, NULL);
		secret_unref(s);
		json_decref(v);
	}
	/* Nested objects are values, not directories: their keys are not names. */
	{
		struct secret *t = NULL;
		char reason[256] = "";
		json_t *v = json_pack("{s{si}}", "ok", "a/b", 1);

		assert_int_equal(ns_secret_from_json(v, 0, &t, reason, sizeof(reason)), 0);
		expect_table(t, 1, (const char *const[]){ "ok" },
			     (const char *const[]){ "{\"a/b\":1}" }, NULL);
		secret_unref(t);
		json_decref(v);
	}
	assert_int_equal(secret_live_count(), live0);
}

/* ---- listings ---- */

struct want_child {
	const char *name;
	unsigned char flags;
};

static void expect_listing(const char *const *ids, size_t n, const char *prefix,
			   const struct want_child *want, size_t nwant)
{
	struct secret *t = NULL;
	struct secret_entry e;
	int r = ns_listing_from_ids(ids, n, prefix, &t);

	if (r != 0)
		fail_msg("listing '%s': got %d", prefix, r);
	assert_int_equal(t->kind, SECRET_TABLE);
	if (secret_table_count(t) != nwant) {
		for (size_t i = 0; secret_table_at(t, i, &e); i++)
			print_message("  '%s' %u\n", e.name, e.value[0]);
		fail_msg("listing '%s': %zu entries, want %zu", prefix, secret_table_count(t),
			 nwant);
	}
	for (size_t i = 0; i < nwant; i++) {
		assert_true(secret_table_at(t, i, &e));
		assert_string_equal(e.name, want[i].name);
		assert_int_equal(e.valuelen, 1);
		if (e.value[0] != want[i].flags)
			fail_msg("listing '%s': '%s' has flags %u, want %u", prefix, e.name,
				 e.value[0], want[i].flags);
	}
	secret_unref(t);
}

static void expect_no_folder(const char *const *ids, size_t n, const char *prefix)
{
	struct secret *sentinel = (struct secret *)&n, *t = sentinel;

	if (ns_listing_from_ids(ids, n, prefix, &t) != -ENOENT)
		fail_msg("listing '%s' should be -ENOENT", prefix);
	assert_ptr_equal(t, sentinel);
}

static void test_listing(void **state)
{
	static const char *const ids[] = {
		"prod/db",
		"top",
		"prod/api-key",
		"a/b",
		"dev/x/y",
		"a",
		"prod/db/replica",
		"top",
		"../etc",
		"x//y",
		"/abs",
		"trail/",
		"",
		"evil/../passwd",
		"evil/./x",
		"zz/.",
		"\xc3\xa9t\xc3\xa9/k",
	};
	static const struct want_child root[] = {
		{ "a", S_ | F_ },
		{ "dev", F_ },
		{ "prod", F_ },
		{ "top", S_ },
		{ "\xc3\xa9t\xc3\xa9", F_ },
	};
	static const struct want_child prod[] = {
		{ "api-key", S_ },
		{ "db", S_ | F_ },
	};
	static const struct want_child prod_db[] = { { "replica", S_ } };
	static const struct want_child dev[] = { { "x", F_ } };
	static const struct want_child dev_x[] = { { "y", S_ } };
	static const struct want_child a[] = { { "b", S_ } };
	long live0 = secret_live_count();
	size_t n = ARRAY_SIZE(ids);

	expect_listing(ids, n, "", root, ARRAY_SIZE(root));
	expect_listing(ids, n, "prod", prod, ARRAY_SIZE(prod));
	expect_listing(ids, n, "prod/db", prod_db, ARRAY_SIZE(prod_db));
	expect_listing(ids, n, "dev", dev, ARRAY_SIZE(dev));
	expect_listing(ids, n, "dev/x", dev_x, ARRAY_SIZE(dev_x));
	expect_listing(ids, n, "a", a, ARRAY_SIZE(a));

	/* Missing, a secret that is not a folder, a partial component, unsafe ids. */
	expect_no_folder(ids, n, "missing");
	expect_no_folder(ids, n, "top");
	expect_no_folder(ids, n, "pro");
	expect_no_folder(ids, n, "prod/d");
	expect_no_folder(ids, n, "dev/x/y");
	expect_no_folder(ids, n, "evil");
	expect_no_folder(ids, n, "x");
	expect_no_folder(ids, n, "trail");
	expect_no_folder(ids, n, "zz");
	expect_no_folder(ids, n, "..");
	expect_no_folder(NULL, 0, "prod");

	/* The top folder always exists, even empty. */
	expect_listing(NULL, 0, "", NULL, 0);
	expect_listing((const char *const[]){ "../x", "a//b" }, 2, "", NULL, 0);
	assert_int_equal(secret_live_count(), live0);
}

/* Order does not matter: every rotation of the input gives the same listing. */
static void test_listing_any_order(void **state)
{
	static const char *const ids[] = { "c/1", "b", "a/x", "c", "a/y/z", "b/q", "d" };
	static const struct want_child root[] = {
		{ "a", F_ },
		{ "b", S_ | F_ },
		{ "c", S_ | F_ },
		{ "d", S_ },
	};
	static const struct want_child a[] = { { "x", S_ }, { "y", F_ } };
	enum { N = ARRAY_SIZE(ids) };
	const char *rot[N];

	for (size_t k = 0; k < N; k++) {
		for (size_t i = 0; i < N; i++)
			rot[i] = ids[(i + k) % N];
		expect_listing(rot, N, "", root, ARRAY_SIZE(root));
		expect_listing(rot, N, "a", a, ARRAY_SIZE(a));
		/* Reversed too. */
		for (size_t i = 0; i < N; i++)
			rot[i] = ids[(N - 1 - i + k) % N];
		expect_listing(rot, N, "", root, ARRAY_SIZE(root));
	}
}

/* Last: jansson's allocator is process-wide, and blocks must not cross allocators. */
static void test_wiping_alloc(void **state)
{
	static const char doc[] = "{\"prod/db\": {\"password\": \"s3cr3t\", \"port\": 5432}, "
				  "\"bin\": {\"$base64\": \"AAEC/w==\"}, \"list\": [1, \"two\"]}";
	long live0 = secret_live_count();
	struct secret *s = NULL;
	struct secret_entry e;
	char reason[256] = "";
	json_malloc_t m;
	json_free_t f;
	json_error_t je;
	json_t *v;
	char *text;

	ns_json_use_wiping_alloc();
	json_get_alloc_funcs(&m, &f);
	assert_true(m != malloc);
	assert_true(f != free);

	for (int round = 0; round < 3; round++) {
		v = json_loads(doc, 0, &je);
		assert_non_null(v);
		text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		assert_non_null(text);
		assert_non_null(strstr(text, "\"password\":\"s3cr3t\""));
		f(text);

		assert_int_equal(ns_secret_from_json(json_object_get(v, "prod/db"), NS_JSON_BASE64,
						     &s, reason, sizeof(reason)),
				 0);
		assert_true(secret_table_find(s, "port", &e));
		assert_memory_equal(e.value, "5432", 4);
		secret_unref(s);
		/* value_bytes() frees json_dumps() text with jansson's (our) free. */
		assert_int_equal(ns_secret_from_json(json_object_get(v, "list"), 0, &s, reason,
						     sizeof(reason)),
				 0);
		assert_int_equal(s->len, 9);
		assert_memory_equal(s->data, "[1,\"two\"]", 9);
		secret_unref(s);
		expect_blob(json_incref(json_object_get(v, "bin")), NS_JSON_BASE64,
			    "\x00\x01\x02\xff", 4);
		json_decref(v);
	}
	/* A failed parse frees its partial tree through the same functions. */
	assert_null(json_loads("{\"a\": [1, 2, {\"b\": \"unterminated", 0, &je));
	assert_int_equal(secret_live_count(), live0);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_is_safe),
		cmocka_unit_test(test_id_is_safe),
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_from_json_scalars),
		cmocka_unit_test(test_from_json_object),
		cmocka_unit_test(test_from_json_base64),
		cmocka_unit_test(test_from_json_bad_base64),
		cmocka_unit_test(test_from_json_base64_dash_padding),
		cmocka_unit_test(test_from_json_unsafe_keys),
		cmocka_unit_test(test_listing),
		cmocka_unit_test(test_listing_any_order),
		cmocka_unit_test(test_wiping_alloc),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
