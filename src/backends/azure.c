/*
 * azure.c - Azure Key Vault secrets, REST api-version 7.4.
 *
 *   azure-kv:NAME                    https://NAME.vault.azure.net
 *   azure-kv:https://HOST[:PORT]     any other vault URL (a private endpoint, a test server)
 *
 * A read is GET /secrets/NAME?api-version=7.4: the value is "value" (a JSON
 * object is a directory, as with every store; contentType
 * application/x-pkcs12 is served as the raw bytes of its base64), the
 * version the last segment of "id".  Listings are GET /secrets?maxresults=25,
 * every page, following nextLink only while it stays on the vault's scheme,
 * host and port (it would get our token).  Key Vault names are
 * [0-9A-Za-z-]: with -o name_separator=SEP each SEP in a name is a '/', so
 * prod--db--password is prod/db/password; without it the tree is flat.
 *
 * Credentials, as Azure's SDKs take them from the environment, in the order
 * of their DefaultAzureCredential:
 *   - a client secret: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET,
 *     POSTed to {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token
 *     (client_credentials, scope https://vault.azure.net/.default);
 *   - workload identity: AZURE_FEDERATED_TOKEN_FILE as the client_assertion
 *     (with AZURE_TENANT_ID and AZURE_CLIENT_ID), the file read again for
 *     every token, since the kubelet rotates it;
 *   - a managed identity through IMDS (AZURE_CLIENT_ID picks a user-assigned
 *     one), at http://169.254.169.254 or AZURE_POD_IDENTITY_AUTHORITY_HOST.
 * AZURE_CLIENT_SECRET is copied into locked memory, then wiped in the
 * environment and unset.
 *
 * The bearer token lives in the kit's token source (kit.h): fetched at
 * init (so bad credentials stop the mount), then again 5 minutes before it
 * expires, by one thread while the others go on or wait; a 401 invalidates
 * the generation it was sent with, a new token is fetched and the request
 * is sent once more; a second 401 is -EACCES.  403 (Forbidden, SecretDisabled) is -EACCES, 404
 * -ENOENT; 429 and 5xx were retried by the HTTP layer honouring Retry-After, and are -EAGAIN after
 * that, so the cache serves what it has.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backends/azure_parse.h"
#include "backends/backends.h"
#include "backends/kit.h"
#include "secretfs/config.h"
#include "secretfs/http.h"
#include "secretfs/namespace.h"
#include "secretfs/selector.h"
#include "secretfs/util.h"

#define API_VERSION	    "7.4"
#define VAULT_SCOPE	    "https://vault.azure.net/.default"
#define DEFAULT_AUTHORITY   "https://login.microsoftonline.com"
#define DEFAULT_IMDS	    "http://169.254.169.254"
#define ASSERTION_TYPE	    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define FEDERATED_TOKEN_MAX (64 * 1024)
/* Bounds of one listing: Key Vault sends 25 names a page. */
#define LIST_MAX_PAGES 4000

enum azure_auth {
	AUTH_CLIENT_SECRET,
	AUTH_WORKLOAD,
	AUTH_MANAGED,
};

struct azure {
	char *base_url; /* "https://NAME.vault.azure.net" */
	char *sep;	/* name_separator, or NULL */
	struct http_client *http;
	enum azure_auth auth;
	char *token_url;	      /* the v2.0 token endpoint, or IMDS with its query */
	char *client_id;	      /* NULL: IMDS's system-assigned identity */
	struct secret *client_secret; /* NUL-ended; AUTH_CLIENT_SECRET only */
	char *federated_file;	      /* AUTH_WORKLOAD only */
	struct kit_token_source *token;
};

/*
 * Key Vault's codes; the status decides the rest.  No flags: the HTTP layer
 * retries 429 (honouring Retry-After), and kv_get() refreshes on a 401 by its
 * status, whatever the code says.
 */
static const struct kit_error_code kv_errors[] = {
	{ "SecretNotFound", -ENOENT, 0 },
	{ "Forbidden", -EACCES, 0 },
	{ "Unauthorized", -EACCES, 0 },
	{ "Throttled", -EAGAIN, 0 },
};

