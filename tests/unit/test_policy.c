/*
 * test_policy.c - the access policy: file and directory decisions and the
 * presented attributes over tables, every load error with its file, line and
 * reason, the checks on the policy file itself, reference counting, and
 * `secretfs check-policy` with its output and exit status.
 *
 * The tables use ids and names every Debian system has: root(0), daemon(1),
 * bin(2), sys(3), nobody(65534); groups root, daemon, bin, sys, adm(4) and
 * nogroup(65534).  Other ids need no entry in the user database.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "secretfs/policy.h"
#include "secretfs/selector.h"
#include "secretfs/util.h"

#define NOEXE NULL

static struct policy *parse_ok(const char *text)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	int r = policy_parse(text, strlen(text), "test.policy", &p, err, sizeof(err));

	if (r < 0)
		fail_msg("policy_parse: %d: %s", r, err);
	assert_non_null(p);
	return p;
}

/* ---- decisions ---- */

/* The running binary as access.c sees it: the file the path leads to. */
static void set_exe(struct policy_subject *who, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	who->exe_known = true;
	who->exe_dev = st.st_dev;
	who->exe_ino = st.st_ino;
}

/* The line numbers in the tables below are those of this text. */
static const char decide_policy[] =
	"# the table below depends on these line numbers\n"	     /* 1 */
	"\n"							     /* 2 */
	"permit  user:33      prod/tls/**     owner=33 mode=0400\n"  /* 3 */
	"permit  group:4      prod/db/*\n"			     /* 4 */
	"deny    user:2       prod/**\n"			     /* 5 */
	"permit  user:101     prod/db/password  exe=/usr/bin/true\n" /* 6 */
	"permit  *            public/*\n"			     /* 7 */
	"deny    *            public/secret-*   # after public/*\n"  /* 8 */
	"permit  user:daemon  **/config.json\n"			     /* 9 */
	"permit  user:bin     logs/**/today\n"			     /* 10 */
	"permit\tuser:65534\ttmp/?.key\n"			     /* 11 */
	"permit  user:65534   tmp/[a-c]*.pem\n"			     /* 12 */
	"permit  group:bin    shared/**\n"			     /* 13 */
	"deny    user:3       shared/private/**\n"		     /* 14 */
	"permit  user:3       shared/private/ok\n"		     /* 15 */
	"permit  user:0       root-only/*\n"			     /* 16 */
	"deny    user:0       root-only/nope\n"			     /* 17 */
	"permit  user:1       a/**\n"				     /* 18 */
	"deny    user:1       a/**/b\n"				     /* 19 */
	"permit  user:5       **\n"				     /* 20 */
	"deny    user:6       **\n"				     /* 21 */
	"permit  user:7       **\n"				     /* 22 */
	"deny    user:7       */secret/**\n"			     /* 23 */
	"permit  user:8       x/**/**/y/**\n"			     /* 24 */
	"permit  group:nogroup  g/*   \r\n";			     /* 25 */

struct decide_case {
	uid_t uid;
	gid_t gid;
	gid_t groups[3];
	size_t ngroups;
	const char *exe;
	const char *path;
	bool dir;
	bool permit;
	unsigned line;
};

#define F false /* a file */
#define D true	/* a directory */

