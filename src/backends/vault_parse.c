/*
 * vault_parse.c - the SOURCE string and Vault's JSON answers, without the
 * network (see vault_parse.h).  Split from vault.c so the parsers can be
 * unit-tested and fuzzed without libcurl.
 *
 * Bodies are parsed with json_loadb() and dropped with json_decref(); the
 * daemon installs wiping allocators for jansson, so the parsed copies of a
 * secret are cleansed too.  Reasons name the member that was wrong and never
 * quote the body: a body may hold a secret, and jansson's own error text
 * quotes its input (ns_json_error_text() does not).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "backends/kit.h"
#include "backends/vault_parse.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

/* Seconds Vault may give as a TTL before the microseconds would overflow. */
#define MAX_SECONDS (INT64_MAX / (int64_t)USEC_PER_SEC)

/* ---- SOURCE ---- */

static const char FORMS[] = "expected vault:https://HOST[:PORT]/MOUNT[/PATH], or "
			    "vault:MOUNT[/PATH] with VAULT_ADDR set";

/* Length of "https://" or "http://" at the start of @s, or 0. */
static size_t scheme_len(const char *s, bool *ret_tls)
{
	if (strncasecmp(s, "https://", 8) == 0) {
		*ret_tls = true;
		return 8;
	}
	if (strncasecmp(s, "http://", 7) == 0) {
		*ret_tls = false;
		return 7;
	}
	return 0;
}

/* HOST, HOST:PORT, [V6]:PORT; no userinfo (credentials do not belong in a URL). */
static bool authority_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && !strchr("-._:[]%", c))
			return false;
	}
	return true;
}

/* Copies @path without leading and trailing '/'; NULL on ENOMEM. */
static char *trim_slashes(const char *path, size_t n)
{
	while (n && *path == '/') {
		path++;
		n--;
	}
	while (n && path[n - 1] == '/')
		n--;
	return strndup(path, n);
}

int vault_parse_source(const char *arg, const char *env_addr, struct vault_addr *ret, char *reason,
		       size_t reasonlen)
{
	struct vault_addr a = { 0 };
	const char *server, *path, *slash;
	size_t sl, base_len;

	sl = scheme_len(arg, &a.tls);
	if (sl) {
		server = arg;
		slash = strchr(arg + sl, '/');
		if (!slash || !authority_ok(arg + sl, (size_t)(slash - arg - sl))) {
			snprintf(reason, reasonlen, "%s%s",
				 slash || !arg[sl] ? "no usable HOST[:PORT]; " : "no MOUNT; ",
				 FORMS);
			return -EINVAL;
		}
		base_len = (size_t)(slash - arg);
		path = slash + 1;
	} else {
		if (strstr(arg, "://")) {
			snprintf(reason, reasonlen, "only https:// (and http://) addresses; %s",
				 FORMS);
			return -EINVAL;
		}
		if (!env_addr || !*env_addr) {
			snprintf(reason, reasonlen,
				 "vault:MOUNT takes the server from VAULT_ADDR, which is not set; "
				 "%s",
				 FORMS);
			return -EINVAL;
		}
		server = env_addr;
		sl = scheme_len(env_addr, &a.tls);
		slash = sl ? strchr(env_addr + sl, '/') : NULL;
		base_len = slash ? (size_t)(slash - env_addr) : strlen(env_addr);
		if (!sl || !authority_ok(env_addr + sl, base_len - sl) ||
		    strpbrk(env_addr, "?#@ \t\r\n")) {
			snprintf(
				reason, reasonlen,
				"VAULT_ADDR is not an address like https://vault.example.com:8200");
			return -EINVAL;
		}
		/* VAULT_ADDR may carry a path prefix (a proxy); keep it, without a final '/'. */
		base_len = strlen(env_addr);
		while (base_len > sl && env_addr[base_len - 1] == '/')
			base_len--;
		path = arg;
	}
	if (strpbrk(path, "?#")) {
		snprintf(reason, reasonlen, "no query or fragment allowed; %s", FORMS);
		return -EINVAL;
	}
	a.path = trim_slashes(path, strlen(path));
	a.base_url = strndup(server, base_len);
	if (!a.path || !a.base_url) {
		vault_addr_done(&a);
		return -ENOMEM;
	}
	if (!*a.path) {
		snprintf(reason, reasonlen, "no MOUNT; %s", FORMS);
		vault_addr_done(&a);
		return -EINVAL;
	}
	if (!ns_id_is_safe(a.path)) {
		snprintf(reason, reasonlen, "the path '%s' has an empty, '.' or '..' component; %s",
			 a.path, FORMS);
		vault_addr_done(&a);
		return -EINVAL;
	}
	*ret = a;
	return 0;
}

