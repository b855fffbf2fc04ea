/*
 * op_connect.c - 1Password Connect (op-connect), the Connect server's REST API.
 *
 *   op-connect:VAULT[/PREFIX]
 *
 * VAULT is a vault title, looked up once with GET /v1/vaults?filter=title
 * eq "VAULT", or a vault id (26 characters of [a-z0-9]) when no vault has
 * that title.  The tree: each item is a directory named by its title, each
 * field a file named by its label holding the field's value, and a field of
 * a section sits in a subdirectory named by the section's label
 * (op_parse_item() says which fields are shown and how).  PREFIX is a path
 * in that tree (ITEM, ITEM/SECTION) whose contents the mount shows.
 *
 * A value is read in two requests: the summary of its item from GET
 * /v1/vaults/V/items?filter=title eq "ITEM" (id and version), then the item,
 * GET /v1/vaults/V/items/ID.  The item is kept (kept.h) with its version;
 * when the cache asks again, the summary alone says whether the version
 * changed, and only then is the item read again.  The item's version is the
 * value's version for the audit log and the cache.
 *
 * Items with the same title are shown once (the one with the smallest id),
 * and the first time a listing or a read meets them, events.error names
 * both ids.  Unsafe titles and labels are hidden, as for Vault.
 *
 * The token: -o op_token_file=FILE, OP_CONNECT_TOKEN (taken from the
 * environment whatever else is given), $CREDENTIALS_DIRECTORY/op-connect-token,
 * in that order; the server: -o op_connect_host=URL, else OP_CONNECT_HOST,
 * as 1Password's SDKs read them.  Requests carry Authorization: Bearer.
 * Errors are {"status":N,"message":"..."}: 401 and 403 are EACCES, 404
 * ENOENT, 429 and 5xx transient (the HTTP layer has retried them).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backends/backends.h"
#include "backends/kept.h"
#include "backends/kit.h"
#include "backends/op_parse.h"
#include "secretfs/config.h"
#include "secretfs/http.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define OP_TOKEN_MAX   16384
#define OP_CRED_NAME   "op-connect-token"
#define OP_WARNED_MAX  256
#define LIST_MAX_ITEMS 100000
#define WHY_MAX	       BACKEND_REASON_MAX

struct op {
	struct backend *b;
	char *host;   /* without a trailing '/' */
	char *vault;  /* as given: a title or an id */
	char *prefix; /* "" or ITEM[/SECTION...] */
	char token_from[256];
	struct secret *token; /* the bearer token and its NUL */
	struct http_client *http;
	struct kept_map kept; /* item id -> its fields table, at the item's version */
	pthread_mutex_t lock;
	char vault_id[OP_ID_MAX];    /* "" until resolved; protected by lock */
	char *warned[OP_WARNED_MAX]; /* "TITLE\nID\nID" said once; protected by lock */
	size_t nwarned;		     /* protected by lock */
	bool warned_vault;	     /* a missing vault was reported; protected by lock */
};

/* ---- requests ---- */

/*
 * GETs @url with the token.  0: a 2xx answer is in @resp (the caller calls
 * http_response_done()).  Otherwise a negative errno and "op-connect WHAT:
 * message (STATUS)" in @reason.
 */
static int op_get(struct op *o, const char *url, const char *what, struct http_response *resp,
		  char *reason, size_t reasonlen)
{
	char why[WHY_MAX], msg[KIT_ERROR_MESSAGE_MAX];
	size_t n = o->token->len; /* counts the NUL */
	char *auth;
	int r;

	auth = secret_mem_alloc(sizeof("Bearer ") + n);
	if (!auth)
		return -ENOMEM;
	memcpy(auth, "Bearer ", sizeof("Bearer ") - 1);
	memcpy(auth + sizeof("Bearer ") - 1, kit_cred_str(o->token), n);
	r = http_do(o->http,
		    &(struct http_request){
			    .method = "GET",
			    .url = url,
			    .headers = &(struct http_header){ "Authorization", auth, true },
			    .nheaders = 1,
		    },
		    resp, why, sizeof(why));
	secret_mem_free(auth);
	if (r < 0) {
		snprintf(reason, reasonlen, "op-connect %s: %s", what, why);
		return r;
	}
	if (resp->status >= 200 && resp->status <= 299)
		return 0;
	op_parse_error(resp->body, resp->body_len, msg, sizeof(msg));
	r = kit_status_errno(resp->status);
	snprintf(reason, reasonlen, "op-connect %s: %s (%ld)", what, msg[0] ? msg : "failed",
		 resp->status);
	http_response_done(resp);
	return r;
}

