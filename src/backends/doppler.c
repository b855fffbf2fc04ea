/*
 * doppler.c - Doppler (doppler), API v3.
 *
 *   doppler:PROJECT/CONFIG     or     doppler:   (the service token implies them)
 *
 * Doppler serves a whole config in one request,
 * GET /v3/configs/config/secrets/download?format=json&project=&config=, a
 * flat object NAME -> computed value.  So this backend reads documents, not
 * secrets: it keeps the last download (a SECRET_TABLE in locked memory) and
 * serves every fetch and listing from it while it is younger than the
 * cache's ttl.  An older one is revalidated by one thread, with
 * If-None-Match and the ETag it came with: 304 means unchanged and only its
 * age is reset.  Each value handed to the cache carries a ttl hint of the
 * document's remaining life, so the cache's entries all expire when the
 * document does, and one ttl period costs one request however many secrets
 * are read (docs/decisions.md, "Doppler: one document per ttl").
 *
 * The tree is flat: each secret a file named by its name.  A value that is
 * JSON text stays a file holding that text, as Doppler users expect.
 *
 * Credentials, as the Doppler CLI finds them: -o doppler_token_file=FILE
 * (the --token of the CLI), else DOPPLER_TOKEN (taken from the environment
 * and wiped there), else $CREDENTIALS_DIRECTORY/doppler-token.  The host is
 * -o doppler_api_host=, else DOPPLER_API_HOST, else https://api.doppler.com;
 * a project and config not given in SOURCE come from DOPPLER_PROJECT and
 * DOPPLER_CONFIG, else the service token's own.
 *
 * Errors are {"messages":[...],"success":false}: 401 and 403 -EACCES, 404
 * -ENOENT, 429 and 5xx transient (the HTTP layer has retried them).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backends/backends.h"
#include "backends/doppler_parse.h"
#include "backends/kit.h"
#include "secretfs/config.h"
#include "secretfs/http.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define DOPPLER_DEFAULT_HOST "https://api.doppler.com"
#define DOPPLER_TOKEN_MAX    512
#define DOPPLER_PATH	     "/v3/configs/config/secrets/download"
#define WHY_MAX		     BACKEND_REASON_MAX

struct doppler {
	char *host;		/* without a trailing '/' */
	char *project, *config; /* NULL: the token's own */
	char *url;		/* the download URL */
	char *what;		/* "doppler shop/prd": starts every reason */
	char token_from[256];
	struct secret *auth; /* "Bearer TOKEN" and its NUL */
	struct http_client *http;
	uint64_t ttl_usec;

	/* One revalidation at a time; taken before lock, never inside it. */
	pthread_mutex_t refresh;
	pthread_mutex_t lock;
	struct secret *doc;    /* the last download; protected by lock */
	char *etag;	       /* its ETag (locked memory) or NULL; protected by lock */
	uint64_t fetched_usec; /* when it was last confirmed (monotonic); protected by lock */
	bool must_ask;	       /* `ctl refresh`: not fresh whatever its age; protected by lock */
	uint64_t generation;   /* documents received that differed; protected by lock */
	uint64_t requests, not_modified; /* protected by lock */
	size_t hidden; /* names of the last document not shown; protected by lock */
};

/* ---- the document ---- */

/* Whether the document confirmed at @fetched is still fresh at @now. */
static bool doc_is_fresh(const struct doppler *d, uint64_t now)
{
	return d->doc && !d->must_ask && now - d->fetched_usec < d->ttl_usec;
}

/* Takes a reference to the fresh document and its remaining life; false when there is none. */
static bool doc_take_fresh(struct doppler *d, struct secret **ret, uint64_t *ret_left_usec,
			   uint64_t *ret_generation)
{
	uint64_t now = now_usec();
	bool fresh;

	pthread_mutex_lock(&d->lock);
	fresh = doc_is_fresh(d, now);
	if (fresh) {
		*ret = secret_ref(d->doc);
		*ret_left_usec = d->fetched_usec + d->ttl_usec - now;
		*ret_generation = d->generation;
	}
	pthread_mutex_unlock(&d->lock);
	return fresh;
}

