/*
 * bench.c - load driver for one file: THREADS threads, each looping over
 * open(O_RDONLY) + read until EOF (64 KiB buffer) + close, timing every
 * iteration with CLOCK_MONOTONIC.
 *
 * Every iteration must read exactly st_size bytes of the stat(2) taken before
 * the run; anything else (a short or long read, an errno) aborts the run with
 * exit status 1, so a figure is never printed for a file that was not read.
 *
 * With --stat, an iteration is one stat(2) of PATH instead, which must show
 * the same st_size (the cost of attributes the kernel may not cache, e.g.
 * secretfs -o hide_denied_size).
 *
 * Each thread stops after N iterations (--iterations, default 20000) or when
 * SECONDS (default 10) have passed since the start, whichever comes first.
 * The result is one machine-readable line on stdout:
 *
 *   median_us=12.34 p99_us=56.78 ops_per_s=12345 n=20000 threads=1 ...
 *
 * median and p99 are over all iterations of all threads (nearest rank);
 * ops_per_s is all iterations divided by the wall time from the first start
 * to the last finish.
 *
 *   bench PATH THREADS [SECONDS] [--iterations N] [--stat]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_BUF_SIZE	     (64 * 1024)
#define BENCH_DEF_ITERATIONS 20000UL
#define BENCH_DEF_SECONDS    10.0
#define BENCH_MAX_THREADS    1024UL
#define BENCH_MAX_ITERATIONS (100UL * 1000 * 1000)
#define NSEC_PER_SEC	     1000000000ULL

struct bench_config {
	const char *path;
	off_t expect_size;
	size_t iterations;
	uint64_t deadline_nsec; /* absolute, CLOCK_MONOTONIC */
	int stat_only;		/* --stat: stat(2) instead of open + read + close */
	pthread_barrier_t start;
};

struct bench_worker {
	pthread_t thread;
	struct bench_config *cfg;
	uint64_t *samples_nsec; /* one per completed iteration */
	size_t n;
	uint64_t first_nsec; /* start of the first iteration */
	uint64_t last_nsec;  /* end of the last iteration */
	char *buf;
};

static uint64_t now_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* One open + read-to-EOF + close; returns bytes read, or a negative errno. */
static long long read_once(const char *path, char *buf)
{
	long long total = 0;
	ssize_t n;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		n = read(fd, buf, BENCH_BUF_SIZE);
		if (n > 0) {
			total += n;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		err = errno;
		close(fd);
		return -err;
	}
	if (close(fd) < 0)
		return -errno;
	return total;
}

/* One stat(2); returns st_size, or a negative errno. */
static long long stat_once(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	return (long long)st.st_size;
}

static void *worker_main(void *arg)
{
	struct bench_worker *w = arg;
	struct bench_config *cfg = w->cfg;
	uint64_t t0, t1 = 0;
	long long got;

	pthread_barrier_wait(&cfg->start);
	w->first_nsec = now_nsec();
	t0 = w->first_nsec;
	while (w->n < cfg->iterations) {
		got = cfg->stat_only ? stat_once(cfg->path) : read_once(cfg->path, w->buf);
		t1 = now_nsec();
		if (got < 0)
			die("%s: %s", cfg->path, strerror((int)-got));
		if (got != (long long)cfg->expect_size)
			die("%s: read %lld bytes, st_size is %lld", cfg->path, got,
			    (long long)cfg->expect_size);
		w->samples_nsec[w->n++] = t1 - t0;
		if (t1 >= cfg->deadline_nsec)
			break;
		t0 = t1;
	}
	w->last_nsec = t1;
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array, p in (0, 100]. */
static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static unsigned long parse_ulong(const char *s, const char *what, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v == 0 || v > max)
		die("bad %s '%s' (1..%lu)", what, s, max);
	return v;
}

static double parse_seconds(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400)
		die("bad SECONDS '%s'", s);
	return v;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s PATH THREADS [SECONDS] [--iterations N] [--stat]\n"
		"  each thread loops open+read-to-EOF+close (or stat with --stat) on PATH,\n"
		"  at most N times\n"
		"  (default %lu) and at most SECONDS (default %.0f) from the start\n",
		argv0, BENCH_DEF_ITERATIONS, BENCH_DEF_SECONDS);
	exit(2);
}

