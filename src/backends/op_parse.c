/*
 * op_parse.c - 1Password Connect's JSON documents: vaults, item summaries,
 * full items and errors.
 *
 * Bodies are parsed with jansson (whose allocations are wiped), and the
 * fields' values go straight into one table in locked memory.  Names (vault
 * and item titles, section and field labels) are not secrets and live in
 * the ordinary heap.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kit.h"
#include "op_parse.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define OP_FIELDS_MAX 10000

static json_t *load(const char *body, size_t len, char *reason, size_t reasonlen)
{
	json_error_t je;
	json_t *root = json_loadb(body ? body : "", len, 0, &je);

	if (!root) {
		char why[128];

		ns_json_error_text(&je, why, sizeof(why));
		snprintf(reason, reasonlen, "1Password Connect sent malformed JSON (%s)", why);
	}
	return root;
}

/* ---- names ---- */

int op_is_id(const char *s)
{
	return strlen(s) == 26 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789") == 26;
}

int op_title_is_filterable(const char *title)
{
	if (!*title || strlen(title) > OP_TITLE_MAX)
		return 0;
	for (const unsigned char *c = (const unsigned char *)title; *c; c++)
		if (*c < 0x20 || *c == 0x7f || *c == '"' || *c == '\\')
			return 0;
	return 1;
}

int op_parse_source(const char *arg, char **ret_vault, char **ret_prefix, char *reason,
		    size_t reasonlen)
{
	size_t vlen = strcspn(arg, "/");
	const char *prefix = arg[vlen] == '/' ? arg + vlen + 1 : "";
	char *v, *p;

	v = strndup(arg, vlen);
	if (!v)
		return -ENOMEM;
	if (!op_title_is_filterable(v)) {
		free(v);
		snprintf(reason, reasonlen,
			 "expected op-connect:VAULT[/PREFIX] with a vault title or id (without "
			 "'\"', '\\' or control characters)");
		return -EINVAL;
	}
	if ((arg[vlen] == '/' || *prefix) && !ns_id_is_safe(prefix)) {
		free(v);
		snprintf(reason, reasonlen,
			 "PREFIX must be a relative path like ITEM or ITEM/SECTION");
		return -EINVAL;
	}
	p = strdup(prefix);
	if (!p) {
		free(v);
		return -ENOMEM;
	}
	*ret_vault = v;
	*ret_prefix = p;
	return 0;
}

/* A short id member: printable ASCII, no blank, below OP_ID_MAX; NULL otherwise. */
static const char *id_of(json_t *obj)
{
	json_t *id = json_object_get(obj, "id");
	const char *s = json_string_value(id);

	if (!s || !kit_credential_is_valid(s, json_string_length(id), OP_ID_MAX - 1))
		return NULL;
	return s;
}

/* ---- vaults ---- */

int op_parse_vaults(const char *body, size_t len, const char *title, char ret_id[OP_ID_MAX],
		    char *reason, size_t reasonlen)
{
	json_auto_t *root = load(body, len, reason, reasonlen);
	const char *found = NULL;
	json_t *v;
	size_t i;

	if (!root)
		return -EBADMSG;
	if (!json_is_array(root)) {
		snprintf(reason, reasonlen, "the vault listing is not an array");
		return -EBADMSG;
	}
	json_array_foreach(root, i, v)
	{
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *id = id_of(v);

		/* The server filtered; a name that differs is not ours. */
		if (!id || !name || strcmp(name, title) != 0)
			continue;
		if (found) {
			snprintf(reason, reasonlen,
				 "more than one vault is titled '%s' (ids %s and %s): give the id",
				 title, found, id);
			return -EIO;
		}
		found = id;
	}
	if (!found) {
		snprintf(reason, reasonlen, "no vault titled '%s' is in the token's scope", title);
		return -ENOENT;
	}
	snprintf(ret_id, OP_ID_MAX, "%s", found);
	return 0;
}

int op_parse_vault(const char *body, size_t len, char ret_id[OP_ID_MAX], char *reason,
		   size_t reasonlen)
{
	json_auto_t *root = load(body, len, reason, reasonlen);
	const char *id;

	if (!root)
		return -EBADMSG;
	id = id_of(root);
	if (!id) {
		snprintf(reason, reasonlen, "the vault has no id");
		return -EBADMSG;
	}
	snprintf(ret_id, OP_ID_MAX, "%s", id);
	return 0;
}

/* ---- items ---- */

