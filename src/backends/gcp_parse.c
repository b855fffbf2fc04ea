/*
 * gcp_parse.c - Google Secret Manager's JSON documents and its names.
 *
 * Bodies are parsed with jansson (whose allocations are wiped) and every
 * decoded value goes straight into locked memory.  Secret ids are
 * [A-Za-z0-9_-]{1,255}: they cannot hold '/', so a tree needs
 * name_separator (prod__db__password is prod/db/password with "__").
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "crc32c.h"
#include "gcp_parse.h"
#include "kit.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define GCP_TOKEN_MAX	      8192
#define GCP_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
/* The members of a service-account key file that hold the key and its id. */
#define SA_KEY_PEM "private_key"
#define SA_KEY_ID  "private_key_id"

static const char id_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

static json_t *load(const char *body, size_t len, char *reason, size_t reasonlen)
{
	return ns_json_load_object(body, len, 0, "Secret Manager", reason, reasonlen);
}

/* ---- names ---- */

int gcp_parse_source(const char *arg, char **ret_project, char **ret_prefix, char *reason,
		     size_t reasonlen)
{
	size_t plen = strcspn(arg, "/");
	const char *prefix = arg[plen] == '/' ? arg + plen + 1 : "";
	char *p, *x;

	/* Project ids are [a-z0-9-] (6-30), numbers, or "domain.com:project". */
	if (plen == 0 || plen > 100 ||
	    strspn(arg, "abcdefghijklmnopqrstuvwxyz0123456789-.:") < plen) {
		snprintf(reason, reasonlen,
			 "expected gcp-sm:PROJECT[/PREFIX] with a project id or number");
		return -EINVAL;
	}
	if (*prefix && !ns_id_is_safe(prefix)) {
		snprintf(reason, reasonlen, "PREFIX must be a relative path like prod/app");
		return -EINVAL;
	}
	p = strndup(arg, plen);
	x = strdup(prefix);
	if (!p || !x) {
		free(p);
		free(x);
		return -ENOMEM;
	}
	*ret_project = p;
	*ret_prefix = x;
	return 0;
}

/* Appends @id to @out (room checked by the caller) with '/' as @sep. */
static int map_path(const char *id, const char *sep, char *out, size_t cap, size_t *pos)
{
	size_t seplen = sep ? strlen(sep) : 0;

	for (const char *c = id; *c;) {
		size_t n = strcspn(c, "/");

		if (n == 0 || n != strspn(c, id_chars) || (sep && memmem(c, n, sep, seplen)))
			return -ENOENT;
		if (*pos + n + seplen + 1 > cap)
			return -ENOENT;
		memcpy(out + *pos, c, n);
		*pos += n;
		c += n;
		if (*c == '/') {
			if (!sep || !c[1])
				return -ENOENT;
			memcpy(out + *pos, sep, seplen);
			*pos += seplen;
			c++;
		}
	}
	return 0;
}

