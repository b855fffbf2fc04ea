/*
 * test_aws.c - the AWS backends' parsers (src/backends/aws_parse.c and
 * aws_creds_parse.c), without a network: every awsJson1_1 error-parsing
 * vector of $SECRETFS_FIXTURES/aws (Smithy's protocol tests), the error ->
 * errno table, the API-reference and botocore examples of GetSecretValue,
 * DescribeSecret, ListSecrets, GetParameter and GetParametersByPath,
 * SecretString objects, strings and SecretBinary, malformed bodies of every
 * kind (each must fail with a clear reason that never quotes the body),
 * SOURCE strings and endpoints, and the credential side: STS's XML, the
 * shared credentials and config files, credential_process command lines
 * and output, instance metadata and container JSON, ISO 8601 expirations
 * and the container URL rules.
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
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>

#include "backends/aws_creds_parse.h"
#include "backends/aws_parse.h"
#include "secretfs/backend.h"
#include "secretfs/config.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"

/* ---- helpers ---- */

static json_t *fixture(const char *name)
{
	const char *dir = getenv("SECRETFS_FIXTURES");
	char path[4096];
	json_error_t je;
	json_t *doc;

	if (!dir)
		dir = "tests/data/fixtures";
	snprintf(path, sizeof(path), "%s/aws/%s", dir, name);
	doc = json_load_file(path, 0, &je);
	if (!doc)
		fail_msg("%s: %s (set SECRETFS_FIXTURES to tests/data/fixtures)", path, je.text);
	return doc;
}

