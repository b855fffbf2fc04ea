/*
 * metrics.h - counters and latency histograms cheap enough for any thread,
 * and the Prometheus text exposition format (version 0.0.4) that shows them.
 *
 * Recording is lock-free (relaxed atomic adds), so instrumenting a path adds
 * no lock to it.  A reader sees each number as it was at some moment; a
 * histogram's _count is the sum of its buckets as read, so +Inf always equals
 * _count even while other threads record.
 *
 * Label values are escaped as the format wants (backslash, double quote,
 * newline); the caller still decides what goes into a label, and a secret
 * value never does (docs/design.md section 7).
 */
#ifndef SECRETFS_METRICS_H
#define SECRETFS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds of the latency buckets, from a local file (sub-ms) to a slow store (30 s). */
#define METRICS_NBOUNDS 14
extern const uint64_t metrics_bounds_usec[METRICS_NBOUNDS];

struct metrics_histogram {
	/* Per bucket, not cumulative; the last is (largest bound, +Inf).  Atomic. */
	uint64_t counts[METRICS_NBOUNDS + 1];
	uint64_t sum_usec; /* atomic */
};

/* One consistent-enough reading of a histogram. */
struct metrics_histogram_snapshot {
	uint64_t cumulative[METRICS_NBOUNDS + 1]; /* le=bound[i], then le="+Inf" */
	uint64_t count;				  /* == cumulative[METRICS_NBOUNDS] */
	uint64_t sum_usec;
};

void metrics_histogram_observe(struct metrics_histogram *h, uint64_t usec);
void metrics_histogram_read(const struct metrics_histogram *h,
			    struct metrics_histogram_snapshot *ret);

/*
 * Counts outcomes by errno: slot 0 is success, slot e is -e, and one last slot
 * takes every errno past the table.  Which slots are non-zero is what a reader
 * lists, so the label set stays as small as what actually happened.
 */
#define METRICS_ERRNO_SLOTS 136
struct metrics_errno_counter {
	uint64_t count[METRICS_ERRNO_SLOTS]; /* atomic */
};

/* Counts @err (0 or a negative errno). */
void metrics_errno_count(struct metrics_errno_counter *c, int err);
uint64_t metrics_errno_get(const struct metrics_errno_counter *c, size_t slot);
/* "ok", the errno's name ("ENOENT"), or "other"; constant text. */
const char *metrics_errno_slot_name(size_t slot);

/* A growing text buffer, bounded by @max; past it, further output is dropped and noted. */
struct metrics_buf {
	char *data; /* NUL-terminated while len > 0 */
	size_t len;
	size_t cap;
	size_t max;
	bool overflow; /* out of memory or past max: the text is incomplete */
};

void metrics_buf_init(struct metrics_buf *b, size_t max);
void metrics_buf_done(struct metrics_buf *b);
void metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void metrics_buf_append(struct metrics_buf *b, const char *s, size_t len);

struct metrics_label {
	const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, chosen by us */
	const char *value; /* anything; escaped */
};

/* A label value as the format quotes it: \ -> \\, " -> \", newline -> \n. */
void metrics_escape_label(struct metrics_buf *b, const char *value);

/* "# HELP NAME HELP\n# TYPE NAME TYPE\n"; HELP has \ and newline escaped. */
void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help);

/* NAME{l1="v1",...} VALUE\n; @labels may be NULL when @nlabels is 0. */
void metrics_sample_u64(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
			size_t nlabels, uint64_t value);
void metrics_sample_double(struct metrics_buf *b, const char *name,
			   const struct metrics_label *labels, size_t nlabels, double value);

/*
 * The samples of one histogram (not its HELP/TYPE): NAME_bucket{...,le="B"}
 * for every bound and +Inf, NAME_sum{...} in seconds, NAME_count{...}.
 */
void metrics_histogram_write(struct metrics_buf *b, const char *name,
			     const struct metrics_label *labels, size_t nlabels,
			     const struct metrics_histogram *h);

#endif