/* HOST/v1/vaults[/ID[/items[/ITEM]]] with the ids escaped; malloc'ed. */
static char *op_url(struct op *o, const char *vault_id, const char *item_id)
{
	_cleanup_free_ char *v = vault_id ? http_escape_path(vault_id, false) : NULL;
	_cleanup_free_ char *i = item_id ? http_escape_path(item_id, false) : NULL;
	char *url;

	if ((vault_id && !v) || (item_id && !i))
		return NULL;
	if (asprintf(&url, "%s/v1/vaults%s%s%s%s", o->host, v ? "/" : "", v ? v : "",
		     v ? "/items" : "", i ? "/" : "") < 0)
		return NULL;
	if (i) {
		char *full;

		if (asprintf(&full, "%s%s", url, i) < 0)
			full = NULL;
		free(url);
		url = full;
	}
	return url;
}

/* The id of the vault: looked up once, then kept (a vault's id never changes). */
static int vault_id(struct op *o, char ret[OP_ID_MAX], char *reason, size_t reasonlen)
{
	struct http_response resp = { 0 };
	_cleanup_free_ char *base = op_url(o, NULL, NULL), *url = NULL;
	char why[WHY_MAX], id[OP_ID_MAX];
	int r;

	pthread_mutex_lock(&o->lock);
	memcpy(ret, o->vault_id, OP_ID_MAX);
	pthread_mutex_unlock(&o->lock);
	if (ret[0])
		return 0;
	if (!base)
		return -ENOMEM;
	{
		_cleanup_free_ char *filter = NULL;

		if (asprintf(&filter, "title eq \"%s\"", o->vault) < 0)
			return -ENOMEM;
		url = kit_url_add_query(base, "filter", filter);
	}
	if (!url)
		return -ENOMEM;
	r = op_get(o, url, "vaults (by title)", &resp, reason, reasonlen);
	if (r < 0)
		return r;
	r = op_parse_vaults(resp.body, resp.body_len, o->vault, id, why, sizeof(why));
	http_response_done(&resp);
	if (r == -ENOENT && op_is_id(o->vault)) {
		free(url);
		url = op_url(o, o->vault, NULL);
		if (!url)
			return -ENOMEM;
		url[strlen(url) - strlen("/items")] = '\0';
		r = op_get(o, url, "vault (by id)", &resp, reason, reasonlen);
		if (r < 0)
			return r;
		r = op_parse_vault(resp.body, resp.body_len, id, why, sizeof(why));
		http_response_done(&resp);
	}
	if (r < 0) {
		bool said;

		snprintf(reason, reasonlen, "op-connect vault '%s': %s", o->vault, why);
		/* Every path is ENOENT then, which is not logged: say why once. */
		pthread_mutex_lock(&o->lock);
		said = o->warned_vault;
		if (r == -ENOENT)
			o->warned_vault = true;
		pthread_mutex_unlock(&o->lock);
		if (r == -ENOENT && !said && o->b->events.error)
			o->b->events.error(o->b->events.ctx, reason);
		return r;
	}
	pthread_mutex_lock(&o->lock);
	memcpy(o->vault_id, id, OP_ID_MAX);
	pthread_mutex_unlock(&o->lock);
	memcpy(ret, id, OP_ID_MAX);
	return 0;
}

/* ---- item summaries ---- */

struct summary {
	char *id, *title;
	char version[BACKEND_VERSION_MAX];
};

struct summaries {
	struct summary *v;
	size_t n, cap;
	const char *only; /* keep only this title; NULL: every title */
};