/* The response_body of fixture @name, as compact JSON text (malloc'ed). */
static char *fixture_body(const char *name)
{
	json_t *doc = fixture(name);
	char *text = json_dumps(json_object_get(doc, "response_body"), JSON_COMPACT);

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

static void assert_blob(const struct secret *s, const void *want, size_t len)
{
	assert_int_equal(s->kind, SECRET_BLOB);
	assert_int_equal(s->len, len);
	assert_memory_equal(s->data, want, len);
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

/* ---- errors ---- */

/* Every case of Smithy's awsJson1_1 error-deserialisation tests. */
static void test_error_vectors(void **state)
{
	json_t *doc = fixture("awsjson11-error-parsing-vectors.json");
	json_t *cases = json_object_get(doc, "cases"), *c;
	size_t i;

	assert_true(json_array_size(cases) >= 12);
	json_array_foreach(cases, i, c)
	{
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *want = json_string_value(json_object_get(c, "expected_error_code"));
		json_t *headers = json_object_get(c, "headers"), *members;
		json_t *body = json_object_get(c, "body"), *v;
		const char *hdr = "", *key, *want_msg;
		char code[AWS_CODE_MAX], msg[AWS_MESSAGE_MAX + 1];

		/* Header names are case-insensitive: "X-Amzn-Errortype" is x-amzn-ErrorType. */
		json_object_foreach(headers, key, v)
		{
			if (strcasecmp(key, "x-amzn-errortype") == 0)
				hdr = json_string_value(v);
		}
		aws_parse_error(hdr, json_string_value(body),
				json_is_string(body) ? json_string_length(body) : 0, code,
				sizeof(code), msg, sizeof(msg));
		if (strcmp(code, want) != 0)
			fail_msg("%s: got code '%s', want '%s'", id, code, want);
		members = json_object_get(c, "expected_members");
		want_msg = json_string_value(json_object_get(members, "Message"));
		if (strcmp(msg, want_msg ? want_msg : "") != 0)
			fail_msg("%s: got message '%s', want '%s'", id, msg,
				 want_msg ? want_msg : "");
	}
	json_decref(doc);
}

static void test_error_bodies(void **state)
{
	static const struct {
		const char *header;
		const char *body;
		const char *code;
		const char *msg;
	} cases[] = {
		/* The services' own forms: Secrets Manager's Message, SSM's message. */
		{ "",
		  "{\"__type\":\"ResourceNotFoundException\",\"Message\":\"Secrets Manager can't "
		  "find the specified secret.\"}",
		  "ResourceNotFoundException", "Secrets Manager can't find the specified secret." },
		{ "", "{\"__type\":\"ParameterNotFound\",\"message\":\"\"}", "ParameterNotFound",
		  "" },
		{ "ThrottlingException",
		  "{\"__type\":\"ThrottlingException\",\"message\":\"Rate "
		  "exceeded\"}",
		  "ThrottlingException", "Rate exceeded" },
		/* The header wins over the body. */
		{ "AccessDeniedException:http://internal.amazon.com/coral/x/",
		  "{\"__type\":\"Other\"}", "AccessDeniedException", "" },
		{ "  com.amazon.coral.service#ExpiredTokenException  ", "", "ExpiredTokenException",
		  "" },
		/* A signature error goes on with the canonical request (our session token). */
		{ "",
		  "{\"__type\":\"InvalidSignatureException\",\"message\":\"The request "
		  "signature we calculated does not match.\\n\\nThe Canonical String for this "
		  "request should have been\\n'POST\\n/\\n\\nx-amz-security-token:IQoSECRET'\"}",
		  "InvalidSignatureException",
		  "The request signature we calculated does not match." },
		/* Not JSON, not an object, no code: nothing made up. */
		{ "", "<html>502 Bad Gateway</html>", "", "" },
		{ "", "[\"__type\"]", "", "" },
		{ "", "{\"__type\":5,\"Message\":7}", "", "" },
		{ "", "{\"Message\":\"tab\\there\\u0007bell\\u00e9\"}", "", "tab here bell??" },
	};
	char code[AWS_CODE_MAX], msg[AWS_MESSAGE_MAX + 1], small[6], longbody[2048];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		aws_parse_error(cases[i].header, cases[i].body, strlen(cases[i].body), code,
				sizeof(code), msg, sizeof(msg));
		if (strcmp(code, cases[i].code) != 0 || strcmp(msg, cases[i].msg) != 0)
			fail_msg("case %zu: got '%s'/'%s', want '%s'/'%s'", i, code, msg,
				 cases[i].code, cases[i].msg);
		assert_not_contains(msg, "IQoSECRET");
	}
	/* Capped: by the buffer, and by AWS_MESSAGE_MAX whatever the buffer. */
	aws_parse_error("ThrottlingException", NULL, 0, small, sizeof(small), msg, sizeof(msg));
	assert_string_equal(small, "Throt");
	snprintf(longbody, sizeof(longbody), "{\"__type\":\"X\",\"Message\":\"%01000d\"}", 1);
	aws_parse_error("", longbody, strlen(longbody), code, sizeof(code), msg, sizeof(msg));
	assert_int_equal(strlen(msg), AWS_MESSAGE_MAX);
}

static void test_error_normalize(void **state)
{
	static const struct {
		const char *raw, *want;
	} cases[] = {
		{ "FooError", "FooError" },
		{ "FooError:http://internal.amazon.com/coral/com.amazon.coral.validate/",
		  "FooError" },
		{ "aws.protocoltests.restjson#FooError", "FooError" },
		{ "aws.protocoltests.restjson#FooError:http://internal.amazon.com/coral/",
		  "FooError" },
		{ "a#b#FooError", "FooError" },
		{ "", "" },
		{ "#", "" },
		{ ":uri", "" },
	};
	char code[AWS_CODE_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		aws_error_code_normalize(cases[i].raw, strlen(cases[i].raw), code, sizeof(code));
		if (strcmp(code, cases[i].want) != 0)
			fail_msg("'%s': got '%s', want '%s'", cases[i].raw, code, cases[i].want);
	}
}

static void test_error_errno_table(void **state)
{
	static const struct {
		const char *code;
		long status;
		int err;
		bool throttle, expired;
	} cases[] = {
		{ "ResourceNotFoundException", 400, -ENOENT, false, false },
		{ "ParameterNotFound", 400, -ENOENT, false, false },
		{ "ParameterVersionNotFound", 400, -ENOENT, false, false },
		{ "AccessDeniedException", 400, -EACCES, false, false },
		{ "AccessDenied", 403, -EACCES, false, false },
		/* Credentials AWS rejects are a setup error, not a denial. */
		{ "UnrecognizedClientException", 400, -EIO, false, false },
		{ "InvalidSignatureException", 400, -EIO, false, false },
		{ "SignatureDoesNotMatch", 403, -EIO, false, false },
		{ "ExpiredTokenException", 400, -EACCES, false, true },
		{ "ExpiredToken", 400, -EACCES, false, true },
		{ "ThrottlingException", 400, -EAGAIN, true, false },
		{ "Throttling", 400, -EAGAIN, true, false },
		{ "TooManyRequestsException", 429, -EAGAIN, true, false },
		{ "RequestLimitExceeded", 400, -EAGAIN, true, false },
		{ "InternalServiceError", 500, -EAGAIN, false, false },
		{ "InternalServerError", 500, -EAGAIN, false, false },
		{ "InternalFailure", 500, -EAGAIN, false, false },
		{ "ServiceUnavailable", 503, -EAGAIN, false, false },
		{ "DecryptionFailure", 400, -EIO, false, false },
		{ "InvalidRequestException", 400, -EIO, false, false },
		{ "InvalidParameterException", 400, -EIO, false, false },
		{ "ValidationException", 400, -EIO, false, false },
		/* Unknown codes, or none: the status decides. */
		{ "SomethingNew", 400, -EIO, false, false },
		{ "SomethingNew", 500, -EAGAIN, false, false },
		{ "", 502, -EAGAIN, false, false },
		{ "", 429, -EAGAIN, false, false },
		{ "", 403, -EACCES, false, false },
		{ "", 401, -EACCES, false, false },
		{ "", 404, -ENOENT, false, false },
		{ "", 408, -ETIMEDOUT, false, false },
		{ NULL, 418, -EIO, false, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = aws_error_to_errno(cases[i].code, cases[i].status);

		if (r != cases[i].err)
			fail_msg("%s/%ld: got %d, want %d",
				 cases[i].code ? cases[i].code : "(null)", cases[i].status, r,
				 cases[i].err);
		assert_int_equal(aws_error_is_throttling(cases[i].code), cases[i].throttle);
		assert_int_equal(aws_error_is_expired_token(cases[i].code), cases[i].expired);
		/* Every errno is one backend.h names. */
		assert_true(r == -ENOENT || r == -EACCES || r == -EAGAIN || r == -EIO ||
			    r == -ETIMEDOUT);
	}
}

/* ---- Secrets Manager ---- */

static void test_get_secret_value_fixture(void **state)
{
	char *body = fixture_body("secretsmanager/GetSecretValue.json");
	char reason[BACKEND_REASON_MAX] = "", buf[64];
	struct backend_info info = { .version = "x", .ttl_hint_usec = 7 };
	struct secret *s = NULL;

	assert_int_equal(
		aws_parse_get_secret_value(body, strlen(body), &s, &info, reason, sizeof(reason)),
		0);
	assert_string_equal(info.version, "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1");
	assert_int_equal(info.ttl_hint_usec, 0);
	/* The SecretString "{\n  \"username\":\"david\", ...}\n" is an object: a directory. */
	assert_int_equal(secret_table_count(s), 2);
	assert_string_equal(table_value(s, "username", buf, sizeof(buf)), "david");
	assert_string_equal(table_value(s, "password", buf, sizeof(buf)), "EXAMPLE-PASSWORD");
	secret_unref(s);
	free(body);
}

/* The API reference's raw response: CreatedDate in exponent form, no VersionStages. */
static void test_get_secret_value_raw_example(void **state)
{
	json_t *doc = fixture("secretsmanager/GetSecretValue.json");
	const char *raw = json_string_value(
		json_object_get(json_object_get(doc, "api_reference_example"), "response_raw"));
	const char *body = strstr(raw, "\n\n");
	char reason[BACKEND_REASON_MAX] = "", buf[64];
	struct backend_info info;
	struct secret *s = NULL;

	assert_non_null(body);
	body += 2;
	assert_int_equal(
		aws_parse_get_secret_value(body, strlen(body), &s, &info, reason, sizeof(reason)),
		0);
	assert_string_equal(info.version, "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1");
	assert_string_equal(table_value(s, "username", buf, sizeof(buf)), "david");
	secret_unref(s);
	json_decref(doc);
}

/* BatchGetSecretValue's entries have GetSecretValue's shape; two hold truncated JSON. */
static void test_get_secret_value_batch_entries(void **state)
{
	json_t *doc = fixture("secretsmanager/BatchGetSecretValue.json");
	json_t *values = json_object_get(json_object_get(doc, "response_body"), "SecretValues");
	json_t *e;
	size_t i;

	assert_int_equal(json_array_size(values), 3);
	json_array_foreach(values, i, e)
	{
		char *body = json_dumps(e, JSON_COMPACT);
		const char *str = json_string_value(json_object_get(e, "SecretString"));
		char reason[BACKEND_REASON_MAX] = "", buf[128];
		struct backend_info info;
		struct secret *s = NULL;

		assert_int_equal(aws_parse_get_secret_value(body, strlen(body), &s, &info, reason,
							    sizeof(reason)),
				 0);
		assert_string_equal(info.version,
				    json_string_value(json_object_get(e, "VersionId")));
		if (i == 0) {
			assert_int_equal(secret_table_count(s), 6);
			assert_string_equal(table_value(s, "port", buf, sizeof(buf)), "3306");
			assert_string_equal(table_value(s, "engine", buf, sizeof(buf)), "mysql");
		} else {
			/* "{\"username\":...\"" without its '}': not an object, a file as it is. */
			assert_blob(s, str, strlen(str));
		}
		secret_unref(s);
		free(body);
	}
	json_decref(doc);
}

static void test_get_secret_value_shapes(void **state)
{
	static const struct {
		const char *body;
		const char *want; /* blob bytes; NULL: a table */
		size_t want_len;
		const char *version;
	} cases[] = {
		{ "{\"SecretString\":\"plain-text-pw\",\"VersionId\":\"v-1\"}", "plain-text-pw", 13,
		  "v-1" },
		/* A string that is JSON but not an object is still the string's bytes. */
		{ "{\"SecretString\":\"12345\",\"VersionId\":\"v2\"}", "12345", 5, "v2" },
		{ "{\"SecretString\":\"\\\"quoted\\\"\"}", "\"quoted\"", 8, "" },
		{ "{\"SecretString\":\"[1,2]\"}", "[1,2]", 5, "" },
		{ "{\"SecretString\":\"line1\\nline2\\n\"}", "line1\nline2\n", 12, "" },
		{ "{\"SecretString\":\"\"}", "", 0, "" },
		{ "{\"SecretString\":\"a\\u0000b\"}", "a\0b", 3, "" },
		{ "{\"SecretString\":\"{not json\"}", "{not json", 9, "" },
		/* SecretBinary: base64, decoded exactly. */
		{ "{\"SecretBinary\":\"AAECAwT/\",\"VersionId\":\"b-1\"}", "\0\1\2\3\4\xff", 6,
		  "b-1" },
		{ "{\"SecretBinary\":\"\",\"SecretString\":null}", "", 0, "" },
		{ "{\"SecretBinary\":\"aGk=\",\"SecretString\":null}", "hi", 2, "" },
		/* A VersionId too long for the audit record: the value is still served. */
		{ "{\"SecretString\":\"x\",\"VersionId\":"
		  "\"0123456789012345678901234567890123456789012345678901234567890123\"}",
		  "x", 1, "" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct backend_info info;
		struct secret *s = NULL;
		int r = aws_parse_get_secret_value(cases[i].body, strlen(cases[i].body), &s, &info,
						   reason, sizeof(reason));

		if (r != 0)
			fail_msg("case %zu: %d %s", i, r, reason);
		assert_blob(s, cases[i].want, cases[i].want_len);
		assert_string_equal(info.version, cases[i].version);
		secret_unref(s);
	}
}

static void test_get_secret_value_object(void **state)
{
	static const char body[] =
		"{\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secret:app-AbCdEf\",\"Name\":"
		"\"app\","
		"\"SecretString\":\"{\\\"password\\\":\\\"pa55-word\\\",\\\"port\\\":5432,"
		"\\\"tls\\\":true,\\\"nested\\\":{\\\"a\\\":[1,null]},\\\"..\\\":\\\"hidden\\\","
		"\\\"a/b\\\":\\\"hidden\\\",\\\"empty\\\":\\\"\\\"}\",\"VersionId\":"
		"\"3f1e0b6a-0000-4000-8000-000000000001\",\"VersionStages\":[\"AWSCURRENT\"],"
		"\"CreatedDate\":1.523477145713E9}";
	char reason[BACKEND_REASON_MAX] = "", buf[64];
	struct backend_info info;
	struct secret *s = NULL;

	assert_int_equal(
		aws_parse_get_secret_value(body, strlen(body), &s, &info, reason, sizeof(reason)),
		0);
	assert_string_equal(info.version, "3f1e0b6a-0000-4000-8000-000000000001");
	/* Strings raw, others compact JSON; names that cannot be files are hidden. */
	assert_int_equal(secret_table_count(s), 5);
	assert_string_equal(table_value(s, "password", buf, sizeof(buf)), "pa55-word");
	assert_string_equal(table_value(s, "port", buf, sizeof(buf)), "5432");
	assert_string_equal(table_value(s, "tls", buf, sizeof(buf)), "true");
	assert_string_equal(table_value(s, "nested", buf, sizeof(buf)), "{\"a\":[1,null]}");
	assert_string_equal(table_value(s, "empty", buf, sizeof(buf)), "");
	secret_unref(s);
}

static void test_get_secret_value_malformed(void **state)
{
	static const struct {
		const char *body;
		const char *why;
	} cases[] = {
		{ "", "empty body" },
		{ "{\"SecretString\":\"s3cr3t-leak\"", "malformed JSON" },
		{ "<html>s3cr3t-leak</html>", "malformed JSON" },
		{ "[\"s3cr3t-leak\"]", "not an object" },
		{ "\"s3cr3t-leak\"", "malformed JSON" },
		{ "{\"VersionId\":\"v\"}", "neither SecretString nor SecretBinary" },
		{ "{\"SecretString\":5}", "SecretString is not a string" },
		{ "{\"SecretString\":{\"pw\":\"s3cr3t-leak\"}}", "SecretString is not a string" },
		{ "{\"SecretBinary\":5}", "SecretBinary is not a string" },
		{ "{\"SecretBinary\":\"s3cr3t-leak!!\"}", "SecretBinary is not valid base64" },
		{ "{\"SecretBinary\":\"QUJD RA==\"}", "SecretBinary is not valid base64" },
		{ "{\"SecretString\":\"s3cr3t-leak\",\"VersionId\":5}", "VersionId is not" },
		{ "{\"SecretString\":\"s3cr3t-leak\",\"VersionId\":\"a b\"}", "VersionId is not" },
		{ "{\"SecretString\":\"s3cr3t-leak\",\"VersionId\":\"\"}", "VersionId is not" },
		{ "{\"SecretString\":\"s3cr3t-leak\"}garbage", "malformed JSON" },
		/* A directory whose key would be a bad file name is hidden, not an error... */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct backend_info info = { .version = "untouched" };
		struct secret *s = NULL;
		int r = aws_parse_get_secret_value(cases[i].body, strlen(cases[i].body), &s, &info,
						   reason, sizeof(reason));

		/* A body that is not the document: malformed (transient); bad base64: EIO. */
		int want = strstr(cases[i].why, "base64") ? -EIO : -EBADMSG;

		if (r != want)
			fail_msg("case %zu: got %d, want %d", i, r, want);
		assert_null(s);
		assert_string_equal(info.version, "untouched");
		assert_contains(reason, cases[i].why);
		assert_not_contains(reason, "s3cr3t");
	}
}

static void test_describe_secret(void **state)
{
	char *body = fixture_body("secretsmanager/DescribeSecret.json");
	static const struct {
		const char *version, *stage;
		bool current;
	} cases[] = {
		{ "EXAMPLE2-90ab-cdef-fedc-ba987EXAMPLE", "AWSCURRENT", true },
		{ "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE", "AWSCURRENT", false },
		{ "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE", "AWSPREVIOUS", true },
		{ "EXAMPLE2-90ab-cdef-fedc-ba987EXAMPLE", "AWSPENDING", false },
		{ "no-such-version", "AWSCURRENT", false },
	};
	static const char deleted[] = "{\"Name\":\"x\",\"DeletedDate\":1.7E9,"
				      "\"VersionIdsToStages\":{\"v1\":[\"AWSCURRENT\"]}}";
	static const char *const bad[] = {
		"",
		"nope",
		"[]",
		"{\"VersionIdsToStages\":[]}",
		"{\"VersionIdsToStages\":{\"v1\":\"AWSCURRENT\"}}",
	};
	char reason[BACKEND_REASON_MAX] = "";
	bool cur;

	/* The fixture's quirks (LastAccessedDate as a string) do not matter. */
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		cur = !cases[i].current;
		assert_int_equal(aws_parse_describe_secret(body, strlen(body), cases[i].version,
							   cases[i].stage, &cur, reason,
							   sizeof(reason)),
				 0);
		if (cur != cases[i].current)
			fail_msg("%s/%s: got %d", cases[i].version, cases[i].stage, cur);
	}
	/* Scheduled for deletion: not current, whatever the stages say. */
	cur = true;
	assert_int_equal(aws_parse_describe_secret(deleted, strlen(deleted), "v1", "AWSCURRENT",
						   &cur, reason, sizeof(reason)),
			 0);
	assert_false(cur);
	/* No map at all (a secret without versions): not current. */
	cur = true;
	assert_int_equal(aws_parse_describe_secret("{\"Name\":\"x\"}", 12, "v1", "AWSCURRENT", &cur,
						   reason, sizeof(reason)),
			 0);
	assert_false(cur);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(aws_parse_describe_secret(bad[i], strlen(bad[i]), "v1",
							   "AWSCURRENT", &cur, reason,
							   sizeof(reason)),
				 -EBADMSG);
	free(body);
}

static void test_list_secrets(void **state)
{
	char *body = fixture_body("secretsmanager/ListSecrets.json");
	static const char page[] =
		"{\"SecretList\":[{\"Name\":\"prod/db\"},{\"Name\":\"prod/api/key\"},"
		"{\"Name\":\"dev/db\",\"ARN\":\"arn\"}],\"NextToken\":\"tok/+=1\"}";
	static const char last[] = "{\"SecretList\":[],\"NextToken\":\"\"}";
	static const struct {
		const char *body, *why;
	} bad[] = {
		{ "{}", "SecretList is missing" },
		{ "{\"SecretList\":{}}", "SecretList is not an array" },
		{ "{\"SecretList\":[{\"ARN\":\"a\"}]}", "SecretList[0].Name is missing" },
		{ "{\"SecretList\":[{\"Name\":\"a\"},{\"Name\":7}]}", "SecretList[1].Name" },
		{ "{\"SecretList\":[],\"NextToken\":5}", "NextToken is not a string" },
		{ "{\"SecretList\":[{\"Name\":\"a\\u0000b\"}]}", "malformed JSON" },
		{ "not json", "malformed JSON" },
	};
	char reason[BACKEND_REASON_MAX] = "", *next = (char *)"x";
	struct aws_names names = { 0 };
	struct secret *l = NULL;

	assert_int_equal(aws_parse_list_secrets(body, strlen(body), &names, 100, &next, reason,
						sizeof(reason)),
			 0);
	assert_null(next);
	assert_int_equal(names.n, 2);
	assert_string_equal(names.v[0], "MyTestDatabaseSecret");
	assert_string_equal(names.v[1], "MyTestDatabaseSecret1");
	aws_names_done(&names);

	assert_int_equal(aws_parse_list_secrets(page, strlen(page), &names, 100, &next, reason,
						sizeof(reason)),
			 0);
	assert_string_equal(next, "tok/+=1");
	free(next);
	assert_int_equal(aws_parse_list_secrets(last, strlen(last), &names, 100, &next, reason,
						sizeof(reason)),
			 0);
	assert_null(next); /* "" ends the paging too */
	assert_int_equal(names.n, 3);
	/* The listing of the top, of prod, and of a folder that does not exist. */
	assert_int_equal(aws_listing_from_names(AWS_SM, &names, "", "", &l), 0);
	assert_int_equal(secret_table_count(l), 2);
	assert_int_equal(listing_flags(l, "prod"), BACKEND_LIST_FOLDER);
	assert_int_equal(listing_flags(l, "dev"), BACKEND_LIST_FOLDER);
	secret_unref(l);
	assert_int_equal(aws_listing_from_names(AWS_SM, &names, "", "prod", &l), 0);
	assert_int_equal(secret_table_count(l), 2);
	assert_int_equal(listing_flags(l, "db"), BACKEND_LIST_SECRET);
	assert_int_equal(listing_flags(l, "api"), BACKEND_LIST_FOLDER);
	secret_unref(l);
	/* Under the source prefix "prod": ids lose it. */
	assert_int_equal(aws_listing_from_names(AWS_SM, &names, "prod", "", &l), 0);
	assert_int_equal(secret_table_count(l), 2);
	assert_int_equal(listing_flags(l, "db"), BACKEND_LIST_SECRET);
	secret_unref(l);
	assert_int_equal(aws_listing_from_names(AWS_SM, &names, "", "nope", &l), -ENOENT);
	/* Bounded: the 4th name of at most 3. */
	assert_int_equal(aws_parse_list_secrets(page, strlen(page), &names, 3, &next, reason,
						sizeof(reason)),
			 -EFBIG);
	assert_contains(reason, "more than 3 names");
	aws_names_done(&names);

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = aws_parse_list_secrets(bad[i].body, strlen(bad[i].body), &names, 100, &next,
					       reason, sizeof(reason));

		if (r != -EBADMSG)
			fail_msg("bad %zu: got %d", i, r);
		assert_contains(reason, bad[i].why);
		aws_names_done(&names);
	}
	free(body);
}

/* ---- Parameter Store ---- */

static void test_get_parameter(void **state)
{
	char *body = fixture_body("ssm/GetParameter.json");
	static const struct {
		const char *body;
		const char *want; /* NULL: a table */
		const char *version;
	} cases[] = {
		{ "{\"Parameter\":{\"Name\":\"/a/list\",\"Type\":\"StringList\",\"Value\":"
		  "\"a,b,c\",\"Version\":2}}",
		  "a,b,c", "2" },
		/* A StringList is never a directory, even one that looks like an object. */
		{ "{\"Parameter\":{\"Type\":\"StringList\",\"Value\":\"{\\\"a\\\":1,\\\"b\\\":2}\"}"
		  "}",
		  "{\"a\":1,\"b\":2}", "" },
		{ "{\"Parameter\":{\"Type\":\"SecureString\",\"Value\":\"decrypted-pw\","
		  "\"Version\":"
		  "17}}",
		  "decrypted-pw", "17" },
		{ "{\"Parameter\":{\"Value\":\"no type\"}}", "no type", "" },
		{ "{\"Parameter\":{\"Type\":\"String\",\"Value\":\"{\\\"user\\\":\\\"u1\\\"}\"}}",
		  NULL, "" },
	};
	static const struct {
		const char *body, *why;
	} bad[] = {
		{ "{}", "Parameter is missing" },
		{ "{\"Parameter\":[]}", "Parameter is not an object" },
		{ "{\"Parameter\":{\"Name\":\"x\"}}", "Parameter.Value is missing" },
		{ "{\"Parameter\":{\"Value\":5}}", "Parameter.Value is not a string" },
		{ "{\"Parameter\":{\"Value\":\"s3cr3t-x\",\"Type\":1}}", "Parameter.Type" },
		{ "{\"Parameter\":{\"Value\":\"s3cr3t-x\",\"Version\":\"3\"}}",
		  "Parameter.Version" },
		{ "{\"Parameter\":{\"Value\":\"s3cr3t-x\",\"Version\":-1}}", "Parameter.Version" },
		{ "{\"Parameter\":{\"Value\":\"s3cr3t-x\"", "malformed JSON" },
	};
	char reason[BACKEND_REASON_MAX] = "", buf[64];
	struct backend_info info;
	struct secret *s = NULL;

	assert_int_equal(
		aws_parse_get_parameter(body, strlen(body), &s, &info, reason, sizeof(reason)), 0);
	assert_blob(s, "AYA39c3b3042cd2aEXAMPLE/AKIAIOSFODNN7EXAMPLE/fh983hg9awEXAMPLE==", 64);
	assert_string_equal(info.version, "3");
	secret_unref(s);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		s = NULL;
		if (aws_parse_get_parameter(cases[i].body, strlen(cases[i].body), &s, &info, reason,
					    sizeof(reason)) != 0)
			fail_msg("case %zu: %s", i, reason);
		if (cases[i].want)
			assert_blob(s, cases[i].want, strlen(cases[i].want));
		else
			assert_string_equal(table_value(s, "user", buf, sizeof(buf)), "u1");
		assert_string_equal(info.version, cases[i].version);
		secret_unref(s);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		s = NULL;
		if (aws_parse_get_parameter(bad[i].body, strlen(bad[i].body), &s, &info, reason,
					    sizeof(reason)) != -EBADMSG)
			fail_msg("bad %zu accepted", i);
		assert_null(s);
		assert_contains(reason, bad[i].why);
		assert_not_contains(reason, "s3cr3t");
	}
	free(body);
}

