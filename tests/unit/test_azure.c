/*
 * test_azure.c - the Azure Key Vault backend's parsers (src/backends/
 * azure_parse.c), without a network: the GetSecret and GetSecrets examples
 * of $SECRETFS_FIXTURES/azure (azure-rest-api-specs) and the recorded
 * errors, SOURCE strings, the name <-> id mapping with and without a
 * name_separator, PKCS#12 values, JSON-object values, nextLink on and off
 * the vault's host, token answers of the v2.0 endpoint and of IMDS, and
 * malformed bodies (each fails with a reason that never quotes the body).
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

#include "backends/azure_parse.h"
#include "backends/kit.h"
#include "secretfs/backend.h"
#include "secretfs/config.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"
#include "example_config.h"

#define BASE "https://myvault.vault.azure.net"

/* The response_body of fixture @name, as compact JSON text (malloc'ed). */
static char *fixture_body(const char *name)
{
	const char *dir = getenv("SECRETFS_FIXTURES");
	char path[4096], *text;
	json_error_t je;
	json_t *doc;

	snprintf(path, sizeof(path), "%s/azure/%s", dir ? dir : "tests/data/fixtures", name);
	doc = json_load_file(path, 0, &je);
	if (!doc)
		fail_msg("%s: %s (set SECRETFS_FIXTURES to tests/data/fixtures)", path, je.text);
	text = json_dumps(json_object_get(doc, "response_body"), JSON_COMPACT);
	assert_non_null(text);
	json_decref(doc);
	return text;
}

static int parse_secret(const char *body, struct secret **v, struct backend_info *info,
			char *reason)
{
	*v = NULL;
	reason[0] = '\0';
	return azure_parse_secret(body, strlen(body), v, info, reason, BACKEND_REASON_MAX);
}

static void assert_blob(const struct secret *s, const void *want, size_t len)
{
	assert_non_null(s);
	assert_int_equal(s->kind, SECRET_BLOB);
	assert_int_equal(s->len, len);
	assert_memory_equal(s->data, want, len);
}

static void test_source(void **state)
{
	static const char *const bad[] = {
		"",
		"ab",				  /* too short */
		"a-very-long-vault-name-past-24", /* too long */
		"1vault",			  /* not a letter first */
		"my--vault",			  /* a double dash */
		"vault-",			  /* a dash last */
		"my_vault",
		"https://",
		"https://u:p@host",
		"https://host/path",
		"https://host?x=1",
		"https://host#f",
		"https://ho st",
		"ftp://host",
	};
	struct azure_source s;
	char reason[BACKEND_REASON_MAX];

	(void)state;
	assert_int_equal(azure_parse_source("myvault", &s, reason, sizeof(reason)), 0);
	assert_string_equal(s.base_url, "https://myvault.vault.azure.net");
	assert_true(s.tls);
	azure_source_done(&s);
	assert_int_equal(azure_parse_source("https://127.0.0.1:8443/", &s, reason, sizeof(reason)),
			 0);
	assert_string_equal(s.base_url, "https://127.0.0.1:8443");
	azure_source_done(&s);
	assert_int_equal(azure_parse_source("http://kv.internal", &s, reason, sizeof(reason)), 0);
	assert_false(s.tls);
	azure_source_done(&s);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		reason[0] = '\0';
		assert_int_equal(azure_parse_source(bad[i], &s, reason, sizeof(reason)), -EINVAL);
		assert_true(reason[0]);
	}
}

