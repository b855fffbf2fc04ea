/*
 * fuzz_http.c - what the HTTP layer parses of a response, on arbitrary
 * bytes: header lines (Retry-After in both its forms, x-amzn-ErrorType, a
 * new "HTTP/" status line) and the body, through the very callbacks curl
 * calls (on_header, on_body).  Those are static, so this target includes
 * http.c itself rather than give the daemon a test-only entry point.
 *
 * Input: byte 0 picks the body bound (max_body), byte 1 the size of the
 * pieces the body arrives in; then header lines up to an empty line, then
 * the body.  The body kept must be exactly the bytes delivered, never more
 * than max_body, NUL-terminated; a refused piece must say why (too big or no
 * memory); a Retry-After kept is within its cap; the error type is a
 * terminated string.  The body also goes through http_escape_path().
 */
#include "../../src/http.c"

#include <ctype.h>

#include "fuzz.h"

#define T "fuzz_http"

static void headers(struct http_attempt *a, const char *p, const char *end)
{
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		char *line = malloc(n ? n : 1);

		/* A copy of exactly the line, as curl hands it over: no NUL after it. */
		if (!line)
			return;
		memcpy(line, p, n);
		fuzz_check(on_header(line, 1, n, a) == n, T, "a header line refused");
		free(line);
		fuzz_check(memchr(a->error_type, '\0', sizeof(a->error_type)) != NULL, T,
			   "an error type unterminated");
		fuzz_check(!a->has_retry_after || a->retry_after_usec <= RETRY_AFTER_MAX_USEC, T,
			   "a Retry-After past its cap");
		p += n;
	}
}

static void body(struct http_attempt *a, const uint8_t *p, size_t len, size_t piece)
{
	size_t kept = 0;

	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		char *copy = malloc(n);
		size_t got;

		if (!copy)
			return;
		memcpy(copy, p + off, n);
		got = on_body(copy, 1, n, a);
		free(copy);
		if (got != n) {
			fuzz_check(got == 0 && (a->too_big || a->nomem), T,
				   "a piece refused without a reason");
			fuzz_check(kept + n > a->max_body || a->nomem, T,
				   "a piece refused within the bound");
			break;
		}
		kept += n;
		fuzz_check(a->len == kept && a->len <= a->max_body, T,
			   "a body of the wrong length");
	}
	fuzz_check(a->len == kept, T, "a body of the wrong length");
	if (a->body) {
		fuzz_check(a->len < a->cap && a->body[a->len] == '\0', T, "a body unterminated");
		fuzz_check(memcmp(a->body, p, a->len) == 0, T, "a body that is not what was sent");
	}
}

static void escape(const uint8_t *p, size_t len)
{
	char *s = fuzz_cstr(p, len), *e;

	if (!s)
		return;
	for (int keep = 0; keep < 2; keep++) {
		e = http_escape_path(s, keep);
		if (!e)
			break;
		for (const char *q = e; *q; q++) {
			if (*q == '%') {
				fuzz_check(isxdigit((unsigned char)q[1]) &&
						   isxdigit((unsigned char)q[2]),
					   T, "an escape that is not %XX");
				q += 2;
				continue;
			}
			fuzz_check(isalnum((unsigned char)*q) || strchr("-._~", *q) ||
					   (keep && *q == '/'),
				   T, "a character left unescaped");
		}
		free(e);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_attempt a = { 0 };
	const char *start, *end, *sep;
	size_t max_body, piece, hlen;

	if (size < 2)
		return 0;
	max_body = (size_t)data[0] * 8;
	piece = (size_t)data[1] % 64 + 1;
	start = (const char *)data + 2;
	end = (const char *)data + size;
	sep = memmem(start, (size_t)(end - start), "\n\n", 2);
	if (!sep)
		sep = memmem(start, (size_t)(end - start), "\n\r\n", 3);
	hlen = sep ? (size_t)(sep - start) + 1 : (size_t)(end - start);
	attempt_reset(&a, max_body);
	headers(&a, start, start + hlen);
	start += hlen;
	start += start < end && *start == '\r';
	start += start < end && *start == '\n';
	body(&a, (const uint8_t *)start, (size_t)(end - start), piece);
	escape((const uint8_t *)start, (size_t)(end - start));
	attempt_reset(&a, 0);
	return 0;
}
