/*
 * test_op.c - the 1Password Connect backend's parsers without a network:
 * the documented Item ($SECRETFS_FIXTURES/1password/get-item.json) as a
 * table of LABEL and SECTION/LABEL paths (the field with no value empty,
 * the documented raw text with its trailing commas refused as malformed);
 * fields without a label, without a value, with unsafe names, in unknown
 * sections, and two with one path; summaries; vault lookups with no, one
 * and two matches; the error document; the SOURCE string; the example
 * config.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "backends/op_parse.h"
#include "secretfs/config.h"
#include "secretfs/secret.h"
#include "example_config.h"
#include "fixture_json.h"

/* The value at @name in @t, as a NUL-terminated copy (static buffer), or NULL. */
static const char *field(const struct secret *t, const char *name)
{
	static char buf[256];
	struct secret_entry e;

	if (!secret_table_find(t, name, &e))
		return NULL;
	assert_true(e.valuelen < sizeof(buf));
	memcpy(buf, e.value, e.valuelen);
	buf[e.valuelen] = '\0';
	return buf;
}

static int parse_item(const char *text, struct secret **t, char version[BACKEND_VERSION_MAX],
		      size_t *hidden)
{
	char reason[BACKEND_REASON_MAX] = "";

	return op_parse_item(text, strlen(text), t, version, hidden, reason, sizeof(reason));
}

static void test_documented_item(void **state)
{
	json_t *doc = load_fixture("1password/get-item.json");
	json_t *body = json_object_get(doc, "response_body");
	const char *raw =
		json_string_value(json_object_get(doc, "response_body_raw_as_documented"));
	char version[BACKEND_VERSION_MAX], *text;
	struct secret *t = NULL;
	size_t hidden = 9;

	(void)state;
	json_object_set_new(body, "version", json_integer(7));
	text = json_dumps(body, 0);
	assert_int_equal(parse_item(text, &t, version, &hidden), 0);
	assert_string_equal(version, "7");
	assert_int_equal(hidden, 0);
	assert_int_equal(secret_table_count(t), 6);
	assert_string_equal(field(t, "username"), "wendy");
	assert_string_equal(field(t, "password"), "mjXehR*uCj!aoe!iktt9KMtWb");
	assert_string_equal(field(t, "notesPlain"), ""); /* a label, no value */
	assert_string_equal(field(t, "Example"), "https://example.com");
	assert_string_equal(field(t, "Security Questions/Recovery Key"),
			    "s=^J@GhHP_isYP>LCq?vv8u7T:*wBP.c");
	assert_string_equal(field(t, "Security Questions/Random Text"),
			    "R)D~KZdV!8?51QoCibDUse7=n@wKR_}]");
	assert_null(field(t, "Recovery Key"));
	secret_unref(t);
	free(text);
	/* The docs' own text has trailing commas: malformed, and no value leaks into the reason. */
	{
		char reason[BACKEND_REASON_MAX] = "";

		t = NULL;
		assert_int_equal(op_parse_item(raw, strlen(raw), &t, version, &hidden, reason,
					       sizeof(reason)),
				 -EBADMSG);
		assert_null(t);
		assert_null(strstr(reason, "mjXehR"));
	}
	json_decref(doc);
}

