/*
 * fuzz_vault.c - every parser of what Vault (or whoever answers in its
 * place) sends, on arbitrary bytes.  The first byte picks the parser, the
 * rest is the body:
 *
 *   0  KV v2 read, status 200      5  auth (login, renew-self)
 *   1  KV v2 read, status 404      6  {"errors": [...]}
 *   2  KV v1 read                  7  mount description, for "secret/team/app"
 *   3  LIST, then the same body as   8  an RFC 3339 time
 *      KV v2 metadata (versions)
 *   4  lookup-self                 9  the SOURCE string (after "vault:")
 *
 * A success hands back a well-formed secret (a listing's names are safe), a
 * token of printable ASCII, a mount that leads the path; an error hands back
 * nothing, an errno of backend.h's set and a terminated reason.
 */
#include <errno.h>

#include "backends/vault_parse.h"
#include "fuzz.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define T "fuzz_vault"

static const char *input; /* this run's body, for fuzz_no_quote() */

static void check_error(int r, const char *reason)
{
	fuzz_parse_error_ok(input, r, reason, 0, T);
}

static void check_value(int r, struct secret *v, const struct backend_info *info,
			const char *reason)
{
	if (r < 0) {
		fuzz_check(v == NULL, T, "a value came back with an error");
		check_error(r, reason);
		return;
	}
	fuzz_secret_ok(v, T);
	fuzz_check(fuzz_text_ok(info->version, sizeof(info->version)), T, "a version unterminated");
	secret_unref(v);
}

static void listing(const char *s, size_t len)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *l = NULL;
	struct secret_entry e;
	int r = vault_parse_list(s, len, &l, reason, sizeof(reason));

	if (r < 0) {
		fuzz_check(l == NULL, T, "a listing came back with an error");
		check_error(r, reason);
		return;
	}
	fuzz_secret_ok(l, T);
	for (size_t i = 0; secret_table_at(l, i, &e); i++)
		fuzz_check(ns_name_is_safe(e.name, e.namelen), T, "an unsafe name listed");
	secret_unref(l);
}

static void token(const char *s, size_t len, int which)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct vault_token_info ti = { 0 };
	char *tok = NULL;
	size_t toklen = 0;
	int r;

	if (which == 4) {
		r = vault_parse_lookup_self(s, len, &ti, reason, sizeof(reason));
		if (r < 0)
			check_error(r, reason);
		return;
	}
	r = vault_parse_auth(s, len, &tok, &toklen, &ti, reason, sizeof(reason));
	if (r < 0) {
		fuzz_check(tok == NULL, T, "a token came back with an error");
		check_error(r, reason);
		return;
	}
	fuzz_check(tok && strlen(tok) == toklen && toklen > 0 && toklen <= VAULT_TOKEN_MAX, T,
		   "a token of the wrong length");
	fuzz_check(vault_token_is_valid(tok, toklen), T, "a token that is not printable ASCII");
	wipe_free(tok, toklen + 1);
}

static void mount(const char *s, size_t len)
{
	static const char path[] = "secret/team/app";
	char reason[BACKEND_REASON_MAX] = "";
	struct vault_mount_info mi = { 0 };
	int r = vault_parse_mount(s, len, path, &mi, reason, sizeof(reason));
	size_t ml;

	if (r < 0) {
		/* A mount's type is no secret, and a refusal names it on purpose. */
		input = "";
		check_error(r, reason);
		return;
	}
	fuzz_check(mi.kv_version == 1 || mi.kv_version == 2, T, "a KV version not 1 or 2");
	ml = strlen(mi.mount);
	fuzz_check(strncmp(path, mi.mount, ml) == 0 && (path[ml] == '/' || path[ml] == '\0'), T,
		   "a mount that does not lead the path");
	free(mi.mount);
}

static void source(const char *s)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct vault_addr a = { 0 };
	int r = vault_parse_source(s, "http://127.0.0.1:8200", &a, reason, sizeof(reason));

	if (r < 0) {
		fuzz_check(r == -EINVAL || r == -ENOMEM, T, "a SOURCE error not EINVAL");
		fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T, "a reason unterminated");
		return;
	}
	fuzz_check(a.base_url && a.path && *a.path, T, "a SOURCE without a server or a path");
	fuzz_check(a.path[0] != '/' && a.path[strlen(a.path) - 1] != '/', T,
		   "a path with an outer '/'");
	fuzz_check(ns_id_is_safe(a.path), T, "an unsafe path");
	vault_addr_done(&a);
}

/*
 * A plain UTC time ("2024-05-01T12:00:00Z", from 1970 on) means what it says:
 * printed back it is the same text, so no date was moved to another day.
 */
static void time_round_trip(const char *s)
{
	char buf[32];
	int64_t usec;

	if (vault_parse_time(s, &usec) < 0 || usec < 0 || strlen(s) != 20 || s[19] != 'Z' ||
	    s[10] != 'T' || strcmp(s + 17, "60Z") == 0)
		return;
	fuzz_check(format_rfc3339((uint64_t)usec, buf, sizeof(buf)) == 0 && strcmp(buf, s) == 0, T,
		   "a time that does not read back: a date out of its month accepted");
}

/* A metadata answer: a list of entries without values, and a previous below current. */
static void versions(const char *s, size_t len)
{
	json_t *list = NULL;
	uint64_t previous = 7;
	char reason[BACKEND_REASON_MAX];
	int r;

	r = vault_parse_kv2_metadata(s, len, &list, &previous, reason, sizeof(reason));
	if (r < 0) {
		fuzz_check(list == NULL && previous == 7, T, "metadata output with an error");
		check_error(r, reason);
		return;
	}
	fuzz_check(json_array_size(list) <= 1000, T, "a version list past its bound");
	fuzz_version_list_ok(list, T);
	json_decref(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[BACKEND_REASON_MAX] = "", msg[VAULT_ERROR_MAX + 1];
	struct backend_info info = { 0 };
	struct secret *v = NULL;
	size_t len;
	char *s;
	int r;

	s = fuzz_selected_input(data, size, &len);
	if (!s)
		return 0;
	input = s;
	switch (data[0] % 10) {
	case 0:
	case 1:
		r = vault_parse_kv2_read(data[0] % 10 ? 404 : 200, s, len, &v, &info, reason,
					 sizeof(reason));
		check_value(r, v, &info, reason);
		break;
	case 2:
		r = vault_parse_kv1_read(s, len, &v, &info, reason, sizeof(reason));
		check_value(r, v, &info, reason);
		break;
	case 3:
		listing(s, len);
		versions(s, len);
		break;
	case 4:
	case 5:
		token(s, len, data[0] % 10);
		break;
	case 6:
		vault_parse_error(s, len, msg, sizeof(msg));
		fuzz_check(strlen(msg) <= VAULT_ERROR_MAX, T, "an error message too long");
		for (const char *p = msg; *p; p++)
			fuzz_check(*p >= 0x20 && *p < 0x7f, T,
				   "an error message not one clean line");
		break;
	case 7:
		mount(s, len);
		break;
	case 8:
		time_round_trip(s);
		break;
	default:
		source(s);
		break;
	}
	free(s);
	return 0;
}
