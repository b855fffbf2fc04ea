/*
 * test_config.c - config_set() for every key with good and bad values, and
 * config_load() on files written here: a full file, comments, and every kind
 * of error, each of which must name the file, the line and the key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "secretfs/config.h"
#include "secretfs/util.h"

#define SEC USEC_PER_SEC
#define MIB (1024 * 1024)

/* The numeric and boolean settings by option name, so tables can name a key. */
static uint64_t num_of(const struct config *c, const char *key)
{
	static const struct {
		const char *key;
		size_t offset;
		size_t size;
	} fields[] = {
		{ "ttl", offsetof(struct config, ttl_usec), sizeof(uint64_t) },
		{ "stale_ttl", offsetof(struct config, stale_ttl_usec), sizeof(uint64_t) },
		{ "negative_ttl", offsetof(struct config, negative_ttl_usec), sizeof(uint64_t) },
		{ "attr_timeout", offsetof(struct config, attr_timeout_usec), sizeof(uint64_t) },
		{ "fetch_timeout", offsetof(struct config, fetch_timeout_usec), sizeof(uint64_t) },
		{ "cache_max_entries", offsetof(struct config, cache_max_entries), sizeof(size_t) },
		{ "cache_max_bytes", offsetof(struct config, cache_max_bytes), sizeof(size_t) },
		{ "foreground", offsetof(struct config, foreground), sizeof(bool) },
		{ "debug", offsetof(struct config, debug), sizeof(bool) },
		{ "show_meta", offsetof(struct config, show_meta), sizeof(bool) },
	};
	const char *p = (const char *)c;

	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		if (strcmp(fields[i].key, key) != 0)
			continue;
		if (fields[i].size == sizeof(bool))
			return *(const bool *)(p + fields[i].offset);
		if (fields[i].size == sizeof(uint64_t))
			return *(const uint64_t *)(p + fields[i].offset);
		return *(const size_t *)(p + fields[i].offset);
	}
	fail_msg("no numeric field for key %s", key);
	return 0;
}

static const char *str_of(const struct config *c, const char *key)
{
	if (strcmp(key, "source") == 0)
		return c->source;
	if (strcmp(key, "mountpoint") == 0)
		return c->mountpoint;
	if (strcmp(key, "fuse_options") == 0)
		return c->fuse_options;
	if (strcmp(key, "meta_dir") == 0)
		return c->meta_dir;
	if (strcmp(key, "view_env_case") == 0)
		return c->view_env_case;
	return NULL;
}

static bool is_string_key(const char *key)
{
	return strcmp(key, "source") == 0 || strcmp(key, "mountpoint") == 0 ||
	       strcmp(key, "fuse_options") == 0 || strcmp(key, "meta_dir") == 0 ||
	       strcmp(key, "view_env_case") == 0;
}

static void assert_defaults(const struct config *c)
{
	assert_null(c->source);
	assert_null(c->mountpoint);
	assert_null(c->fuse_options);
	assert_false(c->foreground);
	assert_false(c->debug);
	assert_true(c->ttl_usec == 300 * SEC);
	assert_true(c->stale_ttl_usec == 24 * 3600 * SEC);
	assert_true(c->negative_ttl_usec == 30 * SEC);
	assert_true(c->attr_timeout_usec == 1 * SEC);
	assert_true(c->fetch_timeout_usec == 5 * SEC);
	assert_int_equal(c->cache_max_entries, 10000);
	assert_int_equal(c->cache_max_bytes, 4 * MIB);
}

static void test_defaults(void **state)
{
	struct config c;

	config_init(&c);
	assert_defaults(&c);
	config_done(&c);
	config_done(&c); /* a second call is harmless */
}

struct set_case {
	const char *key;
	const char *value;
	int r;
	uint64_t num;	 /* expected for numeric and boolean keys */
	const char *str; /* expected for string keys */
	const char *why; /* expected in the error text when r == -EINVAL */
};