static void test_item_names(void **state)
{
	static const char *item =
		"{\"id\":\"i\",\"version\":2,\"sections\":[{\"id\":\"s\",\"label\":\"S\"},"
		"{\"id\":\"u\",\"label\":\"..\"},{\"id\":\"e\",\"label\":\"\"}],\"fields\":["
		"{\"id\":\"f1\",\"label\":\"a\",\"value\":\"first\"},"
		"{\"id\":\"f2\",\"label\":\"a\",\"value\":\"second\"},"
		"{\"id\":\"f3\",\"value\":\"by-id\"},"
		"{\"id\":\"f4\"},"
		"{\"id\":\"f5\",\"label\":\"\",\"value\":\"\"},"
		"{\"id\":\"f6\",\"label\":\"b\",\"value\":\"in-s\",\"section\":{\"id\":\"s\"}},"
		"{\"id\":\"f7\",\"label\":\"c\",\"value\":\"unsafe-section\",\"section\":{\"id\":"
		"\"u\"}},"
		"{\"id\":\"f8\",\"label\":\"d\",\"value\":\"no-section\",\"section\":{\"id\":"
		"\"zz\"}},"
		"{\"id\":\"f9\",\"label\":\"x/y\",\"value\":\"slash\"},"
		"{\"id\":\"fa\",\"label\":\"n\",\"value\":5},"
		"{\"id\":\"fb\",\"label\":\"e\",\"value\":\"empty-label-section\",\"section\":{"
		"\"id\":\"e\"}}]}";
	char version[BACKEND_VERSION_MAX];
	struct secret *t = NULL;
	size_t hidden = 0;

	(void)state;
	assert_int_equal(parse_item(item, &t, version, &hidden), 0);
	assert_string_equal(version, "2");
	assert_string_equal(field(t, "a"), "first"); /* the first of one path */
	assert_string_equal(field(t, "f3"), "by-id");
	assert_null(field(t, "f4"));
	assert_null(field(t, "f5"));
	assert_string_equal(field(t, "S/b"), "in-s");
	assert_string_equal(field(t, "c"), "unsafe-section");
	assert_string_equal(field(t, "d"), "no-section");
	assert_string_equal(field(t, "e"), "empty-label-section");
	assert_null(field(t, "x/y"));
	assert_null(field(t, "n"));
	assert_int_equal(secret_table_count(t), 6);
	assert_int_equal(hidden, 3); /* the second "a", "x/y", the number */
	secret_unref(t);

	t = NULL;
	assert_int_equal(parse_item("[]", &t, version, &hidden), -EBADMSG);
	assert_int_equal(parse_item("{\"fields\":[]}", &t, version, &hidden), -EBADMSG);
	assert_int_equal(parse_item("{\"id\":\"i\",\"fields\":{}}", &t, version, &hidden),
			 -EBADMSG);
	assert_null(t);
	assert_int_equal(parse_item("{\"id\":\"i\"}", &t, version, &hidden), 0);
	assert_int_equal(secret_table_count(t), 0);
	assert_string_equal(version, "");
	secret_unref(t);
}

struct seen {
	char ids[8][OP_ID_MAX];
	char versions[8][BACKEND_VERSION_MAX];
	size_t n;
};

static int add_summary(void *ctx, const struct op_summary *s)
{
	struct seen *seen = ctx;

	assert_true(seen->n < 8);
	snprintf(seen->ids[seen->n], OP_ID_MAX, "%s", s->id);
	snprintf(seen->versions[seen->n], BACKEND_VERSION_MAX, "%s", s->version);
	seen->n++;
	return 0;
}

