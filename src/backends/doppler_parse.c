/*
 * doppler_parse.c - the documents of Doppler's API v3 that the doppler
 * backend reads: SOURCE, the whole-config download, and error bodies.
 * Separate from doppler.c so that the fuzz target reaches them without a
 * network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backends/doppler_parse.h"
#include "backends/kit.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define SLUG_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

int doppler_name_is_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n >= 1 && n <= DOPPLER_NAME_MAX && strspn(s, SLUG_CHARS) == n && strcmp(s, ".") &&
	       strcmp(s, "..");
}

int doppler_parse_source(const char *arg, char **ret_project, char **ret_config, char *reason,
			 size_t reasonlen)
{
	const char *slash = strchr(arg, '/');
	char *p, *c;

	if (!*arg) {
		*ret_project = *ret_config = NULL;
		return 0;
	}
	if (!slash) {
		snprintf(reason, reasonlen,
			 "expected doppler:PROJECT/CONFIG, or doppler: when the service token "
			 "implies them");
		return -EINVAL;
	}
	p = strndup(arg, (size_t)(slash - arg));
	c = strdup(slash + 1);
	if (!p || !c) {
		free(p);
		free(c);
		return -ENOMEM;
	}
	if (!doppler_name_is_valid(p) || !doppler_name_is_valid(c)) {
		snprintf(reason, reasonlen,
			 "expected doppler:PROJECT/CONFIG, each 1 to %d characters of "
			 "[A-Za-z0-9._-]",
			 DOPPLER_NAME_MAX);
		free(p);
		free(c);
		return -EINVAL;
	}
	*ret_project = p;
	*ret_config = c;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int doppler_parse_download(const char *body, size_t len, struct secret **ret, size_t *ret_hidden,
			   char *reason, size_t reasonlen)
{
	struct secret_table_builder tb = { 0 };
	const char **names = NULL;
	size_t n = 0, total = 0, hidden = 0;
	const char *key;
	json_t *root, *v;
	int r;

	root = ns_json_load_object(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
				   "the download", reason, reasonlen);
	if (!root)
		return -EBADMSG;
	if (json_object_size(root) > DOPPLER_SECRETS_MAX) {
		snprintf(reason, reasonlen, "the download holds more than %d secrets",
			 DOPPLER_SECRETS_MAX);
		r = -EBADMSG;
		goto out;
	}
	names = calloc(json_object_size(root) + 1, sizeof(*names));
	if (!names) {
		r = -ENOMEM;
		goto out;
	}
	json_object_foreach(root, key, v)
	{
		if (!json_is_string(v)) {
			snprintf(reason, reasonlen,
				 "the download holds a %s where a string was expected",
				 json_is_object(v) ? "JSON object" : "value");
			r = -EBADMSG;
			goto out;
		}
		if (!ns_name_is_safe(key, strlen(key))) {
			hidden++;
			continue;
		}
		names[n++] = key;
		total += strlen(key) + 1 + json_string_length(v);
	}
	qsort(names, n, sizeof(*names), cmp_names);
	r = secret_table_begin(&tb, n, total);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		v = json_object_get(root, names[i]);
		r = secret_table_add(&tb, names[i], strlen(names[i]), json_string_value(v),
				     json_string_length(v));
	}
	if (r >= 0)
		r = secret_table_finish(&tb, ret);
	secret_table_abort(&tb);
	if (r >= 0 && ret_hidden)
		*ret_hidden = hidden;
out:
	free(names);
	json_decref(root);
	return r;
}

void doppler_parse_error(const char *body, size_t len, char *msg, size_t msglen)
{
	json_t *root, *messages, *m;
	size_t pos = 0, i;

	if (msglen == 0)
		return;
	msg[0] = '\0';
	if (!body || len == 0)
		return;
	root = json_loadb(body, len, 0, NULL);
	messages = json_object_get(root, "messages");
	json_array_foreach(messages, i, m)
	{
		if (!json_is_string(m) || json_string_length(m) == 0)
			continue;
		if (pos > 0)
			kit_append_clean(msg, msglen, &pos, "; ", 2);
		kit_append_clean(msg, msglen, &pos, json_string_value(m), json_string_length(m));
	}
	json_decref(root);
}
