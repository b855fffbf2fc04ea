/*
 * test_selector.c - the version selector parser: every spelling it takes,
 * with what it means and its one spelling back, and a table of near misses
 * an attacker would try as a path component (".." smuggled in an id, signs,
 * leading zeros, spaces, slashes, overlong names), each refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "secretfs/selector.h"

struct sel_case {
	const char *in;
	enum selector_kind kind;
	uint64_t number;
	const char *arg;
	bool pinned;
};

static void test_accepted(void **state)
{
	static const struct sel_case cases[] = {
		{ "current", SELECTOR_CURRENT, 0, "", false },
		{ "previous", SELECTOR_PREVIOUS, 0, "", false },
		{ "pending", SELECTOR_PENDING, 0, "", false },
		{ "1", SELECTOR_NUMBER, 1, "", true },
		{ "42", SELECTOR_NUMBER, 42, "", true },
		{ "9007199254740991", SELECTOR_NUMBER, 9007199254740991ULL, "", true },
		{ "id:a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d", SELECTOR_ID, 0,
		  "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d", true },
		{ "id:...", SELECTOR_ID, 0, "...", true },
		{ "label:AWSCURRENT", SELECTOR_LABEL, 0, "AWSCURRENT", false },
		{ "label:blue+green=ok@x", SELECTOR_LABEL, 0, "blue+green=ok@x", false },
	};
	char buf[SELECTOR_ARG_MAX + 8];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct selector s;

		if (selector_parse(cases[i].in, &s) != 0)
			fail_msg("'%s' refused", cases[i].in);
		assert_int_equal(s.kind, cases[i].kind);
		assert_true(s.number == cases[i].number);
		assert_string_equal(s.arg, cases[i].arg);
		assert_int_equal(selector_is_pinned(&s), cases[i].pinned);
		selector_format(&s, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].in);
	}
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
		"", "Current", "CURRENT", "current ", " current", "previous/", "latest",
		"0", "01", "007", "-1", "+1", "1.0", "1e3", "0x10", " 1", "1 ",
		"9007199254740992", "18446744073709551616", "99999999999999999999999",
		"id:", "id:.", "id:..", "id:a/b", "id:a b", "id:a+b", "id:\n", "id:%2e%2e",
		"ID:abc", "label:", "label:..", "label:a/b", "label:a b", "label:a\tb",
		"label:a;b", "label:$x", "label:*", "version:1", "at", "view", "..", ".",
	};
	struct selector s = { .kind = SELECTOR_LABEL, .arg = "untouched" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (selector_parse(bad[i], &s) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_string_equal(s.arg, "untouched");
	}
}

static void test_lengths(void **state)
{
	char in[SELECTOR_ARG_MAX + 16];
	struct selector s;

	(void)state;
	memcpy(in, "id:", 3);
	memset(in + 3, 'a', SELECTOR_ARG_MAX);
	in[3 + SELECTOR_ARG_MAX] = '\0';
	assert_int_equal(selector_parse(in, &s), 0);
	assert_int_equal(strlen(s.arg), SELECTOR_ARG_MAX);
	in[3 + SELECTOR_ARG_MAX] = 'a';
	in[4 + SELECTOR_ARG_MAX] = '\0';
	assert_int_equal(selector_parse(in, &s), -EINVAL);
}

static void test_kind_names(void **state)
{
	enum selector_kind k;

	(void)state;
	assert_int_equal(selector_kind_from_name("previous", 8, &k), 0);
	assert_int_equal(k, SELECTOR_PREVIOUS);
	assert_int_equal(selector_kind_from_name("pending,x", 7, &k), 0);
	assert_int_equal(k, SELECTOR_PENDING);
	assert_int_equal(selector_kind_from_name("prev", 4, &k), -EINVAL);
	assert_int_equal(selector_kind_from_name("previouss", 9, &k), -EINVAL);
	assert_null(selector_kind_name((enum selector_kind)99));
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_kind_names),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
