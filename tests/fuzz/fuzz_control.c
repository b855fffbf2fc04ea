/*
 * fuzz_control.c - the control socket's request line, control_parse_request(),
 * on arbitrary bytes, given as serve() gives them: in a buffer with one byte
 * to spare.  An accepted request names a known command, and its path has no
 * outer '/' and is a safe secret id; a refused one says why.
 */
#include <errno.h>

#include "fuzz.h"
#include "secretfs/control.h"
#include "secretfs/namespace.h"

#define T "fuzz_control"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_request req = { .command = -1 };
	char err[CONTROL_ERR_MAX] = "", *line;
	int r;

	if (size > CONTROL_REQUEST_MAX)
		return 0;
	line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	r = control_parse_request(line, size, &req, err, sizeof(err));
	if (r < 0) {
		fuzz_check(r == -EINVAL, T, "an error not EINVAL");
		fuzz_check(fuzz_text_ok(err, sizeof(err)) && *err, T, "an error without a reason");
	} else {
		fuzz_check(req.command >= CONTROL_STATUS && req.command <= CONTROL_RELOAD, T,
			   "an unknown command accepted");
		fuzz_check(!req.arg || (req.arg >= line && req.arg <= line + size), T,
			   "a path outside the line");
		fuzz_check(!req.arg || (*req.arg && ns_id_is_safe(req.arg)), T,
			   "an unsafe or empty path accepted");
		fuzz_check(!req.arg || req.command == CONTROL_FLUSH ||
				   req.command == CONTROL_REFRESH,
			   T, "a path for a command that takes none");
	}
	free(line);
	return 0;
}
