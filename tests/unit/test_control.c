/*
 * test_control.c - the control interface without FUSE: request-line parsing
 * (table-driven), the socket path setting, and a control thread serving a
 * real file-store source on a socket in a temporary directory: status JSON,
 * metrics, flush and refresh of a key file (its secret is the parent), a
 * reload answer, oversized and malformed requests, stale and foreign files
 * at the socket path, and, when run as root, a peer that is not an admin.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "secretfs/config.h"
#include "secretfs/control.h"
#include "secretfs/source.h"
#include "secretfs/util.h"

#define NOBODY 65534

/* ---- parsing ---- */

static void test_parse_table(void **state)
{
	static const struct {
		const char *line;
		int r;
		enum control_command cmd;
		const char *arg; /* NULL: none */
		const char *err; /* a part of the reason */
	} cases[] = {
		{ "status", 0, CONTROL_STATUS, NULL, NULL },
		{ "status\n", 0, CONTROL_STATUS, NULL, NULL },
		{ "status\r\n", 0, CONTROL_STATUS, NULL, NULL },
		{ "metrics\n", 0, CONTROL_METRICS, NULL, NULL },
		{ "reload\n", 0, CONTROL_RELOAD, NULL, NULL },
		{ "flush\n", 0, CONTROL_FLUSH, NULL, NULL },
		{ "flush /\n", 0, CONTROL_FLUSH, NULL, NULL },
		{ "flush ///\n", 0, CONTROL_FLUSH, NULL, NULL },
		{ "flush prod/db\n", 0, CONTROL_FLUSH, "prod/db", NULL },
		{ "flush /prod/db/password/\n", 0, CONTROL_FLUSH, "prod/db/password", NULL },
		{ "refresh prod/db\n", 0, CONTROL_REFRESH, "prod/db", NULL },
		{ "refresh\n", 0, CONTROL_REFRESH, NULL, NULL },
		/* Names may hold blanks and UTF-8: the path is the rest of the line. */
		{ "refresh my dir/a b\n", 0, CONTROL_REFRESH, "my dir/a b", NULL },
		{ "flush intl/日本語\n", 0, CONTROL_FLUSH, "intl/日本語", NULL },
		{ "", -EINVAL, 0, NULL, "empty request" },
		{ "\n", -EINVAL, 0, NULL, "empty request" },
		{ "STATUS\n", -EINVAL, 0, NULL, "unknown command 'STATUS'" },
		{ "bogus thing\n", -EINVAL, 0, NULL, "unknown command 'bogus'" },
		{ "status now\n", -EINVAL, 0, NULL, "status takes no argument" },
		{ "reload x\n", -EINVAL, 0, NULL, "reload takes no argument" },
		{ "metrics \n", -EINVAL, 0, NULL, "metrics takes no argument" },
		{ "status\nmetrics\n", -EINVAL, 0, NULL, "one line" },
		{ "flush \n", -EINVAL, 0, NULL, "empty path" },
		{ "flush ../etc\n", -EINVAL, 0, NULL, "bad path" },
		{ "flush a/../b\n", -EINVAL, 0, NULL, "bad path" },
		{ "flush a/./b\n", -EINVAL, 0, NULL, "bad path" },
		{ "flush a//b\n", -EINVAL, 0, NULL, "bad path" },
		{ "refresh .\n", -EINVAL, 0, NULL, "bad path" },
		{ " status\n", -EINVAL, 0, NULL, "unknown command ''" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char line[256], err[CONTROL_ERR_MAX] = "";
		struct control_request req = { .command = 99, .arg = "untouched" };
		size_t len = strlen(cases[i].line);
		int r;

		memcpy(line, cases[i].line, len + 1);
		r = control_parse_request(line, len, &req, err, sizeof(err));
		if (r != cases[i].r)
			fail_msg("case %zu '%s': r %d, want %d (%s)", i, cases[i].line, r,
				 cases[i].r, err);
		if (r < 0) {
			if (!strstr(err, cases[i].err))
				fail_msg("case %zu: reason '%s' lacks '%s'", i, err, cases[i].err);
			continue;
		}
		assert_int_equal(req.command, cases[i].cmd);
		if (!cases[i].arg)
			assert_null(req.arg);
		else
			assert_string_equal(req.arg, cases[i].arg);
	}
}

/* A NUL inside the line (the length says more than strlen would). */
static void test_parse_nul(void **state)
{
	char line[] = "flush a\0b\n", err[CONTROL_ERR_MAX];
	struct control_request req;

	assert_int_equal(control_parse_request(line, sizeof(line) - 1, &req, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "one line"));
}

static void test_socket_path(void **state)
{
	char err[CONTROL_ERR_MAX], longp[200];
	char *p = (char *)1;

	assert_int_equal(control_socket_path(NULL, "/mnt", &p, err, sizeof(err)), 0);
	assert_null(p);
	assert_int_equal(control_socket_path("", "/mnt", &p, err, sizeof(err)), 0);
	assert_null(p);
	assert_int_equal(control_socket_path("/run/x/ctl.sock", "/mnt", &p, err, sizeof(err)), 0);
	assert_string_equal(p, "/run/x/ctl.sock");
	free(p);
	assert_int_equal(control_socket_path("ctl.sock", "/mnt", &p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "absolute"));
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(control_socket_path(longp, "/mnt", &p, err, sizeof(err)), -ENAMETOOLONG);

	/* auto under systemd: the first RuntimeDirectory= */
	setenv("RUNTIME_DIRECTORY", "/run/secretfs-unit:/run/other", 1);
	assert_int_equal(control_socket_path("auto", "/secrets", &p, err, sizeof(err)), 0);
	assert_string_equal(p, "/run/secretfs-unit/secretfs.sock");
	free(p);
	unsetenv("RUNTIME_DIRECTORY");
	/* auto elsewhere is named after the mountpoint, which "/" cannot name */
	assert_int_equal(control_socket_path("auto", "/", &p, err, sizeof(err)), -EINVAL);
}

/* ---- the cache calls the control interface uses ---- */

struct fake_store {
	int fetches;
	int fail; /* the next fetches fail with this (a negative errno), 0: succeed */
};

static int fake_fetch(void *ctx, const char *key, struct secret **ret_value,
		      struct backend_info *ret_info, char *reason, size_t reasonlen)
{
	struct fake_store *st = ctx;

	st->fetches++;
	if (st->fail) {
		snprintf(reason, reasonlen, "fake failure");
		return st->fail;
	}
	*ret_value = secret_dup("v", 1);
	snprintf(ret_info->version, sizeof(ret_info->version), "%d", st->fetches);
	return 0;
}

static void test_cache_peek_invalidate_keys(void **state)
{
	struct cache_config cc = { .ttl_usec = 3600 * USEC_PER_SEC,
				   .stale_usec = 3600 * USEC_PER_SEC,
				   .negative_usec = 3600 * USEC_PER_SEC,
				   .fetch_timeout_usec = 5 * USEC_PER_SEC };
	struct fake_store st = { 0 };
	struct cache_result res;
	struct cache_stats cs;
	struct cache *c;
	struct secret *v;
	char reason[256], **keys;
	size_t n;

	assert_int_equal(cache_new(&cc, fake_fetch, &st, &c), 0);
	assert_null(cache_peek(c, "a"));
	assert_int_equal(cache_get(c, "a", &res, reason, sizeof(reason)), 0);
	secret_unref(res.value);
	st.fail = -ENOENT;
	assert_int_equal(cache_get(c, "gone", &res, reason, sizeof(reason)), -ENOENT);

	/* peek: the value, no fetch, no hit */
	v = cache_peek(c, "a");
	assert_non_null(v);
	assert_memory_equal(v->data, "v", 1);
	secret_unref(v);
	assert_null(cache_peek(c, "gone"));
	cache_get_stats(c, &cs);
	assert_int_equal(cs.hits, 0);
	assert_int_equal(st.fetches, 2);

	/* keys: values and remembered not-founds */
	assert_int_equal(cache_keys(c, &keys, &n), 0);
	assert_int_equal(n, 2);
	assert_true((strcmp(keys[0], "a") == 0 && strcmp(keys[1], "gone") == 0) ||
		    (strcmp(keys[1], "a") == 0 && strcmp(keys[0], "gone") == 0));
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);

	/* invalidate: the next get fetches; a transient failure still serves the old value */
	st.fail = -EAGAIN;
	cache_invalidate(c, "a");
	assert_int_equal(cache_get(c, "a", &res, reason, sizeof(reason)), 0);
	assert_int_equal(res.state, CACHE_STALE);
	assert_string_equal(res.version, "1");
	secret_unref(res.value);
	assert_int_equal(st.fetches, 3);
	/* and right after that failure, a refresh asks the store again all the same */
	st.fail = 0;
	cache_invalidate(c, "a");
	assert_int_equal(cache_get(c, "a", &res, reason, sizeof(reason)), 0);
	assert_int_equal(res.state, CACHE_MISS);
	assert_string_equal(res.version, "4");
	secret_unref(res.value);
	/* a remembered not-found is asked again too */
	cache_invalidate(c, "gone");
	assert_int_equal(cache_get(c, "gone", &res, reason, sizeof(reason)), 0);
	secret_unref(res.value);
	assert_int_equal(st.fetches, 5);
	cache_invalidate(c, "never-seen"); /* no entry: nothing to do */
	cache_free(c);
}