static const struct set_case set_cases[] = {
	{ "ttl", "5m", 0, 300 * SEC, NULL, NULL },
	{ "ttl", "300", 0, 300 * SEC, NULL, NULL },
	{ "ttl", "1.5s", 0, 1500 * 1000, NULL, NULL },
	{ "ttl", "250ms", 0, 250 * 1000, NULL, NULL },
	{ "ttl", "0", 0, 0, NULL, NULL },
	{ "ttl", "abc", -EINVAL, 0, NULL, "expected a duration like 30s, 5m, 1h, got 'abc'" },
	{ "ttl", "", -EINVAL, 0, NULL, "empty value" },
	{ "ttl", "-1s", -EINVAL, 0, NULL, "expected a duration" },
	{ "ttl", "5 m", -EINVAL, 0, NULL, "expected a duration" },
	{ "ttl", " 5m", -EINVAL, 0, NULL, "expected a duration" },
	{ "stale_ttl", "24h", 0, 24 * 3600 * SEC, NULL, NULL },
	{ "stale_ttl", "7d", 0, 7 * 24 * 3600 * SEC, NULL, NULL },
	{ "stale_ttl", "0", 0, 0, NULL, NULL },
	{ "stale_ttl", "forever", -EINVAL, 0, NULL, "expected a duration" },
	{ "negative_ttl", "30s", 0, 30 * SEC, NULL, NULL },
	{ "negative_ttl", "0s", 0, 0, NULL, NULL },
	{ "negative_ttl", "30x", -EINVAL, 0, NULL, "expected a duration" },
	{ "attr_timeout", "1s", 0, 1 * SEC, NULL, NULL },
	{ "attr_timeout", "0", 0, 0, NULL, NULL },
	{ "attr_timeout", "1h", 0, 3600 * SEC, NULL, NULL },
	{ "attr_timeout", "60m", 0, 3600 * SEC, NULL, NULL },
	{ "attr_timeout", "3601", -EINVAL, 0, NULL, "must be at most 1h, got '3601'" },
	{ "attr_timeout", "2h", -EINVAL, 0, NULL, "must be at most 1h" },
	{ "attr_timeout", "1d", -EINVAL, 0, NULL, "must be at most 1h" },
	{ "attr_timeout", "soon", -EINVAL, 0, NULL, "expected a duration" },
	{ "fetch_timeout", "5s", 0, 5 * SEC, NULL, NULL },
	{ "fetch_timeout", "100ms", 0, 100 * 1000, NULL, NULL },
	{ "fetch_timeout", "1us", 0, 1, NULL, NULL },
	{ "fetch_timeout", "0", -EINVAL, 0, NULL, "must be more than 0" },
	{ "fetch_timeout", "0ms", -EINVAL, 0, NULL, "must be more than 0" },
	{ "fetch_timeout", "5sec", -EINVAL, 0, NULL, "expected a duration" },
	{ "cache_max_entries", "10000", 0, 10000, NULL, NULL },
	{ "cache_max_entries", "1", 0, 1, NULL, NULL },
	{ "cache_max_entries", "0", -EINVAL, 0, NULL, "must be at least 1" },
	{ "cache_max_entries", "10k", -EINVAL, 0, NULL, "expected a whole number" },
	{ "cache_max_entries", "-5", -EINVAL, 0, NULL, "expected a whole number" },
	{ "cache_max_entries", "1.5", -EINVAL, 0, NULL, "expected a whole number" },
	{ "cache_max_entries", "99999999999999999999999", -EINVAL, 0, NULL,
	  "expected a whole number" },
	{ "cache_max_bytes", "16M", 0, 16 * MIB, NULL, NULL },
	{ "cache_max_bytes", "16MiB", 0, 16 * MIB, NULL, NULL },
	{ "cache_max_bytes", "64k", 0, 64 * 1024, NULL, NULL },
	{ "cache_max_bytes", "1G", 0, 1024 * MIB, NULL, NULL },
	{ "cache_max_bytes", "4096", 0, 4096, NULL, NULL },
	{ "cache_max_bytes", "4K", 0, 4096, NULL, NULL },
	{ "cache_max_bytes", "4095", -EINVAL, 0, NULL, "must be at least 4096 (4K), got '4095'" },
	{ "cache_max_bytes", "1K", -EINVAL, 0, NULL, "must be at least 4096" },
	{ "cache_max_bytes", "0", -EINVAL, 0, NULL, "must be at least 4096" },
	{ "cache_max_bytes", "abc", -EINVAL, 0, NULL, "expected a size in bytes" },
	{ "cache_max_bytes", "16Q", -EINVAL, 0, NULL, "expected a size in bytes" },
	{ "foreground", "yes", 0, 1, NULL, NULL },
	{ "foreground", "TRUE", 0, 1, NULL, NULL },
	{ "foreground", "on", 0, 1, NULL, NULL },
	{ "foreground", "no", 0, 0, NULL, NULL },
	{ "foreground", "maybe", -EINVAL, 0, NULL, "expected yes/no, true/false, on/off or 1/0" },
	{ "debug", "1", 0, 1, NULL, NULL },
	{ "debug", "off", 0, 0, NULL, NULL },
	{ "debug", "2", -EINVAL, 0, NULL, "got '2'" },
	{ "debug", "", -EINVAL, 0, NULL, "empty value" },
	{ "source", "file:/etc/secretfs/store.json", 0, 0, "file:/etc/secretfs/store.json", NULL },
	{ "source", "aws-sm:eu-west-1", 0, 0, "aws-sm:eu-west-1", NULL },
	{ "source", "1password:https://connect:8080", 0, 0, "1password:https://connect:8080",
	  NULL },
	{ "source", "vault:", 0, 0, "vault:", NULL },
	{ "source", "/etc/secretfs/store.json", -EINVAL, 0, NULL, "expected SCHEME:REST" },
	{ "source", "File:/x", -EINVAL, 0, NULL, "expected SCHEME:REST" },
	{ "source", ":/x", -EINVAL, 0, NULL, "expected SCHEME:REST" },
	{ "source", "fi le:/x", -EINVAL, 0, NULL, "expected SCHEME:REST" },
	{ "source", "file_x:/x", -EINVAL, 0, NULL, "expected SCHEME:REST" },
	{ "source", "", -EINVAL, 0, NULL, "empty value" },
	{ "mountpoint", "/secrets", 0, 0, "/secrets", NULL },
	{ "mountpoint", "", -EINVAL, 0, NULL, "empty value" },
	{ "fuse_options", "allow_root,max_threads=4", 0, 0, "allow_root,max_threads=4", NULL },
	{ "fuse_options", "allow_root", 0, 0, "allow_root", NULL },
	{ "fuse_options", "a,,b", -EINVAL, 0, NULL, "expected comma separated FUSE options" },
	{ "fuse_options", ",a", -EINVAL, 0, NULL, "expected comma separated FUSE options" },
	{ "fuse_options", "a,", -EINVAL, 0, NULL, "expected comma separated FUSE options" },
	{ "fuse_options", "a, b", -EINVAL, 0, NULL, "expected comma separated FUSE options" },
	{ "fuse_options", "", -EINVAL, 0, NULL, "empty value" },
	/* The meta directory: one file name. */
	{ "meta_dir", ".secretfs", 0, 0, ".secretfs", NULL },
	{ "meta_dir", "_meta", 0, 0, "_meta", NULL },
	{ "meta_dir", "...", 0, 0, "...", NULL },
	{ "meta_dir", "a/b", -EINVAL, 0, NULL, "expected one file name" },
	{ "meta_dir", "/meta", -EINVAL, 0, NULL, "expected one file name" },
	{ "meta_dir", ".", -EINVAL, 0, NULL, "expected one file name" },
	{ "meta_dir", "..", -EINVAL, 0, NULL, "expected one file name" },
	{ "meta_dir", "", -EINVAL, 0, NULL, "empty value" },
	{ "show_meta", "yes", 0, 1, NULL, NULL },
	{ "show_meta", "perhaps", -EINVAL, 0, NULL, "expected yes/no" },
	{ "view_env_case", "upper", 0, 0, "upper", NULL },
	{ "view_env_case", "keep", 0, 0, "keep", NULL },
	{ "view_env_case", "UPPER", -EINVAL, 0, NULL, "keep|upper" },
	{ "view_env_case", "lower", -EINVAL, 0, NULL, "keep|upper" },
	/* File-only spellings and near misses are not option names. */
	{ "max_entries", "10", -ENOENT, 0, NULL, NULL },
	{ "max_bytes", "16M", -ENOENT, 0, NULL, NULL },
	{ "cache_ttl", "5m", -ENOENT, 0, NULL, NULL },
	{ "TTL", "5m", -ENOENT, 0, NULL, NULL },
	{ "", "5m", -ENOENT, 0, NULL, NULL },
	{ "nosuchkey", "x", -ENOENT, 0, NULL, NULL },
};

