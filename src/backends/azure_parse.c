/*
 * azure_parse.c - the SOURCE string, secret names and the answers of Azure
 * Key Vault (api-version 7.4), its token endpoint and IMDS, without the
 * network (see azure_parse.h).  Split from azure.c so that the parsers can
 * be unit-tested and fuzzed without libcurl.
 *
 * Bodies are parsed with json_loadb() and dropped with json_decref(); the
 * daemon installs wiping allocators for jansson, so parsed copies of a value
 * or a token are cleansed too.  Reasons name the member that was wrong and
 * never quote the body.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "backends/azure_parse.h"
#include "backends/kit.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define NAME_CHARS    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"
#define LIST_PAGE_MAX 1000 /* Key Vault sends at most 25 */

static json_t *load_object(const char *body, size_t len, char *reason, size_t reasonlen)
{
	return ns_json_load_object(body, len, JSON_REJECT_DUPLICATES, "Azure", reason, reasonlen);
}

static bool name_is_valid(const char *s, size_t n)
{
	return n > 0 && n <= AZURE_NAME_MAX && strspn(s, NAME_CHARS) >= n;
}

/* ---- SOURCE ---- */

int azure_parse_source(const char *arg, struct azure_source *ret, char *reason, size_t reasonlen)
{
	static const char forms[] = "expected azure-kv:VAULT_NAME or azure-kv:https://HOST[:PORT]";
	struct azure_source s = { 0 };
	const char *host, *end;
	size_t n;

	if (strncmp(arg, "https://", 8) == 0 || strncmp(arg, "http://", 7) == 0) {
		s.tls = arg[4] == 's';
		host = arg + (s.tls ? 8 : 7);
		n = strcspn(host, "/?#@");
		end = host + n;
		if (*end == '@' || n == 0 || (*end == '/' && end[1]) || *end == '?' ||
		    *end == '#') {
			snprintf(reason, reasonlen,
				 "the vault URL may hold only a host and a port (no user, path, "
				 "query or fragment); %s",
				 forms);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)host[i]) && !strchr(".-:[]", host[i])) {
				snprintf(reason, reasonlen,
					 "the vault URL's host is not a host name");
				return -EINVAL;
			}
		if (asprintf(&s.base_url, "%.*s", (int)(end - arg), arg) < 0)
			return -ENOMEM;
	} else {
		n = strlen(arg);
		if (n < 3 || n > 24 || !isalpha((unsigned char)arg[0]) || arg[n - 1] == '-' ||
		    strspn(arg, NAME_CHARS) != n || strstr(arg, "--")) {
			snprintf(reason, reasonlen,
				 "'%.40s' is not a vault name (3-24 letters, digits and single "
				 "dashes, starting with a letter); %s",
				 arg, forms);
			return -EINVAL;
		}
		s.tls = true;
		if (asprintf(&s.base_url, "https://%s.vault.azure.net", arg) < 0)
			return -ENOMEM;
	}
	*ret = s;
	return 0;
}

void azure_source_done(struct azure_source *s)
{
	free(s->base_url);
	s->base_url = NULL;
}

/* ---- names ---- */

bool azure_separator_is_valid(const char *sep)
{
	size_t n = strlen(sep);

	return n >= 1 && n <= 8 && strspn(sep, NAME_CHARS) == n;
}

int azure_name_to_id(const char *name, const char *sep, char **ret)
{
	size_t n = strlen(name), sl = sep ? strlen(sep) : 0, o = 0;
	char *id;

	if (!name_is_valid(name, n))
		return -EINVAL;
	id = malloc(n + 1);
	if (!id)
		return -ENOMEM;
	for (size_t i = 0; i < n;) {
		if (sl && strncmp(name + i, sep, sl) == 0) {
			id[o++] = '/';
			i += sl;
		} else {
			id[o++] = name[i++];
		}
	}
	id[o] = '\0';
	if (!ns_id_is_safe(id)) {
		free(id);
		return -EINVAL;
	}
	*ret = id;
	return 0;
}

