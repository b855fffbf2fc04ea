/*
 * test_trusted_file.c - trusted_file_open(), trusted_file_read() and
 * trusted_dir_check() (util.c) on trees built here: the file and every
 * directory above it owned by root or the caller and not writable by group
 * or others, the sticky exception, symlinks resolved (a ConfigMap's ..data),
 * procfs and sysfs refused, FIFOs refused without blocking, and every
 * refusal naming the file and why.  The owner cases need root (chown,
 * setresuid) and are skipped without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "secretfs/util.h"

#define NOBODY 65534

static char top[64]; /* /tmp/secretfs-test-trusted-XXXXXX, 0700, ours */

static int setup(void **state)
{
	snprintf(top, sizeof(top), "/tmp/secretfs-test-trusted-XXXXXX");
	return mkdtemp(top) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* top/REL, formatted. */
static const char *at(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *at(char *buf, size_t len, const char *fmt, ...)
{
	char rel[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(buf, len, "%s/%s", top, rel);
	return buf;
}

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void dir(const char *path, mode_t mode)
{
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Opens @path; the result must be @want, and a refusal's reason must hold @needle. */
static void expect_open(const char *path, int want, const char *needle)
{
	char reason[1024] = "";
	int r = trusted_file_open(path, "policy", NULL, reason, sizeof(reason));

	if (want == 0) {
		if (r < 0)
			fail_msg("%s: refused: %s", path, reason);
		close(r);
		return;
	}
	if (r >= 0)
		close(r);
	if (r != want)
		fail_msg("%s: got %d, want %d (%s)", path, r, want, reason);
	/* Every refusal names the file as given. */
	if (strncmp(reason, path, strlen(path)) != 0 || !strstr(reason, needle))
		fail_msg("reason '%s': want '%s: ...%s...'", reason, path, needle);
}

static bool need_root(void)
{
	if (geteuid() == 0)
		return true;
	print_message("skipped: needs root (chown)\n");
	return false;
}

static void test_good_file_is_read(void **state)
{
	char p[512], reason[256] = "", *buf = NULL;
	struct stat st;
	size_t len = 0;
	int fd;

	put(at(p, sizeof(p), "good"), "permit user:root **\n", 0644);
	fd = trusted_file_open(p, "policy", &st, reason, sizeof(reason));
	assert_true(fd >= 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);
	assert_int_equal(
		trusted_file_read(p, "policy", 100, &buf, &len, NULL, reason, sizeof(reason)), 0);
	assert_int_equal(len, 20);
	assert_string_equal(buf, "permit user:root **\n");
	wipe_free(buf, len + 1);

	/* Larger than allowed: EFBIG, in bytes or MiB. */
	assert_int_equal(
		trusted_file_read(p, "policy", 10, &buf, &len, NULL, reason, sizeof(reason)),
		-EFBIG);
	assert_non_null(strstr(reason, "larger than 10 bytes"));

	expect_open(at(p, sizeof(p), "missing"), -ENOENT, ": cannot open: No such file");
}

static void test_file_mode_and_owner(void **state)
{
	char p[512];

	put(at(p, sizeof(p), "gw"), "x", 0620);
	expect_open(p, -EPERM, "refusing a policy that is writable by group or others (mode 0620)");
	put(at(p, sizeof(p), "ow"), "x", 0602);
	expect_open(p, -EPERM, "writable by group or others (mode 0602); run: chmod go-w");
	if (!need_root())
		return;
	put(at(p, sizeof(p), "theirs"), "x", 0600);
	assert_int_equal(chown(p, NOBODY, NOBODY), 0);
	expect_open(p, -EPERM, "refusing a policy owned by uid 65534");
}

static void test_hostile_directories(void **state)
{
	char d[512], p[512], want[600];

	dir(at(d, sizeof(d), "open"), 0777);
	put(at(p, sizeof(p), "open/f"), "x", 0600);
	snprintf(want, sizeof(want),
		 "directory %s is writable by group or others (mode 0777) and not sticky", d);
	expect_open(p, -EPERM, want);

	dir(at(d, sizeof(d), "grp"), 0770);
	put(at(p, sizeof(p), "grp/f"), "x", 0600);
	snprintf(want, sizeof(want), "directory %s is writable by group or others (mode 0770)", d);
	expect_open(p, -EPERM, want);

	/* Higher up: top/hi (0777) / a / b / f */
	dir(at(d, sizeof(d), "hi"), 0755);
	dir(at(p, sizeof(p), "hi/a"), 0755);
	dir(at(p, sizeof(p), "hi/a/b"), 0755);
	put(at(p, sizeof(p), "hi/a/b/f"), "x", 0600);
	expect_open(p, 0, NULL);
	assert_int_equal(chmod(d, 0777), 0);
	snprintf(want, sizeof(want), "directory %s is writable by group or others", d);
	expect_open(p, -EPERM, want);

	if (!need_root())
		return;
	dir(at(d, sizeof(d), "theirs"), 0755);
	put(at(p, sizeof(p), "theirs/f"), "x", 0600);
	assert_int_equal(chown(d, NOBODY, NOBODY), 0);
	snprintf(want, sizeof(want), "directory %s is owned by uid 65534", d);
	expect_open(p, -EPERM, want);
}

static void test_sticky_directory(void **state)
{
	char d[512], p[512];

	dir(at(d, sizeof(d), "sticky"), 01777);
	put(at(p, sizeof(p), "sticky/f"), "x", 0600);
	expect_open(p, 0, NULL);
	/* The real /tmp: sticky, and our entry in it. */
	expect_open(top, -EINVAL, "not a regular file (a directory)");
	assert_int_equal(trusted_dir_check(top, "CA directory", p, sizeof(p)), 0);

	if (!need_root())
		return;
	/* An entry of another user in a sticky directory: they may replace it. */
	put(at(p, sizeof(p), "sticky/g"), "x", 0600);
	assert_int_equal(chown(p, NOBODY, NOBODY), 0);
	expect_open(p, -EPERM, "owned by uid 65534");
	/* A sticky directory of another user: they may rename anything in it. */
	dir(at(d, sizeof(d), "sticky-theirs"), 01777);
	assert_int_equal(chown(d, NOBODY, NOBODY), 0);
	put(at(p, sizeof(p), "sticky-theirs/f"), "x", 0600);
	expect_open(p, -EPERM, "is owned by uid 65534");
}

static void test_symlinks_are_resolved(void **state)
{
	char d[512], p[512], l[512], want[600];

	/* ConfigMap: NAME -> ..data/NAME, ..data -> ..TIMESTAMP */
	dir(at(d, sizeof(d), "cm"), 0755);
	dir(at(d, sizeof(d), "cm/..2026_01_01_00_00_00.1"), 0755);
	put(at(p, sizeof(p), "cm/..2026_01_01_00_00_00.1/policy"), "x", 0644);
	assert_int_equal(symlink("..2026_01_01_00_00_00.1", at(l, sizeof(l), "cm/..data")), 0);
	assert_int_equal(symlink("..data/policy", at(l, sizeof(l), "cm/policy")), 0);
	expect_open(l, 0, NULL);

	/* A link in a safe directory into a hostile one: the hostile one is what counts. */
	dir(at(d, sizeof(d), "bad"), 0777);
	put(at(p, sizeof(p), "bad/f"), "x", 0600);
	assert_int_equal(symlink(p, at(l, sizeof(l), "link-to-bad")), 0);
	snprintf(want, sizeof(want), "directory %s is writable", d);
	expect_open(l, -EPERM, want);
}

static void test_pseudo_filesystems(void **state)
{
	static const struct {
		const char *target, *fs;
	} cases[] = {
		{ "/proc/self/comm", "refusing a policy that is on procfs" },
		{ "/proc/1/comm", "on procfs" },
		{ "/proc/self/status", "on procfs" },
		{ "/sys/kernel/profiling", "refusing a policy that is on sysfs" },
		{ "/sys/kernel/uevent_seqnum", "on sysfs" },
	};
	char l[512];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (access(cases[i].target, F_OK) < 0)
			continue;
		at(l, sizeof(l), "pseudo%zu", i);
		assert_int_equal(symlink(cases[i].target, l), 0);
		expect_open(l, -EINVAL, cases[i].fs);
		/* Named directly, too. */
		expect_open(cases[i].target, -EINVAL, cases[i].fs);
	}
}

static void on_alarm(int sig)
{
	(void)sig;
	_exit(99);
}

static void test_fifo_and_directory(void **state)
{
	char p[512];

	at(p, sizeof(p), "fifo");
	assert_int_equal(mkfifo(p, 0600), 0);
	signal(SIGALRM, on_alarm); /* a blocking open would end the test here */
	alarm(10);
	expect_open(p, -EINVAL, "not a regular file (a FIFO)");
	alarm(0);
	expect_open("/dev/null", -EINVAL, "not a regular file (a character device)");
}

static void test_dir_check(void **state)
{
	char d[512], reason[512] = "";

	dir(at(d, sizeof(d), "ca"), 0755);
	assert_int_equal(trusted_dir_check(d, "CA directory", reason, sizeof(reason)), 0);
	/* The directory itself may not be open to others, sticky or not. */
	assert_int_equal(chmod(d, 01777), 0);
	assert_int_equal(trusted_dir_check(d, "CA directory", reason, sizeof(reason)), -EPERM);
	assert_non_null(
		strstr(reason, "refusing a CA directory that is writable by group or others"));
	assert_int_equal(trusted_dir_check("/proc/self", "CA directory", reason, sizeof(reason)),
			 -EINVAL);
	assert_non_null(strstr(reason, "on procfs"));
	at(d, sizeof(d), "ca-file");
	put(d, "x", 0644);
	assert_int_equal(trusted_dir_check(d, "CA directory", reason, sizeof(reason)), -ENOTDIR);
}

/* As nobody, in a child: what nobody owns is trusted, what another user owns is not. */
static void test_the_daemons_user(void **state)
{
	char d[512], p[512], q[512], want[600];
	int status;
	pid_t pid;

	if (!need_root())
		return;
	assert_int_equal(chmod(top, 0755), 0); /* nobody must reach it */
	dir(at(d, sizeof(d), "home"), 0755);
	assert_int_equal(chown(d, NOBODY, NOBODY), 0);
	put(at(p, sizeof(p), "home/mine"), "x", 0600);
	assert_int_equal(chown(p, NOBODY, NOBODY), 0);
	put(at(q, sizeof(q), "home/theirs"), "x", 0644);
	assert_int_equal(chown(q, NOBODY - 1, NOBODY - 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char reason[512] = "";
		int a, b;

		if (setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0)
			_exit(2);
		a = trusted_file_open(p, "store", NULL, reason, sizeof(reason));
		b = trusted_file_open(q, "store", NULL, reason, sizeof(reason));
		_exit(a >= 0 && b == -EPERM && strstr(reason, "owned by uid 65533") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* And root does not trust nobody's directory, even for a file of root's. */
	put(at(q, sizeof(q), "home/roots"), "x", 0644);
	snprintf(want, sizeof(want), "directory %s is owned by uid 65534", d);
	expect_open(q, -EPERM, want);
	assert_int_equal(chmod(top, 0700), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_file_is_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_mode_and_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_directories, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_are_resolved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pseudo_filesystems, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_and_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_daemons_user, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