static void test_names(void **state)
{
	static const struct {
		const char *name, *sep, *id; /* id NULL: not shown */
	} table[] = {
		{ "db-password", NULL, "db-password" },
		{ "prod--db--password", "--", "prod/db/password" },
		{ "prod--db--password", NULL, "prod--db--password" },
		{ "a---b", "--", "a/-b" },
		{ "x", "x", NULL }, /* "/" alone */
		{ "--a", "--", NULL },
		{ "a--", "--", NULL },
		{ "a----b", "--", NULL }, /* an empty component */
		{ "under_score", NULL, NULL },
		{ "dot.dot", NULL, NULL },
		{ "", NULL, NULL },
	};
	char *id, *name;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
		int r = azure_name_to_id(table[i].name, table[i].sep, &id);

		if (!table[i].id) {
			assert_int_equal(r, -EINVAL);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(id, table[i].id);
		/* And back: the id names exactly that secret. */
		assert_int_equal(azure_id_to_name(id, table[i].sep, &name), 0);
		assert_string_equal(name, table[i].name);
		free(id);
		free(name);
	}
	/* Ids that no Key Vault name stands for are not found without asking. */
	assert_int_equal(azure_id_to_name("prod/db", NULL, &name), -ENOENT);
	assert_int_equal(azure_id_to_name("a_b", NULL, &name), -ENOENT);
	assert_int_equal(azure_id_to_name("a-/b", "--", &name), -ENOENT); /* would read a/-b */
	assert_int_equal(azure_id_to_name("../x", "--", &name), -ENOENT);
	{
		char longid[200];

		memset(longid, 'a', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = '\0';
		assert_int_equal(azure_id_to_name(longid, NULL, &name), -ENOENT);
	}
	assert_true(azure_separator_is_valid("--"));
	assert_true(azure_separator_is_valid("x"));
	assert_false(azure_separator_is_valid(""));
	assert_false(azure_separator_is_valid("__"));
	assert_false(azure_separator_is_valid("/"));
	assert_false(azure_separator_is_valid("---------"));
}

static void test_secret_fixture(void **state)
{
	char *body = fixture_body("get-secret.json"), reason[BACKEND_REASON_MAX];
	struct backend_info info;
	struct secret *v;

	(void)state;
	assert_int_equal(parse_secret(body, &v, &info, reason), 0);
	assert_blob(v, "mysecretvalue", 13);
	assert_string_equal(info.version, "4387e9f3d6e14c459867679a90fd0f79");
	secret_unref(v);
	free(body);
}

static void test_secret_values(void **state)
{
	char reason[BACKEND_REASON_MAX];
	struct backend_info info;
	struct secret_entry e;
	struct secret *v;

	(void)state;
	/* A JSON object is a directory of its keys. */
	assert_int_equal(parse_secret("{\"value\":\"{\\\"user\\\":\\\"u1\\\",\\\"port\\\":5432}\","
				      "\"id\":\"" BASE "/secrets/db/v1\"}",
				      &v, &info, reason),
			 0);
	assert_int_equal(v->kind, SECRET_TABLE);
	assert_true(secret_table_find(v, "user", &e));
	assert_memory_equal(e.value, "u1", 2);
	assert_true(secret_table_find(v, "port", &e));
	assert_memory_equal(e.value, "5432", 4);
	secret_unref(v);
	/* Other JSON, and text that only starts like an object, stay text. */
	assert_int_equal(parse_secret("{\"value\":\"[1,2]\",\"id\":\"" BASE "/secrets/a/v\"}", &v,
				      &info, reason),
			 0);
	assert_blob(v, "[1,2]", 5);
	secret_unref(v);
	assert_int_equal(parse_secret("{\"value\":\"{not json\",\"id\":\"" BASE "/secrets/a/v\"}",
				      &v, &info, reason),
			 0);
	assert_blob(v, "{not json", 9);
	secret_unref(v);
	/* PKCS#12: the raw bytes of the base64, whatever they hold. */
	assert_int_equal(parse_secret("{\"value\":\"AAECAw==\",\"contentType\":\"application/"
				      "x-pkcs12\",\"id\":\"" BASE "/secrets/c/abc\"}",
				      &v, &info, reason),
			 0);
	assert_blob(v, "\0\1\2\3", 4);
	assert_string_equal(info.version, "abc");
	secret_unref(v);
	/* The same text without the content type is served as text. */
	assert_int_equal(parse_secret("{\"value\":\"AAECAw==\",\"contentType\":\"text/plain\","
				      "\"id\":\"" BASE "/secrets/c/abc\"}",
				      &v, &info, reason),
			 0);
	assert_blob(v, "AAECAw==", 8);
	secret_unref(v);
	/* Bad base64 under PKCS#12: the store's answer cannot be shown. */
	assert_int_equal(parse_secret("{\"value\":\"s3cr3t!!\",\"contentType\":\"application/"
				      "x-pkcs12\",\"id\":\"" BASE "/secrets/c/abc\"}",
				      &v, &info, reason),
			 -EIO);
	assert_null(v);
	assert_null(strstr(reason, "s3cr3t"));
}

static void test_secret_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"s3cr3t",
		"[\"s3cr3t\"]",
		"{\"id\":\"" BASE "/secrets/a/v\"}",		 /* no value */
		"{\"value\":7,\"id\":\"" BASE "/secrets/a/v\"}", /* not a string */
		"{\"value\":\"s3cr3t\"}",			 /* no id */
		"{\"value\":\"s3cr3t\",\"id\":\"noslash\"}",
		"{\"value\":\"s3cr3t\",\"id\":\"" BASE "/secrets/a/\"}", /* no version */
		"{\"value\":\"s3cr3t\",\"id\":\"" BASE "/secrets/a/v.1\"}",
		"{\"value\":\"s3cr3t\",\"id\":\"" BASE "/secrets/a/v\",\"contentType\":1}",
		"{\"value\":\"s3cr3t\",\"value\":\"x\",\"id\":\"" BASE "/secrets/a/v\"}",
	};
	char reason[BACKEND_REASON_MAX];
	struct backend_info info;
	struct secret *v;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(parse_secret(bad[i], &v, &info, reason), -EBADMSG);
		assert_null(v);
		assert_true(reason[0]);
		assert_null(strstr(reason, "s3cr3t"));
	}
}

