/*
 * namespace.c - secret ids, path components and the JSON-to-file mapping.
 *
 * Backends hand the cache ready-made secrets: a blob for a plain value, a
 * table for an object.  Doing the conversion once, at fetch time, keeps the
 * read path free of JSON parsing and keeps the object's bytes inside the
 * secure heap rather than in a jansson tree.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "secretfs/backend.h"
#include "secretfs/namespace.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"

bool ns_name_is_safe(const char *name, size_t len)
{
	if (len == 0 || (len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return !memchr(name, '/', len) && !memchr(name, '\0', len);
}

bool ns_id_is_safe(const char *id)
{
	const char *p = id;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (!ns_name_is_safe(p, len))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

char *ns_join(const char *prefix, const char *name)
{
	size_t pl = strlen(prefix), nl = strlen(name);
	char *r = malloc(pl + nl + 2);

	if (!r)
		return NULL;
	if (pl) {
		memcpy(r, prefix, pl);
		r[pl++] = '/';
	}
	memcpy(r + pl, name, nl + 1);
	return r;
}

/* ---- jansson memory ---- */

/* Trees of secrets live in the locked heap and are wiped as they are freed. */
void ns_json_use_wiping_alloc(void)
{
	json_set_alloc_funcs(secret_mem_alloc, secret_mem_free);
}

void ns_json_error_text(const json_error_t *e, char *buf, size_t len)
{
	/* jansson's messages that carry no part of the input once " near ..." is cut. */
	static const char *const fixed[] = {
		"'}' expected",		  "']' expected",	  "':' expected",
		"string or '}' expected", "'[' or '{' expected",  "',' or '}' expected",
		"',' or ']' expected",	  "unexpected token",	  "invalid token",
		"invalid escape",	  "unexpected newline",	  "premature end of input",
		"end of file expected",	  "duplicate object key", "maximum parsing depth reached",
		"too big integer",	  "real number overflow", "invalid UTF-8",
		"wrong unicode escape",
	};
	const char *near = strstr(e->text, " near ");
	size_t n = near ? (size_t)(near - e->text) : strlen(e->text);
	const char *what;

	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
		if (strlen(fixed[i]) == n && strncmp(e->text, fixed[i], n) == 0) {
			snprintf(buf, len, "%s", fixed[i]);
			return;
		}
	}
	/* These quote a byte or an escape of the input: keep only their kind. */
	if (strncmp(e->text, "control character", 17) == 0) {
		snprintf(buf, len, "control character in a string (escape it)");
		return;
	}
	if (strncmp(e->text, "invalid Unicode", 15) == 0) {
		snprintf(buf, len, "invalid Unicode escape in a string");
		return;
	}
	switch (json_error_code(e)) {
	case json_error_out_of_memory:
		what = "out of memory";
		break;
	case json_error_stack_overflow:
		what = "nested too deeply";
		break;
	case json_error_invalid_utf8:
		what = "invalid UTF-8";
		break;
	case json_error_premature_end_of_input:
		what = "unexpected end of input";
		break;
	case json_error_end_of_input_expected:
		what = "text after the end of the JSON value";
		break;
	case json_error_null_character:
		what = "a \\u0000 where it is not allowed";
		break;
	case json_error_null_byte_in_key:
		what = "a \\u0000 in an object key";
		break;
	case json_error_duplicate_key:
		what = "duplicate object key";
		break;
	case json_error_numeric_overflow:
		what = "number out of range";
		break;
	case json_error_invalid_syntax:
		what = "invalid JSON (check quotes, commas, brackets and escapes)";
		break;
	default:
		what = "invalid JSON";
		break;
	}
	snprintf(buf, len, "%s", what);
}

