/*
 * file_listing - how long one listing of the file store takes, by folder
 * size, in a store of many keys (issue 10: a listing must cost time in
 * proportion to its folder, not to the store).
 *
 *   bench/build/file_listing [KEYS [SECONDS]]    (default 200000 keys, 2 s per row)
 *
 * It writes a store of KEYS secrets, team{t}/svc{s}/key{k}: 100 teams, each
 * with KEYS/2000 services of 20 keys, opens it with the file backend
 * (backend_open("file:..."), as the daemon does, no FUSE), and times the
 * backend's list op with CLOCK_MONOTONIC for three kinds of folder:
 *
 *   leaf   team{t}/svc{s}: 20 secrets (random folders)
 *   team   team{t}: KEYS/2000 folders (random teams)
 *   root   "": 100 folders
 *
 * and prints the median, p99 and mean microseconds per listing of each.
 * Needs root (or the daemon's user) only as the trusted-file checks do: the
 * store is made in a fresh 0700 directory under TMPDIR.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "secretfs/backend.h"
#include "secretfs/secret.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Lists folders from @pick() for @seconds (at least 20 times); prints one row. */
static void row(struct backend *b, const char *what, void (*pick)(char *, size_t, size_t),
		double seconds, size_t want_entries)
{
	size_t cap = 1 << 20, n = 0;
	double *t = malloc(cap * sizeof(*t)), start = now_us(), sum = 0;
	char prefix[64], reason[BACKEND_REASON_MAX];
	struct secret *l;

	if (!t)
		exit(1);
	while (n < cap && (n < 20 || now_us() - start < seconds * 1e6)) {
		double t0;
		int r;

		pick(prefix, sizeof(prefix), n);
		t0 = now_us();
		r = b->ops->list(b, prefix, &l, reason, sizeof(reason));
		t[n] = now_us() - t0;
		if (r < 0) {
			fprintf(stderr, "list '%s': %s\n", prefix, reason);
			exit(1);
		}
		if (secret_table_count(l) != want_entries) {
			fprintf(stderr, "list '%s': %zu entries, want %zu\n", prefix,
				secret_table_count(l), want_entries);
			exit(1);
		}
		secret_unref(l);
		sum += t[n++];
	}
	qsort(t, n, sizeof(*t), cmp_double);
	printf("%-5s %7zu entries  median_us=%9.2f  p99_us=%9.2f  mean_us=%9.2f  n=%zu\n", what,
	       want_entries, t[(n - 1) / 2], t[(size_t)((double)(n - 1) * 0.99)], sum / (double)n,
	       n);
	free(t);
}

static size_t nsvc;

static void pick_leaf(char *buf, size_t len, size_t i)
{
	snprintf(buf, len, "team%d/svc%zu", rand() % 100, (size_t)rand() % nsvc);
}

static void pick_team(char *buf, size_t len, size_t i)
{
	snprintf(buf, len, "team%d", rand() % 100);
}

static void pick_root(char *buf, size_t len, size_t i)
{
	buf[0] = '\0';
}

int main(int argc, char **argv)
{
	size_t keys = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
	double seconds = argc > 2 ? strtod(argv[2], NULL) : 2.0;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[4096], path[4200], source[4300], reason[BACKEND_REASON_MAX], hint[256];
	struct backend *b = NULL;
	double t0;
	FILE *f;
	int r;

	nsvc = keys / 2000 ? keys / 2000 : 1;
	snprintf(dir, sizeof(dir), "%s/sfs-file-listing-XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/store.json", dir);
	snprintf(source, sizeof(source), "file:%s", path);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		return 1;
	}
	fputc('{', f);
	for (size_t t = 0, n = 0; t < 100; t++)
		for (size_t s = 0; s < nsvc; s++)
			for (size_t k = 0; k < 20; k++, n++)
				fprintf(f, "%s\"team%zu/svc%zu/key%zu\":\"v%zu\"", n ? "," : "", t,
					s, k, n);
	fputs("}\n", f);
	fclose(f);

	/* The values live in the locked heap: room for all of them. */
	r = secret_heap_init((size_t)keys * 128 + (64u << 20), hint, sizeof(hint));
	if (r < 0) {
		fprintf(stderr, "secret heap: %s\n", hint);
		return 1;
	}
	t0 = now_us();
	r = backend_open(source, NULL, NULL, &b, reason, sizeof(reason));
	if (r < 0) {
		fprintf(stderr, "%s\n", reason);
		return 1;
	}
	printf("store: %zu keys (100 teams x %zu services x 20 keys), loaded in %.0f ms\n",
	       100 * nsvc * 20, nsvc, (now_us() - t0) / 1e3);
	srand(1);
	row(b, "leaf", pick_leaf, seconds, 20);
	row(b, "team", pick_team, seconds, nsvc);
	row(b, "root", pick_root, seconds, 100);
	backend_close(b);
	unlink(path);
	rmdir(dir);
	return 0;
}