/* The item's version as decimal text, "" when absent or not a count. */
static void version_of(json_t *obj, char version[BACKEND_VERSION_MAX])
{
	json_t *v = json_object_get(obj, "version");

	version[0] = '\0';
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		snprintf(version, BACKEND_VERSION_MAX, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
}

int op_parse_summaries(const char *body, size_t len,
		       int (*add)(void *ctx, const struct op_summary *s), void *ctx, char *reason,
		       size_t reasonlen)
{
	json_auto_t *root = load(body, len, reason, reasonlen);
	json_t *it;
	size_t i;
	int r;

	if (!root)
		return -EBADMSG;
	if (!json_is_array(root)) {
		snprintf(reason, reasonlen, "the item listing is not an array");
		return -EBADMSG;
	}
	json_array_foreach(root, i, it)
	{
		json_t *title = json_object_get(it, "title");
		struct op_summary s = { .id = id_of(it), .title = json_string_value(title) };

		/* A title with a NUL cannot be a file name: skip it like an unsafe one. */
		if (!s.id || !s.title || strlen(s.title) != json_string_length(title))
			continue;
		version_of(it, s.version);
		r = add(ctx, &s);
		if (r < 0)
			return r;
	}
	return 0;
}

struct field_path {
	char *name;    /* the path inside the item */
	json_t *value; /* a string, or NULL for an empty value */
	size_t order;  /* its place in fields[]: the first of two equal paths wins */
};

static int path_cmp(const void *a, const void *b)
{
	const struct field_path *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* The label of section @id in @sections when it is a safe name, else NULL. */
static const char *section_label(json_t *sections, const char *id)
{
	json_t *s;
	size_t i;

	if (!id)
		return NULL;
	json_array_foreach(sections, i, s)
	{
		const char *sid = json_string_value(json_object_get(s, "id"));
		json_t *label = json_object_get(s, "label");
		const char *l = json_string_value(label);

		if (sid && strcmp(sid, id) == 0)
			return l && ns_name_is_safe(l, json_string_length(label)) ? l : NULL;
	}
	return NULL;
}

static void paths_free(struct field_path *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].name);
	free(p);
}

int op_parse_item(const char *body, size_t len, struct secret **ret_table,
		  char ret_version[BACKEND_VERSION_MAX], size_t *ret_hidden, char *reason,
		  size_t reasonlen)
{
	json_auto_t *root = load(body, len, reason, reasonlen);
	struct secret_table_builder tb;
	struct field_path *p = NULL;
	json_t *fields, *sections, *f;
	size_t i, n = 0, kept = 0, bytes = 0, hidden = 0;
	int r;

	if (!root)
		return -EBADMSG;
	fields = json_object_get(root, "fields");
	sections = json_object_get(root, "sections");
	if (!json_is_object(root) || !id_of(root) || (fields && !json_is_array(fields)) ||
	    (sections && !json_is_array(sections))) {
		snprintf(reason, reasonlen, "the answer is not an item (id, fields[], sections[])");
		return -EBADMSG;
	}
	if (json_array_size(fields) > OP_FIELDS_MAX) {
		snprintf(reason, reasonlen, "the item has more than %d fields", OP_FIELDS_MAX);
		return -EIO;
	}
	p = calloc(json_array_size(fields) + 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	json_array_foreach(fields, i, f)
	{
		json_t *label = json_object_get(f, "label"), *value = json_object_get(f, "value");
		const char *l = json_string_value(label), *sec;

		if (value && !json_is_string(value) && !json_is_null(value)) {
			hidden++; /* not a value we can show as it is */
			continue;
		}
		if (json_is_null(value) || (value && json_string_length(value) == 0))
			value = NULL;
		if (l && !*l)
			l = NULL;
		if (!l && !value)
			continue; /* neither a label nor a value: nothing to show */
		if (!l) {
			label = json_object_get(f, "id");
			l = json_string_value(label);
		}
		if (!l || !ns_name_is_safe(l, json_string_length(label))) {
			hidden++;
			continue;
		}
		sec = section_label(sections, json_string_value(json_object_get(
						      json_object_get(f, "section"), "id")));
		if (sec ? asprintf(&p[n].name, "%s/%s", sec, l) < 0 : !(p[n].name = strdup(l))) {
			p[n].name = NULL;
			paths_free(p, n);
			return -ENOMEM;
		}
		p[n].value = value;
		p[n].order = i;
		n++;
	}
	qsort(p, n, sizeof(*p), path_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0 && strcmp(p[i].name, p[i - 1].name) == 0) {
			hidden++;
			continue;
		}
		kept++;
		bytes += strlen(p[i].name) + 1 + json_string_length(p[i].value) + 1;
	}
	r = secret_table_begin(&tb, kept, bytes);
	for (i = 0; r >= 0 && i < n; i++) {
		if (i > 0 && strcmp(p[i].name, p[i - 1].name) == 0)
			continue;
		r = secret_table_add(&tb, p[i].name, strlen(p[i].name),
				     p[i].value ? json_string_value(p[i].value) : "",
				     json_string_length(p[i].value));
	}
	paths_free(p, n);
	if (r >= 0)
		r = secret_table_finish(&tb, ret_table);
	if (r < 0) {
		secret_table_abort(&tb);
		return r;
	}
	version_of(root, ret_version);
	*ret_hidden = hidden;
	return 0;
}

/* ---- errors ---- */

void op_parse_error(const char *body, size_t len, char *msg, size_t msglen)
{
	json_auto_t *root = json_loadb(body ? body : "", len, 0, NULL);
	json_t *m = json_object_get(root, "message");
	const char *s = json_string_value(m);
	size_t pos = 0;

	msg[0] = '\0';
	if (s)
		kit_append_clean(msg, msglen, &pos, s, strcspn(s, "\r\n"));
}
