/*
 * test_vault.c - the Vault backend's parsers (src/backends/vault_parse.c),
 * without a network: Vault's own API-doc samples from
 * $SECRETFS_FIXTURES/vault (KV v1/v2 reads and lists, token lookup, renewal,
 * AppRole and Kubernetes logins, error bodies), hand-made bodies for what the
 * docs do not show (ui/mounts, a deleted version's 404, Vault >= 1.16's
 * multierror wording), malformed bodies of every kind (each must fail with a
 * clear reason that never quotes the body), and the SOURCE string forms.
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

#include "backends/vault_parse.h"
#include "secretfs/backend.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"

/* ---- helpers ---- */

/* The response_body of fixture @name, as compact JSON text (malloc'ed). */
static char *fixture_body(const char *name)
{
	const char *dir = getenv("SECRETFS_FIXTURES");
	char path[4096];
	json_error_t je;
	json_t *doc;
	char *text;

	if (!dir)
		dir = "tests/data/fixtures";
	snprintf(path, sizeof(path), "%s/vault/%s", dir, name);
	doc = json_load_file(path, 0, &je);
	if (!doc)
		fail_msg("%s: %s (set SECRETFS_FIXTURES to the shared fixtures folder)", path,
			 je.text);
	text = json_dumps(json_object_get(doc, "response_body"), JSON_COMPACT | JSON_ENCODE_ANY);
	assert_non_null(text);
	json_decref(doc);
	return text;
}

/* The value of key @name in table @t, as a NUL-terminated copy in @buf. */
static const char *table_value(const struct secret *t, const char *name, char *buf, size_t len)
{
	struct secret_entry e;

	assert_int_equal(t->kind, SECRET_TABLE);
	if (!secret_table_find(t, name, &e))
		fail_msg("no key '%s' in the table", name);
	assert_true(e.valuelen < len);
	memcpy(buf, e.value, e.valuelen);
	buf[e.valuelen] = '\0';
	return buf;
}

static unsigned listing_flags(const struct secret *t, const char *name)
{
	struct secret_entry e;

	if (!secret_table_find(t, name, &e))
		return 0;
	assert_int_equal(e.valuelen, 1);
	return e.value[0];
}

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (!strstr((hay), (needle)))                                                      \
			fail_msg("'%s' does not contain '%s'", (hay), (needle));                   \
	} while (0)

#define assert_not_contains(hay, needle)                                                           \
	do {                                                                                       \
		if (strstr((hay), (needle)))                                                       \
			fail_msg("'%s' contains '%s'", (hay), (needle));                           \
	} while (0)

/* ---- KV v2 ---- */

static void test_kv2_read_fixture(void **state)
{
	char *body = fixture_body("kv2-read-secret-version.json");
	struct backend_info info = { .version = "x" };
	char reason[BACKEND_REASON_MAX] = "", buf[64];
	struct secret *s = NULL;

	assert_int_equal(
		vault_parse_kv2_read(200, body, strlen(body), &s, &info, reason, sizeof(reason)),
		0);
	assert_string_equal(info.version, "2");
	assert_int_equal(info.ttl_hint_usec, 0);
	assert_int_equal(secret_table_count(s), 1);
	assert_string_equal(table_value(s, "foo", buf, sizeof(buf)), "bar");
	secret_unref(s);
	free(body);
}

static void test_kv2_read_full_envelope(void **state)
{
	/* What a live server sends: the envelope, non-string values, a NUL inside a string. */
	static const char body[] =
		"{\"request_id\":\"r\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,"
		"\"data\":{\"data\":{\"password\":\"s3cr3t\",\"port\":5432,\"tls\":true,"
		"\"bin\":\"a\\u0000b\",\"obj\":{\"x\":[1,null]}},"
		"\"metadata\":{\"created_time\":\"2024-01-01T00:00:00Z\",\"custom_metadata\":null,"
		"\"deletion_time\":\"\",\"destroyed\":false,\"version\":17}},"
		"\"wrap_info\":null,\"warnings\":null,\"auth\":null,\"mount_type\":\"kv\"}\n";
	char reason[BACKEND_REASON_MAX] = "", buf[64];
	struct backend_info info;
	struct secret_entry e;
	struct secret *s = NULL;

	assert_int_equal(vault_parse_kv2_read(200, body, sizeof(body) - 1, &s, &info, reason,
					      sizeof(reason)),
			 0);
	assert_string_equal(info.version, "17");
	assert_string_equal(table_value(s, "password", buf, sizeof(buf)), "s3cr3t");
	assert_string_equal(table_value(s, "port", buf, sizeof(buf)), "5432");
	assert_string_equal(table_value(s, "tls", buf, sizeof(buf)), "true");
	assert_string_equal(table_value(s, "obj", buf, sizeof(buf)), "{\"x\":[1,null]}");
	assert_true(secret_table_find(s, "bin", &e));
	assert_int_equal(e.valuelen, 3);
	assert_memory_equal(e.value, "a\0b", 3);
	secret_unref(s);
}

