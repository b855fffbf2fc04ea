/*
 * gcp.c - Google Secret Manager (gcp-sm), REST v1.
 *
 *   gcp-sm:PROJECT[/PREFIX]
 *
 * A value is GET .../secrets/S/versions/latest:access: payload.data
 * (base64) checked against payload.dataCrc32c; a mismatch is EIO and the
 * value is never served.  When the cache asks again, GET
 * .../versions/latest (metadata, no payload) tells whether the version we
 * kept is still the latest and enabled; only when it is not is the value
 * read again.  Listings are GET .../secrets, every page (nextPageToken).
 *
 * Secret ids are [A-Za-z0-9_-]{1,255}: without name_separator the tree is
 * flat; with it (say "__") prod__db__password is shown as prod/db/password,
 * and PREFIX (prod/app) selects the ids that start with prod__app__.
 *
 * Credentials, in the order of Google's Application Default Credentials:
 * -o gcp_credentials=FILE, GOOGLE_APPLICATION_CREDENTIALS,
 * ~/.config/gcloud/application_default_credentials.json, then the metadata
 * server (GCE_METADATA_HOST, else metadata.google.internal; plain HTTP on
 * a link-local host, as Google's clients use it).  A service_account file
 * signs an RS256 JWT (gcp_jwt.c) for its token_uri; an authorized_user
 * file uses its refresh token.  The access token lives in the kit's token
 * source: refreshed before it expires, and after a 401 (UNAUTHENTICATED)
 * once, by one thread.
 *
 * Errors map by the google.rpc status: NOT_FOUND and FAILED_PRECONDITION
 * (a disabled or destroyed version) -ENOENT, PERMISSION_DENIED -EACCES,
 * UNAUTHENTICATED a token refresh, then -EACCES, RESOURCE_EXHAUSTED and
 * UNAVAILABLE transient (the HTTP layer has retried 429 and 5xx).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "backends/backends.h"
#include "backends/gcp_jwt.h"
#include "backends/gcp_parse.h"
#include "backends/kept.h"
#include "backends/kit.h"
#include "secretfs/config.h"
#include "secretfs/http.h"
#include "secretfs/namespace.h"
#include "secretfs/selector.h"
#include "secretfs/util.h"

#define GCP_DEFAULT_ENDPOINT "https://secretmanager.googleapis.com"
#define GCP_METADATA_HOST    "metadata.google.internal"
#define GCP_METADATA_PATH    "/computeMetadata/v1/instance/service-accounts/default/token"
#define GCP_CREDS_MAX	     (64 * 1024)
#define GCP_SEP_MAX	     16
#define LIST_MAX_PAGES	     10000
#define LIST_MAX_NAMES	     100000
#define WHY_MAX		     BACKEND_REASON_MAX
#define JWT_BEARER_FORM                                                                            \
	"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="

enum gcp_auth {
	AUTH_SERVICE_ACCOUNT,
	AUTH_AUTHORIZED_USER,
	AUTH_METADATA,
};

struct gcp {
	char *project, *prefix, *sep;
	char *endpoint; /* without a trailing '/' */
	char *base;	/* ENDPOINT/v1/projects/PROJECT/secrets */
	enum gcp_auth auth;
	char *auth_from; /* the credentials file, or the metadata URL */
	struct gcp_creds creds;
	char *metadata_url;
	struct http_client *http;
	struct kit_token_source *tokens;
	struct kept_map kept;
};

static const struct kit_error_code gcp_errors[] = {
	{ "NOT_FOUND", -ENOENT, 0 },
	/* A disabled or destroyed version: there is no value to show. */
	{ "FAILED_PRECONDITION", -ENOENT, 0 },
	{ "PERMISSION_DENIED", -EACCES, 0 },
	{ "UNAUTHENTICATED", -EACCES, KIT_CODE_REAUTH },
	{ "RESOURCE_EXHAUSTED", -EAGAIN, 0 },
	{ "UNAVAILABLE", -EAGAIN, 0 },
	{ "DEADLINE_EXCEEDED", -EAGAIN, 0 },
};

static const char *auth_name(enum gcp_auth a)
{
	return a == AUTH_SERVICE_ACCOUNT   ? "service_account"
	       : a == AUTH_AUTHORIZED_USER ? "authorized_user"
					   : "metadata";
}

/* ---- tokens ---- */

