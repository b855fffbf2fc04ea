/*
 * aws_parse.c - the SOURCE string, endpoints, request bodies, answers and
 * errors of Secrets Manager and Parameter Store, without the network (see
 * aws_parse.h).  Split from aws.c so the parsers can be unit-tested and
 * fuzzed without libcurl.
 *
 * Both services speak awsJson1_1: a POST of a JSON object, a JSON object
 * back, and on failure a code in x-amzn-ErrorType or in the body's __type
 * (or code), decorated with a namespace before '#' and a URI after ':'.
 * Bodies are parsed with json_loadb() and dropped with json_decref(); the
 * daemon installs wiping allocators for jansson, so the parsed copies of a
 * secret are cleansed too.  Reasons name the member that was wrong and never
 * quote the body.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "backends/aws_parse.h"
#include "backends/kit.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

/* ---- SOURCE ---- */

static const char *forms(enum aws_service svc)
{
	return svc == AWS_SM ? "expected aws-sm:REGION[/PREFIX], or aws-sm: (or aws-sm:/PREFIX) "
			       "with AWS_REGION set"
			     : "expected aws-ssm:REGION[/PATH], or aws-ssm: (or aws-ssm:/PATH) "
			       "with AWS_REGION set";
}

/* "us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1": [a-z][a-z0-9-]*, not ending in '-'.
 */