static void test_set_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(set_cases); i++) {
		const struct set_case *t = &set_cases[i];
		struct config c, def;
		char err[CONFIG_ERR_MAX] = "";
		int r;

		config_init(&c);
		config_init(&def);
		r = config_set(&c, t->key, t->value, err, sizeof(err));
		if (r != t->r)
			fail_msg("%s=%s: returned %d, expected %d (%s)", t->key, t->value, r, t->r,
				 err);
		if (r == 0 && is_string_key(t->key)) {
			const char *s = str_of(&c, t->key);

			if (!s || strcmp(s, t->str) != 0)
				fail_msg("%s=%s: stored '%s'", t->key, t->value, s ? s : "(null)");
		} else if (r == 0) {
			if (num_of(&c, t->key) != t->num)
				fail_msg("%s=%s: stored %llu, expected %llu", t->key, t->value,
					 (unsigned long long)num_of(&c, t->key),
					 (unsigned long long)t->num);
		} else if (r == -EINVAL) {
			if (!strstr(err, t->why))
				fail_msg("%s=%s: error '%s' lacks '%s'", t->key, t->value, err,
					 t->why);
			/* A rejected value leaves the setting as it was. */
			if (is_string_key(t->key))
				assert_null(str_of(&c, t->key));
			else
				assert_true(num_of(&c, t->key) == num_of(&def, t->key));
		}
		config_done(&c);
	}
}