/* A copy of @v without the '/'s at its end (AZURE_AUTHORITY_HOST="https://login.../"). */
static char *without_slash(const char *v)
{
	size_t n = strlen(v);

	while (n && v[n - 1] == '/')
		n--;
	return strndup(v, n);
}

/* A Key Vault error as an errno of backend.h's set and "CODE: message (STATUS)". */
static int status_error(const struct http_response *resp, char *reason, size_t reasonlen)
{
	char code[KIT_ERROR_CODE_MAX], msg[KIT_ERROR_MESSAGE_MAX];

	kit_parse_json_error(resp->body, resp->body_len, "code", code, sizeof(code), msg,
			     sizeof(msg));
	snprintf(reason, reasonlen, "%s%s%s (%ld)", code[0] ? code : "request failed",
		 msg[0] ? ": " : "", msg, resp->status);
	return kit_error_errno(kv_errors, ARRAY_SIZE(kv_errors), code, resp->status);
}

/* ---- the token ---- */

/* Appends "&NAME=" and @value percent-encoded to @b (@cap bytes, locked memory). */
static int form_add(char *b, size_t cap, size_t *used, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = *used;
	int n = snprintf(b + o, cap - o, "%s%s=", o ? "&" : "", name);

	if (n < 0 || (size_t)n >= cap - o)
		return -ENOMEM;
	o += (size_t)n;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (o + 4 > cap)
			return -ENOMEM;
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			b[o++] = (char)*p;
		} else {
			b[o++] = '%';
			b[o++] = hex[*p >> 4];
			b[o++] = hex[*p & 15];
		}
	}
	b[o] = '\0';
	*used = o;
	return 0;
}

/*
 * The token request's form (it holds the client secret or the federated
 * token) in locked memory: the caller frees it with secret_mem_free(),
 * which wipes it.  The federated token file is read again every time: the
 * kubelet rotates it.
 */
static int token_form(struct azure *a, char **ret, size_t *ret_len, char *reason, size_t reasonlen)
{
	_cleanup_secret_ struct secret *jwt = NULL;
	const char *cred;
	size_t cap, used = 0;
	char *b;
	int r;

	if (a->auth == AUTH_WORKLOAD) {
		r = kit_read_credential(a->federated_file, "federated token file",
					FEDERATED_TOKEN_MAX, &jwt, reason, reasonlen);
		if (r < 0)
			return r;
	}
	cred = kit_cred_str(jwt ? jwt : a->client_secret);
	cap = 256 + 3 * (strlen(a->client_id) + strlen(cred) + sizeof(VAULT_SCOPE) +
			 sizeof(ASSERTION_TYPE));
	b = secret_mem_alloc(cap);
	if (!b)
		return -ENOMEM;
	r = form_add(b, cap, &used, "grant_type", "client_credentials");
	if (r >= 0)
		r = form_add(b, cap, &used, "client_id", a->client_id);
	if (r >= 0)
		r = form_add(b, cap, &used, "scope", VAULT_SCOPE);
	if (r >= 0 && jwt)
		r = form_add(b, cap, &used, "client_assertion_type", ASSERTION_TYPE);
	if (r >= 0)
		r = form_add(b, cap, &used, jwt ? "client_assertion" : "client_secret", cred);
	if (r < 0) {
		secret_mem_free(b);
		return r;
	}
	*ret = b;
	*ret_len = used;
	return 0;
}