static void summaries_done(struct summaries *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].id);
		free(s->v[i].title);
	}
	free(s->v);
	*s = (struct summaries){ 0 };
}

static int summary_add(void *ctx, const struct op_summary *in)
{
	struct summaries *s = ctx;
	struct summary *e;

	if (s->only && strcmp(in->title, s->only) != 0)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		struct summary *v;

		if (s->n >= LIST_MAX_ITEMS)
			return -EFBIG;
		v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	e = &s->v[s->n];
	e->id = strdup(in->id);
	e->title = strdup(in->title);
	memcpy(e->version, in->version, sizeof(e->version));
	if (!e->id || !e->title) {
		free(e->id);
		free(e->title);
		return -ENOMEM;
	}
	s->n++;
	return 0;
}

/* By title, then id: the item shown for a title is the first of its run. */
static int summary_cmp(const void *a, const void *b)
{
	const struct summary *x = a, *y = b;
	int c = strcmp(x->title, y->title);

	return c ? c : strcmp(x->id, y->id);
}

/* Says once (events.error) that @n items share the title of @s[0], shown: s[0]. */
static void warn_duplicates(struct op *o, const struct summary *s, size_t n)
{
	char msg[BACKEND_REASON_MAX];
	_cleanup_free_ char *key = NULL;
	bool said = false;

	if (!o->b->events.error || asprintf(&key, "%s\n%s\n%s", s[0].title, s[0].id, s[1].id) < 0)
		return;
	pthread_mutex_lock(&o->lock);
	for (size_t i = 0; i < o->nwarned && !said; i++)
		said = strcmp(o->warned[i], key) == 0;
	if (!said && o->nwarned < OP_WARNED_MAX)
		o->warned[o->nwarned++] = TAKE_PTR(key);
	pthread_mutex_unlock(&o->lock);
	if (said)
		return;
	snprintf(msg, sizeof(msg),
		 "op-connect vault '%s': %zu items are titled '%.64s' (ids %s and %s%s): only %s "
		 "is shown",
		 o->vault, n, s[0].title, s[0].id, s[1].id, n > 2 ? ", ..." : "", s[0].id);
	o->b->events.error(o->b->events.ctx, msg);
}

/*
 * The item summaries of the vault, sorted by title then id: every one, or
 * only those titled @only (through the server's filter when it can quote
 * the title).
 */
static int list_summaries(struct op *o, const char *only, struct summaries *ret, char *reason,
			  size_t reasonlen)
{
	struct http_response resp = { 0 };
	_cleanup_free_ char *base = NULL, *url = NULL, *filter = NULL;
	char vid[OP_ID_MAX], why[WHY_MAX];
	int r;

	r = vault_id(o, vid, reason, reasonlen);
	if (r < 0)
		return r;
	base = op_url(o, vid, NULL);
	if (!base)
		return -ENOMEM;
	if (only && op_title_is_filterable(only)) {
		if (asprintf(&filter, "title eq \"%s\"", only) < 0)
			return -ENOMEM;
		url = kit_url_add_query(base, "filter", filter);
	} else {
		url = strdup(base);
	}
	if (!url)
		return -ENOMEM;
	r = op_get(o, url, only ? "items (by title)" : "items (list)", &resp, reason, reasonlen);
	if (r < 0)
		return r;
	*ret = (struct summaries){ .only = only };
	r = op_parse_summaries(resp.body, resp.body_len, summary_add, ret, why, sizeof(why));
	http_response_done(&resp);
	if (r < 0) {
		snprintf(reason, reasonlen, "op-connect items: %s",
			 r == -EFBIG ? "too many items" : why);
		summaries_done(ret);
		return r;
	}
	qsort(ret->v, ret->n, sizeof(*ret->v), summary_cmp);
	return 0;
}

/* ---- items ---- */

/*
 * The fields table of the item titled @title, and its version: the kept one
 * when the summary says its version did not change, else read again.
 */