static void doc_drop(struct doppler *d)
{
	struct secret *old;
	char *etag;

	pthread_mutex_lock(&d->lock);
	old = TAKE_PTR(d->doc);
	etag = TAKE_PTR(d->etag);
	pthread_mutex_unlock(&d->lock);
	secret_unref(old);
	secret_mem_free(etag);
}

/* An ETag we may send back: printable ASCII, no blanks that could split a header. */
static bool etag_is_usable(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && kit_credential_is_valid(s, n, 127);
}

/*
 * GETs the download, with If-None-Match when @etag is given.  Returns 0
 * with a 200 or 304 answer in @resp, else a negative errno and a reason.
 */
static int download(struct doppler *d, const char *etag, struct http_response *resp, char *reason,
		    size_t reasonlen)
{
	struct http_header h[2] = {
		{ "Authorization", (const char *)d->auth->data, true },
		{ "If-None-Match", etag, false },
	};
	char why[WHY_MAX], msg[KIT_ERROR_MESSAGE_MAX];
	int r;

	r = http_do(d->http,
		    &(struct http_request){
			    .method = "GET",
			    .url = d->url,
			    .headers = h,
			    .nheaders = etag ? 2 : 1,
		    },
		    resp, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "%s: %s", d->what, why);
		return r;
	}
	if (resp->status == 200 || resp->status == 304)
		return 0;
	doppler_parse_error(resp->body, resp->body_len, msg, sizeof(msg));
	r = kit_status_errno(resp->status);
	snprintf(reason, reasonlen, "%s: %ld%s%s", d->what, resp->status, msg[0] ? ": " : "", msg);
	http_response_done(resp);
	return r;
}

/*
 * A reference to a fresh document: the kept one while it is fresh, else
 * revalidated (304) or downloaded again (200) by one thread while the
 * others wait for it.  *ret_left_usec is how long it stays fresh.
 */
static int doc_get(struct doppler *d, struct secret **ret, uint64_t *ret_left_usec,
		   uint64_t *ret_generation, char *reason, size_t reasonlen)
{
	struct http_response resp = { 0 };
	struct secret *doc = NULL, *old = NULL;
	char *etag = NULL, *new_etag = NULL, why[WHY_MAX];
	size_t hidden = 0;
	int r;

	if (doc_take_fresh(d, ret, ret_left_usec, ret_generation))
		return 0;
	pthread_mutex_lock(&d->refresh);
	/* Another thread may have revalidated it while this one waited. */
	if (doc_take_fresh(d, ret, ret_left_usec, ret_generation)) {
		pthread_mutex_unlock(&d->refresh);
		return 0;
	}
	pthread_mutex_lock(&d->lock);
	if (d->doc && d->etag)
		etag = secret_mem_strdup(d->etag);
	d->requests++;
	pthread_mutex_unlock(&d->lock);
	r = download(d, etag, &resp, reason, reasonlen);
	secret_mem_free(etag);
	if (r >= 0 && resp.status == 200) {
		r = doppler_parse_download(resp.body, resp.body_len, &doc, &hidden, why,
					   sizeof(why));
		if (r < 0)
			snprintf(reason, reasonlen, "%s: %s", d->what, why);
		else if (etag_is_usable(resp.etag) && !(new_etag = secret_mem_strdup(resp.etag)))
			r = -ENOMEM;
	}
	explicit_bzero(resp.etag, sizeof(resp.etag));
	if (r >= 0) {
		pthread_mutex_lock(&d->lock);
		if (resp.status == 200) {
			old = d->doc;
			d->doc = doc;
			secret_mem_free(d->etag);
			d->etag = TAKE_PTR(new_etag);
			d->hidden = hidden;
			d->generation++;
		} else {
			d->not_modified++;
		}
		if (d->doc) {
			d->fetched_usec = now_usec();
			d->must_ask = false;
			*ret = secret_ref(d->doc);
			*ret_left_usec = d->ttl_usec;
			*ret_generation = d->generation;
		} else {
			/* A 304 to a request without If-None-Match: the server is confused. */
			snprintf(reason, reasonlen, "%s: 304 Not Modified with nothing kept",
				 d->what);
			r = -EBADMSG;
		}
		pthread_mutex_unlock(&d->lock);
	} else {
		secret_unref(doc);
		/* Transient: the ETag may still save a download once the store is back. */
		if (!backend_error_is_transient(r))
			doc_drop(d);
	}
	http_response_done(&resp);
	secret_mem_free(new_etag);
	pthread_mutex_unlock(&d->refresh);
	secret_unref(old);
	return r;
}