/* ---- a served source ---- */

struct fx {
	char dir[64];
	char store[100];
	char sock[100];
	struct config cfg;
	struct source *src;
	struct control *ctl;
	int reloads;
	int reload_fails; /* the next reload fails */
};

static const char STORE[] = "{\"prod/db\": {\"password\": \"unit-db-pass-1\", \"user\": \"u1\"},"
			    " \"prod/api-key\": \"unit-api-key-1\", \"single\": \"unit-single-1\"}";

static int fake_reload(void *ctx, char *msg, size_t msglen)
{
	struct fx *f = ctx;

	f->reloads++;
	if (f->reload_fails) {
		snprintf(msg, msglen, "/etc/p:3: bad rule; keeping the previous policy");
		return -EINVAL;
	}
	snprintf(msg, msglen, "reloaded the policy /etc/p");
	return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int start_control(struct fx *f, const char *admin, char *err, size_t errlen)
{
	return control_start(&(struct control_params){ .socket_path = f->sock,
						       .admin = admin,
						       .mountpoint = "/unit/mnt",
						       .policy_path = NULL,
						       .source = f->src,
						       .fs = NULL,
						       .audit = NULL,
						       .reload = fake_reload,
						       .reload_ctx = f },
			     &f->ctl, err, errlen);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char reason[512], src[160];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/sfs-ctl-unit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->store, sizeof(f->store), "%s/store.json", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/ctl.sock", f->dir);
	write_file(f->store, STORE, 0600);
	config_init(&f->cfg);
	snprintf(src, sizeof(src), "file:%s", f->store);
	assert_int_equal(config_set(&f->cfg, "source", src, reason, sizeof(reason)), 0);
	if (source_open(&f->cfg, &f->src, reason, sizeof(reason)) < 0)
		fail_msg("source_open: %s", reason);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	control_stop(f->ctl);
	source_close(f->src);
	config_done(&f->cfg);
	unlink(f->sock);
	unlink(f->store);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Sends @req raw and returns the whole answer (malloc'ed). */
static char *ask_raw(const char *sock, const char *req, size_t reqlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *buf = calloc(1, 1 << 20);
	size_t len = 0;
	ssize_t n;
	int fd;

	assert_non_null(buf);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect %s: %s", sock, strerror(errno));
	(void)!send(fd, req, reqlen, MSG_NOSIGNAL);
	while ((n = recv(fd, buf + len, (1 << 20) - 1 - len, 0)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	return buf;
}

static char *ask(struct fx *f, const char *req)
{
	return ask_raw(f->sock, req, strlen(req));
}

static void read_value(struct fx *f, const char *id)
{
	char reason[256];
	struct cache_result res;

	if (source_value(f->src, id, &res, reason, sizeof(reason)) < 0)
		fail_msg("read %s: %s", id, reason);
	secret_unref(res.value);
}

static json_int_t json_path_int(json_t *root, const char *a, const char *b)
{
	json_t *o = json_object_get(root, a);

	if (b)
		o = json_object_get(o, b);
	if (!json_is_integer(o))
		fail_msg("%s.%s is not an integer", a, b ? b : "");
	return json_integer_value(o);
}

static void test_status_and_metrics(void **state)
{
	struct fx *f = *state;
	char err[CONTROL_ERR_MAX], *a;
	json_error_t je;
	json_t *root, *src;
	struct stat st;

	assert_int_equal(start_control(f, NULL, err, sizeof(err)), 0);
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());

	read_value(f, "prod/db");
	read_value(f, "prod/db");
	read_value(f, "prod/db");
	a = ask(f, "status\n");
	root = json_loads(a, 0, &je);
	if (!root)
		fail_msg("status is not JSON (%s): %s", je.text, a);
	assert_string_equal(json_string_value(json_object_get(root, "version")), SECRETFS_VERSION);
	assert_true(json_is_real(json_object_get(root, "uptime_seconds")));
	assert_int_equal(json_path_int(root, "cache", "hits"), 2);
	assert_int_equal(json_path_int(root, "cache", "misses"), 1);
	assert_int_equal(json_path_int(root, "cache", "entries"), 1);
	assert_true(json_path_int(root, "cache", "bytes") > 0);
	assert_int_equal(json_path_int(root, "cache", "stale_served"), 0);
	assert_int_equal(json_path_int(root, "cache", "errors"), 0);
	src = json_array_get(json_object_get(root, "sources"), 0);
	assert_string_equal(json_string_value(json_object_get(src, "backend")), "file");
	assert_string_equal(json_string_value(json_object_get(src, "path")), f->store);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(src, "auth"), "method")),
		"file permissions");
	assert_int_equal(
		json_integer_value(json_object_get(
			json_object_get(json_object_get(src, "backend_requests"), "fetch"), "ok")),
		1);
	json_decref(root);
	/* No value anywhere in the answer. */
	assert_null(strstr(a, "unit-db-pass-1"));
	free(a);

	a = ask(f, "metrics\n");
	assert_non_null(strstr(a, "# TYPE secretfs_cache_hits_total counter\n"));
	assert_non_null(strstr(a, "# TYPE secretfs_backend_request_duration_seconds histogram\n"));
	assert_non_null(strstr(a, "op=\"fetch\",code=\"ok\"} 1\n"));
	assert_non_null(strstr(a, "secretfs_build_info{version=\"" SECRETFS_VERSION "\"} 1\n"));
	assert_null(strstr(a, "unit-db-pass-1"));
	free(a);
}

static void test_flush_and_refresh(void **state)
{
	struct fx *f = *state;
	char err[CONTROL_ERR_MAX], *a;
	struct secret *v;

	assert_int_equal(start_control(f, NULL, err, sizeof(err)), 0);
	read_value(f, "prod/db");
	read_value(f, "prod/api-key");

	/* A key file is its object secret. */
	a = ask(f, "flush /prod/db/password\n");
	assert_string_equal(a, "ok flushed prod/db (the secret that holds prod/db/password)\n");
	free(a);
	assert_null(cache_peek(f->src->values, "prod/db"));
	v = cache_peek(f->src->values, "prod/api-key");
	assert_non_null(v);
	secret_unref(v);

	/* A key of a secret that is not cached: fetched through its parent. */
	a = ask(f, "refresh prod/db/user\n");
	assert_true(strncmp(a, "ok refreshed prod/db (the secret that holds prod/db/user) version ",
			    66) == 0);
	free(a);
	v = cache_peek(f->src->values, "prod/db");
	assert_non_null(v);
	secret_unref(v);

	a = ask(f, "refresh prod/api-key\n");
	assert_true(strncmp(a, "ok refreshed prod/api-key version ", 34) == 0);
	free(a);
	a = ask(f, "refresh prod/none\n");
	assert_true(strncmp(a, "error: refresh prod/none: ", 26) == 0);
	assert_non_null(strstr(a, "(ENOENT)\n"));
	free(a);
	a = ask(f, "refresh\n");
	assert_string_equal(a, "ok refreshed 2 secrets\n");
	free(a);

	/* A folder: what is cached under it. */
	a = ask(f, "flush prod\n");
	/* 2 values, 3 remembered not-founds: prod/none, prod, prod/db/user (tried for a key) */
	if (strncmp(a, "ok flushed prod: 5 entries, ", 28) != 0)
		fail_msg("%s", a);
	free(a);
	assert_null(cache_peek(f->src->values, "prod/api-key"));
	a = ask(f, "flush\n");
	assert_true(strncmp(a, "ok flushed everything: ", 23) == 0);
	free(a);

	/* A folder with nothing cached under it: its listing, fetched now. */
	a = ask(f, "refresh prod\n");
	assert_string_equal(a, "ok refreshed prod: a listing of 2 entries, 0 secrets\n");
	free(a);
	v = cache_peek(f->src->listings, "prod");
	assert_non_null(v);
	secret_unref(v);
	/* and with a value cached under it: that too */
	read_value(f, "prod/api-key");
	a = ask(f, "refresh /prod/\n");
	assert_string_equal(a, "ok refreshed prod: a listing of 2 entries, 1 secret\n");
	free(a);
	a = ask(f, "refresh nowhere\n");
	assert_true(strncmp(a, "error: refresh nowhere: ", 24) == 0);
	assert_non_null(strstr(a, "(ENOENT)\n"));
	free(a);
}

static void test_reload_and_errors(void **state)
{
	struct fx *f = *state;
	char err[CONTROL_ERR_MAX], *a, big[CONTROL_REQUEST_MAX + 100];

	assert_int_equal(start_control(f, NULL, err, sizeof(err)), 0);
	a = ask(f, "reload\n");
	assert_string_equal(a, "ok reloaded the policy /etc/p\n");
	free(a);
	f->reload_fails = 1;
	a = ask(f, "reload\n");
	assert_string_equal(a, "error: /etc/p:3: bad rule; keeping the previous policy\n");
	free(a);
	assert_int_equal(f->reloads, 2);

	a = ask(f, "bogus\n");
	assert_true(strncmp(a, "error: unknown command 'bogus'", 30) == 0);
	free(a);
	/* A terminal escape is not echoed back. */
	a = ask(f, "\x1b[31mred\n");
	assert_string_equal(a, "error: unknown command '?[31mred' (expected status, metrics, "
			       "flush, refresh or reload)\n");
	free(a);
	a = ask(f, "flush ../x\n");
	assert_true(strncmp(a, "error: bad path", 15) == 0);
	free(a);
	/* Without a newline, the end of the stream ends the request. */
	a = ask_raw(f->sock, "status", 6);
	assert_true(a[0] == '{');
	free(a);

	memset(big, 'x', sizeof(big));
	memcpy(big, "flush ", 6);
	a = ask_raw(f->sock, big, sizeof(big));
	assert_string_equal(a, "error: request too long (at most 4200 bytes)\n");
	free(a);
	/* Still serving. */
	a = ask(f, "metrics\n");
	assert_non_null(strstr(a, "secretfs_control_requests_total "));
	free(a);
}

static void test_socket_files(void **state)
{
	struct fx *f = *state;
	struct control *second = NULL;
	char err[CONTROL_ERR_MAX];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	/* A regular file is never replaced. */
	write_file(f->sock, "not a socket", 0600);
	assert_int_equal(start_control(f, NULL, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "not a socket"));
	assert_null(f->ctl);
	assert_int_equal(unlink(f->sock), 0);

	/* A stale socket (nobody listens) is replaced. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(start_control(f, NULL, err, sizeof(err)), 0);

	/* A live one is not taken over. */
	assert_int_equal(
		control_start(&(struct control_params){ .socket_path = f->sock, .source = f->src },
			      &second, err, sizeof(err)),
		-EADDRINUSE);
	assert_non_null(strstr(err, "another process"));
	assert_null(second);

	/* Removed at stop... */
	control_stop(f->ctl);
	f->ctl = NULL;
	assert_int_equal(lstat(f->sock, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* ...unless something else took its place meanwhile. */
	assert_int_equal(start_control(f, NULL, err, sizeof(err)), 0);
	assert_int_equal(unlink(f->sock), 0);
	write_file(f->sock, "someone else's", 0600);
	control_stop(f->ctl);
	f->ctl = NULL;
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(f->sock);

	/* An unknown admin is a start-up error. */
	assert_int_equal(start_control(f, "no-such-user-sfs", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown user"));
}

/* In a child that became @uid: the answer to "status", or "connect: ERRNO". */
static void as_user(const char *sock, uid_t uid, gid_t gid, char *out, size_t outlen)
{
	int p[2], status;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char buf[4096];
		size_t len = 0;
		int fd;

		close(p[0]);
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(3);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			len = (size_t)snprintf(buf, sizeof(buf), "connect: %s",
					       strerrorname_np(errno));
		} else {
			(void)!send(fd, "status\n", 7, MSG_NOSIGNAL);
			while ((n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
				len += (size_t)n;
		}
		(void)!write(p[1], buf, len);
		_exit(0);
	}
	close(p[1]);
	n = read(p[0], out, outlen - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_peers(void **state)
{
	struct fx *f = *state;
	char err[CONTROL_ERR_MAX], out[4096], *a;
	struct stat st;
	json_t *root;

	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(start_control(f, NULL, err, sizeof(err)), 0);
	/* 0600: another user cannot even connect. */
	as_user(f->sock, NOBODY, NOBODY, out, sizeof(out));
	assert_string_equal(out, "connect: EACCES");
	/* Were the socket open to all, the credentials still refuse them. */
	assert_int_equal(chmod(f->sock, 0666), 0);
	as_user(f->sock, NOBODY, NOBODY, out, sizeof(out));
	assert_string_equal(out, "error: permission denied\n");
	a = ask(f, "status\n");
	root = json_loads(a, 0, NULL);
	assert_non_null(root);
	assert_int_equal(json_path_int(root, "control", "denied"), 1);
	json_decref(root);
	free(a);
	control_stop(f->ctl);
	f->ctl = NULL;

	/* An admin by uid: the socket is opened to its primary group (0660). */
	assert_int_equal(start_control(f, "65534", err, sizeof(err)), 0);
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_uid, 0);
	as_user(f->sock, NOBODY, st.st_gid, out, sizeof(out));
	assert_true(out[0] == '{');
	/* Another member of that group gets in through the mode, not past the check. */
	as_user(f->sock, NOBODY - 1, st.st_gid, out, sizeof(out));
	assert_string_equal(out, "error: permission denied\n");
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_nul),
		cmocka_unit_test(test_socket_path),
		cmocka_unit_test(test_cache_peek_invalidate_keys),
		cmocka_unit_test_setup_teardown(test_status_and_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_and_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peers, setup, teardown),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