static bool region_is_valid(const char *s, size_t n)
{
	if (n == 0 || n > 32 || !islower((unsigned char)s[0]) || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* The characters each store allows in a name (and so in a prefix of one). */
static bool prefix_chars_ok(enum aws_service svc, const char *s)
{
	const char *extra = svc == AWS_SM ? "/_+=.@-" : "/_.-";

	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

int aws_parse_source(enum aws_service svc, const char *arg, const char *env_region,
		     struct aws_source *ret, char *reason, size_t reasonlen)
{
	struct aws_source s = { 0 };
	const char *region, *rest;
	size_t rl, pl;

	if (strstr(arg, "://")) {
		snprintf(reason, reasonlen,
			 "not a URL: give the region, and the endpoint with AWS_ENDPOINT_URL (or "
			 "AWS_ENDPOINT_URL_%s); %s",
			 svc == AWS_SM ? "SECRETS_MANAGER" : "SSM", forms(svc));
		return -EINVAL;
	}
	if (!*arg || *arg == '/') {
		if (!env_region || !*env_region) {
			snprintf(reason, reasonlen,
				 "no region: neither SOURCE nor AWS_REGION, AWS_DEFAULT_REGION or "
				 "the profile names one; %s",
				 forms(svc));
			return -EINVAL;
		}
		region = env_region;
		rl = strlen(env_region);
		rest = arg;
		if (!region_is_valid(region, rl)) {
			snprintf(reason, reasonlen,
				 "the region from the environment is not a region name like "
				 "us-east-1");
			return -EINVAL;
		}
	} else {
		region = arg;
		rest = strchr(arg, '/');
		rl = rest ? (size_t)(rest - arg) : strlen(arg);
		if (!rest)
			rest = "";
		if (!region_is_valid(region, rl)) {
			snprintf(reason, reasonlen,
				 "'%.*s' is not a region name like us-east-1; %s",
				 (int)(rl > 40 ? 40 : rl), region, forms(svc));
			return -EINVAL;
		}
	}
	while (*rest == '/')
		rest++;
	pl = strlen(rest);
	while (pl && rest[pl - 1] == '/')
		pl--;
	s.region = strndup(region, rl);
	s.prefix = strndup(rest, pl);
	if (!s.region || !s.prefix) {
		aws_source_done(&s);
		return -ENOMEM;
	}
	if (*s.prefix && (!ns_id_is_safe(s.prefix) || !prefix_chars_ok(svc, s.prefix))) {
		snprintf(reason, reasonlen,
			 "the %s '%s' has an empty, '.' or '..' component or a character %s "
			 "does not allow in names; %s",
			 svc == AWS_SM ? "prefix" : "path", s.prefix,
			 svc == AWS_SM ? "Secrets Manager" : "Parameter Store", forms(svc));
		aws_source_done(&s);
		return -EINVAL;
	}
	*ret = s;
	return 0;
}

void aws_source_done(struct aws_source *s)
{
	free(s->region);
	free(s->prefix);
	*s = (struct aws_source){ 0 };
}

/* ---- endpoints ---- */

int aws_parse_endpoint(const char *url, struct aws_endpoint *ret, char *reason, size_t reasonlen)
{
	struct aws_endpoint e = { 0 };
	const char *auth, *end, *hostend, *port = NULL;
	size_t sl, al, pl, hl;
	unsigned long pn = 0;
	bool ipv6;

	if (strncasecmp(url, "https://", 8) == 0) {
		e.tls = true;
		sl = 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		sl = 7;
	} else {
		snprintf(reason, reasonlen, "not an http:// or https:// URL");
		return -EINVAL;
	}
	auth = url + sl;
	end = auth + strcspn(auth, "/");
	al = (size_t)(end - auth);
	if (al == 0 || strpbrk(url, "?#@ \t\r\n\\")) {
		snprintf(reason, reasonlen,
			 "expected scheme://HOST[:PORT][/PATH], without user, query or fragment");
		return -EINVAL;
	}
	for (size_t i = 0; i < al; i++)
		if (!isalnum((unsigned char)auth[i]) && !strchr("-._:[]%", auth[i])) {
			snprintf(reason, reasonlen, "the host holds a character a host cannot");
			return -EINVAL;
		}
	ipv6 = auth[0] == '[';
	if (ipv6) {
		hostend = memchr(auth, ']', al);
		if (!hostend || hostend == auth + 1) {
			snprintf(reason, reasonlen, "an IPv6 host without its closing ']'");
			return -EINVAL;
		}
		hostend++;
		if (hostend < end && *hostend != ':') {
			snprintf(reason, reasonlen, "text after the IPv6 host");
			return -EINVAL;
		}
	} else {
		hostend = memchr(auth, ':', al);
		if (!hostend)
			hostend = end;
		if (memchr(auth, '[', al) || memchr(auth, ']', al)) {
			snprintf(reason, reasonlen, "'[' or ']' outside an IPv6 host");
			return -EINVAL;
		}
	}
	hl = (size_t)(hostend - auth);
	if (hl == 0) {
		snprintf(reason, reasonlen, "no host");
		return -EINVAL;
	}
	if (hostend < end) {
		char *pe;

		port = hostend + 1;
		if (port == end || !isdigit((unsigned char)*port) || (size_t)(end - port) > 5) {
			snprintf(reason, reasonlen, "the port is not a number from 1 to 65535");
			return -EINVAL;
		}
		pn = strtoul(port, &pe, 10);
		if (pe != end || pn == 0 || pn > 65535) {
			snprintf(reason, reasonlen, "the port is not a number from 1 to 65535");
			return -EINVAL;
		}
	}
	pl = strlen(end);
	while (pl && end[pl - 1] == '/')
		pl--;
	if (pn == (e.tls ? 443UL : 80UL))
		port = NULL; /* botocore signs the default port away */
	if (port) {
		if (asprintf(&e.host, "%.*s:%lu", (int)hl, auth, pn) < 0)
			e.host = NULL;
	} else {
		e.host = strndup(auth, hl);
	}
	if (asprintf(&e.path, "%.*s/", (int)pl, end) < 0)
		e.path = NULL;
	if (!e.host || !e.path ||
	    asprintf(&e.url, "%s%.*s%s", e.tls ? "https://" : "http://", (int)al, auth, e.path) <
		    0) {
		e.url = NULL;
		aws_endpoint_done(&e);
		return -ENOMEM;
	}
	for (char *p = e.host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	*ret = e;
	return 0;
}

int aws_default_endpoint(const char *service, const char *region, struct aws_endpoint *ret)
{
	char *url = NULL;
	char why[64];
	int r;

	if (asprintf(&url, "https://%s.%s.amazonaws.com%s", service, region,
		     strncmp(region, "cn-", 3) == 0 ? ".cn" : "") < 0)
		return -ENOMEM;
	r = aws_parse_endpoint(url, ret, why, sizeof(why));
	free(url);
	return r;
}

void aws_endpoint_done(struct aws_endpoint *e)
{
	free(e->url);
	free(e->host);
	free(e->path);
	*e = (struct aws_endpoint){ 0 };
}

/* ---- ids and names ---- */

char *aws_name_for_id(enum aws_service svc, const char *prefix, const char *id)
{
	char *name;

	if (asprintf(&name, "%s%s%s%s", svc == AWS_SSM ? "/" : "", prefix,
		     *prefix && *id ? "/" : "", id) < 0)
		return NULL;
	return name;
}

int aws_names_add(struct aws_names *l, const char *name, size_t max)
{
	char *copy;

	if (l->n >= max)
		return -E2BIG;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	l->v[l->n++] = copy;
	return 0;
}

void aws_names_done(struct aws_names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct aws_names){ 0 };
}

int aws_listing_from_names(enum aws_service svc, const struct aws_names *names, const char *prefix,
			   const char *folder, struct secret **ret)
{
	_cleanup_free_ const char **ids = calloc(names->n ? names->n : 1, sizeof(*ids));
	size_t pl = strlen(prefix), n = 0;

	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < names->n; i++) {
		const char *id = names->v[i];

		/* Parameter Store: "/app/db"; a name outside any hierarchy ("db") is at the top. */
		if (svc == AWS_SSM && *id == '/')
			id++;
		if (pl) {
			if (strncmp(id, prefix, pl) != 0 || id[pl] != '/')
				continue;
			id += pl + 1;
		}
		ids[n++] = id;
	}
	return ns_listing_from_ids(ids, n, folder, ret);
}

/* ---- request bodies ---- */

/* Dumps @o (consumed) as compact JSON into a malloc'ed, NUL-terminated buffer. */
static int dump_body(json_t *o, char **ret, size_t *ret_len)
{
	size_t n;
	char *buf;

	if (!o)
		return -ENOMEM;
	n = json_dumpb(o, NULL, 0, JSON_COMPACT);
	buf = n ? malloc(n + 1) : NULL;
	if (!buf || json_dumpb(o, buf, n, JSON_COMPACT) != n) {
		free(buf);
		json_decref(o);
		return -ENOMEM;
	}
	buf[n] = '\0';
	json_decref(o);
	*ret = buf;
	*ret_len = n;
	return 0;
}

int aws_body_get_secret_value(const char *secret_id, const char *stage, char **ret, size_t *ret_len)
{
	return dump_body(json_pack("{s:s, s:s}", "SecretId", secret_id, "VersionStage", stage), ret,
			 ret_len);
}

int aws_body_get_secret_version(const char *secret_id, const char *version_id, char **ret,
				size_t *ret_len)
{
	return dump_body(json_pack("{s:s, s:s}", "SecretId", secret_id, "VersionId", version_id),
			 ret, ret_len);
}

int aws_body_list_secret_versions(const char *secret_id, char **ret, size_t *ret_len)
{
	return dump_body(json_pack("{s:s, s:i}", "SecretId", secret_id, "MaxResults", 100), ret,
			 ret_len);
}

int aws_body_describe_secret(const char *secret_id, char **ret, size_t *ret_len)
{
	return dump_body(json_pack("{s:s}", "SecretId", secret_id), ret, ret_len);
}

int aws_body_list_secrets(const char *name_prefix, const char *next_token, char **ret,
			  size_t *ret_len)
{
	json_t *o = json_pack("{s:i}", "MaxResults", 100);

	if (o && name_prefix && *name_prefix &&
	    json_object_set_new(o, "Filters",
				json_pack("[{s:s, s:[s]}]", "Key", "name", "Values", name_prefix)) <
		    0) {
		json_decref(o);
		return -ENOMEM;
	}
	if (o && next_token && json_object_set_new(o, "NextToken", json_string(next_token)) < 0) {
		json_decref(o);
		return -ENOMEM;
	}
	return dump_body(o, ret, ret_len);
}

int aws_body_get_parameter(const char *name, char **ret, size_t *ret_len)
{
	return dump_body(json_pack("{s:s, s:b}", "Name", name, "WithDecryption", 1), ret, ret_len);
}

int aws_body_parameters_by_path(const char *path, const char *next_token, char **ret,
				size_t *ret_len)
{
	/* Names only: no KMS decryption for a listing, and no plaintext in its answer. */
	json_t *o = json_pack("{s:s, s:b, s:b, s:i}", "Path", path, "Recursive", 1,
			      "WithDecryption", 0, "MaxResults", 10);

	if (o && next_token && json_object_set_new(o, "NextToken", json_string(next_token)) < 0) {
		json_decref(o);
		return -ENOMEM;
	}
	return dump_body(o, ret, ret_len);
}

/* ---- JSON helpers ---- */

/* Parses @body as a JSON object, or says why not without quoting it. */
static json_t *load_object(const char *body, size_t len, size_t flags, char *reason,
			   size_t reasonlen)
{
	return ns_json_load_object(body, len, flags, "AWS", reason, reasonlen);
}

/* Names from @array_key[].@name_key into @names. */
static int collect_names(json_t *root, const char *array_key, const char *name_key,
			 struct aws_names *names, size_t max, char *reason, size_t reasonlen)
{
	json_t *arr = json_object_get(root, array_key), *e;
	size_t i;
	int r;

	if (!json_is_array(arr)) {
		snprintf(reason, reasonlen, "%s %s", array_key,
			 arr ? "is not an array" : "is missing");
		return -EBADMSG;
	}
	json_array_foreach(arr, i, e)
	{
		json_t *name = json_object_get(e, name_key);

		if (!json_is_string(name) ||
		    strlen(json_string_value(name)) != json_string_length(name)) {
			snprintf(reason, reasonlen, "%s[%zu].%s is %s", array_key, i, name_key,
				 !name ? "missing" : "not a string");
			return -EBADMSG;
		}
		r = aws_names_add(names, json_string_value(name), max);
		if (r == -E2BIG) {
			snprintf(reason, reasonlen, "more than %zu names", max);
			return -EFBIG;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- Secrets Manager ---- */

int aws_parse_get_secret_value(const char *body, size_t len, struct secret **ret_value,
			       struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL;
	struct backend_info info = { .version = "" };
	json_t *str, *bin, *vid;
	struct secret *s = NULL;
	int r;

	root = load_object(body, len, JSON_ALLOW_NUL, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	vid = json_object_get(root, "VersionId");
	if (vid && !json_is_null(vid)) {
		const char *v = json_string_value(vid);

		if (!v || json_string_length(vid) == 0 ||
		    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
			    json_string_length(vid)) {
			snprintf(reason, reasonlen, "VersionId is not a version id");
			return -EBADMSG;
		}
		/* UUIDs in practice; one too long for the audit record goes unnamed. */
		if (json_string_length(vid) < sizeof(info.version))
			snprintf(info.version, sizeof(info.version), "%s", v);
	}
	str = json_object_get(root, "SecretString");
	bin = json_object_get(root, "SecretBinary");
	if (json_is_null(str))
		str = NULL;
	if (json_is_null(bin))
		bin = NULL;
	if (str) {
		if (!json_is_string(str)) {
			snprintf(reason, reasonlen, "SecretString is not a string");
			return -EBADMSG;
		}
		r = ns_secret_from_text(json_string_value(str), json_string_length(str),
					"the SecretString", &s, reason, reasonlen);
	} else if (bin) {
		json_t *wrap;

		if (!json_is_string(bin)) {
			snprintf(reason, reasonlen, "SecretBinary is not a string");
			return -EBADMSG;
		}
		/* The namespace's strict decoder, through its {"$base64": ...} form. */
		wrap = json_pack("{s:O}", "$base64", bin);
		if (!wrap)
			return -ENOMEM;
		r = ns_secret_from_json(wrap, NS_JSON_BASE64, &s, reason, reasonlen);
		json_decref(wrap);
		if (r == -EINVAL) {
			snprintf(reason, reasonlen, "SecretBinary is not valid base64");
			r = -EIO;
		}
	} else {
		snprintf(reason, reasonlen, "the answer has neither SecretString nor SecretBinary");
		return -EBADMSG;
	}
	if (r < 0)
		return r;
	*ret_value = s;
	*ret_info = info;
	return 0;
}

int aws_parse_describe_secret(const char *body, size_t len, const char *version_id,
			      const char *stage, bool *ret_current, char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL;
	json_t *map, *stages, *deleted, *st;
	bool current = false;
	size_t i;

	root = load_object(body, len, 0, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	map = json_object_get(root, "VersionIdsToStages");
	if (map && !json_is_null(map) && !json_is_object(map)) {
		snprintf(reason, reasonlen, "VersionIdsToStages is not an object");
		return -EBADMSG;
	}
	deleted = json_object_get(root, "DeletedDate");
	stages = json_object_get(map, version_id);
	if (stages && !json_is_array(stages)) {
		snprintf(reason, reasonlen, "VersionIdsToStages holds a value that is not a list");
		return -EBADMSG;
	}
	json_array_foreach(stages, i, st)
	{
		if (json_is_string(st) && strcmp(json_string_value(st), stage) == 0)
			current = true;
	}
	if (deleted && !json_is_null(deleted))
		current = false;
	*ret_current = current;
	return 0;
}

int aws_parse_list_secrets(const char *body, size_t len, struct aws_names *names, size_t max,
			   char **ret_next_token, char *reason, size_t reasonlen)
{
	json_auto_t *root = load_object(body, len, 0, reason, reasonlen);
	int r;

	if (!root)
		return -EBADMSG;
	r = collect_names(root, "SecretList", "Name", names, max, reason, reasonlen);
	if (r < 0)
		return r;
	return kit_page_token(root, "NextToken", ret_next_token, reason, reasonlen);
}

/* ---- Parameter Store ---- */

int aws_parse_get_parameter(const char *body, size_t len, struct secret **ret_value,
			    struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL;
	struct backend_info info = { .version = "" };
	json_t *p, *value, *type, *ver;
	struct secret *s = NULL;
	int r;

	root = load_object(body, len, JSON_ALLOW_NUL, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	p = json_object_get(root, "Parameter");
	if (!json_is_object(p)) {
		snprintf(reason, reasonlen, "Parameter %s", p ? "is not an object" : "is missing");
		return -EBADMSG;
	}
	value = json_object_get(p, "Value");
	if (!json_is_string(value)) {
		snprintf(reason, reasonlen, "Parameter.Value %s",
			 value ? "is not a string" : "is missing");
		return -EBADMSG;
	}
	type = json_object_get(p, "Type");
	if (type && !json_is_string(type)) {
		snprintf(reason, reasonlen, "Parameter.Type is not a string");
		return -EBADMSG;
	}
	ver = json_object_get(p, "Version");
	if (ver && !json_is_null(ver)) {
		if (!json_is_integer(ver) || json_integer_value(ver) < 0) {
			snprintf(reason, reasonlen, "Parameter.Version is not a version number");
			return -EBADMSG;
		}
		snprintf(info.version, sizeof(info.version), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(ver));
	}
	if (type && strcmp(json_string_value(type), "StringList") == 0) {
		/* "a,b,c" as stored: a list is not split into files. */
		s = secret_dup(json_string_value(value), json_string_length(value));
		r = s ? 0 : -ENOMEM;
	} else {
		r = ns_secret_from_text(json_string_value(value), json_string_length(value),
					"the parameter", &s, reason, reasonlen);
	}
	if (r < 0)
		return r;
	*ret_value = s;
	*ret_info = info;
	return 0;
}

int aws_parse_parameters_by_path(const char *body, size_t len, struct aws_names *names, size_t max,
				 char **ret_next_token, char *reason, size_t reasonlen)
{
	json_auto_t *root = load_object(body, len, 0, reason, reasonlen);
	int r;

	if (!root)
		return -EBADMSG;
	r = collect_names(root, "Parameters", "Name", names, max, reason, reasonlen);
	if (r < 0)
		return r;
	return kit_page_token(root, "NextToken", ret_next_token, reason, reasonlen);
}

/* ---- errors ---- */

void aws_error_code_normalize(const char *raw, size_t rawlen, char *code, size_t codelen)
{
	const char *colon, *hash, *end;
	size_t pos = 0;

	if (codelen == 0)
		return;
	code[0] = '\0';
	/* Smithy's rule: cut at the first ':' (a URI follows), then keep what follows '#'. */
	colon = memchr(raw, ':', rawlen);
	end = colon ? colon : raw + rawlen;
	hash = NULL;
	for (const char *p = raw; p < end; p++)
		if (*p == '#')
			hash = p;
	if (hash)
		raw = hash + 1;
	while (raw < end && isspace((unsigned char)*raw))
		raw++;
	while (end > raw && isspace((unsigned char)end[-1]))
		end--;
	kit_append_clean(code, codelen < AWS_CODE_MAX ? codelen : AWS_CODE_MAX, &pos, raw,
			 (size_t)(end - raw));
}

void aws_parse_error(const char *header_error_type, const char *body, size_t len, char *code,
		     size_t codelen, char *msg, size_t msglen)
{
	json_auto_t *root = NULL;
	const char *m;
	json_error_t je;
	json_t *t;
	size_t pos = 0, cap;

	if (codelen)
		code[0] = '\0';
	if (msglen)
		msg[0] = '\0';
	root = body && len ? json_loadb(body, len, 0, &je) : NULL;
	if (!json_is_object(root)) {
		json_decref(root);
		root = NULL;
	}
	if (header_error_type && *header_error_type) {
		aws_error_code_normalize(header_error_type, strlen(header_error_type), code,
					 codelen);
	} else {
		t = json_object_get(root, "__type");
		if (!json_is_string(t))
			t = json_object_get(root, "code");
		if (json_is_string(t))
			aws_error_code_normalize(json_string_value(t), json_string_length(t), code,
						 codelen);
	}
	if (!msglen)
		return;
	m = json_string_value(json_object_get(root, "Message"));
	if (!m)
		m = json_string_value(json_object_get(root, "message"));
	if (!m)
		return;
	/*
	 * The first line only: a signature error goes on with the canonical
	 * request, which holds our session token.
	 */
	cap = msglen < AWS_MESSAGE_MAX + 1 ? msglen : AWS_MESSAGE_MAX + 1;
	kit_append_clean(msg, cap, &pos, m, strcspn(m, "\r\n"));
	while (pos && msg[pos - 1] == ' ')
		msg[--pos] = '\0';
}

/*
 * CreatedDate (epoch seconds, a JSON number) in microseconds, or 0 when it
 * is absent, not positive or past the year 9999: a double out of int64_t's
 * range must not be converted (undefined behaviour, found by fuzz_aws).
 */
static int64_t version_created_usec(const json_t *created)
{
	double sec = json_is_number(created) ? json_number_value(created) : 0;

	return sec > 0 && sec < 253402300800.0 ? (int64_t)(sec * 1e6) : 0;
}

/*
 * AWS's error codes in the terms backend.h knows.  Not found -ENOENT;
 * denied -EACCES (the credentials are good, the policy says no); rejected
 * -EIO (AWS does not accept the credentials at all: a setup error, not a
 * denial, and the mount must not guess around it); throttled -EAGAIN, and
 * we retry it ourselves (it comes as a 400); the service's own trouble
 * -EAGAIN (5xx, retried by the http layer); the store's answer about this
 * request -EIO, nothing to wait for.  An expired token is a denial that a
 * refresh may cure (KIT_CODE_REAUTH).
 */
static const struct kit_error_code error_table[] = {
	{ "ResourceNotFoundException", -ENOENT, 0 },
	{ "ParameterNotFound", -ENOENT, 0 },
	{ "ParameterVersionNotFound", -ENOENT, 0 },

	{ "AccessDeniedException", -EACCES, 0 },
	{ "AccessDenied", -EACCES, 0 },
	{ "NotAuthorized", -EACCES, 0 },
	{ "UnrecognizedClientException", -EIO, 0 },
	{ "InvalidClientTokenId", -EIO, 0 },
	{ "InvalidSignatureException", -EIO, 0 },
	{ "SignatureDoesNotMatch", -EIO, 0 },
	{ "IncompleteSignature", -EIO, 0 },
	{ "IncompleteSignatureException", -EIO, 0 },
	{ "MissingAuthenticationToken", -EIO, 0 },
	{ "MissingAuthenticationTokenException", -EIO, 0 },
	{ "ExpiredToken", -EACCES, KIT_CODE_REAUTH },
	{ "ExpiredTokenException", -EACCES, KIT_CODE_REAUTH },
	{ "InvalidIdentityToken", -EACCES, 0 },
	{ "OptInRequired", -EACCES, 0 },

	/* botocore's list of throttling codes. */
	{ "Throttling", -EAGAIN, KIT_CODE_THROTTLED },
	{ "ThrottlingException", -EAGAIN, KIT_CODE_THROTTLED },
	{ "ThrottledException", -EAGAIN, KIT_CODE_THROTTLED },
	{ "RequestThrottledException", -EAGAIN, KIT_CODE_THROTTLED },
	{ "RequestThrottled", -EAGAIN, KIT_CODE_THROTTLED },
	{ "TooManyRequestsException", -EAGAIN, KIT_CODE_THROTTLED },
	{ "ProvisionedThroughputExceededException", -EAGAIN, KIT_CODE_THROTTLED },
	{ "TransactionInProgressException", -EAGAIN, KIT_CODE_THROTTLED },
	{ "RequestLimitExceeded", -EAGAIN, KIT_CODE_THROTTLED },
	{ "BandwidthLimitExceeded", -EAGAIN, KIT_CODE_THROTTLED },
	{ "LimitExceededException", -EAGAIN, KIT_CODE_THROTTLED },
	{ "SlowDown", -EAGAIN, KIT_CODE_THROTTLED },
	{ "PriorRequestNotComplete", -EAGAIN, KIT_CODE_THROTTLED },
	{ "EC2ThrottledException", -EAGAIN, KIT_CODE_THROTTLED },

	{ "InternalServiceError", -EAGAIN, 0 },
	{ "InternalServerError", -EAGAIN, 0 },
	{ "InternalFailure", -EAGAIN, 0 },
	{ "InternalError", -EAGAIN, 0 },
	{ "ServiceUnavailable", -EAGAIN, 0 },
	{ "ServiceUnavailableException", -EAGAIN, 0 },
	{ "IDPCommunicationError", -EAGAIN, 0 },

	{ "DecryptionFailure", -EIO, 0 },
	{ "InvalidKeyId", -EIO, 0 },
	{ "InvalidRequestException", -EIO, 0 },
	{ "InvalidParameterException", -EIO, 0 },
	{ "ValidationException", -EIO, 0 },
	{ "RequestExpired", -EIO, 0 },
};

int aws_error_to_errno(const char *code, long status)
{
	return kit_error_errno(error_table, ARRAY_SIZE(error_table), code, status);
}

static unsigned code_flags(const char *code)
{
	const struct kit_error_code *e = kit_error_find(error_table, ARRAY_SIZE(error_table), code);

	return e ? e->flags : 0;
}

bool aws_error_is_throttling(const char *code)
{
	return code_flags(code) & KIT_CODE_THROTTLED;
}

bool aws_error_is_expired_token(const char *code)
{
	return code_flags(code) & KIT_CODE_REAUTH;
}

int aws_parse_list_secret_versions(const char *body, size_t len, json_t **ret_list,
				   char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL, *list = NULL;
	json_t *versions, *v;
	size_t i;

	root = load_object(body, len, 0, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	versions = json_object_get(root, "Versions");
	if (!json_is_array(versions)) {
		snprintf(reason, reasonlen, "Versions is not a list");
		return -EBADMSG;
	}
	list = json_array();
	if (!list)
		return -ENOMEM;
	json_array_foreach(versions, i, v)
	{
		const char *id = json_string_value(json_object_get(v, "VersionId"));
		json_t *stages = json_object_get(v, "VersionStages"), *st;
		json_t *created = json_object_get(v, "CreatedDate");
		const char *labels[16];
		size_t nl = 0, j;

		if (!id || !*id) {
			snprintf(reason, reasonlen, "Versions[%zu].VersionId is not a string", i);
			return -EBADMSG;
		}
		json_array_foreach(stages, j, st)
		{
			if (!json_is_string(st) || nl >= ARRAY_SIZE(labels)) {
				snprintf(reason, reasonlen, "Versions[%zu].VersionStages is not a short "
					 "list of names", i);
				return -EBADMSG;
			}
			labels[nl++] = json_string_value(st);
		}
		if (json_array_append_new(list, kit_version_entry(id, labels, nl,
					version_created_usec(created),
					nl ? "enabled" : "deprecated")) < 0)
			return -ENOMEM;
	}
	*ret_list = TAKE_PTR(list);
	return 0;
}