static const struct decide_case decide_cases[] = {
	/* user by uid; "**" at the end matches zero or more components */
	{ 33, 33, { 0 }, 0, NOEXE, "prod/tls/key.pem", F, true, 3 },
	{ 33, 33, { 0 }, 0, NOEXE, "prod/tls/a/b/c", F, true, 3 },
	{ 33, 33, { 0 }, 0, NOEXE, "prod/tls", F, true, 3 },
	{ 33, 33, { 0 }, 0, NOEXE, "prod/db/password", F, false, 0 },
	{ 33, 33, { 0 }, 0, NOEXE, "prod/tlsx/key.pem", F, false, 0 },
	/* group: primary, supplementary, neither, no groups gathered */
	{ 1000, 4, { 0 }, 0, NOEXE, "prod/db/password", F, true, 4 },
	{ 1000, 1000, { 10, 4 }, 2, NOEXE, "prod/db/password", F, true, 4 },
	{ 1000, 1000, { 10 }, 1, NOEXE, "prod/db/password", F, false, 0 },
	{ 1000, 1000, { 0 }, 0, NOEXE, "prod/db/password", F, false, 0 },
	{ 1000, 65534, { 0 }, 0, NOEXE, "g/x", F, true, 25 }, /* group by name, CRLF line */
	/* "*" does not cross '/' */
	{ 1000, 4, { 0 }, 0, NOEXE, "prod/db/x/y", F, false, 0 },
	/* the last matching rule decides */
	{ 2, 4, { 0 }, 0, NOEXE, "prod/db/password", F, false, 5 },
	{ 2, 2, { 0 }, 0, NOEXE, "public/readme", F, true, 7 },
	/* exe: match, mismatch, unknown; a rule without exe= still applies */
	{ 101, 101, { 0 }, 0, "/usr/bin/true", "prod/db/password", F, true, 6 },
	{ 101, 101, { 0 }, 0, "/usr/bin/false", "prod/db/password", F, false, 0 },
	{ 101, 101, { 0 }, 0, NOEXE, "prod/db/password", F, false, 0 },
	{ 101, 4, { 0 }, 0, NOEXE, "prod/db/password", F, true, 4 },
	/* anyone */
	{ 12345, 12345, { 0 }, 0, NOEXE, "public/readme", F, true, 7 },
	{ 12345, 12345, { 0 }, 0, "/bin/sh", "public/readme", F, true, 7 },
	{ 12345, 12345, { 0 }, 0, NOEXE, "public/secret-key", F, false, 8 },
	{ 12345, 12345, { 0 }, 0, NOEXE, "public/a/b", F, false, 0 },
	{ 12345, 12345, { 0 }, 0, NOEXE, "public", F, false, 0 },
	/* a "." or ".." component matches nothing, though "*" would */
	{ 12345, 12345, { 0 }, 0, NOEXE, "public/..", F, false, 0 },
	{ 12345, 12345, { 0 }, 0, NOEXE, "public/.", F, false, 0 },
	/* empty components are not components */
	{ 12345, 12345, { 0 }, 0, NOEXE, "/public//readme", F, true, 7 },
	/* "**" at the start, by user name */
	{ 1, 1, { 0 }, 0, NOEXE, "config.json", F, true, 9 },
	{ 1, 1, { 0 }, 0, NOEXE, "x/y/z/config.json", F, true, 9 },
	{ 1, 1, { 0 }, 0, NOEXE, "x/config.json.bak", F, false, 0 },
	/* "**" in the middle */
	{ 2, 2, { 0 }, 0, NOEXE, "logs/today", F, true, 10 },
	{ 2, 2, { 0 }, 0, NOEXE, "logs/x/y/today", F, true, 10 },
	{ 2, 2, { 0 }, 0, NOEXE, "logs/x/today/z", F, false, 0 },
	{ 2, 2, { 0 }, 0, NOEXE, "logs", F, false, 0 },
	/* ? and [a-c] */
	{ 65534, 65534, { 0 }, 0, NOEXE, "tmp/a.key", F, true, 11 },
	{ 65534, 65534, { 0 }, 0, NOEXE, "tmp/ab.key", F, false, 0 },
	{ 65534, 65534, { 0 }, 0, NOEXE, "tmp/.key", F, false, 0 },
	{ 65534, 65534, { 0 }, 0, NOEXE, "tmp/b1.pem", F, true, 12 },
	{ 65534, 65534, { 0 }, 0, NOEXE, "tmp/c.pem", F, true, 12 },
	{ 65534, 65534, { 0 }, 0, NOEXE, "tmp/d1.pem", F, false, 0 },
	/* a later permit reopens part of a denied subtree */
	{ 3, 2, { 0 }, 0, NOEXE, "shared/x", F, true, 13 },
	{ 3, 2, { 0 }, 0, NOEXE, "shared/private/x", F, false, 14 },
	{ 3, 2, { 0 }, 0, NOEXE, "shared/private/ok", F, true, 15 },
	/* root is not exempt */
	{ 0, 0, { 0 }, 0, NOEXE, "prod/db/password", F, false, 0 },
	{ 0, 0, { 0 }, 0, NOEXE, "root-only/x", F, true, 16 },
	{ 0, 0, { 0 }, 0, NOEXE, "root-only/nope", F, false, 17 },
	/* "**" in the middle of a deny */
	{ 1, 1, { 0 }, 0, NOEXE, "a/b", F, false, 19 },
	{ 1, 1, { 0 }, 0, NOEXE, "a/x/y/b", F, false, 19 },
	{ 1, 1, { 0 }, 0, NOEXE, "a/x/b/c", F, true, 18 },
	{ 1, 1, { 0 }, 0, NOEXE, "a/bb", F, true, 18 },
	/* "**" alone */
	{ 5, 5, { 0 }, 0, NOEXE, "anything/at/all", F, true, 20 },
	{ 6, 6, { 0 }, 0, NOEXE, "public/readme", F, false, 21 },
	{ 7, 7, { 0 }, 0, NOEXE, "foo/x", F, true, 22 },
	{ 7, 7, { 0 }, 0, NOEXE, "foo/secret/x", F, false, 23 },
	/* several "**", "**" twice in a row */
	{ 8, 8, { 0 }, 0, NOEXE, "x/y", F, true, 24 },
	{ 8, 8, { 0 }, 0, NOEXE, "x/1/2/y/3/4", F, true, 24 },
	{ 8, 8, { 0 }, 0, NOEXE, "x/1/2/3", F, false, 0 },

	/* directories: a deny of "**" below hides the directory */
	{ 2, 2, { 0 }, 0, NOEXE, "prod", D, false, 5 },
	{ 2, 4, { 0 }, 0, NOEXE, "prod", D, false, 5 }, /* line 4's permit comes first */
	{ 2, 2, { 0 }, 0, NOEXE, "prod/db", D, false, 5 },
	{ 2, 2, { 0 }, 0, NOEXE, "", D, true, 13 }, /* prod/ ** does not hide the root */
	/* a permit that can match below, or the directory itself */
	{ 33, 33, { 0 }, 0, NOEXE, "prod", D, true, 3 },
	{ 33, 33, { 0 }, 0, NOEXE, "prod/tls", D, true, 3 },
	{ 33, 33, { 0 }, 0, NOEXE, "prod/tls/a/b", D, true, 3 },
	{ 33, 33, { 0 }, 0, NOEXE, "prod/db", D, false, 0 },
	{ 33, 33, { 0 }, 0, NOEXE, "", D, true, 7 },
	{ 1000, 4, { 0 }, 0, NOEXE, "prod/db", D, true, 4 },
	{ 1000, 1000, { 4 }, 1, NOEXE, "prod", D, true, 4 },
	{ 1000, 4, { 0 }, 0, NOEXE, "prod/db/x", D, true, 4 },
	{ 1000, 4, { 0 }, 0, NOEXE, "prod/db/x/y", D, false, 0 },
	{ 101, 101, { 0 }, 0, NOEXE, "prod/db", D, false, 0 },
	{ 101, 101, { 0 }, 0, "/usr/bin/true", "prod/db", D, true, 6 },
	/* "**" at the start of a permit reaches every directory */
	{ 1, 1, { 0 }, 0, NOEXE, "x/y", D, true, 9 },
	{ 2, 2, { 0 }, 0, NOEXE, "logs/x/y", D, true, 10 },
	/* a permit after the deny of a subtree makes it visible again */
	{ 3, 2, { 0 }, 0, NOEXE, "shared/private", D, true, 15 },
	{ 3, 3, { 0 }, 0, NOEXE, "shared/private", D, true, 15 },
	{ 3, 3, { 0 }, 0, NOEXE, "shared/other", D, false, 0 },
	/* root is not exempt */
	{ 0, 0, { 0 }, 0, NOEXE, "", D, true, 16 },
	{ 0, 0, { 0 }, 0, NOEXE, "prod", D, false, 0 },
	{ 12345, 12345, { 0 }, 0, NOEXE, "public", D, true, 7 },
	{ 12345, 12345, { 0 }, 0, NOEXE, "public/..", D, false, 0 },
	/* a deny not ending in "**" does not hide */
	{ 1, 1, { 0 }, 0, NOEXE, "a/b", D, true, 18 },
	/* deny "**" hides everything, the root included */
	{ 6, 6, { 0 }, 0, NOEXE, "", D, false, 21 },
	{ 6, 6, { 0 }, 0, NOEXE, "public", D, false, 21 },
	{ 5, 5, { 0 }, 0, NOEXE, "", D, true, 20 },
	/* "*" then "**": hides any directory one level down called secret */
	{ 7, 7, { 0 }, 0, NOEXE, "foo", D, true, 22 },
	{ 7, 7, { 0 }, 0, NOEXE, "foo/secret", D, false, 23 },
	{ 7, 7, { 0 }, 0, NOEXE, "foo/secret/deeper", D, false, 23 },
	{ 7, 7, { 0 }, 0, NOEXE, "secret", D, true, 22 },
	/* nobody without any rule */
	{ 4242, 4242, { 0 }, 0, NOEXE, "", D, true, 7 },
	{ 4242, 4242, { 0 }, 0, NOEXE, "prod", D, false, 0 },
};