void vault_addr_done(struct vault_addr *a)
{
	free(a->base_url);
	free(a->path);
	*a = (struct vault_addr){ 0 };
}

/* ---- JSON helpers ---- */

/* Parses @body as a JSON object, or says why not without quoting it. */
static json_t *load_object(const char *body, size_t len, size_t flags, char *reason,
			   size_t reasonlen)
{
	return ns_json_load_object(body, len, flags, "Vault", reason, reasonlen);
}

/* A non-negative integer member; absent gives @def.  -EIO on a wrong type. */
static int get_seconds(json_t *obj, const char *key, const char *where, int64_t def, int64_t *ret,
		       char *reason, size_t reasonlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		*ret = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		snprintf(reason, reasonlen, "%s.%s is not a non-negative integer", where, key);
		return -EBADMSG;
	}
	*ret = json_integer_value(v) > MAX_SECONDS ? MAX_SECONDS : json_integer_value(v);
	return 0;
}

static int get_bool(json_t *obj, const char *key, const char *where, bool *ret, char *reason,
		    size_t reasonlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		*ret = false;
		return 0;
	}
	if (!json_is_boolean(v)) {
		snprintf(reason, reasonlen, "%s.%s is not a boolean", where, key);
		return -EBADMSG;
	}
	*ret = json_is_true(v);
	return 0;
}

static json_t *get_object(json_t *obj, const char *key, const char *what, char *reason,
			  size_t reasonlen)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_object(v))
		snprintf(reason, reasonlen, "%s %s", what,
			 !v || json_is_null(v) ? "is missing" : "is not an object");
	return json_is_object(v) ? v : NULL;
}

/* A value for the cache: EINVAL from the namespace (a bad key) is the store's answer, EIO. */
static int make_value(json_t *v, struct secret **ret, char *reason, size_t reasonlen)
{
	char why[BACKEND_REASON_MAX] = "";
	int r;

	r = ns_secret_from_json(v, 0, ret, why, sizeof(why));
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		snprintf(reason, reasonlen, "the secret cannot be shown: %s",
			 why[0] ? why : strerror(-r));
		return -EIO;
	}
	return 0;
}

/* ---- KV ---- */

/* Why a KV v2 envelope with @metadata has no data; ENOENT. */
static int kv2_gone(json_t *metadata, char *reason, size_t reasonlen)
{
	json_t *ver = json_object_get(metadata, "version");
	const char *dt = json_string_value(json_object_get(metadata, "deletion_time"));
	char vs[32] = "";

	if (json_is_integer(ver))
		snprintf(vs, sizeof(vs), " (%" JSON_INTEGER_FORMAT ")", json_integer_value(ver));
	if (json_is_true(json_object_get(metadata, "destroyed")))
		snprintf(reason, reasonlen, "the latest version%s is destroyed", vs);
	else if (dt && *dt)
		snprintf(reason, reasonlen, "the latest version%s is deleted", vs);
	else
		snprintf(reason, reasonlen, "the latest version%s has no data", vs);
	return -ENOENT;
}

