/*
 * vault.c - HashiCorp Vault's KV secrets engine, versions 1 and 2.
 *
 *   vault:https://vault.example.com:8200/secret[/team/app]
 *   vault:secret[/team/app]                (the server from VAULT_ADDR)
 *
 * The path names a KV mount, optionally followed by a prefix under which
 * the tree is shown.  Which part is the mount, and the KV version, come from
 * GET sys/internal/ui/mounts/PATH, unless -o vault_kv_version=1|2 says the
 * version (then the first component is the mount and no call is made).
 *
 * KV v2 reads GET MOUNT/data/ID (value data.data, version
 * data.metadata.version) and lists with LIST MOUNT/metadata/ID/; a deleted
 * or destroyed latest version is not found.  KV v1 reads GET MOUNT/ID, whose
 * lease_duration is the TTL hint (never longer than the configured ttl:
 * Vault fills it with the mount's default of 32 days when the secret sets
 * none), and lists with LIST MOUNT/ID/.
 *
 * Settings come from -o/[vault]/[http] first, then from the environment the
 * vault CLI reads (VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, VAULT_CAPATH,
 * VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_NAMESPACE, VAULT_SKIP_VERIFY).
 * VAULT_SKIP_VERIFY alone never turns TLS verification off: that takes -o
 * insecure.  VAULT_TOKEN is copied, then wiped in place and unset, so
 * /proc/PID/environ and our children never show it.
 *
 * Authentication, per auth mount: a token (vault_token_file, VAULT_TOKEN,
 * $CREDENTIALS_DIRECTORY/vault-token, ~/.vault-token, in that order, checked
 * with lookup-self at init), AppRole (role_id and secret_id files; the
 * secret_id file may be removed after reading, as Vault Agent does, and the
 * last secret_id is kept for later logins) or Kubernetes (a role and the
 * service account JWT, read again for every login).
 *
 * A thread started in start() keeps the token alive: it renews it at about
 * two thirds of its TTL (with jitter), and logs in again (AppRole,
 * Kubernetes) when the token is not renewable, when a renewal comes back
 * shorter than asked (a max TTL is near) or when the token is gone.  A read
 * answered 403 asks lookup-self whether the token still works: if not, it
 * logs in again and retries once; if it does, the 403 is Vault's denial of
 * that secret (-EACCES).  Problems outside a request go to events.error.
 *
 * The token lives in one heap buffer guarded by v->lock and wiped when it is
 * replaced; a request copies it onto its stack and wipes the copy.  Files
 * and environment strings holding credentials are wiped after use.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backends/backends.h"
#include "backends/kit.h"
#include "backends/vault_parse.h"
#include "secretfs/config.h"
#include "secretfs/http.h"
#include "secretfs/namespace.h"
#include "secretfs/selector.h"
#include "secretfs/util.h"

#define DEFAULT_JWT_FILE "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define JWT_MAX		 (64 * 1024)
/* The lifecycle thread's requests: one attempt each, so stop() waits at most one. */
#define CTL_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define RETRY_MIN_USEC	 (1 * USEC_PER_SEC)
#define RETRY_MAX_USEC	 (60 * USEC_PER_SEC)
/* Below this, a token that cannot log in again is not worth renewing further. */
#define RENEW_FLOOR_USEC (2 * USEC_PER_SEC)

enum vault_auth_method {
	AUTH_TOKEN,
	AUTH_APPROLE,
	AUTH_KUBERNETES,
};

struct vault {
	struct backend *b;
	struct http_client *http; /* reads, and logins they trigger: with retries */
	struct http_client *ctl;  /* the lifecycle thread's: one attempt, it retries itself */
	char *base_url;		  /* "https://host:8200" */
	char *mount;		  /* "secret" */
	char *prefix;		  /* "" or "team/app" */
	char *read_url;		  /* base/v1/MOUNT/data/ (v2) or base/v1/MOUNT/ (v1) */
	char *list_url;		  /* base/v1/MOUNT/metadata/ (v2) or base/v1/MOUNT/ (v1) */
	int kv_version;
	char *namespace; /* NULL: none */
	uint64_t ttl_cap_usec;

	enum vault_auth_method auth;
	char *auth_mount; /* "approle", "kubernetes", or as configured */
	char *login_url;
	char *role;
	char *role_id_file;
	char *secret_id_file;
	char *jwt_file;
	bool remove_secret_id_file;

	pthread_mutex_t login_lock; /* one login at a time */
	struct secret *secret_id;   /* protected by login_lock: the last one read, NUL-ended */
	/*
	 * The token, NUL-ended, and its generation (wiped when replaced).
	 * Vault judges its expiry: the source holds it as never expiring, and
	 * the lifecycle thread below renews it and logs in again on time.
	 */
	struct kit_token_source *tokens;

	pthread_mutex_t lock;
	pthread_cond_t cond;	    /* wakes the lifecycle thread */
	struct vault_token_info ti; /* protected by lock */
	uint64_t ti_at_usec;	    /* protected by lock: when ti was true (monotonic) */
	uint64_t increment_usec;    /* protected by lock: what a renewal asks for */
	bool capped;		    /* protected by lock: the last renewal was cut short */
	uint64_t due_usec;	    /* protected by lock: next lifecycle step; UINT64_MAX never */
	unsigned failures;	    /* protected by lock: lifecycle failures in a row */
	bool warned_expiry;	    /* protected by lock */
	bool stop;		    /* protected by lock */
	bool thread_started;
	pthread_t thread;
};

/* ---- small helpers ---- */

static void wipe_strp(char **s)
{
	if (*s)
		wipe_free(*s, strlen(*s));
}
#define _cleanup_wipe_ __attribute__((cleanup(wipe_strp)))

/* Go's strconv.ParseBool, as the vault CLI reads VAULT_SKIP_VERIFY. */
static int parse_go_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * VAULT_TOKEN is taken (copied, then unset and wiped where it lived) whatever
 * the auth method: no child and no reader of /proc should see it.
 */