static void test_decide_table(void **state)
{
	struct policy *p = parse_ok(decide_policy);
	unsigned failures = 0;

	for (size_t i = 0; i < ARRAY_SIZE(decide_cases); i++) {
		const struct decide_case *c = &decide_cases[i];
		struct policy_subject who = {
			.uid = c->uid,
			.gid = c->gid,
			.groups = c->ngroups ? c->groups : NULL,
			.ngroups = c->ngroups,
		};
		struct policy_decision d = { .permit = !c->permit, .line = 999 };

		if (c->exe)
			set_exe(&who, c->exe);

		if (c->dir)
			policy_decide_dir(p, c->path, &who, &d);
		else
			policy_decide(p, c->path, &who, &d);
		if (d.permit != c->permit || d.line != c->line) {
			print_error("case %zu: uid %u gid %u %s '%s': got %s line %u, want %s line "
				    "%u\n",
				    i, (unsigned)c->uid, (unsigned)c->gid, c->dir ? "dir" : "file",
				    c->path, d.permit ? "permit" : "deny", d.line,
				    c->permit ? "permit" : "deny", c->line);
			failures++;
		}
	}
	policy_unref(p);
	assert_int_equal(failures, 0);
}

/* Rules without any group or exe: the fs layer then gathers neither. */
static void test_uses(void **state)
{
	struct policy *p = parse_ok(decide_policy);

	assert_true(policy_uses_groups(p));
	assert_true(policy_uses_exe(p));
	assert_string_equal(policy_file(p), "test.policy");
	policy_unref(p);

	p = parse_ok("permit user:0 a\ndeny * b owner=0\n");
	assert_false(policy_uses_groups(p));
	assert_false(policy_uses_exe(p));
	policy_unref(p);
}

/* No rule at all: everything is denied, nothing has attributes. */
static void test_empty(void **state)
{
	struct policy *p = parse_ok("# nothing\n\n   \n\t# still nothing\n");
	struct policy_subject root = { 0 };
	struct policy_decision d;
	struct policy_attrs a;

	policy_decide(p, "a", &root, &d);
	assert_false(d.permit);
	assert_int_equal(d.line, 0);
	policy_decide_dir(p, "", &root, &d);
	assert_false(d.permit);
	assert_int_equal(d.line, 0);
	policy_attrs(p, "a", &a);
	assert_false(a.has_owner || a.has_group || a.has_mode);
	policy_unref(p);

	p = parse_ok("");
	policy_decide_dir(p, "", &root, &d);
	assert_false(d.permit);
	policy_unref(p);
}

/*
 * What cannot be known fails closed: with an incomplete group list a deny on
 * a group matches and a permit on a supplementary group does not (the
 * primary gid is always known); with an unknown executable an exe= deny
 * matches and an exe= permit does not.
 */