/* The token source's fetch: one request to the token endpoint or IMDS. */
static int token_fetch(void *ctx, struct secret **ret_token, uint64_t *ret_expires_usec,
		       char *reason, size_t reasonlen)
{
	static const struct http_header imds_h[] = { { "Metadata", "true", false } };
	struct azure *a = ctx;
	struct http_response resp = { 0 };
	char *form = NULL, *tok = NULL, code[KIT_ERROR_CODE_MAX], msg[KIT_ERROR_MESSAGE_MAX];
	size_t form_len = 0, tok_len = 0;
	uint64_t life, sent = realtime_usec();
	int r;

	if (a->auth != AUTH_MANAGED) {
		r = token_form(a, &form, &form_len, reason, reasonlen);
		if (r < 0)
			return r;
	}
	r = http_do(a->http,
		    &(struct http_request){
			    .method = form ? "POST" : "GET",
			    .url = a->token_url,
			    .headers = form ? NULL : imds_h,
			    .nheaders = form ? 0 : ARRAY_SIZE(imds_h),
			    .body = form,
			    .body_len = form_len,
			    .content_type = form ? "application/x-www-form-urlencoded" : NULL },
		    &resp, reason, reasonlen);
	secret_mem_free(form);
	if (r >= 0 && resp.status != 200) {
		azure_parse_token_error(resp.body, resp.body_len, code, sizeof(code), msg,
					sizeof(msg));
		snprintf(reason, reasonlen, "%s%s%s (%ld)", code[0] ? code : "request failed",
			 msg[0] ? ": " : "", msg, resp.status);
		r = kit_status_errno(resp.status);
	} else if (r >= 0) {
		r = azure_parse_token(resp.body, resp.body_len, &tok, &tok_len, &life, reason,
				      reasonlen);
	}
	http_response_done(&resp);
	if (r < 0) {
		kit_reason_prefix(reason, reasonlen, "%s %s", form ? "POST" : "GET",
				  a->auth == AUTH_MANAGED ? "IMDS" : a->token_url);
		return r;
	}
	*ret_token = secret_dup(tok, tok_len + 1);
	wipe_free(tok, tok_len + 1);
	if (!*ret_token)
		return -ENOMEM;
	*ret_expires_usec = sent + life;
	return 0;
}

/* ---- requests ---- */

/* GET @url with the token; a 401 gets one new token and one more try. */
static int kv_get(struct azure *a, const char *url, struct http_response *resp, char *reason,
		  size_t reasonlen)
{
	struct kit_token_ref tok = { 0 };
	char *auth = NULL;
	size_t alen = 0;
	int r;

	for (int tries = 0;; tries++) {
		r = kit_token_get(a->token, &tok, reason, reasonlen);
		if (r < 0)
			break;
		alen = tok.s->len + 8;
		auth = secret_mem_alloc(alen);
		if (!auth) {
			kit_token_put(&tok);
			r = -ENOMEM;
			break;
		}
		snprintf(auth, alen, "Bearer %s", kit_cred_str(tok.s));
		r = http_do(a->http,
			    &(struct http_request){
				    .method = "GET",
				    .url = url,
				    .headers = &(struct http_header){ "Authorization", auth, true },
				    .nheaders = 1 },
			    resp, reason, reasonlen);
		secret_mem_free(auth);
		if (r < 0 || resp->status != 401 || tries > 0) {
			kit_token_put(&tok);
			break;
		}
		kit_token_invalidate(a->token, tok.gen);
		kit_token_put(&tok);
		http_response_done(resp);
	}
	return r;
}

/* GET /secrets/NAME[/VERSION]: the value and its version. */
static int azure_get_secret(struct azure *a, const char *id, const char *version,
			    struct secret **ret_value, struct backend_info *ret_info, char *reason,
			    size_t reasonlen)
{
	_cleanup_free_ char *name = NULL, *url = NULL;
	struct http_response resp = { 0 };
	int r;

	r = azure_id_to_name(id, a->sep, &name);
	if (r == -ENOENT) {
		snprintf(reason, reasonlen,
			 "azure-kv: '%s' is not a Key Vault name ([0-9A-Za-z-]%s)", id,
			 a->sep ? ", name_separator for '/'" : "; see -o name_separator");
		return r;
	}
	if (r < 0 || asprintf(&url, "%s/secrets/%s%s%s?api-version=" API_VERSION, a->base_url,
			      name, version ? "/" : "", version ? version : "") < 0) {
		url = NULL;
		return -ENOMEM;
	}
	r = kv_get(a, url, &resp, reason, reasonlen);
	if (r >= 0 && resp.status == 200)
		r = azure_parse_secret(resp.body, resp.body_len, ret_value, ret_info, reason,
				       reasonlen);
	else if (r >= 0)
		r = status_error(&resp, reason, reasonlen);
	http_response_done(&resp);
	if (r < 0)
		kit_reason_prefix(reason, reasonlen, "azure-kv: GET /secrets/%s%s%s", name,
				  version ? "/" : "", version ? version : "");
	return r;
}

