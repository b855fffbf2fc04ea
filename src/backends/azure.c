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
 * The bearer token is fetched at init (so bad credentials stop the mount),
 * and again when less than a third of its life (at most 5 minutes) is left,
 * by one thread while the others wait; a 401 drops the token it was sent
 * with (a generation number keeps a late 401 from dropping a newer one), a
 * new one is fetched and the request is sent once more; a second 401 is
 * -EACCES.  403 (Forbidden, SecretDisabled) is -EACCES, 404 -ENOENT; 429
 * and 5xx were retried by the HTTP layer honouring Retry-After, and are
 * -EAGAIN after that, so the cache serves what it has.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "backends/azure_parse.h"
#include "backends/backends.h"
#include "secretfs/config.h"
#include "secretfs/http.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define API_VERSION	     "7.4"
#define VAULT_SCOPE	     "https://vault.azure.net/.default"
#define VAULT_RESOURCE	     "https://vault.azure.net"
#define DEFAULT_AUTHORITY    "https://login.microsoftonline.com"
#define DEFAULT_IMDS	     "http://169.254.169.254"
#define ASSERTION_TYPE	     "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define FEDERATED_TOKEN_MAX  (64 * 1024)
#define REFRESH_MARGIN_USEC  (300 * USEC_PER_SEC)
/* Bounds of one listing: Key Vault sends 25 names a page. */
#define LIST_MAX_PAGES	     4000
#define WHY_MAX		     BACKEND_REASON_MAX

enum azure_auth {
	AUTH_CLIENT_SECRET,
	AUTH_WORKLOAD,
	AUTH_MANAGED,
};

struct azure {
	char *base_url;	      /* "https://NAME.vault.azure.net" */
	char *sep;	      /* name_separator, or NULL */
	struct http_client *http;
	enum azure_auth auth;
	char *token_url;      /* the v2.0 token endpoint, or IMDS with its query */
	char *client_id;      /* NULL: IMDS's system-assigned identity */
	struct secret *client_secret; /* NUL-ended; AUTH_CLIENT_SECRET only */
	char *federated_file; /* AUTH_WORKLOAD only */

	pthread_mutex_t refresh_lock; /* one token request at a time */
	pthread_mutex_t lock;
	struct secret *token;	 /* protected by lock; NUL-ended, wiped when replaced */
	uint64_t token_gen;	 /* protected by lock; bumped for every new or dropped token */
	uint64_t refresh_usec;	 /* protected by lock: monotonic time to fetch a new one */
	uint64_t expires_usec;	 /* protected by lock: monotonic */
	uint64_t expires_real;	 /* protected by lock: realtime, for describe */
	unsigned long refreshes; /* protected by lock */
	unsigned failures;	 /* protected by lock: failed token requests in a row */
};

/* ---- small helpers ---- */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* A copy of @v without the '/'s at its end (AZURE_AUTHORITY_HOST="https://login.../"). */
static char *without_slash(const char *v)
{
	size_t n = strlen(v);

	while (n && v[n - 1] == '/')
		n--;
	return strndup(v, n);
}

/*
 * AZURE_CLIENT_SECRET in locked memory; the environment entries (for the
 * first, the process's initial block, which /proc/PID/environ shows) are
 * wiped and unset, so no child and no reader of /proc sees it.
 */
static struct secret *take_env_secret(const char *var)
{
	size_t nl = strlen(var);
	const char *e = getenv(var);
	struct secret *s = e && *e ? secret_dup(e, strlen(e) + 1) : NULL;
	char *entries[8];
	size_t n = 0;

	if (!e)
		return NULL;
	for (char **p = environ; *p && n < ARRAY_SIZE(entries); p++)
		if (strncmp(*p, var, nl) == 0 && (*p)[nl] == '=')
			entries[n++] = *p;
	unsetenv(var);
	for (size_t i = 0; i < n; i++)
		explicit_bzero(entries[i], strlen(entries[i]));
	return s;
}

