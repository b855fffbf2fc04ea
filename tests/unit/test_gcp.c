/*
 * test_gcp.c - the Google Secret Manager backend's pieces without a network:
 * CRC-32C against every vector of $SECRETFS_FIXTURES/crc32c (RFC 3720 B.4,
 * the CRC catalogue check value, the Secret Manager docs' payload), in one
 * go and in chunks; the RS256 service-account JWT, verified with the public
 * half of a key made here, with its claims checked and a tampered copy
 * refused; keys that are not RSA private keys refused without being quoted;
 * the response parsers (the documented access answer, checksum mismatches,
 * both base64 alphabets, malformed bodies, pages, tokens, credentials
 * files) and the mapping of secret ids to paths with name_separator.
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
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "backends/crc32c.h"
#include "backends/gcp_jwt.h"
#include "backends/gcp_parse.h"
#include "secretfs/config.h"
#include "secretfs/secret.h"
#include "example_config.h"
#include "fixture_json.h"

static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = strlen(hex) / 2;

	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
	return n;
}

static void test_crc32c_vectors(void **state)
{
	json_t *doc = load_fixture("crc32c/crc32c-vectors.json");
	json_t *vectors = json_object_get(doc, "vectors"), *v;
	unsigned char buf[256];
	size_t i;

	(void)state;
	assert_true(json_array_size(vectors) >= 8);
	json_array_foreach(vectors, i, v)
	{
		size_t n =
			unhex(json_string_value(json_object_get(v, "input_hex")), buf, sizeof(buf));
		uint32_t want = (uint32_t)json_integer_value(json_object_get(v, "crc32c"));
		uint32_t chunked = 0;

		assert_int_equal(n, (size_t)json_integer_value(json_object_get(v, "length")));
		assert_int_equal(crc32c(0, buf, n), want);
		/* The same through the extend form, 7 bytes at a time. */
		for (size_t off = 0; off < n; off += 7)
			chunked = crc32c(chunked, buf + off, n - off < 7 ? n - off : 7);
		assert_int_equal(chunked, want);
	}
	json_decref(doc);
}

static void test_crc32c_documented_payload(void **state)
{
	json_t *doc = load_fixture("gcp/access-secret-version.json");
	json_t *payload = json_object_get(json_object_get(doc, "response_body"), "payload");
	const char *b64 = json_string_value(json_object_get(payload, "data"));
	unsigned char raw[64];
	int n;

	(void)state;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
	assert_true(n > 1);
	/* EVP_DecodeBlock() counts a zero byte for each '=' of padding. */
	for (const char *e = b64 + strlen(b64); e > b64 && e[-1] == '='; e--)
		n--;
	assert_int_equal(n, 7);
	assert_int_equal(
		crc32c(0, raw, (size_t)n),
		strtoul(json_string_value(json_object_get(payload, "dataCrc32c")), NULL, 10));
	assert_int_not_equal(crc32c(0, raw, (size_t)n - 1), 3131222104u);
	json_decref(doc);
}

/* ---- JWT ---- */

static EVP_PKEY *test_key;
static char *test_pem;
static size_t test_pem_len;

static int make_key(void **state)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	(void)state;
	test_key = EVP_RSA_gen(2048);
	assert_non_null(test_key);
	assert_true(PEM_write_bio_PrivateKey(b, test_key, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(b, &p);
	test_pem = malloc((size_t)n);
	memcpy(test_pem, p, (size_t)n);
	test_pem_len = (size_t)n;
	BIO_free(b);
	return 0;
}

static int free_key(void **state)
{
	(void)state;
	EVP_PKEY_free(test_key);
	free(test_pem);
	return 0;
}

/* base64url (no padding) to bytes; returns the length. */
static size_t unb64url(const char *in, size_t len, unsigned char *out)
{
	char tmp[2048];
	size_t n = 0;
	int r;

	assert_true(len + 4 < sizeof(tmp));
	for (size_t i = 0; i < len; i++)
		tmp[n++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (n % 4)
		tmp[n++] = '=';
	tmp[n] = '\0';
	r = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)n);
	assert_true(r >= 0);
	return (size_t)r - (len % 4 == 2 ? 2 : len % 4 == 3 ? 1 : 0);
}

static json_t *part_json(const char *start, size_t len)
{
	unsigned char buf[1024];
	size_t n = unb64url(start, len, buf);
	json_t *j = json_loadb((char *)buf, n, 0, NULL);

	assert_non_null(j);
	return j;
}