static int item_fields(struct op *o, const char *title, struct secret **ret_table,
		       char ret_version[BACKEND_VERSION_MAX], char *reason, size_t reasonlen)
{
	struct summaries s = { 0 };
	struct http_response resp = { 0 };
	_cleanup_free_ char *url = NULL, *id = NULL;
	char vid[OP_ID_MAX], kept_version[BACKEND_VERSION_MAX], version[BACKEND_VERSION_MAX];
	char why[WHY_MAX], what[128];
	struct secret *kept, *table = NULL;
	size_t hidden = 0;
	int r;

	r = list_summaries(o, title, &s, reason, reasonlen);
	if (r < 0)
		return r;
	if (s.n == 0) {
		summaries_done(&s);
		snprintf(reason, reasonlen, "op-connect: no item is titled '%.128s'", title);
		return -ENOENT;
	}
	if (s.n > 1)
		warn_duplicates(o, s.v, s.n);
	id = TAKE_PTR(s.v[0].id);
	memcpy(version, s.v[0].version, sizeof(version));
	summaries_done(&s);
	kept = kept_map_get(&o->kept, id, kept_version);
	if (kept && version[0] && strcmp(kept_version, version) == 0) {
		*ret_table = kept;
		memcpy(ret_version, kept_version, BACKEND_VERSION_MAX);
		return 0;
	}
	secret_unref(kept);
	r = vault_id(o, vid, reason, reasonlen);
	if (r < 0)
		return r;
	url = op_url(o, vid, id);
	if (!url)
		return -ENOMEM;
	snprintf(what, sizeof(what), "item %s", id);
	r = op_get(o, url, what, &resp, reason, reasonlen);
	if (r < 0) {
		if (!backend_error_is_transient(r))
			kept_map_forget(&o->kept, id);
		return r;
	}
	r = op_parse_item(resp.body, resp.body_len, &table, version, &hidden, why, sizeof(why));
	http_response_done(&resp);
	if (r < 0) {
		snprintf(reason, reasonlen, "op-connect %s: %s", what, why);
		return r;
	}
	kept_map_put(&o->kept, id, version, table);
	*ret_table = table;
	memcpy(ret_version, version, BACKEND_VERSION_MAX);
	return 0;
}

/* PREFIX/@path, or PREFIX alone for the top (ns_join() would end it in '/'). */
static char *full_path(struct op *o, const char *path)
{
	return *path ? ns_join(o->prefix, path) : strdup(o->prefix);
}

/* Splits "ITEM[/REST]" of the full path @id: *ret_title malloc'ed, *ret_rest into @id. */
static int split_item(const char *id, char **ret_title, const char **ret_rest)
{
	size_t n = strcspn(id, "/");

	*ret_title = strndup(id, n);
	if (!*ret_title)
		return -ENOMEM;
	*ret_rest = id[n] ? id + n + 1 : "";
	return 0;
}

static int op_fetch(struct backend *b, const char *id, struct secret **ret_value,
		    struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct op *o = b->priv;
	_cleanup_free_ char *full = full_path(o, id), *title = NULL;
	_cleanup_secret_ struct secret *table = NULL;
	struct backend_info info = { .version = "" };
	struct secret_entry e;
	const char *rest;
	int r;

	if (!full)
		return -ENOMEM;
	r = split_item(full, &title, &rest);
	if (r < 0)
		return r;
	if (!*rest) {
		snprintf(reason, reasonlen, "op-connect: %s is an item, a directory", full);
		return -ENOENT;
	}
	r = item_fields(o, title, &table, info.version, reason, reasonlen);
	if (r < 0)
		return r;
	if (!secret_table_find(table, rest, &e)) {
		snprintf(reason, reasonlen, "op-connect: item '%.128s' has no field %.64s", title,
			 rest);
		return -ENOENT;
	}
	*ret_value = secret_dup(e.value, e.valuelen);
	if (!*ret_value)
		return -ENOMEM;
	*ret_info = info;
	return 0;
}

/* ---- listings ---- */

