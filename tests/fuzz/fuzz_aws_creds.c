/*
 * fuzz_aws_creds.c - the AWS credential providers' parsers on arbitrary
 * bytes.  The first byte picks the parser, the rest is its input:
 *
 *   0  the shared credentials file, profile "default"
 *   1  the shared config file, profile "dev"
 *   2  STS's XML answer (AssumeRoleWithWebIdentity)
 *   3  STS's XML error
 *   4  instance metadata (IMDS) JSON      7  an ISO 8601 expiration
 *   5  container endpoint JSON            8  a credential_process command line
 *   6  credential_process JSON            9  container credential URLs
 *
 * Credentials that come back are printable ASCII of bounded length; every
 * string is wiped and freed (a leak fails the run); an error hands back
 * nothing and a terminated reason.
 */
#include <errno.h>
#include <strings.h>

#include "backends/aws_creds_parse.h"
#include "fuzz.h"
#include "secretfs/util.h"

#define T "fuzz_aws_creds"

static const char *input; /* this run's input, for fuzz_no_quote() */

static void check_creds(int r, struct aws_credentials *c, const char *reason)
{
	fuzz_check(fuzz_text_ok(reason, 256), T, "a reason unterminated");
	fuzz_no_quote(input, reason, T);
	if (r < 0) {
		fuzz_check(!c->access_key_id && !c->secret_access_key && !c->session_token, T,
			   "credentials came back with an error");
		return;
	}
	fuzz_check(c->access_key_id && c->secret_access_key, T, "credentials without a key");
	fuzz_check(aws_token_is_valid(c->access_key_id, strlen(c->access_key_id), AWS_KEY_ID_MAX),
		   T, "a key id that is not a token");
	fuzz_check(aws_token_is_valid(c->secret_access_key, strlen(c->secret_access_key),
				      AWS_SECRET_KEY_MAX),
		   T, "a secret key that is not a token");
	fuzz_check(!c->session_token ||
			   aws_token_is_valid(c->session_token, strlen(c->session_token),
					      AWS_SESSION_MAX),
		   T, "a session token that is not a token");
	aws_credentials_wipe(c);
}

static void shared_file(const char *s, size_t len, bool config)
{
	char reason[256] = "";
	struct aws_profile p = { 0 };
	int r = aws_parse_shared_file(s, len, config, config ? "dev" : "default", &p, reason,
				      sizeof(reason));

	fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T, "a reason unterminated");
	if (r < 0)
		fuzz_check(r == -EINVAL || r == -ENOMEM, T, "a shared file error not EINVAL");
	aws_profile_done(&p);
}

static void split(const char *s)
{
	char reason[256] = "";
	char **argv = NULL;
	size_t n = 0;
	int r = aws_shell_split(s, &argv, reason, sizeof(reason));

	if (r < 0) {
		fuzz_check(argv == NULL, T, "an argv came back with an error");
		return;
	}
	fuzz_check(argv && argv[0], T, "an empty argv");
	for (; argv[n]; n++)
		fuzz_check(strlen(argv[n]) <= strlen(s), T, "a word longer than the command");
	fuzz_check(n <= strlen(s), T, "more words than bytes");
	aws_argv_free(argv);
}

static void container(const char *s)
{
	const char *nl = strchr(s, '\n');
	char reason[256] = "", *url = NULL, *rel;
	int r;

	/* The first line as the relative URI (if any), the rest as the full one. */
	rel = nl ? strndup(s, (size_t)(nl - s)) : NULL;
	r = aws_container_url(rel, nl ? nl + 1 : s, &url, reason, sizeof(reason));
	if (r >= 0) {
		const char *host, *after;

		fuzz_check(url && strncasecmp(url, "http", 4) == 0, T, "a container URL not http");
		for (const char *p = url; *p; p++)
			fuzz_check((unsigned char)*p > 0x20 && *p != 0x7f && *p != '#', T,
				   "a container URL with a blank, a control character or '#'");
		/* The host checked is the host curl will use: a port, a path or a query after it.
		 */
		host = strstr(url, "://");
		if (host && host[3] == '[') {
			after = strchr(host, ']');
			fuzz_check(after && strchr(":/?", after[1]), T,
				   "a container URL with something after its IPv6 host");
		}
		free(url);
	} else {
		fuzz_check(url == NULL && fuzz_text_ok(reason, sizeof(reason)), T,
			   "a container URL error");
	}
	free(rel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum aws_json_creds kinds[] = { AWS_JSON_IMDS, AWS_JSON_CONTAINER,
						     AWS_JSON_PROCESS };
	char reason[256] = "", code[96], msg[256];
	struct aws_credentials c = { 0 };
	int64_t usec;
	size_t len;
	char *s;
	int r;

	s = fuzz_selected_input(data, size, &len);
	if (!s)
		return 0;
	input = s;
	switch (data[0] % 10) {
	case 0:
	case 1:
		shared_file(s, len, data[0] % 10 == 1);
		break;
	case 2:
		r = aws_parse_sts_credentials(s, len, &c, reason, sizeof(reason));
		check_creds(r, &c, reason);
		break;
	case 3:
		aws_parse_sts_error(s, len, code, sizeof(code), msg, sizeof(msg));
		fuzz_check(fuzz_text_ok(code, sizeof(code)) && fuzz_text_ok(msg, sizeof(msg)), T,
			   "an STS error unterminated");
		for (const char *p = msg; *p; p++)
			fuzz_check(*p >= 0x20 && *p < 0x7f, T, "an STS message not one clean line");
		break;
	case 4:
	case 5:
	case 6:
		r = aws_parse_json_credentials(kinds[data[0] % 10 - 4], s, len, &c, reason,
					       sizeof(reason));
		check_creds(r, &c, reason);
		break;
	case 7:
		/* A plain UTC time from 1970 on reads back as the same text. */
		if (aws_parse_time(s, &usec) == 0 && usec >= 0 && strlen(s) == 20 && s[10] == 'T' &&
		    s[19] == 'Z' && strcmp(s + 17, "60Z") != 0)
			fuzz_check(format_rfc3339((uint64_t)usec, code, sizeof(code)) == 0 &&
					   strcmp(code, s) == 0,
				   T, "a time that does not read back: a date out of its month");
		break;
	case 8:
		split(s);
		break;
	default:
		container(s);
		break;
	}
	free(s);
	return 0;
}