/* Appends @s percent-encoded (form encoding) to @buf at *@pos; false when out of room. */
static bool form_append(char *buf, size_t cap, size_t *pos, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (*pos + 4 > cap)
			return false;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			buf[(*pos)++] = (char)c;
		} else {
			buf[(*pos)++] = '%';
			buf[(*pos)++] = hex[c >> 4];
			buf[(*pos)++] = hex[c & 15];
		}
	}
	buf[*pos] = '\0';
	return true;
}

/* The form body of the token request, in locked memory (secret_mem_free wipes it). */
static int token_form(struct gcp *g, char **ret, size_t *ret_len, char *reason, size_t reasonlen)
{
	const struct gcp_creds *c = &g->creds;
	size_t cap, pos = 0;
	char *jwt = NULL, *body;
	bool ok = true;
	int r;

	if (g->auth == AUTH_SERVICE_ACCOUNT) {
		r = gcp_jwt_sign(c->key_pem, strlen(c->key_pem), c->key_id, c->client_email,
				 GCP_SCOPE, c->token_uri, realtime_usec() / USEC_PER_SEC, &jwt,
				 reason, reasonlen);
		if (r < 0)
			return r;
		cap = strlen(JWT_BEARER_FORM) + strlen(jwt) * 3 + 1;
	} else {
		cap = 128 + 3 * (strlen(c->client_id) + strlen(c->client_secret) +
				 strlen(c->refresh_token));
	}
	body = secret_mem_alloc(cap);
	if (!body) {
		secret_mem_free(jwt);
		return -ENOMEM;
	}
	if (g->auth == AUTH_SERVICE_ACCOUNT) {
		pos = strlen(JWT_BEARER_FORM);
		memcpy(body, JWT_BEARER_FORM, pos + 1);
		ok = form_append(body, cap, &pos, jwt);
		secret_mem_free(jwt);
	} else {
		static const char *const names[] = { "grant_type=refresh_token&client_id=",
						     "&client_secret=", "&refresh_token=" };
		const char *vals[] = { c->client_id, c->client_secret, c->refresh_token };

		for (size_t i = 0; i < 3 && ok; i++) {
			memcpy(body + pos, names[i], strlen(names[i]) + 1);
			pos += strlen(names[i]);
			ok = form_append(body, cap, &pos, vals[i]);
		}
	}
	if (!ok) {
		secret_mem_free(body);
		snprintf(reason, reasonlen, "token request too long");
		return -EINVAL;
	}
	*ret = body;
	*ret_len = pos;
	return 0;
}

/* kit_token_fetch_fn: a new access token from the token URI or the metadata server. */
static int token_fetch(void *ctx, struct secret **ret_token, uint64_t *ret_expires_usec,
		       char *reason, size_t reasonlen)
{
	struct gcp *g = ctx;
	static const struct http_header flavor[] = { { "Metadata-Flavor", "Google", false } };
	struct http_response resp = { 0 };
	const char *url = g->auth == AUTH_METADATA ? g->metadata_url : g->creds.token_uri;
	char *body = NULL, why[WHY_MAX];
	size_t len = 0;
	int r;

	if (g->auth != AUTH_METADATA) {
		r = token_form(g, &body, &len, reason, reasonlen);
		if (r < 0)
			return r;
	}
	r = http_do(g->http,
		    &(struct http_request){
			    .method = body ? "POST" : "GET",
			    .url = url,
			    .headers = body ? NULL : flavor,
			    .nheaders = body ? 0 : ARRAY_SIZE(flavor),
			    .body = body,
			    .body_len = len,
			    .content_type = body ? "application/x-www-form-urlencoded" : NULL,
		    },
		    &resp, why, sizeof(why));
	secret_mem_free(body);
	if (r < 0) {
		snprintf(reason, reasonlen, "%s: %s", url, why);
		return r;
	}
	if (resp.status != 200) {
		/* RFC 6749: {"error": "invalid_grant", ...}; the code only, never the text. */
		json_t *root = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
		const char *code = json_string_value(json_object_get(root, "error"));
		bool printable = code && strlen(code) < 64 &&
				 strspn(code, "abcdefghijklmnopqrstuvwxyz_") == strlen(code);

		snprintf(reason, reasonlen, "%s answered %ld%s%s", url, resp.status,
			 printable ? ": " : "", printable ? code : "");
		json_decref(root);
		r = resp.status == 400 || resp.status == 401 || resp.status == 403
			    ? -EACCES
			    : kit_status_errno(resp.status);
		http_response_done(&resp);
		return r;
	}
	r = gcp_parse_token(resp.body, resp.body_len, realtime_usec(), ret_token, ret_expires_usec,
			    why, sizeof(why));
	http_response_done(&resp);
	if (r < 0)
		snprintf(reason, reasonlen, "%s: %s", url, why);
	return r;
}

