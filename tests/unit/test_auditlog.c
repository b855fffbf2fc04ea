/*
 * test_auditlog.c - the audit log's promises, each checked by parsing the
 * written lines back with jansson: the exact field set, escaping that always
 * yields valid JSON, the file target's mode, appending, reopening after a
 * logrotate-style rename, refusal of non-regular targets, counted write
 * failures, and whole lines under concurrent writers.
 *
 * Threads never assert: they count failures, and the test thread checks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "secretfs/auditlog.h"
#include "secretfs/util.h"

#define MAX_LINES 16384

struct fx {
	char dir[64];
	char path[128]; /* dir/audit.log, not created by setup */
	struct auditlog *a;
};

/* The lines of a file, each parsed. */
struct lines {
	size_t n;
	json_t *v[MAX_LINES];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_auditlog.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/audit.log", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *de;
	DIR *d;

	auditlog_close(f->a);
	d = opendir(f->dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* A test may leave one directory behind in place of the log. */
		if (unlinkat(dirfd(d), de->d_name, 0) < 0)
			assert_int_equal(unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static void open_ok(struct fx *f, const char *target)
{
	char err[256] = "";
	int r = auditlog_open(target, &f->a, err, sizeof(err));

	if (r != 0)
		fail_msg("auditlog_open(%s): %d %s", target, r, err);
}

static struct auditlog_record base_record(void)
{
	return (struct auditlog_record){
		.uid = 33,
		.gid = 34,
		.pid = 812,
		.exe = "/usr/sbin/nginx",
		.exe_known = true,
		.exe_dev = 2049,
		.exe_ino = 4294967301ULL, /* past 32 bits */
		.op = "open",
		.path = "prod/tls/key.pem",
		.source = "file:/etc/secretfs/store.json",
		.permit = true,
		.rule = "/etc/secretfs/policy:3",
		.error = 0,
		.cache = "hit",
		.version = "7",
	};
}

static void write_ok(struct auditlog *a, const struct auditlog_record *r)
{
	int ret = auditlog_write(a, r);

	if (ret != 0)
		fail_msg("auditlog_write: %d", ret);
}

/* Every line must end in '\n', hold no raw control byte, and parse as one object. */
static struct lines *read_lines(const char *path)
{
	struct lines *ls = calloc(1, sizeof(*ls));
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *fp;

	assert_non_null(ls);
	fp = fopen(path, "re");
	if (!fp)
		fail_msg("%s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, fp)) > 0) {
		json_error_t jerr;
		json_t *v;
		ssize_t i;

		assert_true(ls->n < MAX_LINES);
		if (line[n - 1] != '\n')
			fail_msg("line %zu has no newline", ls->n + 1);
		for (i = 0; i < n - 1; i++) {
			if ((unsigned char)line[i] < 0x20)
				fail_msg("line %zu: raw control byte 0x%02x", ls->n + 1, line[i]);
		}
		v = json_loadb(line, (size_t)n, 0, &jerr);
		if (!v)
			fail_msg("line %zu does not parse: %s: %s", ls->n + 1, jerr.text, line);
		assert_true(json_is_object(v));
		ls->v[ls->n++] = v;
	}
	free(line);
	fclose(fp);
	return ls;
}

static void free_lines(struct lines *ls)
{
	size_t i;

	for (i = 0; i < ls->n; i++)
		json_decref(ls->v[i]);
	free(ls);
}

static json_t *only_line(const char *path, struct lines **ret)
{
	struct lines *ls = read_lines(path);

	assert_int_equal(ls->n, 1);
	*ret = ls;
	return ls->v[0];
}

static void check_str(json_t *o, const char *key, const char *want)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		fail_msg("no field %s", key);
	if (!want) {
		if (!json_is_null(v))
			fail_msg("%s: want null", key);
		return;
	}
	if (!json_is_string(v))
		fail_msg("%s: want a string", key);
	assert_string_equal(json_string_value(v), want);
}

static void check_int(json_t *o, const char *key, json_int_t want)
{
	json_t *v = json_object_get(o, key);

	if (!v || !json_is_integer(v))
		fail_msg("%s: want an integer", key);
	assert_int_equal(json_integer_value(v), want);
}

/* Exactly these fifteen fields, no more. */
static void check_field_set(json_t *o)
{
	static const char *const keys[] = { "time",	"uid",	   "gid",   "pid",   "exe",
					    "exe_dev",	"exe_ino", "op",    "path",  "source",
					    "decision", "rule",	   "errno", "cache", "version" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(keys); i++) {
		if (!json_object_get(o, keys[i]))
			fail_msg("missing field %s", keys[i]);
	}
	assert_int_equal(json_object_size(o), ARRAY_SIZE(keys));
}

static void test_fields_permit(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	struct auditlog_stats st;
	struct lines *ls;
	json_t *o;

	open_ok(f, f->path);
	write_ok(f->a, &r);
	o = only_line(f->path, &ls);
	check_field_set(o);
	check_int(o, "uid", 33);
	check_int(o, "gid", 34);
	check_int(o, "pid", 812);
	check_str(o, "exe", "/usr/sbin/nginx");
	check_int(o, "exe_dev", 2049);
	check_int(o, "exe_ino", 4294967301LL);
	check_str(o, "op", "open");
	check_str(o, "path", "prod/tls/key.pem");
	check_str(o, "source", "file:/etc/secretfs/store.json");
	check_str(o, "decision", "permit");
	check_str(o, "rule", "/etc/secretfs/policy:3");
	check_int(o, "errno", 0);
	check_str(o, "cache", "hit");
	check_str(o, "version", "7");
	free_lines(ls);

	auditlog_get_stats(f->a, &st);
	assert_int_equal(st.records, 1);
	assert_int_equal(st.write_errors, 0);
}

static void test_fields_deny_nulls(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	struct lines *ls;
	json_t *o;

	r.uid = 4294967294u; /* nobody-like ids stay unsigned */
	r.gid = 65534;
	r.pid = 1;
	r.exe = NULL;
	r.exe_known = false;
	r.op = "opendir";
	r.permit = false;
	r.rule = NULL;
	r.error = EACCES;
	r.cache = NULL;
	r.version = NULL;
	open_ok(f, f->path);
	write_ok(f->a, &r);
	o = only_line(f->path, &ls);
	check_field_set(o);
	check_int(o, "uid", 4294967294u);
	check_int(o, "gid", 65534);
	check_int(o, "pid", 1);
	check_str(o, "exe", NULL);
	check_str(o, "exe_dev", NULL);
	check_str(o, "exe_ino", NULL);
	check_str(o, "op", "opendir");
	check_str(o, "decision", "deny");
	check_str(o, "rule", NULL);
	check_int(o, "errno", EACCES);
	check_str(o, "cache", NULL);
	check_str(o, "version", NULL);
	free_lines(ls);
}

static void test_cache_version_errno_table(void **state)
{
	static const struct {
		const char *cache, *version;
		int error;
		const char *want_cache, *want_version;
		int want_errno;
	} cases[] = {
		{ "hit", "7", 0, "hit", "7", 0 },
		{ "miss", "", ENOENT, "miss", NULL, ENOENT },
		{ "stale", "v2-abc", 0, "stale", "v2-abc", 0 },
		{ "negative", NULL, ENOENT, "negative", NULL, ENOENT },
		{ NULL, NULL, EIO, NULL, NULL, EIO },
		/* The project's negative-errno convention yields the same record. */
		{ "miss", "1", -EACCES, "miss", "1", EACCES },
	};
	struct fx *f = *state;
	struct lines *ls;
	size_t i;

	open_ok(f, f->path);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct auditlog_record r = base_record();

		r.op = "list";
		r.cache = cases[i].cache;
		r.version = cases[i].version;
		r.error = cases[i].error;
		write_ok(f->a, &r);
	}
	ls = read_lines(f->path);
	assert_int_equal(ls->n, ARRAY_SIZE(cases));
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		check_field_set(ls->v[i]);
		check_str(ls->v[i], "op", "list");
		check_str(ls->v[i], "cache", cases[i].want_cache);
		check_str(ls->v[i], "version", cases[i].want_version);
		check_int(ls->v[i], "errno", cases[i].want_errno);
	}
	free_lines(ls);
}