static void test_kv2_deleted(void **state)
{
	/* Vault >= 1.x: 404 with the whole envelope; older: 200 with data null. */
	static const char deleted404[] =
		"{\"request_id\":\"r\",\"data\":{\"data\":null,\"metadata\":{\"created_time\":"
		"\"2024-01-01T00:00:00Z\",\"custom_metadata\":null,\"deletion_time\":"
		"\"2024-01-02T00:00:00Z\",\"destroyed\":false,\"version\":3}},\"mount_type\":\"\"}";
	static const char destroyed404[] =
		"{\"data\":{\"data\":null,\"metadata\":{\"deletion_time\":\"\",\"destroyed\":true,"
		"\"version\":4}}}";
	static const char deleted200[] =
		"{\"data\":{\"data\":null,\"metadata\":{\"deletion_time\":\"2024-01-02T00:00:00Z\","
		"\"destroyed\":false,\"version\":5}}}";
	char reason[BACKEND_REASON_MAX] = "";
	struct backend_info info = { .version = "unchanged" };
	struct secret *s = NULL;
	char *empty = fixture_body("error-list-empty-404.json");

	assert_int_equal(vault_parse_kv2_read(404, deleted404, strlen(deleted404), &s, &info,
					      reason, sizeof(reason)),
			 -ENOENT);
	assert_contains(reason, "latest version (3) is deleted");
	assert_int_equal(vault_parse_kv2_read(404, destroyed404, strlen(destroyed404), &s, &info,
					      reason, sizeof(reason)),
			 -ENOENT);
	assert_contains(reason, "(4) is destroyed");
	assert_int_equal(vault_parse_kv2_read(200, deleted200, strlen(deleted200), &s, &info,
					      reason, sizeof(reason)),
			 -ENOENT);
	assert_contains(reason, "(5) is deleted");
	/* A plain 404, with Vault's empty errors or with no body at all. */
	assert_int_equal(
		vault_parse_kv2_read(404, empty, strlen(empty), &s, &info, reason, sizeof(reason)),
		-ENOENT);
	assert_string_equal(reason, "no such secret");
	assert_int_equal(vault_parse_kv2_read(404, "", 0, &s, &info, reason, sizeof(reason)),
			 -ENOENT);
	assert_int_equal(vault_parse_kv2_read(404, "<html>", 6, &s, &info, reason, sizeof(reason)),
			 -ENOENT);
	/* Out-parameters untouched on failure. */
	assert_null(s);
	assert_string_equal(info.version, "unchanged");
	free(empty);
}

struct bad_body {
	const char *body;
	const char *why; /* a part of the expected reason */
};

/* Vault allows keys like "tls/crt"; they cannot be file names, so they are hidden. */
static void test_kv2_unsafe_keys_hidden(void **state)
{
	static const char body[] = "{\"data\":{\"data\":{\"a/b\":\"x\",\"..\":\"y\",\"ok\":\"z\"},"
				   "\"metadata\":{\"version\":3}}}";
	char reason[BACKEND_REASON_MAX] = "";
	struct backend_info info;
	struct secret_entry e;
	struct secret *s = NULL;

	assert_int_equal(
		vault_parse_kv2_read(200, body, strlen(body), &s, &info, reason, sizeof(reason)),
		0);
	assert_int_equal(secret_table_count(s), 1);
	assert_true(secret_table_find(s, "ok", &e));
	assert_int_equal(e.valuelen, 1);
	assert_memory_equal(e.value, "z", 1);
	assert_string_equal(info.version, "3");
	secret_unref(s);
}

