/*
 * config.c - the daemon's settings: built-in defaults, then the INI config
 * file (parsed with libinih), then -o NAME=VALUE from the command line.
 *
 * One table describes every setting: its -o name, where it lives in the
 * file, its type and its bounds, so the file and the command line accept
 * exactly the same values and give the same reasons when they do not.  A
 * file is loaded into a copy of the settings that replaces the caller's only
 * when the whole file is valid, so a bad file leaves nothing half-applied.
 * Nothing here logs: callers get a negative errno and a one-line reason.
 */
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretfs/config.h"
#include "secretfs/util.h"

enum opt_type {
	OPT_SOURCE,
	OPT_PATH,
	OPT_FUSE_OPTIONS,
	OPT_AUDIT,
	OPT_CHOICE, /* one of the '|'-separated words in bounds */
	OPT_NAME,   /* one file name: not ".", "..", no '/' */
	OPT_BOOL,
	OPT_DURATION,
	OPT_COUNT,
	OPT_SIZE,
};

struct config_option {
	const char *name;    /* -o NAME and config_set() key */
	const char *section; /* config file section */
	const char *key;     /* key within that section */
	enum opt_type type;
	size_t offset; /* of the field in struct config */
	uint64_t min, max;
	const char *bounds; /* the reason given when min/max is violated */
};

#define FIELD(f) offsetof(struct config, f)