static int azure_fetch(struct backend *b, const char *id, struct secret **ret_value,
		       struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	return azure_get_secret(b->priv, id, NULL, ret_value, ret_info, reason, reasonlen);
}

/* id:VERSION is the version segment of the secret's id (32 hex digits); nothing else. */
static int azure_fetch_at(struct backend *b, const char *id, const struct selector *sel,
			  struct secret **ret_value, struct backend_info *ret_info, char *reason,
			  size_t reasonlen)
{
	if (sel->kind != SELECTOR_ID || strspn(sel->arg, "0123456789abcdefABCDEF") !=
						   strlen(sel->arg)) {
		snprintf(reason, reasonlen, "azure-kv: serves current and id:VERSION, not %s",
			 selector_kind_name(sel->kind));
		return -ENOENT;
	}
	return azure_get_secret(b->priv, id, sel->arg, ret_value, ret_info, reason, reasonlen);
}

/* The ids of a listing, gathered page by page. */
struct listing {
	struct azure *a;
	char **ids;
	size_t n, cap;
};

static int list_page(void *ctx, const char *next, char **ret_next, char *reason, size_t reasonlen)
{
	struct listing *l = ctx;
	_cleanup_free_ char *first = NULL;
	struct http_response resp = { 0 };
	struct azure_page pg = { 0 };
	int r;

	if (!next) {
		if (asprintf(&first, "%s/secrets?api-version=" API_VERSION "&maxresults=25",
			     l->a->base_url) < 0) {
			first = NULL;
			return -ENOMEM;
		}
		next = first;
	}
	r = kv_get(l->a, next, &resp, reason, reasonlen);
	if (r >= 0 && resp.status == 200)
		r = azure_parse_list(resp.body, resp.body_len, l->a->base_url, &pg, reason,
				     reasonlen);
	else if (r >= 0)
		r = status_error(&resp, reason, reasonlen);
	http_response_done(&resp);
	if (r >= 0 && l->n + pg.n > l->cap) {
		size_t cap = (l->n + pg.n) * 2 + 16;
		char **grown = realloc(l->ids, cap * sizeof(*grown));

		if (grown) {
			l->ids = grown;
			l->cap = cap;
		} else {
			r = -ENOMEM;
		}
	}
	for (size_t i = 0; r >= 0 && i < pg.n; i++) {
		r = azure_name_to_id(pg.names[i], l->a->sep, &l->ids[l->n]);
		if (r == 0)
			l->n++;
		else if (r == -EINVAL) /* a name that makes no path (a separator at an end) */
			r = 0;
	}
	if (r >= 0)
		*ret_next = TAKE_PTR(pg.next_link);
	azure_page_done(&pg);
	return r;
}