/* "what: reason" in @reason. */
static void reason_prefix(char *reason, size_t reasonlen, const char *what)
{
	char tmp[BACKEND_REASON_MAX];

	snprintf(tmp, sizeof(tmp), "%s", reason);
	snprintf(reason, reasonlen, "%s: %s", what, tmp);
}

/* A non-2xx answer as an errno of backend.h's set and "CODE: message (STATUS)". */
static int status_error(const struct http_response *resp, char *reason, size_t reasonlen)
{
	char code[AZURE_CODE_MAX], msg[AZURE_ERROR_MAX];
	int r = http_status_to_errno(resp->status);

	azure_parse_error(resp->body, resp->body_len, code, sizeof(code), msg, sizeof(msg));
	snprintf(reason, reasonlen, "%s%s%s (%ld)", code[0] ? code : "request failed",
		 msg[0] ? ": " : "", msg, resp->status);
	/* Only the kinds backend.h names: a 400 or 405 is Azure saying no, in its own words. */
	if (r == 0 || r == -EINVAL || r == -EOPNOTSUPP || r == -EFBIG)
		r = -EIO;
	return r;
}

/* ---- the token ---- */

/* Appends "&name=" and @value percent-encoded to the locked buffer @b (@cap bytes). */
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
 * The token request's form in locked memory (it holds the client secret or
 * the federated token): the caller frees it with secret_mem_free(), which
 * wipes it.
 */
static int token_form(struct azure *a, char **ret, size_t *ret_len, char *reason,
		      size_t reasonlen)
{
	char *jwt = NULL, *b;
	size_t jlen = 0, cap, used = 0;
	int r;

	if (a->auth == AUTH_WORKLOAD) {
		r = trusted_file_read(a->federated_file, "federated token file", FEDERATED_TOKEN_MAX,
				      &jwt, &jlen, NULL, reason, reasonlen);
		if (r < 0)
			return r;
		while (jlen && strchr(" \t\r\n", jwt[jlen - 1]))
			jwt[--jlen] = '\0';
		if (jlen == 0 || strlen(jwt) != jlen) {
			snprintf(reason, reasonlen, "federated token file %s: empty or not text",
				 a->federated_file);
			wipe_free(jwt, jlen + 1);
			return -EINVAL;
		}
	}
	cap = 256 + strlen(a->client_id) + 3 * (jwt ? jlen : a->client_secret->len) +
	      3 * sizeof(VAULT_SCOPE) + 3 * sizeof(ASSERTION_TYPE);
	b = secret_mem_alloc(cap);
	if (!b) {
		if (jwt)
			wipe_free(jwt, jlen + 1);
		return -ENOMEM;
	}
	r = form_add(b, cap, &used, "grant_type", "client_credentials");
	if (r >= 0)
		r = form_add(b, cap, &used, "client_id", a->client_id);
	if (r >= 0)
		r = form_add(b, cap, &used, "scope", VAULT_SCOPE);
	if (r >= 0 && jwt)
		r = form_add(b, cap, &used, "client_assertion_type", ASSERTION_TYPE);
	if (r >= 0)
		r = jwt ? form_add(b, cap, &used, "client_assertion", jwt)
			: form_add(b, cap, &used, "client_secret",
				   (const char *)a->client_secret->data);
	if (jwt)
		wipe_free(jwt, jlen + 1);
	if (r < 0) {
		secret_mem_free(b);
		return r;
	}
	*ret = b;
	*ret_len = used;
	return 0;
}