static bool verifies(const char *jwt)
{
	const char *dot2 = strrchr(jwt, '.');
	unsigned char sig[1024];
	size_t siglen = unb64url(dot2 + 1, strlen(dot2 + 1), sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, test_key), 1);
	ok = EVP_DigestVerify(md, sig, siglen, (const unsigned char *)jwt, (size_t)(dot2 - jwt));
	EVP_MD_CTX_free(md);
	return ok == 1;
}

static void test_jwt_signs_the_documented_claims(void **state)
{
	char reason[256] = "", *jwt = NULL;
	const char *dot1, *dot2;
	json_t *h, *c;

	(void)state;
	assert_int_equal(gcp_jwt_sign(test_pem, test_pem_len, "kid-123",
				      "sa@p.iam.gserviceaccount.com", GCP_SCOPE,
				      "https://oauth2.googleapis.com/token", 1700000000, &jwt,
				      reason, sizeof(reason)),
			 0);
	dot1 = strchr(jwt, '.');
	dot2 = strrchr(jwt, '.');
	assert_true(dot1 && dot2 > dot1);
	assert_null(strpbrk(jwt, "+/="));
	h = part_json(jwt, (size_t)(dot1 - jwt));
	c = part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "kid-123");
	assert_string_equal(json_string_value(json_object_get(c, "iss")),
			    "sa@p.iam.gserviceaccount.com");
	assert_string_equal(json_string_value(json_object_get(c, "scope")), GCP_SCOPE);
	assert_string_equal(json_string_value(json_object_get(c, "aud")),
			    "https://oauth2.googleapis.com/token");
	assert_int_equal(json_integer_value(json_object_get(c, "iat")), 1700000000);
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), 1700003600);
	assert_true(verifies(jwt));
	/* One changed claim byte and the signature no longer holds. */
	jwt[dot1 - jwt + 5] ^= 1;
	assert_false(verifies(jwt));
	json_decref(h);
	json_decref(c);
	secret_mem_free(jwt);
}