static int azure_list(struct backend *b, const char *prefix, struct secret **ret_listing,
		      char *reason, size_t reasonlen)
{
	struct listing l = { .a = b->priv };
	int r;

	r = kit_paginate(LIST_MAX_PAGES, list_page, &l, "the listing", reason, reasonlen);
	if (r == -EFBIG)
		r = -EIO;
	if (r >= 0) {
		r = ns_listing_from_ids((const char *const *)l.ids, l.n, prefix, ret_listing);
		if (r == -ENOENT)
			snprintf(reason, reasonlen, "no secret under '%s'", prefix);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	if (r < 0)
		kit_reason_prefix(reason, reasonlen, "azure-kv: GET /secrets");
	return r;
}

/* ---- setup ---- */

static void azure_free(struct azure *a)
{
	if (!a)
		return;
	kit_token_free(a->token);
	http_client_free(a->http);
	secret_unref(a->client_secret);
	free(a->base_url);
	free(a->sep);
	free(a->token_url);
	free(a->client_id);
	free(a->federated_file);
	free(a);
}

/* A tenant or client id (a GUID, or a tenant's domain): nothing to escape in a URL. */
static bool is_id(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < 128 &&
	       strspn(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-.") == n;
}

/*
 * Which credential, from the environment, in the order of
 * DefaultAzureCredential.  *ret_tls is false when the token endpoint is
 * plain HTTP (AZURE_AUTHORITY_HOST=http://...): the kit refuses that
 * without -o insecure.  IMDS is plain HTTP on a link-local address by
 * design, and carries no secret of ours.
 */
static int setup_auth(struct azure *a, bool *ret_tls, char *reason, size_t reasonlen)
{
	const char *tenant = kit_env("AZURE_TENANT_ID");
	const char *client = kit_env("AZURE_CLIENT_ID");
	const char *fed = kit_env("AZURE_FEDERATED_TOKEN_FILE");
	_cleanup_free_ char *base = NULL;
	char *secret = kit_env_take("AZURE_CLIENT_SECRET");

	if (secret) {
		a->client_secret = secret_dup(secret, strlen(secret) + 1);
		wipe_free(secret, strlen(secret));
		if (!a->client_secret)
			return -ENOMEM;
	}
	if (client && !is_id(client)) {
		snprintf(reason, reasonlen, "azure-kv: AZURE_CLIENT_ID is not a client id");
		return -EINVAL;
	}
	if (client && !(a->client_id = strdup(client)))
		return -ENOMEM;
	*ret_tls = true;
	if (!a->client_secret && !fed) {
		a->auth = AUTH_MANAGED;
		base = without_slash(kit_env("AZURE_POD_IDENTITY_AUTHORITY_HOST") ?: DEFAULT_IMDS);
		if (!base ||
		    asprintf(&a->token_url,
			     "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
			     "https%%3A%%2F%%2Fvault.azure.net%s%s",
			     base, client ? "&client_id=" : "", client ? client : "") < 0) {
			a->token_url = NULL;
			return -ENOMEM;
		}
		return 0;
	}
	a->auth = a->client_secret ? AUTH_CLIENT_SECRET : AUTH_WORKLOAD;
	if (!tenant || !client) {
		snprintf(reason, reasonlen,
			 "azure-kv: %s is set, but AZURE_TENANT_ID and AZURE_CLIENT_ID must be "
			 "set too",
			 a->client_secret ? "AZURE_CLIENT_SECRET" : "AZURE_FEDERATED_TOKEN_FILE");
		return -EINVAL;
	}
	if (!is_id(tenant)) {
		snprintf(reason, reasonlen,
			 "azure-kv: AZURE_TENANT_ID is not a tenant id or domain");
		return -EINVAL;
	}
	base = without_slash(kit_env("AZURE_AUTHORITY_HOST") ?: DEFAULT_AUTHORITY);
	if (!base || asprintf(&a->token_url, "%s/%s/oauth2/v2.0/token", base, tenant) < 0) {
		a->token_url = NULL;
		return -ENOMEM;
	}
	*ret_tls = strncmp(base, "https://", 8) == 0;
	if (a->auth == AUTH_WORKLOAD && !(a->federated_file = strdup(fed)))
		return -ENOMEM;
	return 0;
}

static int azure_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		      size_t reasonlen)
{
	struct azure_source src = { 0 };
	struct kit_token_ref first = { 0 };
	char why[BACKEND_REASON_MAX];
	struct azure *a;
	bool auth_tls = true;
	int r;

	r = azure_parse_source(arg, &src, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "source '%s': %s", b->source, why);
		return r;
	}
	if (cfg->name_separator && !azure_separator_is_valid(cfg->name_separator)) {
		snprintf(reason, reasonlen,
			 "azure-kv: name_separator '%.16s' must be 1-8 of the characters Key Vault "
			 "names hold ([0-9A-Za-z-]), such as --",
			 cfg->name_separator);
		azure_source_done(&src);
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		azure_source_done(&src);
		return -ENOMEM;
	}
	a->base_url = TAKE_PTR(src.base_url);
	if (cfg->name_separator && !(a->sep = strdup(cfg->name_separator))) {
		r = -ENOMEM;
		goto fail;
	}
	r = setup_auth(a, &auth_tls, reason, reasonlen);
	if (r < 0)
		goto fail;
	r = kit_http_client_new(
		cfg,
		&(struct kit_http_opts){ .name = "azure-kv",
					 .url = auth_tls ? a->base_url : a->token_url,
					 .tls = src.tls && auth_tls,
					 .credential = "the Azure access token" },
		&a->http, b->warning, sizeof(b->warning), reason, reasonlen);
	if (r < 0)
		goto fail;
	r = kit_token_new(&(struct kit_token_config){ .what = "the Azure access token",
						      .fetch = token_fetch,
						      .ctx = a,
						      .wait_usec = cfg->fetch_timeout_usec },
			  &a->token);
	if (r < 0)
		goto fail;
	/* A first token now: credentials that do not work stop the mount. */
	r = kit_token_get(a->token, &first, why, sizeof(why));
	kit_token_put(&first);
	if (r < 0) {
		snprintf(reason, reasonlen, "azure-kv: %s", why);
		goto fail;
	}
	b->priv = a;
	return 0;
fail:
	if (r == -ENOMEM && !*reason)
		snprintf(reason, reasonlen, "azure-kv: out of memory");
	azure_free(a);
	b->warning[0] = '\0';
	return r;
}