static void test_parameters_by_path(void **state)
{
	char *body = fixture_body("ssm/GetParametersByPath.json");
	static const char empty_page[] = "{\"Parameters\":[],\"NextToken\":\"AAEAA-next\"}";
	static const char more[] =
		"{\"Parameters\":[{\"Name\":\"/Branch312/Dev/sub/deep\",\"Value\":\"x\"},"
		"{\"Name\":\"/Branch312/Prod/a\"},{\"Name\":\"TopLevel\"}]}";
	char reason[BACKEND_REASON_MAX] = "", *next = NULL;
	struct aws_names names = { 0 };
	struct secret *l = NULL;

	assert_int_equal(aws_parse_parameters_by_path(body, strlen(body), &names, 1000, &next,
						      reason, sizeof(reason)),
			 0);
	assert_null(next);
	assert_int_equal(names.n, 5);
	assert_string_equal(names.v[0], "/Branch312/Dev/Engineer1");
	/* An empty page that goes on. */
	assert_int_equal(aws_parse_parameters_by_path(empty_page, strlen(empty_page), &names, 1000,
						      &next, reason, sizeof(reason)),
			 0);
	assert_string_equal(next, "AAEAA-next");
	free(next);
	assert_int_equal(aws_parse_parameters_by_path(more, strlen(more), &names, 1000, &next,
						      reason, sizeof(reason)),
			 0);
	assert_int_equal(names.n, 8);

	assert_int_equal(aws_listing_from_names(AWS_SSM, &names, "Branch312", "Dev", &l), 0);
	assert_int_equal(secret_table_count(l), 6);
	assert_int_equal(listing_flags(l, "Engineer1"), BACKEND_LIST_SECRET);
	assert_int_equal(listing_flags(l, "TeamLead"), BACKEND_LIST_SECRET);
	assert_int_equal(listing_flags(l, "sub"), BACKEND_LIST_FOLDER);
	secret_unref(l);
	/* The whole store: names outside a hierarchy are at the top. */
	assert_int_equal(aws_listing_from_names(AWS_SSM, &names, "", "", &l), 0);
	assert_int_equal(secret_table_count(l), 2);
	assert_int_equal(listing_flags(l, "Branch312"), BACKEND_LIST_FOLDER);
	assert_int_equal(listing_flags(l, "TopLevel"), BACKEND_LIST_SECRET);
	secret_unref(l);
	assert_int_equal(aws_listing_from_names(AWS_SSM, &names, "Branch312", "", &l), 0);
	assert_int_equal(secret_table_count(l), 2);
	secret_unref(l);
	assert_int_equal(aws_listing_from_names(AWS_SSM, &names, "Branch312", "QA", &l), -ENOENT);
	aws_names_done(&names);

	assert_int_equal(
		aws_parse_parameters_by_path("{}", 2, &names, 10, &next, reason, sizeof(reason)),
		-EBADMSG);
	assert_contains(reason, "Parameters is missing");
	free(body);
}

