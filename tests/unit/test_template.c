/*
 * test_template.c - the template language: a table of templates that parse
 * (checked by rendering them with known values), a table of templates that
 * must not (each error naming file:line:col and what is wrong), the limits,
 * the delimiters option, and rendering errors that name the line and the
 * reference but never the value.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "secretfs/escape.h"
#include "secretfs/secret.h"
#include "secretfs/template.h"
#include "secretfs/util.h"

/* The values the tests' "store" holds, by reference path. */
static const struct {
	const char *path;
	const char *value;
} store[] = {
	{ "prod/db/password", "p@ss\"w$rd'`\\" },
	{ "prod/db/username", "app" },
	{ "odd name/x", "odd" },
	{ "b64", "aGVsbG8=" },
	{ "nl", "a\nb" },
};

static const char *store_get(const char *path)
{
	for (size_t i = 0; i < ARRAY_SIZE(store); i++)
		if (strcmp(store[i].path, path) == 0)
			return store[i].value;
	return NULL;
}

/* Parses and renders @text in @format; the rendered text, or NULL with @reason. */
static char *render(const char *text, enum escape_kind format, bool missing_empty, size_t max,
		    int *ret_r, char *reason, size_t reasonlen)
{
	struct template *t = NULL;
	struct template_value vals[TEMPLATE_MAX_REFS] = { { 0 } };
	struct secret *out = NULL;
	char err[TEMPLATE_ERR_MAX];
	char *s;
	int r;

	r = template_parse(text, strlen(text), NULL, NULL, "t.tmpl", &t, err, sizeof(err));
	assert_int_equal(r, 0);
	for (size_t i = 0; i < t->nrefs; i++) {
		const char *v = store_get(t->refs[i].path);

		vals[i].missing = !v;
		vals[i].data = (const unsigned char *)v;
		vals[i].len = v ? strlen(v) : 0;
	}
	r = template_render(t, format, 0, vals, missing_empty, max, &out, NULL, reason, reasonlen);
	template_free(t);
	*ret_r = r;
	if (r < 0)
		return NULL;
	s = strndup((const char *)out->data, out->len);
	assert_true(secret_is_locked(out) || true);
	secret_unref(out);
	return s;
}

static const struct {
	const char *text;
	enum escape_kind format;
	const char *want;
} good[] = {
	{ "no references\n", ESCAPE_ENV, "no references\n" },
	{ "", ESCAPE_ENV, "" },
	{ "U={{ prod/db/username }}\n", ESCAPE_ENV, "U=\"app\"\n" },
	{ "U={{prod/db/username}}", ESCAPE_RAW, "U=app" },
	{ "P={{ prod/db/password }}", ESCAPE_ENV, "P=\"p@ss\\\"w\\$rd'\\`\\\\\"" },
	{ "P={{ prod/db/password }}", ESCAPE_SHELL, "P='p@ss\"w$rd'\\''`\\'" },
	{ "P={{ prod/db/password | raw }}", ESCAPE_ENV, "P=p@ss\"w$rd'`\\" },
	{ "u://{{ prod/db/username }}:{{ prod/db/password | url }}@h", ESCAPE_RAW,
	  "u://app:p%40ss%22w%24rd%27%60%5C@h" },
	{ "{{ prod/db/username | json }}", ESCAPE_ENV, "\"app\"" },
	{ "{{ \"odd name/x\" }}", ESCAPE_RAW, "odd" },
	{ "{{ prod/db/username | base64 }}", ESCAPE_ENV, "\"YXBw\"" },
	{ "{{ b64 | base64d }}", ESCAPE_ENV, "\"hello\"" },
	{ "{{ b64 | base64d | base64 | base64d | raw }}", ESCAPE_ENV, "hello" },
	{ "{{ prod/db/port | default \"5432\" }}", ESCAPE_ENV, "\"5432\"" },
	{ "{{ prod/db/username | default \"x\\\"y\" }}", ESCAPE_RAW, "app" },
	{ "{{ prod/db/port | default \"a\\\"b\" | raw }}", ESCAPE_ENV, "a\"b" },
	{ "a{{! a comment {{ with }} braces? no }} b", ESCAPE_ENV, "a braces? no }} b" },
	{ "a{{! a comment }}b", ESCAPE_ENV, "ab" },
	/* A comment alone on its lines takes its newline along; elsewhere it does not. */
	{ "{{! first }}\nx\n{{! two\nlines }}\r\ny\n", ESCAPE_ENV, "x\ny\n" },
	{ "x {{! c }}\ny", ESCAPE_ENV, "x \ny" },
	{ "x\n{{! c }} \ny", ESCAPE_ENV, "x\n \ny" },
	{ "x {{ nl }} y", ESCAPE_ENV, "x \"a\nb\" y" },
	{ "{ } }} {x}", ESCAPE_ENV, "{ } }} {x}" },
	{ "{{\tprod/db/username\n|\nraw\n}}", ESCAPE_ENV, "app" },
};