static void test_kv2_malformed(void **state)
{
	static const struct bad_body bad[] = {
		{ "", "empty body" },
		{ "not json s3cr3t-value", "malformed JSON" },
		{ "{\"data\":{\"data\":{\"password\":\"s3cr3t-value\"", "malformed JSON" },
		{ "[1,2]", "not an object" },
		{ "{\"data\":{\"data\":{\"password\":\"s3cr3t-value\"}}}",
		  "data.metadata is missing" },
		{ "{}", "data is missing" },
		{ "{\"data\":\"s3cr3t-value\"}", "data is not an object" },
		{ "{\"data\":{\"data\":{\"k\":\"s3cr3t-value\"},\"metadata\":[]}}",
		  "data.metadata is not an object" },
		{ "{\"data\":{\"data\":{\"k\":\"s3cr3t-value\"},\"metadata\":{\"version\":\"2\"}}}",
		  "version is not a version number" },
		{ "{\"data\":{\"data\":{\"k\":\"s3cr3t-value\"},\"metadata\":{}}}",
		  "version is not a version number" },
		{ "{\"data\":{\"data\":{\"k\":\"s3cr3t-value\"},\"metadata\":{\"version\":1}}} "
		  "junk",
		  "malformed JSON" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct backend_info info;
		struct secret *s = NULL;
		int r;

		r = vault_parse_kv2_read(200, bad[i].body, strlen(bad[i].body), &s, &info, reason,
					 sizeof(reason));
		if (r != -EBADMSG)
			fail_msg("body %zu: got %d (%s), want -EBADMSG", i, r, reason);
		assert_null(s);
		assert_contains(reason, bad[i].why);
		assert_not_contains(reason, "s3cr3t");
	}
}

/* ---- KV v1 ---- */

static void test_kv1_read_fixture(void **state)
{
	char *body = fixture_body("kv1-read-secret.json");
	char reason[BACKEND_REASON_MAX] = "", buf[64];
	struct backend_info info;
	struct secret *s = NULL;

	assert_int_equal(
		vault_parse_kv1_read(body, strlen(body), &s, &info, reason, sizeof(reason)), 0);
	assert_int_equal(info.ttl_hint_usec, 3600 * USEC_PER_SEC);
	assert_string_equal(info.version, "");
	assert_string_equal(table_value(s, "foo", buf, sizeof(buf)), "bar");
	assert_string_equal(table_value(s, "ttl", buf, sizeof(buf)), "1h");
	secret_unref(s);
	free(body);
}

static void test_kv1_malformed(void **state)
{
	static const struct bad_body bad[] = {
		{ "{\"data\":{\"k\":\"s3cr3t-value\"},\"lease_duration\":\"1h\"}",
		  "lease_duration is not a non-negative integer" },
		{ "{\"data\":{\"k\":\"s3cr3t-value\"},\"lease_duration\":-5}",
		  "lease_duration is not a non-negative integer" },
		{ "{\"data\":{\"k\":\"s3cr3t-value\"},\"lease_duration\":1.5}",
		  "lease_duration is not a non-negative integer" },
		{ "{\"data\":null,\"lease_duration\":5}", "data is missing" },
		{ "{\"data\":[\"s3cr3t-value\"]}", "data is not an object" },
		{ "s3cr3t-value", "malformed JSON" },
	};
	char reason[BACKEND_REASON_MAX];
	struct backend_info info;
	struct secret *s = NULL;
	static const char no_lease[] = "{\"data\":{\"k\":\"v\"}}";
	static const char huge_lease[] = "{\"data\":{\"k\":\"v\"},\"lease_duration\":"
					 "9223372036854775807}";

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = vault_parse_kv1_read(bad[i].body, strlen(bad[i].body), &s, &info, reason,
					     sizeof(reason));

		if (r != -EBADMSG)
			fail_msg("body %zu: got %d (%s), want -EBADMSG", i, r, reason);
		assert_null(s);
		assert_contains(reason, bad[i].why);
		assert_not_contains(reason, "s3cr3t");
	}
	/* No lease_duration: no hint.  A huge one must not overflow. */
	assert_int_equal(
		vault_parse_kv1_read(no_lease, strlen(no_lease), &s, &info, reason, sizeof(reason)),
		0);
	assert_int_equal(info.ttl_hint_usec, 0);
	secret_unref(s);
	assert_int_equal(vault_parse_kv1_read(huge_lease, strlen(huge_lease), &s, &info, reason,
					      sizeof(reason)),
			 0);
	assert_true(info.ttl_hint_usec >= (uint64_t)INT64_MAX / 2);
	secret_unref(s);
}

/* ---- LIST ---- */

static void test_list_fixtures(void **state)
{
	static const char *const names[] = { "kv2-list-secrets.json", "kv1-list-secrets.json" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *body = fixture_body(names[i]);
		char reason[BACKEND_REASON_MAX] = "";
		struct secret *l = NULL;

		assert_int_equal(vault_parse_list(body, strlen(body), &l, reason, sizeof(reason)),
				 0);
		/* "foo" and "foo/": one name, both a secret and a folder. */
		assert_int_equal(secret_table_count(l), 1);
		assert_int_equal(listing_flags(l, "foo"),
				 BACKEND_LIST_SECRET | BACKEND_LIST_FOLDER);
		secret_unref(l);
		free(body);
	}
}