static uint64_t clock_realtime_usec(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static void test_time(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	uint64_t before, after, logged;
	struct tm tm = { 0 };
	const char *t, *frac;
	struct lines *ls;
	regex_t re;
	json_t *o;

	open_ok(f, f->path);
	before = clock_realtime_usec();
	write_ok(f->a, &r);
	after = clock_realtime_usec();
	o = only_line(f->path, &ls);
	assert_true(json_is_string(json_object_get(o, "time")));
	t = json_string_value(json_object_get(o, "time"));

	assert_int_equal(regcomp(&re,
				 "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
				 "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\\.[0-9]{6}Z$",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	if (regexec(&re, t, 0, NULL, 0) != 0)
		fail_msg("time %s is not RFC 3339 UTC with microseconds", t);
	regfree(&re);

	/*
	 * The same clock read around the write brackets the record to the
	 * microsecond; only a step of the wall clock in between could break this.
	 */
	frac = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(frac);
	assert_int_equal(*frac, '.');
	logged = (uint64_t)timegm(&tm) * USEC_PER_SEC + strtoull(frac + 1, NULL, 10);
	if (logged < before || logged > after)
		fail_msg("time %s is not between %llu and %llu us", t, (unsigned long long)before,
			 (unsigned long long)after);
	free_lines(ls);
}

static void test_escaping(void **state)
{
	static const struct {
		const char *path, *want;
	} cases[] = {
		{ "a\"b", "a\"b" },
		{ "back\\slash\\", "back\\slash\\" },
		{ "new\nline\r\n", "new\nline\r\n" },
		{ "tab\there", "tab\there" },
		{ "ctl\x01\x1b[31m\x1f\x7f", "ctl\x01\x1b[31m\x1f\x7f" },
		{ "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80",
		  "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80" },
		/* C1 control U+0085 (escaped on the wire, same string once decoded) */
		{ "c1\xc2\x85x", "c1\xc2\x85x" },
		/* U+FFFD is written as "\ufffd", which jansson decodes to EF BF BD. */
		{ "bad\xff", "bad\xef\xbf\xbd" },
		{ "\x80\xbf", "\xef\xbf\xbd\xef\xbf\xbd" },
		/* a truncated 3-byte sequence: one U+FFFD for its maximal subpart */
		{ "e\xe2\x82x", "e\xef\xbf\xbdx" },
		{ "end\xf0\x9f\x98", "end\xef\xbf\xbd" },
		/* overlong '/', a surrogate, past U+10FFFF: every byte ill-formed */
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xf0\x80\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "", "" },
	};
	struct fx *f = *state;
	struct lines *ls;
	size_t i;

	open_ok(f, f->path);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct auditlog_record r = base_record();

		r.path = cases[i].path;
		/* The other string fields share the encoder; give them odd bytes too. */
		r.exe = cases[i].path;
		r.source = cases[i].path;
		write_ok(f->a, &r);
	}
	ls = read_lines(f->path);
	assert_int_equal(ls->n, ARRAY_SIZE(cases));
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		check_field_set(ls->v[i]);
		check_str(ls->v[i], "path", cases[i].want);
		check_str(ls->v[i], "exe", cases[i].want);
		check_str(ls->v[i], "source", cases[i].want);
	}
	free_lines(ls);
}

