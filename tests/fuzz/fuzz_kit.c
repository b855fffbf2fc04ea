/*
 * fuzz_kit.c - the backend kit's parsers (src/backends/kit_parse.c) on
 * arbitrary bytes: RFC 3339 times in both modes, the {"error":{...}}
 * document of Google and Azure, next-page tokens and links.  Byte 0 picks
 * the parser.  Promises checked: a time that parses as strict RFC 3339
 * parses the same in ISO 8601 mode, and one of exactly
 * "YYYY-MM-DDTHH:MM:SSZ" round-trips through format_rfc3339(); an error
 * document gives printable, bounded code and message and never more than
 * the message's first line; a page token is printable ASCII; a next link
 * that is followed has the store's scheme, host and port.
 */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "backends/kit.h"
#include "fuzz.h"
#include "secretfs/util.h"

#define T    "fuzz_kit"
#define BASE "https://v.vault.azure.net:443/secrets?api-version=7.4"

static bool printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

static void check_time(const char *s)
{
	int64_t strict = 0, iso = 0;
	char back[32];

	if (kit_parse_time(s, 0, &strict) < 0)
		return;
	fuzz_check(kit_parse_time(s, KIT_TIME_ISO8601, &iso) == 0 && iso == strict, T,
		   "strict RFC 3339 that ISO 8601 mode reads otherwise");
	if (strict >= 0 && strlen(s) == 20 && s[10] == 'T' && s[19] == 'Z' &&
	    strcmp(s + 17, "60Z") != 0) {
		fuzz_check(format_rfc3339((uint64_t)strict, back, sizeof(back)) == 0 &&
				   strcmp(back, s) == 0,
			   T, "a time that does not format back");
	}
}

static void check_error_doc(const char *s, size_t len)
{
	char code[KIT_ERROR_CODE_MAX], msg[KIT_ERROR_MESSAGE_MAX];

	kit_parse_json_error(s, len, len % 2 ? "code" : "status", code, sizeof(code), msg,
			     sizeof(msg));
	fuzz_check(fuzz_text_ok(code, sizeof(code)) && fuzz_text_ok(msg, sizeof(msg)), T,
		   "an unterminated code or message");
	fuzz_check(printable(code) && printable(msg), T, "a code or message not printable");
	fuzz_check(!strchr(msg, '\n'), T, "a message past its first line");
}

static void check_pages(const char *s, size_t len)
{
	json_auto_t *root = json_loadb(s, len, 0, NULL);
	char reason[BACKEND_REASON_MAX] = "", *next = NULL;
	int r;

	if (!root)
		return;
	r = kit_page_token(root, "nextPageToken", &next, reason, sizeof(reason));
	fuzz_check(r == 0 || r == -EBADMSG || r == -ENOMEM, T, "a page token error not EBADMSG");
	fuzz_check(r == 0 || !next, T, "an error with a token");
	if (next) {
		fuzz_check(*next && printable(next) && !strchr(next, ' '), T,
			   "a page token empty or not printable");
		free(next);
		next = NULL;
	}
	r = kit_page_link(root, "nextLink", BASE, &next, reason, sizeof(reason));
	fuzz_check(r == 0 || r == -EBADMSG || r == -EIO || r == -ENOMEM, T,
		   "a next link error not EBADMSG or EIO");
	fuzz_check(r == 0 || !next, T, "an error with a link");
	if (next) {
		fuzz_check(kit_same_origin(BASE, next), T, "a link to another origin followed");
		free(next);
	}
	fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T, "an unterminated reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	char *s = fuzz_selected_input(data, size, &len);

	if (!s)
		return 0;
	switch (data[0] % 3) {
	case 0:
		check_time(s);
		break;
	case 1:
		check_error_doc((const char *)data + 1, len);
		break;
	default:
		check_pages((const char *)data + 1, len);
		break;
	}
	free(s);
	return 0;
}