static void test_list_shapes(void **state)
{
	static const char body[] = "{\"data\":{\"keys\":[\"b/\",\"a\",\"..\",\"\",\"./\",\"c/\","
				   "\"c\",\"x/y\",\"d\"]}}";
	static const char empty[] = "{\"data\":{\"keys\":[]}}";
	static const struct bad_body bad[] = {
		{ "{\"data\":{\"keys\":[\"a\",5]}}", "data.keys[1] is not a string" },
		{ "{\"data\":{\"keys\":\"a\"}}", "data.keys is not an array" },
		{ "{\"data\":{}}", "data.keys is missing" },
		{ "{\"errors\":[]}", "data is missing" },
		{ "{\"data\":{\"keys\":[\"a\"", "malformed JSON" },
	};
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *l = NULL;

	assert_int_equal(vault_parse_list(body, strlen(body), &l, reason, sizeof(reason)), 0);
	/* Unsafe names are never shown. */
	assert_int_equal(secret_table_count(l), 4);
	assert_int_equal(listing_flags(l, "a"), BACKEND_LIST_SECRET);
	assert_int_equal(listing_flags(l, "b"), BACKEND_LIST_FOLDER);
	assert_int_equal(listing_flags(l, "c"), BACKEND_LIST_SECRET | BACKEND_LIST_FOLDER);
	assert_int_equal(listing_flags(l, "d"), BACKEND_LIST_SECRET);
	secret_unref(l);
	assert_int_equal(vault_parse_list(empty, strlen(empty), &l, reason, sizeof(reason)), 0);
	assert_int_equal(secret_table_count(l), 0);
	secret_unref(l);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		l = NULL;
		assert_int_equal(vault_parse_list(bad[i].body, strlen(bad[i].body), &l, reason,
						  sizeof(reason)),
				 -EBADMSG);
		assert_null(l);
		assert_contains(reason, bad[i].why);
	}
}

/* ---- ui/mounts ---- */

/*
 * KV v2 metadata: newest first, states from deletion_time (past only) and
 * destroyed, previous the newest live version below current, versions below
 * oldest_version skipped; malformed shapes are EBADMSG with nothing returned.
 */
static void test_kv2_metadata(void **state)
{
	static const char body[] =
		"{\"data\":{\"current_version\":5,\"oldest_version\":2,\"versions\":{"
		"\"1\":{\"created_time\":\"2026-01-01T00:00:00Z\",\"deletion_time\":\"\","
		"\"destroyed\":false},"
		"\"2\":{\"created_time\":\"2026-01-02T00:00:00Z\",\"deletion_time\":\"\","
		"\"destroyed\":false},"
		"\"3\":{\"created_time\":\"2026-01-03T00:00:00Z\",\"deletion_time\":\"\","
		"\"destroyed\":true},"
		"\"4\":{\"created_time\":\"2026-01-04T00:00:00Z\","
		"\"deletion_time\":\"2026-01-05T00:00:00Z\",\"destroyed\":false},"
		"\"5\":{\"created_time\":\"2026-01-06T12:00:00.5+02:00\","
		"\"deletion_time\":\"2999-01-01T00:00:00Z\",\"destroyed\":false}}}}";
	static const char *const ids[] = { "5", "4", "3", "2" };
	static const char *const states[] = { "enabled", "deleted", "destroyed", "enabled" };
	static const char *const bad[] = {
		"[]", "{\"data\":{}}", "{\"data\":{\"versions\":{},\"current_version\":\"5\"}}",
		"{\"data\":{\"versions\":{\"1\":3},\"current_version\":1}}",
	};
	char reason[BACKEND_REASON_MAX];
	json_t *list = NULL, *e;
	uint64_t previous = 0;

	(void)state;
	assert_int_equal(vault_parse_kv2_metadata(body, strlen(body), &list, &previous, reason,
						  sizeof(reason)),
			 0);
	assert_true(previous == 2);
	assert_int_equal(json_array_size(list), 4);
	for (size_t i = 0; i < 4; i++) {
		e = json_array_get(list, i);
		assert_string_equal(json_string_value(json_object_get(e, "id")), ids[i]);
		assert_string_equal(json_string_value(json_object_get(e, "state")), states[i]);
	}
	e = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(e, "created")),
			    "2026-01-06T10:00:00Z");
	assert_string_equal(json_string_value(json_array_get(json_object_get(e, "labels"), 0)),
			    "current");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_array_get(list, 3), "labels"), 0)),
			    "previous");
	json_decref(list);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		list = NULL;
		previous = 9;
		assert_int_equal(vault_parse_kv2_metadata(bad[i], strlen(bad[i]), &list, &previous,
							  reason, sizeof(reason)),
				 -EBADMSG);
		assert_null(list);
		assert_true(previous == 9);
	}
}