int azure_id_to_name(const char *id, const char *sep, char **ret)
{
	size_t n = strlen(id), sl = sep ? strlen(sep) : 0, slashes = 0, o = 0;
	char *name, *back;
	int r;

	for (size_t i = 0; i < n; i++)
		slashes += id[i] == '/';
	if (slashes && !sl)
		return -ENOENT;
	if (n - slashes + slashes * sl > AZURE_NAME_MAX)
		return -ENOENT;
	name = malloc(n - slashes + slashes * sl + 1);
	if (!name)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (id[i] == '/') {
			memcpy(name + o, sep, sl);
			o += sl;
		} else {
			name[o++] = id[i];
		}
	}
	name[o] = '\0';
	/* Only a name that reads back as @id: "a-/b" with "--" would come back as "a/-b". */
	r = azure_name_to_id(name, sep, &back);
	if (r == -ENOMEM) {
		free(name);
		return r;
	}
	if (r < 0 || strcmp(back, id) != 0) {
		if (r == 0)
			free(back);
		free(name);
		return -ENOENT;
	}
	free(back);
	*ret = name;
	return 0;
}

/* ---- a secret ---- */

/* The bytes of a PKCS#12 value: its base64, decoded by the namespace's strict decoder. */
static int pkcs12_value(json_t *str, struct secret **ret, char *reason, size_t reasonlen)
{
	json_t *wrap = json_pack("{s:O}", "$base64", str);
	int r;

	if (!wrap)
		return -ENOMEM;
	r = ns_secret_from_json(wrap, NS_JSON_BASE64, ret, reason, reasonlen);
	json_decref(wrap);
	if (r == -EINVAL) {
		snprintf(reason, reasonlen, "the value of contentType %s is not valid base64",
			 AZURE_PKCS12_CT);
		r = -EIO;
	}
	return r;
}

int azure_parse_secret(const char *body, size_t len, struct secret **ret_value,
		       struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct backend_info info = { 0 };
	json_t *root, *value, *id, *ct;
	const char *slash, *v;
	struct secret *s = NULL;
	int r = -EBADMSG;

	root = load_object(body, len, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	value = json_object_get(root, "value");
	id = json_object_get(root, "id");
	ct = json_object_get(root, "contentType");
	if (!json_is_string(value)) {
		snprintf(reason, reasonlen, "the answer has no string 'value'");
		goto out;
	}
	if (!json_is_string(id) || !(slash = strrchr(json_string_value(id), '/'))) {
		snprintf(reason, reasonlen, "the answer has no 'id' ending in a version");
		goto out;
	}
	v = slash + 1;
	if (!*v || strlen(v) >= sizeof(info.version) || strspn(v, NAME_CHARS) != strlen(v)) {
		snprintf(reason, reasonlen, "the 'id' does not end in a version id");
		goto out;
	}
	snprintf(info.version, sizeof(info.version), "%s", v);
	if (ct && !json_is_null(ct) && !json_is_string(ct)) {
		snprintf(reason, reasonlen, "'contentType' is not a string");
		goto out;
	}
	if (json_is_string(ct) && strcasecmp(json_string_value(ct), AZURE_PKCS12_CT) == 0)
		r = pkcs12_value(value, &s, reason, reasonlen);
	else
		r = ns_secret_from_text(json_string_value(value), json_string_length(value),
					"the value", &s, reason, reasonlen);
	if (r < 0)
		goto out;
	*ret_value = s;
	*ret_info = info;
out:
	json_decref(root);
	return r;
}

/* ---- listings ---- */

void azure_page_done(struct azure_page *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->names[i]);
	free(p->names);
	free(p->next_link);
	*p = (struct azure_page){ 0 };
}

/* "https://v.vault.azure.net/secrets/NAME" -> "NAME"; NULL when it has another shape. */
static const char *item_name(const char *id, size_t *ret_len)
{
	const char *p = strstr(id, "/secrets/");

	if (!p)
		return NULL;
	p += strlen("/secrets/");
	*ret_len = strcspn(p, "/");
	if (p[*ret_len] && p[*ret_len + 1]) /* a version after it: not a list item */
		return NULL;
	return p;
}