static const struct config_option options[] = {
	{ "source", "secretfs", "source", OPT_SOURCE, FIELD(source), 0, 0, NULL },
	{ "mountpoint", "secretfs", "mountpoint", OPT_PATH, FIELD(mountpoint), 0, 0, NULL },
	{ "foreground", "secretfs", "foreground", OPT_BOOL, FIELD(foreground), 0, 0, NULL },
	{ "debug", "secretfs", "debug", OPT_BOOL, FIELD(debug), 0, 0, NULL },
	{ "fuse_options", "secretfs", "fuse_options", OPT_FUSE_OPTIONS, FIELD(fuse_options), 0, 0,
	  NULL },
	{ "ttl", "cache", "ttl", OPT_DURATION, FIELD(ttl_usec), 0, UINT64_MAX, NULL },
	{ "stale_ttl", "cache", "stale_ttl", OPT_DURATION, FIELD(stale_ttl_usec), 0, UINT64_MAX,
	  NULL },
	{ "negative_ttl", "cache", "negative_ttl", OPT_DURATION, FIELD(negative_ttl_usec), 0,
	  UINT64_MAX, NULL },
	/*
	 * docs/design.md section 3 wants kernel attributes short-lived, so st_size
	 * follows a rotation.
	 */
	{ "attr_timeout", "cache", "attr_timeout", OPT_DURATION, FIELD(attr_timeout_usec), 0,
	  3600 * USEC_PER_SEC, "must be at most 1h" },
	/*
	 * A zero deadline would fail every fetch; docs/design.md section 4 forbids
	 * an unbounded one.
	 */
	{ "fetch_timeout", "cache", "fetch_timeout", OPT_DURATION, FIELD(fetch_timeout_usec), 1,
	  UINT64_MAX, "must be more than 0" },
	{ "cache_max_entries", "cache", "max_entries", OPT_COUNT, FIELD(cache_max_entries), 1,
	  SIZE_MAX, "must be at least 1" },
	/* Below a page the cache could not hold even one ordinary secret. */
	{ "cache_max_bytes", "cache", "max_bytes", OPT_SIZE, FIELD(cache_max_bytes), 4096, SIZE_MAX,
	  "must be at least 4096 (4K)" },
	/* Threads and sockets a burst of misses may take; the rest queue. */
	{ "max_fetches", "cache", "max_fetches", OPT_COUNT, FIELD(max_fetches), 1, 65536,
	  "must be between 1 and 65536" },
	{ "policy", "access", "policy", OPT_PATH, FIELD(policy), 0, 0, NULL },
	{ "show_denied", "access", "show_denied", OPT_BOOL, FIELD(show_denied), 0, 0, NULL },
	{ "hide_denied_size", "access", "hide_denied_size", OPT_BOOL, FIELD(hide_denied_size), 0, 0,
	  NULL },
	/* What one reader may hold open at once; 0 turns the cap off. */
	{ "max_handles_per_uid", "access", "max_handles_per_uid", OPT_COUNT,
	  FIELD(max_handles_per_uid), 0, SIZE_MAX, NULL },
	{ "audit", "access", "audit", OPT_AUDIT, FIELD(audit), 0, 0, NULL },
	/* The meta directory at the root and the format views under it. */
	{ "meta_dir", "views", "meta_dir", OPT_NAME, FIELD(meta_dir), 0, 0, NULL },
	{ "show_meta", "views", "show_meta", OPT_BOOL, FIELD(show_meta), 0, 0, NULL },
	{ "view_env_case", "views", "env_case", OPT_CHOICE, FIELD(view_env_case), 0, 0,
	  "keep|upper" },
	/* The admin control socket; checked when it is created (control.c). */
	{ "control", "control", "socket", OPT_PATH, FIELD(control), 0, 0, NULL },
	{ "control_admin", "control", "admin_uid", OPT_PATH, FIELD(control_admin), 0, 0, NULL },
	/* The HTTP layer of the network backends. */
	{ "ca_file", "http", "ca_file", OPT_PATH, FIELD(http_ca_file), 0, 0, NULL },
	{ "ca_path", "http", "ca_path", OPT_PATH, FIELD(http_ca_path), 0, 0, NULL },
	{ "client_cert", "http", "client_cert", OPT_PATH, FIELD(http_client_cert), 0, 0, NULL },
	{ "client_key", "http", "client_key", OPT_PATH, FIELD(http_client_key), 0, 0, NULL },
	{ "connect_timeout", "http", "connect_timeout", OPT_DURATION,
	  FIELD(http_connect_timeout_usec), 1, UINT64_MAX, "must be more than 0" },
	{ "http_timeout", "http", "timeout", OPT_DURATION, FIELD(http_timeout_usec), 1, UINT64_MAX,
	  "must be more than 0" },
	{ "max_body", "http", "max_body", OPT_SIZE, FIELD(http_max_body), 1024, SIZE_MAX,
	  "must be at least 1K" },
	{ "max_attempts", "http", "max_attempts", OPT_COUNT, FIELD(http_max_attempts), 1, 100,
	  "must be between 1 and 100" },
	{ "insecure", "http", "insecure", OPT_BOOL, FIELD(http_insecure), 0, 0, NULL },
	/* HashiCorp Vault. */
	{ "vault_auth", "vault", "auth", OPT_CHOICE, FIELD(vault_auth), 0, 0,
	  "token|approle|kubernetes" },
	{ "vault_auth_mount", "vault", "auth_mount", OPT_PATH, FIELD(vault_auth_mount), 0, 0,
	  NULL },
	{ "vault_token_file", "vault", "token_file", OPT_PATH, FIELD(vault_token_file), 0, 0,
	  NULL },
	{ "vault_role_id_file", "vault", "role_id_file", OPT_PATH, FIELD(vault_role_id_file), 0, 0,
	  NULL },
	{ "vault_secret_id_file", "vault", "secret_id_file", OPT_PATH, FIELD(vault_secret_id_file),
	  0, 0, NULL },
	{ "vault_remove_secret_id_file", "vault", "remove_secret_id_file", OPT_BOOL,
	  FIELD(vault_remove_secret_id_file), 0, 0, NULL },
	{ "vault_role", "vault", "role", OPT_PATH, FIELD(vault_role), 0, 0, NULL },
	{ "vault_jwt_file", "vault", "jwt_file", OPT_PATH, FIELD(vault_jwt_file), 0, 0, NULL },
	{ "vault_kv_version", "vault", "kv_version", OPT_CHOICE, FIELD(vault_kv_version), 0, 0,
	  "auto|1|2" },
	{ "vault_namespace", "vault", "namespace", OPT_PATH, FIELD(vault_namespace), 0, 0, NULL },
	/* AWS Secrets Manager and Parameter Store. */
	{ "aws_profile", "aws", "profile", OPT_PATH, FIELD(aws_profile), 0, 0, NULL },
	{ "aws_version_stage", "aws", "version_stage", OPT_PATH, FIELD(aws_version_stage), 0, 0,
	  NULL },
	/* ListSecrets has a small quota and lags about 5 minutes: listings keep their own time. */
	{ "aws_list_ttl", "aws", "list_ttl", OPT_DURATION, FIELD(aws_list_ttl_usec), 0, UINT64_MAX,
	  NULL },
	/*
	 * Stores whose names cannot hold '/' (Google Secret Manager, Azure Key
	 * Vault): this string in a name stands for '/'.  Each backend checks it
	 * against its own alphabet.
	 */
	{ "name_separator", "secretfs", "name_separator", OPT_PATH, FIELD(name_separator), 0, 0,
	  NULL },
	/* Google Secret Manager. */
	{ "gcp_endpoint", "gcp", "endpoint", OPT_PATH, FIELD(gcp_endpoint), 0, 0, NULL },
	{ "gcp_credentials", "gcp", "credentials", OPT_PATH, FIELD(gcp_credentials), 0, 0, NULL },
	/* Doppler. */
	{ "doppler_api_host", "doppler", "api_host", OPT_PATH, FIELD(doppler_api_host), 0, 0,
	  NULL },
	{ "doppler_token_file", "doppler", "token_file", OPT_PATH, FIELD(doppler_token_file), 0, 0,
	  NULL },
	/* 1Password Connect; unset: OP_CONNECT_HOST and OP_CONNECT_TOKEN, as 1Password's SDKs. */
	{ "op_connect_host", "op-connect", "host", OPT_PATH, FIELD(op_connect_host), 0, 0, NULL },
	{ "op_token_file", "op-connect", "token_file", OPT_PATH, FIELD(op_token_file), 0, 0, NULL },
};