/* ---- requests ---- */

static void test_bodies(void **state)
{
	char *b = NULL;
	size_t n = 0;

	assert_int_equal(aws_body_get_secret_value("prod/db", "AWSCURRENT", &b, &n), 0);
	assert_string_equal(b, "{\"SecretId\":\"prod/db\",\"VersionStage\":\"AWSCURRENT\"}");
	assert_int_equal(n, strlen(b));
	free(b);
	assert_int_equal(aws_body_describe_secret("a\"b", &b, &n), 0);
	assert_string_equal(b, "{\"SecretId\":\"a\\\"b\"}");
	free(b);
	assert_int_equal(aws_body_list_secrets(NULL, NULL, &b, &n), 0);
	assert_string_equal(b, "{\"MaxResults\":100}");
	free(b);
	assert_int_equal(aws_body_list_secrets("prod/", "tok", &b, &n), 0);
	assert_string_equal(b, "{\"MaxResults\":100,\"Filters\":[{\"Key\":\"name\",\"Values\":["
			       "\"prod/\"]}],\"NextToken\":\"tok\"}");
	free(b);
	assert_int_equal(aws_body_get_parameter("/app/db", &b, &n), 0);
	assert_string_equal(b, "{\"Name\":\"/app/db\",\"WithDecryption\":true}");
	free(b);
	assert_int_equal(aws_body_parameters_by_path("/", NULL, &b, &n), 0);
	assert_string_equal(b, "{\"Path\":\"/\",\"Recursive\":true,\"WithDecryption\":false,"
			       "\"MaxResults\":10}");
	free(b);
	assert_int_equal(aws_body_parameters_by_path("/app", "AAEAA", &b, &n), 0);
	assert_contains(b, "\"NextToken\":\"AAEAA\"");
	free(b);
}