static void check_truncated(json_t *o, const char *key, char fill_first)
{
	const char *s = json_string_value(json_object_get(o, key));
	const char *marker = "...[truncated]";
	size_t n, m = strlen(marker);

	assert_non_null(s);
	n = strlen(s);
	assert_true(n > m);
	assert_int_equal(s[0], fill_first);
	assert_string_equal(s + n - m, marker);
}

static void test_truncation(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	char big[20000], ctl[8000], utf[9001];
	struct lines *ls;
	size_t i;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* six bytes on the wire per input byte */
	memset(ctl, '\x01', sizeof(ctl) - 1);
	ctl[sizeof(ctl) - 1] = '\0';
	/* three-byte characters: a cut must not split one, or jansson rejects the line */
	for (i = 0; i + 3 < sizeof(utf); i += 3)
		memcpy(utf + i, "\xe6\x97\xa5", 3);
	utf[i] = '\0';

	open_ok(f, f->path);
	r.path = big;
	r.exe = big;
	r.source = big;
	r.rule = big;
	r.op = big;
	r.cache = big;
	r.version = big;
	write_ok(f->a, &r);
	r = base_record();
	r.path = ctl;
	write_ok(f->a, &r);
	r.path = utf;
	write_ok(f->a, &r);
	/* PATH_MAX-long ASCII paths are kept whole. */
	big[4095] = '\0';
	r.path = big;
	write_ok(f->a, &r);

	ls = read_lines(f->path);
	assert_int_equal(ls->n, 4);
	check_field_set(ls->v[0]);
	check_truncated(ls->v[0], "path", 'a');
	check_truncated(ls->v[0], "exe", 'a');
	check_truncated(ls->v[0], "source", 'a');
	check_truncated(ls->v[0], "rule", 'a');
	check_truncated(ls->v[0], "op", 'a');
	check_truncated(ls->v[0], "cache", 'a');
	check_truncated(ls->v[0], "version", 'a');
	check_truncated(ls->v[1], "path", '\x01');
	check_truncated(ls->v[2], "path", '\xe6');
	check_str(ls->v[3], "path", big);
	free_lines(ls);
}

