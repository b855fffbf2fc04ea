/*
 * aws.c - AWS Secrets Manager (aws-sm) and Systems Manager Parameter Store
 * (aws-ssm), over the awsJson1_1 protocol, signed with SigV4.
 *
 *   aws-sm:REGION[/PREFIX]    aws-sm:  or  aws-sm:/PREFIX
 *   aws-ssm:REGION[/PATH]     aws-ssm: or  aws-ssm:/PATH
 *
 * Without a region in SOURCE it comes from AWS_REGION, AWS_DEFAULT_REGION,
 * then the profile's region in the config file.  Endpoints are
 * https://secretsmanager.REGION.amazonaws.com and https://ssm.REGION...,
 * or what AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL_SSM (and
 * AWS_ENDPOINT_URL_STS for web identity), else AWS_ENDPOINT_URL, say, as
 * the SDKs read them.  The CA is [http] ca_file, else AWS_CA_BUNDLE.
 *
 * Secrets Manager: GetSecretValue of the configured stage (aws_version_stage,
 * AWSCURRENT by default); a SecretString holding a JSON object is a
 * directory of its keys, any other string a file, a SecretBinary its
 * decoded bytes; the version is VersionId.  Names hold '/', so prod/db is
 * a directory prod with db in it.  Listings come from ListSecrets with a
 * name-prefix filter, every page.  The cache calls fetch again when a value
 * expires; as the AWS caching clients do, we then ask DescribeSecret
 * whether the version we hold still carries the stage, and if so serve the
 * value we kept (a small map id -> (VersionId, value) bounded like the
 * cache) without another GetSecretValue.
 *
 * Parameter Store: GetParameter WithDecryption (a StringList as stored);
 * the PATH is a prefix under which the tree is shown; listings come from a
 * recursive GetParametersByPath, paged until NextToken is absent, empty
 * pages included.
 *
 * Errors: the code from x-amzn-ErrorType or the body, mapped by
 * aws_error_to_errno().  Throttling arrives as a 400 that the http layer
 * does not retry: we retry it here with backoff, then give -EAGAIN so the
 * cache serves what it has.  ExpiredTokenException makes the credentials
 * refresh, and the request is sent once more.  AWS's error message goes
 * into the reason (its first line only: a signature error goes on with the
 * canonical request, which holds the session token).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "backends/aws_creds.h"
#include "backends/aws_parse.h"
#include "backends/backends.h"
#include "backends/kept.h"
#include "backends/kit.h"
#include "secretfs/aws_sigv4.h"
#include "secretfs/config.h"
#include "secretfs/http.h"
#include "secretfs/selector.h"
#include "secretfs/util.h"

#define JSON_CT "application/x-amz-json-1.1"
/* Bounds of one listing: names, and pages (Parameter Store may send empty ones). */
#define LIST_MAX_NAMES 100000
#define LIST_MAX_PAGES 20000
/* Backoff for throttling: full jitter up to BASE * 2^retry, at most MAX. */
#define THROTTLE_BASE_USEC (200 * USEC_PER_MSEC)
#define THROTTLE_MAX_USEC  (5 * USEC_PER_SEC)
#define STAGE_MAX	   256
#define WHY_MAX		   BACKEND_REASON_MAX

struct aws {
	struct backend *b;
	enum aws_service svc;
	const char *service; /* signing name: "secretsmanager" or "ssm" */
	const char *target;  /* X-Amz-Target prefix: "secretsmanager" or "AmazonSSM" */
	char *region;
	char *prefix;
	char *stage;
	struct aws_endpoint ep;
	struct http_client *http;
	struct aws_creds *creds;
	unsigned throttle_retries;

	struct kept_map kept; /* Secrets Manager only (no buckets for Parameter Store) */
	bool describe_denied; /* atomic: DescribeSecret is not ours to call */
};

/* ---- the kept values (kept.c) ---- */

static struct secret *kept_get(struct aws *a, const char *id, char *version)
{
	if (__atomic_load_n(&a->describe_denied, __ATOMIC_RELAXED))
		return NULL;
	return kept_map_get(&a->kept, id, version);
}