static void test_names_for_ids(void **state)
{
	static const struct {
		enum aws_service svc;
		const char *prefix, *id, *want;
	} cases[] = {
		{ AWS_SM, "", "prod/db", "prod/db" },
		{ AWS_SM, "prod", "db", "prod/db" },
		{ AWS_SM, "prod", "", "prod" },
		{ AWS_SM, "", "", "" },
		{ AWS_SSM, "", "app/db", "/app/db" },
		{ AWS_SSM, "app/prod", "db", "/app/prod/db" },
		{ AWS_SSM, "app/prod", "", "/app/prod" },
		{ AWS_SSM, "", "", "/" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *n = aws_name_for_id(cases[i].svc, cases[i].prefix, cases[i].id);

		assert_string_equal(n, cases[i].want);
		free(n);
	}
}

/* ---- SOURCE and endpoints ---- */

static void test_source(void **state)
{
	static const struct {
		enum aws_service svc;
		const char *arg, *env, *region, *prefix;
	} good[] = {
		{ AWS_SM, "us-east-1", NULL, "us-east-1", "" },
		{ AWS_SM, "us-east-1", "eu-west-1", "us-east-1", "" },
		{ AWS_SM, "", "eu-west-1", "eu-west-1", "" },
		{ AWS_SM, "us-gov-west-1/prod/", NULL, "us-gov-west-1", "prod" },
		{ AWS_SM, "/prod/team", "ap-southeast-2", "ap-southeast-2", "prod/team" },
		{ AWS_SM, "cn-north-1/a+b=c.d@e_f-g", NULL, "cn-north-1", "a+b=c.d@e_f-g" },
		{ AWS_SSM, "eu-west-1/app/prod", NULL, "eu-west-1", "app/prod" },
		{ AWS_SSM, "eu-west-1", NULL, "eu-west-1", "" },
		{ AWS_SSM, "eu-west-1/", NULL, "eu-west-1", "" },
		{ AWS_SSM, "/app/prod", "us-east-2", "us-east-2", "app/prod" },
		{ AWS_SSM, "", "us-east-2", "us-east-2", "" },
		{ AWS_SSM, "//app//", "us-east-2", "us-east-2", "app" },
	};
	static const struct {
		enum aws_service svc;
		const char *arg, *env, *why;
	} bad[] = {
		{ AWS_SM, "", NULL, "no region" },
		{ AWS_SM, "/prod", "", "no region" },
		{ AWS_SM, "US-EAST-1", NULL, "not a region name" },
		{ AWS_SM, "us_east_1", NULL, "not a region name" },
		{ AWS_SM, "us-east-", NULL, "not a region name" },
		{ AWS_SM, "1us", NULL, "not a region name" },
		{ AWS_SM, "", "Not A Region", "not a region name" },
		{ AWS_SM, "https://secretsmanager.us-east-1.amazonaws.com", NULL,
		  "AWS_ENDPOINT_URL" },
		{ AWS_SM, "us-east-1/a/../b", NULL, "'..' component" },
		{ AWS_SM, "us-east-1/a//b", NULL, "'..' component" },
		{ AWS_SM, "us-east-1/a b", NULL, "does not allow" },
		{ AWS_SSM, "us-east-1/app+x", NULL, "does not allow" },
		{ AWS_SSM, "us-east-1/app/./x", NULL, "'..' component" },
		{ AWS_SSM, "", NULL, "aws-ssm:REGION[/PATH]" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct aws_source s;

		if (aws_parse_source(good[i].svc, good[i].arg, good[i].env, &s, reason,
				     sizeof(reason)) != 0)
			fail_msg("'%s': %s", good[i].arg, reason);
		assert_string_equal(s.region, good[i].region);
		assert_string_equal(s.prefix, good[i].prefix);
		aws_source_done(&s);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct aws_source s = { 0 };

		if (aws_parse_source(bad[i].svc, bad[i].arg, bad[i].env, &s, reason,
				     sizeof(reason)) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i].arg);
		assert_contains(reason, bad[i].why);
		assert_null(s.region);
	}
}

static void test_endpoints(void **state)
{
	static const struct {
		const char *url, *want_url, *host, *path;
		bool tls;
	} good[] = {
		{ "https://127.0.0.1:8443", "https://127.0.0.1:8443/", "127.0.0.1:8443", "/",
		  true },
		{ "https://127.0.0.1:8443/", "https://127.0.0.1:8443/", "127.0.0.1:8443", "/",
		  true },
		{ "HTTPS://SecretsManager.US-East-1.amazonaws.com:443/",
		  "https://SecretsManager.US-East-1.amazonaws.com:443/",
		  "secretsmanager.us-east-1.amazonaws.com", "/", true },
		{ "http://localstack:4566/proxy/aws//", "http://localstack:4566/proxy/aws/",
		  "localstack:4566", "/proxy/aws/", false },
		{ "http://h:80", "http://h:80/", "h", "/", false },
		{ "https://[::1]:9000", "https://[::1]:9000/", "[::1]:9000", "/", true },
		{ "https://[FD00:EC2::23]", "https://[FD00:EC2::23]/", "[fd00:ec2::23]", "/",
		  true },
	};
	static const char *const bad[] = {
		"ftp://h/",	    "h:443",	      "https://",     "https:///x",
		"https://u:p@h/",   "https://h/?x=1", "https://h/#f", "https://h:0/",
		"https://h:65536/", "https://h:x/",   "https://h:/",  "https://[::1/",
		"https://[]/",	    "https://h]/",    "https://h h/", "https://[::1]x/",
	};
	struct aws_endpoint e;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char reason[BACKEND_REASON_MAX] = "";

		if (aws_parse_endpoint(good[i].url, &e, reason, sizeof(reason)) != 0)
			fail_msg("'%s': %s", good[i].url, reason);
		assert_string_equal(e.url, good[i].want_url);
		assert_string_equal(e.host, good[i].host);
		assert_string_equal(e.path, good[i].path);
		assert_int_equal(e.tls, good[i].tls);
		aws_endpoint_done(&e);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char reason[BACKEND_REASON_MAX] = "";

		e = (struct aws_endpoint){ 0 };
		if (aws_parse_endpoint(bad[i], &e, reason, sizeof(reason)) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		assert_null(e.url);
		assert_not_contains(reason, "u:p");
	}
	assert_int_equal(aws_default_endpoint("secretsmanager", "eu-west-1", &e), 0);
	assert_string_equal(e.url, "https://secretsmanager.eu-west-1.amazonaws.com/");
	assert_string_equal(e.host, "secretsmanager.eu-west-1.amazonaws.com");
	aws_endpoint_done(&e);
	assert_int_equal(aws_default_endpoint("ssm", "cn-north-1", &e), 0);
	assert_string_equal(e.host, "ssm.cn-north-1.amazonaws.com.cn");
	aws_endpoint_done(&e);
}

/* ---- credentials: time ---- */

static void test_time(void **state)
{
	static const struct {
		const char *s;
		int64_t want_sec;
		int64_t usec;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0, 0 },
		{ "2014-10-24T23:00:23Z", 1414191623, 0 },
		{ "2019-11-09T13:34:41.123Z", 1573306481, 123000 },
		{ "2019-11-09T13:34:41+00:00", 1573306481, 0 },
		{ "2019-11-09T15:34:41+02:00", 1573306481, 0 },
		{ "2019-11-09T15:34:41+0200", 1573306481, 0 },
		{ "2019-11-09T15:34:41+02", 1573306481, 0 },
		{ "2019-11-09T08:04:41.5-05:30", 1573306481, 500000 },
		{ "2019-11-09 13:34:41Z", 1573306481, 0 },
		{ "2024-02-29T00:00:00z", 1709164800, 0 },
	};
	static const char *const bad[] = {
		"",
		"2019-11-09",
		"2019-11-09T13:34:41",
		"2019-11-09T13:34:41X",
		"2019-13-09T13:34:41Z",
		"2019-02-30T13:34:41Z",
		"2019-11-09T24:00:00Z",
		"2019-11-09T13:34:41.Z",
		"2019-11-09T13:34:41+2:00",
		"2019-11-09T13:34:41+02:0",
		"2019-11-09T13:34:41Zjunk",
		"1573306481",
	};
	int64_t t;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		if (aws_parse_time(good[i].s, &t) != 0)
			fail_msg("'%s' refused", good[i].s);
		if (t != good[i].want_sec * 1000000 + good[i].usec)
			fail_msg("'%s': got %lld", good[i].s, (long long)t);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (aws_parse_time(bad[i], &t) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(aws_parse_time(NULL, &t), -EINVAL);
}

/* ---- credentials: STS ---- */

/* The AssumeRoleWithWebIdentity example of the STS API reference. */
static const char sts_example[] =
	"<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	"  <AssumeRoleWithWebIdentityResult>\n"
	"    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A"
	"</SubjectFromWebIdentityToken>\n"
	"    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>\n"
	"    <AssumedRoleUser>\n"
	"      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>\n"
	"      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>\n"
	"    </AssumedRoleUser>\n"
	"    <Credentials>\n"
	"      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>\n"
	"      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
	"      <Expiration>2014-10-24T23:00:23Z</Expiration>\n"
	"      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
	"    </Credentials>\n"
	"    <SourceIdentity>SourceIdentityValue</SourceIdentity>\n"
	"    <Provider>www.amazon.com</Provider>\n"
	"  </AssumeRoleWithWebIdentityResult>\n"
	"  <ResponseMetadata>\n"
	"    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>\n"
	"  </ResponseMetadata>\n"
	"</AssumeRoleWithWebIdentityResponse>\n";

static void test_sts_credentials(void **state)
{
	/* Entities, a CDATA section, a comment, a prefix, an XML declaration, attributes. */
	static const char tricky[] =
		"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hello -->\n"
		"<sts:AssumeRoleWithWebIdentityResponse xmlns:sts=\"x\" a='1>2'>"
		"<sts:AssumeRoleWithWebIdentityResult><Credentials>"
		"<AccessKeyId> ASIA&#x41;&#66;C </AccessKeyId>"
		"<SecretAccessKey>a&lt;b&gt;c&amp;d&quot;e&apos;f</SecretAccessKey>"
		"<SessionToken><![CDATA[tok<en>]]><!-- c -->&#x2B;</SessionToken>"
		"<Expiration>2030-01-01T00:00:00.000Z</Expiration>"
		"</Credentials><Empty/></sts:AssumeRoleWithWebIdentityResult>"
		"</sts:AssumeRoleWithWebIdentityResponse>";
	char reason[BACKEND_REASON_MAX] = "";
	struct aws_credentials c = { 0 };

	assert_int_equal(aws_parse_sts_credentials(sts_example, strlen(sts_example), &c, reason,
						   sizeof(reason)),
			 0);
	assert_string_equal(c.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
	assert_string_equal(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
	assert_string_equal(c.session_token, "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE");
	assert_int_equal(c.expiration_usec, UINT64_C(1414191623) * 1000000);
	aws_credentials_wipe(&c);

	assert_int_equal(
		aws_parse_sts_credentials(tricky, strlen(tricky), &c, reason, sizeof(reason)), 0);
	assert_string_equal(c.access_key_id, "ASIAABC");
	assert_string_equal(c.secret_access_key, "a<b>c&d\"e'f");
	assert_string_equal(c.session_token, "tok<en>+");
	assert_int_equal(c.expiration_usec, UINT64_C(1893456000) * 1000000);
	aws_credentials_wipe(&c);
}

static void test_sts_malformed(void **state)
{
	static const struct {
		const char *body, *why;
	} cases[] = {
		{ "", "empty" },
		{ "not xml", "text outside the root" },
		{ "<a><b></a></b>", "malformed XML" },
		{ "<a>", "malformed XML" },
		{ "<a></a><b></b>", "malformed XML" },
		{ "<!DOCTYPE a [<!ENTITY x \"s3cr3t\">]><a>&x;</a>", "DTD" },
		{ "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><"
		  "Credentials>"
		  "<AccessKeyId>&bogus;</AccessKeyId></Credentials></"
		  "AssumeRoleWithWebIdentityResult>"
		  "</AssumeRoleWithWebIdentityResponse>",
		  "text of AccessKeyId" },
		{ "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><"
		  "Credentials>"
		  "<AccessKeyId>ASIAX</AccessKeyId><AccessKeyId>ASIAY</AccessKeyId></Credentials>"
		  "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
		  "appears twice" },
		{ "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><"
		  "Credentials>"
		  "<AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey>"
		  "<SessionToken>t</SessionToken></Credentials></AssumeRoleWithWebIdentityResult>"
		  "</AssumeRoleWithWebIdentityResponse>",
		  "no Expiration" },
		{ "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><"
		  "Credentials>"
		  "<AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey>"
		  "<SessionToken>t</SessionToken><Expiration>soon</Expiration></Credentials>"
		  "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
		  "Expiration is not" },
		{ "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><"
		  "Credentials>"
		  "<AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s3c r3t</SecretAccessKey>"
		  "<SessionToken>t</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>"
		  "</Credentials></AssumeRoleWithWebIdentityResult>"
		  "</AssumeRoleWithWebIdentityResponse>",
		  "SecretAccessKey is not" },
		{ "<ErrorResponse><Error><Code>X</Code></Error></ErrorResponse>",
		  "not an AssumeRoleWithWebIdentityResponse" },
		{ "<a b=\"unclosed></a>", "malformed XML" },
		{ "<a><![CDATA[x</a>", "malformed XML" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct aws_credentials c = { 0 };
		int r = aws_parse_sts_credentials(cases[i].body, strlen(cases[i].body), &c, reason,
						  sizeof(reason));

		if (r != -EIO)
			fail_msg("case %zu: got %d (%s)", i, r, reason);
		assert_null(c.access_key_id);
		assert_contains(reason, cases[i].why);
		assert_not_contains(reason, "s3cr3t");
	}
}

static void test_sts_error(void **state)
{
	static const char err[] =
		"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
		"  <Error>\n    <Type>Sender</Type>\n    <Code>InvalidIdentityToken</Code>\n"
		"    <Message>The ID Token provided is not a valid JWT. (You may see this error if "
		"you sent an Access Token)\nsecond line</Message>\n  </Error>\n"
		"  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n</ErrorResponse>\n";
	char code[AWS_CODE_MAX], msg[AWS_MESSAGE_MAX + 1];

	aws_parse_sts_error(err, strlen(err), code, sizeof(code), msg, sizeof(msg));
	assert_string_equal(code, "InvalidIdentityToken");
	assert_string_equal(msg, "The ID Token provided is not a valid JWT. (You may see this "
				 "error if you sent an Access Token)");
	assert_int_equal(aws_error_to_errno(code, 400), -EACCES);
	aws_parse_sts_error("<html>oops", 10, code, sizeof(code), msg, sizeof(msg));
	assert_string_equal(code, "");
	assert_string_equal(msg, "");
	aws_parse_sts_error(sts_example, strlen(sts_example), code, sizeof(code), msg, sizeof(msg));
	assert_string_equal(code, "");
}

/* ---- credentials: JSON documents ---- */

static void test_json_credentials(void **state)
{
	static const char imds[] = "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : "
				   "\"2024-05-01T11:00:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n"
				   "  \"AccessKeyId\" : \"ASIAIMDS\",\n  \"SecretAccessKey\" : "
				   "\"imds/secret+key\",\n  \"Token\" : \"imds-token==\",\n"
				   "  \"Expiration\" : \"2024-05-01T17:00:00Z\"\n}";
	static const char container[] =
		"{\"AccessKeyId\":\"ASIACONT\",\"Expiration\":\"2024-05-01T12:00:00Z\","
		"\"RoleArn\":\"arn:aws:iam::1:role/r\",\"SecretAccessKey\":\"cont-secret\","
		"\"Token\":\"cont-token\",\"AccountId\":\"1\"}";
	static const char process[] = "{\"Version\": 1, \"AccessKeyId\": \"AKIAPROC\", "
				      "\"SecretAccessKey\": \"proc-secret\"}";
	static const char process_tmp[] =
		"{\"Version\":1,\"AccessKeyId\":\"ASIAPROC\",\"SecretAccessKey\":\"s\","
		"\"SessionToken\":\"t\",\"Expiration\":\"2024-05-01T12:00:00+00:00\"}";
	static const struct {
		enum aws_json_creds kind;
		const char *body, *why;
	} bad[] = {
		{ AWS_JSON_IMDS, "", "an empty answer" },
		{ AWS_JSON_IMDS, "s3cr3t", "malformed JSON" },
		{ AWS_JSON_IMDS, "[]", "not a JSON object" },
		{ AWS_JSON_IMDS,
		  "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":\"A\","
		  "\"SecretAccessKey\":\"s3cr3t\",\"Token\":\"t\",\"Expiration\":"
		  "\"2024-05-01T17:00:00Z\"}",
		  "Code is not Success" },
		{ AWS_JSON_IMDS,
		  "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
		  "\"s3cr3t\",\"Expiration\":\"2024-05-01T17:00:00Z\"}",
		  "no Token" },
		{ AWS_JSON_CONTAINER,
		  "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s3cr3t\","
		  "\"Token\":\"t\"}",
		  "no Expiration" },
		{ AWS_JSON_CONTAINER,
		  "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s3cr3t\","
		  "\"Token\":\"t\",\"Expiration\":\"tomorrow\"}",
		  "Expiration is not" },
		{ AWS_JSON_CONTAINER,
		  "{\"SecretAccessKey\":\"s3cr3t\",\"Token\":\"t\","
		  "\"Expiration\":\"2024-05-01T17:00:00Z\"}",
		  "no AccessKeyId" },
		{ AWS_JSON_CONTAINER, "{\"AccessKeyId\":5,\"SecretAccessKey\":\"s3cr3t\"}",
		  "not a string" },
		{ AWS_JSON_PROCESS, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s3cr3t\"}",
		  "no Version" },
		{ AWS_JSON_PROCESS,
		  "{\"Version\":2,\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
		  "\"s3cr3t\"}",
		  "Version is not 1" },
		{ AWS_JSON_PROCESS, "{\"Version\":\"1\",\"AccessKeyId\":\"A\"}",
		  "Version is not 1" },
		{ AWS_JSON_PROCESS, "{\"Version\":1,\"AccessKeyId\":\"A\"}", "no SecretAccessKey" },
		{ AWS_JSON_PROCESS,
		  "{\"Version\":1,\"AccessKeyId\":\"A B\",\"SecretAccessKey\":"
		  "\"s3cr3t\"}",
		  "AccessKeyId is not" },
		{ AWS_JSON_PROCESS,
		  "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
		  "\"s3cr3t\\n\"}",
		  "SecretAccessKey is not" },
		{ AWS_JSON_PROCESS,
		  "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
		  "\"s3cr3t\",\"SessionToken\":\"\"}",
		  "session token is not" },
	};
	char reason[BACKEND_REASON_MAX] = "";
	struct aws_credentials c = { 0 };

	assert_int_equal(aws_parse_json_credentials(AWS_JSON_IMDS, imds, strlen(imds), &c, reason,
						    sizeof(reason)),
			 0);
	assert_string_equal(c.access_key_id, "ASIAIMDS");
	assert_string_equal(c.secret_access_key, "imds/secret+key");
	assert_string_equal(c.session_token, "imds-token==");
	assert_int_equal(c.expiration_usec, UINT64_C(1714582800) * 1000000);
	aws_credentials_wipe(&c);
	assert_int_equal(aws_parse_json_credentials(AWS_JSON_CONTAINER, container,
						    strlen(container), &c, reason, sizeof(reason)),
			 0);
	assert_string_equal(c.access_key_id, "ASIACONT");
	assert_string_equal(c.session_token, "cont-token");
	aws_credentials_wipe(&c);
	assert_int_equal(aws_parse_json_credentials(AWS_JSON_PROCESS, process, strlen(process), &c,
						    reason, sizeof(reason)),
			 0);
	assert_string_equal(c.access_key_id, "AKIAPROC");
	assert_null(c.session_token);
	assert_int_equal(c.expiration_usec, 0);
	aws_credentials_wipe(&c);
	assert_int_equal(aws_parse_json_credentials(AWS_JSON_PROCESS, process_tmp,
						    strlen(process_tmp), &c, reason,
						    sizeof(reason)),
			 0);
	assert_string_equal(c.session_token, "t");
	assert_int_equal(c.expiration_usec, UINT64_C(1714564800) * 1000000);
	aws_credentials_wipe(&c);

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = aws_parse_json_credentials(bad[i].kind, bad[i].body, strlen(bad[i].body),
						   &c, reason, sizeof(reason));

		if (r != -EIO)
			fail_msg("bad %zu: got %d", i, r);
		assert_null(c.access_key_id);
		assert_contains(reason, bad[i].why);
		assert_not_contains(reason, "s3cr3t");
	}
}

/* ---- credentials: shared files ---- */

static const char credentials_file[] =
	"# a comment\n"
	"; another\n"
	"[default]\n"
	"aws_access_key_id = AKIADEFAULT\n"
	"aws_secret_access_key=default/secret\n"
	"\n"
	"[dev]\r\n"
	"  AWS_ACCESS_KEY_ID   =   AKIADEV   \r\n"
	"aws_secret_access_key: dev:secret=with=equals\r\n"
	"aws_session_token = dev-token\r\n"
	"\t# indented comment\n"
	"[profile dev]\n"
	"aws_access_key_id = AKIANOTDEV\n"
	"[proc]\n"
	"credential_process = /usr/bin/get-creds --profile \"my prof\" # not a comment\n"
	"[dev]\n"
	"region = ap-south-1\n";

static const char config_file[] = "[default]\n"
				  "region = us-west-2\n"
				  "s3 =\n"
				  "    max_concurrent_requests = 20\n"
				  "    region = not-this-one\n"
				  "output = json\n"
				  "\n"
				  "[profile dev]\n"
				  "region=eu-central-1\n"
				  "credential_process=aws-vault exec dev --json\n"
				  "[dev]\n"
				  "region = wrong-section\n"
				  "[profile  \"with space\"]\n"
				  "region = ca-central-1\n"
				  "[profile web]\n"
				  "role_arn = arn:aws:iam::123456789012:role/web\n"
				  "web_identity_token_file = /var/run/token\n"
				  "role_session_name = sess\n"
				  "[profile assume]\n"
				  "role_arn = arn:aws:iam::123456789012:role/a\n"
				  "source_profile = default\n"
				  "[sso-session s]\n"
				  "sso_start_url = https://x\n";

static void test_shared_credentials_file(void **state)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct aws_profile p;

	assert_int_equal(aws_parse_shared_file(credentials_file, strlen(credentials_file), false,
					       "default", &p, reason, sizeof(reason)),
			 0);
	assert_true(p.found);
	assert_string_equal(p.aws_access_key_id, "AKIADEFAULT");
	assert_string_equal(p.aws_secret_access_key, "default/secret");
	assert_null(p.aws_session_token);
	aws_profile_done(&p);

	/* Keys are case-insensitive, ':' works as '=', a section given twice is merged. */
	assert_int_equal(aws_parse_shared_file(credentials_file, strlen(credentials_file), false,
					       "dev", &p, reason, sizeof(reason)),
			 0);
	assert_string_equal(p.aws_access_key_id, "AKIADEV");
	assert_string_equal(p.aws_secret_access_key, "dev:secret=with=equals");
	assert_string_equal(p.aws_session_token, "dev-token");
	assert_string_equal(p.region, "ap-south-1");
	aws_profile_done(&p);

	/* The whole line is the command: '#' starts a comment only at the start of a line. */
	assert_int_equal(aws_parse_shared_file(credentials_file, strlen(credentials_file), false,
					       "proc", &p, reason, sizeof(reason)),
			 0);
	assert_string_equal(p.credential_process,
			    "/usr/bin/get-creds --profile \"my prof\" # not a comment");
	aws_profile_done(&p);

	/* [profile dev] is not the profile "dev" in the credentials file. */
	assert_int_equal(aws_parse_shared_file(credentials_file, strlen(credentials_file), false,
					       "profile dev", &p, reason, sizeof(reason)),
			 0);
	assert_true(p.found);
	assert_string_equal(p.aws_access_key_id, "AKIANOTDEV");
	aws_profile_done(&p);
	assert_int_equal(aws_parse_shared_file(credentials_file, strlen(credentials_file), false,
					       "nope", &p, reason, sizeof(reason)),
			 0);
	assert_false(p.found);
	aws_profile_done(&p);
}

static void test_shared_config_file(void **state)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct aws_profile p;

	assert_int_equal(aws_parse_shared_file(config_file, strlen(config_file), true, "default",
					       &p, reason, sizeof(reason)),
			 0);
	assert_true(p.found);
	/* The nested "s3 = ..." block's region is not the profile's. */
	assert_string_equal(p.region, "us-west-2");
	aws_profile_done(&p);

	/* [profile dev] in the config file; [dev] there is not a profile. */
	assert_int_equal(aws_parse_shared_file(config_file, strlen(config_file), true, "dev", &p,
					       reason, sizeof(reason)),
			 0);
	assert_string_equal(p.region, "eu-central-1");
	assert_string_equal(p.credential_process, "aws-vault exec dev --json");
	aws_profile_done(&p);
	assert_int_equal(aws_parse_shared_file(config_file, strlen(config_file), true, "with space",
					       &p, reason, sizeof(reason)),
			 0);
	assert_string_equal(p.region, "ca-central-1");
	aws_profile_done(&p);
	assert_int_equal(aws_parse_shared_file(config_file, strlen(config_file), true, "web", &p,
					       reason, sizeof(reason)),
			 0);
	assert_string_equal(p.role_arn, "arn:aws:iam::123456789012:role/web");
	assert_string_equal(p.web_identity_token_file, "/var/run/token");
	assert_string_equal(p.role_session_name, "sess");
	aws_profile_done(&p);
	assert_int_equal(aws_parse_shared_file(config_file, strlen(config_file), true, "assume", &p,
					       reason, sizeof(reason)),
			 0);
	assert_string_equal(p.source_profile, "default");
	aws_profile_done(&p);
	/* An sso-session section is no profile. */
	assert_int_equal(aws_parse_shared_file(config_file, strlen(config_file), true, "s", &p,
					       reason, sizeof(reason)),
			 0);
	assert_false(p.found);
	aws_profile_done(&p);
}

static void test_shared_file_errors(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
		{ "aws_access_key_id = AKIA\n", "line 1: a setting before the first [section]" },
		{ "[default]\njust-a-word-s3cr3t\n", "line 2: expected [section]" },
		{ "[default]\n= s3cr3t\n", "line 2: expected [section]" },
		{ "[default\nx = 1\n", "line 1: a section header" },
		{ "# c\n\n[]\n", "line 3: a section header" },
	};
	char reason[BACKEND_REASON_MAX] = "";
	struct aws_profile p = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (aws_parse_shared_file(bad[i].text, strlen(bad[i].text), false, "default", &p,
					  reason, sizeof(reason)) != -EINVAL)
			fail_msg("bad %zu accepted", i);
		assert_contains(reason, bad[i].why);
		assert_not_contains(reason, "s3cr3t");
		assert_null(p.aws_access_key_id);
	}
	/* An empty file, and one without a newline at the end. */
	assert_int_equal(aws_parse_shared_file("", 0, false, "default", &p, reason, sizeof(reason)),
			 0);
	assert_false(p.found);
	assert_int_equal(aws_parse_shared_file("[default]\nregion=x", 18, true, "default", &p,
					       reason, sizeof(reason)),
			 0);
	assert_string_equal(p.region, "x");
	aws_profile_done(&p);
}