static void test_mount(void **state)
{
	/* The shape of GET sys/internal/ui/mounts/PATH (Vault's and the test server's). */
	static const char v2[] =
		"{\"request_id\":\"r\",\"data\":{\"accessor\":\"kv_1\",\"config\":{},"
		"\"description\":"
		"\"key/value secret storage\",\"local\":false,\"options\":{\"version\":\"2\"},"
		"\"path\":\"secret/\",\"type\":\"kv\",\"uuid\":\"u\"},\"mount_type\":\"system\"}";
	static const char v1[] = "{\"data\":{\"options\":{\"version\":\"1\"},\"path\":\"team/kv/\","
				 "\"type\":\"kv\"}}";
	static const char nover[] =
		"{\"data\":{\"options\":null,\"path\":\"kv/\",\"type\":\"kv\"}}";
	static const char generic[] = "{\"data\":{\"path\":\"old/\",\"type\":\"generic\"}}";
	static const char pki[] =
		"{\"data\":{\"options\":null,\"path\":\"pki/\",\"type\":\"pki\"}}";
	static const struct bad_body bad[] = {
		{ "{\"data\":{\"path\":\"secret/\"}}", "no data.type" },
		{ "{\"data\":{\"type\":\"kv\"}}", "no data.path" },
		{ "{\"data\":{\"type\":\"kv\",\"path\":\"secret/\",\"options\":{\"version\":2}}}",
		  "data.options.version is not" },
		{ "{\"data\":{\"type\":\"kv\",\"path\":\"secret/"
		  "\",\"options\":{\"version\":\"3\"}}}",
		  "data.options.version is not" },
		{ "{\"data\":{\"type\":\"kv\",\"path\":\"secret/\",\"options\":[]}}",
		  "data.options is not an object" },
		{ "{\"data\":{\"type\":\"kv\",\"path\":\"other/\"}}", "does not contain it" },
		{ "{\"data\":{\"type\":\"kv\",\"path\":\"sec/\"}}", "does not contain it" },
		{ "{\"data\":{\"type\":\"kv\",\"path\":\"/\"}}", "does not contain it" },
		{ "{\"errors\":[\"x\"]}", "mount description is missing" },
		{ "nope", "malformed JSON" },
	};
	char reason[BACKEND_REASON_MAX] = "";
	struct vault_mount_info mi = { 0 };

	assert_int_equal(
		vault_parse_mount(v2, strlen(v2), "secret/team/app", &mi, reason, sizeof(reason)),
		0);
	assert_int_equal(mi.kv_version, 2);
	assert_string_equal(mi.mount, "secret");
	free(mi.mount);
	assert_int_equal(vault_parse_mount(v2, strlen(v2), "secret", &mi, reason, sizeof(reason)),
			 0);
	free(mi.mount);
	assert_int_equal(
		vault_parse_mount(v1, strlen(v1), "team/kv/x", &mi, reason, sizeof(reason)), 0);
	assert_int_equal(mi.kv_version, 1);
	assert_string_equal(mi.mount, "team/kv");
	free(mi.mount);
	assert_int_equal(vault_parse_mount(nover, strlen(nover), "kv", &mi, reason, sizeof(reason)),
			 0);
	assert_int_equal(mi.kv_version, 1);
	free(mi.mount);
	assert_int_equal(
		vault_parse_mount(generic, strlen(generic), "old/a", &mi, reason, sizeof(reason)),
		0);
	assert_int_equal(mi.kv_version, 1);
	free(mi.mount);
	mi.mount = NULL;
	assert_int_equal(vault_parse_mount(pki, strlen(pki), "pki", &mi, reason, sizeof(reason)),
			 -EINVAL);
	assert_contains(reason, "of type 'pki', not a KV store");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(vault_parse_mount(bad[i].body, strlen(bad[i].body), "secret", &mi,
						   reason, sizeof(reason)),
				 -EIO);
		assert_contains(reason, bad[i].why);
		assert_null(mi.mount);
	}
}

/* ---- tokens ---- */