static mode_t file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_mode_on_creation(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	mode_t old = umask(0);

	/* umask 0 would let any wider creation mode through. */
	open_ok(f, f->path);
	umask(old);
	write_ok(f->a, &r);
	assert_int_equal(file_mode(f->path), 0600);
}

static void write_file(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = fopen(path, "re");
	FILE *mem = open_memstream(&buf, &len);
	int c;

	assert_non_null(fp);
	assert_non_null(mem);
	while ((c = fgetc(fp)) != EOF)
		fputc(c, mem);
	fclose(fp);
	fclose(mem);
	return buf;
}

static void test_append_existing(void **state)
{
	const char *old = "{\"old\":1}\n{\"old\":2}\n";
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	struct lines *ls;
	char *all;

	write_file(f->path, old, 0640);
	open_ok(f, f->path);
	write_ok(f->a, &r);
	all = slurp(f->path);
	assert_memory_equal(all, old, strlen(old));
	free(all);
	ls = read_lines(f->path);
	assert_int_equal(ls->n, 3);
	check_str(ls->v[2], "path", "prod/tls/key.pem");
	free_lines(ls);
	/* An existing file's mode is left alone: not widened, not narrowed. */
	assert_int_equal(file_mode(f->path), 0640);
}

static void test_reopen_after_rename(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	char rotated[160], err[256] = "";
	struct lines *ls;

	snprintf(rotated, sizeof(rotated), "%s.1", f->path);
	open_ok(f, f->path);
	r.path = "before";
	write_ok(f->a, &r);
	/* logrotate renames, then sends SIGHUP; records in between go to the old file. */
	assert_int_equal(rename(f->path, rotated), 0);
	r.path = "between";
	write_ok(f->a, &r);
	assert_int_equal(auditlog_reopen(f->a, err, sizeof(err)), 0);
	r.path = "after";
	write_ok(f->a, &r);

	ls = read_lines(rotated);
	assert_int_equal(ls->n, 2);
	check_str(ls->v[0], "path", "before");
	check_str(ls->v[1], "path", "between");
	free_lines(ls);
	ls = read_lines(f->path);
	assert_int_equal(ls->n, 1);
	check_str(ls->v[0], "path", "after");
	free_lines(ls);
	assert_int_equal(file_mode(f->path), 0600);
}

static void test_reopen_failure_keeps_old(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	char rotated[160], err[256] = "";
	struct lines *ls;

	snprintf(rotated, sizeof(rotated), "%s.1", f->path);
	open_ok(f, f->path);
	assert_int_equal(rename(f->path, rotated), 0);
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_true(auditlog_reopen(f->a, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, f->path));
	/* Still logging, to the file it had. */
	write_ok(f->a, &r);
	ls = read_lines(rotated);
	assert_int_equal(ls->n, 1);
	free_lines(ls);
}

static void expect_refused(const char *target, const char *reason)
{
	struct auditlog *a = NULL;
	char err[512] = "";
	int r;

	r = auditlog_open(target, &a, err, sizeof(err));
	if (r >= 0)
		fail_msg("%s: opened", target);
	assert_null(a);
	if (!strstr(err, target))
		fail_msg("%s: error does not name it: %s", target, err);
	if (reason && !strstr(err, reason))
		fail_msg("%s: error does not say \"%s\": %s", target, reason, err);
}