/* ---- requests ---- */

/*
 * GETs @url with the access token.  0: a 2xx answer is in @resp (the
 * caller calls http_response_done()).  Otherwise a negative errno and
 * "WHAT: STATUS: message (http)" in @reason.  A 401 invalidates the token
 * and the request is sent once more with a new one.
 */
static int gcp_get(struct gcp *g, const char *url, const char *what, struct http_response *resp,
		   char *reason, size_t reasonlen)
{
	char why[WHY_MAX], code[KIT_ERROR_CODE_MAX], msg[KIT_ERROR_MESSAGE_MAX];
	const struct kit_error_code *row;
	int r;

	for (unsigned attempt = 0;; attempt++) {
		struct kit_token_ref t = { 0 };
		uint64_t gen;
		char *auth;

		r = kit_token_get(g->tokens, &t, why, sizeof(why));
		if (r < 0) {
			snprintf(reason, reasonlen, "gcp-sm %s: %s", what, why);
			return r;
		}
		auth = secret_mem_alloc(sizeof("Bearer ") + t.s->len);
		if (!auth) {
			kit_token_put(&t);
			return -ENOMEM;
		}
		memcpy(auth, "Bearer ", sizeof("Bearer ") - 1);
		memcpy(auth + sizeof("Bearer ") - 1, kit_cred_str(t.s), t.s->len);
		auth[sizeof("Bearer ") - 1 + t.s->len] = '\0';
		r = http_do(g->http,
			    &(struct http_request){
				    .method = "GET",
				    .url = url,
				    .headers = &(struct http_header){ "Authorization", auth, true },
				    .nheaders = 1,
			    },
			    resp, why, sizeof(why));
		secret_mem_free(auth);
		gen = t.gen;
		kit_token_put(&t);
		if (r < 0) {
			snprintf(reason, reasonlen, "gcp-sm %s: %s", what, why);
			return r;
		}
		if (resp->status >= 200 && resp->status <= 299)
			return 0;
		kit_parse_json_error(resp->body, resp->body_len, "status", code, sizeof(code), msg,
				     sizeof(msg));
		row = kit_error_find(gcp_errors, ARRAY_SIZE(gcp_errors), code);
		if ((resp->status == 401 || (row && (row->flags & KIT_CODE_REAUTH))) &&
		    attempt == 0) {
			kit_token_invalidate(g->tokens, gen);
			http_response_done(resp);
			continue;
		}
		break;
	}
	r = kit_error_errno(gcp_errors, ARRAY_SIZE(gcp_errors), code, resp->status);
	snprintf(reason, reasonlen, "gcp-sm %s: %s%s%s (%ld)", what, code[0] ? code : "failed",
		 msg[0] ? ": " : "", msg, resp->status);
	http_response_done(resp);
	return r;
}

/* ---- values ---- */

/*
 * Reads versions/@version ("latest", a number or an alias) of secret @name:
 * with @access its value (into *ret_value and *ret_info), else its metadata
 * (the version number into ret_info->version and whether it is enabled
 * into *ret_enabled).
 */
static int read_version(struct gcp *g, const char *name, const char *version, bool access,
			struct secret **ret_value, struct backend_info *ret_info, int *ret_enabled,
			char *reason, size_t reasonlen)
{
	struct http_response resp = { 0 };
	_cleanup_free_ char *url = NULL;
	const char *suffix = access ? ":access" : "";
	char what[GCP_SECRET_ID_MAX + 64], why[WHY_MAX];
	int r;

	snprintf(what, sizeof(what), "%s/versions/%s%s", name, version, suffix);
	if (asprintf(&url, "%s/%s", g->base, what) < 0)
		return -ENOMEM;
	r = gcp_get(g, url, what, &resp, reason, reasonlen);
	if (r < 0)
		return r;
	r = access ? gcp_parse_access(resp.body, resp.body_len, ret_value, ret_info, why,
				      sizeof(why))
		   : gcp_parse_version(resp.body, resp.body_len, ret_info->version, ret_enabled,
				       why, sizeof(why));
	http_response_done(&resp);
	if (r < 0)
		snprintf(reason, reasonlen, "gcp-sm %s: %s", what, why);
	return r;
}

