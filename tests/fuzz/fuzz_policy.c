/*
 * fuzz_policy.c - policy_parse() on arbitrary bytes.  A policy that loads is
 * then asked for file and directory decisions and attributes over fixed paths
 * and subjects, and the answers are checked against what the header promises:
 * a permit always names a rule, a line exists in the input, a mode fits in
 * 0777.  A refused input must say where ("fuzz:" and usually a line) and must
 * not hand back a policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "secretfs/policy.h"
#include "secretfs/util.h"

#define NAME "fuzz"

static const char *const paths[] = {
	"",
	"prod",
	"prod/db/password",
	"prod/tls/key.pem",
	"public/readme",
	"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p",
	"a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/b",
	".hidden/x",
	"x/../y",
	"//prod//db//",
	"[ab]/*/?/\\",
};

static const gid_t groups[] = { 4, 27, 100, 65534 };

static const struct policy_subject subjects[] = {
	{ .uid = 0, .gid = 0 },
	{ .uid = 1,
	  .gid = 1,
	  .groups = groups,
	  .ngroups = 4,
	  .exe_known = true,
	  .exe_dev = 1,
	  .exe_ino = 2 },
	{ .uid = 33, .gid = 33, .groups_incomplete = true },
	{ .uid = 65534, .gid = 65534, .groups = groups, .ngroups = 1 },
};

static void check(int cond, const char *what, const char *path)
{
	if (!cond) {
		fprintf(stderr, "fuzz_policy: %s (path '%s')\n", what, path);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	unsigned lines = 1;
	int r;

	r = policy_parse((const char *)data, size, NAME, &p, err, sizeof(err));
	if (r < 0) {
		check(p == NULL, "a policy came back with an error", "");
		check(strncmp(err, NAME ":", strlen(NAME) + 1) == 0, "error without the name", err);
		return 0;
	}
	check(p != NULL, "no policy and no error", "");
	check(strcmp(policy_file(p), NAME) == 0, "wrong file name", "");
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';

	policy_ref(p);
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		struct policy_attrs a;

		for (size_t k = 0; k < ARRAY_SIZE(subjects); k++) {
			struct policy_decision d;

			policy_decide(p, paths[i], &subjects[k], &d);
			check(!d.permit || d.line > 0, "a permit without a rule", paths[i]);
			check(d.line <= lines, "a line past the end", paths[i]);
			policy_decide_dir(p, paths[i], &subjects[k], &d);
			check(!d.permit || d.line > 0, "a directory permit without a rule",
			      paths[i]);
			check(d.line <= lines, "a directory line past the end", paths[i]);
		}
		policy_attrs(p, paths[i], &a);
		check(!a.has_mode || a.mode <= 0777, "a mode above 0777", paths[i]);
	}
	policy_unref(p);
	policy_unref(p);
	return 0;
}