static void test_refuse_non_regular(void **state)
{
	struct fx *f = *state;
	char link[160], dangling[160], fifo[160], victim[160], missing[160];
	struct stat st;
	char *all;

	snprintf(link, sizeof(link), "%s/link", f->dir);
	snprintf(dangling, sizeof(dangling), "%s/dangling", f->dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", f->dir);
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	snprintf(missing, sizeof(missing), "%s/missing", f->dir);

	expect_refused(f->dir, "a directory");

	write_file(victim, "untouched\n", 0644);
	assert_int_equal(symlink(victim, link), 0);
	expect_refused(link, "a symbolic link");
	all = slurp(victim);
	assert_string_equal(all, "untouched\n");
	free(all);

	/* O_CREAT must not create the target of a dangling link either. */
	assert_int_equal(symlink(missing, dangling), 0);
	expect_refused(dangling, "a symbolic link");
	assert_int_equal(lstat(missing, &st), -1);

	/* A FIFO without a reader must not hang the open. */
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_refused(fifo, "a FIFO");

	expect_refused("/dev/null", "a character device");
	expect_refused("relative/audit.log", "absolute");
}

static void test_refuse_missing_dir(void **state)
{
	struct fx *f = *state;
	char path[200];

	snprintf(path, sizeof(path), "%s/no/such/dir/audit.log", f->dir);
	expect_refused(path, "No such file");
}

static void test_empty_target(void **state)
{
	struct auditlog *a = NULL;
	char err[128] = "";

	assert_int_equal(auditlog_open("", &a, err, sizeof(err)), -EINVAL);
	assert_null(a);
	assert_true(err[0] != '\0');
	auditlog_close(NULL);
}

/* Runs @fn with fd 2 pointing at @path, then puts the real stderr back. */
static void with_stderr(const char *path, int flags, void (*fn)(void *), void *arg)
{
	int saved, fd;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	fd = open(path, flags | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	fn(arg);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
}

struct stderr_run {
	struct auditlog *a;
	int rets[3];
};

static void stderr_writes(void *arg)
{
	struct stderr_run *run = arg;
	struct auditlog_record r = base_record();
	size_t i;

	for (i = 0; i < ARRAY_SIZE(run->rets); i++)
		run->rets[i] = auditlog_write(run->a, &r);
}

static void test_stderr(void **state)
{
	struct fx *f = *state;
	struct stderr_run run = { 0 };
	struct auditlog_stats st;
	struct lines *ls;

	open_ok(f, "stderr");
	run.a = f->a;
	with_stderr(f->path, O_WRONLY | O_CREAT | O_TRUNC, stderr_writes, &run);
	assert_int_equal(run.rets[0], 0);
	assert_int_equal(run.rets[2], 0);
	ls = read_lines(f->path);
	assert_int_equal(ls->n, 3);
	check_field_set(ls->v[0]);
	free_lines(ls);
	auditlog_get_stats(f->a, &st);
	assert_int_equal(st.records, 3);
	assert_int_equal(st.write_errors, 0);
	/* Closing a stderr target leaves fd 2 open. */
	auditlog_close(f->a);
	f->a = NULL;
	assert_true(fcntl(STDERR_FILENO, F_GETFD) >= 0);
}

static void test_write_errors_counted(void **state)
{
	struct fx *f = *state;
	struct stderr_run run = { 0 };
	struct auditlog_stats st;
	size_t i;

	open_ok(f, "stderr");
	run.a = f->a;
	with_stderr("/dev/full", O_WRONLY, stderr_writes, &run);
	for (i = 0; i < ARRAY_SIZE(run.rets); i++)
		assert_int_equal(run.rets[i], -ENOSPC);
	auditlog_get_stats(f->a, &st);
	assert_int_equal(st.records, 0);
	assert_int_equal(st.write_errors, 3);
}

static void test_syslog_smoke(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	struct auditlog_stats st;
	char err[128] = "";

	/* Where syslog sends it is not observable here; the path through it is. */
	open_ok(f, "syslog");
	r.path = "test_auditlog/syslog-smoke";
	write_ok(f->a, &r);
	auditlog_get_stats(f->a, &st);
	assert_int_equal(st.records, 1);
	assert_int_equal(auditlog_reopen(f->a, err, sizeof(err)), 0);
}

#define THREADS		   8
#define RECORDS_PER_THREAD 1000
#define ROTATIONS	   5

static unsigned workers_done; /* atomic */

struct worker {
	struct auditlog *a;
	int id;
	int failures;
	pthread_t thread;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct auditlog_record r = base_record();
	char path[64];
	int i;

	for (i = 0; i < RECORDS_PER_THREAD; i++) {
		snprintf(path, sizeof(path), "t%d/%d", w->id, i);
		r.path = path;
		r.pid = w->id;
		if (auditlog_write(w->a, &r) != 0)
			w->failures++;
	}
	__atomic_add_fetch(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Each (thread, index) exactly once across @paths, whole lines only. */
static void check_all_records(char (*paths)[160], size_t npaths)
{
	static bool seen[THREADS][RECORDS_PER_THREAD];
	size_t total = 0, p, i;

	memset(seen, 0, sizeof(seen));
	for (p = 0; p < npaths; p++) {
		struct lines *ls = read_lines(paths[p]);

		for (i = 0; i < ls->n; i++) {
			const char *s;
			int t, k, end = 0;

			check_field_set(ls->v[i]);
			s = json_string_value(json_object_get(ls->v[i], "path"));
			assert_non_null(s);
			if (sscanf(s, "t%d/%d%n", &t, &k, &end) != 2 || s[end] || t < 0 ||
			    t >= THREADS || k < 0 || k >= RECORDS_PER_THREAD)
				fail_msg("unexpected path %s", s);
			if (seen[t][k])
				fail_msg("duplicate record %s", s);
			seen[t][k] = true;
		}
		total += ls->n;
		free_lines(ls);
	}
	assert_int_equal(total, THREADS * RECORDS_PER_THREAD);
}

static void run_workers(struct auditlog *a, struct worker *w)
{
	int i;

	__atomic_store_n(&workers_done, 0, __ATOMIC_RELAXED);
	for (i = 0; i < THREADS; i++) {
		w[i].a = a;
		w[i].id = i;
		assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
	}
}

static void join_workers(struct worker *w)
{
	int i;

	for (i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(w[i].thread, NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
}

static void test_concurrent_writers(void **state)
{
	struct fx *f = *state;
	struct worker w[THREADS] = { 0 };
	struct auditlog_stats st;
	char paths[1][160];

	open_ok(f, f->path);
	run_workers(f->a, w);
	join_workers(w);
	snprintf(paths[0], sizeof(paths[0]), "%s", f->path);
	check_all_records(paths, 1);
	auditlog_get_stats(f->a, &st);
	assert_int_equal(st.records, THREADS * RECORDS_PER_THREAD);
	assert_int_equal(st.write_errors, 0);
}

/*
 * Reopens back to back while eight threads write, with a logrotate-style rename
 * now and then: no record lost, none split, none doubled, no write to a
 * closed descriptor.
 */
static void test_reopen_under_load(void **state)
{
	struct fx *f = *state;
	struct worker w[THREADS] = { 0 };
	struct auditlog_stats st;
	char paths[ROTATIONS + 1][160], err[256];
	unsigned reopens = 0, rotations = 0;

	open_ok(f, f->path);
	run_workers(f->a, w);
	while (__atomic_load_n(&workers_done, __ATOMIC_ACQUIRE) < THREADS ||
	       rotations < ROTATIONS) {
		if (reopens % 64 == 0 && rotations < ROTATIONS) {
			rotations++;
			snprintf(paths[rotations], sizeof(paths[rotations]), "%s.%u", f->path,
				 rotations);
			assert_int_equal(rename(f->path, paths[rotations]), 0);
		}
		if (auditlog_reopen(f->a, err, sizeof(err)) != 0)
			fail_msg("reopen: %s", err);
		reopens++;
	}
	join_workers(w);
	snprintf(paths[0], sizeof(paths[0]), "%s", f->path);
	check_all_records(paths, ARRAY_SIZE(paths));
	auditlog_get_stats(f->a, &st);
	assert_int_equal(st.records, THREADS * RECORDS_PER_THREAD);
	assert_int_equal(st.write_errors, 0);
}

/* A reload names a new file: records go there from then on, the old file keeps its own. */
static void test_retarget_file_to_file(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	char other[160], err[256] = "";
	struct lines *ls;

	snprintf(other, sizeof(other), "%s/other.log", f->dir);
	open_ok(f, f->path);
	r.path = "before";
	write_ok(f->a, &r);
	if (auditlog_retarget(f->a, other, err, sizeof(err)) != 0)
		fail_msg("retarget: %s", err);
	r.path = "after";
	write_ok(f->a, &r);

	ls = read_lines(f->path);
	assert_int_equal(ls->n, 1);
	check_str(ls->v[0], "path", "before");
	free_lines(ls);
	ls = read_lines(other);
	assert_int_equal(ls->n, 1);
	check_str(ls->v[0], "path", "after");
	free_lines(ls);
	assert_int_equal(file_mode(other), 0600);
}

/* The same target is a reopen, so logrotate's SIGHUP works through a reload too. */
static void test_retarget_same_path_reopens(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	char rotated[160], err[256] = "";
	struct lines *ls;

	snprintf(rotated, sizeof(rotated), "%s.1", f->path);
	open_ok(f, f->path);
	assert_int_equal(rename(f->path, rotated), 0);
	if (auditlog_retarget(f->a, f->path, err, sizeof(err)) != 0)
		fail_msg("retarget: %s", err);
	r.path = "after";
	write_ok(f->a, &r);
	ls = read_lines(f->path);
	assert_int_equal(ls->n, 1);
	free_lines(ls);
	ls = read_lines(rotated);
	assert_int_equal(ls->n, 0);
	free_lines(ls);
}

/* A new file that cannot be opened leaves the log where it was. */
static void test_retarget_failure_keeps_old(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	char missing[160], err[256] = "";
	struct lines *ls;

	snprintf(missing, sizeof(missing), "%s/no-such-dir/audit.log", f->dir);
	open_ok(f, f->path);
	assert_true(auditlog_retarget(f->a, missing, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, missing));
	write_ok(f->a, &r);
	ls = read_lines(f->path);
	assert_int_equal(ls->n, 1);
	free_lines(ls);
}

/* File to syslog and back; stderr either way and relative paths are refused. */
static void test_retarget_kinds(void **state)
{
	struct fx *f = *state;
	struct auditlog_record r = base_record();
	struct auditlog *e = NULL;
	char other[160], err[256] = "";
	struct lines *ls;

	snprintf(other, sizeof(other), "%s/other.log", f->dir);
	open_ok(f, f->path);
	assert_int_equal(auditlog_retarget(f->a, "syslog", err, sizeof(err)), 0);
	r.path = "test_auditlog/retarget-syslog";
	write_ok(f->a, &r);
	if (auditlog_retarget(f->a, other, err, sizeof(err)) != 0)
		fail_msg("retarget: %s", err);
	write_ok(f->a, &r);
	ls = read_lines(f->path);
	assert_int_equal(ls->n, 0); /* the syslog record went to syslog */
	free_lines(ls);
	ls = read_lines(other);
	assert_int_equal(ls->n, 1);
	free_lines(ls);

	assert_int_equal(auditlog_retarget(f->a, "stderr", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "restart"));
	assert_int_equal(auditlog_retarget(f->a, "relative.log", err, sizeof(err)), -EINVAL);
	assert_int_equal(auditlog_open("stderr", &e, err, sizeof(err)), 0);
	assert_int_equal(auditlog_retarget(e, other, err, sizeof(err)), -EINVAL);
	assert_int_equal(auditlog_retarget(e, "stderr", err, sizeof(err)), 0);
	auditlog_close(e);
}

/* Eight writers while the target flips between two files: each record exactly once. */
static void test_retarget_under_load(void **state)
{
	struct fx *f = *state;
	struct worker w[THREADS] = { 0 };
	struct auditlog_stats st;
	char paths[2][160], err[256];
	unsigned flips = 0;

	snprintf(paths[0], sizeof(paths[0]), "%s", f->path);
	snprintf(paths[1], sizeof(paths[1]), "%s/other.log", f->dir);
	open_ok(f, f->path);
	run_workers(f->a, w);
	while (__atomic_load_n(&workers_done, __ATOMIC_ACQUIRE) < THREADS || flips < 16) {
		flips++;
		if (auditlog_retarget(f->a, paths[flips % 2], err, sizeof(err)) != 0)
			fail_msg("retarget: %s", err);
	}
	join_workers(w);
	check_all_records(paths, ARRAY_SIZE(paths));
	auditlog_get_stats(f->a, &st);
	assert_int_equal(st.records, THREADS * RECORDS_PER_THREAD);
	assert_int_equal(st.write_errors, 0);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fields_permit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fields_deny_nulls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_version_errno_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_on_creation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_after_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_failure_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_non_regular, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_errors_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syslog_smoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_under_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retarget_file_to_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retarget_same_path_reopens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retarget_failure_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retarget_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retarget_under_load, setup, teardown),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