int azure_parse_list(const char *body, size_t len, const char *base_url, struct azure_page *ret,
		     char *reason, size_t reasonlen)
{
	struct azure_page pg = { 0 };
	json_t *root, *items, *it;
	size_t i;
	int r = -EBADMSG;

	root = load_object(body, len, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	items = json_object_get(root, "value");
	if (!json_is_array(items) || json_array_size(items) > LIST_PAGE_MAX) {
		snprintf(reason, reasonlen, "the listing has no 'value' array (of at most %d)",
			 LIST_PAGE_MAX);
		goto out;
	}
	r = kit_page_link(root, "nextLink", base_url, &pg.next_link, reason, reasonlen);
	if (r < 0)
		goto out;
	r = -EBADMSG;
	pg.names = calloc(json_array_size(items) + 1, sizeof(*pg.names));
	if (!pg.names) {
		r = -ENOMEM;
		goto out;
	}
	json_array_foreach(items, i, it)
	{
		json_t *id = json_object_get(it, "id");
		json_t *en = json_object_get(json_object_get(it, "attributes"), "enabled");
		const char *name;
		size_t n;

		if (!json_is_object(it) || !json_is_string(id) ||
		    !(name = item_name(json_string_value(id), &n))) {
			snprintf(reason, reasonlen, "listing item %zu has no 'id' naming a secret",
				 i);
			goto out;
		}
		/* A disabled secret cannot be read: it is not shown. */
		if (json_is_false(en) || !name_is_valid(name, n))
			continue;
		pg.names[pg.n] = strndup(name, n);
		if (!pg.names[pg.n++]) {
			r = -ENOMEM;
			goto out;
		}
	}
	*ret = pg;
	pg = (struct azure_page){ 0 };
	r = 0;
out:
	azure_page_done(&pg);
	json_decref(root);
	return r;
}

/* ---- tokens and errors ---- */

int azure_parse_token(const char *body, size_t len, char **ret_token, size_t *ret_token_len,
		      uint64_t *ret_expires_in_usec, char *reason, size_t reasonlen)
{
	json_t *root, *tok, *exp;
	uint64_t secs = 0;
	const char *t;
	size_t n;
	int r = -EBADMSG;

	root = load_object(body, len, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	tok = json_object_get(root, "access_token");
	exp = json_object_get(root, "expires_in");
	if (!json_is_string(tok) || (n = json_string_length(tok)) == 0 || n > AZURE_TOKEN_MAX) {
		snprintf(reason, reasonlen, "the token answer has no 'access_token'");
		goto out;
	}
	t = json_string_value(tok);
	if (!kit_credential_is_valid(t, n, AZURE_TOKEN_MAX)) {
		snprintf(reason, reasonlen, "the access token is not printable ASCII");
		goto out;
	}
	if (json_is_integer(exp) && json_integer_value(exp) > 0)
		secs = (uint64_t)json_integer_value(exp);
	else if (!json_is_string(exp) ||
		 parse_uint(json_string_value(exp), UINT64_C(10) * 365 * 86400, &secs) < 0)
		secs = 0;
	if (secs == 0 || secs > UINT64_C(10) * 365 * 86400) {
		snprintf(reason, reasonlen, "the token answer has no positive 'expires_in'");
		goto out;
	}
	*ret_token = strndup(t, n);
	if (!*ret_token) {
		r = -ENOMEM;
		goto out;
	}
	*ret_token_len = n;
	*ret_expires_in_usec = secs * USEC_PER_SEC;
	r = 0;
out:
	json_decref(root);
	return r;
}

/* The first line of @s, cleaned by the kit, into @buf. */
static void one_line(const char *s, char *buf, size_t len)
{
	size_t pos = 0;

	if (len)
		buf[0] = '\0';
	if (s)
		kit_append_clean(buf, len, &pos, s, strcspn(s, "\r\n"));
}

void azure_parse_token_error(const char *body, size_t len, char *code, size_t codelen, char *msg,
			     size_t msglen)
{
	json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;

	if (codelen)
		code[0] = '\0';
	if (msglen)
		msg[0] = '\0';
	if (json_is_object(root)) {
		one_line(json_string_value(json_object_get(root, "error")), code, codelen);
		one_line(json_string_value(json_object_get(root, "error_description")), msg,
			 msglen);
	}
	json_decref(root);
}