static void test_unknown_fails_closed(void **state)
{
	struct policy *p = parse_ok("permit user:1000 a/**\n"			    /* 1 */
				    "deny   group:4   a/secret\n"		    /* 2 */
				    "permit group:4   b/*\n"			    /* 3 */
				    "permit user:1000 c/*\n"			    /* 4 */
				    "deny   user:1000 c/x      exe=/usr/bin/true\n" /* 5 */
				    "permit user:1000 d/x      exe=/usr/bin/true\n" /* 6 */
				    "permit group:7   e/x\n");			    /* 7 */
	static const gid_t g4[] = { 4 };
	struct policy_subject known = { .uid = 1000, .gid = 1000 };
	struct policy_subject unknown = { .uid = 1000, .gid = 1000, .groups_incomplete = true };
	struct policy_subject primary = { .uid = 1000, .gid = 4, .groups_incomplete = true };
	struct policy_subject member = {
		.uid = 1000, .gid = 1000, .groups = g4, .ngroups = 1, .groups_incomplete = true
	};
	struct policy_decision d;

#define EXPECT(who, path, dir, want_permit, want_line)                                             \
	do {                                                                                       \
		if (dir)                                                                           \
			policy_decide_dir(p, path, &(who), &d);                                    \
		else                                                                               \
			policy_decide(p, path, &(who), &d);                                        \
		if (d.permit != (want_permit) || d.line != (want_line))                            \
			fail_msg("%s %s: got %d line %u", #who, path, d.permit, d.line);           \
	} while (0)

	EXPECT(known, "a/secret", false, true, 1);
	EXPECT(known, "b/y", false, false, 0);
	EXPECT(unknown, "a/secret", false, false, 2);
	EXPECT(unknown, "a/other", false, true, 1);
	EXPECT(unknown, "b/y", false, false, 0);
	EXPECT(unknown, "b", true, false, 0);
	EXPECT(primary, "b/y", false, true, 3);
	EXPECT(primary, "b", true, true, 3);
	/* a group found in an incomplete list is still a member */
	EXPECT(member, "b/y", false, true, 3);
	EXPECT(member, "e/x", false, false, 0);

	/* exe: unknown, the named file, another file */
	EXPECT(known, "c/x", false, false, 5);
	EXPECT(known, "d/x", false, false, 0);
	set_exe(&known, "/usr/bin/true");
	EXPECT(known, "c/x", false, false, 5);
	EXPECT(known, "d/x", false, true, 6);
	set_exe(&known, "/usr/bin/false");
	EXPECT(known, "c/x", false, true, 4);
	EXPECT(known, "d/x", false, false, 0);
#undef EXPECT

	assert_true(policy_names_group(p, 4));
	assert_true(policy_names_group(p, 7));
	assert_false(policy_names_group(p, 1000));
	policy_unref(p);
	p = parse_ok("permit user:0 a\n");
	assert_false(policy_names_group(p, 0));
	policy_unref(p);
}

/* ---- attributes ---- */

static const char attrs_policy[] =
	"permit user:0   prod/**            owner=daemon group=bin mode=0440\n"	    /* 1 */
	"permit *        prod/tls/*         mode=400\n"				    /* 2 */
	"deny   user:1   prod/tls/key.pem   owner=2\n"				    /* 3 */
	"permit user:2   prod/db/*          exe=/bin/true\n"			    /* 4 */
	"permit group:0  prod/db/password   group=0 exe=/bin/true\n"		    /* 5 */
	"permit *        public/**\n"						    /* 6 */
	"permit user:0   modes/a            mode=0\n"				    /* 7 */
	"permit user:0   modes/b            mode=0777 owner=65534 group=nogroup\n"; /* 8 */

struct attrs_case {
	const char *path;
	bool has_owner, has_group, has_mode;
	uid_t owner;
	gid_t group;
	mode_t mode;
};

static const struct attrs_case attrs_cases[] = {
	{ "prod/x", true, true, true, 1, 2, 0440 },
	{ "prod", true, true, true, 1, 2, 0440 },
	{ "prod/a/b/c", true, true, true, 1, 2, 0440 },
	/* only the fields of the last rule that sets any */
	{ "prod/tls/cert.pem", false, false, true, 0, 0, 0400 },
	/* whoever the rule is for, permit or deny */
	{ "prod/tls/key.pem", true, false, false, 2, 0, 0 },
	/* a later rule that sets nothing does not count; exe= does not matter */
	{ "prod/db/other", true, true, true, 1, 2, 0440 },
	{ "prod/db/password", false, true, false, 0, 0, 0 },
	{ "public/x", false, false, false, 0, 0, 0 },
	{ "other", false, false, false, 0, 0, 0 },
	{ "prod/..", false, false, false, 0, 0, 0 },
	{ "modes/a", false, false, true, 0, 0, 0 },
	{ "modes/b", true, true, true, 65534, 65534, 0777 },
};

static void test_attrs_table(void **state)
{
	struct policy *p = parse_ok(attrs_policy);
	unsigned failures = 0;

	for (size_t i = 0; i < ARRAY_SIZE(attrs_cases); i++) {
		const struct attrs_case *c = &attrs_cases[i];
		struct policy_attrs a;

		memset(&a, 0x5a, sizeof(a));
		policy_attrs(p, c->path, &a);
		if (a.has_owner != c->has_owner || a.has_group != c->has_group ||
		    a.has_mode != c->has_mode || (c->has_owner && a.owner != c->owner) ||
		    (c->has_group && a.group != c->group) || (c->has_mode && a.mode != c->mode)) {
			print_error("case %zu '%s': got owner %d/%u group %d/%u mode %d/%o\n", i,
				    c->path, a.has_owner, (unsigned)a.owner, a.has_group,
				    (unsigned)a.group, a.has_mode, (unsigned)a.mode);
			failures++;
		}
	}
	policy_unref(p);
	assert_int_equal(failures, 0);
}

/* ---- load errors ---- */

struct error_case {
	const char *text;
	const char *where; /* "NAME:LINE:" */
	const char *what;  /* a word naming the problem */
};

#define LONG_FIELD_(x) x x x x x x x x
#define LONG_FIELD     LONG_FIELD_(LONG_FIELD_("abcdefghijklmnopqrstuvwxyz012345"))

static const struct error_case error_cases[] = {
	{ "permit user:no-such-user-sfs a\n", "bad.policy:1:", "unknown user" },
	{ "permit group:no-such-group-sfs a\n", "bad.policy:1:", "unknown group" },
	{ "permit * a owner=no-such-user-sfs\n", "bad.policy:1:", "unknown user" },
	{ "permit * a group=no-such-group-sfs\n", "bad.policy:1:", "unknown group" },
	{ "permit user: a\n", "bad.policy:1:", "bad subject" },
	{ "permit users:0 a\n", "bad.policy:1:", "bad subject" },
	{ "permit everyone a\n", "bad.policy:1:", "bad subject" },
	{ "permit user:4294967295 a\n", "bad.policy:1:", "bad user id" },
	{ "permit group:99999999999 a\n", "bad.policy:1:", "bad group id" },
	{ "permit * a**\n", "bad.policy:1:", "bad glob" },
	{ "permit * a/**b/c\n", "bad.policy:1:", "bad glob" },
	{ "permit * ***\n", "bad.policy:1:", "bad glob" },
	{ "permit * a/[bc\n", "bad.policy:1:", "bad glob" },
	{ "permit * a/[]\n", "bad.policy:1:", "bad glob" },
	{ "permit * a/[!]\n", "bad.policy:1:", "bad glob" },
	{ "permit * a/[[:alpha:]\n", "bad.policy:1:", "bad glob" },
	{ "permit * a/[[:nope:]]\n", "bad.policy:1:", "bad glob" },
	{ "permit * a/b\\\n", "bad.policy:1:", "bad glob" },
	{ "permit * **/1/**/2/**/3/**/4/**/5/**/6/**/7/**/8/**\n", "bad.policy:1:", "bad glob" },
	{ "permit * 1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18/19/20/21/22/23/24/25/26/27/28/"
	  "29/30/31/32/33/34/35/36/37/38/39/40/41/42/43/44/45/46/47/48/49/50/51/52/53/54/55/56/"
	  "57/58/59/60/61/62/63/64/65\n",
	  "bad.policy:1:", "bad glob" },
	{ "permit * /a\n", "bad.policy:1:", "bad path" },
	{ "permit * a//b\n", "bad.policy:1:", "bad path" },
	{ "permit * a/\n", "bad.policy:1:", "bad path" },
	{ "permit * ./a\n", "bad.policy:1:", "bad path" },
	{ "permit * a/../b\n", "bad.policy:1:", "bad path" },
	{ "permit * a mode=0800\n", "bad.policy:1:", "bad mode" },
	{ "permit * a mode=1777\n", "bad.policy:1:", "bad mode" },
	{ "permit * a mode=00400\n", "bad.policy:1:", "bad mode" },
	{ "permit * a mode=rw\n", "bad.policy:1:", "bad mode" },
	{ "permit * a mode=-1\n", "bad.policy:1:", "bad mode" },
	{ "permit * a mode=\n", "bad.policy:1:", "missing value" },
	{ "permit * a foo=bar\n", "bad.policy:1:", "unknown option" },
	{ "permit * a owner\n", "bad.policy:1:", "unknown option" },
	{ "permit * a =x\n", "bad.policy:1:", "unknown option" },
	{ "permit * a exe=bin/true\n", "bad.policy:1:", "bad exe" },
	{ "permit * a exe=/nonexistent/x\n",
	  "bad.policy:1:", "exe '/nonexistent/x': No such file or directory" },
	{ "permit * a exe=/usr/bin\n", "bad.policy:1:", "exe '/usr/bin': not a regular file" },
	{ "permit *\n", "bad.policy:1:", "missing field" },
	{ "permit\n", "bad.policy:1:", "missing field" },
	{ "permit * # a b\n", "bad.policy:1:", "missing field" },
	{ "permit * a mode=0400 mode=0440\n", "bad.policy:1:", "duplicate option" },
	{ "permit * a exe=/bin/sh owner=0 exe=/bin/sh\n", "bad.policy:1:", "duplicate option" },
	{ "allow * a\n", "bad.policy:1:", "bad action" },
	{ "Permit * a\n", "bad.policy:1:", "bad action" },
	/* the line is counted across blank lines, comments and good rules */
	{ "# comment\n\npermit * a\npermit * a/**b\n", "bad.policy:4:", "bad glob" },
	{ "permit * a\n\n\ndeny * b mode=9\n", "bad.policy:4:", "bad mode" },
	{ "permit * " LONG_FIELD LONG_FIELD "\n", "bad.policy:1:", "line too long" },
	{ "permit * a\npermit * b\0\n", "bad.policy:2:", "NUL" },
};

static void test_load_errors(void **state)
{
	unsigned failures = 0;

	for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++) {
		const struct error_case *c = &error_cases[i];
		/* The NUL case: the text goes on past the first NUL. */
		size_t len = strlen(c->text);
		struct policy *p = NULL;
		char err[POLICY_ERR_MAX] = "";
		int r;

		if (strstr(c->what, "NUL"))
			len += 2;
		r = policy_parse(c->text, len, "bad.policy", &p, err, sizeof(err));
		if (r != -EINVAL || p || strncmp(err, c->where, strlen(c->where)) != 0 ||
		    !strstr(err, c->what)) {
			print_error("case %zu: r=%d err='%s', want '%s ... %s'\n", i, r, err,
				    c->where, c->what);
			failures++;
		}
		policy_unref(p);
	}
	assert_int_equal(failures, 0);
}