/* Asks for a new token; called with refresh_lock held.  Installs it on success. */
static int token_request(struct azure *a, char *reason, size_t reasonlen)
{
	static const struct http_header imds_h[] = { { "Metadata", "true", false } };
	struct http_response resp = { 0 };
	char *form = NULL, *tok = NULL;
	size_t form_len = 0, tok_len = 0;
	uint64_t life, sent = now_usec(), real = realtime_usec(), margin;
	struct secret *s;
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
	if (r >= 0 && resp.status != 200)
		r = status_error(&resp, reason, reasonlen);
	else if (r >= 0)
		r = azure_parse_token(resp.body, resp.body_len, &tok, &tok_len, &life, reason,
				      reasonlen);
	http_response_done(&resp);
	if (r < 0)
		return r;
	s = secret_dup(tok, tok_len + 1);
	wipe_free(tok, tok_len + 1);
	if (!s)
		return -ENOMEM;
	margin = life / 3 < REFRESH_MARGIN_USEC ? life / 3 : REFRESH_MARGIN_USEC;
	pthread_mutex_lock(&a->lock);
	secret_unref(a->token);
	a->token = s;
	a->token_gen++;
	a->expires_usec = sent + life;
	a->refresh_usec = sent + life - margin;
	a->expires_real = real + life;
	a->refreshes++;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

/*
 * Copies a usable token into @buf (AZURE_TOKEN_MAX + 1 bytes) and returns its
 * generation in *ret_gen, fetching a new one first when it is due.  One
 * thread fetches; the others wait for it and take what it got.
 */
static int token_get(struct azure *a, char *buf, uint64_t *ret_gen, char *reason,
		     size_t reasonlen)
{
	bool fresh;
	int r = 0;

	for (int pass = 0; pass < 2; pass++) {
		pthread_mutex_lock(&a->lock);
		fresh = a->token && now_usec() < a->refresh_usec;
		/* Past the refresh point but not expired: usable if a refresh fails. */
		if (fresh || (pass == 1 && a->token && now_usec() < a->expires_usec)) {
			memcpy(buf, a->token->data, a->token->len);
			*ret_gen = a->token_gen;
			pthread_mutex_unlock(&a->lock);
			return 0;
		}
		pthread_mutex_unlock(&a->lock);
		if (pass == 1)
			break;
		pthread_mutex_lock(&a->refresh_lock);
		pthread_mutex_lock(&a->lock);
		fresh = a->token && now_usec() < a->refresh_usec; /* another thread did it */
		pthread_mutex_unlock(&a->lock);
		if (!fresh) {
			r = token_request(a, reason, reasonlen);
			pthread_mutex_lock(&a->lock);
			a->failures = r < 0 ? a->failures + 1 : 0;
			pthread_mutex_unlock(&a->lock);
		}
		pthread_mutex_unlock(&a->refresh_lock);
	}
	if (r < 0)
		reason_prefix(reason, reasonlen, "getting a token");
	return r < 0 ? r : -EACCES;
}

/* Drops the token of generation @gen (a 401 answered it), unless a newer one came since. */
static void token_drop(struct azure *a, uint64_t gen)
{
	pthread_mutex_lock(&a->lock);
	if (a->token_gen == gen) {
		a->refresh_usec = 0;
		a->expires_usec = 0;
		a->token_gen++;
	}
	pthread_mutex_unlock(&a->lock);
}

/* ---- requests ---- */

/* GET @url with the token; a 401 gets one new token and one more try. */
static int kv_get(struct azure *a, const char *url, struct http_response *resp, char *reason,
		  size_t reasonlen)
{
	char tok[AZURE_TOKEN_MAX + 1], auth[AZURE_TOKEN_MAX + 8];
	uint64_t gen;
	int r;

	for (int tries = 0;; tries++) {
		r = token_get(a, tok, &gen, reason, reasonlen);
		if (r < 0)
			break;
		snprintf(auth, sizeof(auth), "Bearer %s", tok);
		r = http_do(a->http,
			    &(struct http_request){
				    .method = "GET",
				    .url = url,
				    .headers = &(struct http_header){ "Authorization", auth, true },
				    .nheaders = 1 },
			    resp, reason, reasonlen);
		if (r < 0 || resp->status != 401 || tries > 0)
			break;
		token_drop(a, gen);
		http_response_done(resp);
	}
	explicit_bzero(tok, sizeof(tok));
	explicit_bzero(auth, sizeof(auth));
	return r;
}

static int azure_fetch(struct backend *b, const char *id, struct secret **ret_value,
		       struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct azure *a = b->priv;
	_cleanup_free_ char *name = NULL, *url = NULL;
	struct http_response resp = { 0 };
	char what[BACKEND_REASON_MAX / 2];
	int r;

	r = azure_id_to_name(id, a->sep, &name);
	if (r == -ENOENT) {
		snprintf(reason, reasonlen,
			 "azure-kv: '%s' is not a Key Vault name ([0-9A-Za-z-]%s)", id,
			 a->sep ? ", with name_separator for '/'" : "; set -o name_separator");
		return r;
	}
	if (r < 0 || asprintf(&url, "%s/secrets/%s?api-version=" API_VERSION, a->base_url,
			      name) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	snprintf(what, sizeof(what), "azure-kv: GET /secrets/%s", name);
	r = kv_get(a, url, &resp, reason, reasonlen);
	if (r >= 0 && resp.status == 200)
		r = azure_parse_secret(resp.body, resp.body_len, ret_value, ret_info, reason,
				       reasonlen);
	else if (r >= 0)
		r = status_error(&resp, reason, reasonlen);
	http_response_done(&resp);
	if (r < 0)
		reason_prefix(reason, reasonlen, what);
	return r;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Every id in the vault, page after page. */
static int list_all(struct azure *a, char ***ret_ids, size_t *ret_n, char *reason,
		    size_t reasonlen)
{
	_cleanup_free_ char *url = NULL;
	char **ids = NULL, **grown;
	size_t n = 0, cap = 0;
	int r = 0, pages = 0;

	if (asprintf(&url, "%s/secrets?api-version=" API_VERSION "&maxresults=25", a->base_url) <
	    0) {
		url = NULL;
		return -ENOMEM;
	}
	while (url && r >= 0) {
		struct http_response resp = { 0 };
		struct azure_page pg = { 0 };

		if (++pages > LIST_MAX_PAGES) {
			snprintf(reason, reasonlen, "more than %d pages", LIST_MAX_PAGES);
			r = -EIO;
			break;
		}
		r = kv_get(a, url, &resp, reason, reasonlen);
		if (r >= 0 && resp.status == 200)
			r = azure_parse_list(resp.body, resp.body_len, &pg, reason, reasonlen);
		else if (r >= 0)
			r = status_error(&resp, reason, reasonlen);
		http_response_done(&resp);
		if (r < 0)
			break;
		if (n + pg.n > cap) {
			cap = (n + pg.n) * 2 + 16;
			grown = realloc(ids, cap * sizeof(*ids));
			if (!grown) {
				azure_page_done(&pg);
				r = -ENOMEM;
				break;
			}
			ids = grown;
		}
		for (size_t i = 0; i < pg.n && r >= 0; i++) {
			r = azure_name_to_id(pg.names[i], a->sep, &ids[n]);
			if (r == 0)
				n++;
			else if (r == -EINVAL) /* a name that makes no path: not shown */
				r = 0;
		}
		free(url);
		url = TAKE_PTR(pg.next_link);
		azure_page_done(&pg);
		if (url && !azure_next_link_ok(a->base_url, url)) {
			snprintf(reason, reasonlen,
				 "the listing's nextLink leads away from %s: not followed",
				 a->base_url);
			r = -EIO;
		}
	}
	if (r < 0) {
		free_names(ids, n);
		return r;
	}
	*ret_ids = ids;
	*ret_n = n;
	return 0;
}

static int azure_list(struct backend *b, const char *prefix, struct secret **ret_listing,
		      char *reason, size_t reasonlen)
{
	struct azure *a = b->priv;
	char **ids = NULL;
	size_t n = 0;
	int r;

	r = list_all(a, &ids, &n, reason, reasonlen);
	if (r < 0) {
		reason_prefix(reason, reasonlen, "azure-kv: GET /secrets");
		return r;
	}
	r = ns_listing_from_ids((const char *const *)ids, n, prefix, ret_listing);
	free_names(ids, n);
	if (r == -ENOENT)
		snprintf(reason, reasonlen, "azure-kv: no secret under '%s'", prefix);
	return r;
}

/* ---- setup ---- */

static void azure_free(struct azure *a)
{
	if (!a)
		return;
	http_client_free(a->http);
	secret_unref(a->token);
	secret_unref(a->client_secret);
	free(a->base_url);
	free(a->sep);
	free(a->token_url);
	free(a->client_id);
	free(a->federated_file);
	pthread_mutex_destroy(&a->refresh_lock);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* Which credential, from the environment, in the order of DefaultAzureCredential. */
static int setup_auth(struct azure *a, char *reason, size_t reasonlen)
{
	const char *tenant = env_nonempty("AZURE_TENANT_ID");
	const char *client = env_nonempty("AZURE_CLIENT_ID");
	const char *fed = env_nonempty("AZURE_FEDERATED_TOKEN_FILE");
	_cleanup_free_ char *authority = NULL, *imds = NULL;

	a->client_secret = take_env_secret("AZURE_CLIENT_SECRET");
	if (a->client_secret || fed) {
		a->auth = a->client_secret ? AUTH_CLIENT_SECRET : AUTH_WORKLOAD;
		if (!tenant || !client) {
			snprintf(reason, reasonlen,
				 "azure-kv: %s is set, but AZURE_TENANT_ID and AZURE_CLIENT_ID "
				 "must be set too",
				 a->client_secret ? "AZURE_CLIENT_SECRET"
						  : "AZURE_FEDERATED_TOKEN_FILE");
			return -EINVAL;
		}
		if (strspn(tenant, "0123456789abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ-.") != strlen(tenant)) {
			snprintf(reason, reasonlen,
				 "azure-kv: AZURE_TENANT_ID is not a tenant id or domain");
			return -EINVAL;
		}
		authority = without_slash(env_nonempty("AZURE_AUTHORITY_HOST")
						  ?: DEFAULT_AUTHORITY);
		if (!authority ||
		    asprintf(&a->token_url, "%s/%s/oauth2/v2.0/token", authority, tenant) < 0) {
			a->token_url = NULL;
			return -ENOMEM;
		}
		if (fed && !a->client_secret && !(a->federated_file = strdup(fed)))
			return -ENOMEM;
	} else {
		a->auth = AUTH_MANAGED;
		imds = without_slash(env_nonempty("AZURE_POD_IDENTITY_AUTHORITY_HOST")
					     ?: DEFAULT_IMDS);
		if (!imds)
			return -ENOMEM;
		if (client && strspn(client, "0123456789abcdefABCDEF-") != strlen(client)) {
			snprintf(reason, reasonlen, "azure-kv: AZURE_CLIENT_ID is not a client id");
			return -EINVAL;
		}
		if (asprintf(&a->token_url,
			     "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
			     "https%%3A%%2F%%2Fvault.azure.net%s%s",
			     imds, client ? "&client_id=" : "", client ? client : "") < 0) {
			a->token_url = NULL;
			return -ENOMEM;
		}
	}
	if (client && !(a->client_id = strdup(client)))
		return -ENOMEM;
	return 0;
}

static int setup_http(struct azure *a, const struct config *cfg, bool tls, char *warning,
		      size_t warninglen, char *reason, size_t reasonlen)
{
	struct http_config hc = {
		.ca_file = cfg->http_ca_file,
		.ca_path = cfg->http_ca_path,
		.client_cert = cfg->http_client_cert,
		.client_key = cfg->http_client_key,
		.insecure = cfg->http_insecure,
		.connect_timeout_usec = cfg->http_connect_timeout_usec,
		.timeout_usec = cfg->http_timeout_usec,
		.max_body = cfg->http_max_body,
		.max_attempts = (unsigned)cfg->http_max_attempts,
	};
	char why[WHY_MAX];
	int r;

	if (!tls && !cfg->http_insecure) {
		snprintf(reason, reasonlen,
			 "azure-kv: %s is plain HTTP, which would send the token in clear: use "
			 "https://, or pass -o insecure",
			 a->base_url);
		return -EPERM;
	}
	if (cfg->http_insecure)
		snprintf(warning, warninglen,
			 "azure-kv %s: %s: anyone on the network path can read the token and the "
			 "secrets",
			 a->base_url,
			 tls ? "TLS certificate verification is off (-o insecure)"
			     : "plain HTTP (-o insecure)");
	r = http_client_new(&hc, &a->http, why, sizeof(why));
	if (r < 0)
		snprintf(reason, reasonlen, "azure-kv: %s: %s", a->base_url, why);
	return r;
}

static int azure_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		      size_t reasonlen)
{
	struct azure_source src = { 0 };
	char why[WHY_MAX], tok[AZURE_TOKEN_MAX + 1];
	struct azure *a;
	uint64_t gen;
	int r;

	r = azure_parse_source(arg, &src, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "source '%s': %s", b->source, why);
		return r;
	}
	if (cfg->name_separator && !azure_separator_is_valid(cfg->name_separator)) {
		snprintf(reason, reasonlen,
			 "azure-kv: name_separator '%.16s' must be 1-8 of the characters Key "
			 "Vault names hold ([0-9A-Za-z-]), such as --",
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
	pthread_mutex_init(&a->refresh_lock, NULL);
	pthread_mutex_init(&a->lock, NULL);
	if (cfg->name_separator && !(a->sep = strdup(cfg->name_separator))) {
		r = -ENOMEM;
		goto fail;
	}
	r = setup_http(a, cfg, src.tls, b->warning, sizeof(b->warning), reason, reasonlen);
	if (r < 0)
		goto fail;
	r = setup_auth(a, reason, reasonlen);
	if (r < 0)
		goto fail;
	/* A first token now: credentials that do not work stop the mount. */
	r = token_get(a, tok, &gen, why, sizeof(why));
	explicit_bzero(tok, sizeof(tok));
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
	uint64_t expires, real, now = now_usec();
	unsigned long refreshes;
	unsigned failures;
	bool have;
	char when[32];
	json_t *auth;
	int r = 0;

	pthread_mutex_lock(&a->lock);
	have = a->token != NULL && now < a->expires_usec;
	expires = a->expires_usec;
	real = a->expires_real;
	refreshes = a->refreshes;
	failures = a->failures;
	pthread_mutex_unlock(&a->lock);

	auth = json_object();
	if (!auth)
		return -ENOMEM;
	r |= json_object_set_new(auth, "method", json_string(auth_name(a->auth)));
	r |= json_object_set_new(auth, "state",
				 json_string(failures ? "refresh failing"
					     : have	  ? "ok"
							  : "expired"));
	if (have && format_rfc3339(real, when, sizeof(when)) == 0) {
		r |= json_object_set_new(auth, "token_expires", json_string(when));
		r |= json_object_set_new(auth, "token_ttl_seconds",
					 json_integer((json_int_t)((expires - now) / USEC_PER_SEC)));
	} else {
		r |= json_object_set_new(auth, "token_expires", json_null());
	}
	r |= json_object_set_new(auth, "renewable", json_true());
	r |= json_object_set_new(auth, "token_requests", json_integer((json_int_t)refreshes));
	r |= json_object_set_new(auth, "consecutive_failures", json_integer(failures));
	if (a->client_id)
		r |= json_object_set_new(auth, "client_id", json_string(a->client_id));
	r |= json_object_set_new(obj, "address", json_string(a->base_url));
	r |= json_object_set_new(obj, "api_version", json_string(API_VERSION));
	r |= json_object_set_new(obj, "name_separator",
				 a->sep ? json_string(a->sep) : json_null());
	r |= json_object_set_new(obj, "auth", auth);
	return r ? -ENOMEM : 0;
}

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
	.list = azure_list,
	.describe = azure_describe,
	.forget = azure_forget,
};