static void test_shell_split(void **state)
{
	static const struct {
		const char *cmd;
		const char *want[6];
	} good[] = {
		{ "/bin/echo", { "/bin/echo" } },
		{ "  aws-vault   exec\tdev --json  ", { "aws-vault", "exec", "dev", "--json" } },
		{ "cmd 'single $HOME *' \"double \\\" \\\\ \\x\"",
		  { "cmd", "single $HOME *", "double \" \\ \\x" } },
		{ "a\\ b c\\'d", { "a b", "c'd" } },
		{ "x''y \"\" ''", { "xy", "", "" } },
		{ "pre\"mid dle\"post", { "premid dlepost" } },
		{ "echo # not a comment", { "echo", "#", "not", "a", "comment" } },
	};
	static const char *const bad[] = { "", "   ", "'unclosed", "\"unclosed \\\"",
					   "trailing\\" };
	char reason[BACKEND_REASON_MAX] = "";
	char **argv;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		size_t n = 0;

		if (aws_shell_split(good[i].cmd, &argv, reason, sizeof(reason)) != 0)
			fail_msg("'%s': %s", good[i].cmd, reason);
		for (; good[i].want[n]; n++) {
			if (!argv[n] || strcmp(argv[n], good[i].want[n]) != 0)
				fail_msg("'%s' word %zu: got '%s', want '%s'", good[i].cmd, n,
					 argv[n] ? argv[n] : "(end)", good[i].want[n]);
		}
		assert_null(argv[n]);
		aws_argv_free(argv);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		argv = NULL;
		if (aws_shell_split(bad[i], &argv, reason, sizeof(reason)) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_null(argv);
	}
}