static void test_set_strings(void **state)
{
	struct config c;
	char err[CONFIG_ERR_MAX];

	config_init(&c);
	assert_int_equal(config_set(&c, "source", "file:/a.json", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "source", "file:/b.json", err, sizeof(err)), 0);
	assert_string_equal(c.source, "file:/b.json");
	/* A bad value keeps the previous one. */
	assert_int_equal(config_set(&c, "source", "nope", err, sizeof(err)), -EINVAL);
	assert_string_equal(c.source, "file:/b.json");
	/* The value is copied, not referenced. */
	{
		char buf[] = "/mnt/x";

		assert_int_equal(config_set(&c, "mountpoint", buf, err, sizeof(err)), 0);
		buf[1] = 'X';
		assert_string_equal(c.mountpoint, "/mnt/x");
	}
	config_done(&c);
	assert_null(c.source);
	assert_null(c.mountpoint);
}

static void test_set_error_buffer(void **state)
{
	struct config c;
	char small[8];

	config_init(&c);
	/* No buffer, and a buffer too small for the reason: still the right result. */
	assert_int_equal(config_set(&c, "ttl", "abc", NULL, 0), -EINVAL);
	assert_int_equal(config_set(&c, "ttl", "abc", small, sizeof(small)), -EINVAL);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(config_set(&c, "nosuchkey", "1", NULL, 0), -ENOENT);
	/* Values that would mess up a terminal are not echoed. */
	assert_int_equal(config_set(&c, "ttl", "\033[31m", small, sizeof(small)), -EINVAL);
	{
		char err[CONFIG_ERR_MAX];

		assert_int_equal(config_set(&c, "ttl", "\033[2J", err, sizeof(err)), -EINVAL);
		assert_null(strchr(err, '\033'));
	}
	config_done(&c);
}