static void test_list_fixture_and_paging(void **state)
{
	char *body = fixture_body("list-secrets.json"), reason[BACKEND_REASON_MAX];
	struct azure_page pg;

	(void)state;
	/* The example's nextLink spells out :443 on the same host. */
	assert_int_equal(azure_parse_list(body, strlen(body), BASE, &pg, reason, sizeof(reason)),
			 0);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.names[0], "listsecrettest0");
	assert_non_null(pg.next_link);
	assert_non_null(strstr(pg.next_link, "$skiptoken="));
	azure_page_done(&pg);
	/* Anywhere else, it is refused: it would get our token. */
	assert_int_equal(azure_parse_list(body, strlen(body), "https://other.vault.azure.net", &pg,
					  reason, sizeof(reason)),
			 -EIO);
	assert_non_null(strstr(reason, "nextLink"));
	free(body);
}

static void test_list_items(void **state)
{
	static const char body[] =
		"{\"value\":[{\"id\":\"" BASE "/secrets/a\",\"attributes\":{\"enabled\":true}},"
		"{\"id\":\"" BASE "/secrets/off\",\"attributes\":{\"enabled\":false}},"
		"{\"id\":\"" BASE "/secrets/b--c\"},"
		"{\"id\":\"" BASE "/secrets/bad_name\"}],\"nextLink\":null}";
	static const char *const bad[] = {
		"{}",
		"{\"value\":{}}",
		"{\"value\":[7]}",
		"{\"value\":[{\"id\":\"" BASE "/keys/a\"}]}",
		"{\"value\":[{\"id\":\"" BASE "/secrets/a/version\"}]}",
		"{\"value\":[],\"nextLink\":7}",
	};
	char reason[BACKEND_REASON_MAX];
	struct azure_page pg;

	(void)state;
	assert_int_equal(azure_parse_list(body, strlen(body), BASE, &pg, reason, sizeof(reason)),
			 0);
	/* A disabled secret cannot be read, and bad_name cannot be a Key Vault name. */
	assert_int_equal(pg.n, 2);
	assert_string_equal(pg.names[0], "a");
	assert_string_equal(pg.names[1], "b--c");
	assert_null(pg.next_link);
	azure_page_done(&pg);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		reason[0] = '\0';
		assert_int_equal(
			azure_parse_list(bad[i], strlen(bad[i]), BASE, &pg, reason, sizeof(reason)),
			-EBADMSG);
		assert_true(reason[0]);
	}
}