static void test_good(void **state)
{
	char reason[256];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char *s = render(good[i].text, good[i].format, false, 1 << 20, &r, reason,
				 sizeof(reason));

		if (!s || strcmp(s, good[i].want) != 0)
			fail_msg("case %zu '%s': got '%s' (%s), want '%s'", i, good[i].text,
				 s ? s : "(error)", s ? "" : reason, good[i].want);
		free(s);
	}
}

static const struct {
	const char *text;
	const char *want; /* the error after "t.tmpl:" */
} bad[] = {
	{ "x {{ a/b ", "1:3: '{{' without a closing '}}'" },
	{ "\n\n  {{ }}", "3:6: expected a path after '{{'" },
	{ "{{ a | nope }}", "1:8: unknown filter 'nope'" },
	{ "{{ a | url | raw }}", "1:14: a filter after the escaper 'url'" },
	{ "{{ a | default }}", "1:16: 'default' needs a quoted value" },
	{ "{{ a | default 5432 }}", "1:16: 'default' needs a quoted value" },
	{ "{{ a | default \"x\" | default \"y\" }}", "1:22: 'default' given twice" },
	{ "{{ /etc/passwd }}", "1:4: not a mount path" },
	{ "{{ a/../b }}", "1:4: not a mount path" },
	{ "{{ a//b }}", "1:4: not a mount path" },
	{ "{{ \"a\nb\" }}", "1:6: newline inside a quoted string" },
	{ "{{ \"a\\nb\" }}", "1:6: unknown escape" },
	{ "{{ \"ab }}", "1:4: unterminated quoted string" },
	{ "{{ a b }}", "1:6: expected '|' or '}}'" },
	{ "{{* a | env }}", "1:7: '{{*' takes no filters" },
	{ "ok\n{{! never closed", "2:1: unterminated comment" },
	{ "{{ a | | }}", "1:8: expected a filter name after '|'" },
	{ "{{ a | |raw }}", "1:8: expected a filter name after '|'" },
	{ "line1\nline2 é {{ x | bad }}", "2:17: unknown filter 'bad'" },
};

static void test_bad(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct template *t = NULL;
		char err[TEMPLATE_ERR_MAX] = "";
		char want[256];
		int r;

		r = template_parse(bad[i].text, strlen(bad[i].text), NULL, NULL, "t.tmpl", &t, err,
				   sizeof(err));
		snprintf(want, sizeof(want), "t.tmpl:%s", bad[i].want);
		if (r != -EINVAL || t || strncmp(err, want, strlen(want)) != 0)
			fail_msg("case %zu '%s': r=%d err '%s', want '%s'", i, bad[i].text, r, err,
				 want);
	}
}

static void test_limits(void **state)
{
	char err[TEMPLATE_ERR_MAX] = "";
	struct template *t = NULL;
	char *big = malloc(TEMPLATE_MAX_BYTES + 2);
	size_t n = 0;
	int r;

	assert_non_null(big);
	memset(big, 'x', TEMPLATE_MAX_BYTES + 1);
	r = template_parse(big, TEMPLATE_MAX_BYTES, NULL, NULL, "t.tmpl", &t, err, sizeof(err));
	assert_int_equal(r, 0);
	template_free(t);
	t = NULL;
	r = template_parse(big, TEMPLATE_MAX_BYTES + 1, NULL, NULL, "t.tmpl", &t, err, sizeof(err));
	assert_int_equal(r, -EFBIG);
	assert_null(t);
	assert_string_equal(err, "t.tmpl: larger than 64 KiB");

	/* 256 references parse; the 257th is refused where it stands. */
	for (int i = 0; i < TEMPLATE_MAX_REFS; i++)
		n += (size_t)snprintf(big + n, 64, "{{ k%d }}\n", i);
	r = template_parse(big, n, NULL, NULL, "t.tmpl", &t, err, sizeof(err));
	assert_int_equal(r, 0);
	assert_int_equal(t->nrefs, TEMPLATE_MAX_REFS);
	template_free(t);
	t = NULL;
	n += (size_t)snprintf(big + n, 64, "{{ one/more }}\n");
	r = template_parse(big, n, NULL, NULL, "t.tmpl", &t, err, sizeof(err));
	assert_int_equal(r, -E2BIG);
	assert_null(t);
	assert_string_equal(err, "t.tmpl:257:1: more than 256 references in one template");
	free(big);
}

