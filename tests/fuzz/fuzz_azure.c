/*
 * fuzz_azure.c - every parser of what Azure Key Vault, its token endpoint
 * or IMDS (or whoever answers in their place) sends, on arbitrary bytes.
 * The first byte picks the parser, the rest is the input:
 *
 *   0  GetSecret (a SecretBundle)     3  the token endpoint's error
 *   1  GetSecrets (a listing page)     4  a Key Vault name -> id -> name
 *   2  a token answer (v2.0, IMDS)     5  the SOURCE string (after "azure-kv:")
 *
 * A success hands back a well-formed secret, names that are Key Vault
 * names, a nextLink on the vault's own host, a token of printable ASCII,
 * ids that are safe and map back to the name; an error hands back nothing,
 * an errno of backend.h's set and a reason that does not quote the input.
 */
#include <errno.h>

#include "backends/azure_parse.h"
#include "backends/kit.h"
#include "fuzz.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define T    "fuzz_azure"
#define BASE "https://myvault.vault.azure.net"

static const char *input; /* this run's input, for fuzz_no_quote() */

static void secret(const char *s, size_t len)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct backend_info info = { 0 };
	struct secret *v = NULL;
	int r = azure_parse_secret(s, len, &v, &info, reason, sizeof(reason));

	if (r < 0) {
		fuzz_check(v == NULL, T, "a value came back with an error");
		fuzz_parse_error_ok(input, r, reason, 0, T);
		return;
	}
	fuzz_secret_ok(v, T);
	fuzz_check(info.version[0] && fuzz_text_ok(info.version, sizeof(info.version)), T,
		   "no version, or one unterminated");
	secret_unref(v);
}

static void listing(const char *s, size_t len)
{
	char reason[BACKEND_REASON_MAX] = "", *id, *back;
	struct azure_page pg = { 0 };
	int r = azure_parse_list(s, len, BASE, &pg, reason, sizeof(reason));

	if (r < 0) {
		fuzz_check(pg.names == NULL && pg.next_link == NULL, T,
			   "a page came back with an error");
		fuzz_parse_error_ok(input, r, reason, 0, T);
		return;
	}
	fuzz_check(!pg.next_link || kit_same_origin(BASE, pg.next_link), T,
		   "a nextLink to another host accepted");
	for (size_t i = 0; i < pg.n; i++) {
		if (azure_name_to_id(pg.names[i], "--", &id) < 0)
			continue;
		fuzz_check(ns_id_is_safe(id), T, "an unsafe id from a listed name");
		fuzz_check(azure_id_to_name(id, "--", &back) == 0 && strcmp(back, pg.names[i]) == 0,
			   T, "a listed name that does not map back");
		free(back);
		free(id);
	}
	azure_page_done(&pg);
}

static void token(const char *s, size_t len)
{
	char reason[BACKEND_REASON_MAX] = "", *tok = NULL;
	size_t n = 0;
	uint64_t life = 0;
	int r = azure_parse_token(s, len, &tok, &n, &life, reason, sizeof(reason));

	if (r < 0) {
		fuzz_check(tok == NULL, T, "a token came back with an error");
		fuzz_parse_error_ok(input, r, reason, 0, T);
		return;
	}
	fuzz_check(tok && strlen(tok) == n && n > 0 && n <= AZURE_TOKEN_MAX, T,
		   "a token of the wrong length");
	for (size_t i = 0; i < n; i++)
		fuzz_check(tok[i] > ' ' && tok[i] <= '~', T, "a token not printable ASCII");
	fuzz_check(life > 0, T, "a token without a lifetime");
	wipe_free(tok, n + 1);
}

static void token_error(const char *s, size_t len)
{
	char code[KIT_ERROR_CODE_MAX], msg[KIT_ERROR_MESSAGE_MAX];

	azure_parse_token_error(s, len, code, sizeof(code), msg, sizeof(msg));
	for (const char *p = code; *p; p++)
		fuzz_check(*p >= 0x20 && *p < 0x7f, T, "an error code not one clean line");
	for (const char *p = msg; *p; p++)
		fuzz_check(*p >= 0x20 && *p < 0x7f, T, "an error message not one clean line");
}

static void names(const char *s)
{
	char *id = NULL, *back = NULL;

	if (azure_name_to_id(s, "--", &id) == 0) {
		fuzz_check(ns_id_is_safe(id), T, "an unsafe id");
		fuzz_check(azure_id_to_name(id, "--", &back) == 0 && strcmp(back, s) == 0, T,
			   "a name -> id -> name that changed");
		free(back);
		free(id);
	}
	/* Any id: either no name, or a valid one that reads back as the id. */
	if (azure_id_to_name(s, "--", &back) == 0) {
		fuzz_check(azure_name_to_id(back, "--", &id) == 0 && strcmp(id, s) == 0, T,
			   "an id -> name -> id that changed");
		free(id);
		free(back);
	}
}

static void source(const char *s)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct azure_source a = { 0 };
	int r = azure_parse_source(s, &a, reason, sizeof(reason));

	if (r < 0) {
		fuzz_check(r == -EINVAL || r == -ENOMEM, T, "a SOURCE error not EINVAL");
		fuzz_check(reason[0] && fuzz_text_ok(reason, sizeof(reason)), T,
			   "a SOURCE error without a reason");
		return;
	}
	fuzz_check(strncmp(a.base_url, "http", 4) == 0 && !strchr(a.base_url + 8, '/') &&
			   !strchr(a.base_url, '@') && !strchr(a.base_url, '?'),
		   T, "a vault URL with more than a host and a port");
	azure_source_done(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	char *s = fuzz_selected_input(data, size, &len);

	if (!s)
		return 0;
	input = s;
	switch (data[0] % 6) {
	case 0:
		secret(s, len);
		break;
	case 1:
		listing(s, len);
		break;
	case 2:
		token(s, len);
		break;
	case 3:
		token_error(s, len);
		break;
	case 4:
		names(s);
		break;
	default:
		source(s);
		break;
	}
	free(s);
	return 0;
}