static char *take_env_token(void)
{
	return kit_env_take("VAULT_TOKEN");
}

/* ---- the token ---- */

/* The current token for one request; the caller puts it back with kit_token_put(). */
static int token_get(struct vault *v, struct kit_token_ref *ret)
{
	char why[BACKEND_REASON_MAX];

	return kit_token_get(v->tokens, ret, why, sizeof(why));
}

static uint64_t token_gen(struct vault *v)
{
	struct kit_token_state st;

	kit_token_state(v->tokens, &st);
	return st.gen;
}

/* When the lifecycle thread should next act; called with v->lock held. */
static void schedule_locked(struct vault *v)
{
	uint64_t ttl = v->ti.ttl_usec;

	v->failures = 0;
	if (ttl == 0) {
		v->due_usec = UINT64_MAX; /* never expires (a root token) */
		return;
	}
	/* About two thirds of the TTL, minus up to a tenth of it so clients spread out. */
	v->due_usec = v->ti_at_usec + ttl / 3 * 2 - kit_random_below(ttl / 10 + 1);
}

/*
 * Installs a new token (taking @tok, a secret holding the token and its
 * NUL) or, with @tok NULL, new facts about the current one (a renewal).
 * @at_usec is when the request was sent.
 */
static void token_set(struct vault *v, struct secret *tok, const struct vault_token_info *ti,
		      uint64_t at_usec, bool capped)
{
	if (tok)
		kit_token_set(v->tokens, tok, 0);
	pthread_mutex_lock(&v->lock);
	if (tok) {
		v->increment_usec = ti->creation_ttl_usec;
		v->warned_expiry = false;
	}
	v->ti = *ti;
	v->ti_at_usec = at_usec;
	v->capped = capped;
	schedule_locked(v);
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

/* Moves @tok (malloc'ed, @len bytes plus NUL) into secret memory and installs it. */
static int token_install(struct vault *v, char *tok, size_t len, const struct vault_token_info *ti,
			 uint64_t at_usec)
{
	struct secret *s = secret_dup(tok, len + 1);

	wipe_free(tok, len + 1);
	if (!s)
		return -ENOMEM;
	token_set(v, s, ti, at_usec, false);
	return 0;
}

/* ---- requests ---- */

static int vault_send(struct vault *v, struct http_client *c, const char *method, const char *url,
		      const char *token, const void *body, size_t body_len,
		      struct http_response *resp, char *reason, size_t reasonlen)
{
	struct http_header h[3];
	size_t n = 0;

	h[n++] = (struct http_header){ "X-Vault-Request", "true", false };
	if (v->namespace)
		h[n++] = (struct http_header){ "X-Vault-Namespace", v->namespace, false };
	if (token)
		h[n++] = (struct http_header){ "X-Vault-Token", token, true };
	return http_do(c,
		       &(struct http_request){ .method = method,
					       .url = url,
					       .headers = h,
					       .nheaders = n,
					       .body = body,
					       .body_len = body_len,
					       .content_type = body ? "application/json" : NULL },
		       resp, reason, reasonlen);
}

/* The part of @url after the server, for messages: "/v1/secret/data/app". */
static const char *url_path(const struct vault *v, const char *url)
{
	size_t bl = strlen(v->base_url);

	return strncmp(url, v->base_url, bl) == 0 ? url + bl : url;
}

/* A non-2xx answer as an errno and "WHAT: Vault's message (STATUS)" (@what may be NULL). */
static int status_error(const struct http_response *resp, const char *what, char *reason,
			size_t reasonlen)
{
	char msg[VAULT_ERROR_MAX + 1];
	int r = kit_status_errno(resp->status);

	vault_parse_error(resp->body, resp->body_len, msg, sizeof(msg));
	if (!msg[0]) {
		const char *d = resp->status == 403   ? "permission denied"
				: resp->status == 404 ? "not found"
				: resp->status == 429 ? "too many requests"
				: resp->status >= 500 ? "server error"
						      : "request failed";

		snprintf(msg, sizeof(msg), "%s", d);
	}
	if (what)
		snprintf(reason, reasonlen, "%s: %s (%ld)", what, msg, resp->status);
	else
		snprintf(reason, reasonlen, "%s (%ld)", msg, resp->status);
	return r ? r : -EIO;
}

static int lookup_self(struct vault *v, struct http_client *c, const char *token,
		       struct vault_token_info *ret, char *reason, size_t reasonlen)
{
	_cleanup_free_ char *url = NULL;
	struct http_response resp = { 0 };
	int r;

	if (asprintf(&url, "%s/v1/auth/token/lookup-self", v->base_url) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	r = vault_send(v, c, "GET", url, token, NULL, 0, &resp, reason, reasonlen);
	if (r < 0)
		return r;
	if (resp.status == 200)
		r = vault_parse_lookup_self(resp.body, resp.body_len, ret, reason, reasonlen);
	else
		r = status_error(&resp, NULL, reason, reasonlen);
	http_response_done(&resp);
	return r;
}

/* A login body, {"role_id":..,"secret_id":..} or {"role":..,"jwt":..}; the caller wipes it. */
static int login_body(const char *k1, const char *v1, const char *k2, const char *v2, char **ret,
		      size_t *ret_len)
{
	json_t *o = json_object();
	size_t n;
	char *buf;

	if (!o)
		return -ENOMEM;
	if (json_object_set_new(o, k1, json_string(v1)) < 0 ||
	    (k2 && json_object_set_new(o, k2, json_string(v2)) < 0)) {
		json_decref(o);
		return -ENOMEM;
	}
	n = json_dumpb(o, NULL, 0, JSON_COMPACT);
	buf = n ? malloc(n) : NULL;
	if (!buf || json_dumpb(o, buf, n, JSON_COMPACT) != n) {
		if (buf)
			wipe_free(buf, n);
		json_decref(o);
		return -ENOMEM;
	}
	json_decref(o);
	*ret = buf;
	*ret_len = n;
	return 0;
}

/*
 * Reads the AppRole secret_id: from its file when the file is there (a new
 * one may have been delivered), else the one read last time.  Called with
 * login_lock held.
 */
static int approle_secret_id(struct vault *v, char *reason, size_t reasonlen)
{
	struct secret *sid = NULL;
	int r;

	r = kit_read_credential(v->secret_id_file, "secret_id file", VAULT_TOKEN_MAX, &sid, reason,
				reasonlen);
	if (r == -ENOENT && v->secret_id)
		return 0;
	if (r < 0)
		return r;
	secret_unref(v->secret_id);
	v->secret_id = sid;
	if (v->remove_secret_id_file && unlink(v->secret_id_file) < 0 && errno != ENOENT) {
		snprintf(reason, reasonlen, "secret_id file %s: cannot remove it: %s",
			 v->secret_id_file, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Logs in with AppRole or Kubernetes and installs the token.  login_lock held. */
static int login_locked(struct vault *v, struct http_client *c, char *reason, size_t reasonlen)
{
	_cleanup_secret_ struct secret *cred = NULL;
	struct http_response resp = { 0 };
	struct vault_token_info ti;
	char *body = NULL, *tok = NULL;
	size_t body_len = 0, tok_len = 0;
	uint64_t at;
	int r;

	if (v->auth == AUTH_APPROLE) {
		r = kit_read_credential(v->role_id_file, "role_id file", VAULT_TOKEN_MAX, &cred,
					reason, reasonlen);
		if (r >= 0 && v->secret_id_file)
			r = approle_secret_id(v, reason, reasonlen);
		if (r >= 0)
			r = login_body("role_id", kit_cred_str(cred),
				       v->secret_id_file ? "secret_id" : NULL,
				       v->secret_id ? kit_cred_str(v->secret_id) : NULL, &body,
				       &body_len);
	} else {
		/* Kubernetes rotates the projected token: read it for every login. */
		r = kit_read_credential(v->jwt_file, "JWT file", JWT_MAX, &cred, reason, reasonlen);
		if (r >= 0)
			r = login_body("role", v->role, "jwt", kit_cred_str(cred), &body,
				       &body_len);
	}
	if (r < 0)
		return r;
	at = now_usec();
	r = vault_send(v, c, "POST", v->login_url, NULL, body, body_len, &resp, reason, reasonlen);
	wipe_free(body, body_len);
	if (r < 0)
		return r;
	if (resp.status == 200)
		r = vault_parse_auth(resp.body, resp.body_len, &tok, &tok_len, &ti, reason,
				     reasonlen);
	else
		r = status_error(&resp, NULL, reason, reasonlen);
	http_response_done(&resp);
	if (r < 0)
		return r;
	return token_install(v, tok, tok_len, &ti, at);
}

/*
 * Logs in again unless another thread already did since the token of
 * generation @gen was used.
 */
static int relogin(struct vault *v, struct http_client *c, uint64_t gen, char *reason,
		   size_t reasonlen)
{
	uint64_t cur;
	int r = 0;

	pthread_mutex_lock(&v->login_lock);
	cur = token_gen(v);
	if (cur == gen)
		r = login_locked(v, c, reason, reasonlen);
	pthread_mutex_unlock(&v->login_lock);
	return r;
}

/*
 * Sends a read-type request with the current token.  A 403 while we can
 * log in again asks lookup-self about the token: a token Vault no longer
 * knows means a new login and one more try; a token that works means the
 * 403 is about the path, and goes back to the caller as it came.
 */
static int vault_call(struct vault *v, const char *method, const char *url,
		      struct http_response *resp, char *reason, size_t reasonlen)
{
	struct kit_token_ref tok = { 0 };
	struct vault_token_info ti;
	char why[BACKEND_REASON_MAX];
	int r;

	for (int tries = 0;; tries++) {
		r = token_get(v, &tok);
		if (r < 0) {
			snprintf(reason, reasonlen, "no token");
			break;
		}
		r = vault_send(v, v->http, method, url, kit_cred_str(tok.s), NULL, 0, resp, reason,
			       reasonlen);
		if (r < 0 || resp->status != 403 || tries > 0 || v->auth == AUTH_TOKEN)
			break;
		if (lookup_self(v, v->http, kit_cred_str(tok.s), &ti, why, sizeof(why)) != -EACCES)
			break; /* the token works (or we cannot tell): a denial */
		http_response_done(resp);
		r = relogin(v, v->http, tok.gen, why, sizeof(why));
		kit_token_put(&tok);
		if (r < 0) {
			snprintf(reason, reasonlen,
				 "the token is no longer valid and logging in "
				 "again failed: %s",
				 why);
			break;
		}
	}
	kit_token_put(&tok);
	return r;
}

/* base + escaped "prefix/id" + (@slash ? "/" : ""). */
static char *secret_url(const struct vault *v, const char *base, const char *id, bool slash)
{
	_cleanup_free_ char *joined = NULL, *esc = NULL;
	char *url;

	joined = *id ? ns_join(v->prefix, id) : strdup(v->prefix);
	if (!joined)
		return NULL;
	esc = http_escape_path(joined, true);
	if (!esc)
		return NULL;
	if (asprintf(&url, "%s%s%s", base, esc, slash && *esc ? "/" : "") < 0)
		return NULL;
	return url;
}

/* ---- fetch and list ---- */

/*
 * Sends @method to @base + @id (+ "/" when @slash) with the token; @what
 * gets "vault: METHOD /v1/...", which prefixes the reason of a failure.
 */
static int secret_request(struct vault *v, const char *method, const char *base, const char *id,
			  bool slash, struct http_response *resp, char *what, size_t whatlen,
			  char *reason, size_t reasonlen)
{
	_cleanup_free_ char *url = secret_url(v, base, id, slash);
	int r;

	if (!url)
		return -ENOMEM;
	snprintf(what, whatlen, "vault: %s %s", method, url_path(v, url));
	r = vault_call(v, method, url, resp, reason, reasonlen);
	if (r < 0)
		kit_reason_prefix(reason, reasonlen, "%s", what);
	return r;
}

static int vault_fetch(struct backend *b, const char *id, struct secret **ret_value,
		       struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct vault *v = b->priv;
	struct http_response resp = { 0 };
	char what[BACKEND_REASON_MAX / 2];
	int r;

	r = secret_request(v, "GET", v->read_url, id, false, &resp, what, sizeof(what), reason,
			   reasonlen);
	if (r < 0)
		return r;
	if (v->kv_version == 2 && (resp.status == 200 || resp.status == 404)) {
		r = vault_parse_kv2_read(resp.status, resp.body, resp.body_len, ret_value, ret_info,
					 reason, reasonlen);
	} else if (v->kv_version == 1 && resp.status == 200) {
		r = vault_parse_kv1_read(resp.body, resp.body_len, ret_value, ret_info, reason,
					 reasonlen);
		if (r >= 0 && ret_info->ttl_hint_usec > v->ttl_cap_usec)
			ret_info->ttl_hint_usec = v->ttl_cap_usec;
	} else {
		r = status_error(&resp, what, reason, reasonlen);
		http_response_done(&resp);
		return r;
	}
	http_response_done(&resp);
	if (r < 0)
		kit_reason_prefix(reason, reasonlen, "%s", what);
	return r;
}

/* GET MOUNT/metadata/ID: every version's facts, and which one "previous" is. */
static int kv2_metadata(struct vault *v, const char *id, json_t **ret_versions,
			uint64_t *ret_previous, char *reason, size_t reasonlen)
{
	struct http_response resp = { 0 };
	char what[BACKEND_REASON_MAX / 2];
	int r;

	r = secret_request(v, "GET", v->list_url, id, false, &resp, what, sizeof(what), reason,
			   reasonlen);
	if (r < 0)
		return r;
	if (resp.status == 200) {
		r = vault_parse_kv2_metadata(resp.body, resp.body_len, ret_versions, ret_previous,
					     reason, reasonlen);
		if (r < 0)
			kit_reason_prefix(reason, reasonlen, "%s", what);
	} else {
		r = status_error(&resp, what, reason, reasonlen);
	}
	http_response_done(&resp);
	return r;
}

/*
 * KV v2 only: N is GET data/ID?version=N, previous the newest live version
 * below current from the metadata.  KV v1 keeps one value.
 */
static int vault_fetch_at(struct backend *b, const char *id, const struct selector *sel,
			  struct secret **ret_value, struct backend_info *ret_info, char *reason,
			  size_t reasonlen)
{
	struct vault *v = b->priv;
	struct http_response resp = { 0 };
	_cleanup_free_ char *url = NULL, *full = NULL;
	char what[BACKEND_REASON_MAX / 2];
	uint64_t number;
	int r;

	if (v->kv_version != 2) {
		snprintf(reason, reasonlen, "vault: a KV v1 mount keeps no versions");
		return -ENOENT;
	}
	if (sel->kind == SELECTOR_PREVIOUS) {
		r = kv2_metadata(v, id, NULL, &number, reason, reasonlen);
		if (r < 0)
			return r;
		if (number == 0) {
			snprintf(reason, reasonlen, "vault: '%s' has no live version below the current one", id);
			return -ENOENT;
		}
	} else if (sel->kind == SELECTOR_NUMBER) {
		number = sel->number;
	} else {
		snprintf(reason, reasonlen, "vault: KV v2 serves current, previous and N, not %s",
			 selector_kind_name(sel->kind));
		return -ENOENT;
	}
	url = secret_url(v, v->read_url, id, false);
	if (!url || asprintf(&full, "%s?version=%" PRIu64, url, number) < 0) {
		full = NULL;
		return -ENOMEM;
	}
	snprintf(what, sizeof(what), "vault: GET %s", url_path(v, full));
	r = vault_call(v, "GET", full, &resp, reason, reasonlen);
	if (r < 0) {
		kit_reason_prefix(reason, reasonlen, "%s", what);
		return r;
	}
	if (resp.status == 200 || resp.status == 404)
		r = vault_parse_kv2_read(resp.status, resp.body, resp.body_len, ret_value, ret_info,
					 reason, reasonlen);
	else
		r = status_error(&resp, what, reason, reasonlen);
	http_response_done(&resp);
	if (r < 0)
		kit_reason_prefix(reason, reasonlen, "%s", what);
	return r;
}

static int vault_list_versions(struct backend *b, const char *id, json_t **ret_list, char *reason,
			       size_t reasonlen)
{
	struct vault *v = b->priv;
	uint64_t previous;

	if (v->kv_version != 2) {
		snprintf(reason, reasonlen, "vault: a KV v1 mount keeps no versions");
		return -ENOENT;
	}
	return kv2_metadata(v, id, ret_list, &previous, reason, reasonlen);
}

static int vault_list(struct backend *b, const char *prefix, struct secret **ret_listing,
		      char *reason, size_t reasonlen)
{
	struct vault *v = b->priv;
	struct http_response resp = { 0 };
	char what[BACKEND_REASON_MAX / 2];
	int r;

	r = secret_request(v, "LIST", v->list_url, prefix, true, &resp, what, sizeof(what), reason,
			   reasonlen);
	if (r < 0)
		return r;
	if (resp.status == 200) {
		r = vault_parse_list(resp.body, resp.body_len, ret_listing, reason, reasonlen);
		if (r < 0)
			kit_reason_prefix(reason, reasonlen, "%s", what);
	} else if (resp.status == 404 && !*prefix) {
		/* The top always exists: an empty mount (or prefix) answers 404. */
		r = ns_listing_from_keys(NULL, 0, ret_listing);
	} else {
		/* A 404 elsewhere: Vault keeps no empty folders. */
		r = status_error(&resp, what, reason, reasonlen);
	}
	http_response_done(&resp);
	return r;
}

/* ---- the token's lifecycle ---- */

/*
 * Renews the token for as long as it was first given.  A renewal that comes
 * back shorter than asked has hit a max TTL: the token will end soon.
 */
static int renew(struct vault *v, char *reason, size_t reasonlen)
{
	struct kit_token_ref tok = { 0 };
	char body[64], *same = NULL;
	_cleanup_free_ char *url = NULL;
	struct http_response resp = { 0 };
	struct vault_token_info ti;
	uint64_t gen, inc, at;
	size_t same_len = 0;
	int r;

	if (asprintf(&url, "%s/v1/auth/token/renew-self", v->base_url) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	pthread_mutex_lock(&v->lock);
	inc = v->increment_usec;
	pthread_mutex_unlock(&v->lock);
	r = token_get(v, &tok);
	if (r < 0)
		return r;
	gen = tok.gen;
	snprintf(body, sizeof(body), "{\"increment\":\"%" PRIu64 "s\"}", inc / USEC_PER_SEC);
	at = now_usec();
	r = vault_send(v, v->ctl, "POST", url, kit_cred_str(tok.s), body, strlen(body), &resp,
		       reason, reasonlen);
	kit_token_put(&tok);
	if (r < 0)
		return r;
	if (resp.status == 200)
		r = vault_parse_auth(resp.body, resp.body_len, &same, &same_len, &ti, reason,
				     reasonlen);
	else
		r = status_error(&resp, NULL, reason, reasonlen);
	http_response_done(&resp);
	if (r < 0)
		return r;
	wipe_free(same, same_len + 1);
	if (!kit_token_extend(v->tokens, gen, 0))
		return 0; /* logged in again meanwhile: that token is news enough */
	token_set(v, NULL, &ti, at, ti.ttl_usec + USEC_PER_SEC < inc);
	return 0;
}

/* Reports a lifecycle failure and schedules the next try, backing off. */
static void lifecycle_failed(struct vault *v, const char *what, const char *why)
{
	char msg[BACKEND_REASON_MAX], in[32];
	uint64_t delay;

	pthread_mutex_lock(&v->lock);
	delay = v->failures >= 6 ? RETRY_MAX_USEC : RETRY_MIN_USEC << v->failures;
	if (delay > RETRY_MAX_USEC)
		delay = RETRY_MAX_USEC;
	v->failures++;
	v->due_usec = now_usec() + delay;
	pthread_mutex_unlock(&v->lock);
	kit_format_duration(delay, in, sizeof(in));
	snprintf(msg, sizeof(msg), "vault %s: %s failed: %s; trying again in %s", v->base_url, what,
		 why, in);
	if (v->b->events.error)
		v->b->events.error(v->b->events.ctx, msg);
}

/* A token we cannot log in again for is about to end: say so once. */
static void warn_expiry(struct vault *v, bool renewable, uint64_t remaining)
{
	char msg[BACKEND_REASON_MAX], in[32];
	bool warned;

	pthread_mutex_lock(&v->lock);
	warned = v->warned_expiry;
	v->warned_expiry = true;
	v->due_usec = UINT64_MAX;
	pthread_mutex_unlock(&v->lock);
	if (warned || !v->b->events.error)
		return;
	kit_format_duration(remaining, in, sizeof(in));
	snprintf(msg, sizeof(msg),
		 "vault %s: the token %s and expires in %s; reads fail after that: give "
		 "secretfs a new token (restart it), or use -o vault_auth=approle or kubernetes",
		 v->base_url, renewable ? "reaches its maximum TTL" : "is not renewable", in);
	v->b->events.error(v->b->events.ctx, msg);
}

static void lifecycle_step(struct vault *v)
{
	char reason[BACKEND_REASON_MAX] = "";
	uint64_t gen, expires, now, remaining;
	bool renewable, capped;
	int r;

	gen = token_gen(v);
	pthread_mutex_lock(&v->lock);
	renewable = v->ti.renewable;
	capped = v->capped;
	expires = v->ti_at_usec + v->ti.ttl_usec;
	pthread_mutex_unlock(&v->lock);
	now = now_usec();
	remaining = expires > now ? expires - now : 0;

	if (v->auth == AUTH_TOKEN) {
		if (!renewable || (capped && remaining <= RENEW_FLOOR_USEC)) {
			warn_expiry(v, renewable, remaining);
			return;
		}
		r = renew(v, reason, sizeof(reason));
		if (r < 0) {
			lifecycle_failed(v, "token renewal", reason);
			return;
		}
		pthread_mutex_lock(&v->lock);
		capped = v->capped;
		remaining = v->ti.ttl_usec;
		pthread_mutex_unlock(&v->lock);
		if (capped)
			warn_expiry(v, true, remaining);
		return;
	}
	/* A login method renews while it can, and logs in again when it cannot. */
	if (renewable && !capped && renew(v, reason, sizeof(reason)) >= 0)
		return;
	r = relogin(v, v->ctl, gen, reason, sizeof(reason));
	if (r < 0)
		lifecycle_failed(v, "logging in again", reason);
}

static void *lifecycle_thread(void *arg)
{
	struct vault *v = arg;

	pthread_mutex_lock(&v->lock);
	while (!v->stop) {
		uint64_t due = v->due_usec;

		if (due > now_usec()) {
			if (due == UINT64_MAX) {
				pthread_cond_wait(&v->cond, &v->lock);
			} else {
				struct timespec ts = {
					.tv_sec = (time_t)(due / USEC_PER_SEC),
					.tv_nsec = (long)(due % USEC_PER_SEC) * 1000,
				};

				pthread_cond_timedwait(&v->cond, &v->lock, &ts);
			}
			continue;
		}
		v->due_usec = UINT64_MAX; /* the step sets the next time */
		pthread_mutex_unlock(&v->lock);
		lifecycle_step(v);
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* ---- init ---- */

/* Where the token comes from, in the vault CLI's order plus systemd's credentials. */
static int token_from_somewhere(const struct config *cfg, char **env_token, struct secret **ret,
				char *origin, size_t originlen, char *reason, size_t reasonlen)
{
	char path[4096];
	const char *dir;
	int r;

	if (cfg->vault_token_file) {
		snprintf(origin, originlen, "token file %s", cfg->vault_token_file);
		return kit_read_credential(cfg->vault_token_file, "token file", VAULT_TOKEN_MAX,
					   ret, reason, reasonlen);
	}
	if (*env_token) {
		size_t len = strlen(*env_token);

		snprintf(origin, originlen, "VAULT_TOKEN");
		if (!vault_token_is_valid(*env_token, len)) {
			snprintf(reason, reasonlen,
				 "VAULT_TOKEN is not a token (printable characters only)");
			return -EINVAL;
		}
		*ret = secret_dup(*env_token, len + 1);
		return *ret ? 0 : -ENOMEM;
	}
	dir = kit_env("CREDENTIALS_DIRECTORY");
	if (dir) {
		snprintf(path, sizeof(path), "%s/vault-token", dir);
		snprintf(origin, originlen, "%.200s", path);
		r = kit_read_credential(path, "token file", VAULT_TOKEN_MAX, ret, reason,
					reasonlen);
		if (r != -ENOENT)
			return r;
	}
	dir = kit_home_dir();
	if (dir) {
		snprintf(path, sizeof(path), "%s/.vault-token", dir);
		snprintf(origin, originlen, "%.200s", path);
		r = kit_read_credential(path, "token file", VAULT_TOKEN_MAX, ret, reason,
					reasonlen);
		if (r != -ENOENT)
			return r;
	}
	snprintf(reason, reasonlen,
		 "no token: give -o vault_token_file=FILE or VAULT_TOKEN (also looked in "
		 "$CREDENTIALS_DIRECTORY/vault-token and ~/.vault-token), or log in with -o "
		 "vault_auth=approle or kubernetes");
	return -ENOENT;
}

static int authenticate(struct vault *v, const struct config *cfg, char **env_token, char *reason,
			size_t reasonlen)
{
	char why[BACKEND_REASON_MAX] = "", origin[256] = "";
	struct vault_token_info ti;
	struct secret *tok = NULL;
	uint64_t at;
	int r;

	if (v->auth != AUTH_TOKEN) {
		pthread_mutex_lock(&v->login_lock);
		r = login_locked(v, v->http, why, sizeof(why));
		pthread_mutex_unlock(&v->login_lock);
		if (r < 0)
			snprintf(reason, reasonlen, "vault: %s: %s login at auth/%s failed: %s",
				 v->base_url, v->auth == AUTH_APPROLE ? "AppRole" : "Kubernetes",
				 v->auth_mount, why);
		return r;
	}
	r = token_from_somewhere(cfg, env_token, &tok, origin, sizeof(origin), why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "vault: %s: %s", v->base_url, why);
		return r;
	}
	at = now_usec();
	r = lookup_self(v, v->http, kit_cred_str(tok), &ti, why, sizeof(why));
	if (r < 0) {
		secret_unref(tok);
		snprintf(reason, reasonlen, "vault: %s: token lookup failed (token from %s): %s",
			 v->base_url, origin, why);
		return r;
	}
	token_set(v, tok, &ti, at, false);
	return 0;
}

/* Finds the mount and its KV version from ui/mounts, or from vault_kv_version. */
static int find_mount(struct vault *v, const char *path, const char *kv_version, char *reason,
		      size_t reasonlen)
{
	_cleanup_free_ char *esc = NULL, *url = NULL;
	struct vault_mount_info mi = { 0 };
	struct http_response resp = { 0 };
	char why[BACKEND_REASON_MAX] = "";
	const char *slash;
	int r;

	if (kv_version) {
		/* No call: the first component is the mount. */
		slash = strchr(path, '/');
		v->kv_version = kv_version[0] - '0';
		v->mount = slash ? strndup(path, (size_t)(slash - path)) : strdup(path);
		v->prefix = strdup(slash ? slash + 1 : "");
		return v->mount && v->prefix ? 0 : -ENOMEM;
	}
	esc = http_escape_path(path, true);
	if (!esc || asprintf(&url, "%s/v1/sys/internal/ui/mounts/%s", v->base_url, esc) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	r = vault_call(v, "GET", url, &resp, why, sizeof(why));
	if (r >= 0) {
		if (resp.status == 200)
			r = vault_parse_mount(resp.body, resp.body_len, path, &mi, why,
					      sizeof(why));
		else
			r = status_error(&resp, NULL, why, sizeof(why));
		http_response_done(&resp);
	}
	if (r < 0) {
		snprintf(reason, reasonlen,
			 "vault: %s: cannot tell the mount and KV version of '%s' from "
			 "sys/internal/ui/mounts: %s%s",
			 v->base_url, path, why,
			 r == -EACCES ? "; set -o vault_kv_version=1 or 2" : "");
		return r;
	}
	v->kv_version = mi.kv_version;
	v->mount = mi.mount;
	v->prefix = strdup(path[strlen(mi.mount)] == '/' ? path + strlen(mi.mount) + 1 : "");
	return v->prefix ? 0 : -ENOMEM;
}

static char *trimmed_dup(const char *s)
{
	size_t n;

	while (*s == '/')
		s++;
	n = strlen(s);
	while (n && s[n - 1] == '/')
		n--;
	return strndup(s, n);
}

static void vault_free(struct vault *v)
{
	if (!v)
		return;
	http_client_free(v->http);
	http_client_free(v->ctl);
	kit_token_free(v->tokens);
	secret_unref(v->secret_id);
	free(v->base_url);
	free(v->mount);
	free(v->prefix);
	free(v->read_url);
	free(v->list_url);
	free(v->namespace);
	free(v->auth_mount);
	free(v->login_url);
	free(v->role);
	free(v->role_id_file);
	free(v->secret_id_file);
	free(v->jwt_file);
	pthread_mutex_destroy(&v->login_lock);
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->cond);
	free(v);
}

/* The auth settings: method, mount and the files it reads. */
static int setup_auth(struct vault *v, const struct config *cfg, char *reason, size_t reasonlen)
{
	const char *method = cfg->vault_auth ? cfg->vault_auth : "token";
	_cleanup_free_ char *esc = NULL;

	if (strcmp(method, "token") == 0) {
		v->auth = AUTH_TOKEN;
		return 0;
	} else if (strcmp(method, "approle") == 0) {
		v->auth = AUTH_APPROLE;
		if (!cfg->vault_role_id_file) {
			snprintf(reason, reasonlen,
				 "vault: vault_auth=approle needs -o vault_role_id_file=FILE (and "
				 "vault_secret_id_file=FILE unless the role binds no secret_id)");
			return -EINVAL;
		}
		v->role_id_file = strdup(cfg->vault_role_id_file);
		if (!v->role_id_file)
			return -ENOMEM;
		if (cfg->vault_secret_id_file) {
			v->secret_id_file = strdup(cfg->vault_secret_id_file);
			if (!v->secret_id_file)
				return -ENOMEM;
		}
		v->remove_secret_id_file = cfg->vault_remove_secret_id_file;
	} else if (strcmp(method, "kubernetes") == 0) {
		v->auth = AUTH_KUBERNETES;
		if (!cfg->vault_role || !*cfg->vault_role) {
			snprintf(reason, reasonlen,
				 "vault: vault_auth=kubernetes needs -o vault_role=ROLE");
			return -EINVAL;
		}
		v->role = strdup(cfg->vault_role);
		v->jwt_file = strdup(cfg->vault_jwt_file ? cfg->vault_jwt_file : DEFAULT_JWT_FILE);
		if (!v->role || !v->jwt_file)
			return -ENOMEM;
	} else {
		snprintf(reason, reasonlen,
			 "vault: vault_auth '%.32s' is not known: use token, approle or kubernetes",
			 method);
		return -EINVAL;
	}
	v->auth_mount = trimmed_dup(cfg->vault_auth_mount ? cfg->vault_auth_mount : method);
	if (!v->auth_mount)
		return -ENOMEM;
	if (!ns_id_is_safe(v->auth_mount)) {
		snprintf(reason, reasonlen, "vault: vault_auth_mount '%.64s' is not a mount path",
			 cfg->vault_auth_mount);
		return -EINVAL;
	}
	esc = http_escape_path(v->auth_mount, true);
	if (!esc || asprintf(&v->login_url, "%s/v1/auth/%s/login", v->base_url, esc) < 0) {
		v->login_url = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* TLS settings: the config first, then the vault CLI's environment. */
static int setup_http(struct vault *v, const struct config *cfg, bool tls, char *warning,
		      size_t warninglen, char *reason, size_t reasonlen)
{
	const struct kit_http_opts o = {
		.name = "vault",
		.url = v->base_url,
		.tls = tls,
		.credential = "the Vault token",
		.ca_file_env = "VAULT_CACERT",
		.ca_path_env = "VAULT_CAPATH",
		.client_cert_env = "VAULT_CLIENT_CERT",
		.client_key_env = "VAULT_CLIENT_KEY",
	};
	const char *skip = kit_env("VAULT_SKIP_VERIFY");
	char why[BACKEND_REASON_MAX];
	bool skip_verify = false;
	struct http_config hc;
	int r;

	if (skip && parse_go_bool(skip, &skip_verify) < 0) {
		snprintf(reason, reasonlen,
			 "vault: VAULT_SKIP_VERIFY='%.16s' is not a boolean (true or false)", skip);
		return -EINVAL;
	}
	if (skip_verify && !cfg->http_insecure) {
		snprintf(
			reason, reasonlen,
			"vault: VAULT_SKIP_VERIFY is set, but secretfs does not turn TLS "
			"verification off from the environment: give the server's CA with -o "
			"ca_file=FILE (or VAULT_CACERT), or pass -o insecure to skip verification");
		return -EPERM;
	}
	r = kit_http_config(cfg, &o, &hc, warning, warninglen, reason, reasonlen);
	if (r < 0)
		return r;
	r = http_client_new(&hc, &v->http, why, sizeof(why));
	if (r >= 0) {
		hc.max_attempts = 1;
		if (!hc.timeout_usec || hc.timeout_usec > CTL_TIMEOUT_USEC)
			hc.timeout_usec = CTL_TIMEOUT_USEC;
		r = http_client_new(&hc, &v->ctl, why, sizeof(why));
	}
	if (r < 0)
		snprintf(reason, reasonlen, "vault: %s: %s", v->base_url, why);
	return r;
}

static int vault_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		      size_t reasonlen)
{
	_cleanup_wipe_ char *env_token = take_env_token();
	_cleanup_free_ char *emount = NULL;
	struct vault_addr addr = { 0 };
	pthread_condattr_t ca;
	const char *ns, *kv = cfg->vault_kv_version;
	char why[BACKEND_REASON_MAX];
	struct vault *v;
	int r;

	r = vault_parse_source(arg, getenv("VAULT_ADDR"), &addr, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "source '%s': %s", b->source, why);
		return r;
	}
	if (kv && strcmp(kv, "auto") == 0)
		kv = NULL;
	if (kv && strcmp(kv, "1") != 0 && strcmp(kv, "2") != 0) {
		snprintf(reason, reasonlen, "vault: vault_kv_version must be auto, 1 or 2");
		vault_addr_done(&addr);
		return -EINVAL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		vault_addr_done(&addr);
		return -ENOMEM;
	}
	v->b = b;
	v->base_url = TAKE_PTR(addr.base_url);
	pthread_mutex_init(&v->login_lock, NULL);
	pthread_mutex_init(&v->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	v->due_usec = UINT64_MAX;
	v->ttl_cap_usec = cfg->ttl_usec;
	r = kit_token_new(&(struct kit_token_config){ .what = "the Vault token",
						      .wait_usec = cfg->fetch_timeout_usec },
			  &v->tokens);
	if (r < 0)
		goto fail;

	ns = cfg->vault_namespace ? cfg->vault_namespace : kit_env("VAULT_NAMESPACE");
	if (ns) {
		v->namespace = trimmed_dup(ns);
		if (!v->namespace) {
			r = -ENOMEM;
			goto fail;
		}
		if (!*v->namespace) {
			free(v->namespace);
			v->namespace = NULL;
		}
	}
	r = setup_http(v, cfg, addr.tls, b->warning, sizeof(b->warning), reason, reasonlen);
	if (r < 0)
		goto fail;
	r = setup_auth(v, cfg, reason, reasonlen);
	if (r < 0)
		goto fail;
	r = authenticate(v, cfg, &env_token, reason, reasonlen);
	if (r < 0)
		goto fail;
	r = find_mount(v, addr.path, kv, reason, reasonlen);
	if (r < 0)
		goto fail;
	emount = http_escape_path(v->mount, true);
	if (!emount ||
	    asprintf(&v->read_url, "%s/v1/%s/%s", v->base_url, emount,
		     v->kv_version == 2 ? "data/" : "") < 0 ||
	    asprintf(&v->list_url, "%s/v1/%s/%s", v->base_url, emount,
		     v->kv_version == 2 ? "metadata/" : "") < 0) {
		r = -ENOMEM;
		goto fail;
	}
	vault_addr_done(&addr);
	b->priv = v;
	return 0;
fail:
	if (r == -ENOMEM && !*reason)
		snprintf(reason, reasonlen, "vault: out of memory");
	vault_addr_done(&addr);
	vault_free(v);
	b->warning[0] = '\0';
	return r;
}

static int vault_start(struct backend *b, char *reason, size_t reasonlen)
{
	struct vault *v = b->priv;
	int r;

	r = pthread_create(&v->thread, NULL, lifecycle_thread, v);
	if (r != 0) {
		snprintf(reason, reasonlen, "vault: cannot start the token renewal thread: %s",
			 strerror(r));
		return -r;
	}
	v->thread_started = true;
	return 0;
}

static void vault_stop(struct backend *b)
{
	struct vault *v = b->priv;

	if (!v || !v->thread_started)
		return;
	pthread_mutex_lock(&v->lock);
	v->stop = true;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->thread, NULL);
	v->thread_started = false;
}

static void vault_done(struct backend *b)
{
	vault_stop(b);
	vault_free(b->priv);
	b->priv = NULL;
}

/* ---- status ---- */

static const char *auth_method_name(enum vault_auth_method m)
{
	switch (m) {
	case AUTH_TOKEN:
		return "token";
	case AUTH_APPROLE:
		return "approle";
	case AUTH_KUBERNETES:
		return "kubernetes";
	}
	return "unknown";
}

/* For `secretfs ctl status`: the token's facts, read under v->lock; never the token. */
static int vault_describe(struct backend *b, struct json_t *obj)
{
	struct vault *v = b->priv;
	uint64_t ttl, at, now, remaining;
	bool renewable, capped, have_token, warned;
	unsigned failures;
	const char *state;
	char when[32];
	json_t *auth;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	have_token = token_gen(v) != 0;
	ttl = v->ti.ttl_usec;
	at = v->ti_at_usec;
	renewable = v->ti.renewable;
	capped = v->capped;
	failures = v->failures;
	warned = v->warned_expiry;
	pthread_mutex_unlock(&v->lock);

	now = now_usec();
	remaining = ttl == 0 ? 0 : at + ttl > now ? at + ttl - now : 0;
	if (!have_token)
		state = "no token";
	else if (ttl != 0 && remaining == 0)
		state = "expired";
	else if (failures > 0)
		state = v->auth == AUTH_TOKEN ? "renewal failing" : "renewal or login failing";
	else if (warned || (capped && v->auth == AUTH_TOKEN))
		state = "expiring"; /* it cannot be renewed any further */
	else
		state = "ok";

	auth = json_object();
	if (!auth)
		return -ENOMEM;
	r |= json_object_set_new(auth, "method", json_string(auth_method_name(v->auth)));
	if (v->auth != AUTH_TOKEN)
		r |= json_object_set_new(auth, "mount", json_string(v->auth_mount));
	r |= json_object_set_new(auth, "state", json_string(state));
	if (have_token && ttl != 0 &&
	    format_rfc3339(realtime_usec() + remaining, when, sizeof(when)) == 0) {
		r |= json_object_set_new(auth, "token_expires", json_string(when));
		r |= json_object_set_new(auth, "token_ttl_seconds",
					 json_integer((json_int_t)(remaining / USEC_PER_SEC)));
	} else {
		/* A root token (ttl 0) never expires. */
		r |= json_object_set_new(auth, "token_expires", json_null());
		r |= json_object_set_new(auth, "token_ttl_seconds", json_null());
	}
	r |= json_object_set_new(auth, "renewable", json_boolean(renewable));
	r |= json_object_set_new(auth, "consecutive_failures", json_integer(failures));

	r |= json_object_set_new(obj, "address", json_string(v->base_url));
	r |= json_object_set_new(obj, "mount", json_string(v->mount));
	r |= json_object_set_new(obj, "prefix", json_string(v->prefix ? v->prefix : ""));
	r |= json_object_set_new(obj, "kv_version", json_integer(v->kv_version));
	r |= json_object_set_new(obj, "namespace",
				 v->namespace ? json_string(v->namespace) : json_null());
	r |= json_object_set_new(obj, "auth", auth);
	return r ? -ENOMEM : 0;
}

/* A flush: the last responses in idle connections go too. */
static void vault_forget(struct backend *b)
{
	struct vault *v = b->priv;

	http_client_drop_idle(v->http);
	http_client_drop_idle(v->ctl);
}

const struct backend_ops vault_backend_ops = {
	.scheme = "vault",
	.init = vault_init,
	.start = vault_start,
	.stop = vault_stop,
	.done = vault_done,
	.fetch = vault_fetch,
	.fetch_at = vault_fetch_at,
	.list_versions = vault_list_versions,
	.list = vault_list,
	.describe = vault_describe,
	.forget = vault_forget,
};