static void test_render_errors_never_show_values(void **state)
{
	char reason[256] = "";
	char *s;
	int r;

	/* A missing reference: -ENOENT naming line and path. */
	s = render("a\nb\nP={{ prod/db/pasword }}\n", ESCAPE_ENV, false, 4096, &r, reason,
		   sizeof(reason));
	assert_null(s);
	assert_int_equal(r, -ENOENT);
	assert_string_equal(reason, "line 3: prod/db/pasword: not found");
	/* missing = empty: an empty value in the format. */
	s = render("P={{ prod/db/pasword }}", ESCAPE_ENV, true, 4096, &r, reason, sizeof(reason));
	assert_non_null(s);
	assert_string_equal(s, "P=\"\"");
	free(s);
	/* A value the format cannot hold: named by line and path, not by value. */
	s = render("\n{{ nl | ini }}", ESCAPE_ENV, false, 4096, &r, reason, sizeof(reason));
	assert_null(s);
	assert_int_equal(r, -EINVAL);
	assert_true(strncmp(reason, "line 2: nl: ", 12) == 0);
	assert_null(strstr(reason, "a\nb"));
	s = render("{{ b64 | base64 | base64d | base64d | base64d }}", ESCAPE_RAW, false, 4096, &r,
		   reason, sizeof(reason));
	assert_null(s);
	assert_int_equal(r, -EINVAL);
	/* Past max_body. */
	s = render("0123456789{{ prod/db/username }}", ESCAPE_RAW, false, 12, &r, reason,
		   sizeof(reason));
	assert_null(s);
	assert_int_equal(r, -EFBIG);
	assert_string_equal(reason,
			    "line 1: prod/db/username: output larger than max_body (12 bytes)");
	s = render("0123456789{{ prod/db/username }}", ESCAPE_RAW, false, 13, &r, reason,
		   sizeof(reason));
	assert_string_equal(s, "0123456789app");
	free(s);
	s = render("0123456789abcdef", ESCAPE_RAW, false, 12, &r, reason, sizeof(reason));
	assert_null(s);
	assert_int_equal(r, -EFBIG);
}

static void test_delims(void **state)
{
	char open[TEMPLATE_DELIM_MAX + 1], close[TEMPLATE_DELIM_MAX + 1];
	char err[TEMPLATE_ERR_MAX] = "";
	struct template_value v = { .data = (const unsigned char *)"app", .len = 3 };
	struct template *t = NULL;
	struct secret *out = NULL;
	const char *text = "{{ .Values.x }} <% prod/db/username | raw %> <%! c %>";
	int r;

	assert_int_equal(template_delims("<% %>", open, close, err, sizeof(err)), 0);
	assert_string_equal(open, "<%");
	assert_string_equal(close, "%>");
	assert_int_equal(template_delims("  [[\t]] ", open, close, err, sizeof(err)), 0);
	assert_string_equal(open, "[[");
	assert_string_equal(close, "]]");
	assert_int_equal(template_delims("<%", open, close, err, sizeof(err)), -EINVAL);
	assert_int_equal(template_delims("<% %> x", open, close, err, sizeof(err)), -EINVAL);
	assert_int_equal(template_delims("<123456789 >", open, close, err, sizeof(err)), -EINVAL);
	assert_int_equal(template_delims("<! !>", open, close, err, sizeof(err)), -EINVAL);

	r = template_parse(text, strlen(text), "<%", "%>", "t.tmpl", &t, err, sizeof(err));
	if (r < 0)
		fail_msg("%s", err);
	assert_int_equal(r, 0);
	assert_int_equal(t->nrefs, 1);
	assert_string_equal(t->refs[0].path, "prod/db/username");
	assert_int_equal(t->refs[0].col, 17);
	r = template_render(t, ESCAPE_ENV, 0, &v, false, 4096, &out, NULL, err, sizeof(err));
	assert_int_equal(r, 0);
	assert_int_equal(out->len, strlen("{{ .Values.x }} app "));
	assert_memory_equal(out->data, "{{ .Values.x }} app ", out->len);
	secret_unref(out);
	template_free(t);
}

/* The rendered bytes are in a secret, wiped at the last unref. */
static int wiped_ok;
static void wipe_hook(const unsigned char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (data[i])
			return;
	wiped_ok++;
}

static void test_output_is_a_secret(void **state)
{
	const char *text = "P={{ prod/db/username }}";
	struct template_value v = { .data = (const unsigned char *)"app", .len = 3 };
	char err[TEMPLATE_ERR_MAX];
	struct template *t = NULL;
	struct secret *out = NULL;
	long live = secret_live_count();

	assert_int_equal(template_parse(text, strlen(text), NULL, NULL, "t", &t, err, sizeof(err)),
			 0);
	assert_int_equal(
		template_render(t, ESCAPE_ENV, 0, &v, false, 4096, &out, NULL, err, sizeof(err)),
		0);
	assert_int_equal(secret_live_count(), live + 1);
	secret_set_free_hook(wipe_hook);
	wiped_ok = 0;
	secret_unref(out);
	secret_set_free_hook(NULL);
	assert_int_equal(wiped_ok, 1);
	assert_int_equal(secret_live_count(), live);
	template_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_render_errors_never_show_values),
		cmocka_unit_test(test_delims),
		cmocka_unit_test(test_output_is_a_secret),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