/* ---- requests ---- */

/* "aws-sm us-east-1: GetSecretValue prod/db" */
static void what(const struct aws *a, const char *op, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s %.32s: %s%s%.100s", a->svc == AWS_SM ? "aws-sm" : "aws-ssm",
		 a->region, op, name ? " " : "", name ? name : "");
}

/* Signs and sends one request with the current credentials. */
static int send_signed(struct aws *a, const char *target, const char *body, size_t body_len,
		       struct http_response *resp, uint64_t *ret_gen, char *reason,
		       size_t reasonlen)
{
	const struct http_header signed_hdrs[] = {
		{ "Content-Type", JSON_CT, false },
		{ "X-Amz-Target", target, false },
	};
	struct http_header h[1 + SIGV4_ADDED_HEADERS];
	struct sigv4_signed sig = { 0 };
	struct aws_creds_ref cr = { 0 };
	char why[WHY_MAX - 32];
	size_t n;
	int r;

	r = aws_creds_get(a->creds, &cr, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "credentials: %s", why);
		return r;
	}
	*ret_gen = cr.gen;
	r = sigv4_sign(&cr.view, a->region, a->service, realtime_usec(),
		       &(struct sigv4_request){ .method = "POST",
						.host = a->ep.host,
						.path = a->ep.path,
						.headers = signed_hdrs,
						.nheaders = ARRAY_SIZE(signed_hdrs),
						.body = body,
						.body_len = body_len },
		       0, &sig, why, sizeof(why));
	aws_creds_put(&cr);
	if (r < 0) {
		snprintf(reason, reasonlen, "signing: %s", why);
		return r == -EKEYEXPIRED ? -EACCES : r;
	}
	h[0] = (struct http_header){ "X-Amz-Target", target, false };
	n = 1 + sigv4_added_headers(&sig, h + 1);
	r = http_do(a->http,
		    &(struct http_request){ .method = "POST",
					    .url = a->ep.url,
					    .headers = h,
					    .nheaders = n,
					    .body = body,
					    .body_len = body_len,
					    .content_type = JSON_CT },
		    resp, reason, reasonlen);
	sigv4_signed_done(&sig);
	return r;
}

/*
 * Calls @op with @body.  0: a 2xx answer is in @resp (the caller parses it
 * and calls http_response_done()).  Otherwise a negative errno and
 * "WHAT: Code: message (status)" in @reason; @resp is done.
 */
static int aws_call(struct aws *a, const char *op, const char *name, const char *body,
		    size_t body_len, struct http_response *resp, char *reason, size_t reasonlen)
{
	char target[64], w[WHY_MAX], why[WHY_MAX];
	char code[AWS_CODE_MAX], msg[AWS_MESSAGE_MAX + 1];
	unsigned throttled = 0;
	bool renewed = false;
	uint64_t gen = 0;
	int r;

	snprintf(target, sizeof(target), "%s.%s", a->target, op);
	what(a, op, name, w, sizeof(w));
	for (;;) {
		r = send_signed(a, target, body, body_len, resp, &gen, why, sizeof(why));
		if (r < 0) {
			snprintf(reason, reasonlen, "%s: %s", w, why);
			return r;
		}
		if (resp->status >= 200 && resp->status <= 299)
			return 0;
		aws_parse_error(resp->header_error_type, resp->body, resp->body_len, code,
				sizeof(code), msg, sizeof(msg));
		if (aws_error_is_expired_token(code) && !renewed) {
			/* Our temporary credentials ran out before we thought: new ones, once. */
			renewed = true;
			aws_creds_expired(a->creds, gen);
			http_response_done(resp);
			continue;
		}
		if (aws_error_is_throttling(code) && throttled < a->throttle_retries) {
			http_response_done(resp);
			kit_sleep_usec(kit_backoff_usec(throttled++, THROTTLE_BASE_USEC,
							THROTTLE_MAX_USEC));
			continue;
		}
		break;
	}
	r = aws_error_to_errno(code, resp->status);
	snprintf(reason, reasonlen, "%s: %s%s%s (%ld%s)", w, code[0] ? code : "failed",
		 msg[0] ? ": " : "", msg, resp->status,
		 throttled ? ", still throttled after retries" : "");
	http_response_done(resp);
	return r;
}

