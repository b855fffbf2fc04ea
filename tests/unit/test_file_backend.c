/*
 * test_file_backend.c - the file store through backend_open(): fetching and
 * listing a valid store, every way a store is refused at open (with the exact
 * reason: file and line for JSON errors, never the secret text jansson quotes),
 * and reloading on change, where a broken rewrite keeps the last good values
 * and raises the error event.
 *
 * Each test gets its own directory under /tmp.  Stores are written the way
 * editors and deploy tools do: a temporary file in the same directory, then
 * rename().  The events are recorded by the watcher thread under a lock and
 * checked by the test thread, which waits on a condition variable for at most
 * five seconds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "secretfs/backend.h"
#include "secretfs/namespace.h"
#include "secretfs/secret.h"
#include "secretfs/util.h"

#define WAIT_SEC 5

struct events_rec {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int changed;			     /* protected by lock */
	int errors;			     /* protected by lock */
	char last_error[BACKEND_REASON_MAX]; /* protected by lock */
};

struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 16]; /* dir/store.json */
	char source[PATH_MAX + 32];
	struct events_rec ev;
	struct backend_events events;
	struct backend *b;
	long live0;
};

/* ---- events, raised from the watcher thread: record only, never assert ---- */

static void on_changed(void *ctx)
{
	struct events_rec *e = ctx;

	pthread_mutex_lock(&e->lock);
	e->changed++;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

static void on_error(void *ctx, const char *reason)
{
	struct events_rec *e = ctx;

	pthread_mutex_lock(&e->lock);
	e->errors++;
	snprintf(e->last_error, sizeof(e->last_error), "%s", reason);
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

/* Waits until *counter reaches @target; false after WAIT_SEC seconds. */
static bool wait_for(struct events_rec *e, const int *counter, int target)
{
	struct timespec deadline;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += WAIT_SEC;
	pthread_mutex_lock(&e->lock);
	while (*counter < target) {
		if (pthread_cond_timedwait(&e->cond, &e->lock, &deadline) == ETIMEDOUT)
			break;
	}
	ok = *counter >= target;
	pthread_mutex_unlock(&e->lock);
	return ok;
}

static void counts(struct events_rec *e, int *changed, int *errors, char *last, size_t lastlen)
{
	pthread_mutex_lock(&e->lock);
	*changed = e->changed;
	*errors = e->errors;
	if (last)
		snprintf(last, lastlen, "%s", e->last_error);
	pthread_mutex_unlock(&e->lock);
}

/* ---- files ---- */

/* Writes @len bytes to a temporary file in @dir, sets @mode, renames it to @path. */
static void write_atomic_len(const char *dir, const char *path, const void *data, size_t len,
			     mode_t mode)
{
	char tmp[PATH_MAX];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.store.XXXXXX", dir);
	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static void write_atomic(const char *dir, const char *path, const char *text, mode_t mode)
{
	write_atomic_len(dir, path, text, strlen(text), mode);
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[PATH_MAX * 2];

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char tmpl[] = "/tmp/secretfs-file-XXXXXX";
	pthread_condattr_t ca;

	if (!f || !mkdtemp(tmpl))
		return -1;
	/* The backend keeps realpath(): compare reasons against the same spelling. */
	if (!realpath(tmpl, f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/store.json", f->dir);
	snprintf(f->source, sizeof(f->source), "file:%s", f->path);
	pthread_mutex_init(&f->ev.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->ev.cond, &ca);
	pthread_condattr_destroy(&ca);
	f->events.changed = on_changed;
	f->events.error = on_error;
	f->events.ctx = &f->ev;
	f->live0 = secret_live_count();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	backend_close(f->b);
	rm_tree(f->dir);
	pthread_cond_destroy(&f->ev.cond);
	pthread_mutex_destroy(&f->ev.lock);
	free(f);
	return 0;
}

/* ---- checks ---- */

static void expect_contains(const char *reason, const char *want)
{
	if (!strstr(reason, want))
		fail_msg("reason '%s' does not contain '%s'", reason, want);
}

static void expect_lacks(const char *reason, const char *never)
{
	if (never && strstr(reason, never))
		fail_msg("reason '%s' contains '%s'", reason, never);
}

/* Fetches @id and expects a blob of exactly @want. */
static void expect_blob(struct backend *b, const char *id, const void *want, size_t wantlen)
{
	struct backend_info info;
	struct secret *s = NULL;
	char reason[BACKEND_REASON_MAX] = "";
	int r;

	memset(&info, 0x5a, sizeof(info));
	r = b->ops->fetch(b, id, &s, &info, reason, sizeof(reason));
	if (r != 0)
		fail_msg("fetch '%s': %d %s", id, r, reason);
	assert_int_equal(s->kind, SECRET_BLOB);
	if (s->len != wantlen || memcmp(s->data, want, wantlen) != 0)
		fail_msg("fetch '%s': got '%.*s', want '%.*s'", id, (int)s->len, s->data,
			 (int)wantlen, (const char *)want);
	assert_true(memchr(info.version, '\0', sizeof(info.version)) != NULL);
	assert_true(info.version[0] != '\0');
	assert_true(info.ttl_hint_usec == 0);
	secret_unref(s);
}

static void expect_str(struct backend *b, const char *id, const char *want)
{
	expect_blob(b, id, want, strlen(want));
}

struct want_entry {
	const char *name;
	const char *value;
	size_t len; /* 0: strlen(value) */
};

static void expect_table(struct backend *b, const char *id, const struct want_entry *want, size_t n)
{
	struct backend_info info;
	struct secret *t = NULL;
	struct secret_entry e;
	char reason[BACKEND_REASON_MAX] = "";
	int r = b->ops->fetch(b, id, &t, &info, reason, sizeof(reason));

	if (r != 0)
		fail_msg("fetch '%s': %d %s", id, r, reason);
	assert_int_equal(t->kind, SECRET_TABLE);
	assert_int_equal(secret_table_count(t), n);
	for (size_t i = 0; i < n; i++) {
		size_t len = want[i].len ? want[i].len : strlen(want[i].value);

		assert_true(secret_table_at(t, i, &e));
		assert_string_equal(e.name, want[i].name);
		if (e.valuelen != len || memcmp(e.value, want[i].value, len) != 0)
			fail_msg("'%s' key '%s': got '%.*s', want '%.*s'", id, e.name,
				 (int)e.valuelen, (const char *)e.value, (int)len, want[i].value);
	}
	assert_true(info.version[0] != '\0');
	secret_unref(t);
}

struct want_child {
	const char *name;
	unsigned char flags;
};

static void expect_listing(struct backend *b, const char *prefix, const struct want_child *want,
			   size_t n)
{
	struct secret *t = NULL;
	struct secret_entry e;
	char reason[BACKEND_REASON_MAX] = "";
	int r = b->ops->list(b, prefix, &t, reason, sizeof(reason));

	if (r != 0)
		fail_msg("list '%s': %d %s", prefix, r, reason);
	assert_int_equal(secret_table_count(t), n);
	for (size_t i = 0; i < n; i++) {
		assert_true(secret_table_at(t, i, &e));
		assert_string_equal(e.name, want[i].name);
		assert_int_equal(e.valuelen, 1);
		assert_int_equal(e.value[0], want[i].flags);
	}
	secret_unref(t);
}

/* backend_open() must fail with @want_r and leave *ret alone. */
static void open_fails(struct fx *f, const char *source, int want_r, char *reason, size_t len)
{
	struct backend *sentinel = (struct backend *)f, *b = sentinel;
	int r;

	reason[0] = '\0';
	r = backend_open(source, NULL, &f->events, &b, reason, len);
	if (r != want_r) {
		if (r == 0)
			backend_close(b);
		fail_msg("open '%s': got %d (%s), want %d", source, r, reason, want_r);
	}
	assert_ptr_equal(b, sentinel);
	assert_true(reason[0] != '\0');
	assert_int_equal(secret_live_count(), f->live0);
}

/* ---- a valid store ---- */

static const char store_v1[] =
	"{\n"
	"  \"prod/db\": {\"username\": \"app\", \"password\": \"s3cr3t\", \"port\": 5432,\n"
	"              \"opts\": {\"ssl\": true}},\n"
	"  \"prod/api-key\": \"abc\\u0000def\",\n"
	"  \"prod/cert\": {\"$base64\": \"AAEC/w==\"},\n"
	"  \"prod/db/replica\": \"r\",\n"
	"  \"top\": \"plain \\\"quoted\\\" \\u00e9\",\n"
	"  \"empty\": \"\",\n"
	"  \"dev/x/y\": [1, 2],\n"
	"  \"dev/n\": 42,\n"
	"  \"dev/null\": null,\n"
	"  \"\\u00e9t\\u00e9/k\": {\"files\": {\"$base64\": \"aGk=\"}}\n"
	"}\n";

static void test_fetch_and_list(void **state)
{
	static const struct want_entry db[] = {
		{ "opts", "{\"ssl\":true}", 0 },
		{ "password", "s3cr3t", 0 },
		{ "port", "5432", 0 },
		{ "username", "app", 0 },
	};
	static const struct want_entry ete[] = { { "files", "hi", 0 } };
	static const struct want_child root[] = {
		{ "dev", BACKEND_LIST_FOLDER },
		{ "empty", BACKEND_LIST_SECRET },
		{ "prod", BACKEND_LIST_FOLDER },
		{ "top", BACKEND_LIST_SECRET },
		{ "\xc3\xa9t\xc3\xa9", BACKEND_LIST_FOLDER },
	};
	static const struct want_child prod[] = {
		{ "api-key", BACKEND_LIST_SECRET },
		{ "cert", BACKEND_LIST_SECRET },
		{ "db", BACKEND_LIST_SECRET | BACKEND_LIST_FOLDER },
	};
	static const struct want_child dev[] = {
		{ "n", BACKEND_LIST_SECRET },
		{ "null", BACKEND_LIST_SECRET },
		{ "x", BACKEND_LIST_FOLDER },
	};
	struct fx *f = *state;
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *sentinel = (struct secret *)f, *s = sentinel;
	struct backend_info info;
	int r;

	write_atomic(f->dir, f->path, store_v1, 0600);
	r = backend_open(f->source, NULL, &f->events, &f->b, reason, sizeof(reason));
	if (r != 0)
		fail_msg("open: %d %s", r, reason);
	assert_string_equal(f->b->source, f->source);
	assert_string_equal(f->b->ops->scheme, "file");

	expect_blob(f->b, "prod/api-key", "abc\0def", 7);
	expect_str(f->b, "top", "plain \"quoted\" \xc3\xa9");
	expect_str(f->b, "empty", "");
	expect_str(f->b, "prod/db/replica", "r");
	expect_str(f->b, "dev/x/y", "[1,2]");
	expect_str(f->b, "dev/n", "42");
	expect_str(f->b, "dev/null", "null");
	expect_blob(f->b, "prod/cert", "\x00\x01\x02\xff", 4);
	expect_table(f->b, "prod/db", db, ARRAY_SIZE(db));
	expect_table(f->b, "\xc3\xa9t\xc3\xa9/k", ete, ARRAY_SIZE(ete));

	expect_listing(f->b, "", root, ARRAY_SIZE(root));
	expect_listing(f->b, "prod", prod, ARRAY_SIZE(prod));
	expect_listing(f->b, "dev", dev, ARRAY_SIZE(dev));

	/* Missing secrets and folders: -ENOENT, the id and the file in the reason. */
	for (const char *const *id = (const char *const[]){ "prod/missing", "prod", "dev/x", "nope",
							    "top/x", NULL };
	     *id; id++) {
		char want[BACKEND_REASON_MAX];

		reason[0] = '\0';
		assert_int_equal(f->b->ops->fetch(f->b, *id, &s, &info, reason, sizeof(reason)),
				 -ENOENT);
		assert_ptr_equal(s, sentinel);
		snprintf(want, sizeof(want), "'%s'", *id);
		expect_contains(reason, want);
		expect_contains(reason, f->path);
	}
	for (const char *const *p = (const char *const[]){ "missing", "top", "prod/api-key", "pro",
							   "dev/x/y", NULL };
	     *p; p++) {
		char want[BACKEND_REASON_MAX];

		reason[0] = '\0';
		assert_int_equal(f->b->ops->list(f->b, *p, &s, reason, sizeof(reason)), -ENOENT);
		assert_ptr_equal(s, sentinel);
		snprintf(want, sizeof(want), "'%s'", *p);
		expect_contains(reason, want);
	}

	backend_close(f->b);
	f->b = NULL;
	assert_int_equal(secret_live_count(), f->live0);
}

/*
 * Listings of folders whose names sort around '/': '-' and '.' sort before
 * it, '0' just after, so a folder's ids and a sibling secret's are not
 * adjacent.  Each listing must equal what the whole store says.
 */
static void expect_same_listing(struct backend *b, const char *const *ids, size_t n,
				const char *prefix)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *got = NULL, *want = NULL;
	struct secret_entry ge, we;
	int rg, rw;

	rg = b->ops->list(b, prefix, &got, reason, sizeof(reason));
	rw = ns_listing_from_ids(ids, n, prefix, &want);
	if (rg != rw)
		fail_msg("list '%s': %d (%s), want %d", prefix, rg, reason, rw);
	if (rw < 0)
		return;
	if (secret_table_count(got) != secret_table_count(want))
		fail_msg("list '%s': %zu entries, want %zu", prefix, secret_table_count(got),
			 secret_table_count(want));
	for (size_t i = 0; i < secret_table_count(want); i++) {
		assert_true(secret_table_at(got, i, &ge));
		assert_true(secret_table_at(want, i, &we));
		if (strcmp(ge.name, we.name) != 0 || ge.value[0] != we.value[0])
			fail_msg("list '%s' [%zu]: '%s' %d, want '%s' %d", prefix, i, ge.name,
				 ge.value[0], we.name, we.value[0]);
	}
	secret_unref(got);
	secret_unref(want);
}

static void test_list_names_around_slash(void **state)
{
	static const char *const parts[] = { "a", "a-b", "a.b", "a0", "b", "ab", "!" };
	static const struct want_child a[] = {
		{ "b", BACKEND_LIST_SECRET | BACKEND_LIST_FOLDER },
		{ "b-c", BACKEND_LIST_SECRET },
		{ "b0", BACKEND_LIST_SECRET },
		{ "c", BACKEND_LIST_FOLDER },
	};
	static const struct want_child ab[] = {
		{ "c", BACKEND_LIST_SECRET | BACKEND_LIST_FOLDER },
		{ "c-d", BACKEND_LIST_FOLDER },
	};
	struct fx *f = *state;
	char reason[BACKEND_REASON_MAX] = "", *doc, **ids;
	size_t n = 0, cap = 4096, used = 0;
	int r;

	/* Every id of up to three components drawn from @parts, plus a few by hand. */
	ids = calloc(cap, sizeof(*ids));
	doc = malloc(1 << 20);
	assert_non_null(ids);
	assert_non_null(doc);
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
		for (size_t j = 0; j <= ARRAY_SIZE(parts); j++)
			for (size_t k = 0; k <= ARRAY_SIZE(parts); k++) {
				char id[64];

				if (j == ARRAY_SIZE(parts) && k != ARRAY_SIZE(parts))
					continue;
				snprintf(id, sizeof(id), "x/%s%s%s%s%s", parts[i],
					 j < ARRAY_SIZE(parts) ? "/" : "",
					 j < ARRAY_SIZE(parts) ? parts[j] : "",
					 k < ARRAY_SIZE(parts) ? "/" : "",
					 k < ARRAY_SIZE(parts) ? parts[k] : "");
				assert_true(n < cap);
				ids[n++] = strdup(id);
			}
	for (const char *const *p = (const char *const[]){ "a/b", "a-b", "a/b/c", "a0", "a/b-c",
							   "a/b0", "a/c/d", "a", "ab/c", "ab/c/d",
							   "ab/c-d/e", "ab0", "a/b/c/d", NULL };
	     *p; p++)
		ids[n++] = strdup(*p);
	used += (size_t)snprintf(doc + used, (1 << 20) - used, "{");
	for (size_t i = 0; i < n; i++) {
		assert_non_null(ids[i]);
		used += (size_t)snprintf(doc + used, (1 << 20) - used, "%s\"%s\": \"v%zu\"",
					 i ? ",\n" : "", ids[i], i);
	}
	snprintf(doc + used, (1 << 20) - used, "}\n");
	write_atomic(f->dir, f->path, doc, 0600);
	r = backend_open(f->source, NULL, &f->events, &f->b, reason, sizeof(reason));
	if (r != 0)
		fail_msg("open: %d %s", r, reason);

	expect_listing(f->b, "a", a, ARRAY_SIZE(a));
	expect_listing(f->b, "ab", ab, ARRAY_SIZE(ab));
	/* Every folder, and every id and prefix of one (a secret that is no folder: ENOENT). */
	expect_same_listing(f->b, (const char *const *)ids, n, "");
	for (size_t i = 0; i < n; i++) {
		char pre[64];

		snprintf(pre, sizeof(pre), "%s", ids[i]);
		for (size_t len = strlen(pre); len > 0; len--) {
			pre[len] = '\0';
			if (pre[len - 1] != '/' && ns_id_is_safe(pre))
				expect_same_listing(f->b, (const char *const *)ids, n, pre);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(doc);
	backend_close(f->b);
	f->b = NULL;
	assert_int_equal(secret_live_count(), f->live0);
}

/* ---- refused at open ---- */

struct open_case {
	const char *what;
	const char *text;
	int r;
	int line;	     /* > 0: the reason has "PATH:LINE:" */
	const char *want[2]; /* in the reason */
	const char *never;   /* never in the reason */
};

/* clang-format off */
static const struct open_case open_cases[] = {
	{ "string then token", "{\n  \"a\": \"x\",\n  \"b\": \"hunter2secret\" \"c\": 1\n}\n",
	  -EINVAL, 3, { "'}' expected" }, "hunter" },
	{ "unterminated string", "{\n  \"a\": \"x\",\n  \"b\": \"hunter2secret\n}\n", -EINVAL, 3,
	  { "unexpected newline" }, "hunter" },
	{ "control character", "{\n  \"a\": \"x\",\n  \"b\": \"hunter2secret\x01\"\n}\n", -EINVAL,
	  3, { "control character" }, "hunter" },
	{ "invalid escape", "{\n  \"a\": \"x\",\n  \"b\": \"hunter2secret\\q\"\n}\n", -EINVAL, 3,
	  { "invalid escape" }, "hunter" },
	{ "bare word", "{\n  \"a\": \"x\",\n  \"b\": hunterzwosecret,\n}\n", -EINVAL, 3,
	  { "invalid token" }, "hunter" },
	{ "trailing garbage", "{\n  \"a\": \"x\",\n  \"b\": \"hunter2secret\" }}\n", -EINVAL, 3,
	  { "end of file expected" }, "hunter" },
	{ "duplicate id", "{\n  \"a\": \"x\",\n  \"a\": \"hunter2secret\"\n}\n", -EINVAL, 3,
	  { "duplicate" }, "hunter" },
	{ "NUL in an id", "{\n  \"a\": \"x\",\n  \"a\\u0000b\": \"hunter2secret\"\n}\n", -EINVAL, 3,
	  { NULL }, "hunter" },
	{ "bare string", "\"hunter2secret\"", -EINVAL, 1, { "expected" }, "hunter" },
	{ "empty file", "", -EINVAL, 1, { NULL }, NULL },
	{ "array", "[\"hunter2secret\"]\n", -EINVAL, 1, { "must be a JSON object" }, "hunter" },
	{ "dotdot id", "{\"ok\": \"1\", \"a/../b\": \"hunter2secret\"}", -EINVAL, 0,
	  { "'a/../b'", "not usable" }, "hunter" },
	{ "absolute id", "{\"/etc/x\": \"hunter2secret\"}", -EINVAL, 0, { "'/etc/x'" }, "hunter" },
	{ "trailing slash", "{\"x/\": \"hunter2secret\"}", -EINVAL, 0, { "'x/'" }, "hunter" },
	{ "double slash", "{\"a//b\": \"hunter2secret\"}", -EINVAL, 0, { "'a//b'" }, "hunter" },
	{ "empty id", "{\"\": \"hunter2secret\"}", -EINVAL, 0, { "''" }, "hunter" },
	{ "dot id", "{\"a/.\": \"hunter2secret\"}", -EINVAL, 0, { "'a/.'" }, "hunter" },
	{ "bad base64", "{\"prod/cert\": {\"$base64\": \"aHVu=GVyMnNlY3JldA==\"}}", -EINVAL, 0,
	  { "'prod/cert'", "base64" }, "aHVu" },
	{ "bad base64 in a key", "{\"prod/tls\": {\"key\": {\"$base64\": \"aHVudGVy*\"}}}",
	  -EINVAL, 0, { "'prod/tls'", "'key'" }, "aHVu" },
	{ "unsafe key", "{\"prod/db\": {\"user\": \"u\", \"../pw\": \"hunter2secret\"}}", -EINVAL,
	  0, { "'prod/db'", "'../pw'" }, "hunter" },
};
/* clang-format on */

static void test_open_errors(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(open_cases); i++) {
		const struct open_case *c = &open_cases[i];
		char reason[BACKEND_REASON_MAX], want[PATH_MAX + 64];

		write_atomic(f->dir, f->path, c->text, 0600);
		open_fails(f, f->source, c->r, reason, sizeof(reason));
		print_message("  %s: %s\n", c->what, reason);
		expect_contains(reason, f->path);
		if (c->line > 0) {
			snprintf(want, sizeof(want), "%s:%d:", f->path, c->line);
			expect_contains(reason, want);
		}
		for (size_t k = 0; k < ARRAY_SIZE(c->want) && c->want[k]; k++)
			expect_contains(reason, c->want[k]);
		expect_lacks(reason, c->never);
		/* jansson's "near '...'" quote is cut off. */
		expect_lacks(reason, " near ");
	}
}

/*
 * jansson reports a lone surrogate as "invalid Unicode '\uD83D'" with no
 * " near ", so the quote of the value survives the cut: the escape is a piece
 * of the secret's text.
 */
static void test_open_error_unicode_escape(void **state)
{
	struct fx *f = *state;
	char reason[BACKEND_REASON_MAX], want[PATH_MAX + 64];

	write_atomic(f->dir, f->path, "{\n  \"a\": \"x\",\n  \"pin\": \"\\ud83d1234\"\n}\n", 0600);
	open_fails(f, f->source, -EINVAL, reason, sizeof(reason));
	print_message("  %s\n", reason);
	snprintf(want, sizeof(want), "%s:3:", f->path);
	expect_contains(reason, want);
	expect_lacks(reason, "D83D");
	expect_lacks(reason, "d83d");
}

static void test_open_permissions(void **state)
{
	static const struct {
		mode_t mode;
		int r;
	} modes[] = {
		{ 0620, -EPERM }, { 0602, -EPERM }, { 0622, -EPERM }, { 0666, -EPERM },
		{ 0600, 0 },	  { 0400, 0 },	    { 0640, 0 },      { 0644, 0 },
	};
	struct fx *f = *state;
	char reason[BACKEND_REASON_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		write_atomic(f->dir, f->path, "{\"a\": \"1\"}", modes[i].mode);
		if (modes[i].r == 0) {
			struct backend *b = NULL;
			int r = backend_open(f->source, NULL, &f->events, &b, reason,
					     sizeof(reason));

			if (r != 0)
				fail_msg("mode %04o: %d %s", (unsigned)modes[i].mode, r, reason);
			expect_str(b, "a", "1");
			backend_close(b);
			continue;
		}
		open_fails(f, f->source, -EPERM, reason, sizeof(reason));
		expect_contains(reason, f->path);
		expect_contains(reason, "writable by group or others");
	}

	if (geteuid() != 0) {
		print_message("  not root: skipping the owner checks\n");
		return;
	}
	write_atomic(f->dir, f->path, "{\"a\": \"1\"}", 0600);
	assert_int_equal(chown(f->path, 65534, 65534), 0);
	open_fails(f, f->source, -EPERM, reason, sizeof(reason));
	expect_contains(reason, f->path);
	expect_contains(reason, "owned by uid 65534");
	/* Group ownership alone does not matter. */
	assert_int_equal(chown(f->path, 0, 65534), 0);
	{
		struct backend *b = NULL;

		assert_int_equal(
			backend_open(f->source, NULL, &f->events, &b, reason, sizeof(reason)), 0);
		backend_close(b);
	}
}

static void test_open_bad_sources(void **state)
{
	struct fx *f = *state;
	char reason[BACKEND_REASON_MAX], src[PATH_MAX + 32], sub[PATH_MAX + 16];
	int fd;

	/* Missing file: its errno, and the path. */
	snprintf(src, sizeof(src), "file:%s/missing.json", f->dir);
	open_fails(f, src, -ENOENT, reason, sizeof(reason));
	expect_contains(reason, "missing.json");
	snprintf(src, sizeof(src), "file:%s/nodir/store.json", f->dir);
	open_fails(f, src, -ENOENT, reason, sizeof(reason));
	expect_contains(reason, "nodir/store.json");

	/* A directory. */
	snprintf(sub, sizeof(sub), "%s/sub", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(src, sizeof(src), "file:%s", sub);
	open_fails(f, src, -EINVAL, reason, sizeof(reason));
	expect_contains(reason, sub);
	expect_contains(reason, "not a regular file");

	/* Larger than the limit (sparse: nothing is read). */
	snprintf(sub, sizeof(sub), "%s/big.json", f->dir);
	fd = open(sub, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)65 << 20), 0);
	close(fd);
	snprintf(src, sizeof(src), "file:%s", sub);
	open_fails(f, src, -EFBIG, reason, sizeof(reason));
	expect_contains(reason, sub);

	/* Schemes. */
	open_fails(f, "nope:x", -EINVAL, reason, sizeof(reason));
	expect_contains(reason, "unknown backend 'nope'");
	open_fails(f, "files:/x", -EINVAL, reason, sizeof(reason));
	expect_contains(reason, "unknown backend 'files'");
	open_fails(f, "fil:/x", -EINVAL, reason, sizeof(reason));
	open_fails(f, "/etc/secretfs/store.json", -EINVAL, reason, sizeof(reason));
	expect_contains(reason, "no scheme");
	open_fails(f, "store.json", -EINVAL, reason, sizeof(reason));
	expect_contains(reason, "no scheme");
	open_fails(f, ":/x", -EINVAL, reason, sizeof(reason));
	expect_contains(reason, "no scheme");
	open_fails(f, "", -EINVAL, reason, sizeof(reason));
	open_fails(f, "file:", -EINVAL, reason, sizeof(reason));
	expect_contains(reason, "file:PATH");
}

/*
 * A FIFO is not a regular file either, but open() on it blocks until a writer
 * appears.  Run the open in a child so a hang is a failure, not a stuck suite.
 */
static void test_open_fifo(void **state)
{
	struct fx *f = *state;
	char fifo[PATH_MAX + 16], src[PATH_MAX + 32];
	int status = 0;
	pid_t pid, w = 0;

	snprintf(fifo, sizeof(fifo), "%s/store.fifo", f->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(src, sizeof(src), "file:%s", fifo);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct backend *b = NULL;
		char reason[BACKEND_REASON_MAX] = "";
		int r = backend_open(src, NULL, NULL, &b, reason, sizeof(reason));

		_exit(r < 0 && strstr(reason, "not a regular file") ? 0 : 1);
	}
	for (int i = 0; i < 20 * 3 && w == 0; i++) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == 0)
			usleep(50 * 1000);
	}
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("backend_open(\"%s\") still blocked after 3 s", src);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- reload ---- */

static void fetch_str_now(struct backend *b, const char *id, char *buf, size_t len)
{
	struct backend_info info;
	struct secret *s = NULL;
	char reason[BACKEND_REASON_MAX];

	buf[0] = '\0';
	if (b->ops->fetch(b, id, &s, &info, reason, sizeof(reason)) == 0) {
		snprintf(buf, len, "%.*s", (int)s->len, s->data);
		secret_unref(s);
	}
}

static void test_reload(void **state)
{
	static const struct want_child v2_root[] = {
		{ "new", BACKEND_LIST_SECRET },
		{ "prod", BACKEND_LIST_FOLDER },
	};
	struct fx *f = *state;
	char reason[BACKEND_REASON_MAX] = "", last[BACKEND_REASON_MAX], want[PATH_MAX + 64];
	int changed, errors, r;

	write_atomic(f->dir, f->path, "{\"prod/db/password\": \"old\", \"gone\": \"x\"}\n", 0600);
	r = backend_open(f->source, NULL, &f->events, &f->b, reason, sizeof(reason));
	if (r != 0)
		fail_msg("open: %d %s", r, reason);
	assert_non_null(f->b->ops->start);
	r = f->b->ops->start(f->b, reason, sizeof(reason));
	if (r != 0)
		fail_msg("start: %d %s", r, reason);
	expect_str(f->b, "prod/db/password", "old");

	/* A good rewrite, renamed over the store: one change event, new values. */
	write_atomic(f->dir, f->path, "{\"prod/db/password\": \"new\", \"new\": \"n\"}\n", 0600);
	if (!wait_for(&f->ev, &f->ev.changed, 1))
		fail_msg("no change event within %d s", WAIT_SEC);
	expect_str(f->b, "prod/db/password", "new");
	expect_str(f->b, "new", "n");
	expect_listing(f->b, "", v2_root, ARRAY_SIZE(v2_root));
	{
		struct backend_info info;
		struct secret *s = NULL;

		assert_int_equal(f->b->ops->fetch(f->b, "gone", &s, &info, reason, sizeof(reason)),
				 -ENOENT);
	}
	counts(&f->ev, &changed, &errors, NULL, 0);
	assert_int_equal(errors, 0);

	/* A broken rewrite: the error event names file and line; the last good values stay. */
	write_atomic(f->dir, f->path,
		     "{\n  \"prod/db/password\": \"newer\",\n  \"x\": \"hunter2secret\" \"y\"\n}\n",
		     0600);
	if (!wait_for(&f->ev, &f->ev.errors, 1))
		fail_msg("no error event within %d s", WAIT_SEC);
	counts(&f->ev, &changed, &errors, last, sizeof(last));
	snprintf(want, sizeof(want), "%s:3:", f->path);
	expect_contains(last, want);
	expect_lacks(last, "hunter");
	expect_str(f->b, "prod/db/password", "new");
	expect_str(f->b, "new", "n");
	expect_listing(f->b, "", v2_root, ARRAY_SIZE(v2_root));

	/* A rewrite that is refused for its mode is an error too, and keeps the values. */
	write_atomic(f->dir, f->path, "{\"prod/db/password\": \"evil\"}\n", 0666);
	if (!wait_for(&f->ev, &f->ev.errors, errors + 1))
		fail_msg("no error event for a world-writable rewrite within %d s", WAIT_SEC);
	counts(&f->ev, &changed, &errors, last, sizeof(last));
	expect_contains(last, "writable by group or others");
	expect_str(f->b, "prod/db/password", "new");

	/* And a good one recovers. */
	write_atomic(f->dir, f->path, "{\"prod/db/password\": \"newest\"}\n", 0600);
	if (!wait_for(&f->ev, &f->ev.changed, changed + 1))
		fail_msg("no change event after recovery within %d s", WAIT_SEC);
	expect_str(f->b, "prod/db/password", "newest");

	/* Other files in the directory are not the store. */
	counts(&f->ev, &changed, &errors, NULL, 0);
	{
		char other[PATH_MAX + 16];

		snprintf(other, sizeof(other), "%s/other.json", f->dir);
		write_atomic(f->dir, other, "not json", 0600);
	}
	usleep(300 * 1000);
	{
		int c2, e2;

		counts(&f->ev, &c2, &e2, NULL, 0);
		assert_int_equal(c2, changed);
		assert_int_equal(e2, errors);
	}

	f->b->ops->stop(f->b);
	/* Stopped: no more events, values stay readable until done. */
	write_atomic(f->dir, f->path, "{\"prod/db/password\": \"after-stop\"}\n", 0600);
	usleep(300 * 1000);
	{
		int c2, e2;

		counts(&f->ev, &c2, &e2, NULL, 0);
		assert_int_equal(c2, changed);
		assert_int_equal(e2, errors);
	}
	expect_str(f->b, "prod/db/password", "newest");
	backend_close(f->b);
	f->b = NULL;
	assert_int_equal(secret_live_count(), f->live0);
}

/* Editors that write in place (truncate, write, close) are seen too. */
static void test_reload_in_place(void **state)
{
	static const char v2[] = "{\"k\": \"in-place\"}\n";
	struct fx *f = *state;
	char reason[BACKEND_REASON_MAX] = "", buf[64];
	int fd, r;

	write_atomic(f->dir, f->path, "{\"k\": \"before\"}\n", 0600);
	r = backend_open(f->source, NULL, &f->events, &f->b, reason, sizeof(reason));
	if (r != 0)
		fail_msg("open: %d %s", r, reason);
	assert_int_equal(f->b->ops->start(f->b, reason, sizeof(reason)), 0);

	fd = open(f->path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, v2, strlen(v2)), (ssize_t)strlen(v2));
	assert_int_equal(close(fd), 0);
	if (!wait_for(&f->ev, &f->ev.changed, 1))
		fail_msg("no change event within %d s", WAIT_SEC);
	fetch_str_now(f->b, "k", buf, sizeof(buf));
	assert_string_equal(buf, "in-place");

	/* Closing the backend without stop() first joins the thread too. */
	backend_close(f->b);
	f->b = NULL;
	assert_int_equal(secret_live_count(), f->live0);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fetch_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_names_around_slash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_error_unicode_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_bad_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_in_place, setup, teardown),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
