/*
 * kit.c - the backend kit's helpers that touch the process: reasons,
 * jitter, the environment, credential files, HTTP settings and the TLS
 * policy, and the paging loop (see kit.h).  Parsing lives in kit_parse.c,
 * the token source in kit_token.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "backends/kit.h"
#include "secretfs/config.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"

extern char **environ;

/* ---- reasons and jitter ---- */

void kit_reason_prefix(char *reason, size_t reasonlen, const char *fmt, ...)
{
	char tmp[BACKEND_REASON_MAX], what[BACKEND_REASON_MAX];
	va_list ap;

	if (reasonlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(tmp, sizeof(tmp), "%s", reason);
	snprintf(reason, reasonlen, "%s: %s", what, tmp);
}

void kit_format_duration(uint64_t usec, char *buf, size_t len)
{
	uint64_t s = usec / USEC_PER_SEC;

	if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "s", s);
}

uint64_t kit_random_below(uint64_t n)
{
	uint64_t x;

	if (n == 0)
		return 0;
	if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != sizeof(x))
		x = now_usec() * UINT64_C(0x9e3779b97f4a7c15);
	return x % n;
}

uint64_t kit_backoff_usec(unsigned retry, uint64_t base_usec, uint64_t max_usec)
{
	uint64_t cap = base_usec;

	for (unsigned i = 0; i < retry && cap < max_usec; i++)
		cap = cap > UINT64_MAX / 2 ? UINT64_MAX : cap * 2;
	if (cap > max_usec)
		cap = max_usec;
	return cap == UINT64_MAX ? kit_random_below(cap) : kit_random_below(cap + 1);
}