/*
 * After parsing a 2xx answer of @op: the response goes, and a parse error's
 * reason gets "aws-sm REGION: OP NAME: " before it.  Returns @r.
 */
static int parsed(struct aws *a, const char *op, const char *name, int r,
		  struct http_response *resp, char *reason, size_t reasonlen)
{
	char w[WHY_MAX];

	http_response_done(resp);
	if (r < 0) {
		what(a, op, name, w, sizeof(w));
		kit_reason_prefix(reason, reasonlen, "%s", w);
	}
	return r;
}

/* ---- Secrets Manager ---- */

/* GetSecretValue of @name at @stage, or at VersionId @version_id when it is not NULL. */
static int sm_get_value(struct aws *a, const char *name, const char *stage, const char *version_id,
			struct secret **ret_value, struct backend_info *ret_info, char *reason,
			size_t reasonlen)
{
	struct http_response resp = { 0 };
	_cleanup_free_ char *body = NULL;
	size_t len;
	int r;

	r = version_id ? aws_body_get_secret_version(name, version_id, &body, &len)
		       : aws_body_get_secret_value(name, stage, &body, &len);
	if (r < 0)
		return r;
	r = aws_call(a, "GetSecretValue", name, body, len, &resp, reason, reasonlen);
	if (r < 0)
		return r;
	r = aws_parse_get_secret_value(resp.body, resp.body_len, ret_value, ret_info, reason,
				       reasonlen);
	return parsed(a, "GetSecretValue", name, r, &resp, reason, reasonlen);
}

/* Whether the version we hold of @name still carries the stage. */
static int sm_still_current(struct aws *a, const char *name, const char *version, bool *ret_current,
			    char *reason, size_t reasonlen)
{
	struct http_response resp = { 0 };
	_cleanup_free_ char *body = NULL;
	size_t len;
	int r;

	r = aws_body_describe_secret(name, &body, &len);
	if (r < 0)
		return r;
	r = aws_call(a, "DescribeSecret", name, body, len, &resp, reason, reasonlen);
	if (r < 0)
		return r;
	r = aws_parse_describe_secret(resp.body, resp.body_len, version, a->stage, ret_current,
				      reason, reasonlen);
	return parsed(a, "DescribeSecret", name, r, &resp, reason, reasonlen);
}

static int sm_fetch(struct backend *b, const char *id, struct secret **ret_value,
		    struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct aws *a = b->priv;
	_cleanup_free_ char *name = aws_name_for_id(AWS_SM, a->prefix, id);
	char version[BACKEND_VERSION_MAX];
	struct secret *kept;
	bool current = false;
	int r;

	if (!name)
		return -ENOMEM;
	kept = kept_get(a, id, version);
	if (kept) {
		r = sm_still_current(a, name, version, &current, reason, reasonlen);
		if (r >= 0 && current) {
			*ret_value = kept;
			*ret_info = (struct backend_info){ .ttl_hint_usec = 0 };
			memcpy(ret_info->version, version, sizeof(version));
			return 0;
		}
		secret_unref(kept);
		if (r == -ENOENT) {
			kept_map_forget(&a->kept, id);
			return r;
		}
		if (r == -EACCES) {
			/* Allowed GetSecretValue but not DescribeSecret: read every time. */
			__atomic_store_n(&a->describe_denied, true, __ATOMIC_RELAXED);
			kept_map_clear(&a->kept);
		} else if (r < 0) {
			return r; /* transient: the cache serves what it has */
		}
	}
	r = sm_get_value(a, name, a->stage, NULL, ret_value, ret_info, reason, reasonlen);
	if (r >= 0)
		kept_map_put(&a->kept, id, ret_info->version, *ret_value);
	else if (!backend_error_is_transient(r))
		kept_map_forget(&a->kept, id);
	return r;
}