/* Writes @text to a new file under /tmp; the caller unlinks @path. */
static void write_tmp(const char *text, size_t len, char *path, size_t pathlen)
{
	int fd;

	assert_true(pathlen > sizeof("/tmp/secretfs-test-config-XXXXXX"));
	memcpy(path, "/tmp/secretfs-test-config-XXXXXX",
	       sizeof("/tmp/secretfs-test-config-XXXXXX"));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Loads @text as a config file into @c; @path gets the file name it had. */
static int load_text(struct config *c, const char *text, char *path, size_t pathlen, char *err,
		     size_t errlen)
{
	int r;

	write_tmp(text, strlen(text), path, pathlen);
	r = config_load(c, path, err, errlen);
	unlink(path);
	return r;
}

static void test_load_full(void **state)
{
	static const char text[] = "# secretfs test config\n"
				   "[secretfs]\n"
				   "source = file:/etc/secretfs/store.json\n"
				   "mountpoint = /secrets\n"
				   "foreground = yes\n"
				   "debug = on\n"
				   "fuse_options = allow_root,max_threads=4\n"
				   "\n"
				   "[cache]\n"
				   "ttl = 5m\n"
				   "stale_ttl = 12h\n"
				   "negative_ttl = 10s\n"
				   "attr_timeout = 500ms\n"
				   "fetch_timeout = 2s\n"
				   "max_entries = 500\n"
				   "max_bytes = 1M\n";
	struct config c;
	char path[64], err[CONFIG_ERR_MAX] = "";

	config_init(&c);
	if (load_text(&c, text, path, sizeof(path), err, sizeof(err)) != 0)
		fail_msg("load failed: %s", err);
	assert_string_equal(c.source, "file:/etc/secretfs/store.json");
	assert_string_equal(c.mountpoint, "/secrets");
	assert_string_equal(c.fuse_options, "allow_root,max_threads=4");
	assert_true(c.foreground);
	assert_true(c.debug);
	assert_true(c.ttl_usec == 300 * SEC);
	assert_true(c.stale_ttl_usec == 12 * 3600 * SEC);
	assert_true(c.negative_ttl_usec == 10 * SEC);
	assert_true(c.attr_timeout_usec == 500 * 1000);
	assert_true(c.fetch_timeout_usec == 2 * SEC);
	assert_int_equal(c.cache_max_entries, 500);
	assert_int_equal(c.cache_max_bytes, 1 * MIB);
	config_done(&c);
}

static void test_load_comments(void **state)
{
	static const char text[] = "# a comment with #\n"
				   "; a comment with ;\n"
				   "   # an indented comment\n"
				   "\n"
				   "[secretfs]   ; the main section\n"
				   "# source = file:/commented/out.json\n"
				   "source = file:/etc/secretfs/store.json   ; inline comment\n"
				   "fuse_options = allow_root,max_threads=4 ; extra -o options\n"
				   "[cache]\r\n"
				   "ttl = 1m\r\n"
				   "; ttl = 2m\n";
	struct config c;
	char path[64], err[CONFIG_ERR_MAX] = "";

	config_init(&c);
	if (load_text(&c, text, path, sizeof(path), err, sizeof(err)) != 0)
		fail_msg("load failed: %s", err);
	assert_string_equal(c.source, "file:/etc/secretfs/store.json");
	assert_string_equal(c.fuse_options, "allow_root,max_threads=4");
	assert_true(c.ttl_usec == 60 * SEC);
	config_done(&c);
}

static void test_load_empty_and_bom(void **state)
{
	struct config c;
	char path[64], err[CONFIG_ERR_MAX] = "";

	config_init(&c);
	assert_int_equal(load_text(&c, "", path, sizeof(path), err, sizeof(err)), 0);
	assert_int_equal(
		load_text(&c, "# only comments\n\n[cache]\n", path, sizeof(path), err, sizeof(err)),
		0);
	assert_defaults(&c);
	if (load_text(&c, "\xEF\xBB\xBF[secretfs]\ndebug = yes", path, sizeof(path), err,
		      sizeof(err)) != 0)
		fail_msg("load failed: %s", err);
	assert_true(c.debug);
	config_done(&c);
}

/* The [views] section spells its keys as the file does. */
static void test_load_views_section(void **state)
{
	struct config c;
	char path[256], err[CONFIG_ERR_MAX] = "";

	config_init(&c);
	if (load_text(&c, "[views]\nmeta_dir = _m\nshow_meta = yes\nenv_case = upper\n", path,
		      sizeof(path), err, sizeof(err)) != 0)
		fail_msg("load failed: %s", err);
	assert_string_equal(c.meta_dir, "_m");
	assert_true(c.show_meta);
	assert_string_equal(c.view_env_case, "upper");
	config_done(&c);
	config_init(&c);
	assert_int_equal(
		load_text(&c, "[views]\nmeta_dir = a/b\n", path, sizeof(path), err, sizeof(err)),
		-EINVAL);
	if (!strstr(err, ":2: [views] key 'meta_dir': expected one file name"))
		fail_msg("error: %s", err);
	config_done(&c);
}

struct load_case {
	const char *text;
	unsigned line;
	const char *key; /* NULL when the error is not about a key */
	const char *why;
};

static const struct load_case load_cases[] = {
	/* Unknown key, section, and keys in the wrong place. */
	{ "[secretfs]\nsource = file:/x\n\nsourse = file:/y\n", 4, "sourse",
	  "unknown key, [secretfs] has: source, mountpoint" },
	{ "[cache]\nttl = 5m\nmax_entires = 5\n", 3, "max_entires", "unknown key" },
	{ "[cache]\ncache_max_entries = 5\n", 2, "cache_max_entries", "unknown key" },
	{ "[secretfs]\nttl = 5m\n", 2, "ttl", "unknown key" },
	{ "[cache]\nsource = file:/x\n", 2, "source", "unknown key" },
	{ "[secretfs]\ndebug = no\n[cach]\nttl = 5m\n", 4, "ttl", "unknown section [cach]" },
	{ "[Cache]\nttl = 5m\n", 2, "ttl", "unknown section [Cache]" },
	{ "ttl = 5m\n", 1, "ttl", "outside of any section" },
	/* Twice. */
	{ "[cache]\nttl = 5m\nstale_ttl = 1h\nttl = 10m\n", 4, "ttl",
	  "given twice, first on line 2" },
	{ "[cache]\nttl = 5m\n[secretfs]\ndebug = no\n[cache]\nttl = 5m\n", 6, "ttl",
	  "given twice, first on line 2" },
	{ "[secretfs]\ndebug = no\n  foreground = yes\n", 3, "debug", "indented line" },
	/* Empty and bad values. */
	{ "[secretfs]\nmountpoint =\n", 2, "mountpoint", "empty value" },
	{ "[secretfs]\nsource = ; nothing\n", 2, "source", "empty value" },
	{ "[cache]\n# c\nnegative_ttl = soon\n", 3, "negative_ttl",
	  "expected a duration like 30s, 5m, 1h, got 'soon'" },
	{ "[cache]\nttl = 5m # five minutes\n", 2, "ttl", "use ' ;' after a value" },
	{ "[cache]\nstale_ttl = abc\n", 2, "stale_ttl", "expected a duration" },
	{ "[cache]\nattr_timeout = 2h\n", 2, "attr_timeout", "must be at most 1h" },
	{ "[cache]\nfetch_timeout = 0\n", 2, "fetch_timeout", "must be more than 0" },
	{ "[cache]\nmax_entries = 0\n", 2, "max_entries", "must be at least 1" },
	{ "[cache]\nmax_entries = many\n", 2, "max_entries", "expected a whole number" },
	{ "[cache]\nmax_bytes = 1K\n", 2, "max_bytes", "must be at least 4096" },
	{ "[cache]\nmax_bytes = lots\n", 2, "max_bytes", "expected a size in bytes" },
	{ "[secretfs]\nforeground = sometimes\n", 2, "foreground", "expected yes/no" },
	{ "[secretfs]\ndebug = 2\n", 2, "debug", "expected yes/no" },
	{ "[secretfs]\nsource = /etc/secretfs/store.json\n", 2, "source", "expected SCHEME:REST" },
	{ "[secretfs]\nsource = \"file:/x\"\n", 2, "source", "values are not quoted" },
	{ "[secretfs]\nfuse_options = allow_root,,ro\n", 2, "fuse_options",
	  "expected comma separated FUSE options" },
	/* [template NAME] sections. */
	{ "[template app-env]\nfile = etc/x.tmpl\npath = a\n", 2, "file",
	  "expected an absolute path" },
	{ "[template app-env]\nfile = /x\nformat = toml\n", 3, "format",
	  "expected one of raw|env|shell|json|yaml|properties|ini, got 'toml'" },
	{ "[template app-env]\nfile = /x\naccess = everyone\n", 3, "access",
	  "expected references" },
	{ "[template app-env]\nfile = /x\nmissing = ignore\n", 3, "missing",
	  "expected error, the default, or empty" },
	{ "[template app-env]\nfile = /x\nfile = /y\n", 3, "file", "given twice" },
	{ "[template app-env]\nfile = /x\nmode = 0400\n", 3, "mode",
	  "unknown key, [template NAME] has: file, path, format" },
	{ "[template a b]\nfile = /x\n", 2, NULL, "a template's name is 1 to 64" },
	{ "[template ]\nfile = /x\n", 2, NULL, "a template's name" },
	{ "[template app-env]\nfile = /x\n", 2, NULL, "[template app-env]: no 'path' given" },
	{ "[secretfs]\ndebug = no\n[template t]\npath = a/b\n", 4, NULL,
	  "[template t]: no 'file' given" },
	/* Syntax errors, and the first error wins whichever kind it is. */
	{ "[secretfs]\ndebug = no\njust some words\n", 3, NULL, "syntax error" },
	{ "[secretfs\ndebug = no\n", 1, NULL, "syntax error" },
	{ "[cache]\nnonsense\nttl = x\n", 2, NULL, "syntax error" },
	{ "[cache]\nttl = x\nnonsense\n", 2, "ttl", "expected a duration" },
	{ "[cache]\nttl = x\nbogus = 1\n", 2, "ttl", "expected a duration" },
};

static void check_error(const char *path, const char *err, unsigned line, const char *key,
			const char *why)
{
	char prefix[128], quoted[128];

	if (line)
		snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("error '%s' does not start with '%s'", err, prefix);
	if (key) {
		snprintf(quoted, sizeof(quoted), "key '%s'", key);
		if (!strstr(err, quoted))
			fail_msg("error '%s' does not name %s", err, quoted);
	}
	if (!strstr(err, why))
		fail_msg("error '%s' lacks '%s'", err, why);
}

static void test_load_errors(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(load_cases); i++) {
		const struct load_case *t = &load_cases[i];
		struct config c;
		char path[64], err[CONFIG_ERR_MAX] = "";
		int r;

		config_init(&c);
		r = load_text(&c, t->text, path, sizeof(path), err, sizeof(err));
		if (r != -EINVAL)
			fail_msg("case %zu: returned %d, expected -EINVAL (%s)", i, r, err);
		check_error(path, err, t->line, t->key, t->why);
		/* Nothing from a bad file is applied. */
		assert_defaults(&c);
		config_done(&c);
	}
}

