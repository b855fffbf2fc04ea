/*
 * test_doppler.c - the Doppler backend's parsers without a network: the
 * documented download (tests/data/fixtures/doppler) as a table in name
 * order with every value exactly as sent, a JSON value kept as text, names
 * that cannot be files hidden and counted, malformed downloads refused
 * without quoting them, the {"messages": [...]} error body, and SOURCE.
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

#include "backends/doppler_parse.h"
#include "secretfs/backend.h"
#include "secretfs/config.h"
#include "secretfs/secret.h"

#include "example_config.h"
#include "fixture_json.h"

static struct secret *download(const char *body, size_t *hidden, int want)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *doc = NULL;
	int r = doppler_parse_download(body, strlen(body), &doc, hidden, reason, sizeof(reason));

	assert_int_equal(r, want);
	if (r < 0) {
		assert_null(doc);
		assert_true(reason[0]);
		assert_null(strstr(reason, "s3cr3t"));
	}
	return doc;
}

static void assert_entry(const struct secret *doc, size_t i, const char *name, const char *value)
{
	struct secret_entry e;

	assert_true(secret_table_at(doc, i, &e));
	assert_string_equal(e.name, name);
	assert_int_equal(e.valuelen, strlen(value));
	assert_memory_equal(e.value, value, e.valuelen);
}

static void test_documented_download(void **state)
{
	json_t *fx = load_fixture("doppler/secrets-download.json");
	const char *raw = json_string_value(json_object_get(fx, "response_body_raw_as_documented"));
	size_t hidden = 99;
	struct secret *doc = download(raw, &hidden, 0);

	assert_int_equal(hidden, 0);
	assert_int_equal(doc->kind, SECRET_TABLE);
	assert_int_equal(secret_table_count(doc), 4);
	/* In name order, whatever order the store sent. */
	assert_entry(doc, 0, "ALGOLIA", "N9TOPUCTO");
	assert_entry(doc, 1, "DATABASE", "brian@aws.dynamodb.com:9876");
	assert_entry(doc, 2, "STRIPE", "sk_test_9YxLnoLDdvOPn2dfjBVPB");
	assert_entry(doc, 3, "USER", "brian");
	assert_true(secret_is_locked(doc));
	secret_unref(doc);
	json_decref(fx);
}

static void test_values_stay_text_and_unsafe_names_hide(void **state)
{
	size_t hidden = 0;
	struct secret *doc = download("{\"APP_JSON\": \"{\\\"a\\\": 1}\", \"..\": \"x\", "
				      "\"a/b\": \"y\", \"BIN\": \"x\\u0000y\", \"EMPTY\": \"\"}",
				      &hidden, 0);
	struct secret_entry e;

	assert_int_equal(hidden, 2);
	assert_int_equal(secret_table_count(doc), 3);
	assert_entry(doc, 0, "APP_JSON", "{\"a\": 1}");
	assert_true(secret_table_find(doc, "BIN", &e));
	assert_int_equal(e.valuelen, 3);
	assert_memory_equal(e.value, "x\0y", 3);
	assert_entry(doc, 2, "EMPTY", "");
	secret_unref(doc);
}

static void test_malformed_downloads(void **state)
{
	static const char *const bad[] = {
		"",
		"[]",
		"\"s3cr3t\"",
		"{\"A\": \"s3cr3t",
		"{\"A\": 1}",
		"{\"A\": null}",
		"{\"A\": {\"nested\": \"s3cr3t\"}}",
		"{\"A\": \"1\", \"A\": \"s3cr3t\"}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		download(bad[i], NULL, -EBADMSG);
}

static void test_error_bodies(void **state)
{
	json_t *fx = load_fixture("doppler/errors.json");
	char *body = json_dumps(json_object_get(json_object_get(fx, "example"), "body"), 0);
	char msg[64];

	doppler_parse_error(body, strlen(body), msg, sizeof(msg));
	assert_string_equal(msg, "Invalid Auth token");
	free(body);
	json_decref(fx);
	body = "{\"messages\": [\"one\\nline\", 7, \"\", \"two\"], \"success\": false}";
	doppler_parse_error(body, strlen(body), msg, sizeof(msg));
	assert_string_equal(msg, "one line; two");
	doppler_parse_error("<html>", 6, msg, sizeof(msg));
	assert_string_equal(msg, "");
	body = "{\"messages\": [\"a very long message that does not fit in the buffer at all\"]}";
	doppler_parse_error(body, strlen(body), msg, 16);
	assert_int_equal(strlen(msg), 15);
}

static void test_source(void **state)
{
	char reason[BACKEND_REASON_MAX], *p = NULL, *c = NULL;
	static const char *const bad[] = { "shop",	"shop/",  "/prd",      "shop/prd/x",
					   "sh op/prd", "../prd", "shop/prd?x" };

	assert_int_equal(doppler_parse_source("shop/prd_eu-1.x", &p, &c, reason, sizeof(reason)),
			 0);
	assert_string_equal(p, "shop");
	assert_string_equal(c, "prd_eu-1.x");
	free(p);
	free(c);
	assert_int_equal(doppler_parse_source("", &p, &c, reason, sizeof(reason)), 0);
	assert_null(p);
	assert_null(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reason[0] = '\0';
		assert_int_equal(doppler_parse_source(bad[i], &p, &c, reason, sizeof(reason)),
				 -EINVAL);
		assert_non_null(strstr(reason, "doppler:PROJECT/CONFIG"));
	}
}

/* examples/doppler.conf stays loadable; its [doppler] keys are the options' names. */
static void test_example_doppler_file(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	struct config c;

	load_example_config("doppler.conf", &c);
	assert_string_equal(c.source, "doppler:shop/prd");
	assert_null(c.doppler_api_host);
	assert_null(c.doppler_token_file);
	assert_int_equal(
		config_set(&c, "doppler_api_host", "https://api.doppler.com", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "doppler_token_file", "/etc/secretfs/doppler-token", err,
				    sizeof(err)),
			 0);
	assert_string_equal(c.doppler_token_file, "/etc/secretfs/doppler-token");
	config_done(&c);
}

int main(void)
{
	char hint[256];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_documented_download),
		cmocka_unit_test(test_values_stay_text_and_unsafe_names_hide),
		cmocka_unit_test(test_malformed_downloads),
		cmocka_unit_test(test_error_bodies),
		cmocka_unit_test(test_source),
		cmocka_unit_test(test_example_doppler_file),
	};
	/* The download must land in locked memory: give it some. */
	if (secret_heap_init(1 << 20, hint, sizeof(hint)) < 0) {
		fprintf(stderr, "secret_heap_init: %s\n", hint);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
