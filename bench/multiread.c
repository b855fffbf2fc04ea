/*
 * multiread - THREADS readers, each reading a random one of N files for
 * SECONDS, timing every open+read-to-EOF+close (CLOCK_MONOTONIC).
 *
 *   multiread DIR N THREADS SECONDS [KEY]
 *
 * The files are DIR/s0/KEY .. DIR/s{N-1}/KEY (KEY defaults to "v").  Prints
 * one line: p50_ms, p99_ms, max_ms (nearest rank over every read of every
 * thread), reads_per_s over the wall time, reads, and errors by errno name.
 * A read that returns no bytes counts as an error ("empty").
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ERRNO 256

static const char *dir, *key = "v";
static unsigned nfiles;
static double seconds;
static atomic_ulong errors[MAX_ERRNO + 1]; /* [MAX_ERRNO]: empty reads */

struct worker {
	pthread_t tid;
	unsigned seed;
	double *lat; /* ms */
	size_t n, cap;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	double end = now_s() + seconds;
	char path[4096], buf[65536];

	while (now_s() < end) {
		double t0 = now_s();
		ssize_t got, total = 0;
		int fd;

		snprintf(path, sizeof(path), "%s/s%u/%s", dir, (unsigned)rand_r(&w->seed) % nfiles,
			 key);
		fd = open(path, O_RDONLY);
		if (fd < 0) {
			atomic_fetch_add(&errors[errno < MAX_ERRNO ? errno : 0], 1);
		} else {
			while ((got = read(fd, buf, sizeof(buf))) > 0)
				total += got;
			if (got < 0)
				atomic_fetch_add(&errors[errno < MAX_ERRNO ? errno : 0], 1);
			else if (total == 0)
				atomic_fetch_add(&errors[MAX_ERRNO], 1);
			close(fd);
		}
		if (w->n == w->cap) {
			w->cap = w->cap ? 2 * w->cap : 4096;
			w->lat = realloc(w->lat, w->cap * sizeof(*w->lat));
			if (!w->lat)
				abort();
		}
		w->lat[w->n++] = (now_s() - t0) * 1e3;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	unsigned threads;
	struct worker *w;
	double *all, t0, wall;
	size_t total = 0, k = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: multiread DIR N THREADS SECONDS [KEY]\n");
		return 2;
	}
	dir = argv[1];
	nfiles = (unsigned)strtoul(argv[2], NULL, 10);
	threads = (unsigned)strtoul(argv[3], NULL, 10);
	seconds = strtod(argv[4], NULL);
	if (argc > 5)
		key = argv[5];
	if (!nfiles || !threads)
		return 2;
	w = calloc(threads, sizeof(*w));
	if (!w)
		return 1;
	t0 = now_s();
	for (unsigned i = 0; i < threads; i++) {
		w[i].seed = i * 2654435761u + 1;
		pthread_create(&w[i].tid, NULL, run, &w[i]);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(w[i].tid, NULL);
		total += w[i].n;
	}
	wall = now_s() - t0;
	all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		return 1;
	for (unsigned i = 0; i < threads; i++) {
		memcpy(all + k, w[i].lat, w[i].n * sizeof(*all));
		k += w[i].n;
		free(w[i].lat);
	}
	qsort(all, total, sizeof(*all), cmp_double);
	if (!total) {
		printf("reads=0\n");
		return 1;
	}
	printf("p50_ms=%.3f p99_ms=%.3f max_ms=%.1f reads_per_s=%.0f reads=%zu threads=%u "
	       "errors=",
	       all[(total - 1) / 2], all[(size_t)((double)(total - 1) * 0.99)], all[total - 1],
	       (double)total / wall, total, threads);
	k = 0;
	for (int e = 0; e <= MAX_ERRNO; e++) {
		unsigned long n = atomic_load(&errors[e]);

		if (n)
			printf("%s%s:%lu", k++ ? "," : "",
			       e == MAX_ERRNO	    ? "empty"
			       : strerrorname_np(e) ? strerrorname_np(e)
						    : "?",
			       n);
	}
	printf("%s\n", k ? "" : "0");
	free(all);
	free(w);
	return 0;
}
