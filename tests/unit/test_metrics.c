/*
 * test_metrics.c - the Prometheus text format (label and HELP escaping, the
 * sample lines, a histogram's bucket, _sum and _count lines), histogram
 * bucket accounting at and around every bound, errno outcome names, the
 * bounded buffer, and lock-free recording from several threads at once.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "secretfs/metrics.h"
#include "secretfs/util.h"

static char *render_label(const char *value)
{
	struct metrics_buf b;
	char *s;

	metrics_buf_init(&b, 1 << 16);
	metrics_escape_label(&b, value);
	assert_false(b.overflow);
	s = strdup(b.data ? b.data : "");
	metrics_buf_done(&b);
	return s;
}

static void test_escape_label(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "file:/etc/secretfs/store.json", "file:/etc/secretfs/store.json" },
		{ "a\"b", "a\\\"b" },
		{ "back\\slash", "back\\\\slash" },
		{ "new\nline", "new\\nline" },
		{ "\"\\\n", "\\\"\\\\\\n" },
		{ "\\n", "\\\\n" }, /* a backslash and an n, not a newline */
		{ "end\\", "end\\\\" },
		{ "\n\n", "\\n\\n" },
		/* Nothing else is escaped: UTF-8, tabs, braces and commas stay. */
		{ "clé-ß 🔑", "clé-ß 🔑" },
		{ "tab\there", "tab\there" },
		{ "{a=\"b\",c}", "{a=\\\"b\\\",c}" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = render_label(cases[i].in);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, got, cases[i].want);
		free(got);
	}
}

static void test_family_and_samples(void **state)
{
	struct metrics_buf b;
	const struct metrics_label l[] = { { "source", "file:/x\"y\\z\nw" }, { "op", "fetch" } };

	metrics_buf_init(&b, 1 << 16);
	metrics_family(&b, "secretfs_x_total", "counter",
		       "Help with \\ and\nnewline and \"quotes\".");
	metrics_sample_u64(&b, "secretfs_x_total", l, 2, 42);
	metrics_sample_u64(&b, "secretfs_x_total", NULL, 0, UINT64_MAX);
	metrics_sample_double(&b, "secretfs_up", NULL, 0, 1.5);
	assert_false(b.overflow);
	/* HELP escapes backslash and newline only; quotes stay as they are. */
	assert_string_equal(b.data,
			    "# HELP secretfs_x_total Help with \\\\ and\\nnewline and \"quotes\".\n"
			    "# TYPE secretfs_x_total counter\n"
			    "secretfs_x_total{source=\"file:/x\\\"y\\\\z\\nw\",op=\"fetch\"} 42\n"
			    "secretfs_x_total 18446744073709551615\n"
			    "secretfs_up 1.500000\n");
	assert_int_equal(b.len, strlen(b.data));
	metrics_buf_done(&b);
}

/* Where each observation lands: le is inclusive, past the last bound is +Inf only. */
static void test_histogram_buckets(void **state)
{
	struct metrics_histogram h = { { 0 }, 0 };
	struct metrics_histogram_snapshot s;
	uint64_t sum = 0, n = 0;

	/* Bounds must rise, or the cumulative counts would lie. */
	for (size_t i = 1; i < METRICS_NBOUNDS; i++)
		assert_true(metrics_bounds_usec[i] > metrics_bounds_usec[i - 1]);

	metrics_histogram_observe(&h, 0);
	sum += 0, n++;
	for (size_t i = 0; i < METRICS_NBOUNDS; i++) {
		uint64_t b = metrics_bounds_usec[i];

		metrics_histogram_observe(&h, b);     /* exactly the bound: this bucket */
		metrics_histogram_observe(&h, b + 1); /* just past it: the next one */
		sum += 2 * b + 1, n += 2;
	}
	metrics_histogram_observe(&h, UINT64_C(3600) * USEC_PER_SEC);
	sum += UINT64_C(3600) * USEC_PER_SEC, n++;

	metrics_histogram_read(&h, &s);
	assert_int_equal(s.count, n);
	assert_int_equal(s.sum_usec, sum);
	assert_int_equal(s.cumulative[METRICS_NBOUNDS], n);
	/* le=bound[0]: the 0 and bound[0]; each later bound adds bound[i-1]+1 and bound[i]. */
	assert_int_equal(s.cumulative[0], 2);
	for (size_t i = 1; i < METRICS_NBOUNDS; i++)
		assert_int_equal(s.cumulative[i], 2 + 2 * i);
	/* +Inf: the last bound + 1 and the hour. */
	assert_int_equal(s.cumulative[METRICS_NBOUNDS] - s.cumulative[METRICS_NBOUNDS - 1], 2);
	for (size_t i = 1; i <= METRICS_NBOUNDS; i++)
		assert_true(s.cumulative[i] >= s.cumulative[i - 1]);
}

