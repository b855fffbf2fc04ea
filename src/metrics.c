/*
 * metrics.c - lock-free counters and histograms, and their Prometheus text.
 *
 * The exposition format (Prometheus "text/plain; version=0.0.4"): a family
 * is announced by "# HELP" and "# TYPE" lines, then one sample per line,
 * "name{label="value",...} number".  Label values escape backslash, double
 * quote and newline; HELP text escapes backslash and newline.  Nothing else
 * is escaped: any other byte, UTF-8 included, is a valid label value.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretfs/metrics.h"
#include "secretfs/util.h"

#define MAX_LABELS 8

const uint64_t metrics_bounds_usec[METRICS_NBOUNDS] = {
	500,	1000,	5000,	 10000,	  25000,   50000,    100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000,
};

/* ---- recording ---- */

void metrics_histogram_observe(struct metrics_histogram *h, uint64_t usec)
{
	size_t i = 0;

	while (i < METRICS_NBOUNDS && usec > metrics_bounds_usec[i])
		i++;
	__atomic_fetch_add(&h->counts[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum_usec, usec, __ATOMIC_RELAXED);
}

void metrics_histogram_read(const struct metrics_histogram *h,
			    struct metrics_histogram_snapshot *ret)
{
	uint64_t total = 0;

	for (size_t i = 0; i <= METRICS_NBOUNDS; i++) {
		total += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
		ret->cumulative[i] = total;
	}
	ret->count = total;
	ret->sum_usec = __atomic_load_n(&h->sum_usec, __ATOMIC_RELAXED);
}

static size_t errno_slot(int err)
{
	if (err >= 0)
		return 0;
	if (-err >= METRICS_ERRNO_SLOTS - 1)
		return METRICS_ERRNO_SLOTS - 1;
	return (size_t)-err;
}

void metrics_errno_count(struct metrics_errno_counter *c, int err)
{
	__atomic_fetch_add(&c->count[errno_slot(err)], 1, __ATOMIC_RELAXED);
}

uint64_t metrics_errno_get(const struct metrics_errno_counter *c, size_t slot)
{
	return slot < METRICS_ERRNO_SLOTS ? __atomic_load_n(&c->count[slot], __ATOMIC_RELAXED) : 0;
}

const char *metrics_errno_slot_name(size_t slot)
{
	const char *name;

	if (slot == 0)
		return "ok";
	if (slot >= METRICS_ERRNO_SLOTS - 1)
		return "other";
	/* glibc's constant names; a hole in the errno table is still a distinct code. */
	name = strerrorname_np((int)slot);
	return name ? name : "other";
}

/* ---- text ---- */

void metrics_buf_init(struct metrics_buf *b, size_t max)
{
	*b = (struct metrics_buf){ .max = max };
}

void metrics_buf_done(struct metrics_buf *b)
{
	free(b->data);
	*b = (struct metrics_buf){ 0 };
}

static bool buf_reserve(struct metrics_buf *b, size_t more)
{
	size_t cap;
	char *d;

	if (b->overflow)
		return false;
	if (more > b->max || b->len + 1 > b->max - more) {
		b->overflow = true;
		return false;
	}
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	d = realloc(b->data, cap);
	if (!d) {
		b->overflow = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

void metrics_buf_append(struct metrics_buf *b, const char *s, size_t len)
{
	if (!buf_reserve(b, len))
		return;
	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->overflow = true;
		return;
	}
	if (!buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Appends @s with the characters in @special escaped as "\\c" (newline as "\\n"). */
static void append_escaped(struct metrics_buf *b, const char *s, const char *special)
{
	while (*s) {
		size_t n = strcspn(s, special);

		metrics_buf_append(b, s, n);
		s += n;
		if (!*s)
			break;
		metrics_buf_append(b, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", 2);
		s++;
	}
}

void metrics_escape_label(struct metrics_buf *b, const char *value)
{
	append_escaped(b, value ? value : "", "\\\"\n");
}

void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	metrics_buf_printf(b, "# HELP %s ", name);
	append_escaped(b, help, "\\\n");
	metrics_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void sample_start(struct metrics_buf *b, const char *name,
			 const struct metrics_label *labels, size_t nlabels)
{
	metrics_buf_append(b, name, strlen(name));
	if (nlabels == 0)
		return;
	metrics_buf_append(b, "{", 1);
	for (size_t i = 0; i < nlabels; i++) {
		metrics_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i].name);
		metrics_escape_label(b, labels[i].value);
		metrics_buf_append(b, "\"", 1);
	}
	metrics_buf_append(b, "}", 1);
}

void metrics_sample_u64(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
			size_t nlabels, uint64_t value)
{
	sample_start(b, name, labels, nlabels);
	metrics_buf_printf(b, " %llu\n", (unsigned long long)value);
}

void metrics_sample_double(struct metrics_buf *b, const char *name,
			   const struct metrics_label *labels, size_t nlabels, double value)
{
	sample_start(b, name, labels, nlabels);
	metrics_buf_printf(b, " %.6f\n", value);
}

void metrics_histogram_write(struct metrics_buf *b, const char *name,
			     const struct metrics_label *labels, size_t nlabels,
			     const struct metrics_histogram *h)
{
	struct metrics_label l[MAX_LABELS + 1];
	struct metrics_histogram_snapshot s;
	char sub[128], le[32];

	if (nlabels > MAX_LABELS || strlen(name) + sizeof("_bucket") > sizeof(sub)) {
		b->overflow = true; /* a programmer error; the output says it is incomplete */
		return;
	}
	metrics_histogram_read(h, &s);
	memcpy(l, labels, nlabels * sizeof(*l));
	l[nlabels].name = "le";
	l[nlabels].value = le;
	snprintf(sub, sizeof(sub), "%s_bucket", name);
	for (size_t i = 0; i <= METRICS_NBOUNDS; i++) {
		if (i < METRICS_NBOUNDS)
			snprintf(le, sizeof(le), "%g",
				 (double)metrics_bounds_usec[i] / USEC_PER_SEC);
		else
			snprintf(le, sizeof(le), "+Inf");
		metrics_sample_u64(b, sub, l, nlabels + 1, s.cumulative[i]);
	}
	snprintf(sub, sizeof(sub), "%s_sum", name);
	metrics_sample_double(b, sub, labels, nlabels, (double)s.sum_usec / USEC_PER_SEC);
	snprintf(sub, sizeof(sub), "%s_count", name);
	metrics_sample_u64(b, sub, labels, nlabels, s.count);
}