int gcp_name_for_id(const char *prefix, const char *sep, const char *id, char **ret)
{
	char buf[GCP_SECRET_ID_MAX + 1];
	size_t pos = 0;
	int r = 0;

	if (*prefix) {
		r = map_path(prefix, sep, buf, sizeof(buf), &pos);
		if (r == 0 && (!sep || pos + strlen(sep) >= sizeof(buf)))
			r = -ENOENT; /* a prefix needs a separator before the name */
		if (r == 0) {
			memcpy(buf + pos, sep, strlen(sep));
			pos += strlen(sep);
		}
	}
	if (r == 0)
		r = map_path(id, sep, buf, sizeof(buf), &pos);
	if (r < 0 || pos == 0)
		return -ENOENT;
	buf[pos] = '\0';
	if (sep && strchr(id, '/')) {
		/* "a_" + "/" + "b" with "__" reads back as "a/_b": such a path is never listed. */
		_cleanup_free_ char *back = NULL;

		r = gcp_id_for_name(prefix, sep, buf, &back);
		if (r < 0)
			return r;
		if (!back || strcmp(back, id) != 0)
			return -ENOENT;
	}
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

int gcp_id_for_name(const char *prefix, const char *sep, const char *name, char **ret)
{
	_cleanup_free_ char *pre = NULL;
	size_t seplen = sep ? strlen(sep) : 0, o = 0;
	const char *c = name;
	char *out;

	*ret = NULL;
	if (*prefix) {
		int r = gcp_name_for_id("", sep, prefix, &pre);

		if (r == -ENOMEM)
			return r;
		if (r < 0 || strncmp(name, pre, strlen(pre)) != 0 ||
		    strncmp(name + strlen(pre), sep, seplen) != 0)
			return 0;
		c = name + strlen(pre) + seplen;
	}
	out = malloc(strlen(c) + 1);
	if (!out)
		return -ENOMEM;
	while (*c) {
		if (sep && strncmp(c, sep, seplen) == 0) {
			out[o++] = '/';
			c += seplen;
		} else {
			out[o++] = *c++;
		}
	}
	out[o] = '\0';
	if (!ns_id_is_safe(out)) {
		free(out);
		return 0;
	}
	*ret = out;
	return 0;
}

/* ---- values ---- */

/* Decodes base64 in either alphabet (padding optional) into a new locked blob. */
static int b64_decode_any(const char *in, size_t len, struct secret **ret)
{
	struct secret *tmp, *out;
	size_t n = len, pad;
	int got;

	while (n > 0 && in[n - 1] == '=')
		n--;
	if (len - n > 2 || n % 4 == 1 || n > (size_t)INT32_MAX - 4)
		return -EINVAL;
	tmp = secret_new(n + 4);
	if (!tmp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '-')
			ch = '+';
		else if (ch == '_')
			ch = '/';
		else if (!isalnum(ch) && ch != '+' && ch != '/') {
			secret_unref(tmp);
			return -EINVAL;
		}
		tmp->data[i] = ch;
	}
	pad = (4 - n % 4) % 4;
	memset(tmp->data + n, '=', pad);
	out = secret_new((n + pad) / 4 * 3);
	if (!out) {
		secret_unref(tmp);
		return -ENOMEM;
	}
	got = n + pad ? EVP_DecodeBlock(out->data, tmp->data, (int)(n + pad)) : 0;
	secret_unref(tmp);
	if (got < 0 || (size_t)got < pad) {
		secret_unref(out);
		return -EINVAL;
	}
	out->len = (size_t)got - pad;
	*ret = out;
	return 0;
}

/* The version number at the end of "projects/P/secrets/S/versions/N". */
static int version_of(json_t *root, char version[BACKEND_VERSION_MAX], char *reason,
		      size_t reasonlen)
{
	const char *name = json_string_value(json_object_get(root, "name"));
	const char *v = name ? strstr(name, "/versions/") : NULL;

	if (!v) {
		snprintf(reason, reasonlen, "the answer has no version name");
		return -EBADMSG;
	}
	v += strlen("/versions/");
	if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) >= BACKEND_VERSION_MAX) {
		snprintf(reason, reasonlen, "the version name does not end in a version number");
		return -EBADMSG;
	}
	snprintf(version, BACKEND_VERSION_MAX, "%s", v);
	return 0;
}