/*
 * previous, pending and label:L are VersionStage AWSPREVIOUS, AWSPENDING
 * and L; id:ID is VersionId ID.  Nothing is kept: a named version is
 * fetched whole each time the cache asks.
 */
static int sm_fetch_at(struct backend *b, const char *id, const struct selector *sel,
		       struct secret **ret_value, struct backend_info *ret_info, char *reason,
		       size_t reasonlen)
{
	struct aws *a = b->priv;
	_cleanup_free_ char *name = aws_name_for_id(AWS_SM, a->prefix, id);
	const char *stage = NULL;

	if (!name)
		return -ENOMEM;
	switch (sel->kind) {
	case SELECTOR_PREVIOUS:
		stage = "AWSPREVIOUS";
		break;
	case SELECTOR_PENDING:
		stage = "AWSPENDING";
		break;
	case SELECTOR_LABEL:
		stage = sel->arg;
		break;
	case SELECTOR_ID:
		break;
	default:
		snprintf(reason, reasonlen, "aws-sm: Secrets Manager has no version numbers");
		return -ENOENT;
	}
	return sm_get_value(a, name, stage, stage ? NULL : sel->arg, ret_value, ret_info, reason,
			    reasonlen);
}

static int sm_list_versions(struct backend *b, const char *id, json_t **ret_list, char *reason,
			    size_t reasonlen)
{
	struct aws *a = b->priv;
	_cleanup_free_ char *name = aws_name_for_id(AWS_SM, a->prefix, id), *body = NULL;
	struct http_response resp = { 0 };
	size_t len;
	int r;

	if (!name)
		return -ENOMEM;
	r = aws_body_list_secret_versions(name, &body, &len);
	if (r < 0)
		return r;
	r = aws_call(a, "ListSecretVersionIds", name, body, len, &resp, reason, reasonlen);
	if (r < 0)
		return r;
	r = aws_parse_list_secret_versions(resp.body, resp.body_len, ret_list, reason, reasonlen);
	return parsed(a, "ListSecretVersionIds", name, r, &resp, reason, reasonlen);
}

/* One listing in progress: ListSecrets or GetParametersByPath, page by page. */
struct listing {
	struct aws *a;
	const char *op;	  /* "ListSecrets", "GetParametersByPath" */
	const char *arg;  /* the name filter or the path */
	const char *name; /* for messages: @arg, or NULL for all */
	struct aws_names *names;
	char w[WHY_MAX];
};

/* One page of a listing (a kit_page_fn): the names go to l->names. */
static int list_page(void *ctx, const char *token, char **ret_next, char *reason, size_t reasonlen)
{
	struct listing *l = ctx;
	struct http_response resp = { 0 };
	_cleanup_free_ char *body = NULL;
	size_t len;
	int r;

	r = l->a->svc == AWS_SM ? aws_body_list_secrets(l->arg, token, &body, &len)
				: aws_body_parameters_by_path(l->arg, token, &body, &len);
	if (r < 0)
		return r;
	r = aws_call(l->a, l->op, l->name, body, len, &resp, reason, reasonlen);
	if (r < 0)
		return r;
	/* Results are best effort: a page may be empty and still have a NextToken. */
	r = l->a->svc == AWS_SM
		    ? aws_parse_list_secrets(resp.body, resp.body_len, l->names, LIST_MAX_NAMES,
					     ret_next, reason, reasonlen)
		    : aws_parse_parameters_by_path(resp.body, resp.body_len, l->names,
						   LIST_MAX_NAMES, ret_next, reason, reasonlen);
	http_response_done(&resp);
	if (r < 0)
		kit_reason_prefix(reason, reasonlen, "%s", l->w);
	return r;
}

/* Every name under @arg (a name filter, "" for all, or a path), through every page. */
static int list_names(struct aws *a, const char *arg, struct aws_names *names, char *reason,
		      size_t reasonlen)
{
	struct listing l = {
		.a = a,
		.op = a->svc == AWS_SM ? "ListSecrets" : "GetParametersByPath",
		.arg = arg,
		.name = *arg ? arg : NULL,
		.names = names,
	};

	what(a, l.op, l.name, l.w, sizeof(l.w));
	return kit_paginate(LIST_MAX_PAGES, list_page, &l, l.w, reason, reasonlen);
}