/* ---- the backend ---- */

static int doppler_fetch(struct backend *b, const char *id, struct secret **ret_value,
			 struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct doppler *d = b->priv;
	struct secret_entry e;
	struct secret *doc, *v;
	uint64_t left, gen;
	int r;

	if (strchr(id, '/')) {
		snprintf(reason, reasonlen, "%s: no secret %s (the tree is flat)", d->what, id);
		return -ENOENT;
	}
	r = doc_get(d, &doc, &left, &gen, reason, reasonlen);
	if (r < 0)
		return r;
	if (!secret_table_find(doc, id, &e)) {
		secret_unref(doc);
		snprintf(reason, reasonlen, "%s: no secret %s", d->what, id);
		return -ENOENT;
	}
	v = secret_dup(e.value, e.valuelen);
	secret_unref(doc);
	if (!v)
		return -ENOMEM;
	*ret_value = v;
	/* 0 (ttl=0, or the last microsecond) leaves the cache's own ttl in force. */
	*ret_info = (struct backend_info){ .ttl_hint_usec = left };
	/* The document's generation here, not its ETag: that may be a hash of the values. */
	snprintf(ret_info->version, sizeof(ret_info->version), "%llu", (unsigned long long)gen);
	return 0;
}

static int doppler_list(struct backend *b, const char *folder, struct secret **ret_listing,
			char *reason, size_t reasonlen)
{
	struct doppler *d = b->priv;
	const char **names = NULL;
	struct secret_entry e;
	struct secret *doc;
	uint64_t left, gen;
	size_t n;
	int r;

	if (*folder) {
		snprintf(reason, reasonlen, "%s: no folder %s (the tree is flat)", d->what, folder);
		return -ENOENT;
	}
	r = doc_get(d, &doc, &left, &gen, reason, reasonlen);
	if (r < 0)
		return r;
	n = secret_table_count(doc);
	names = calloc(n + 1, sizeof(*names));
	if (!names) {
		secret_unref(doc);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && secret_table_at(doc, i, &e); i++)
		names[i] = e.name;
	r = ns_listing_from_ids(names, n, "", ret_listing);
	free(names);
	secret_unref(doc);
	return r;
}

static int doppler_describe(struct backend *b, json_t *obj)
{
	struct doppler *d = b->priv;
	json_t *auth = json_object(), *doc = json_object();
	uint64_t now = now_usec();
	int r = 0;

	if (!auth || !doc) {
		json_decref(auth);
		json_decref(doc);
		return -ENOMEM;
	}
	pthread_mutex_lock(&d->lock);
	r |= json_object_set_new(doc, "kept", json_boolean(d->doc != NULL));
	r |= json_object_set_new(doc, "secrets",
				 json_integer(d->doc ? (json_int_t)secret_table_count(d->doc) : 0));
	r |= json_object_set_new(doc, "hidden_names", json_integer((json_int_t)d->hidden));
	r |= json_object_set_new(doc, "generation", json_integer((json_int_t)d->generation));
	r |= json_object_set_new(
		doc, "age_seconds",
		d->doc ? json_integer((json_int_t)((now - d->fetched_usec) / USEC_PER_SEC))
		       : json_null());
	r |= json_object_set_new(doc, "requests", json_integer((json_int_t)d->requests));
	r |= json_object_set_new(doc, "not_modified", json_integer((json_int_t)d->not_modified));
	pthread_mutex_unlock(&d->lock);
	r |= json_object_set_new(auth, "method", json_string("service token"));
	r |= json_object_set_new(auth, "from", json_string(d->token_from));
	r |= json_object_set_new(obj, "api_host", json_string(d->host));
	r |= json_object_set_new(obj, "project",
				 d->project ? json_string(d->project) : json_null());
	r |= json_object_set_new(obj, "config", d->config ? json_string(d->config) : json_null());
	r |= json_object_set_new(obj, "auth", auth);
	r |= json_object_set_new(obj, "document", doc);
	return r ? -ENOMEM : 0;
}