/* ---- credentials: container URLs ---- */

static void test_container_url(void **state)
{
	static const struct {
		const char *rel, *full, *want;
	} good[] = {
		{ "/v2/credentials/abc", NULL, "http://169.254.170.2/v2/credentials/abc" },
		{ "/v2/credentials/abc", "http://ignored/",
		  "http://169.254.170.2/v2/credentials/abc" },
		{ NULL, "http://127.0.0.1:8080/creds", "http://127.0.0.1:8080/creds" },
		{ "", "http://127.3.4.5/creds", "http://127.3.4.5/creds" },
		{ NULL, "http://localhost/creds", "http://localhost/creds" },
		{ NULL, "https://LOCALHOST:443/creds", "https://LOCALHOST:443/creds" },
		{ NULL, "http://169.254.170.2/creds", "http://169.254.170.2/creds" },
		{ NULL, "http://169.254.170.23/v1/credentials",
		  "http://169.254.170.23/v1/credentials" },
		{ NULL, "http://[fd00:ec2::23]/v1/credentials",
		  "http://[fd00:ec2::23]/v1/credentials" },
		{ NULL, "http://[::1]:9/c?x=1", "http://[::1]:9/c?x=1" },
		{ NULL, "HTTP://[::1]", "HTTP://[::1]" },
		{ NULL, "http://localhost:65535?x", "http://localhost:65535?x" },
	};
	static const struct {
		const char *rel, *full, *why;
	} bad[] = {
		{ "v2/no-slash", NULL, "RELATIVE_URI is not a path" },
		{ NULL, NULL, "no container credentials URI" },
		{ NULL, "http://169.254.169.254/creds", "unsupported host '169.254.169.254'" },
		{ NULL, "http://example.com/creds", "unsupported host 'example.com'" },
		{ NULL, "https://10.0.0.1/creds", "unsupported host" },
		{ NULL, "http://127.0.0.1.evil.com/", "unsupported host" },
		{ NULL, "http://user:pw@127.0.0.1/", "without user information" },
		{ NULL, "ftp://127.0.0.1/", "not an http://" },
		{ NULL, "http://[fd00:ec2::24]/", "unsupported host" },
		{ NULL, "http://[::1/", "broken IPv6" },
		/* Found by fuzz_aws_creds: what follows the host was not looked at. */
		{ NULL, "http://[::1]evil.example/", "broken IPv6" },
		{ NULL, "hTtp://[::1]\005meR", "not an http://" },
		{ NULL, "http://127.0.0.1/\005x", "not an http://" },
		{ "/v2/\x7f", NULL, "RELATIVE_URI is not a path" },
		{ NULL, "http://127.0.0.1:80x/", "bad port" },
		{ NULL, "http://[::1]:/", "bad port" },
		{ NULL, "http://localhost:65536/", "bad port" },
	};
	char reason[BACKEND_REASON_MAX] = "", *url;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		if (aws_container_url(good[i].rel, good[i].full, &url, reason, sizeof(reason)) != 0)
			fail_msg("case %zu: %s", i, reason);
		assert_string_equal(url, good[i].want);
		free(url);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		url = NULL;
		if (aws_container_url(bad[i].rel, bad[i].full, &url, reason, sizeof(reason)) !=
		    -EINVAL)
			fail_msg("bad %zu accepted", i);
		assert_null(url);
		assert_contains(reason, bad[i].why);
		assert_not_contains(reason, "pw@");
	}
}