/* The top: one folder per item title ("TITLE/" keys), duplicates once. */
static int list_items(struct op *o, struct secret **ret, char *reason, size_t reasonlen)
{
	struct summaries s = { 0 };
	char **keys;
	size_t n = 0;
	int r;

	r = list_summaries(o, NULL, &s, reason, reasonlen);
	if (r < 0)
		return r;
	keys = calloc(s.n + 1, sizeof(*keys));
	if (!keys) {
		summaries_done(&s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s.n; i++) {
		size_t run = 1;

		while (i + run < s.n && strcmp(s.v[i + run].title, s.v[i].title) == 0)
			run++;
		if (!ns_name_is_safe(s.v[i].title, strlen(s.v[i].title))) {
			i += run - 1;
			continue; /* hidden, as for Vault */
		}
		if (run > 1)
			warn_duplicates(o, &s.v[i], run);
		if (asprintf(&keys[n], "%s/", s.v[i].title) < 0) {
			r = -ENOMEM;
			break;
		}
		n++;
		i += run - 1;
	}
	if (r >= 0)
		r = ns_listing_from_keys((const char *const *)keys, n, ret);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	summaries_done(&s);
	return r;
}

static int op_list(struct backend *b, const char *folder, struct secret **ret_listing, char *reason,
		   size_t reasonlen)
{
	struct op *o = b->priv;
	_cleanup_free_ char *full = full_path(o, folder), *title = NULL;
	_cleanup_secret_ struct secret *table = NULL;
	char version[BACKEND_VERSION_MAX];
	const char **names;
	const char *rest;
	size_t n;
	int r;

	if (!full)
		return -ENOMEM;
	if (!*full)
		return list_items(o, ret_listing, reason, reasonlen);
	r = split_item(full, &title, &rest);
	if (r < 0)
		return r;
	r = item_fields(o, title, &table, version, reason, reasonlen);
	if (r < 0)
		return r;
	n = secret_table_count(table);
	names = calloc(n + 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct secret_entry e;

		secret_table_at(table, i, &e);
		names[i] = e.name;
	}
	r = ns_listing_from_ids(names, n, rest, ret_listing);
	free(names);
	if (r == -ENOENT)
		snprintf(reason, reasonlen, "op-connect: item '%.128s' has no section %.64s", title,
			 rest);
	return r;
}

/* ---- setup ---- */

static int read_token(struct op *o, const struct config *cfg, char **env_token, char *reason,
		      size_t reasonlen)
{
	char path[4096], why[WHY_MAX];
	const char *dir;
	int r;

	if (cfg->op_token_file) {
		snprintf(o->token_from, sizeof(o->token_from), "%.200s", cfg->op_token_file);
		r = kit_read_credential(cfg->op_token_file, "token file", OP_TOKEN_MAX, &o->token,
					why, sizeof(why));
		if (r < 0)
			snprintf(reason, reasonlen, "op-connect: %s", why);
		return r;
	}
	if (*env_token) {
		size_t len = strlen(*env_token);

		snprintf(o->token_from, sizeof(o->token_from), "OP_CONNECT_TOKEN");
		if (!kit_credential_is_valid(*env_token, len, OP_TOKEN_MAX)) {
			snprintf(reason, reasonlen,
				 "op-connect: OP_CONNECT_TOKEN is not a token (printable "
				 "characters only, at most %d)",
				 OP_TOKEN_MAX);
			return -EINVAL;
		}
		o->token = secret_dup(*env_token, len + 1);
		return o->token ? 0 : -ENOMEM;
	}
	dir = kit_env("CREDENTIALS_DIRECTORY");
	if (dir) {
		snprintf(path, sizeof(path), "%s/" OP_CRED_NAME, dir);
		snprintf(o->token_from, sizeof(o->token_from), "%.200s", path);
		r = kit_read_credential(path, "token file", OP_TOKEN_MAX, &o->token, why,
					sizeof(why));
		if (r != -ENOENT) {
			if (r < 0)
				snprintf(reason, reasonlen, "op-connect: %s", why);
			return r;
		}
	}
	snprintf(reason, reasonlen,
		 "op-connect: no token: give -o op_token_file=FILE or OP_CONNECT_TOKEN (also "
		 "looked in $CREDENTIALS_DIRECTORY/" OP_CRED_NAME ")");
	return -ENOENT;
}

static void op_free(struct op *o)
{
	if (!o)
		return;
	http_client_free(o->http);
	if (o->kept.buckets)
		kept_map_done(&o->kept);
	secret_unref(o->token);
	for (size_t i = 0; i < o->nwarned; i++)
		free(o->warned[i]);
	pthread_mutex_destroy(&o->lock);
	free(o->host);
	free(o->vault);
	free(o->prefix);
	free(o);
}

static int op_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		   size_t reasonlen)
{
	struct op *o = calloc(1, sizeof(*o));
	char *env_token = kit_env_take("OP_CONNECT_TOKEN");
	const char *host = cfg->op_connect_host ? cfg->op_connect_host : kit_env("OP_CONNECT_HOST");
	char why[WHY_MAX];
	int r;

	if (!o) {
		r = -ENOMEM;
		goto out;
	}
	o->b = b;
	pthread_mutex_init(&o->lock, NULL);
	r = op_parse_source(arg, &o->vault, &o->prefix, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "source '%s': %s", b->source, why);
		goto out;
	}
	if (!host) {
		snprintf(reason, reasonlen,
			 "op-connect: no Connect server: set OP_CONNECT_HOST or -o "
			 "op_connect_host=URL (https://connect.example:8443)");
		r = -EINVAL;
		goto out;
	}
	o->host = strdup(host);
	if (!o->host) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t n = strlen(o->host); n > 0 && o->host[n - 1] == '/'; n--)
		o->host[n - 1] = '\0';
	r = read_token(o, cfg, &env_token, reason, reasonlen);
	if (r < 0)
		goto out;
	r = kit_http_client_new(cfg,
				&(struct kit_http_opts){
					.name = "op-connect",
					.url = o->host,
					.tls = strncasecmp(o->host, "https://", 8) == 0,
					.credential = "the Connect token",
				},
				&o->http, b->warning, sizeof(b->warning), reason, reasonlen);
	if (r >= 0)
		r = kept_map_init(&o->kept, cfg->cache_max_entries, cfg->cache_max_bytes);