static int gcp_fetch(struct backend *b, const char *id, struct secret **ret_value,
		     struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct gcp *g = b->priv;
	_cleanup_free_ char *name = NULL;
	char kept_version[BACKEND_VERSION_MAX];
	struct backend_info latest = { .version = "" };
	struct secret *kept;
	int r, enabled = 0;

	r = gcp_name_for_id(g->prefix, g->sep, id, &name);
	if (r == -ENOENT)
		snprintf(reason, reasonlen,
			 "gcp-sm: no secret id can be named %s (ids are [A-Za-z0-9_-]%s)", id,
			 g->sep ? "" : "; set -o name_separator for folders");
	if (r < 0)
		return r;
	kept = kept_map_get(&g->kept, id, kept_version);
	if (kept) {
		r = read_version(g, name, "latest", false, NULL, &latest, &enabled, reason, reasonlen);
		if (r >= 0 && enabled && strcmp(latest.version, kept_version) == 0) {
			*ret_value = kept;
			*ret_info = (struct backend_info){ .ttl_hint_usec = 0 };
			memcpy(ret_info->version, kept_version, sizeof(kept_version));
			return 0;
		}
		secret_unref(kept);
		if (r < 0 && r != -EACCES) {
			if (!backend_error_is_transient(r))
				kept_map_forget(&g->kept, id);
			return r;
		}
		/* Changed, disabled, or versions.get is not ours to call: read it. */
	}
	r = read_version(g, name, "latest", true, ret_value, ret_info, NULL, reason, reasonlen);
	if (r >= 0)
		kept_map_put(&g->kept, id, ret_info->version, *ret_value);
	else if (!backend_error_is_transient(r))
		kept_map_forget(&g->kept, id);
	return r;
}

/*
 * N is versions/N, label:ALIAS the version alias ALIAS; a disabled or
 * destroyed version is FAILED_PRECONDITION, not found.  GCP has no
 * previous, pending or version ids besides numbers.
 */
static int gcp_fetch_at(struct backend *b, const char *id, const struct selector *sel,
			struct secret **ret_value, struct backend_info *ret_info, char *reason,
			size_t reasonlen)
{
	struct gcp *g = b->priv;
	_cleanup_free_ char *name = NULL;
	char version[SELECTOR_ARG_MAX + 1];
	int r;

	if (sel->kind == SELECTOR_NUMBER) {
		snprintf(version, sizeof(version), "%" PRIu64, sel->number);
	} else if (sel->kind == SELECTOR_LABEL && strspn(sel->arg, "abcdefghijklmnopqrstuvwxyz"
								 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
								 "0123456789_-") == strlen(sel->arg)) {
		snprintf(version, sizeof(version), "%s", sel->arg);
	} else {
		snprintf(reason, reasonlen, "gcp-sm: serves current, N and label:ALIAS, not %s",
			 selector_kind_name(sel->kind));
		return -ENOENT;
	}
	r = gcp_name_for_id(g->prefix, g->sep, id, &name);
	if (r < 0) {
		if (r == -ENOENT)
			snprintf(reason, reasonlen, "gcp-sm: no secret id can be named %s", id);
		return r;
	}
	return read_version(g, name, version, true, ret_value, ret_info, NULL, reason, reasonlen);
}

/* ---- listings ---- */

struct list_ctx {
	struct gcp *g;
	char **ids;
	size_t n, cap;
	int err;
};

static int list_add(void *ctx, const char *name)
{
	struct list_ctx *l = ctx;
	char *id;
	int r;

	r = gcp_id_for_name(l->g->prefix, l->g->sep, name, &id);
	if (r < 0 || !id)
		return r;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v;

		if (l->n >= LIST_MAX_NAMES) {
			free(id);
			return -EFBIG;
		}
		v = realloc(l->ids, cap * sizeof(*v));
		if (!v) {
			free(id);
			return -ENOMEM;
		}
		l->ids = v;
		l->cap = cap;
	}
	l->ids[l->n++] = id;
	return 0;
}

/* kit_page_fn: one page of ListSecrets. */
static int list_page(void *ctx, const char *next, char **ret_next, char *reason, size_t reasonlen)
{
	struct list_ctx *l = ctx;
	struct http_response resp = { 0 };
	_cleanup_free_ char *url =
		next ? kit_url_add_query(l->g->base, "pageToken", next) : strdup(l->g->base);
	char why[WHY_MAX];
	int r;

	if (!url)
		return -ENOMEM;
	r = gcp_get(l->g, url, "secrets (list)", &resp, reason, reasonlen);
	if (r < 0)
		return r;
	r = gcp_parse_list(resp.body, resp.body_len, list_add, l, ret_next, why, sizeof(why));
	http_response_done(&resp);
	if (r < 0)
		snprintf(reason, reasonlen, "gcp-sm secrets (list): %s",
			 r == -EFBIG ? "too many secrets" : why);
	return r;
}