static void test_token_is_valid(void **state)
{
	assert_true(aws_token_is_valid("AKIAIOSFODNN7EXAMPLE", 20, AWS_KEY_ID_MAX));
	assert_true(aws_token_is_valid("a/b+c=", 6, 6));
	assert_false(aws_token_is_valid("a/b+c=", 6, 5));
	assert_false(aws_token_is_valid("", 0, 10));
	assert_false(aws_token_is_valid(NULL, 0, 10));
	assert_false(aws_token_is_valid("a b", 3, 10));
	assert_false(aws_token_is_valid("a\nb", 3, 10));
	assert_false(aws_token_is_valid("a\xc3\xa9", 3, 10));
}

/* ---- settings ---- */

/* The [aws] settings, and examples/aws.conf stays loadable and says what it documents. */
static void test_settings(void **state)
{
	const char *dir = getenv("SECRETFS_TESTDATA");
	char path[4096], err[CONFIG_ERR_MAX] = "";
	struct config c;

	config_init(&c);
	assert_null(c.aws_profile);
	assert_null(c.aws_version_stage);
	assert_int_equal(c.aws_list_ttl_usec, 300 * USEC_PER_SEC);
	assert_int_equal(config_set(&c, "aws_profile", "team", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "aws_version_stage", "AWSPENDING", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "aws_list_ttl", "90s", err, sizeof(err)), 0);
	assert_string_equal(c.aws_profile, "team");
	assert_string_equal(c.aws_version_stage, "AWSPENDING");
	assert_int_equal(c.aws_list_ttl_usec, 90 * USEC_PER_SEC);
	assert_int_equal(config_set(&c, "aws_list_ttl", "soon", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_set(&c, "aws_profile", "", err, sizeof(err)), -EINVAL);
	config_done(&c);

	if (!dir) {
		print_message("skipped: SECRETFS_TESTDATA is not set (make check-unit sets it)\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/../../examples/aws.conf", dir);
	config_init(&c);
	if (config_load(&c, path, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.source, "aws-sm:eu-west-1/prod");
	assert_string_equal(c.aws_version_stage, "AWSCURRENT");
	assert_int_equal(c.aws_list_ttl_usec, 300 * USEC_PER_SEC);
	assert_null(c.aws_profile);
	assert_false(c.http_insecure);
	config_done(&c);
}

static void test_no_leaks(void **state)
{
	/* Every test above dropped every secret it made. */
	assert_int_equal(secret_live_count(), 0);
}

/* ListSecretVersionIds: ids with their stages and dates; a version without stages is deprecated. */
static void test_list_secret_versions(void **state)
{
	static const char body[] =
		"{\"Versions\":[{\"VersionId\":\"v-new\",\"VersionStages\":[\"AWSCURRENT\","
		"\"AWSPENDING\"],\"CreatedDate\":1767225600.25},{\"VersionId\":\"v-old\"}],"
		"\"Name\":\"rot\"}";
	static const char *const bad[] = { "{}", "{\"Versions\":[{}]}",
					   "{\"Versions\":[{\"VersionId\":\"a\","
					   "\"VersionStages\":[1]}]}" };
	char reason[BACKEND_REASON_MAX];
	json_t *list = NULL, *e;

	(void)state;
	assert_int_equal(aws_parse_list_secret_versions(body, strlen(body), &list, reason,
							sizeof(reason)),
			 0);
	assert_int_equal(json_array_size(list), 2);
	e = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(e, "id")), "v-new");
	assert_string_equal(json_string_value(json_object_get(e, "state")), "enabled");
	assert_string_equal(json_string_value(json_object_get(e, "created")),
			    "2026-01-01T00:00:00Z");
	assert_int_equal(json_array_size(json_object_get(e, "labels")), 2);
	e = json_array_get(list, 1);
	assert_string_equal(json_string_value(json_object_get(e, "state")), "deprecated");
	assert_null(json_object_get(e, "created"));
	json_decref(list);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		list = NULL;
		assert_int_equal(aws_parse_list_secret_versions(bad[i], strlen(bad[i]), &list,
								reason, sizeof(reason)),
				 -EBADMSG);
		assert_null(list);
	}
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_secret_versions),
		cmocka_unit_test(test_error_vectors),
		cmocka_unit_test(test_error_bodies),
		cmocka_unit_test(test_error_normalize),
		cmocka_unit_test(test_error_errno_table),
		cmocka_unit_test(test_get_secret_value_fixture),
		cmocka_unit_test(test_get_secret_value_raw_example),
		cmocka_unit_test(test_get_secret_value_batch_entries),
		cmocka_unit_test(test_get_secret_value_shapes),
		cmocka_unit_test(test_get_secret_value_object),
		cmocka_unit_test(test_get_secret_value_malformed),
		cmocka_unit_test(test_describe_secret),
		cmocka_unit_test(test_list_secrets),
		cmocka_unit_test(test_get_parameter),
		cmocka_unit_test(test_parameters_by_path),
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_names_for_ids),
		cmocka_unit_test(test_source),
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_sts_credentials),
		cmocka_unit_test(test_sts_malformed),
		cmocka_unit_test(test_sts_error),
		cmocka_unit_test(test_json_credentials),
		cmocka_unit_test(test_shared_credentials_file),
		cmocka_unit_test(test_shared_config_file),
		cmocka_unit_test(test_shared_file_errors),
		cmocka_unit_test(test_shell_split),
		cmocka_unit_test(test_container_url),
		cmocka_unit_test(test_token_is_valid),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_no_leaks),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