static int sm_list(struct backend *b, const char *folder, struct secret **ret_listing, char *reason,
		   size_t reasonlen)
{
	struct aws *a = b->priv;
	_cleanup_free_ char *full = aws_name_for_id(AWS_SM, a->prefix, folder), *filter = NULL;
	struct aws_names names = { 0 };
	int r;

	if (!full || asprintf(&filter, "%s%s", full, *full ? "/" : "") < 0) {
		filter = NULL;
		return -ENOMEM;
	}
	r = list_names(a, filter, &names, reason, reasonlen);
	if (r >= 0) {
		r = aws_listing_from_names(AWS_SM, &names, a->prefix, folder, ret_listing);
		if (r == -ENOENT)
			snprintf(reason, reasonlen, "no secret is named %s...", filter);
	}
	aws_names_done(&names);
	return r;
}

/* ---- Parameter Store ---- */

static int ssm_get(struct aws *a, const char *name, struct secret **ret_value,
		   struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct http_response resp = { 0 };
	_cleanup_free_ char *body = NULL;
	size_t len;
	int r;

	r = aws_body_get_parameter(name, &body, &len);
	if (r < 0)
		return r;
	r = aws_call(a, "GetParameter", name, body, len, &resp, reason, reasonlen);
	if (r < 0)
		return r;
	r = aws_parse_get_parameter(resp.body, resp.body_len, ret_value, ret_info, reason,
				    reasonlen);
	return parsed(a, "GetParameter", name, r, &resp, reason, reasonlen);
}

/*
 * Parameter @id, with @suffix (":N" or ":LABEL", a Parameter Store selector)
 * or "" for the current version.
 */
static int ssm_fetch_named(struct aws *a, const char *id, const char *suffix,
			   struct secret **ret_value, struct backend_info *ret_info, char *reason,
			   size_t reasonlen)
{
	_cleanup_free_ char *name = aws_name_for_id(AWS_SSM, a->prefix, id), *full = NULL,
			    *bare = NULL;
	char why[WHY_MAX];
	int r;

	if (!name || asprintf(&full, "%s%s", name, suffix) < 0) {
		full = NULL;
		return -ENOMEM;
	}
	r = ssm_get(a, full, ret_value, ret_info, reason, reasonlen);
	if (r == -ENOENT && !*a->prefix && !strchr(id, '/')) {
		/* A parameter outside any hierarchy ("db", not "/db") shows at the top too. */
		int r2;

		if (asprintf(&bare, "%s%s", id, suffix) < 0) {
			bare = NULL;
			return -ENOMEM;
		}
		r2 = ssm_get(a, bare, ret_value, ret_info, why, sizeof(why));
		if (r2 != -ENOENT) {
			snprintf(reason, reasonlen, "%s", why);
			r = r2;
		}
	}
	return r;
}

static int ssm_fetch(struct backend *b, const char *id, struct secret **ret_value,
		     struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	return ssm_fetch_named(b->priv, id, "", ret_value, ret_info, reason, reasonlen);
}

/* N is NAME:N, label:L is NAME:L, as GetParameter reads selectors; nothing else. */
static int ssm_fetch_at(struct backend *b, const char *id, const struct selector *sel,
			struct secret **ret_value, struct backend_info *ret_info, char *reason,
			size_t reasonlen)
{
	char suffix[SELECTOR_ARG_MAX + 24];

	if (sel->kind == SELECTOR_NUMBER) {
		snprintf(suffix, sizeof(suffix), ":%" PRIu64, sel->number);
	} else if (sel->kind == SELECTOR_LABEL && !strchr(sel->arg, ':')) {
		snprintf(suffix, sizeof(suffix), ":%s", sel->arg);
	} else {
		snprintf(reason, reasonlen, "aws-ssm: Parameter Store serves current, N and "
					    "label:L, not %s",
			 selector_kind_name(sel->kind));
		return -ENOENT;
	}
	return ssm_fetch_named(b->priv, id, suffix, ret_value, ret_info, reason, reasonlen);
}