out:
	if (env_token)
		wipe_free(env_token, strlen(env_token));
	if (r < 0) {
		if (r == -ENOMEM && !*reason)
			snprintf(reason, reasonlen, "op-connect: out of memory");
		op_free(o);
		b->warning[0] = '\0';
		return r;
	}
	b->priv = o;
	return 0;
}

static void op_done(struct backend *b)
{
	op_free(b->priv);
	b->priv = NULL;
}

static int op_describe(struct backend *b, json_t *obj)
{
	struct op *o = b->priv;
	char vid[OP_ID_MAX];
	json_t *auth = json_object();
	int r = 0;

	if (!auth)
		return -ENOMEM;
	pthread_mutex_lock(&o->lock);
	memcpy(vid, o->vault_id, sizeof(vid));
	pthread_mutex_unlock(&o->lock);
	r |= json_object_set_new(auth, "method", json_string("token"));
	r |= json_object_set_new(auth, "from", json_string(o->token_from));
	r |= json_object_set_new(obj, "host", json_string(o->host));
	r |= json_object_set_new(obj, "vault", json_string(o->vault));
	r |= json_object_set_new(obj, "vault_id", vid[0] ? json_string(vid) : json_null());
	r |= json_object_set_new(obj, "prefix", json_string(o->prefix));
	r |= json_object_set_new(obj, "auth", auth);
	return r ? -ENOMEM : 0;
}

/* A flush: the items kept for revalidation and the last responses go too. */
static void op_forget(struct backend *b)
{
	struct op *o = b->priv;

	kept_map_clear(&o->kept);
	http_client_drop_idle(o->http);
}

const struct backend_ops op_connect_backend_ops = {
	.scheme = "op-connect",
	.init = op_init,
	.done = op_done,
	.fetch = op_fetch,
	.list = op_list,
	.describe = op_describe,
	.forget = op_forget,
};