static void test_tokens(void **state)
{
	static const char *const bad[] = {
		"{}",
		"{\"access_token\":\"\",\"expires_in\":3599}",
		"{\"access_token\":\"Zq9x en\",\"expires_in\":3599}",
		"{\"access_token\":\"Zq9x\"}",
		"{\"access_token\":\"Zq9x\",\"expires_in\":0}",
		"{\"access_token\":\"Zq9x\",\"expires_in\":\"soon\"}",
		"{\"access_token\":\"Zq9x\",\"expires_in\":-5}",
		"not json",
	};
	char reason[BACKEND_REASON_MAX], *tok;
	uint64_t life;
	size_t n;

	(void)state;
	/* The v2.0 endpoint sends a number, IMDS a string. */
	{
		static const char v2[] = "{\"token_type\":\"Bearer\",\"expires_in\":3599,"
					 "\"access_token\":\"eyJ0.a-b_c.d\"}";

		assert_int_equal(
			azure_parse_token(v2, strlen(v2), &tok, &n, &life, reason, sizeof(reason)),
			0);
	}
	assert_string_equal(tok, "eyJ0.a-b_c.d");
	assert_int_equal(n, 12);
	assert_int_equal(life, 3599 * USEC_PER_SEC);
	wipe_free(tok, n + 1);
	{
		static const char imds[] =
			"{\"access_token\":\"t1\",\"expires_in\":\"86399\","
			"\"expires_on\":\"1700000000\",\"token_type\":\"Bearer\"}";

		assert_int_equal(azure_parse_token(imds, strlen(imds), &tok, &n, &life, reason,
						   sizeof(reason)),
				 0);
		assert_int_equal(life, 86399 * USEC_PER_SEC);
		wipe_free(tok, n + 1);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		tok = NULL;
		assert_int_equal(azure_parse_token(bad[i], strlen(bad[i]), &tok, &n, &life, reason,
						   sizeof(reason)),
				 -EBADMSG);
		assert_null(tok);
		assert_null(strstr(reason, "Zq9x"));
	}
}

static void test_errors(void **state)
{
	static const char aad[] = "{\"error\":\"invalid_client\",\"error_description\":"
				  "\"AADSTS7000215: Invalid client secret provided.\\r\\nTrace ID: "
				  "x\",\"error_codes\":[7000215]}";
	char code[KIT_ERROR_CODE_MAX], msg[KIT_ERROR_MESSAGE_MAX];
	json_t *doc;
	const char *dir = getenv("SECRETFS_FIXTURES");
	char path[4096], *text;
	json_t *rec;
	size_t i;

	(void)state;
	azure_parse_token_error(aad, strlen(aad), code, sizeof(code), msg, sizeof(msg));
	assert_string_equal(code, "invalid_client");
	assert_string_equal(msg, "AADSTS7000215: Invalid client secret provided.");
	azure_parse_token_error("nope", 4, code, sizeof(code), msg, sizeof(msg));
	assert_string_equal(code, "");
	assert_string_equal(msg, "");
	/* Key Vault's recorded errors through the kit's reader, as azure.c reads them. */
	snprintf(path, sizeof(path), "%s/azure/errors.json", dir ? dir : "tests/data/fixtures");
	doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "recorded_responses"), i, rec)
	{
		text = json_dumps(json_object_get(rec, "response_body"), JSON_COMPACT);
		kit_parse_json_error(text, strlen(text), "code", code, sizeof(code), msg,
				     sizeof(msg));
		assert_string_equal(code, i == 0 ? "Unauthorized" : "SecretNotFound");
		assert_true(msg[0]);
		free(text);
	}
	json_decref(doc);
}

/* examples/azure.conf stays loadable and says what it documents. */
static void test_example_file(void **state)
{
	struct config c;

	(void)state;
	load_example_config("azure.conf", &c);
	assert_string_equal(c.source, "azure-kv:contoso-prod");
	assert_string_equal(c.name_separator, "--");
	assert_true(azure_separator_is_valid(c.name_separator));
	config_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_source),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_secret_fixture),
		cmocka_unit_test(test_secret_values),
		cmocka_unit_test(test_secret_malformed),
		cmocka_unit_test(test_list_fixture_and_paging),
		cmocka_unit_test(test_list_items),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_example_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