static void test_histogram_text(void **state)
{
	struct metrics_histogram h = { { 0 }, 0 };
	const struct metrics_label l[] = { { "source", "s\"1" }, { "op", "list" } };
	struct metrics_buf b;
	char line[256];
	const char *p;
	size_t lines = 0;

	metrics_histogram_observe(&h, 700);	 /* le=0.001 */
	metrics_histogram_observe(&h, 2000000);	 /* le=2.5 */
	metrics_histogram_observe(&h, 40000000); /* +Inf */
	metrics_buf_init(&b, 1 << 16);
	metrics_histogram_write(&b, "secretfs_d_seconds", l, 2, &h);
	assert_false(b.overflow);

	assert_non_null(strstr(b.data, "secretfs_d_seconds_bucket{source=\"s\\\"1\",op=\"list\","
				       "le=\"0.0005\"} 0\n"));
	assert_non_null(strstr(b.data, "secretfs_d_seconds_bucket{source=\"s\\\"1\",op=\"list\","
				       "le=\"0.001\"} 1\n"));
	assert_non_null(strstr(b.data, "le=\"1\"} 1\n"));
	assert_non_null(strstr(b.data, "le=\"2.5\"} 2\n"));
	assert_non_null(strstr(b.data, "le=\"30\"} 2\n"));
	assert_non_null(strstr(b.data, "le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(b.data, "secretfs_d_seconds_sum{source=\"s\\\"1\",op=\"list\"} "
				       "42.000700\n"));
	assert_non_null(
		strstr(b.data, "secretfs_d_seconds_count{source=\"s\\\"1\",op=\"list\"} 3\n"));
	/* One line per bound, +Inf, _sum and _count; no HELP/TYPE (the caller writes those). */
	for (p = b.data; *p; p = strchr(p, '\n') + 1) {
		size_t n = strcspn(p, "\n");

		assert_true(n < sizeof(line));
		memcpy(line, p, n);
		line[n] = '\0';
		assert_true(strncmp(line, "secretfs_d_seconds_", 19) == 0);
		lines++;
	}
	assert_int_equal(lines, METRICS_NBOUNDS + 1 + 2);
	metrics_buf_done(&b);
}

static void test_errno_counter(void **state)
{
	struct metrics_errno_counter c = { { 0 } };

	metrics_errno_count(&c, 0);
	metrics_errno_count(&c, 0);
	metrics_errno_count(&c, -ENOENT);
	metrics_errno_count(&c, -EACCES);
	metrics_errno_count(&c, -EAGAIN);
	metrics_errno_count(&c, -EIO);
	metrics_errno_count(&c, -ETIMEDOUT);
	metrics_errno_count(&c, -100000); /* past the table */
	metrics_errno_count(&c, 7);	  /* a positive return is success */

	assert_int_equal(metrics_errno_get(&c, 0), 3);
	assert_int_equal(metrics_errno_get(&c, ENOENT), 1);
	assert_int_equal(metrics_errno_get(&c, EACCES), 1);
	assert_int_equal(metrics_errno_get(&c, METRICS_ERRNO_SLOTS - 1), 1);
	assert_int_equal(metrics_errno_get(&c, METRICS_ERRNO_SLOTS + 5), 0);

	assert_string_equal(metrics_errno_slot_name(0), "ok");
	assert_string_equal(metrics_errno_slot_name(ENOENT), "ENOENT");
	assert_string_equal(metrics_errno_slot_name(EACCES), "EACCES");
	assert_string_equal(metrics_errno_slot_name(EAGAIN), "EAGAIN");
	assert_string_equal(metrics_errno_slot_name(EIO), "EIO");
	assert_string_equal(metrics_errno_slot_name(ETIMEDOUT), "ETIMEDOUT");
	assert_string_equal(metrics_errno_slot_name(EHOSTUNREACH), "EHOSTUNREACH");
	assert_string_equal(metrics_errno_slot_name(METRICS_ERRNO_SLOTS - 1), "other");
	/* Every slot has a name made of label-safe characters. */
	for (size_t i = 0; i < METRICS_ERRNO_SLOTS; i++) {
		const char *n = metrics_errno_slot_name(i);

		assert_non_null(n);
		assert_true((n[0] &&
			     strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ok") == strlen(n)) ||
			    strcmp(n, "other") == 0);
	}
}

static void test_buffer_bound(void **state)
{
	struct metrics_buf b;

	metrics_buf_init(&b, 32);
	metrics_buf_printf(&b, "%s", "0123456789");
	assert_false(b.overflow);
	metrics_buf_append(&b, "0123456789012345678901", 22); /* 32 with the NUL: too much */
	assert_true(b.overflow);
	assert_int_equal(b.len, 10);
	metrics_buf_printf(&b, "x"); /* dropped: the text stays a prefix of what was asked */
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	metrics_buf_done(&b);

	metrics_buf_init(&b, 1 << 20);
	for (int i = 0; i < 10000; i++)
		metrics_buf_printf(&b, "line %d\n", i);
	assert_false(b.overflow);
	assert_int_equal(b.len, strlen(b.data));
	metrics_buf_done(&b);
}

#define THREADS	   4
#define PER_THREAD 50000

struct shared {
	struct metrics_histogram h;
	struct metrics_errno_counter c;
};

static void *hammer(void *arg)
{
	struct shared *s = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		metrics_histogram_observe(&s->h, (uint64_t)(i % 7) * 1000);
		metrics_errno_count(&s->c, i % 2 ? -ENOENT : 0);
	}
	return NULL;
}

/* Relaxed atomics lose nothing: every observation is counted once. */
static void test_concurrent_recording(void **state)
{
	static struct shared s;
	struct metrics_histogram_snapshot snap;
	pthread_t t[THREADS];
	uint64_t want_sum = 0;

	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &s), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < PER_THREAD; i++)
		want_sum += (uint64_t)(i % 7) * 1000;
	metrics_histogram_read(&s.h, &snap);
	assert_int_equal(snap.count, THREADS * PER_THREAD);
	assert_int_equal(snap.sum_usec, THREADS * want_sum);
	assert_int_equal(metrics_errno_get(&s.c, 0) + metrics_errno_get(&s.c, ENOENT),
			 THREADS * PER_THREAD);
	assert_int_equal(metrics_errno_get(&s.c, ENOENT), THREADS * PER_THREAD / 2);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_label),
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_errno_counter),
		cmocka_unit_test(test_buffer_bound),
		cmocka_unit_test(test_concurrent_recording),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
