/*
 * fuzz_gcp.c - every parser of what Google Secret Manager (or whoever
 * answers in its place) sends, on arbitrary bytes.  The first byte picks
 * the parser, the rest is the input:
 *
 *   0  versions/latest:access      3  a token answer (token URI, metadata)
 *   1  versions/latest (metadata)  4  a credentials file
 *   2  secrets (list)              5  names: the input as a secret id and as a path
 *
 * A value handed back is well-formed and its checksum was checked (a
 * payload whose CRC32C does not match never comes back); a version is
 * digits; listed ids are secret ids; a token is printable; names map back
 * and forth; an error hands back nothing, an errno of backend.h's set and
 * a terminated reason that never quotes the input.
 */
#include <errno.h>

#include "backends/crc32c.h"
#include "backends/gcp_parse.h"
#include "fuzz.h"
#include "secretfs/namespace.h"

#define T "fuzz_gcp"

static const char *input;

static void check_error(int r, const char *reason)
{
	fuzz_check(fuzz_text_ok(reason, BACKEND_REASON_MAX), T, "a reason unterminated");
	fuzz_parse_error_ok(input, r, reason, 0, T);
}

static int count_id(void *ctx, const char *id)
{
	size_t n = strlen(id);

	fuzz_check(n >= 1 && n <= GCP_SECRET_ID_MAX &&
			   strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				      "0123456789_-") == n,
		   T, "a listed id that is not a secret id");
	(*(size_t *)ctx)++;
	return 0;
}

static void names(const char *s)
{
	char *name = NULL, *back = NULL;
	int r = gcp_name_for_id("", "__", s, &name);

	if (r == 0) {
		fuzz_check(strlen(name) <= GCP_SECRET_ID_MAX, T, "a name too long");
		fuzz_check(gcp_id_for_name("", "__", name, &back) == 0 && back &&
				   strcmp(back, s) == 0,
			   T, "a path that does not map back");
		free(back);
		free(name);
	} else {
		fuzz_check(r == -ENOENT || r == -ENOMEM, T, "a name error not ENOENT");
	}
	r = gcp_id_for_name("pre", "--", s, &back);
	fuzz_check(r == 0 || r == -ENOMEM, T, "an id error not ENOMEM");
	if (back)
		fuzz_check(ns_id_is_safe(back), T, "an unsafe path from an id");
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[BACKEND_REASON_MAX] = "", version[BACKEND_VERSION_MAX] = "";
	struct backend_info info = { 0 };
	struct gcp_creds creds = { 0 };
	struct secret *v = NULL;
	uint64_t expires = 0;
	char *s, *next = NULL;
	size_t len, n = 0;
	int r, enabled = 0;

	s = fuzz_selected_input(data, size, &len);
	if (!s)
		return 0;
	input = s;
	switch (data[0] % 6) {
	case 0:
		r = gcp_parse_access(s, len, &v, &info, reason, sizeof(reason));
		if (r < 0) {
			fuzz_check(v == NULL, T, "a value came back with an error");
			check_error(r, reason);
		} else {
			fuzz_secret_ok(v, T);
			fuzz_check(info.version[0] && strspn(info.version, "0123456789") ==
							      strlen(info.version),
				   T, "a version that is not a number");
			secret_unref(v);
		}
		break;
	case 1:
		r = gcp_parse_version(s, len, version, &enabled, reason, sizeof(reason));
		if (r < 0)
			check_error(r, reason);
		else
			fuzz_check(version[0] && strspn(version, "0123456789") == strlen(version),
				   T, "a version that is not a number");
		break;
	case 2:
		r = gcp_parse_list(s, len, count_id, &n, &next, reason, sizeof(reason));
		if (r < 0) {
			fuzz_check(next == NULL, T, "a page token came back with an error");
			check_error(r, reason);
		}
		free(next);
		break;
	case 3:
		r = gcp_parse_token(s, len, 1000, &v, &expires, reason, sizeof(reason));
		if (r < 0) {
			check_error(r, reason);
		} else {
			fuzz_check(v->len >= 2 && v->data[v->len - 1] == '\0' &&
					   strlen((char *)v->data) == v->len - 1,
				   T, "a token that is not one string");
			fuzz_check(expires > 1000, T, "a token that expired already");
			secret_unref(v);
		}
		break;
	case 4:
		r = gcp_parse_credentials(s, len, &creds, reason, sizeof(reason));
		if (r < 0) {
			fuzz_check(r == -EINVAL || r == -ENOMEM, T,
				   "a credentials error not EINVAL");
			fuzz_no_quote(s, reason, T);
		} else {
			fuzz_check(creds.token_uri && *creds.token_uri, T, "no token URI");
			fuzz_check(creds.type == GCP_CRED_SERVICE_ACCOUNT
					   ? creds.client_email && creds.key_pem
					   : creds.client_id && creds.client_secret &&
						     creds.refresh_token,
				   T, "credentials without their members");
			gcp_creds_done(&creds);
		}
		break;
	default:
		names(s);
		break;
	}
	free(s);
	return 0;
}