static int gcp_list(struct backend *b, const char *folder, struct secret **ret_listing,
		    char *reason, size_t reasonlen)
{
	struct list_ctx l = { .g = b->priv };
	int r;

	r = kit_paginate(LIST_MAX_PAGES, list_page, &l, "gcp-sm secrets (list)", reason, reasonlen);
	if (r >= 0) {
		r = ns_listing_from_ids((const char *const *)l.ids, l.n, folder, ret_listing);
		if (r == -ENOENT)
			snprintf(reason, reasonlen, "gcp-sm: no secret lies under %s", folder);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	return r;
}

/* ---- setup ---- */

/* The credentials file of ADC, or NULL for the metadata server; *ret_path malloc'ed. */
static int adc_file(const struct config *cfg, char **ret_path)
{
	const char *env = kit_env("GOOGLE_APPLICATION_CREDENTIALS"), *home;
	char *p = NULL;

	if (cfg->gcp_credentials)
		p = strdup(cfg->gcp_credentials);
	else if (env)
		p = strdup(env);
	else if ((home = kit_home_dir())) {
		if (asprintf(&p, "%s/.config/gcloud/application_default_credentials.json", home) <
		    0)
			return -ENOMEM;
		if (access(p, F_OK) != 0) {
			free(p);
			*ret_path = NULL;
			return 0;
		}
	} else {
		*ret_path = NULL;
		return 0;
	}
	*ret_path = p;
	return p ? 0 : -ENOMEM;
}

static bool is_https(const char *url)
{
	return strncasecmp(url, "https://", 8) == 0;
}

static void gcp_free(struct gcp *g)
{
	if (!g)
		return;
	kit_token_free(g->tokens);
	http_client_free(g->http);
	if (g->kept.buckets)
		kept_map_done(&g->kept);
	gcp_creds_done(&g->creds);
	free(g->project);
	free(g->prefix);
	free(g->sep);
	free(g->endpoint);
	free(g->base);
	free(g->auth_from);
	free(g->metadata_url);
	free(g);
}

static int load_credentials(struct gcp *g, const struct config *cfg, char *reason, size_t reasonlen)
{
	_cleanup_free_ char *path = NULL;
	struct secret *doc = NULL;
	const char *host;
	char why[WHY_MAX];
	int r;

	r = adc_file(cfg, &path);
	if (r < 0)
		return r;
	if (!path) {
		host = kit_env("GCE_METADATA_HOST");
		if (asprintf(&g->metadata_url, "http://%s%s", host ? host : GCP_METADATA_HOST,
			     GCP_METADATA_PATH) < 0) {
			g->metadata_url = NULL;
			return -ENOMEM;
		}
		g->auth = AUTH_METADATA;
		g->auth_from = strdup(g->metadata_url);
		return g->auth_from ? 0 : -ENOMEM;
	}
	r = kit_read_secret_file(path, "gcp credentials", GCP_CREDS_MAX, &doc, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "gcp-sm: %s", why);
		return r;
	}
	r = gcp_parse_credentials(kit_cred_str(doc), doc->len - 1, &g->creds, why, sizeof(why));
	secret_unref(doc);
	if (r < 0) {
		snprintf(reason, reasonlen, "gcp-sm: credentials %s: %s", path, why);
		return r;
	}
	g->auth = g->creds.type == GCP_CRED_SERVICE_ACCOUNT ? AUTH_SERVICE_ACCOUNT
							    : AUTH_AUTHORIZED_USER;
	g->auth_from = TAKE_PTR(path);
	return 0;
}

