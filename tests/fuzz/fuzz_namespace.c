/*
 * fuzz_namespace.c - the namespace's JSON-to-file mapping and listings on
 * arbitrary bytes.  The first byte picks the parser, the rest is its input:
 *
 *   0  a JSON value through ns_secret_from_json() under every flag
 *      combination (what every backend does with a value it fetched)
 *   1  a store's response through ns_json_load_object()
 *   2  lines as secret ids: ns_listing_from_ids() at the top, under the first
 *      id and under each id's first component; the lines as a store's
 *      "name" / "name/" keys through ns_listing_from_keys()
 *
 * Every secret that comes back must be a well-formed blob or table, every
 * listing entry a safe name with known flags, every reason a string.
 */
#include <errno.h>
#include <jansson.h>

#include "fuzz.h"
#include "secretfs/backend.h"
#include "secretfs/namespace.h"

#define T	  "fuzz_namespace"
#define MAX_LINES 256

static void check_listing(struct secret *l)
{
	struct secret_entry e;

	fuzz_secret_ok(l, T);
	fuzz_check(l->kind == SECRET_TABLE, T, "a listing that is not a table");
	for (size_t i = 0; secret_table_at(l, i, &e); i++) {
		fuzz_check(ns_name_is_safe(e.name, e.namelen), T, "an unsafe name listed");
		fuzz_check(e.valuelen == 1, T, "listing flags not one byte");
		fuzz_check(e.value[0] != 0 &&
				   !(e.value[0] & ~(BACKEND_LIST_SECRET | BACKEND_LIST_FOLDER)),
			   T, "listing flags unknown");
	}
}

static void from_json(const char *s, size_t len)
{
	static const unsigned flags[] = { 0, NS_JSON_BASE64, NS_JSON_STRICT_NAMES,
					  NS_JSON_BASE64 | NS_JSON_STRICT_NAMES };
	json_error_t je;
	json_t *v = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	char why[160];

	if (!v) {
		ns_json_error_text(&je, why, sizeof(why));
		fuzz_check(fuzz_text_ok(why, sizeof(why)), T, "a JSON error text unterminated");
		return;
	}
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct secret *sec = NULL;
		char reason[256] = "";
		int r = ns_secret_from_json(v, flags[i], &sec, reason, sizeof(reason));

		fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T, "a reason unterminated");
		if (r < 0) {
			fuzz_check(sec == NULL, T, "a secret came back with an error");
			fuzz_check(r == -EINVAL || r == -ENOMEM, T, "an unexpected error");
			continue;
		}
		fuzz_secret_ok(sec, T);
		fuzz_check(json_is_object(v) || sec->kind == SECRET_BLOB, T,
			   "a table from something that is not an object");
		secret_unref(sec);
	}
	json_decref(v);
}

static void load_object(const char *s, size_t len)
{
	char reason[256] = "";
	json_t *o = ns_json_load_object(s, len, 0, "fuzz", reason, sizeof(reason));

	fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T, "a reason unterminated");
	fuzz_no_quote(s, reason, T);
	if (o) {
		fuzz_check(json_is_object(o), T, "an object that is not one");
		json_decref(o);
	} else {
		fuzz_check(strncmp(reason, "fuzz", 4) == 0, T, "a reason without the store's name");
	}
}

static void listings(char *s, size_t len)
{
	const char *lines[MAX_LINES] = { 0 };
	size_t n = 0;
	char *p = s, *end = s + len;
	struct secret *l = NULL;
	char first[64];
	int r;

	while (p <= end && n < MAX_LINES) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl)
			nl = end;
		*nl = '\0';
		lines[n++] = p;
		p = nl + 1;
	}
	r = ns_listing_from_ids(lines, n, "", &l);
	if (r >= 0) {
		check_listing(l);
		secret_unref(l);
	}
	for (size_t i = 0; i < n; i++) {
		size_t fl = strcspn(lines[i], "/");

		if (fl >= sizeof(first))
			continue;
		memcpy(first, lines[i], fl);
		first[fl] = '\0';
		l = NULL;
		r = ns_listing_from_ids(lines, n, i == 0 ? lines[0] : first, &l);
		if (r >= 0) {
			check_listing(l);
			secret_unref(l);
		} else {
			fuzz_check(r == -ENOENT || r == -ENOMEM, T, "an unexpected listing error");
		}
		if (i > 4)
			break;
	}
	l = NULL;
	r = ns_listing_from_keys(lines, n, &l);
	if (r >= 0) {
		check_listing(l);
		secret_unref(l);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	s = fuzz_cstr(data + 1, size - 1);
	if (!s)
		return 0;
	switch (data[0] % 3) {
	case 0:
		from_json(s, size - 1);
		break;
	case 1:
		load_object(s, size - 1);
		break;
	default:
		listings(s, size - 1);
		break;
	}
	free(s);
	return 0;
}