static void azure_done(struct backend *b)
{
	azure_free(b->priv);
	b->priv = NULL;
}

/* ---- status ---- */

static const char *auth_name(enum azure_auth m)
{
	switch (m) {
	case AUTH_CLIENT_SECRET:
		return "client_secret";
	case AUTH_WORKLOAD:
		return "workload_identity";
	case AUTH_MANAGED:
		return "managed_identity";
	}
	return "unknown";
}

/* For `secretfs ctl status`: where the vault is, how we authenticate; never the token. */
static int azure_describe(struct backend *b, struct json_t *obj)
{
	struct azure *a = b->priv;
	struct kit_token_state st;
	uint64_t now = realtime_usec();
	bool live;
	char when[32];
	json_t *auth = json_object();
	int r = 0;

	if (!auth)
		return -ENOMEM;
	kit_token_state(a->token, &st);
	live = st.have && (st.expires_usec == 0 || st.expires_usec > now);
	r |= json_object_set_new(auth, "method", json_string(auth_name(a->auth)));
	r |= json_object_set_new(auth, "state",
				 json_string(st.failures ? "refresh failing"
					     : live	 ? "ok"
							 : "expired"));
	if (live && st.expires_usec && format_rfc3339(st.expires_usec, when, sizeof(when)) == 0) {
		r |= json_object_set_new(auth, "token_expires", json_string(when));
		r |= json_object_set_new(
			auth, "token_ttl_seconds",
			json_integer((json_int_t)((st.expires_usec - now) / USEC_PER_SEC)));
	} else {
		r |= json_object_set_new(auth, "token_expires", json_null());
	}
	r |= json_object_set_new(auth, "renewable", json_true());
	r |= json_object_set_new(auth, "consecutive_failures", json_integer(st.failures));
	if (a->client_id)
		r |= json_object_set_new(auth, "client_id", json_string(a->client_id));
	r |= json_object_set_new(obj, "address", json_string(a->base_url));
	r |= json_object_set_new(obj, "api_version", json_string(API_VERSION));
	r |= json_object_set_new(obj, "name_separator", a->sep ? json_string(a->sep) : json_null());
	r |= json_object_set_new(obj, "auth", auth);
	return r ? -ENOMEM : 0;
}

/* A flush: the last responses in idle connections go too. */
static void azure_forget(struct backend *b)
{
	struct azure *a = b->priv;

	http_client_drop_idle(a->http);
}

const struct backend_ops azure_kv_backend_ops = {
	.scheme = "azure-kv",
	.init = azure_init,
	.done = azure_done,
	.fetch = azure_fetch,
	.fetch_at = azure_fetch_at,
	.list = azure_list,
	.describe = azure_describe,
	.forget = azure_forget,
};