static void test_lookup_self_fixture(void **state)
{
	char *body = fixture_body("token-lookup-self.json");
	char reason[BACKEND_REASON_MAX] = "";
	struct vault_token_info ti;
	int64_t want;

	assert_int_equal(vault_parse_lookup_self(body, strlen(body), &ti, reason, sizeof(reason)),
			 0);
	assert_int_equal(ti.ttl_usec, 2764790 * USEC_PER_SEC);
	assert_int_equal(ti.creation_ttl_usec, 2764800 * USEC_PER_SEC);
	assert_int_equal(ti.explicit_max_ttl_usec, 0);
	assert_true(ti.renewable);
	/* "2018-05-19T11:35:54.466476215-04:00" */
	want = (INT64_C(1526744154) * (int64_t)USEC_PER_SEC) + 466476;
	assert_int_equal(ti.expire_time_usec, want);
	free(body);
}

static void test_lookup_self_shapes(void **state)
{
	/* A root token: no expiry, not renewable. */
	static const char root[] =
		"{\"data\":{\"expire_time\":null,\"ttl\":0,\"renewable\":false,"
		"\"creation_ttl\":0,\"explicit_max_ttl\":0,\"policies\":[\"root\"]}}";
	static const struct bad_body bad[] = {
		{ "{\"data\":{\"renewable\":true}}", "no data.ttl" },
		{ "{\"data\":{\"ttl\":\"3s\"}}", "data.ttl is not a non-negative integer" },
		{ "{\"data\":{\"ttl\":3,\"renewable\":\"yes\"}}",
		  "data.renewable is not a boolean" },
		{ "{\"data\":{\"ttl\":3,\"expire_time\":5}}", "not an RFC 3339 time" },
		{ "{\"data\":{\"ttl\":3,\"expire_time\":\"yesterday\"}}", "not an RFC 3339 time" },
		{ "{\"data\":{\"ttl\":3,\"creation_ttl\":-1}}", "data.creation_ttl is not" },
		{ "{\"data\":null}", "data is missing" },
		{ "{\"data\":", "malformed JSON" },
	};
	char reason[BACKEND_REASON_MAX] = "";
	struct vault_token_info ti;

	assert_int_equal(vault_parse_lookup_self(root, strlen(root), &ti, reason, sizeof(reason)),
			 0);
	assert_int_equal(ti.ttl_usec, 0);
	assert_false(ti.renewable);
	assert_int_equal(ti.expire_time_usec, 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(vault_parse_lookup_self(bad[i].body, strlen(bad[i].body), &ti,
							 reason, sizeof(reason)),
				 -EBADMSG);
		assert_contains(reason, bad[i].why);
	}
}

static void test_auth_fixtures(void **state)
{
	static const struct {
		const char *fixture;
		const char *token;
		uint64_t lease;
		bool renewable;
	} cases[] = {
		{ "approle-login.json", "5b1a0318-679c-9c45-e5c6-d1b9a9035d49", 1200, true },
		{ "kubernetes-login.json", "62b858f9-529c-6b26-e0b8-0457b6aacdb4", 2764800, true },
		{ "token-renew-self.json", "ABCD", 3600, true },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *body = fixture_body(cases[i].fixture);
		char reason[BACKEND_REASON_MAX] = "", *tok = NULL;
		struct vault_token_info ti;
		size_t len = 0;

		assert_int_equal(vault_parse_auth(body, strlen(body), &tok, &len, &ti, reason,
						  sizeof(reason)),
				 0);
		assert_string_equal(tok, cases[i].token);
		assert_int_equal(len, strlen(cases[i].token));
		assert_int_equal(ti.ttl_usec, cases[i].lease * USEC_PER_SEC);
		assert_int_equal(ti.creation_ttl_usec, cases[i].lease * USEC_PER_SEC);
		assert_int_equal(ti.renewable, cases[i].renewable);
		free(tok);
		free(body);
	}
}