void config_init(struct config *c)
{
	*c = (struct config){
		.ttl_usec = 300 * USEC_PER_SEC,
		.stale_ttl_usec = 24 * 3600 * USEC_PER_SEC,
		.negative_ttl_usec = 30 * USEC_PER_SEC,
		.attr_timeout_usec = 1 * USEC_PER_SEC,
		.fetch_timeout_usec = 5 * USEC_PER_SEC,
		.cache_max_entries = 10000,
		.cache_max_bytes = 4 * 1024 * 1024,
		.max_fetches = 16,
		.aws_list_ttl_usec = 300 * USEC_PER_SEC,
		.max_handles_per_uid = 4096,
	};
}

/* A source may carry credentials in a URL, so strings are wiped before they are freed. */
static void string_free(char **s)
{
	if (*s)
		wipe_free(*s, strlen(*s));
	*s = NULL;
}

static bool option_is_string(const struct config_option *o)
{
	return o->type == OPT_SOURCE || o->type == OPT_PATH || o->type == OPT_FUSE_OPTIONS ||
	       o->type == OPT_AUDIT || o->type == OPT_CHOICE || o->type == OPT_NAME;
}

static char **string_field(struct config *c, const struct config_option *o)
{
	return (char **)((char *)c + o->offset);
}

static void template_done(struct config_template *t)
{
	free(t->name);
	free(t->file);
	free(t->path);
	free(t->format);
	free(t->delims);
	free(t->origin);
}

static void templates_free(struct config *c)
{
	for (size_t i = 0; i < c->ntemplates; i++)
		template_done(&c->templates[i]);
	free(c->templates);
	c->templates = NULL;
	c->ntemplates = 0;
}

void config_done(struct config *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (option_is_string(&options[i]))
			string_free(string_field(c, &options[i]));
	templates_free(c);
}

static int string_dup(const char *s, char **ret)
{
	char *d = NULL;

	if (s) {
		d = strdup(s);
		if (!d)
			return -ENOMEM;
	}
	*ret = d;
	return 0;
}