static void test_load_atomic(void **state)
{
	struct config c;
	char path[64], err[CONFIG_ERR_MAX] = "";

	config_init(&c);
	assert_int_equal(config_set(&c, "source", "file:/kept.json", err, sizeof(err)), 0);
	assert_int_equal(load_text(&c,
				   "[secretfs]\nsource = file:/other.json\nmountpoint = /m\n"
				   "[cache]\nttl = 1s\nmax_bytes = 1\n",
				   path, sizeof(path), err, sizeof(err)),
			 -EINVAL);
	check_error(path, err, 6, "max_bytes", "must be at least 4096");
	assert_string_equal(c.source, "file:/kept.json");
	assert_null(c.mountpoint);
	assert_true(c.ttl_usec == 300 * SEC);
	config_done(&c);
}

/* Defaults, then the file, then the command line: each keeps what the next leaves alone. */
static void test_precedence(void **state)
{
	struct config c;
	char path[64], err[CONFIG_ERR_MAX] = "";

	config_init(&c);
	assert_int_equal(load_text(&c,
				   "[secretfs]\nsource = file:/file.json\n[cache]\nttl = 5m\n"
				   "negative_ttl = 1m\n",
				   path, sizeof(path), err, sizeof(err)),
			 0);
	assert_int_equal(config_set(&c, "ttl", "1m", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "source", "vault:https://vault:8200", err, sizeof(err)), 0);
	assert_true(c.ttl_usec == 60 * SEC);
	assert_true(c.negative_ttl_usec == 60 * SEC);
	assert_true(c.stale_ttl_usec == 24 * 3600 * SEC);
	assert_string_equal(c.source, "vault:https://vault:8200");
	config_done(&c);
}