static int ssm_list(struct backend *b, const char *folder, struct secret **ret_listing,
		    char *reason, size_t reasonlen)
{
	struct aws *a = b->priv;
	_cleanup_free_ char *path = aws_name_for_id(AWS_SSM, a->prefix, folder);
	struct aws_names names = { 0 };
	int r;

	if (!path)
		return -ENOMEM;
	r = list_names(a, path, &names, reason, reasonlen);
	if (r >= 0) {
		r = aws_listing_from_names(AWS_SSM, &names, a->prefix, folder, ret_listing);
		if (r == -ENOENT)
			snprintf(reason, reasonlen, "no parameter lies under %s", path);
	}
	aws_names_done(&names);
	return r;
}

/* ---- init ---- */

/* A staging label: AWSCURRENT, AWSPREVIOUS or one of the user's, 1 to 256 printable characters. */
static bool stage_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > STAGE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, as the SDKs read it. */
static const char *endpoint_env(const char *service_var)
{
	const char *ignore = kit_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	const char *v;

	if (ignore && strcasecmp(ignore, "true") == 0)
		return NULL;
	v = kit_env(service_var);
	return v ? v : kit_env("AWS_ENDPOINT_URL");
}

/* An endpoint from the environment, or the service's default in @region. */
static int endpoint(const char *service_var, const char *service, const char *region,
		    struct aws_endpoint *ret, char *reason, size_t reasonlen)
{
	const char *url = endpoint_env(service_var);
	char why[WHY_MAX - 64];
	int r;

	if (!url)
		return aws_default_endpoint(service, region, ret);
	r = aws_parse_endpoint(url, ret, why, sizeof(why));
	if (r < 0)
		snprintf(reason, reasonlen, "%s (or AWS_ENDPOINT_URL): %s", service_var, why);
	return r;
}

static void aws_free(struct aws *a)
{
	if (!a)
		return;
	if (a->kept.buckets)
		kept_map_done(&a->kept);
	aws_creds_free(a->creds);
	http_client_free(a->http);
	aws_endpoint_done(&a->ep);
	free(a->region);
	free(a->prefix);
	free(a->stage);
	free(a);
	/* The signing keys were derived from the credentials just wiped. */
	sigv4_cache_clear();
}

