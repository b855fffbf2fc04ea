/*
 * fuzz_op.c - every parser of what a 1Password Connect server (or whoever
 * answers in its place) sends, on arbitrary bytes.  The first byte picks
 * the parser, the rest is the input:
 *
 *   0  an item (GET /v1/vaults/V/items/ID)    3  a vault (GET /v1/vaults/V)
 *   1  item summaries (GET .../items)         4  an error document
 *   2  vaults by title (GET /v1/vaults?filter) 5  the SOURCE string VAULT[/PREFIX]
 *
 * An item comes back as a well-formed table whose names are safe paths of
 * one or two components (LABEL, SECTION/LABEL); versions are digits or "";
 * summaries have an id and a title; an error message is printable; an
 * error hands back nothing, an errno of backend.h's set and a terminated
 * reason that never quotes a value.
 */
#include <errno.h>

#include "backends/op_parse.h"
#include "fuzz.h"
#include "secretfs/namespace.h"

#define T "fuzz_op"

static const char *input;

static void check_error(int r, const char *reason)
{
	fuzz_check(fuzz_text_ok(reason, BACKEND_REASON_MAX), T, "a reason unterminated");
	fuzz_parse_error_ok(input, r, reason, 0, T);
}

static void version_ok(const char *v)
{
	fuzz_check(strlen(v) < BACKEND_VERSION_MAX && strspn(v, "0123456789") == strlen(v), T,
		   "a version that is not a number");
}

static int count_summary(void *ctx, const struct op_summary *s)
{
	fuzz_check(s->id && *s->id && strlen(s->id) < OP_ID_MAX, T, "a summary without an id");
	fuzz_check(s->title != NULL, T, "a summary without a title");
	version_ok(s->version);
	(*(size_t *)ctx)++;
	return 0;
}

static void item(const char *s, size_t len)
{
	char reason[BACKEND_REASON_MAX] = "", version[BACKEND_VERSION_MAX] = "";
	struct secret *t = NULL;
	size_t hidden = 0;
	int r;

	r = op_parse_item(s, len, &t, version, &hidden, reason, sizeof(reason));
	if (r < 0) {
		fuzz_check(t == NULL, T, "a table came back with an error");
		check_error(r, reason);
		return;
	}
	fuzz_secret_ok(t, T);
	fuzz_check(t->kind == SECRET_TABLE, T, "an item that is not a table");
	version_ok(version);
	for (size_t i = 0; i < secret_table_count(t); i++) {
		struct secret_entry e;
		const char *slash;

		secret_table_at(t, i, &e);
		slash = strchr(e.name, '/');
		fuzz_check(ns_id_is_safe(e.name) && (!slash || !strchr(slash + 1, '/')), T,
			   "a field path that is not LABEL or SECTION/LABEL");
	}
	secret_unref(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[BACKEND_REASON_MAX] = "", id[OP_ID_MAX] = "", msg[160];
	char *s, *vault = NULL, *prefix = NULL;
	size_t len, n = 0;
	int r;

	s = fuzz_selected_input(data, size, &len);
	if (!s)
		return 0;
	input = s;
	switch (data[0] % 6) {
	case 0:
		item(s, len);
		break;
	case 1:
		r = op_parse_summaries(s, len, count_summary, &n, reason, sizeof(reason));
		if (r < 0)
			check_error(r, reason);
		break;
	case 2:
		r = op_parse_vaults(s, len, "Demo", id, reason, sizeof(reason));
		if (r < 0) {
			/* Two vaults of one title: the reason names their ids, which are no secret.
			 */
			fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T,
				   "a reason unterminated");
			if (r != -EIO)
				check_error(r, reason);
		} else {
			fuzz_check(id[0] != '\0', T, "a vault without an id");
		}
		break;
	case 3:
		r = op_parse_vault(s, len, id, reason, sizeof(reason));
		if (r < 0)
			check_error(r, reason);
		else
			fuzz_check(id[0] != '\0', T, "a vault without an id");
		break;
	case 4:
		op_parse_error(s, len, msg, sizeof(msg));
		fuzz_check(fuzz_text_ok(msg, sizeof(msg)), T, "a message unterminated");
		for (const char *c = msg; *c; c++)
			fuzz_check(*c >= 0x20 && *c < 0x7f, T, "a message not printable");
		break;
	default:
		r = op_parse_source(s, &vault, &prefix, reason, sizeof(reason));
		if (r < 0) {
			fuzz_check(r == -EINVAL || r == -ENOMEM, T, "a SOURCE error not EINVAL");
		} else {
			fuzz_check(op_title_is_filterable(vault), T,
				   "a vault a filter cannot quote");
			fuzz_check(!*prefix || ns_id_is_safe(prefix), T, "an unsafe PREFIX");
			free(vault);
			free(prefix);
		}
		break;
	}
	free(s);
	return 0;
}