static void test_auth_malformed(void **state)
{
	static const struct bad_body bad[] = {
		{ "{\"auth\":null,\"data\":null}", "auth is missing" },
		{ "{\"auth\":{\"lease_duration\":5}}", "client_token is missing" },
		{ "{\"auth\":{\"client_token\":5}}", "client_token is not a usable token" },
		{ "{\"auth\":{\"client_token\":\"\"}}", "client_token is not a usable token" },
		{ "{\"auth\":{\"client_token\":\"hvs.a\\r\\nX-Evil: 1\"}}",
		  "client_token is not a usable token" },
		{ "{\"auth\":{\"client_token\":\"hvs.s3cr3t-token\",\"lease_duration\":\"20m\"}}",
		  "auth.lease_duration is not" },
		{ "{\"auth\":{\"client_token\":\"hvs.s3cr3t-token\",\"renewable\":1}}",
		  "auth.renewable is not a boolean" },
		{ "{\"auth\":{\"client_token\":\"hvs.s3cr3t-token\"", "malformed JSON" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char reason[BACKEND_REASON_MAX] = "", *tok = NULL;
		struct vault_token_info ti;
		size_t len = 0;

		assert_int_equal(vault_parse_auth(bad[i].body, strlen(bad[i].body), &tok, &len, &ti,
						  reason, sizeof(reason)),
				 -EBADMSG);
		assert_null(tok);
		assert_contains(reason, bad[i].why);
		assert_not_contains(reason, "s3cr3t");
	}
}

static void test_token_is_valid(void **state)
{
	char big[VAULT_TOKEN_MAX + 2];

	assert_true(vault_token_is_valid("hvs.CAESIJ", 10));
	assert_false(vault_token_is_valid("", 0));
	assert_false(vault_token_is_valid("a b", 3));
	assert_false(vault_token_is_valid("a\nb", 3));
	assert_false(vault_token_is_valid("a\0b", 3));
	assert_false(vault_token_is_valid("\xc3\xa9", 2));
	memset(big, 'a', sizeof(big));
	assert_true(vault_token_is_valid(big, VAULT_TOKEN_MAX));
	assert_false(vault_token_is_valid(big, VAULT_TOKEN_MAX + 1));
}

static void test_time(void **state)
{
	static const struct {
		const char *in;
		int64_t usec;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2018-04-17T11:35:54.466476078-04:00", INT64_C(1523979354466476) },
		{ "2024-02-29T23:59:59+01:00", INT64_C(1709247599000000) },
		{ "2000-01-01T00:00:00.5Z", INT64_C(946684800500000) },
	};
	static const char *const bad[] = {
		"",
		"2018-04-17",
		"2018-04-17T11:35:54",
		"2018-13-17T11:35:54Z",
		"2018-04-17 11:35:54Z",
		"2018-04-17T11:35:54.Z",
		"2018-04-17T11:35:54+0400",
		"2018-04-17T11:35:54Zjunk",
	};
	int64_t t;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(vault_parse_time(good[i].in, &t), 0);
		if (t != good[i].usec)
			fail_msg("%s: got %lld, want %lld", good[i].in, (long long)t,
				 (long long)good[i].usec);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (vault_parse_time(bad[i], &t) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
	char *docs = fixture_body("error-response.json");
	char *empty = fixture_body("error-list-empty-404.json");
	static const struct {
		const char *body;
		const char *want;
	} cases[] = {
		{ "{\"errors\":[\"permission denied\"]}", "permission denied" },
		{ "{\"errors\":[\"1 error occurred:\\n\\t* permission denied\\n\\n\"]}",
		  "permission denied" },
		{ "{\"errors\":[\"2 errors occurred:\\n\\t* permission denied\\n\\t* invalid "
		  "token\\n\\n\"]}",
		  "permission denied; invalid token" },
		{ "{\"errors\":[\"invalid role or secret ID\"]}", "invalid role or secret ID" },
		{ "{\"errors\":[\"bell\\u0007 and\\ttab\\u00e9\"]}", "bell and tab??" },
		{ "{\"errors\":[5]}", "" },
		{ "{\"errors\":\"x\"}", "" },
		{ "<html><body>502 Bad Gateway</body></html>", "" },
		{ "", "" },
	};
	char buf[VAULT_ERROR_MAX + 1], small[8], big[400];
	char longmsg[1024];

	vault_parse_error(docs, strlen(docs), buf, sizeof(buf));
	assert_string_equal(buf, "message");
	vault_parse_error(empty, strlen(empty), buf, sizeof(buf));
	assert_string_equal(buf, "");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		vault_parse_error(cases[i].body, strlen(cases[i].body), buf, sizeof(buf));
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, buf, cases[i].want);
	}
	/* Capped: by the buffer, and by VAULT_ERROR_MAX whatever the buffer. */
	vault_parse_error(cases[0].body, strlen(cases[0].body), small, sizeof(small));
	assert_string_equal(small, "permiss");
	snprintf(longmsg, sizeof(longmsg), "{\"errors\":[\"%0600d\"]}", 7);
	vault_parse_error(longmsg, strlen(longmsg), big, sizeof(big));
	assert_int_equal(strlen(big), VAULT_ERROR_MAX);
	free(docs);
	free(empty);
}