static int template_copy(const struct config_template *src, struct config_template *ret)
{
	*ret = (struct config_template){ .access_whole = src->access_whole,
					 .missing_empty = src->missing_empty };
	if (string_dup(src->name, &ret->name) < 0 || string_dup(src->file, &ret->file) < 0 ||
	    string_dup(src->path, &ret->path) < 0 || string_dup(src->format, &ret->format) < 0 ||
	    string_dup(src->delims, &ret->delims) < 0 ||
	    string_dup(src->origin, &ret->origin) < 0) {
		template_done(ret);
		return -ENOMEM;
	}
	return 0;
}

/* A new, empty template at the end of c->templates; NULL on ENOMEM. */
static struct config_template *template_add(struct config *c)
{
	struct config_template *t =
		realloc(c->templates, (c->ntemplates + 1) * sizeof(*c->templates));

	if (!t)
		return NULL;
	c->templates = t;
	t = &c->templates[c->ntemplates++];
	*t = (struct config_template){ 0 };
	return t;
}

static int config_copy(const struct config *src, struct config *ret)
{
	struct config c = *src;

	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (option_is_string(&options[i]))
			*string_field(&c, &options[i]) = NULL;
	c.templates = NULL;
	c.ntemplates = 0;
	for (size_t i = 0; i < src->ntemplates; i++) {
		struct config_template *t = template_add(&c);

		if (!t || template_copy(&src->templates[i], t) < 0) {
			if (t)
				c.ntemplates--;
			config_done(&c);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
		if (option_is_string(&options[i]) &&
		    string_dup(*string_field((struct config *)src, &options[i]),
			       string_field(&c, &options[i])) < 0) {
			config_done(&c);
			return -ENOMEM;
		}
	}
	*ret = c;
	return 0;
}

static const struct config_option *option_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (strcmp(options[i].name, name) == 0)
			return &options[i];
	return NULL;
}

static bool section_known(const char *section)
{
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (strcmp(options[i].section, section) == 0)
			return true;
	return false;
}

static const struct config_option *option_by_key(const char *section, const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		if (strcmp(options[i].section, section) == 0 && strcmp(options[i].key, key) == 0)
			return &options[i];
	return NULL;
}

/*
 * Echoing the offending value makes the message actionable, but only short
 * printable ones: a terminal should not receive escape sequences from a file.
 */
static const char *printable(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (s[n] < 0x20 || s[n] > 0x7e)
			return "(not printable)";
	return n <= 64 ? s : "(too long to show)";
}

/* "scheme:rest", scheme of [a-z0-9-]: the backend registry looks backends up by it. */
static bool source_valid(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-");

	return n > 0 && s[n] == ':';
}

/* An empty item or a blank would become a malformed -o argument to libfuse. */
static bool fuse_options_valid(const char *s)
{
	bool item_empty = true;

	for (; *s; s++) {
		if (*s == ',') {
			if (item_empty)
				return false;
			item_empty = true;
		} else if (*s <= ' ' || *s > '~') {
			return false;
		} else {
			item_empty = false;
		}
	}
	return !item_empty;
}

/* Whether @w is one of the '|'-separated @words. */
static bool word_in(const char *words, const char *w)
{
	size_t wl = strlen(w);

	for (const char *p = words; *p;) {
		size_t n = strcspn(p, "|");

		if (n == wl && strncmp(p, w, wl) == 0)
			return true;
		p += n + (p[n] == '|');
	}
	return false;
}