static void test_jwt_refuses_keys_that_are_not_rsa(void **state)
{
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	BIO *b = BIO_new(BIO_s_mem());
	char reason[256] = "", *jwt = NULL, *p, *junk, *body, *end;
	size_t len;
	long n;

	(void)state;
	/*
	 * The key made for this run, its body cut to its first 12 characters:
	 * the markers of a PEM key around something that is not one.
	 */
	body = memchr(test_pem, '\n', test_pem_len) + 1;
	end = memmem(test_pem, test_pem_len, "-----END", 8);
	assert_non_null(end);
	junk = malloc(test_pem_len);
	assert_non_null(junk);
	len = (size_t)(body - test_pem);
	memcpy(junk, test_pem, len);
	memcpy(junk + len, body, 12);
	junk[len + 12] = '\n';
	len += 13;
	memcpy(junk + len, end, test_pem_len - (size_t)(end - test_pem));
	len += test_pem_len - (size_t)(end - test_pem);
	assert_int_equal(gcp_jwt_sign(junk, len, NULL, "a@b", GCP_SCOPE, "aud", 1, &jwt, reason,
				      sizeof(reason)),
			 -EINVAL);
	assert_null(jwt);
	assert_non_null(strstr(reason, "not an unencrypted RSA private key"));
	assert_null(memmem(reason, strlen(reason), body, 12));
	free(junk);
	assert_true(PEM_write_bio_PrivateKey(b, ec, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(b, &p);
	assert_int_equal(gcp_jwt_sign(p, (size_t)n, NULL, "a@b", GCP_SCOPE, "aud", 1, &jwt, reason,
				      sizeof(reason)),
			 -EINVAL);
	BIO_free(b);
	EVP_PKEY_free(ec);
}

static void test_base64url_lengths(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(gcp_base64url("\xfb\xff", 2, out), 3);
	assert_string_equal(out, "-_8");
	assert_int_equal(gcp_base64url("abc", 3, out), 4);
	assert_string_equal(out, "YWJj");
	assert_int_equal(gcp_base64url("", 0, out), 0);
	assert_string_equal(out, "");
}

/* ---- names ---- */

static void test_names_map_both_ways(void **state)
{
	static const struct {
		const char *prefix, *sep, *path, *name; /* name NULL: no such secret id */
	} rows[] = {
		{ "", "__", "prod/db/password", "prod__db__password" },
		{ "", "__", "single", "single" },
		{ "prod", "__", "db", "prod__db" },
		{ "prod/app", "--", "key", "prod--app--key" },
		{ "", NULL, "flat-name_1", "flat-name_1" },
		{ "", NULL, "a/b", NULL },	 /* no separator: no folders */
		{ "", "__", "a__b/c", NULL },	 /* a component holding the separator */
		{ "", "__", "a_/b", NULL },	 /* reads back as a/_b */
		{ "", "__", "has space", NULL }, /* outside [A-Za-z0-9_-] */
		{ "", "__", "dot.name", NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *name = NULL, *back = NULL;
		int r = gcp_name_for_id(rows[i].prefix, rows[i].sep, rows[i].path, &name);

		if (!rows[i].name) {
			assert_int_equal(r, -ENOENT);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(name, rows[i].name);
		assert_int_equal(gcp_id_for_name(rows[i].prefix, rows[i].sep, name, &back), 0);
		assert_non_null(back);
		assert_string_equal(back, rows[i].path);
		free(name);
		free(back);
	}
}

static void test_ids_outside_the_prefix_are_not_shown(void **state)
{
	char *id = (char *)1;

	(void)state;
	assert_int_equal(gcp_id_for_name("prod", "__", "stage__db", &id), 0);
	assert_null(id);
	assert_int_equal(gcp_id_for_name("prod", "__", "production", &id), 0);
	assert_null(id);
	assert_int_equal(gcp_id_for_name("", "__", "a____b", &id), 0); /* a//b */
	assert_null(id);
}

/* ---- answers ---- */

static char *fixture_body(const char *rel)
{
	json_t *doc = load_fixture(rel);
	char *text = json_dumps(json_object_get(doc, "response_body"), JSON_COMPACT);

	json_decref(doc);
	assert_non_null(text);
	return text;
}

static int access_of(const char *body, struct secret **v, struct backend_info *info, char *reason,
		     size_t reasonlen)
{
	*v = NULL;
	return gcp_parse_access(body, strlen(body), v, info, reason, reasonlen);
}

static void test_access_documented_answer(void **state)
{
	char *body = fixture_body("gcp/access-secret-version.json");
	struct backend_info info = { 0 };
	char reason[256] = "";
	struct secret *v;

	(void)state;
	/* The docs' name has placeholders: give it a version number as real answers do. */
	json_t *j = json_loads(body, 0, NULL);
	json_object_set_new(j, "name", json_string("projects/1234/secrets/s/versions/3"));
	free(body);
	body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_int_equal(access_of(body, &v, &info, reason, sizeof(reason)), 0);
	assert_int_equal(v->kind, SECRET_BLOB);
	assert_int_equal(v->len, 7);
	assert_memory_equal(v->data, "seCr3t\n", 7);
	assert_string_equal(info.version, "3");
	secret_unref(v);
	free(body);
}

static void test_access_checks_and_alphabets(void **state)
{
	struct backend_info info = { 0 };
	char reason[256] = "";
	struct secret *v;

	(void)state;
	/* one bit off: EIO, nothing handed back, the value not quoted */
	assert_int_equal(access_of("{\"name\":\"p/1/secrets/s/versions/1\",\"payload\":{\"data\":"
				   "\"c2VDcjN0Cg==\",\"dataCrc32c\":\"3131222105\"}}",
				   &v, &info, reason, sizeof(reason)),
			 -EIO);
	assert_null(v);
	assert_non_null(strstr(reason, "checksum mismatch"));
	assert_null(strstr(reason, "seCr3t"));
	/* no checksum at all is accepted (the field is optional) */
	assert_int_equal(
		access_of("{\"name\":\"x/versions/1\",\"payload\":{\"data\":\"c2VDcjN0Cg\"}}", &v,
			  &info, reason, sizeof(reason)),
		0);
	assert_memory_equal(v->data, "seCr3t\n", 7);
	secret_unref(v);
	/* the URL-safe alphabet: 0xfb 0xff 0xfe */
	assert_int_equal(access_of("{\"name\":\"x/versions/2\",\"payload\":{\"data\":\"-__-\","
				   "\"dataCrc32c\":\"2471155737\"}}",
				   &v, &info, reason, sizeof(reason)),
			 0);
	assert_int_equal(v->len, 3);
	assert_memory_equal(v->data, "\xfb\xff\xfe", 3);
	secret_unref(v);
	/* a JSON object is a directory */
	assert_int_equal(access_of("{\"name\":\"x/versions/4\",\"payload\":{\"data\":"
				   "\"eyJ1Ijoib25lIiwicCI6InR3byJ9\"}}",
				   &v, &info, reason, sizeof(reason)),
			 0);
	assert_int_equal(v->kind, SECRET_TABLE);
	assert_int_equal(secret_table_count(v), 2);
	secret_unref(v);
	/* bad base64 is the store's answer (EIO); a broken body is EBADMSG */
	assert_int_equal(access_of("{\"name\":\"x/versions/1\",\"payload\":{\"data\":\"c2V*\"}}",
				   &v, &info, reason, sizeof(reason)),
			 -EIO);
	assert_int_equal(access_of("{\"name\":\"x/versions/1\",\"payload\":", &v, &info, reason,
				   sizeof(reason)),
			 -EBADMSG);
	assert_int_equal(access_of("{\"name\":\"x/versions/latest\",\"payload\":{}}", &v, &info,
				   reason, sizeof(reason)),
			 -EBADMSG);
}

static int add_id(void *ctx, const char *id)
{
	char *buf = ctx;
	size_t n = strlen(buf);

	snprintf(buf + n, 128 - n, "%s;", id);
	return 0;
}

static void test_list_version_token_credentials(void **state)
{
	static const char page[] =
		"{\"secrets\":[{\"name\":\"projects/1/secrets/a__b\"},"
		"{\"name\":\"projects/1/secrets/bad.id\"}],\"nextPageToken\":\"t1\"}";
	char ids[128] = "", reason[256] = "", version[BACKEND_VERSION_MAX];
	char *next = NULL;
	struct secret *tok = NULL;
	struct gcp_creds c;
	uint64_t exp = 0;
	int enabled = -1;
	static const char user[] = "{\"type\":\"authorized_user\",\"client_id\":\"cid\","
				   "\"client_secret\":\"s3cr3tZq9\"}";

	(void)state;
	assert_int_equal(
		gcp_parse_list(page, strlen(page), add_id, ids, &next, reason, sizeof(reason)), 0);
	assert_string_equal(ids, "a__b;");
	assert_string_equal(next, "t1");
	free(next);
	assert_int_equal(gcp_parse_list("{}", 2, add_id, ids, &next, reason, sizeof(reason)), 0);
	assert_null(next);
	assert_int_equal(gcp_parse_version("{\"name\":\"p/versions/12\",\"state\":\"DISABLED\"}",
					   43, version, &enabled, reason, sizeof(reason)),
			 0);
	assert_string_equal(version, "12");
	assert_int_equal(enabled, 0);
	assert_int_equal(gcp_parse_token("{\"access_token\":\"ya29.abc\",\"expires_in\":3599}", 45,
					 1000000, &tok, &exp, reason, sizeof(reason)),
			 0);
	assert_string_equal((char *)tok->data, "ya29.abc");
	assert_int_equal(exp, 1000000 + UINT64_C(3599000000));
	secret_unref(tok);
	assert_int_equal(gcp_parse_token("{\"access_token\":\"a b\",\"expires_in\":1}", 37, 0, &tok,
					 &exp, reason, sizeof(reason)),
			 -EBADMSG);
	assert_int_equal(gcp_parse_credentials(user, strlen(user), &c, reason, sizeof(reason)),
			 -EINVAL);
	assert_non_null(strstr(reason, "refresh_token"));
	assert_null(strstr(reason, "s3cr3tZq9"));
}

/* examples/gcp.conf stays loadable and says what it documents. */
static void test_example_gcp_file(void **state)
{
	struct config c;

	(void)state;
	load_example_config("gcp.conf", &c);
	assert_string_equal(c.source, "gcp-sm:my-project/prod");
	assert_string_equal(c.name_separator, "__");
	assert_null(c.gcp_endpoint);
	assert_null(c.gcp_credentials);
	assert_int_equal(c.http_max_attempts, 4);
	config_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_crc32c_documented_payload),
		cmocka_unit_test_setup_teardown(test_jwt_signs_the_documented_claims, make_key,
						free_key),
		cmocka_unit_test_setup_teardown(test_jwt_refuses_keys_that_are_not_rsa, make_key,
						free_key),
		cmocka_unit_test(test_base64url_lengths),
		cmocka_unit_test(test_names_map_both_ways),
		cmocka_unit_test(test_ids_outside_the_prefix_are_not_shown),
		cmocka_unit_test(test_access_documented_answer),
		cmocka_unit_test(test_access_checks_and_alphabets),
		cmocka_unit_test(test_list_version_token_credentials),
		cmocka_unit_test(test_example_gcp_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