json_t *ns_json_load_object(const char *body, size_t len, size_t flags, const char *who,
			    char *reason, size_t reasonlen)
{
	json_error_t je;
	char why[128];
	json_t *j;

	if (!body || len == 0) {
		snprintf(reason, reasonlen, "%s sent an empty body where JSON was expected", who);
		return NULL;
	}
	j = json_loadb(body, len, flags, &je);
	if (!j) {
		ns_json_error_text(&je, why, sizeof(why));
		snprintf(reason, reasonlen, "%s sent malformed JSON (%s at line %d, column %d)",
			 who, why, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(reason, reasonlen, "%s sent JSON that is not an object", who);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* ---- values ---- */

/* The binary form {"$base64": "..."}: returns the base64 text or NULL. */
static json_t *base64_member(json_t *v, unsigned flags)
{
	json_t *b;

	if (!(flags & NS_JSON_BASE64) || !json_is_object(v) || json_object_size(v) != 1)
		return NULL;
	b = json_object_get(v, "$base64");
	return json_is_string(b) ? b : NULL;
}

int ns_base64_check(const char *in, size_t len, size_t *bad_at)
{
	size_t pad = 0;

	if (len % 4 != 0) {
		*bad_at = len;
		return -EINVAL;
	}
	if (len >= 1 && in[len - 1] == '=')
		pad++;
	if (len >= 2 && in[len - 2] == '=')
		pad++;
	/* EVP_DecodeBlock() skips whitespace and stops at '-' and the like;
	 * accept only the alphabet, so what decodes is exactly what was written. */
	for (size_t i = 0; i < len - pad; i++)
		if (!isalnum((unsigned char)in[i]) && in[i] != '+' && in[i] != '/') {
			*bad_at = i;
			return -EINVAL;
		}
	return (int)pad;
}

/* Decodes base64 @in into a new blob; strict: no whitespace, padding only at the end. */
static int base64_decode(const char *in, size_t inlen, struct secret **ret)
{
	struct secret *s;
	size_t bad_at;
	int n, pad = ns_base64_check(in, inlen, &bad_at);

	if (pad < 0 || inlen > INT32_MAX)
		return -EINVAL;
	s = secret_new(inlen / 4 * 3);
	if (!s)
		return -ENOMEM;
	n = inlen ? EVP_DecodeBlock(s->data, (const unsigned char *)in, (int)inlen) : 0;
	if (n < 0) {
		secret_unref(s);
		return -EINVAL;
	}
	s->len = (size_t)n - (size_t)pad;
	*ret = s;
	return 0;
}

/* One file's bytes for a JSON value: a blob (new reference). */
static int value_bytes(json_t *v, unsigned flags, struct secret **ret)
{
	json_t *b64 = base64_member(v, flags);
	json_free_t jfree;
	char *text;
	size_t len;

	if (b64)
		return base64_decode(json_string_value(b64), json_string_length(b64), ret);
	if (json_is_string(v)) {
		*ret = secret_dup(json_string_value(v), json_string_length(v));
		return *ret ? 0 : -ENOMEM;
	}
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	*ret = secret_dup(text, len);
	OPENSSL_cleanse(text, len);
	/* json_dumps() allocated with jansson's allocator, which may be ours. */
	json_get_alloc_funcs(NULL, &jfree);
	jfree(text);
	return *ret ? 0 : -ENOMEM;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int table_from_object(json_t *obj, unsigned flags, struct secret **ret, char *reason,
			     size_t reasonlen)
{
	size_t n = json_object_size(obj), total = 0, i = 0;
	struct secret_table_builder b;
	struct secret **vals = NULL;
	const char **names = NULL;
	const char *key;
	json_t *v;
	int r;

	names = calloc(n ? n : 1, sizeof(*names));
	vals = calloc(n ? n : 1, sizeof(*vals));
	if (!names || !vals) {
		r = -ENOMEM;
		goto out;
	}
	json_object_foreach(obj, key, v)
	{
		if (!ns_name_is_safe(key, strlen(key))) {
			if (!(flags & NS_JSON_STRICT_NAMES))
				continue; /* never shown, never served */
			snprintf(reason, reasonlen, "key '%s' is not a usable file name", key);
			r = -EINVAL;
			goto out;
		}
		names[i++] = key;
	}
	n = i;
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		json_t *jv = json_object_get(obj, names[i]);

		r = value_bytes(jv, flags, &vals[i]);
		if (r < 0) {
			snprintf(reason, reasonlen, "key '%s': %s", names[i],
				 r == -EINVAL ? "invalid base64" : strerror(-r));
			goto out;
		}
		total += strlen(names[i]) + vals[i]->len;
	}
	r = secret_table_begin(&b, n, total);
	if (r < 0)
		goto out;
	for (i = 0; i < n && r >= 0; i++) {
		json_t *jv = json_object_get(obj, names[i]);
		/* Strings and binary values are text; the rest keep their JSON type. */
		bool text = json_is_string(jv) || base64_member(jv, flags);

		r = secret_table_add_typed(&b, names[i], strlen(names[i]), vals[i]->data,
					   vals[i]->len,
					   text ? SECRET_VALUE_TEXT : SECRET_VALUE_JSON);
	}
	if (r >= 0)
		r = secret_table_finish(&b, ret);
	secret_table_abort(&b);
out:
	if (vals)
		for (i = 0; i < n; i++)
			secret_unref(vals[i]);
	free(vals);
	free(names);
	return r;
}

int ns_secret_from_json(json_t *value, unsigned flags, struct secret **ret, char *reason,
			size_t reasonlen)
{
	int r;

	if (json_is_object(value) && !base64_member(value, flags))
		return table_from_object(value, flags, ret, reason, reasonlen);
	r = value_bytes(value, flags, ret);
	if (r == -EINVAL)
		snprintf(reason, reasonlen, "invalid base64 in a {\"$base64\": ...} value");
	return r;
}

/* ---- listings ---- */

struct child {
	const char *name; /* points into an id */
	size_t len;
	unsigned char flags;
};

static int cmp_children(const void *a, const void *b)
{
	const struct child *x = a, *y = b;
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

/* Sorts @c, merges duplicate names (a secret and a folder, or a folder many times), builds the
 * table. */
static int listing_table(struct child *c, size_t count, struct secret **ret)
{
	struct secret_table_builder b;
	size_t total = 0, out = 0;
	int r;

	qsort(c, count, sizeof(*c), cmp_children);
	for (size_t i = 0; i < count; i++) {
		if (out > 0 && cmp_children(&c[out - 1], &c[i]) == 0) {
			c[out - 1].flags |= c[i].flags;
			continue;
		}
		c[out++] = c[i];
		total += c[i].len + 1;
	}
	r = secret_table_begin_unlocked(&b, out, total); /* names, not values */
	for (size_t i = 0; i < out && r >= 0; i++)
		r = secret_table_add(&b, c[i].name, c[i].len, &c[i].flags, 1);
	if (r >= 0)
		r = secret_table_finish(&b, ret);
	secret_table_abort(&b);
	return r;
}

int ns_listing_from_ids(const char *const *ids, size_t n, const char *prefix, struct secret **ret)
{
	size_t pl = strlen(prefix), count = 0;
	struct child *c;
	int r;

	c = calloc(n ? n : 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *rest = ids[i], *slash;

		if (!ns_id_is_safe(ids[i]))
			continue;
		if (pl) {
			if (strncmp(ids[i], prefix, pl) != 0 || ids[i][pl] != '/')
				continue;
			rest = ids[i] + pl + 1;
		}
		slash = strchr(rest, '/');
		c[count].name = rest;
		c[count].len = slash ? (size_t)(slash - rest) : strlen(rest);
		c[count].flags = slash ? BACKEND_LIST_FOLDER : BACKEND_LIST_SECRET;
		count++;
	}
	r = count == 0 && pl ? -ENOENT : listing_table(c, count, ret);
	free(c);
	return r;
}

int ns_listing_from_keys(const char *const *keys, size_t n, struct secret **ret)
{
	size_t count = 0;
	struct child *c;
	int r;

	c = calloc(n ? n : 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(keys[i]);
		bool folder = len > 0 && keys[i][len - 1] == '/';

		if (folder)
			len--;
		if (!ns_name_is_safe(keys[i], len))
			continue;
		c[count].name = keys[i];
		c[count].len = len;
		c[count].flags = folder ? BACKEND_LIST_FOLDER : BACKEND_LIST_SECRET;
		count++;
	}
	r = listing_table(c, count, ret);
	free(c);
	return r;
}

/* ---- a store's text value ---- */

int ns_secret_from_text(const char *s, size_t len, const char *what, struct secret **ret,
			char *reason, size_t reasonlen)
{
	char why[BACKEND_REASON_MAX] = "";
	size_t i = 0;
	json_t *obj = NULL;
	int r;

	while (i < len && isspace((unsigned char)s[i]))
		i++;
	if (i < len && s[i] == '{') {
		json_error_t je;

		obj = json_loadb(s, len, 0, &je);
		if (obj && !json_is_object(obj)) {
			json_decref(obj);
			obj = NULL;
		}
	}
	if (!obj) {
		*ret = secret_dup(s, len);
		return *ret ? 0 : -ENOMEM;
	}
	r = ns_secret_from_json(obj, 0, ret, why, sizeof(why));
	json_decref(obj);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		/* EINVAL from here is the store's answer: a value that cannot be shown. */
		snprintf(reason, reasonlen, "%s cannot be shown: %s", what,
			 why[0] ? why : strerror(-r));
		return -EIO;
	}
	return 0;
}
