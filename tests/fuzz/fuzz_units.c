/*
 * fuzz_units.c - the parsers of settings' values on arbitrary bytes:
 * durations, sizes, booleans and counts (util.c), as the config file and
 * -o give them.  A value that parses must mean what it says: a duration or
 * size printed back as a plain number parses to the same value, a bounded
 * count stays within its bound.  A value with a NUL in it is cut there, as
 * C strings are.
 */
#include <errno.h>
#include <inttypes.h>

#include "fuzz.h"
#include "secretfs/util.h"

#define T "fuzz_units"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), buf[32];
	uint64_t usec, again, u;
	size_t bytes, bytes2;
	bool b;
	int r;

	if (!s)
		return 0;
	r = parse_duration(s, &usec);
	fuzz_check(r == 0 || r == -EINVAL || r == -ERANGE, T, "a duration error not EINVAL");
	if (r == 0 && usec % USEC_PER_SEC == 0) {
		snprintf(buf, sizeof(buf), "%" PRIu64, usec / USEC_PER_SEC);
		fuzz_check(parse_duration(buf, &again) == 0 && again == usec, T,
			   "a duration that does not read back");
	}
	r = parse_size(s, &bytes);
	fuzz_check(r == 0 || r == -EINVAL || r == -ERANGE, T, "a size error not EINVAL");
	if (r == 0) {
		snprintf(buf, sizeof(buf), "%zu", bytes);
		fuzz_check(parse_size(buf, &bytes2) == 0 && bytes2 == bytes, T,
			   "a size that does not read back");
	}
	r = parse_bool(s, &b);
	fuzz_check(r == 0 || r == -EINVAL, T, "a boolean error not EINVAL");
	r = parse_uint(s, 1000, &u);
	fuzz_check(r < 0 || u <= 1000, T, "a count past its bound");
	r = parse_uint(s, UINT64_MAX, &u);
	fuzz_check(r == 0 || r == -EINVAL || r == -ERANGE, T, "a count error not EINVAL");
	free(s);
	return 0;
}