static int gcp_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		    size_t reasonlen)
{
	struct gcp *g = calloc(1, sizeof(*g));
	char why[WHY_MAX];
	const char *sep = cfg->name_separator;
	int r;

	if (!g)
		return -ENOMEM;
	r = gcp_parse_source(arg, &g->project, &g->prefix, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "source '%s': %s", b->source, why);
		goto fail;
	}
	if (sep &&
	    (!*sep || strlen(sep) > GCP_SEP_MAX ||
	     strspn(sep, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
		     strlen(sep))) {
		snprintf(reason, reasonlen,
			 "gcp-sm: name_separator must be 1 to %d characters of [A-Za-z0-9_-], "
			 "like __",
			 GCP_SEP_MAX);
		r = -EINVAL;
		goto fail;
	}
	if (*g->prefix && !sep) {
		snprintf(reason, reasonlen,
			 "source '%s': a PREFIX needs -o name_separator (secret ids cannot hold "
			 "'/')",
			 b->source);
		r = -EINVAL;
		goto fail;
	}
	g->sep = sep ? strdup(sep) : NULL;
	g->endpoint = strdup(cfg->gcp_endpoint ? cfg->gcp_endpoint : GCP_DEFAULT_ENDPOINT);
	if ((sep && !g->sep) || !g->endpoint) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t n = strlen(g->endpoint); n > 0 && g->endpoint[n - 1] == '/'; n--)
		g->endpoint[n - 1] = '\0';
	if (asprintf(&g->base, "%s/v1/projects/%s/secrets", g->endpoint, g->project) < 0) {
		g->base = NULL;
		r = -ENOMEM;
		goto fail;
	}
	r = load_credentials(g, cfg, reason, reasonlen);
	if (r < 0)
		goto fail;
	r = kit_http_client_new(
		cfg,
		&(struct kit_http_opts){
			.name = "gcp-sm",
			.url = !is_https(g->endpoint)	      ? g->endpoint
			       : g->auth == AUTH_METADATA     ? g->endpoint
			       : is_https(g->creds.token_uri) ? g->endpoint
							      : g->creds.token_uri,
			/* The metadata server is plain HTTP on a link-local host. */
			.tls = is_https(g->endpoint) &&
			       (g->auth == AUTH_METADATA || is_https(g->creds.token_uri)),
			.credential = "the Google access token",
		},
		&g->http, b->warning, sizeof(b->warning), reason, reasonlen);
	if (r < 0)
		goto fail;
	r = kit_token_new(&(struct kit_token_config){ .what = "the Google access token",
						      .fetch = token_fetch,
						      .ctx = g,
						      .wait_usec = cfg->fetch_timeout_usec },
			  &g->tokens);
	if (r >= 0)
		r = kept_map_init(&g->kept, cfg->cache_max_entries, cfg->cache_max_bytes);
	if (r < 0)
		goto fail;
	b->priv = g;
	return 0;
fail:
	if (r == -ENOMEM && !*reason)
		snprintf(reason, reasonlen, "gcp-sm: out of memory");
	gcp_free(g);
	b->warning[0] = '\0';
	return r;
}

static void gcp_done(struct backend *b)
{
	gcp_free(b->priv);
	b->priv = NULL;
}

static int gcp_describe(struct backend *b, json_t *obj)
{
	struct gcp *g = b->priv;
	struct kit_token_state st;
	char when[64];
	json_t *auth = json_object();
	int r = 0;

	if (!auth)
		return -ENOMEM;
	kit_token_state(g->tokens, &st);
	r |= json_object_set_new(auth, "method", json_string(auth_name(g->auth)));
	r |= json_object_set_new(auth, "from", json_string(g->auth_from));
	r |= json_object_set_new(auth, "state",
				 json_string(!st.have	       ? "no token"
					     : st.failures > 0 ? "refresh failing"
							       : "ok"));
	if (st.have && st.expires_usec && format_rfc3339(st.expires_usec, when, sizeof(when)) == 0)
		r |= json_object_set_new(auth, "token_expires", json_string(when));
	else
		r |= json_object_set_new(auth, "token_expires", json_null());
	r |= json_object_set_new(auth, "consecutive_failures", json_integer(st.failures));
	r |= json_object_set_new(obj, "endpoint", json_string(g->endpoint));
	r |= json_object_set_new(obj, "project", json_string(g->project));
	r |= json_object_set_new(obj, "prefix", json_string(g->prefix));
	r |= json_object_set_new(obj, "name_separator", g->sep ? json_string(g->sep) : json_null());
	r |= json_object_set_new(obj, "auth", auth);
	return r ? -ENOMEM : 0;
}

/* A flush: the values kept for revalidation and the last responses go too. */
static void gcp_forget(struct backend *b)
{
	struct gcp *g = b->priv;

	kept_map_clear(&g->kept);
	http_client_drop_idle(g->http);
}

const struct backend_ops gcp_sm_backend_ops = {
	.scheme = "gcp-sm",
	.init = gcp_init,
	.done = gcp_done,
	.fetch = gcp_fetch,
	.fetch_at = gcp_fetch_at,
	.list = gcp_list,
	.describe = gcp_describe,
	.forget = gcp_forget,
};