/* Messages are short and say what to write instead. */
static void test_error_messages(void **state)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	const char *t;

	t = "permit * a**\n";
	assert_int_equal(policy_parse(t, strlen(t), "f", &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err,
			    "f:1: bad glob 'a**': '**' must be a whole component, like a/**/b");
	t = "deny user:no-such-user-sfs a\n";
	assert_int_equal(policy_parse(t, strlen(t), "f", &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "f:1: unknown user 'no-such-user-sfs'");
	t = "permit * a mode=0800\n";
	assert_int_equal(policy_parse(t, strlen(t), "f", &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "f:1: bad mode '0800': expected octal permission bits like 0400, "
				 "at most 0777");
	/* Control characters are not echoed. */
	t = "permit * a\x1b[31m**\n";
	assert_int_equal(policy_parse(t, strlen(t), "f", &p, err, sizeof(err)), -EINVAL);
	assert_null(strchr(err, '\x1b'));
	assert_non_null(strstr(err, "(not printable)"));
	/* A too small or absent buffer is not overrun. */
	assert_int_equal(policy_parse(t, strlen(t), "f", &p, err, 4), -EINVAL);
	assert_string_equal(err, "f:1");
	assert_int_equal(policy_parse(t, strlen(t), "f", &p, NULL, 0), -EINVAL);
	assert_null(p);
}

/*
 * versions=: which selector kinds the deciding permit grants under at/.  The last
 * matching rule decides, so a later rule without the option takes it away, and a
 * deny grants nothing.  The option's errors name the line.
 */
static void test_versions_option(void **state)
{
	static const char text[] = "permit * a/**    versions\n"
				   "permit * a/b     versions=previous,pending\n"
				   "permit * a/c\n"
				   "permit * d/*     versions=label,id\n"
				   "deny   * d/x\n";
	static const struct {
		const char *path;
		bool permit;
		unsigned versions;
	} cases[] = {
		{ "a/z", true, SELECTOR_ALL },
		{ "a/b", true,
		  SELECTOR_BIT(SELECTOR_CURRENT) | SELECTOR_BIT(SELECTOR_PREVIOUS) |
			  SELECTOR_BIT(SELECTOR_PENDING) },
		{ "a/c", true, SELECTOR_BIT(SELECTOR_CURRENT) },
		{ "d/y", true,
		  SELECTOR_BIT(SELECTOR_CURRENT) | SELECTOR_BIT(SELECTOR_LABEL) |
			  SELECTOR_BIT(SELECTOR_ID) },
		{ "d/x", false, 0 },
		{ "e", false, 0 },
	};
	static const struct {
		const char *text, *what;
	} bad[] = {
		{ "deny * a versions\n", "versions on a deny rule" },
		{ "permit * a versions=prev\n", "bad versions= list 'prev'" },
		{ "permit * a versions=\n", "bad versions= list ''" },
		{ "permit * a versions=previous,\n", "bad versions= list" },
		{ "permit * a versions versions=pending\n", "duplicate option versions" },
		{ "permit * a version\n", "unknown option 'version'" },
	};
	struct policy_subject who = { .uid = 1, .gid = 1 };
	struct policy *p = parse_ok(text);
	char err[POLICY_ERR_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct policy_decision d = { .versions = 12345 };

		policy_decide(p, cases[i].path, &who, &d);
		if (d.permit != cases[i].permit || d.versions != cases[i].versions)
			fail_msg("'%s': permit %d versions %#x", cases[i].path, d.permit,
				 d.versions);
	}
	policy_unref(p);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct policy *q = NULL;

		assert_int_equal(policy_parse(bad[i].text, strlen(bad[i].text), "f", &q, err,
					      sizeof(err)),
				 -EINVAL);
		if (strncmp(err, "f:1: ", 5) != 0 || !strstr(err, bad[i].what))
			fail_msg("'%s': '%s'", bad[i].text, err);
	}
}

/* What must load: the example, comments, tabs, CRLF, both mode spellings. */
static void test_parse_valid(void **state)
{
	static const char *const good[] = {
		"# action  subject          path glob            options\n"
		"permit    user:www-data    prod/tls/**          owner=www-data mode=0400\n"
		"permit    group:bin        prod/db/*\n"
		"deny      user:nobody      prod/**\n"
		"permit    user:101         prod/db/password     "
		"exe=/usr/bin/true\n"
		"permit    *                public/*\n",
		"permit * a mode=400\npermit * b mode=0\npermit * c mode=0777\n",
		"  permit\t*\ta#b   # '#' inside a field is not a comment\n",
		"permit * a\r\ndeny * b\r\n",
		"permit * a", /* no final newline */
		"permit * [[:alpha:]]/[!a-c]/[]]/[^]x]/\\*/x\\[y\n",
		"permit * **/**/**/**/**/**/**/**\n",
		"permit * 1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18/19/20/21/22/23/24/25/26/27/"
		"28/29/30/31/32/33/34/35/36/37/38/39/40/41/42/43/44/45/46/47/48/49/50/51/52/53/54/"
		"55/56/57/58/59/60/61/62/63/64\n",
		"permit user:0 a owner=0 group=0 mode=0 exe=/bin/sh\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		policy_unref(parse_ok(good[i]));
}

/* Escapes, classes and runs of "**" match as fnmatch() and the header say. */
static void test_glob_details(void **state)
{
	struct policy *p = parse_ok("permit * [[:digit:]]x/\\*/q\\?\n" /* 1 */
				    "permit * b/**/**/c\n"	       /* 2 */
				    "permit * [!a]*/z\n");	       /* 3 */
	struct policy_subject who = { .uid = 1000, .gid = 1000 };
	static const struct {
		const char *path;
		unsigned line;
	} cases[] = {
		{ "1x/*/q?", 1 }, { "1x/a/q?", 0 }, { "1x/*/qq", 0 },	{ "ax/*/q?", 0 },
		{ "b/c", 2 },	  { "b/1/c", 2 },   { "b/1/2/3/c", 2 }, { "b/1/2/3/d", 0 },
		{ "bb/z", 3 },	  { "ab/z", 0 },    { ".x/z", 3 },
	};
	struct policy_decision d;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		policy_decide(p, cases[i].path, &who, &d);
		if (d.line != cases[i].line)
			fail_msg("'%s': line %u, want %u", cases[i].path, d.line, cases[i].line);
		assert_int_equal(d.permit, cases[i].line != 0);
	}
	policy_unref(p);
}

/*
 * Many "**" against a long path with no match: exponential without the
 * abort rule (about C(2000, 8) tries), instant with it.
 */
static void test_starstar_cost(void **state)
{
	struct policy *p = parse_ok("permit * **/a/**/a/**/a/**/a/**/a/**/a/**/a/**/b\n");
	struct policy_subject who = { 0 };
	struct policy_decision d;
	static char path[4000];
	uint64_t t0 = now_usec();

	for (size_t i = 0; i + 2 < sizeof(path); i += 2)
		memcpy(path + i, "a/", 2);
	path[sizeof(path) - 2] = 'a';
	policy_decide(p, path, &who, &d);
	assert_false(d.permit);
	path[sizeof(path) - 2] = 'b';
	policy_decide(p, path, &who, &d);
	assert_true(d.permit);
	assert_true(now_usec() - t0 < 5 * USEC_PER_SEC);
	policy_unref(p);
}

/* ---- the matcher against a naive one ---- */

/*
 * The definitions, written the slow way: plain backtracking for a match, the
 * header's wording for directories.  Globs and paths are arrays of components.
 */
static bool naive_match(const char *const *g, size_t m, const char *const *p, size_t n)
{
	if (m == 0)
		return n == 0;
	if (strcmp(g[0], "**") == 0)
		return naive_match(g + 1, m - 1, p, n) || (n && naive_match(g, m, p + 1, n - 1));
	return n && fnmatch(g[0], p[0], 0) == 0 && naive_match(g + 1, m - 1, p + 1, n - 1);
}

/* Can match the directory itself or some path below it (any component can be matched). */
static bool naive_prefix(const char *const *g, size_t m, const char *const *p, size_t n)
{
	if (n == 0)
		return true;
	if (m == 0)
		return false;
	if (strcmp(g[0], "**") == 0)
		return naive_prefix(g + 1, m - 1, p, n) || naive_prefix(g, m, p + 1, n - 1);
	return fnmatch(g[0], p[0], 0) == 0 && naive_prefix(g + 1, m - 1, p + 1, n - 1);
}

/* After consuming the directory's components, the rest of the glob is only "**". */
static bool naive_covers(const char *const *g, size_t m, const char *const *p, size_t n)
{
	if (n == 0) {
		for (size_t i = 0; i < m; i++)
			if (strcmp(g[i], "**") != 0)
				return false;
		return m > 0;
	}
	if (m == 0)
		return false;
	if (strcmp(g[0], "**") == 0)
		return naive_covers(g + 1, m - 1, p, n) || naive_covers(g, m, p + 1, n - 1);
	return fnmatch(g[0], p[0], 0) == 0 && naive_covers(g + 1, m - 1, p + 1, n - 1);
}

static size_t join(char *buf, size_t len, const char *const *c, size_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "/" : "", c[i]);
	return used;
}