static int option_apply(struct config *c, const struct config_option *o, const char *value,
			char *err, size_t errlen)
{
	void *field = (char *)c + o->offset;
	uint64_t u = 0;
	size_t sz = 0;
	char *s;
	bool b;

	if (!value || !*value)
		return set_error(err, errlen, -EINVAL, "empty value");

	switch (o->type) {
	case OPT_SOURCE:
		if (!source_valid(value))
			return set_error(err, errlen, -EINVAL,
					 "expected SCHEME:REST like file:/etc/secretfs/store.json, "
					 "the scheme made of a-z, 0-9 and '-'");
		break;
	case OPT_FUSE_OPTIONS:
		if (!fuse_options_valid(value))
			return set_error(err, errlen, -EINVAL,
					 "expected comma separated FUSE options like "
					 "allow_root,max_threads=4, without blanks or empty items");
		break;
	case OPT_PATH:
		break;
	case OPT_NAME:
		if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0 || strchr(value, '/'))
			return set_error(err, errlen, -EINVAL,
					 "expected one file name, not '.', '..' or one with '/'");
		break;
	case OPT_CHOICE:
		if (!word_in(o->bounds, value))
			return set_error(err, errlen, -EINVAL, "expected one of %s, got '%s'",
					 o->bounds, printable(value));
		break;
	case OPT_AUDIT:
		if (strcmp(value, "syslog") != 0 && strcmp(value, "stderr") != 0 && value[0] != '/')
			return set_error(err, errlen, -EINVAL,
					 "expected syslog, stderr or an absolute file path");
		break;
	case OPT_BOOL:
		if (parse_bool(value, &b) < 0)
			return set_error(err, errlen, -EINVAL,
					 "expected yes/no, true/false, on/off or 1/0, got '%s'",
					 printable(value));
		*(bool *)field = b;
		return 0;
	case OPT_DURATION:
		if (parse_duration(value, &u) < 0)
			return set_error(err, errlen, -EINVAL,
					 "expected a duration like 30s, 5m, 1h, got '%s'",
					 printable(value));
		if (u < o->min || u > o->max)
			return set_error(err, errlen, -EINVAL, "%s, got '%s'", o->bounds,
					 printable(value));
		*(uint64_t *)field = u;
		return 0;
	case OPT_COUNT:
		if (parse_uint(value, o->max, &u) < 0)
			return set_error(err, errlen, -EINVAL,
					 "expected a whole number like 10000, got '%s'",
					 printable(value));
		if (u < o->min)
			return set_error(err, errlen, -EINVAL, "%s, got '%s'", o->bounds,
					 printable(value));
		*(size_t *)field = (size_t)u;
		return 0;
	case OPT_SIZE:
		if (parse_size(value, &sz) < 0)
			return set_error(
				err, errlen, -EINVAL,
				"expected a size in bytes like 65536, 64K, 16M, 1G, got '%s'",
				printable(value));
		if (sz < o->min || sz > o->max)
			return set_error(err, errlen, -EINVAL, "%s, got '%s'", o->bounds,
					 printable(value));
		*(size_t *)field = sz;
		return 0;
	}

	/* The string types: validated above; not echoed, a source URL may hold credentials. */
	s = strdup(value);
	if (!s)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	string_free((char **)field);
	*(char **)field = s;
	return 0;
}

bool config_is_option(const char *key)
{
	return option_by_name(key) != NULL || strcmp(key, "template") == 0;
}

#define TEMPLATE_FORMATS "raw|env|shell|json|yaml|properties|ini"

/* -o template=MOUNTPATH:FILE[:FORMAT]; repeatable, each adds one. */
static int template_short(struct config *c, const char *value, char *err, size_t errlen)
{
	const char *c1 = strchr(value, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	struct config_template *t;

	if (!c1 || c1 == value || c1[1] != '/' || (c2 && !word_in(TEMPLATE_FORMATS, c2 + 1)))
		return set_error(err, errlen, -EINVAL,
				 "expected MOUNTPATH:FILE[:FORMAT] like "
				 "app/app.env:/etc/secretfs/app.env.tmpl:env, FILE absolute, "
				 "FORMAT one of " TEMPLATE_FORMATS);
	t = template_add(c);
	if (!t)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	t->name = strndup(value, (size_t)(c1 - value));
	t->path = strndup(value, (size_t)(c1 - value));
	t->file = c2 ? strndup(c1 + 1, (size_t)(c2 - c1 - 1)) : strdup(c1 + 1);
	t->format = c2 ? strdup(c2 + 1) : NULL;
	t->origin = strdup("-o template");
	if (!t->name || !t->path || !t->file || (c2 && !t->format) || !t->origin) {
		template_done(t);
		c->ntemplates--;
		return set_error(err, errlen, -ENOMEM, "out of memory");
	}
	return 0;
}

int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen)
{
	const struct config_option *o = option_by_name(key);

	if (strcmp(key, "template") == 0)
		return template_short(c, value ? value : "", err, errlen);
	if (!o)
		return set_error(err, errlen, -ENOENT, "unknown key");
	return option_apply(c, o, value, err, errlen);
}

