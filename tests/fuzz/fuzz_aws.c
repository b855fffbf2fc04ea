/*
 * fuzz_aws.c - every parser of what Secrets Manager and Parameter Store (or
 * whoever answers in their place) send, on arbitrary bytes.  The first byte
 * picks the parser, the rest is its input:
 *
 *   0  GetSecretValue               5  an error: body, no x-amzn-ErrorType
 *   1  DescribeSecret (v1, AWSCURRENT),  6  an error: first line the header, the rest the body
 *      then ListSecretVersionIds
 *   2  ListSecrets, then the listing    7  the SOURCE string, aws-sm and aws-ssm
 *   3  GetParameter                 8  an endpoint URL
 *   4  GetParametersByPath, then the listing
 *
 * A success hands back a well-formed secret, a listing of safe names, a
 * bounded NextToken; an error hands back nothing, an errno of backend.h's
 * set and a terminated reason; an error code and message are one clean line.
 */
#include <errno.h>

#include "backends/aws_parse.h"
#include "fuzz.h"
#include "secretfs/namespace.h"

#define T	  "fuzz_aws"
#define MAX_NAMES 1000

static const char *input; /* this run's body, for fuzz_no_quote() */

static void check_error(int r, const char *reason)
{
	fuzz_parse_error_ok(input, r, reason, E2BIG, T);
}

static void check_value(int r, struct secret *v, const struct backend_info *info,
			const char *reason)
{
	if (r < 0) {
		fuzz_check(v == NULL, T, "a value came back with an error");
		check_error(r, reason);
		return;
	}
	fuzz_secret_ok(v, T);
	fuzz_check(fuzz_text_ok(info->version, sizeof(info->version)), T, "a version unterminated");
	secret_unref(v);
}

static void check_listing(enum aws_service svc, const struct aws_names *names, const char *prefix,
			  const char *folder)
{
	struct secret *l = NULL;
	struct secret_entry e;
	int r = aws_listing_from_names(svc, names, prefix, folder, &l);

	if (r < 0) {
		fuzz_check(l == NULL && (r == -ENOENT || r == -ENOMEM), T,
			   "a listing error not ENOENT");
		return;
	}
	fuzz_secret_ok(l, T);
	for (size_t i = 0; secret_table_at(l, i, &e); i++)
		fuzz_check(ns_name_is_safe(e.name, e.namelen), T, "an unsafe name listed");
	secret_unref(l);
}

static void names(enum aws_service svc, const char *s, size_t len)
{
	char reason[BACKEND_REASON_MAX] = "", *next = NULL;
	struct aws_names l = { 0 };
	int r;

	if (svc == AWS_SM)
		r = aws_parse_list_secrets(s, len, &l, MAX_NAMES, &next, reason, sizeof(reason));
	else
		r = aws_parse_parameters_by_path(s, len, &l, MAX_NAMES, &next, reason,
						 sizeof(reason));
	if (r < 0) {
		check_error(r, reason);
	} else {
		fuzz_check(l.n <= MAX_NAMES, T, "more names than the bound");
		fuzz_check(!next || (*next && strlen(next) <= AWS_NEXT_TOKEN_MAX), T,
			   "a NextToken empty or too long");
		check_listing(svc, &l, "", "");
		check_listing(svc, &l, svc == AWS_SM ? "prod" : "app/prod", "");
		if (l.n > 0 && !strchr(l.v[0], '\n'))
			check_listing(svc, &l, "", l.v[0] + (svc == AWS_SSM && l.v[0][0] == '/'));
	}
	free(next);
	aws_names_done(&l);
}

static void clean_line(const char *s, size_t max, const char *what)
{
	fuzz_check(strlen(s) <= max, T, what);
	for (; *s; s++)
		fuzz_check(*s >= 0x20 && *s < 0x7f, T, what);
}