static void test_matcher_vs_naive(void **state)
{
	static const char *const gcomp[] = { "a", "b", "*", "**", "?", "[ab]", "a*", "*b" };
	static const char *const pcomp[] = { "a", "b", "ab", "ba", "c" };
	struct policy_subject who = { .uid = 1, .gid = 1 };
	unsigned seed = 12345, failures = 0;

	for (int iter = 0; iter < 20000 && failures < 10; iter++) {
		const char *g[7], *path[9];
		size_t m = 1 + (size_t)(rand_r(&seed) % 6), n = (size_t)(rand_r(&seed) % 9);
		char gtext[64], ptext[64], text[256], err[POLICY_ERR_MAX];
		struct policy_decision d;
		struct policy *p = NULL;
		bool want;

		for (size_t i = 0; i < m; i++)
			g[i] = gcomp[rand_r(&seed) % ARRAY_SIZE(gcomp)];
		for (size_t i = 0; i < n; i++)
			path[i] = pcomp[rand_r(&seed) % ARRAY_SIZE(pcomp)];
		join(gtext, sizeof(gtext), g, m);
		join(ptext, sizeof(ptext), path, n);

		snprintf(text, sizeof(text), "permit * %s\n", gtext);
		assert_int_equal(policy_parse(text, strlen(text), "t", &p, err, sizeof(err)), 0);
		want = naive_match(g, m, path, n);
		policy_decide(p, ptext, &who, &d);
		if (d.permit != want) {
			print_error("file: glob '%s' path '%s': got %d\n", gtext, ptext, d.permit);
			failures++;
		}
		want = naive_prefix(g, m, path, n);
		policy_decide_dir(p, ptext, &who, &d);
		if (d.permit != want) {
			print_error("dir: glob '%s' path '%s': got %d\n", gtext, ptext, d.permit);
			failures++;
		}
		policy_unref(p);

		snprintf(text, sizeof(text), "permit * **\ndeny * %s\n", gtext);
		assert_int_equal(policy_parse(text, strlen(text), "t", &p, err, sizeof(err)), 0);
		want = !naive_covers(g, m, path, n);
		policy_decide_dir(p, ptext, &who, &d);
		if (d.permit != want || d.line != (want ? 1u : 2u)) {
			print_error("hidden: glob '%s' path '%s': got %d\n", gtext, ptext,
				    d.permit);
			failures++;
		}
		policy_unref(p);
	}
	assert_int_equal(failures, 0);
}

/* A path longer than the kernel could send matches nothing, not even "**". */
static void test_long_path(void **state)
{
	struct policy *p = parse_ok("permit * **\n");
	struct policy_subject who = { 0 };
	struct policy_decision d;
	struct policy_attrs a;
	char *path = malloc(PATH_MAX + 10);

	assert_non_null(path);
	memset(path, 'a', PATH_MAX + 9);
	path[PATH_MAX + 9] = '\0';
	policy_decide(p, path, &who, &d);
	assert_false(d.permit);
	policy_attrs(p, path, &a);
	assert_false(a.has_owner || a.has_group || a.has_mode);
	path[PATH_MAX - 1] = '\0';
	policy_decide(p, path, &who, &d);
	assert_true(d.permit);
	free(path);
	policy_unref(p);
}

/* ---- files ---- */

struct fx {
	char dir[64];
	char path[128];
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/secretfs-policy-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/policy", f->dir);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char p[192];