struct load_ctx {
	FILE *f;
	const char *path;
	/* Staged: replaces the caller's settings only if the whole file is valid. */
	struct config cfg;
	/* The line inih is parsing; our reader counts the lines it hands out. */
	unsigned line;
	/* That line starts with a blank (inih then reads it as a continuation). */
	bool indented;
	/* The line each option was set on, 0 if not yet. */
	unsigned seen[ARRAY_SIZE(options)];
	/* The first error the handler or the reader found, 0 if none. */
	unsigned err_line;
	int err_code;
	char err[CONFIG_ERR_MAX];
};

static void load_error(struct load_ctx *ctx, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void load_error(struct load_ctx *ctx, int r, const char *fmt, ...)
{
	va_list ap;

	if (ctx->err_line)
		return;
	ctx->err_line = ctx->line;
	ctx->err_code = r;
	va_start(ap, fmt);
	vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
	va_end(ap);
}

/*
 * fgets() for inih, so that we know the line number of every handler call
 * (Debian's inih has no INI_HANDLER_LINENO) and can report an over-long line:
 * inih would otherwise split it or drop its tail, silently changing a value.
 * The tail is consumed here and inih gets a blank line, keeping its count and
 * ours aligned with the file.
 */
static char *read_line(char *buf, int num, void *stream)
{
	struct load_ctx *ctx = stream;
	size_t len, klen;
	char *start;
	int ch;

	if (!fgets(buf, num, ctx->f))
		return NULL;
	ctx->line++;
	ctx->indented = buf[0] == ' ' || buf[0] == '\t';
	len = strlen(buf);
	if (len == 0 || buf[len - 1] == '\n')
		return buf;
	ch = getc(ctx->f);
	if (ch == EOF)
		return buf; /* the last line, without a newline */
	while (ch != EOF && ch != '\n')
		ch = getc(ctx->f);
	/* Name the key when the line starts like "key =", as every other error does. */
	start = buf + strspn(buf, " \t");
	klen = strspn(start, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.");
	if (klen > 0 && klen <= 64 && start[klen + strspn(start + klen, " \t")] == '=')
		load_error(ctx, -EINVAL, "key '%.*s': line too long (at most %d characters)",
			   (int)klen, start, num - 2);
	else
		load_error(ctx, -EINVAL, "line too long (at most %d characters)", num - 2);
	buf[0] = '\n';
	buf[1] = '\0';
	return buf;
}

/* The keys of @section, for the "unknown key" message. */
static void section_keys(const char *section, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(options) && used < len; i++) {
		if (strcmp(options[i].section, section) != 0)
			continue;
		used += snprintf(buf + used, len - used, "%s%s", used ? ", " : "", options[i].key);
	}
}

/* Mistakes that produce a bad value but are really about the file's syntax. */
static const char *value_hint(const char *value)
{
	if (strstr(value, " #") || strstr(value, "\t#"))
		return "; '#' starts a comment only at the start of a line, use ' ;' after a value";
	if (value[0] == '"' || value[0] == '\'')
		return "; values are not quoted";
	return "";
}

/* The [template NAME] being filled, or a new one; NULL on ENOMEM (reported). */
static struct config_template *template_section(struct load_ctx *ctx, const char *name)
{
	struct config *c = &ctx->cfg;
	struct config_template *t;

	for (size_t i = 0; i < c->ntemplates; i++)
		if (c->templates[i].name && c->templates[i].origin &&
		    strcmp(c->templates[i].origin, "-o template") != 0 &&
		    strcmp(c->templates[i].name, name) == 0)
			return &c->templates[i];
	t = template_add(c);
	if (t) {
		t->name = strdup(name);
		if (asprintf(&t->origin, "%s:%u", ctx->path, ctx->line) < 0)
			t->origin = NULL;
		if (t->name && t->origin)
			return t;
		template_done(t);
		c->ntemplates--;
	}
	load_error(ctx, -ENOMEM, "out of memory");
	return NULL;
}

/* A two-word key of a [template NAME] section: @off (the default) or @on. */
static int template_switch(struct load_ctx *ctx, const char *section, const char *key,
			   const char *value, const char *off, const char *on, const char *hint,
			   bool *field)
{
	if (strcmp(value, off) != 0 && strcmp(value, on) != 0) {
		load_error(ctx, -EINVAL,
			   "[%s] key '%s': expected %s%s, the default, or %s, got '%s'", section,
			   key, off, hint, on, printable(value));
		return 0;
	}
	*field = strcmp(value, on) == 0;
	return 1;
}

/* One key of a [template NAME] section: file, path, format, access, missing, delims. */
static int template_key(struct load_ctx *ctx, const char *section, const char *key,
			const char *value)
{
	const char *name = section + strlen("template ");
	struct config_template *t;
	char **field = NULL;
	size_t nlen = strlen(name);

	if (nlen == 0 || nlen > 64 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
		    nlen) {
		load_error(ctx, -EINVAL,
			   "[%s]: a template's name is 1 to 64 of A-Z a-z 0-9 _ . -, like "
			   "[template app-env]",
			   section);
		return 0;
	}
	t = template_section(ctx, name);
	if (!t)
		return 0;
	if (!*value) {
		load_error(ctx, -EINVAL, "[%s] key '%s': empty value", section, key);
		return 0;
	}
	if (strcmp(key, "file") == 0) {
		field = &t->file;
		if (value[0] != '/') {
			load_error(ctx, -EINVAL, "[%s] key 'file': expected an absolute path",
				   section);
			return 0;
		}
	} else if (strcmp(key, "path") == 0) {
		field = &t->path;
	} else if (strcmp(key, "format") == 0) {
		field = &t->format;
		if (!word_in(TEMPLATE_FORMATS, value)) {
			load_error(ctx, -EINVAL, "[%s] key 'format': expected one of %s, got '%s'",
				   section, TEMPLATE_FORMATS, printable(value));
			return 0;
		}
	} else if (strcmp(key, "delims") == 0) {
		field = &t->delims;
	} else if (strcmp(key, "access") == 0) {
		return template_switch(ctx, section, key, value, "references", "template",
				       " (each reference checked for the reader)",
				       &t->access_whole);
	} else if (strcmp(key, "missing") == 0) {
		return template_switch(ctx, section, key, value, "error", "empty", "",
				       &t->missing_empty);
	} else {
		load_error(ctx, -EINVAL,
			   "[%s] key '%s': unknown key, [template NAME] has: file, path, format, "
			   "access, missing, delims",
			   section, key);
		return 0;
	}
	if (*field) {
		load_error(ctx, -EINVAL, "[%s] key '%s': given twice", section, key);
		return 0;
	}
	*field = strdup(value);
	if (!*field) {
		load_error(ctx, -ENOMEM, "out of memory");
		return 0;
	}
	return 1;
}

static int handle_key(void *user, const char *section, const char *key, const char *value)
{
	struct load_ctx *ctx = user;
	const struct config_option *o;
	char reason[256];
	size_t idx;
	int r;

	/* Only the first error is reported; later lines could be fallout from it. */
	if (ctx->err_line)
		return 1;
	if (strncmp(section, "template ", 9) == 0)
		return template_key(ctx, section, key, value);

	if (!*section) {
		load_error(ctx, -EINVAL,
			   "key '%s': outside of any section, put it under [secretfs], [cache], "
			   "[access], [views], [control], [http], [vault], [aws], [gcp] or "
			   "[template NAME]",
			   key);
		return 0;
	}
	if (!section_known(section)) {
		load_error(ctx, -EINVAL,
			   "[%s] key '%s': unknown section [%s], expected [secretfs], [cache], "
			   "[access], [views], [control], [http], [vault], [aws], [gcp] or "
			   "[template NAME]",
			   section, key, section);
		return 0;
	}
	o = option_by_key(section, key);
	if (!o) {
		section_keys(section, reason, sizeof(reason));
		load_error(ctx, -EINVAL, "[%s] key '%s': unknown key, [%s] has: %s", section, key,
			   section, reason);
		return 0;
	}
	idx = (size_t)(o - options);
	if (ctx->seen[idx]) {
		/* inih reads an indented line as more of the previous key's value. */
		if (ctx->indented)
			load_error(ctx, -EINVAL,
				   "[%s] key '%s': indented line, read as a continuation of '%s' "
				   "from line %u; remove the indentation",
				   section, key, key, ctx->seen[idx]);
		else
			load_error(ctx, -EINVAL, "[%s] key '%s': given twice, first on line %u",
				   section, key, ctx->seen[idx]);
		return 0;
	}

	r = option_apply(&ctx->cfg, o, value, reason, sizeof(reason));
	if (r < 0) {
		load_error(ctx, r, "[%s] key '%s': %s%s", section, key, reason,
			   r == -EINVAL && *value ? value_hint(value) : "");
		return 0;
	}
	ctx->seen[idx] = ctx->line;
	return 1;
}

int config_load_stream(struct config *c, FILE *f, const char *path, char *err, size_t errlen)
{
	struct load_ctx ctx = { .f = f, .path = path };
	int r;

	r = config_copy(c, &ctx.cfg);
	if (r < 0)
		return set_error(err, errlen, r, "%s: out of memory", path);

	r = ini_parse_stream(read_line, &ctx, handle_key, &ctx);

	if (ferror(ctx.f)) {
		r = set_error(err, errlen, -EIO, "%s: read error", path);
	} else if (ctx.err_line && (r <= 0 || ctx.err_line <= (unsigned)r)) {
		r = set_error(err, errlen, ctx.err_code, "%s:%u: %s", path, ctx.err_line, ctx.err);
	} else if (r > 0) {
		/* inih found a line that is neither a section, a key nor a comment. */
		r = set_error(err, errlen, -EINVAL,
			      "%s:%d: syntax error, expected [section], key = value or a comment",
			      path, r);
	} else if (r < 0) {
		r = set_error(err, errlen, -ENOMEM, "%s: out of memory", path);
	}

	for (size_t i = 0; r >= 0 && i < ctx.cfg.ntemplates; i++) {
		const struct config_template *t = &ctx.cfg.templates[i];

		if (strcmp(t->origin, "-o template") != 0 && (!t->file || !t->path))
			r = set_error(err, errlen, -EINVAL, "%s: [template %s]: no '%s' given",
				      t->origin, t->name, t->file ? "path" : "file");
	}
	if (r < 0) {
		config_done(&ctx.cfg);
		return r;
	}
	config_done(c);
	*c = ctx.cfg;
	return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE *f;
	int fd, r;

	/*
	 * The config names the policy, the store, credential files and the
	 * servers: it gets the policy's checks (owner, mode, the directories
	 * above it, no procfs), on the descriptor that is then read.  A
	 * directory opens fine and would read as an empty, "valid" file.
	 */
	fd = trusted_file_open(path, "config file", NULL, err, errlen);
	if (fd < 0)
		return fd;
	f = fdopen(fd, "re");
	if (!f) {
		r = -errno;
		close(fd);
		return set_error(err, errlen, r, "%s: out of memory", path);
	}
	r = config_load_stream(c, f, path, err, errlen);
	fclose(f);
	return r;
}