static int aws_init(struct backend *b, enum aws_service svc, const char *arg,
		    const struct config *cfg, char *reason, size_t reasonlen)
{
	const char *scheme = svc == AWS_SM ? "aws-sm" : "aws-ssm";
	struct aws_env_secrets env = { 0 };
	struct aws_endpoint sts = { 0 };
	struct aws_source src = { 0 };
	const char *region, *stage;
	char why[WHY_MAX];
	struct aws *a;
	int r;

	/* First of all, whatever happens next: no secret stays in our environment. */
	aws_env_secrets_take(&env);
	a = calloc(1, sizeof(*a));
	if (!a) {
		aws_env_secrets_done(&env);
		return -ENOMEM;
	}
	a->b = b;
	a->svc = svc;
	a->service = svc == AWS_SM ? "secretsmanager" : "ssm";
	a->target = svc == AWS_SM ? "secretsmanager" : "AmazonSSM";
	r = aws_creds_new(cfg->aws_profile, &env, &a->creds, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "%s: %s", scheme, why);
		goto fail;
	}
	region = kit_env("AWS_REGION");
	if (!region)
		region = kit_env("AWS_DEFAULT_REGION");
	if (!region)
		region = aws_creds_profile_region(a->creds);
	r = aws_parse_source(svc, arg, region, &src, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "source '%s': %s", b->source, why);
		goto fail;
	}
	a->region = TAKE_PTR(src.region);
	a->prefix = TAKE_PTR(src.prefix);
	stage = cfg->aws_version_stage ? cfg->aws_version_stage : "AWSCURRENT";
	if (!stage_is_valid(stage)) {
		snprintf(reason, reasonlen,
			 "%s: aws_version_stage must be 1 to %d printable characters, like "
			 "AWSCURRENT",
			 scheme, STAGE_MAX);
		r = -EINVAL;
		goto fail;
	}
	a->stage = strdup(stage);
	if (!a->stage) {
		r = -ENOMEM;
		goto fail;
	}
	r = endpoint(svc == AWS_SM ? "AWS_ENDPOINT_URL_SECRETS_MANAGER" : "AWS_ENDPOINT_URL_SSM",
		     a->service, a->region, &a->ep, why, sizeof(why));
	if (r >= 0)
		r = endpoint("AWS_ENDPOINT_URL_STS", "sts", a->region, &sts, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "%s: %s", scheme, r == -ENOMEM ? "out of memory" : why);
		goto fail;
	}
	{
		const struct kit_http_opts o = {
			.name = scheme,
			.url = !a->ep.tls || sts.tls ? a->ep.url : sts.url,
			.tls = a->ep.tls && sts.tls,
			.credential = "the session token",
			/* [http] ca_file wins over the SDKs' AWS_CA_BUNDLE. */
			.ca_file_env = "AWS_CA_BUNDLE",
		};
		/* The reason of a failed resolve lists every provider tried: give it room. */
		char tried[512];
		struct http_config hc;

		r = kit_http_config(cfg, &o, &hc, b->warning, sizeof(b->warning), reason,
				    reasonlen);
		if (r < 0)
			goto fail;
		r = http_client_new(&hc, &a->http, why, sizeof(why));
		if (r < 0) {
			snprintf(reason, reasonlen, "%s: %s", scheme, why);
			goto fail;
		}
		r = aws_creds_resolve(a->creds, &sts, &hc, cfg->fetch_timeout_usec, tried,
				      sizeof(tried));
		if (r < 0) {
			snprintf(reason, reasonlen, "%s %s: %s", scheme, a->region, tried);
			goto fail;
		}
	}
	a->throttle_retries = cfg->http_max_attempts ? (unsigned)cfg->http_max_attempts - 1 : 3;
	if (svc == AWS_SM) {
		r = kept_map_init(&a->kept, cfg->cache_max_entries, cfg->cache_max_bytes);
		if (r < 0)
			goto fail;
	}
	aws_endpoint_done(&sts);
	b->priv = a;
	return 0;
fail:
	if (r == -ENOMEM && !*reason)
		snprintf(reason, reasonlen, "%s: out of memory", scheme);
	aws_source_done(&src);
	aws_endpoint_done(&sts);
	aws_free(a);
	b->warning[0] = '\0';
	return r;
}

static int sm_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		   size_t reasonlen)
{
	return aws_init(b, AWS_SM, arg, cfg, reason, reasonlen);
}

static int ssm_init(struct backend *b, const char *arg, const struct config *cfg, char *reason,
		    size_t reasonlen)
{
	return aws_init(b, AWS_SSM, arg, cfg, reason, reasonlen);
}

static void aws_done(struct backend *b)
{
	aws_free(b->priv);
	b->priv = NULL;
}

/* A flush: the values kept for revalidation and the last responses go too. */
static void aws_forget(struct backend *b)
{
	struct aws *a = b->priv;

	kept_map_clear(&a->kept);
	http_client_drop_idle(a->http);
}

const struct backend_ops aws_sm_backend_ops = {
	.scheme = "aws-sm",
	.init = sm_init,
	.done = aws_done,
	.fetch = sm_fetch,
	.fetch_at = sm_fetch_at,
	.list_versions = sm_list_versions,
	.list = sm_list,
	.forget = aws_forget,
};

const struct backend_ops aws_ssm_backend_ops = {
	.scheme = "aws-ssm",
	.init = ssm_init,
	.done = aws_done,
	.fetch = ssm_fetch,
	.fetch_at = ssm_fetch_at,
	.list = ssm_list,
	.forget = aws_forget,
};
