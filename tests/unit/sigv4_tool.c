/*
 * sigv4_tool.c - the SigV4 signer driven by JSON lines, for the differential
 * test against botocore (tests/integration/test_sigv4_botocore.py).
 *
 * Each line on stdin is one request:
 *   {"method", "host", "path", "query", "headers": [[name, value], ...],
 *    "body_b64", "access_key", "secret_key", "session_token", "region",
 *    "service", "time" (seconds since the epoch, UTC), "token_after" (bool)}
 * where path, query, session_token, body_b64, headers and token_after may
 * be absent or null.  Each gets one line on stdout, in order:
 *   {"amz_date", "authorization", "canonical_request", "string_to_sign",
 *    "content_sha256", "security_token"}
 * or {"errno": N, "error": reason} when the signer (or the line) is refused,
 * so one bad line never shifts the answers of the others.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "secretfs/aws_sigv4.h"
#include "secretfs/util.h"

#define MAX_HEADERS 64

static const char *opt_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Decodes base64 into a malloc'ed buffer; "" or absent is an empty body. */
static int decode_b64(const char *in, unsigned char **ret, size_t *ret_len)
{
	size_t n = in ? strlen(in) : 0, pad = 0;
	unsigned char *out;
	int len;

	out = malloc(n / 4 * 3 + 3);
	if (!out)
		return -ENOMEM;
	if (n == 0) {
		*ret = out;
		*ret_len = 0;
		return 0;
	}
	if (n % 4 != 0 || n > INT32_MAX) {
		free(out);
		return -EINVAL;
	}
	/* EVP_DecodeBlock() counts the padding as zero bytes: take them off. */
	pad = (in[n - 1] == '=') + (in[n - 2] == '=');
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0 || (size_t)len < pad) {
		free(out);
		return -EINVAL;
	}
	*ret = out;
	*ret_len = (size_t)len - pad;
	return 0;
}

static json_t *error_reply(int err, const char *reason)
{
	return json_pack("{s:i, s:s}", "errno", err, "error", reason);
}

static json_t *sign_line(const char *line)
{
	struct http_header headers[MAX_HEADERS];
	struct sigv4_signed s = { 0 };
	struct sigv4_request req = { 0 };
	struct aws_credentials cred = { 0 };
	unsigned char *body = NULL;
	json_t *in, *hs, *t, *out;
	json_error_t je;
	char reason[256] = "";
	unsigned flags = SIGV4_KEEP_TEXT;
	size_t body_len = 0;
	int r;

	in = json_loads(line, 0, &je);
	if (!in || !json_is_object(in)) {
		json_decref(in);
		return error_reply(EINVAL, "not a JSON object");
	}
	hs = json_object_get(in, "headers");
	if (hs && !json_is_null(hs)) {
		size_t i;
		json_t *h;

		if (!json_is_array(hs) || json_array_size(hs) > MAX_HEADERS) {
			json_decref(in);
			return error_reply(EINVAL, "headers: not an array of at most 64 pairs");
		}
		json_array_foreach(hs, i, h)
		{
			json_t *name = json_array_get(h, 0), *value = json_array_get(h, 1);

			if (json_array_size(h) != 2 || !json_is_string(name) ||
			    !json_is_string(value)) {
				json_decref(in);
				return error_reply(EINVAL, "headers: not [name, value] strings");
			}
			headers[i] = (struct http_header){ json_string_value(name),
							   json_string_value(value), false };
		}
		req.headers = headers;
		req.nheaders = json_array_size(hs);
	}
	r = decode_b64(opt_str(in, "body_b64"), &body, &body_len);
	if (r < 0) {
		json_decref(in);
		return error_reply(-r, "body_b64: not base64");
	}
	t = json_object_get(in, "time");
	if (!json_is_integer(t) || json_integer_value(t) < 0) {
		free(body);
		json_decref(in);
		return error_reply(EINVAL, "time: not a non-negative integer");
	}
	if (json_is_true(json_object_get(in, "token_after")))
		flags |= SIGV4_TOKEN_AFTER;

	req.method = opt_str(in, "method");
	req.host = opt_str(in, "host");
	req.path = opt_str(in, "path");
	req.query = opt_str(in, "query");
	req.body = body;
	req.body_len = body_len;
	/* Borrowed from the JSON tree, which this function owns until its end. */
	cred.access_key_id = (char *)opt_str(in, "access_key");
	cred.secret_access_key = (char *)opt_str(in, "secret_key");
	cred.session_token = (char *)opt_str(in, "session_token");

	r = sigv4_sign(&cred, opt_str(in, "region"), opt_str(in, "service"),
		       (uint64_t)json_integer_value(t) * USEC_PER_SEC, &req, flags, &s, reason,
		       sizeof(reason));
	if (r < 0)
		out = error_reply(-r, reason);
	else
		out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "amz_date", s.amz_date,
				"authorization", s.authorization, "canonical_request",
				s.canonical_request, "string_to_sign", s.string_to_sign,
				"content_sha256", s.content_sha256, "security_token",
				s.security_token);
	if (!out)
		out = error_reply(EIO, "cannot build the JSON reply");
	sigv4_signed_done(&s);
	free(body);
	json_decref(in);
	return out;
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		json_t *out;
		char *text;

		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0)
			continue;
		out = sign_line(line);
		text = out ? json_dumps(out, JSON_COMPACT) : NULL;
		json_decref(out);
		if (!text || puts(text) == EOF || fflush(stdout) == EOF) {
			free(text);
			free(line);
			return 1;
		}
		free(text);
	}
	free(line);
	sigv4_cache_clear();
	return ferror(stdin) ? 1 : 0;
}
