/*
 * test_log.c - log_limit(), the rate limit of failure messages: one message
 * per (what, path, errno) per window with the count of those held back, keys
 * kept apart, and a flood of new keys that never hides a key's first message.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "secretfs/log.h"
#include "secretfs/util.h"

#define T0 (1000 * LOG_LIMIT_WINDOW_USEC)

static void test_once_a_window_with_a_count(void **state)
{
	unsigned more = 99;

	assert_true(log_limit("fetch", "app/db", -EIO, T0, &more));
	assert_int_equal(more, 0);
	for (int i = 0; i < 5; i++)
		assert_false(log_limit("fetch", "app/db", -EIO, T0 + 1 + (uint64_t)i, &more));
	assert_false(log_limit("fetch", "app/db", -EIO, T0 + LOG_LIMIT_WINDOW_USEC - 1, &more));
	more = 99;
	assert_true(log_limit("fetch", "app/db", -EIO, T0 + LOG_LIMIT_WINDOW_USEC, &more));
	assert_int_equal(more, 6);
	/* The count starts over with each message. */
	assert_false(log_limit("fetch", "app/db", -EIO, T0 + LOG_LIMIT_WINDOW_USEC + 1, &more));
	assert_true(log_limit("fetch", "app/db", -EIO, T0 + 3 * LOG_LIMIT_WINDOW_USEC, &more));
	assert_int_equal(more, 1);
}

static void test_keys_apart(void **state)
{
	unsigned more;

	assert_true(log_limit("fetch", "k/a", -EACCES, T0, &more));
	assert_true(log_limit("fetch", "k/a", -ECONNRESET, T0, &more)); /* another reason */
	assert_true(log_limit("fetch", "k/b", -EACCES, T0, &more));	/* another path */
	assert_true(log_limit("list", "k/a", -EACCES, T0, &more));	/* another kind */
	/* The parts are kept apart: ("ab", "c") is not ("a", "bc"). */
	assert_true(log_limit("ab", "c", 0, T0, &more));
	assert_true(log_limit("a", "bc", 0, T0, &more));
	assert_false(log_limit("fetch", "k/a", -EACCES, T0 + 1, &more));
	assert_false(log_limit("ab", "c", 0, T0 + 1, &more));
}

static void test_flood_never_hides_a_first_message(void **state)
{
	unsigned more;
	char path[32];

	/* Far more keys than the table holds: each one's first message is logged. */
	for (int i = 0; i < 20000; i++) {
		snprintf(path, sizeof(path), "flood/%d", i);
		if (!log_limit("fetch", path, -EIO, T0 + (uint64_t)i, &more))
			fail_msg("the first message of %s was held back", path);
	}
	/* The most recent keys are still limited. */
	assert_false(log_limit("fetch", "flood/19999", -EIO, T0 + 20000, &more));
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_a_window_with_a_count),
		cmocka_unit_test(test_keys_apart),
		cmocka_unit_test(test_flood_never_hides_a_first_message),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