	unlink(f->path);
	snprintf(p, sizeof(p), "%s/link", f->dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/sub", f->dir);
	rmdir(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void expect_load_error(const char *path, int want, const char *prefix, const char *what)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	int r = policy_load(path, &p, err, sizeof(err));

	if (r != want || p || strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, what))
		fail_msg("policy_load: r=%d err='%s', want %d '%s ... %s'", r, err, want, prefix,
			 what);
}

static void test_load_file(void **state)
{
	struct fx *f = *state;
	struct policy *p = NULL;
	struct policy_subject who = { .uid = 1, .gid = 1 };
	struct policy_decision d;
	char err[POLICY_ERR_MAX] = "", prefix[160];

	write_file(f->path, "# ok\npermit user:daemon a/*\n", 0644);
	assert_int_equal(policy_load(f->path, &p, err, sizeof(err)), 0);
	assert_string_equal(policy_file(p), f->path);
	policy_decide(p, "a/b", &who, &d);
	assert_true(d.permit);
	assert_int_equal(d.line, 2);
	policy_unref(p);

	/* errors in the text name this file */
	write_file(f->path, "permit user:daemon a/*\npermit * b mode=8\n", 0600);
	snprintf(prefix, sizeof(prefix), "%s:2: ", f->path);
	expect_load_error(f->path, -EINVAL, prefix, "bad mode");
}

static void test_load_refused(void **state)
{
	struct fx *f = *state;
	char prefix[256], p[192];

	snprintf(prefix, sizeof(prefix), "%s: ", f->path);
	expect_load_error(f->path, -ENOENT, prefix, "cannot open");

	write_file(f->path, "permit * a\n", 0620);
	expect_load_error(f->path, -EPERM, prefix, "writable by group or others (mode 0620)");
	write_file(f->path, "permit * a\n", 0602);
	expect_load_error(f->path, -EPERM, prefix, "writable by group or others (mode 0602)");

	/* A symlink (a Kubernetes ConfigMap's "..data" layout) is followed, and the
	 * file it leads to is what gets checked. */
	write_file(f->path, "permit * a\n", 0644);
	snprintf(p, sizeof(p), "%s/link", f->dir);
	assert_int_equal(symlink(f->path, p), 0);
	{
		char err[POLICY_ERR_MAX] = "";
		struct policy *pol = NULL;

		assert_int_equal(policy_load(p, &pol, err, sizeof(err)), 0);
		policy_unref(pol);
	}
	write_file(f->path, "permit * a\n", 0622);
	snprintf(prefix, sizeof(prefix), "%s: ", p);
	expect_load_error(p, -EPERM, prefix, "writable by group or others");
	unlink(p);

	snprintf(p, sizeof(p), "%s/sub", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(prefix, sizeof(prefix), "%s: ", p);
	expect_load_error(p, -EINVAL, prefix, "not a regular file");
}

static void test_load_other_owner(void **state)
{
	struct fx *f = *state;
	char prefix[160];

	if (geteuid() != 0)
		skip();
	write_file(f->path, "permit * a\n", 0644);
	assert_int_equal(chown(f->path, 65534, 65534), 0);
	snprintf(prefix, sizeof(prefix), "%s: ", f->path);
	expect_load_error(f->path, -EPERM, prefix, "owned by uid 65534");
}

static void test_load_too_big(void **state)
{
	struct fx *f = *state;
	char prefix[160];
	int fd;

	write_file(f->path, "", 0600);
	fd = open(f->path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1024 * 1024 + 1), 0);
	close(fd);
	snprintf(prefix, sizeof(prefix), "%s: ", f->path);
	expect_load_error(f->path, -EFBIG, prefix, "larger than 1 MiB");
}

/* ---- references ---- */

/* An exe= naming a symlink names the file it leads to, resolved at load. */
static void test_exe_symlink(void **state)
{
	struct fx *f = *state;
	struct policy_subject who = { .uid = 1, .gid = 1 };
	struct policy_decision d;
	struct policy *p = NULL;
	char link[192], text[256], err[POLICY_ERR_MAX] = "";

	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink("/usr/bin/true", link), 0);
	snprintf(text, sizeof(text), "permit user:1 a exe=%s\n", link);
	write_file(f->path, text, 0644);
	if (policy_load(f->path, &p, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	set_exe(&who, "/usr/bin/true");
	policy_decide(p, "a", &who, &d);
	assert_true(d.permit);
	set_exe(&who, link); /* the same file: stat() follows the link */
	policy_decide(p, "a", &who, &d);
	assert_true(d.permit);
	set_exe(&who, "/usr/bin/false");
	policy_decide(p, "a", &who, &d);
	assert_false(d.permit);

	/* The link now leads elsewhere: the loaded policy keeps the old file, a reload
	 * (a new load) takes the new one. */
	assert_int_equal(unlink(link), 0);
	assert_int_equal(symlink("/usr/bin/false", link), 0);
	policy_decide(p, "a", &who, &d);
	assert_false(d.permit);
	policy_unref(p);
	if (policy_load(f->path, &p, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	policy_decide(p, "a", &who, &d);
	assert_true(d.permit);
	policy_unref(p);
}

static void test_refcount(void **state)
{
	struct policy *p = parse_ok("permit * a\n");
	struct policy_subject who = { 0 };
	struct policy_decision d;

	assert_ptr_equal(policy_ref(p), p);
	assert_ptr_equal(policy_ref(p), p);
	policy_unref(p);
	policy_unref(p);
	/* Still alive with one reference left (the sanitizers would see a use after free). */
	policy_decide(p, "a", &who, &d);
	assert_true(d.permit);
	policy_unref(p);

	assert_null(policy_ref(NULL));
	policy_unref(NULL);
}

/* ---- secretfs check-policy ---- */

struct run {
	int rc;
	char out[2048];
	char err[2048];
};

static void slurp(FILE *f, char *buf, size_t len)
{
	size_t n;

	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* Runs policy_check_main() with stdout and stderr captured; asserts only once they are back. */
static void run_check(struct run *r, int argc, const char *const *argv)
{
	FILE *out = tmpfile(), *err = tmpfile();
	int saved_out, saved_err;

	assert_non_null(out);
	assert_non_null(err);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(1);
	saved_err = dup(2);
	dup2(fileno(out), 1);
	dup2(fileno(err), 2);
	r->rc = policy_check_main(argc, (char **)argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
}

#define RUN(r, ...)                                                                                \
	do {                                                                                       \
		const char *const argv_[] = { "check-policy", __VA_ARGS__ };                       \
		run_check((r), (int)ARRAY_SIZE(argv_), argv_);                                     \
	} while (0)

static const char check_policy[] = "permit user:daemon  prod/tls/**  owner=bin group=daemon "
				   "mode=0400\n"					   /* 1 */
				   "permit group:bin    prod/db/*\n"			   /* 2 */
				   "deny   user:bin     prod/**\n"			   /* 3 */
				   "permit user:sys     prod/db/password  exe=/bin/true\n" /* 4 */
				   "permit *            public/*  owner=65534\n"	   /* 5 */
				   "permit user:nobody  modes/*   mode=640\n";		   /* 6 */

static void expect_run(const struct run *r, int rc, const char *out, const char *err_part)
{
	if (r->rc != rc || strcmp(r->out, out) != 0 || !strstr(r->err, err_part))
		fail_msg("rc %d, stdout:\n%s\nstderr:\n%s\nwant rc %d, stdout:\n%s\nstderr with "
			 "'%s'",
			 r->rc, r->out, r->err, rc, out, err_part);
}

static void test_check_main(void **state)
{
	struct fx *f = *state;
	struct run r;
	char want[512], link[192];

	write_file(f->path, check_policy, 0644);

	RUN(&r, f->path, "daemon", "prod/tls/key.pem");
	snprintf(want, sizeof(want),
		 "permit\nrule: %s:1\nowner: bin(2) group: daemon(1) mode: 0400\n", f->path);
	expect_run(&r, 0, want, "");

	/* by uid; the group comes from the user database */
	RUN(&r, f->path, "2", "prod/db/password");
	snprintf(want, sizeof(want), "deny\nrule: %s:3\nattributes: default\n", f->path);
	expect_run(&r, 1, want, "");

	RUN(&r, f->path, "root", "prod/db/password");
	expect_run(&r, 1, "deny\nrule: none (no rule matched)\nattributes: default\n", "");

	RUN(&r, f->path, "root", "public/x");
	snprintf(want, sizeof(want), "permit\nrule: %s:5\nowner: nobody(65534)\n", f->path);
	expect_run(&r, 0, want, "");

	RUN(&r, f->path, "nobody", "modes/x");
	snprintf(want, sizeof(want), "permit\nrule: %s:6\nmode: 0640\n", f->path);
	expect_run(&r, 0, want, "");

	/* exe */
	RUN(&r, f->path, "sys", "prod/db/password");
	expect_run(&r, 1, "deny\nrule: none (no rule matched)\nattributes: default\n", "");
	RUN(&r, f->path, "sys", "--exe", "/bin/true", "prod/db/password");
	snprintf(want, sizeof(want), "permit\nrule: %s:4\nattributes: default\n", f->path);
	expect_run(&r, 0, want, "");
	/* resolved as the rule is: another name for the same file matches */
	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink("/bin/true", link), 0);
	RUN(&r, f->path, "sys", "--exe", link, "prod/db/password");
	expect_run(&r, 0, want, "");
	RUN(&r, f->path, "sys", "--exe", "/bin/false", "prod/db/password");
	expect_run(&r, 1, "deny\nrule: none (no rule matched)\nattributes: default\n", "");
	RUN(&r, f->path, "sys", "--exe", "/nonexistent/x", "prod/db/password");
	expect_run(&r, 2, "", "--exe /nonexistent/x: No such file or directory");

	/* directories: a trailing '/', or --dir */
	RUN(&r, f->path, "bin", "prod/");
	snprintf(want, sizeof(want), "deny\nrule: %s:3\nattributes: default\n", f->path);
	expect_run(&r, 1, want, "");
	RUN(&r, f->path, "--dir", "daemon", "prod");
	snprintf(want, sizeof(want), "permit\nrule: %s:1\nattributes: default\n", f->path);
	expect_run(&r, 0, want, "");
	RUN(&r, f->path, "daemon", "prod/tls/");
	snprintf(want, sizeof(want),
		 "permit\nrule: %s:1\nowner: bin(2) group: daemon(1) mode: 0400\n", f->path);
	expect_run(&r, 0, want, "");
	RUN(&r, f->path, "root", "/");
	snprintf(want, sizeof(want), "permit\nrule: %s:5\nattributes: default\n", f->path);
	expect_run(&r, 0, want, "");
	/* without the '/', a file: prod itself is matched by no rule for daemon */
	RUN(&r, f->path, "daemon", "prod");
	expect_run(&r, 1, "deny\nrule: none (no rule matched)\nattributes: default\n", "");
}

static void test_check_main_errors(void **state)
{
	struct fx *f = *state;
	struct run r;
	char want[256];

	write_file(f->path, check_policy, 0644);

	RUN(&r, f->path, "no-such-user-sfs", "public/x");
	expect_run(&r, 2, "", "secretfs: unknown user 'no-such-user-sfs'");
	RUN(&r, f->path, "4000000000", "public/x");
	expect_run(&r, 2, "", "secretfs: unknown user '4000000000'");

	RUN(&r, f->path, "root");
	expect_run(&r, 2, "", "usage: secretfs check-policy FILE USER");
	RUN(&r, f->path, "root", "a", "b");
	expect_run(&r, 2, "", "usage:");
	RUN(&r, f->path, "root", "--bogus", "a");
	expect_run(&r, 2, "", "unknown option '--bogus'");
	RUN(&r, f->path, "root", "a", "--exe");
	expect_run(&r, 2, "", "--exe needs a PATH");
	RUN(&r, f->path, "root", "--exe", "pg", "a");
	expect_run(&r, 2, "", "absolute path");

	/* "--" ends the options */
	RUN(&r, f->path, "root", "--", "--dir");
	expect_run(&r, 1, "deny\nrule: none (no rule matched)\nattributes: default\n", "");

	RUN(&r, "/nonexistent/policy", "root", "a");
	expect_run(&r, 2, "", "secretfs: /nonexistent/policy: cannot open");

	write_file(f->path, "permit * a\npermit user:no-such-user-sfs b\n", 0644);
	RUN(&r, f->path, "root", "a");
	snprintf(want, sizeof(want), "secretfs: %s:2: unknown user", f->path);
	expect_run(&r, 2, "", want);

	write_file(f->path, "permit * a\n", 0666);
	RUN(&r, f->path, "root", "a");
	expect_run(&r, 2, "", "writable by group or others");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test(test_uses),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_unknown_fails_closed),
		cmocka_unit_test_setup_teardown(test_exe_symlink, fx_setup, fx_teardown),
		cmocka_unit_test(test_attrs_table),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_error_messages),
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_versions_option),
		cmocka_unit_test(test_glob_details),
		cmocka_unit_test(test_starstar_cost),
		cmocka_unit_test(test_matcher_vs_naive),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test_setup_teardown(test_load_file, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_load_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_load_other_owner, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_load_too_big, fx_setup, fx_teardown),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test_setup_teardown(test_check_main, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_check_main_errors, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