static void test_load_long_lines(void **state)
{
	char text[1024], source[160], path[64], err[CONFIG_ERR_MAX] = "";
	struct config c;

	/* A long but acceptable line. */
	memset(source, 'a', sizeof(source) - 1);
	source[sizeof(source) - 1] = '\0';
	memcpy(source, "file:/", 6);
	snprintf(text, sizeof(text), "[secretfs]\nsource = %s\ndebug = yes\n", source);
	config_init(&c);
	if (load_text(&c, text, path, sizeof(path), err, sizeof(err)) != 0)
		fail_msg("load failed: %s", err);
	assert_string_equal(c.source, source);
	config_done(&c);

	/* Too long for inih: an error on its line, never a silently cut value. */
	snprintf(text, sizeof(text), "[secretfs]\nmountpoint = /m\nsource = file:/%0600d\n", 0);
	config_init(&c);
	assert_int_equal(load_text(&c, text, path, sizeof(path), err, sizeof(err)), -EINVAL);
	check_error(path, err, 3, "source", "line too long (at most 198 characters)");
	assert_null(c.source);
	config_done(&c);

	/* A long comment is as much an error: inih would read its tail as a line. */
	snprintf(text, sizeof(text), "[secretfs]\n# see http://x/%0600d\ndebug = yes\n", 0);
	config_init(&c);
	assert_int_equal(load_text(&c, text, path, sizeof(path), err, sizeof(err)), -EINVAL);
	check_error(path, err, 2, NULL, "line too long");
	assert_null(strstr(err, "key '"));
	config_done(&c);

	/* The same at the end of a file without a final newline. */
	snprintf(text, sizeof(text), "[secretfs]\nsource = file:/%0600d", 0);
	config_init(&c);
	assert_int_equal(load_text(&c, text, path, sizeof(path), err, sizeof(err)), -EINVAL);
	check_error(path, err, 2, "source", "line too long");
	config_done(&c);
}

static void test_load_missing(void **state)
{
	static const char path[] = "/tmp/secretfs-test-config-does-not-exist.conf";
	struct config c;
	char err[CONFIG_ERR_MAX] = "";

	unlink(path);
	config_init(&c);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), -ENOENT);
	assert_string_equal(err,
			    "/tmp/secretfs-test-config-does-not-exist.conf: cannot open: No such "
			    "file or directory");
	assert_defaults(&c);
	config_done(&c);
}