int gcp_parse_access(const char *body, size_t len, struct secret **ret_value,
		     struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	json_auto_t *root = load(body, len, reason, reasonlen);
	struct backend_info info = { .version = "" };
	struct secret *raw = NULL;
	json_t *payload, *data, *crc;
	int r;

	if (!root)
		return -EBADMSG;
	r = version_of(root, info.version, reason, reasonlen);
	if (r < 0)
		return r;
	payload = json_object_get(root, "payload");
	data = json_object_get(payload, "data");
	if (!json_is_object(payload) || (data && !json_is_string(data))) {
		snprintf(reason, reasonlen, "the answer has no payload");
		return -EBADMSG;
	}
	/* proto3 JSON leaves out empty bytes: no data is an empty value. */
	r = b64_decode_any(data ? json_string_value(data) : "", data ? json_string_length(data) : 0,
			   &raw);
	if (r == -EINVAL) {
		snprintf(reason, reasonlen, "payload.data is not valid base64");
		return -EIO;
	}
	if (r < 0)
		return r;
	crc = json_object_get(payload, "dataCrc32c");
	if (crc && !json_is_null(crc)) {
		const char *s = json_string_value(crc);
		uint64_t want;

		/* int64 in proto3 JSON is a string of digits (a number is tolerated). */
		if (json_is_integer(crc) && json_integer_value(crc) >= 0)
			want = (uint64_t)json_integer_value(crc);
		else if (!s || parse_uint(s, UINT32_MAX, &want) < 0)
			want = UINT64_MAX;
		if (want > UINT32_MAX) {
			secret_unref(raw);
			snprintf(reason, reasonlen, "payload.dataCrc32c is not a 32-bit number");
			return -EBADMSG;
		}
		if (crc32c(0, raw->data, raw->len) != (uint32_t)want) {
			secret_unref(raw);
			snprintf(
				reason, reasonlen,
				"payload checksum mismatch (CRC32C of the data is not dataCrc32c): "
				"value not served");
			return -EIO;
		}
	}
	r = ns_secret_from_text((const char *)raw->data, raw->len, "the payload", ret_value, reason,
				reasonlen);
	secret_unref(raw);
	if (r < 0)
		return r;
	*ret_info = info;
	return 0;
}

int gcp_parse_version(const char *body, size_t len, char version[BACKEND_VERSION_MAX],
		      int *ret_enabled, char *reason, size_t reasonlen)
{
	json_auto_t *root = load(body, len, reason, reasonlen);
	const char *state;
	int r;

	if (!root)
		return -EBADMSG;
	r = version_of(root, version, reason, reasonlen);
	if (r < 0)
		return r;
	state = json_string_value(json_object_get(root, "state"));
	*ret_enabled = state && strcmp(state, "ENABLED") == 0;
	return 0;
}

int gcp_parse_list(const char *body, size_t len, int (*add)(void *ctx, const char *id), void *ctx,
		   char **ret_next, char *reason, size_t reasonlen)
{
	json_auto_t *root = load(body, len, reason, reasonlen);
	json_t *secrets, *s;
	size_t i;
	int r;

	if (!root)
		return -EBADMSG;
	secrets = json_object_get(root, "secrets");
	if (secrets && !json_is_array(secrets)) {
		snprintf(reason, reasonlen, "secrets is not an array");
		return -EBADMSG;
	}
	json_array_foreach(secrets, i, s)
	{
		const char *name = json_string_value(json_object_get(s, "name"));
		const char *id = name ? strstr(name, "/secrets/") : NULL;

		if (!id) {
			snprintf(reason, reasonlen, "secrets[%zu] has no name", i);
			return -EBADMSG;
		}
		id += strlen("/secrets/");
		if (!*id || strspn(id, id_chars) != strlen(id) || strlen(id) > GCP_SECRET_ID_MAX)
			continue; /* not a secret id we could ask for */
		r = add(ctx, id);
		if (r < 0)
			return r;
	}
	return kit_page_token(root, "nextPageToken", ret_next, reason, reasonlen);
}