int vault_parse_kv2_read(long status, const char *body, size_t len, struct secret **ret_value,
			 struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL;
	json_t *data, *metadata, *value, *ver;
	struct backend_info info = { .version = "" };
	struct secret *s = NULL;
	int r;

	if (status == 404) {
		json_error_t je;

		/* A deleted version comes as a 404 carrying the whole envelope. */
		root = body && len ? json_loadb(body, len, 0, &je) : NULL;
		data = json_object_get(root, "data");
		metadata = json_object_get(data, "metadata");
		if (json_is_object(metadata))
			return kv2_gone(metadata, reason, reasonlen);
		snprintf(reason, reasonlen, "no such secret");
		return -ENOENT;
	}
	root = load_object(body, len, JSON_ALLOW_NUL, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	data = get_object(root, "data", "the answer's data", reason, reasonlen);
	if (!data)
		return -EBADMSG;
	metadata = get_object(data, "metadata", "data.metadata", reason, reasonlen);
	if (!metadata)
		return -EBADMSG;
	value = json_object_get(data, "data");
	if (!value || json_is_null(value))
		return kv2_gone(metadata, reason, reasonlen);
	ver = json_object_get(metadata, "version");
	if (!json_is_integer(ver) || json_integer_value(ver) < 0) {
		snprintf(reason, reasonlen, "data.metadata.version is not a version number");
		return -EBADMSG;
	}
	snprintf(info.version, sizeof(info.version), "%" JSON_INTEGER_FORMAT,
		 json_integer_value(ver));
	r = make_value(value, &s, reason, reasonlen);
	if (r < 0)
		return r;
	*ret_value = s;
	*ret_info = info;
	return 0;
}

int vault_parse_kv1_read(const char *body, size_t len, struct secret **ret_value,
			 struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL;
	struct backend_info info = { .version = "" };
	struct secret *s = NULL;
	int64_t lease;
	json_t *data;
	int r;

	root = load_object(body, len, JSON_ALLOW_NUL, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	data = get_object(root, "data", "the answer's data", reason, reasonlen);
	if (!data)
		return -EBADMSG;
	r = get_seconds(root, "lease_duration", "the answer", 0, &lease, reason, reasonlen);
	if (r < 0)
		return r;
	info.ttl_hint_usec = (uint64_t)lease * USEC_PER_SEC;
	r = make_value(data, &s, reason, reasonlen);
	if (r < 0)
		return r;
	*ret_value = s;
	*ret_info = info;
	return 0;
}

int vault_parse_list(const char *body, size_t len, struct secret **ret_listing, char *reason,
		     size_t reasonlen)
{
	json_auto_t *root = NULL;
	_cleanup_free_ const char **keys = NULL;
	json_t *data, *arr, *k;
	size_t i, n;
	int r;

	root = load_object(body, len, 0, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	data = get_object(root, "data", "the answer's data", reason, reasonlen);
	if (!data)
		return -EBADMSG;
	arr = json_object_get(data, "keys");
	if (!json_is_array(arr)) {
		snprintf(reason, reasonlen, "data.keys %s", arr ? "is not an array" : "is missing");
		return -EBADMSG;
	}
	n = json_array_size(arr);
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	json_array_foreach(arr, i, k)
	{
		if (!json_is_string(k)) {
			snprintf(reason, reasonlen, "data.keys[%zu] is not a string", i);
			return -EBADMSG;
		}
		keys[i] = json_string_value(k);
	}
	r = ns_listing_from_keys(keys, n, ret_listing);
	return r;
}

int vault_parse_mount(const char *body, size_t len, const char *path, struct vault_mount_info *ret,
		      char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL;
	json_t *data, *options, *ver;
	const char *type, *mpath;
	size_t ml;
	int version = 1;

	root = load_object(body, len, 0, reason, reasonlen);
	if (!root)
		return -EIO;
	data = get_object(root, "data", "the mount description", reason, reasonlen);
	if (!data)
		return -EIO;
	type = json_string_value(json_object_get(data, "type"));
	mpath = json_string_value(json_object_get(data, "path"));
	if (!type || !mpath) {
		snprintf(reason, reasonlen, "the mount description has no %s",
			 !type ? "data.type" : "data.path");
		return -EIO;
	}
	if (strcmp(type, "kv") != 0 && strcmp(type, "generic") != 0) {
		snprintf(reason, reasonlen, "'%s' is a mount of type '%.32s', not a KV store", path,
			 type);
		return -EINVAL;
	}
	options = json_object_get(data, "options");
	if (options && !json_is_null(options) && !json_is_object(options)) {
		snprintf(reason, reasonlen, "data.options is not an object");
		return -EIO;
	}
	ver = json_object_get(options, "version");
	if (ver && !json_is_null(ver)) {
		const char *vs = json_string_value(ver);

		if (!vs || (strcmp(vs, "1") != 0 && strcmp(vs, "2") != 0)) {
			snprintf(reason, reasonlen,
				 "data.options.version is not \"1\" or \"2\" (a KV version this "
				 "client knows)");
			return -EIO;
		}
		version = vs[0] - '0';
	}
	ml = strlen(mpath);
	while (ml && mpath[ml - 1] == '/')
		ml--;
	if (ml == 0 || strncmp(path, mpath, ml) != 0 || (path[ml] != '\0' && path[ml] != '/')) {
		snprintf(reason, reasonlen, "the mount Vault names for '%s' does not contain it",
			 path);
		return -EIO;
	}
	ret->mount = strndup(mpath, ml);
	if (!ret->mount)
		return -ENOMEM;
	ret->kv_version = version;
	return 0;
}

/* ---- tokens ---- */

bool vault_token_is_valid(const char *s, size_t len)
{
	return kit_credential_is_valid(s, len, VAULT_TOKEN_MAX);
}

int vault_parse_lookup_self(const char *body, size_t len, struct vault_token_info *ret,
			    char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL;
	struct vault_token_info ti = { 0 };
	int64_t ttl, cttl, emax;
	json_t *data, *et;
	int r;

	root = load_object(body, len, 0, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	data = get_object(root, "data", "the token lookup's data", reason, reasonlen);
	if (!data)
		return -EBADMSG;
	if (!json_object_get(data, "ttl")) {
		snprintf(reason, reasonlen, "the token lookup has no data.ttl");
		return -EBADMSG;
	}
	r = get_seconds(data, "ttl", "data", 0, &ttl, reason, reasonlen);
	if (r >= 0)
		r = get_seconds(data, "creation_ttl", "data", ttl, &cttl, reason, reasonlen);
	if (r >= 0)
		r = get_seconds(data, "explicit_max_ttl", "data", 0, &emax, reason, reasonlen);
	if (r >= 0)
		r = get_bool(data, "renewable", "data", &ti.renewable, reason, reasonlen);
	if (r < 0)
		return r;
	et = json_object_get(data, "expire_time");
	if (et && !json_is_null(et)) {
		if (!json_is_string(et) ||
		    vault_parse_time(json_string_value(et), &ti.expire_time_usec) < 0) {
			snprintf(reason, reasonlen, "data.expire_time is not an RFC 3339 time");
			return -EBADMSG;
		}
	}
	ti.ttl_usec = (uint64_t)ttl * USEC_PER_SEC;
	ti.creation_ttl_usec = (uint64_t)cttl * USEC_PER_SEC;
	ti.explicit_max_ttl_usec = (uint64_t)emax * USEC_PER_SEC;
	*ret = ti;
	return 0;
}

int vault_parse_auth(const char *body, size_t len, char **ret_token, size_t *ret_token_len,
		     struct vault_token_info *ret, char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL;
	struct vault_token_info ti = { 0 };
	json_t *auth, *tok;
	int64_t lease;
	size_t tl;
	char *t;
	int r;

	root = load_object(body, len, 0, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	auth = get_object(root, "auth", "the answer's auth", reason, reasonlen);
	if (!auth)
		return -EBADMSG;
	tok = json_object_get(auth, "client_token");
	tl = json_string_length(tok);
	if (!json_is_string(tok) || !vault_token_is_valid(json_string_value(tok), tl)) {
		snprintf(reason, reasonlen, "auth.client_token is %s",
			 !tok || json_is_null(tok) ? "missing" : "not a usable token");
		return -EBADMSG;
	}
	r = get_seconds(auth, "lease_duration", "auth", 0, &lease, reason, reasonlen);
	if (r >= 0)
		r = get_bool(auth, "renewable", "auth", &ti.renewable, reason, reasonlen);
	if (r < 0)
		return r;
	t = malloc(tl + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t, json_string_value(tok), tl + 1);
	ti.ttl_usec = (uint64_t)lease * USEC_PER_SEC;
	ti.creation_ttl_usec = ti.ttl_usec;
	*ret_token = t;
	*ret_token_len = tl;
	*ret = ti;
	return 0;
}

/* ---- errors ---- */

void vault_parse_error(const char *body, size_t len, char *buf, size_t buflen)
{
	json_auto_t *root = NULL;
	const char *msg, *p, *end;
	size_t n, pos = 0, cap;
	json_error_t je;
	int skip = 0;

	if (buflen == 0)
		return;
	buf[0] = '\0';
	cap = buflen < VAULT_ERROR_MAX + 1 ? buflen : VAULT_ERROR_MAX + 1;
	root = body && len ? json_loadb(body, len, 0, &je) : NULL;
	msg = json_string_value(json_array_get(json_object_get(root, "errors"), 0));
	if (!msg)
		return;
	n = strlen(msg);
	/* Vault >= 1.16 wraps messages as go-multierror does: "1 error occurred:\n\t* ...\n\n". */
	if (sscanf(msg, "%*u error%*[s] occurred:%n", &skip) >= 0 && skip > 0) {
		msg += skip;
	} else {
		skip = 0;
		if (sscanf(msg, "%*u error occurred:%n", &skip) >= 0 && skip > 0)
			msg += skip;
	}
	n = strlen(msg);
	for (p = msg; p < msg + n; p = end + 1) {
		size_t ll;

		end = memchr(p, '\n', (size_t)(msg + n - p));
		if (!end)
			end = msg + n;
		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p < end && *p == '*')
			p++;
		ll = (size_t)(end - p);
		while (ll && isspace((unsigned char)p[ll - 1]))
			ll--;
		while (ll && isspace((unsigned char)*p)) {
			p++;
			ll--;
		}
		if (ll == 0)
			continue;
		if (pos)
			kit_append_clean(buf, cap, &pos, "; ", 2);
		kit_append_clean(buf, cap, &pos, p, ll);
		if (end == msg + n)
			break;
	}
	while (pos && buf[pos - 1] == ' ')
		buf[--pos] = '\0';
}

/* ---- KV v2 versions ---- */

int vault_parse_kv2_metadata(const char *body, size_t len, json_t **ret_versions,
			     uint64_t *ret_previous, char *reason, size_t reasonlen)
{
	json_auto_t *root = NULL, *list = NULL;
	json_t *data, *versions, *cur, *v;
	uint64_t current, previous = 0;
	json_int_t oldest;

	root = load_object(body, len, 0, reason, reasonlen);
	if (!root)
		return -EBADMSG;
	data = get_object(root, "data", "the answer's data", reason, reasonlen);
	if (!data)
		return -EBADMSG;
	versions = get_object(data, "versions", "data.versions", reason, reasonlen);
	if (!versions)
		return -EBADMSG;
	cur = json_object_get(data, "current_version");
	if (!json_is_integer(cur) || json_integer_value(cur) < 0) {
		snprintf(reason, reasonlen, "data.current_version is not a version number");
		return -EBADMSG;
	}
	current = (uint64_t)json_integer_value(cur);
	list = json_array();
	if (!list)
		return -ENOMEM;
	oldest = json_integer_value(json_object_get(data, "oldest_version"));
	if (oldest < 1)
		oldest = 1;
	/* Vault orders nothing: newest first here, and "previous" is the newest live one below. */
	for (uint64_t want = current; want >= (uint64_t)oldest && json_array_size(list) < 1000;
	     want--) {
		char num[24];

		snprintf(num, sizeof(num), "%" PRIu64, want);
		v = json_object_get(versions, num);
		if (!v)
			continue; /* beyond max_versions: gone */
		if (!json_is_object(v)) {
			snprintf(reason, reasonlen, "data.versions.%s is not an object", num);
			return -EBADMSG;
		}
		{
			const char *dt = json_string_value(json_object_get(v, "deletion_time"));
			const char *ct = json_string_value(json_object_get(v, "created_time"));
			bool destroyed = json_is_true(json_object_get(v, "destroyed"));
			int64_t created = 0, deleted = 0;
			const char *labels[2];
			size_t nl = 0;
			const char *state = "enabled";

			if (ct && *ct && kit_parse_time(ct, 0, &created) < 0)
				created = 0;
			/* A deletion_time in the future (delete_version_after) has not happened. */
			if (dt && *dt && kit_parse_time(dt, 0, &deleted) == 0 &&
			    (uint64_t)deleted <= realtime_usec())
				state = "deleted";
			if (destroyed)
				state = "destroyed";
			if (want == current)
				labels[nl++] = "current";
			else if (!previous && strcmp(state, "enabled") == 0) {
				previous = want;
				labels[nl++] = "previous";
			}
			if (json_array_append_new(list, kit_version_entry(num, labels, nl, created,
									    state)) < 0)
				return -ENOMEM;
		}
	}
	if (ret_versions)
		*ret_versions = TAKE_PTR(list);
	*ret_previous = previous;
	return 0;
}