int main(int argc, char *argv[])
{
	struct bench_config cfg = { 0 };
	struct bench_worker *workers;
	unsigned long threads = 0, i;
	double seconds = BENCH_DEF_SECONDS, elapsed;
	uint64_t *all, first = UINT64_MAX, last = 0, sum = 0;
	size_t total = 0;
	struct stat st;
	int pos = 0, err;

	cfg.iterations = BENCH_DEF_ITERATIONS;
	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--iterations") == 0) {
			if (++a >= argc)
				usage(argv[0]);
			cfg.iterations = parse_ulong(argv[a], "--iterations", BENCH_MAX_ITERATIONS);
		} else if (strncmp(argv[a], "--iterations=", 13) == 0) {
			cfg.iterations =
				parse_ulong(argv[a] + 13, "--iterations", BENCH_MAX_ITERATIONS);
		} else if (strcmp(argv[a], "--stat") == 0) {
			cfg.stat_only = 1;
		} else if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
			usage(argv[0]);
		} else if (pos == 0) {
			cfg.path = argv[a];
			pos++;
		} else if (pos == 1) {
			threads = parse_ulong(argv[a], "THREADS", BENCH_MAX_THREADS);
			pos++;
		} else if (pos == 2) {
			seconds = parse_seconds(argv[a]);
			pos++;
		} else {
			usage(argv[0]);
		}
	}
	if (pos < 2)
		usage(argv[0]);

	if (stat(cfg.path, &st) < 0)
		die("stat %s: %s", cfg.path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		die("%s: not a regular file", cfg.path);
	cfg.expect_size = st.st_size;

	workers = calloc(threads, sizeof(*workers));
	if (!workers)
		die("out of memory");
	for (i = 0; i < threads; i++) {
		workers[i].cfg = &cfg;
		workers[i].samples_nsec = calloc(cfg.iterations, sizeof(uint64_t));
		if (posix_memalign((void **)&workers[i].buf, 4096, BENCH_BUF_SIZE) != 0)
			workers[i].buf = NULL;
		if (!workers[i].samples_nsec || !workers[i].buf)
			die("out of memory");
	}

	/* threads + this one, so the deadline is set just before everybody starts. */
	pthread_barrier_init(&cfg.start, NULL, (unsigned int)threads + 1);
	for (i = 0; i < threads; i++) {
		err = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (err)
			die("pthread_create: %s", strerror(err));
	}
	cfg.deadline_nsec = now_nsec() + (uint64_t)(seconds * (double)NSEC_PER_SEC);
	pthread_barrier_wait(&cfg.start);
	for (i = 0; i < threads; i++)
		pthread_join(workers[i].thread, NULL);
	pthread_barrier_destroy(&cfg.start);

	for (i = 0; i < threads; i++)
		total += workers[i].n;
	all = malloc(total * sizeof(*all));
	if (!all)
		die("out of memory");
	total = 0;
	for (i = 0; i < threads; i++) {
		struct bench_worker *w = &workers[i];

		memcpy(all + total, w->samples_nsec, w->n * sizeof(*all));
		total += w->n;
		if (w->first_nsec < first)
			first = w->first_nsec;
		if (w->last_nsec > last)
			last = w->last_nsec;
		free(w->samples_nsec);
		free(w->buf);
	}
	free(workers);

	qsort(all, total, sizeof(*all), cmp_u64);
	for (size_t k = 0; k < total; k++)
		sum += all[k];
	elapsed = (double)(last - first) / (double)NSEC_PER_SEC;

	printf("median_us=%.2f p99_us=%.2f ops_per_s=%.0f n=%zu threads=%lu size=%lld "
	       "mean_us=%.2f min_us=%.2f max_us=%.2f elapsed_s=%.3f\n",
	       (double)percentile(all, total, 50) / 1e3, (double)percentile(all, total, 99) / 1e3,
	       elapsed > 0 ? (double)total / elapsed : 0.0, total, threads,
	       (long long)cfg.expect_size, (double)sum / (double)total / 1e3, (double)all[0] / 1e3,
	       (double)all[total - 1] / 1e3, elapsed);
	free(all);
	return 0;
}
