/*
 * fuzz_selector.c - the version selector parser on arbitrary bytes.  A
 * selector it accepts must spell back to the input exactly (one spelling
 * each), parse again to the same thing, and carry nothing a path, a URL
 * query or a cache key treats specially ('/', '?', '&', '%', controls).
 * A refusal is -EINVAL and leaves the output as it was.  The input is a C
 * string, as a path component is: bytes past a NUL are not part of it.
 */
#include <errno.h>

#include "fuzz.h"
#include "secretfs/selector.h"

#define T "fuzz_selector"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char buf[SELECTOR_ARG_MAX + 8];
	struct selector sel = { .kind = SELECTOR_PENDING, .arg = "x" }, again;
	int r;

	if (!s)
		return 0;
	r = selector_parse(s, &sel);
	fuzz_check(r == 0 || r == -EINVAL, T, "an error other than EINVAL");
	if (r < 0) {
		fuzz_check(sel.kind == SELECTOR_PENDING && strcmp(sel.arg, "x") == 0, T,
			   "a refusal changed the output");
	} else {
		selector_format(&sel, buf, sizeof(buf));
		fuzz_check(strcmp(buf, s) == 0, T, "a selector with a second spelling");
		fuzz_check(selector_parse(buf, &again) == 0 && again.kind == sel.kind &&
				   again.number == sel.number && strcmp(again.arg, sel.arg) == 0,
			   T, "a selector that does not read back");
		fuzz_check(strpbrk(s, "/?&% \t\r\n#\\") == NULL, T, "a selector with a special byte");
		fuzz_check(strcmp(sel.arg, "..") != 0 && strcmp(sel.arg, ".") != 0, T,
			   "a dot component as an argument");
	}
	free(s);
	return 0;
}