static void test_load_directory(void **state)
{
	struct config c;
	char err[CONFIG_ERR_MAX] = "";

	config_init(&c);
	assert_int_equal(config_load(&c, "/tmp", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "/tmp: not a regular file (a directory)");
	config_done(&c);
}

/* examples/vault.conf stays loadable and says what it documents. */
static void test_example_vault_file(void **state)
{
	const char *dir = getenv("SECRETFS_TESTDATA");
	char path[4096], err[CONFIG_ERR_MAX] = "";
	struct config c;

	if (!dir) {
		print_message("skipped: SECRETFS_TESTDATA is not set (make check-unit sets it)\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/../../examples/vault.conf", dir);
	config_init(&c);
	if (config_load(&c, path, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.source, "vault:https://vault.example.com:8200/secret");
	assert_string_equal(c.vault_auth, "approle");
	assert_string_equal(c.vault_kv_version, "auto");
	assert_string_equal(c.http_ca_file, "/etc/secretfs/vault-ca.pem");
	assert_int_equal(c.http_max_body, 1024 * 1024);
	assert_int_equal(c.http_max_attempts, 4);
	assert_false(c.http_insecure);
	config_done(&c);
}

/* examples/aws.conf stays loadable. */
static void test_example_aws_file(void **state)
{
	const char *dir = getenv("SECRETFS_TESTDATA");
	char path[4096], err[CONFIG_ERR_MAX] = "";
	struct config c;

	if (!dir) {
		print_message("skipped: SECRETFS_TESTDATA is not set (make check-unit sets it)\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/../../examples/aws.conf", dir);
	config_init(&c);
	if (config_load(&c, path, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_non_null(c.source);
	assert_int_equal(strncmp(c.source, "aws-", 4), 0);
	config_done(&c);
}

static void test_choice_values(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	struct config c;

	config_init(&c);
	assert_int_equal(config_set(&c, "vault_auth", "approle", err, sizeof(err)), 0);
	assert_string_equal(c.vault_auth, "approle");
	assert_int_equal(config_set(&c, "vault_auth", "ldap", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "token|approle|kubernetes"));
	assert_string_equal(c.vault_auth, "approle");
	assert_int_equal(config_set(&c, "vault_kv_version", "2", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "vault_kv_version", "3", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_set(&c, "vault_kv_version", "", err, sizeof(err)), -EINVAL);
	config_done(&c);
}

static void test_example_file(void **state)
{
	const char *dir = getenv("SECRETFS_TESTDATA");
	char path[4096], err[CONFIG_ERR_MAX] = "";
	struct config c, def;

	if (!dir) {
		print_message("skipped: SECRETFS_TESTDATA is not set (make check-unit sets it)\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/../../examples/secretfs.conf", dir);
	config_init(&c);
	if (config_load(&c, path, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.source, "file:/etc/secretfs/store.json");
	assert_string_equal(c.mountpoint, "/secrets");
	/* The example documents the defaults; it must not drift from them. */
	config_init(&def);
	assert_null(c.fuse_options);
	assert_int_equal(c.foreground, def.foreground);
	assert_int_equal(c.debug, def.debug);
	assert_true(c.ttl_usec == def.ttl_usec);
	assert_true(c.stale_ttl_usec == def.stale_ttl_usec);
	assert_true(c.negative_ttl_usec == def.negative_ttl_usec);
	assert_true(c.attr_timeout_usec == def.attr_timeout_usec);
	assert_true(c.fetch_timeout_usec == def.fetch_timeout_usec);
	assert_int_equal(c.cache_max_entries, def.cache_max_entries);
	assert_int_equal(c.cache_max_bytes, def.cache_max_bytes);
	config_done(&c);
}

static void test_templates(void **state)
{
	const char *text = "[secretfs]\nsource = file:/s\n"
			   "[template app-env]\n"
			   "file   = /etc/secretfs/app.env.tmpl ; a comment\n"
			   "path   = app/app.env\n"
			   "format = env\n"
			   "access = template\n"
			   "missing = empty\n"
			   "delims = <% %>\n"
			   "[template other]\nfile = /t/o\npath = o\n";
	char path[64], err[CONFIG_ERR_MAX] = "", origin[80];
	struct config c, copy;
	const struct config_template *t;

	config_init(&c);
	if (load_text(&c, text, path, sizeof(path), err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(c.ntemplates, 2);
	t = &c.templates[0];
	assert_string_equal(t->name, "app-env");
	assert_string_equal(t->file, "/etc/secretfs/app.env.tmpl");
	assert_string_equal(t->path, "app/app.env");
	assert_string_equal(t->format, "env");
	assert_string_equal(t->delims, "<% %>");
	assert_true(t->access_whole);
	assert_true(t->missing_empty);
	snprintf(origin, sizeof(origin), "%s:4", path);
	assert_string_equal(t->origin, origin);
	t = &c.templates[1];
	assert_string_equal(t->name, "other");
	assert_null(t->format);
	assert_false(t->access_whole);
	assert_false(t->missing_empty);

	/* -o template=MOUNTPATH:FILE[:FORMAT], repeatable, after the file's. */
	assert_int_equal(config_set(&c, "template", "x/y.json:/t/y.tmpl:json", err, sizeof(err)),
			 0);
	assert_int_equal(config_set(&c, "template", "z:/t/z.tmpl", err, sizeof(err)), 0);
	assert_true(config_is_option("template"));
	assert_int_equal(c.ntemplates, 4);
	assert_string_equal(c.templates[2].path, "x/y.json");
	assert_string_equal(c.templates[2].file, "/t/y.tmpl");
	assert_string_equal(c.templates[2].format, "json");
	assert_string_equal(c.templates[2].origin, "-o template");
	assert_null(c.templates[3].format);
	assert_int_equal(config_set(&c, "template", "x.env:/t/x:toml", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "MOUNTPATH:FILE[:FORMAT]"));
	assert_int_equal(config_set(&c, "template", "x.env:rel/x", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_set(&c, "template", ":/t/x", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_set(&c, "template", "x.env", err, sizeof(err)), -EINVAL);
	assert_int_equal(c.ntemplates, 4);

	/* A reload loads into a copy: a bad file leaves the templates as they were. */
	config_init(&copy);
	assert_int_equal(load_text(&copy, text, path, sizeof(path), err, sizeof(err)), 0);
	assert_int_equal(
		load_text(&copy, "[template t]\nfile = /x\n", path, sizeof(path), err, sizeof(err)),
		-EINVAL);
	assert_int_equal(copy.ntemplates, 2);
	config_done(&copy);
	config_done(&c);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_set_table),
		cmocka_unit_test(test_load_views_section),
		cmocka_unit_test(test_set_strings),
		cmocka_unit_test(test_set_error_buffer),
		cmocka_unit_test(test_load_full),
		cmocka_unit_test(test_load_comments),
		cmocka_unit_test(test_load_empty_and_bom),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_load_atomic),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_load_long_lines),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_load_directory),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_example_vault_file),
		cmocka_unit_test(test_example_aws_file),
		cmocka_unit_test(test_choice_values),
		cmocka_unit_test(test_templates),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