int gcp_parse_token(const char *body, size_t len, uint64_t now_usec, struct secret **ret_token,
		    uint64_t *ret_expires_usec, char *reason, size_t reasonlen)
{
	json_auto_t *root = load(body, len, reason, reasonlen);
	json_t *tok, *exp;
	size_t n;

	if (!root)
		return -EBADMSG;
	tok = json_object_get(root, "access_token");
	exp = json_object_get(root, "expires_in");
	n = json_string_length(tok);
	if (!json_is_string(tok) || n == 0 || n > GCP_TOKEN_MAX ||
	    strspn(json_string_value(tok),
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") != n) {
		snprintf(reason, reasonlen, "the token answer has no usable access_token");
		return -EBADMSG;
	}
	if (!json_is_integer(exp) || json_integer_value(exp) <= 0 ||
	    json_integer_value(exp) > 7 * 24 * 3600) {
		snprintf(reason, reasonlen, "the token answer has no usable expires_in");
		return -EBADMSG;
	}
	*ret_token = secret_dup(json_string_value(tok), n + 1);
	if (!*ret_token)
		return -ENOMEM;
	*ret_expires_usec = now_usec + (uint64_t)json_integer_value(exp) * USEC_PER_SEC;
	return 0;
}

/* ---- credentials files ---- */

/* Copies the string member @key of @root into @c->doc at *@pos; NULL if absent. */
static const char *take(json_t *root, const char *key, struct gcp_creds *c, size_t *pos)
{
	json_t *v = json_object_get(root, key);
	size_t n = json_string_length(v);
	char *dst;

	if (!json_is_string(v) || n == 0 || strlen(json_string_value(v)) != n ||
	    *pos + n + 1 > c->doc->len)
		return NULL;
	dst = (char *)c->doc->data + *pos;
	memcpy(dst, json_string_value(v), n + 1);
	*pos += n + 1;
	return dst;
}

int gcp_parse_credentials(const char *text, size_t len, struct gcp_creds *ret, char *reason,
			  size_t reasonlen)
{
	struct gcp_creds c = { 0 };
	const char *missing;
	json_auto_t *root = NULL;
	json_error_t je;
	const char *type;
	size_t pos = 0;

	root = json_loadb(text, len, 0, &je);
	if (!json_is_object(root)) {
		char why[128];

		ns_json_error_text(&je, why, sizeof(why));
		snprintf(reason, reasonlen, "not a JSON object (%s)", root ? "another value" : why);
		return -EINVAL;
	}
	type = json_string_value(json_object_get(root, "type"));
	if (type && strcmp(type, "service_account") == 0)
		c.type = GCP_CRED_SERVICE_ACCOUNT;
	else if (type && strcmp(type, "authorized_user") == 0)
		c.type = GCP_CRED_AUTHORIZED_USER;
	else {
		snprintf(reason, reasonlen,
			 "\"type\" is not service_account or authorized_user (external_account "
			 "and impersonation are not supported)");
		return -EINVAL;
	}
	c.doc = secret_new(len + 1);
	if (!c.doc)
		return -ENOMEM;
	if (c.type == GCP_CRED_SERVICE_ACCOUNT) {
		c.client_email = take(root, "client_email", &c, &pos);
		c.key_pem = take(root, SA_KEY_PEM, &c, &pos);
		c.key_id = take(root, SA_KEY_ID, &c, &pos);
	} else {
		c.client_id = take(root, "client_id", &c, &pos);
		c.client_secret = take(root, "client_secret", &c, &pos);
		c.refresh_token = take(root, "refresh_token", &c, &pos);
	}
	c.token_uri = take(root, "token_uri", &c, &pos);
	if (!c.token_uri)
		c.token_uri = GCP_DEFAULT_TOKEN_URI;
	missing = c.type == GCP_CRED_SERVICE_ACCOUNT ? (!c.client_email ? "client_email"
							: !c.key_pem	? SA_KEY_PEM
									: NULL)
						     : (!c.client_id	   ? "client_id"
							: !c.client_secret ? "client_secret"
							: !c.refresh_token ? "refresh_token"
									   : NULL);
	if (missing) {
		snprintf(reason, reasonlen, "%s: \"%s\" is missing or not a string", type, missing);
		secret_unref(c.doc);
		return -EINVAL;
	}
	*ret = c;
	return 0;
}

void gcp_creds_done(struct gcp_creds *c)
{
	secret_unref(c->doc);
	*c = (struct gcp_creds){ 0 };
}