static void error(const char *s, size_t len, bool with_header)
{
	char code[AWS_CODE_MAX], msg[AWS_MESSAGE_MAX + 1], hdr[128] = "";
	const char *body = s;

	if (with_header) {
		size_t hl = strcspn(s, "\n");

		if (hl >= sizeof(hdr))
			hl = sizeof(hdr) - 1;
		memcpy(hdr, s, hl);
		hdr[hl] = '\0';
		body = s + strcspn(s, "\n");
		if (*body)
			body++;
		len -= (size_t)(body - s);
	}
	aws_parse_error(hdr, body, len, code, sizeof(code), msg, sizeof(msg));
	clean_line(code, AWS_CODE_MAX - 1, "an error code not one clean line");
	clean_line(msg, AWS_MESSAGE_MAX, "an error message not one clean line");
	(void)aws_error_to_errno(code, 400);
	(void)aws_error_is_throttling(code);
	(void)aws_error_is_expired_token(code);
}

static void source(const char *s)
{
	for (int svc = AWS_SM; svc <= AWS_SSM; svc++) {
		char reason[BACKEND_REASON_MAX] = "";
		struct aws_source src = { 0 };
		int r = aws_parse_source(svc, s, "us-east-1", &src, reason, sizeof(reason));

		if (r < 0) {
			fuzz_check(r == -EINVAL || r == -ENOMEM, T, "a SOURCE error not EINVAL");
			fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T,
				   "a reason unterminated");
			continue;
		}
		fuzz_check(src.region && *src.region && src.prefix, T, "a SOURCE without a region");
		fuzz_check(!*src.prefix || (src.prefix[0] != '/' &&
					    src.prefix[strlen(src.prefix) - 1] != '/'),
			   T, "a prefix with an outer '/'");
		aws_source_done(&src);
	}
}

static void endpoint(const char *s)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct aws_endpoint e = { 0 };
	int r = aws_parse_endpoint(s, &e, reason, sizeof(reason));

	if (r < 0) {
		fuzz_check(r == -EINVAL || r == -ENOMEM, T, "an endpoint error not EINVAL");
		return;
	}
	fuzz_check(e.url && e.host && *e.host && e.path && e.path[0] == '/', T,
		   "an endpoint without a host or a path");
	fuzz_check(e.path[strlen(e.path) - 1] == '/', T, "an endpoint path without a final '/'");
	for (const char *p = e.host; *p; p++)
		fuzz_check(*p > 0x20 && *p < 0x7f && !(*p >= 'A' && *p <= 'Z'), T,
			   "a Host header that is not lowercase printable");
	aws_endpoint_done(&e);
}

/* ListSecretVersionIds: entries with an id, a state and labels, never anything else. */
static void versions(const char *s, size_t len)
{
	json_t *list = NULL;
	char reason[BACKEND_REASON_MAX];
	int r;

	r = aws_parse_list_secret_versions(s, len, &list, reason, sizeof(reason));
	if (r < 0) {
		fuzz_check(list == NULL, T, "a version list with an error");
		check_error(r, reason);
		return;
	}
	fuzz_version_list_ok(list, T);
	json_decref(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct backend_info info = { 0 };
	struct secret *v = NULL;
	bool current = false;
	size_t len;
	char *s;
	int r;

	s = fuzz_selected_input(data, size, &len);
	if (!s)
		return 0;
	input = s;
	switch (data[0] % 9) {
	case 0:
		r = aws_parse_get_secret_value(s, len, &v, &info, reason, sizeof(reason));
		check_value(r, v, &info, reason);
		break;
	case 1:
		r = aws_parse_describe_secret(s, len, "v1", "AWSCURRENT", &current, reason,
					      sizeof(reason));
		if (r < 0)
			check_error(r, reason);
		versions(s, len);
		break;
	case 2:
		names(AWS_SM, s, len);
		break;
	case 3:
		r = aws_parse_get_parameter(s, len, &v, &info, reason, sizeof(reason));
		check_value(r, v, &info, reason);
		break;
	case 4:
		names(AWS_SSM, s, len);
		break;
	case 5:
	case 6:
		error(s, len, data[0] % 9 == 6);
		break;
	case 7:
		source(s);
		break;
	default:
		endpoint(s);
		break;
	}
	free(s);
	return 0;
}