/* ---- SOURCE ---- */

static void test_source(void **state)
{
	static const struct {
		const char *arg;
		const char *env; /* VAULT_ADDR */
		const char *base;
		const char *path;
		bool tls;
	} good[] = {
		{ "https://h:8200/secret", NULL, "https://h:8200", "secret", true },
		{ "https://127.0.0.1:8200/secret/", "https://ignored", "https://127.0.0.1:8200",
		  "secret", true },
		{ "https://vault.example.com/secret/team/app", NULL, "https://vault.example.com",
		  "secret/team/app", true },
		{ "HTTPS://[::1]:8200//kv//", NULL, "HTTPS://[::1]:8200", "kv", true },
		{ "http://127.0.0.1:8200/secret", NULL, "http://127.0.0.1:8200", "secret", false },
		{ "secret", "https://h:8200", "https://h:8200", "secret", true },
		{ "secret/team", "https://h:8200/", "https://h:8200", "secret/team", true },
		{ "/secret/", "https://h:8200/proxy/vault/", "https://h:8200/proxy/vault", "secret",
		  true },
		{ "secret", "http://localhost:8200", "http://localhost:8200", "secret", false },
	};
	static const struct {
		const char *arg;
		const char *env;
		const char *why;
	} bad[] = {
		{ "https://h:8200", NULL, "no MOUNT" },
		{ "https://h:8200/", NULL, "no MOUNT" },
		{ "https:///secret", NULL, "no usable HOST" },
		{ "https://user:pw@h:8200/secret", NULL, "no usable HOST" },
		{ "https://h:8200/secret?x=1", NULL, "no query" },
		{ "https://h:8200/secret#frag", NULL, "no query" },
		{ "https://h:8200/secret/../sys", NULL, "'..' component" },
		{ "https://h:8200/secret//./x", NULL, "'..' component" },
		{ "ftp://h/secret", NULL, "only https://" },
		{ "secret", NULL, "VAULT_ADDR, which is not set" },
		{ "secret", "", "VAULT_ADDR, which is not set" },
		{ "secret", "h:8200", "VAULT_ADDR is not an address" },
		{ "secret", "https://", "VAULT_ADDR is not an address" },
		{ "secret", "https://u@h", "VAULT_ADDR is not an address" },
		{ "secret", "https://h/?x", "VAULT_ADDR is not an address" },
		{ "", "https://h", "no MOUNT" },
		{ "/", "https://h", "no MOUNT" },
		{ "a/../b", "https://h", "'..' component" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct vault_addr a;
		int r = vault_parse_source(good[i].arg, good[i].env, &a, reason, sizeof(reason));

		if (r != 0)
			fail_msg("'%s': %s", good[i].arg, reason);
		assert_string_equal(a.base_url, good[i].base);
		assert_string_equal(a.path, good[i].path);
		assert_int_equal(a.tls, good[i].tls);
		vault_addr_done(&a);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct vault_addr a = { 0 };
		int r = vault_parse_source(bad[i].arg, bad[i].env, &a, reason, sizeof(reason));

		if (r != -EINVAL)
			fail_msg("'%s' (VAULT_ADDR %s): got %d, want -EINVAL", bad[i].arg,
				 bad[i].env ? bad[i].env : "unset", r);
		assert_contains(reason, bad[i].why);
		assert_null(a.base_url);
		/* Credentials in a URL are never repeated. */
		assert_not_contains(reason, "pw@");
	}
}

static void test_no_leaks(void **state)
{
	/* Every test above dropped every secret it made. */
	assert_int_equal(secret_live_count(), 0);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kv2_read_fixture),
		cmocka_unit_test(test_kv2_read_full_envelope),
		cmocka_unit_test(test_kv2_deleted),
		cmocka_unit_test(test_kv2_malformed),
		cmocka_unit_test(test_kv2_unsafe_keys_hidden),
		cmocka_unit_test(test_kv1_read_fixture),
		cmocka_unit_test(test_kv1_malformed),
		cmocka_unit_test(test_list_fixtures),
		cmocka_unit_test(test_list_shapes),
		cmocka_unit_test(test_kv2_metadata),
		cmocka_unit_test(test_mount),
		cmocka_unit_test(test_lookup_self_fixture),
		cmocka_unit_test(test_lookup_self_shapes),
		cmocka_unit_test(test_auth_fixtures),
		cmocka_unit_test(test_auth_malformed),
		cmocka_unit_test(test_token_is_valid),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_source),
		cmocka_unit_test(test_no_leaks),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