static void test_summaries_and_vaults(void **state)
{
	static const char *list = "[{\"id\":\"a1\",\"title\":\"db\",\"version\":3},"
				  "{\"id\":\"a2\",\"title\":\"db\"},{\"title\":\"no id\"},"
				  "{\"id\":\"a3\"},{\"id\":\"has space\",\"title\":\"t\"}]";
	char reason[BACKEND_REASON_MAX], id[OP_ID_MAX];
	struct seen seen = { .n = 0 };

	(void)state;
	assert_int_equal(
		op_parse_summaries(list, strlen(list), add_summary, &seen, reason, sizeof(reason)),
		0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.ids[0], "a1");
	assert_string_equal(seen.versions[0], "3");
	assert_string_equal(seen.versions[1], "");
	assert_int_equal(op_parse_summaries("{}", 2, add_summary, &seen, reason, sizeof(reason)),
			 -EBADMSG);

#define VAULTS(s) s, strlen(s), "Demo", id, reason, sizeof(reason)
	assert_int_equal(op_parse_vaults(VAULTS("[{\"id\":\"v1\",\"name\":\"Demo\"}]")), 0);
	assert_string_equal(id, "v1");
	assert_int_equal(op_parse_vaults(VAULTS("[{\"id\":\"v1\",\"name\":\"demo\"}]")), -ENOENT);
	assert_int_equal(op_parse_vaults(VAULTS("[]")), -ENOENT);
	assert_non_null(strstr(reason, "no vault titled 'Demo'"));
	assert_int_equal(op_parse_vaults(VAULTS("[{\"id\":\"v1\",\"name\":\"Demo\"},"
						"{\"id\":\"v2\",\"name\":\"Demo\"}]")),
			 -EIO);
	assert_non_null(strstr(reason, "v1 and v2"));
	assert_int_equal(op_parse_vaults(VAULTS("{\"id\":\"v1\"}")), -EBADMSG);
#undef VAULTS
	assert_int_equal(op_parse_vault("{\"id\":\"v9\"}", 11, id, reason, sizeof(reason)), 0);
	assert_string_equal(id, "v9");
}

static void test_error_document(void **state)
{
	json_t *doc = load_fixture("1password/errors.json"), *ex;
	char msg[160];
	size_t i;

	(void)state;
	json_array_foreach(json_object_get(doc, "examples"), i, ex)
	{
		char *body = json_dumps(json_object_get(ex, "response_body"), 0);

		op_parse_error(body, strlen(body), msg, sizeof(msg));
		assert_string_equal(msg, json_string_value(json_object_get(
						 json_object_get(ex, "response_body"), "message")));
		free(body);
	}
	{
		static const char *two = "{\"message\":\"one\\ntwo\\u0007\"}";

		op_parse_error(two, strlen(two), msg, sizeof(msg));
	}
	assert_string_equal(msg, "one");
	op_parse_error("not json", 8, msg, sizeof(msg));
	assert_string_equal(msg, "");
	json_decref(doc);
}

static void test_source(void **state)
{
	static const struct {
		const char *arg, *vault, *prefix;
	} ok[] = {
		{ "Prod", "Prod", "" },
		{ "Prod Vault/db", "Prod Vault", "db" },
		{ "ytrfte14kw1uex5txaore1emkz/db/Admin", "ytrfte14kw1uex5txaore1emkz", "db/Admin" },
	};
	static const char *const bad[] = { "",		"/db",	     "Pr\"od", "a\\b",
					   "Prod/../x", "Prod/a//b", "Prod/",  "tab\there" };
	char reason[BACKEND_REASON_MAX], *v, *p;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(op_parse_source(ok[i].arg, &v, &p, reason, sizeof(reason)), 0);
		assert_string_equal(v, ok[i].vault);
		assert_string_equal(p, ok[i].prefix);
		free(v);
		free(p);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reason[0] = '\0';
		assert_int_equal(op_parse_source(bad[i], &v, &p, reason, sizeof(reason)), -EINVAL);
		assert_true(reason[0] != '\0');
	}
	assert_true(op_is_id("ytrfte14kw1uex5txaore1emkz"));
	assert_false(op_is_id("Prod"));
}

/* examples/op-connect.conf stays loadable and says what it documents. */
static void test_example_file(void **state)
{
	struct config c;

	(void)state;
	load_example_config("op-connect.conf", &c);
	assert_string_equal(c.source, "op-connect:Prod");
	assert_string_equal(c.op_connect_host, "https://connect.example:8443");
	assert_null(c.op_token_file);
	config_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_documented_item),
		cmocka_unit_test(test_item_names),
		cmocka_unit_test(test_summaries_and_vaults),
		cmocka_unit_test(test_error_document),
		cmocka_unit_test(test_source),
		cmocka_unit_test(test_example_file),
	};

	if (secret_heap_init(1 << 20, NULL, 0) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