void kit_sleep_usec(uint64_t usec)
{
	struct timespec ts = { .tv_sec = (time_t)(usec / USEC_PER_SEC),
			       .tv_nsec = (long)(usec % USEC_PER_SEC) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the environment ---- */

const char *kit_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/*
 * Variables kit_env_take() took, kept in locked memory for the life of the
 * process: several sources of one kind in one mount ([source NAME]) read
 * the same VAULT_TOKEN, and an optional source that was down at start opens
 * again later, after the first open scrubbed the environment.
 */
#define ENV_TAKEN_MAX 16

static struct {
	const char *name;   /* a string literal of the caller's */
	char *value;	    /* secret_mem */
} env_taken[ENV_TAKEN_MAX]; /* protected by env_taken_lock */
static pthread_mutex_t env_taken_lock = PTHREAD_MUTEX_INITIALIZER;

/* The slot of @name, or a free one; NULL when all are taken. */
static size_t env_taken_slot(const char *name)
{
	size_t i;

	for (i = 0; i < ENV_TAKEN_MAX && env_taken[i].name; i++)
		if (strcmp(env_taken[i].name, name) == 0)
			break;
	return i;
}

char *kit_env_take(const char *name)
{
	const char *e = getenv(name);
	char *copy = NULL;
	size_t nl = strlen(name), n = 0, slot;
	char *entries[8];

	pthread_mutex_lock(&env_taken_lock);
	slot = env_taken_slot(name);
	if (!e) {
		/* Taken before: the value it had then. */
		if (slot < ENV_TAKEN_MAX && env_taken[slot].name && env_taken[slot].value)
			copy = strdup(env_taken[slot].value);
		pthread_mutex_unlock(&env_taken_lock);
		return copy;
	}
	copy = *e ? strdup(e) : NULL;
	if (slot < ENV_TAKEN_MAX) {
		secret_mem_free(env_taken[slot].value);
		env_taken[slot].name = name;
		env_taken[slot].value = *e ? secret_mem_strdup(e) : NULL;
	}
	for (char **p = environ; *p && n < ARRAY_SIZE(entries); p++)
		if (strncmp(*p, name, nl) == 0 && (*p)[nl] == '=')
			entries[n++] = *p;
	unsetenv(name);
	for (size_t i = 0; i < n; i++)
		explicit_bzero(entries[i], strlen(entries[i]));
	pthread_mutex_unlock(&env_taken_lock);
	return copy;
}

const char *kit_home_dir(void)
{
	const char *h = kit_env("HOME");
	struct passwd *pw;

	if (h)
		return h;
	pw = getpwuid(getuid());
	return pw ? pw->pw_dir : NULL;
}

/* ---- credential files ---- */

/* trusted_file_read() with "@what " before its reason (which names the file). */
static int read_checked(const char *path, const char *what, size_t max, char **ret, size_t *ret_len,
			char *reason, size_t reasonlen)
{
	char why[BACKEND_REASON_MAX];
	int r;

	r = trusted_file_read(path, "file", max, ret, ret_len, NULL, why, sizeof(why));
	if (r < 0)
		snprintf(reason, reasonlen, "%s %s", what, why);
	return r;
}

int kit_read_credential(const char *path, const char *what, size_t max, struct secret **ret,
			char *reason, size_t reasonlen)
{
	size_t size = 0, len, start = 0;
	struct secret *s;
	char *buf = NULL;
	int r;

	r = read_checked(path, what, max, &buf, &size, reason, reasonlen);
	if (r < 0)
		return r;
	len = size;
	while (start < len && strchr(" \t\r\n", buf[start]))
		start++;
	while (len > start && strchr(" \t\r\n", buf[len - 1]))
		len--;
	if (!kit_credential_is_valid(buf + start, len - start, max)) {
		snprintf(reason, reasonlen, "%s %s: %s", what, path,
			 len == start ? "empty" : "not one line of printable characters");
		wipe_free(buf, size + 1);
		return -EINVAL;
	}
	s = secret_new(len - start + 1);
	if (s)
		memcpy(s->data, buf + start, len - start);
	wipe_free(buf, size + 1);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int kit_read_secret_file(const char *path, const char *what, size_t max, struct secret **ret,
			 char *reason, size_t reasonlen)
{
	struct secret *s;
	size_t size = 0;
	char *buf = NULL;
	int r;

	r = read_checked(path, what, max, &buf, &size, reason, reasonlen);
	if (r < 0)
		return r;
	if (size == 0) {
		snprintf(reason, reasonlen, "%s %s: empty", what, path);
		wipe_free(buf, 1);
		return -EINVAL;
	}
	s = secret_dup(buf, size + 1);
	wipe_free(buf, size + 1);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* ---- HTTP settings and the TLS policy ---- */

static const char *setting(const char *configured, const char *env)
{
	return configured ? configured : env ? kit_env(env) : NULL;
}

int kit_http_config(const struct config *cfg, const struct kit_http_opts *o,
		    struct http_config *ret, char *warning, size_t warninglen, char *reason,
		    size_t reasonlen)
{
	if (!o->tls && !cfg->http_insecure) {
		snprintf(reason, reasonlen,
			 "%s: %s is plain HTTP, which would send %s and the secrets in clear: use "
			 "https://, or pass -o insecure",
			 o->name, o->url, o->credential);
		return -EPERM;
	}
	if (cfg->http_insecure && warninglen)
		snprintf(warning, warninglen,
			 "%s %s: %s: anyone on the network path can read %s and the secrets",
			 o->name, o->url,
			 o->tls ? "TLS certificate verification is off (-o insecure)"
				: "plain HTTP (-o insecure)",
			 o->credential);
	*ret = (struct http_config){
		.ca_file = setting(cfg->http_ca_file, o->ca_file_env),
		.ca_path = setting(cfg->http_ca_path, o->ca_path_env),
		.client_cert = setting(cfg->http_client_cert, o->client_cert_env),
		.client_key = setting(cfg->http_client_key, o->client_key_env),
		.insecure = cfg->http_insecure,
		.connect_timeout_usec = cfg->http_connect_timeout_usec,
		.timeout_usec = cfg->http_timeout_usec,
		.max_body = cfg->http_max_body,
		.max_attempts = (unsigned)cfg->http_max_attempts,
	};
	return 0;
}

int kit_http_client_new(const struct config *cfg, const struct kit_http_opts *o,
			struct http_client **ret, char *warning, size_t warninglen, char *reason,
			size_t reasonlen)
{
	char why[BACKEND_REASON_MAX];
	struct http_config hc;
	int r;

	r = kit_http_config(cfg, o, &hc, warning, warninglen, reason, reasonlen);
	if (r < 0)
		return r;
	r = http_client_new(&hc, ret, why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "%s: %s", o->name, why);
		if (warninglen)
			warning[0] = '\0';
	}
	return r;
}

/* ---- paging ---- */

int kit_paginate(unsigned max_pages, kit_page_fn page, void *ctx, const char *what, char *reason,
		 size_t reasonlen)
{
	char *next = NULL;

	for (unsigned n = 0; n < max_pages; n++) {
		char *following = NULL;
		int r = page(ctx, next, &following, reason, reasonlen);

		free(next);
		next = NULL;
		if (r < 0) {
			free(following);
			return r;
		}
		if (!following)
			return 0;
		next = following;
	}
	free(next);
	snprintf(reason, reasonlen, "%s: more than %u pages", what, max_pages);
	return -EFBIG;
}

char *kit_url_add_query(const char *url, const char *name, const char *value)
{
	_cleanup_free_ char *esc = http_escape_path(value, false);
	char *out;

	if (!esc || asprintf(&out, "%s%c%s=%s", url, strchr(url, '?') ? '&' : '?', name, esc) < 0)
		return NULL;
	return out;
}