/* A flush: the kept document goes, and the next read downloads it again. */
static void doppler_forget(struct backend *b)
{
	struct doppler *d = b->priv;

	doc_drop(d);
	http_client_drop_idle(d->http);
}

/* `ctl refresh`: the next fetch asks the store, with the ETag (a 304 costs little). */
static void doppler_revalidate(struct backend *b)
{
	struct doppler *d = b->priv;

	pthread_mutex_lock(&d->lock);
	d->must_ask = true;
	pthread_mutex_unlock(&d->lock);
}

/* ---- setup ---- */

static void doppler_free(struct doppler *d)
{
	if (!d)
		return;
	http_client_free(d->http);
	secret_unref(d->doc);
	secret_mem_free(d->etag);
	secret_unref(d->auth);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->refresh);
	free(d->host);
	free(d->project);
	free(d->config);
	free(d->url);
	free(d->what);
	free(d);
}

/*
 * The service token, as "Bearer TOKEN" in locked memory.  DOPPLER_TOKEN
 * is taken from the environment whichever source wins, so that no child
 * and no reader of /proc sees it.
 */
static int load_token(struct doppler *d, const struct config *cfg, char *reason, size_t reasonlen)
{
	char *env = kit_env_take("DOPPLER_TOKEN"), path[4096], why[WHY_MAX];
	struct secret *tok = NULL;
	const char *dir;
	size_t n;
	int r = -ENOENT;

	if (cfg->doppler_token_file) {
		snprintf(d->token_from, sizeof(d->token_from), "%.200s", cfg->doppler_token_file);
		r = kit_read_credential(cfg->doppler_token_file, "token file", DOPPLER_TOKEN_MAX,
					&tok, why, sizeof(why));
	} else if (env) {
		snprintf(d->token_from, sizeof(d->token_from), "DOPPLER_TOKEN");
		n = strlen(env);
		if (!kit_credential_is_valid(env, n, DOPPLER_TOKEN_MAX)) {
			snprintf(why, sizeof(why),
				 "DOPPLER_TOKEN is not a token (1 to %d printable characters, no "
				 "blanks)",
				 DOPPLER_TOKEN_MAX);
			r = -EINVAL;
		} else {
			tok = secret_dup(env, n + 1);
			r = tok ? 0 : -ENOMEM;
		}
	} else if ((dir = kit_env("CREDENTIALS_DIRECTORY"))) {
		snprintf(path, sizeof(path), "%s/doppler-token", dir);
		snprintf(d->token_from, sizeof(d->token_from), "%.200s", path);
		r = kit_read_credential(path, "token file", DOPPLER_TOKEN_MAX, &tok, why,
					sizeof(why));
	}
	if (env)
		wipe_free(env, strlen(env));
	if (r == -ENOENT && !cfg->doppler_token_file && !tok) {
		snprintf(reason, reasonlen,
			 "doppler: no token: give -o doppler_token_file=FILE or DOPPLER_TOKEN "
			 "(also looked in $CREDENTIALS_DIRECTORY/doppler-token)");
		return -ENOKEY;
	}
	if (r < 0) {
		snprintf(reason, reasonlen, "doppler: %s", why);
		return r;
	}
	d->auth = secret_new(sizeof("Bearer ") - 1 + tok->len);
	if (!d->auth) {
		secret_unref(tok);
		return -ENOMEM;
	}
	memcpy(d->auth->data, "Bearer ", sizeof("Bearer ") - 1);
	memcpy(d->auth->data + sizeof("Bearer ") - 1, tok->data, tok->len);
	secret_unref(tok);
	return 0;
}

/* A project or config from the environment, checked like SOURCE's. */
static int name_from_env(const char *var, char **ret, char *reason, size_t reasonlen)
{
	const char *v = kit_env(var);

	*ret = NULL;
	if (!v)
		return 0;
	if (!doppler_name_is_valid(v)) {
		snprintf(reason, reasonlen,
			 "doppler: %s must be 1 to %d characters of [A-Za-z0-9._-]", var,
			 DOPPLER_NAME_MAX);
		return -EINVAL;
	}
	*ret = strdup(v);
	return *ret ? 0 : -ENOMEM;
}

static int build_url(struct doppler *d)
{
	_cleanup_free_ char *a = NULL, *b = NULL;

	if (asprintf(&a, "%s" DOPPLER_PATH "?format=json", d->host) < 0)
		return -ENOMEM;
	if (d->project) {
		b = kit_url_add_query(a, "project", d->project);
		if (!b)
			return -ENOMEM;
		free(a);
		a = TAKE_PTR(b);
	}
	if (d->config) {
		b = kit_url_add_query(a, "config", d->config);
		if (!b)
			return -ENOMEM;
		free(a);
		a = TAKE_PTR(b);
	}
	d->url = TAKE_PTR(a);
	if (asprintf(&d->what, "doppler %s/%s", d->project ? d->project : "(token's project)",
		     d->config ? d->config : "(token's config)") < 0) {
		d->what = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int doppler_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
			size_t reasonlen)
{
	struct doppler *d = calloc(1, sizeof(*d));
	const char *host;
	char why[WHY_MAX];
	int r;

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->refresh, NULL);
	d->ttl_usec = cfg->ttl_usec;
	r = doppler_parse_source(arg, &d->project, &d->config, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "source '%s': %s", b->source, why);
		goto fail;
	}
	if (!*arg) {
		r = name_from_env("DOPPLER_PROJECT", &d->project, reason, reasonlen);
		if (r >= 0)
			r = name_from_env("DOPPLER_CONFIG", &d->config, reason, reasonlen);
		if (r < 0)
			goto fail;
	}
	host = cfg->doppler_api_host ? cfg->doppler_api_host : kit_env("DOPPLER_API_HOST");
	d->host = strdup(host ? host : DOPPLER_DEFAULT_HOST);
	if (!d->host) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t n = strlen(d->host); n > 0 && d->host[n - 1] == '/'; n--)
		d->host[n - 1] = '\0';
	r = build_url(d);
	if (r < 0)
		goto fail;
	r = load_token(d, cfg, reason, reasonlen);
	if (r < 0)
		goto fail;
	r = kit_http_client_new(cfg,
				&(struct kit_http_opts){
					.name = "doppler",
					.url = d->host,
					.tls = strncasecmp(d->host, "https://", 8) == 0,
					.credential = "the Doppler token",
				},
				&d->http, b->warning, sizeof(b->warning), reason, reasonlen);
	if (r < 0)
		goto fail;
	b->priv = d;
	return 0;
fail:
	if (r == -ENOMEM && !*reason)
		snprintf(reason, reasonlen, "doppler: out of memory");
	doppler_free(d);
	b->warning[0] = '\0';
	return r;
}

static void doppler_done(struct backend *b)
{
	doppler_free(b->priv);
	b->priv = NULL;
}

const struct backend_ops doppler_backend_ops = {
	.scheme = "doppler",
	.no_folders = true,
	.init = doppler_init,
	.done = doppler_done,
	.fetch = doppler_fetch,
	.list = doppler_list,
	.describe = doppler_describe,
	.forget = doppler_forget,
	.revalidate = doppler_revalidate,
};
