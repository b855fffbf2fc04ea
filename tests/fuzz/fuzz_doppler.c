/*
 * fuzz_doppler.c - every parser of what Doppler (or whoever answers in its
 * place) sends, on arbitrary bytes.  The first byte picks the parser, the
 * rest is the input:
 *
 *   0  secrets/download?format=json (the whole config)
 *   1  an error body {"messages": [...], "success": false}
 *   2  SOURCE: what follows "doppler:"
 *
 * A download handed back is a table in name order whose names are all safe
 * file names and whose values are exactly the strings sent; an error hands
 * back nothing, an errno of backend.h's set and a terminated reason that
 * never quotes the input; an error message is printable ASCII; a SOURCE
 * gives both names or neither, each a valid slug.
 */
#include <errno.h>

#include <jansson.h>

#include "backends/doppler_parse.h"
#include "backends/kit.h"
#include "fuzz.h"
#include "secretfs/namespace.h"

#define T "fuzz_doppler"

static void check_download(const char *s, size_t len)
{
	char reason[BACKEND_REASON_MAX] = "";
	struct secret *doc = NULL;
	struct secret_entry e;
	size_t hidden = 99;
	json_t *root;
	int r;

	r = doppler_parse_download(s, len, &doc, &hidden, reason, sizeof(reason));
	if (r < 0) {
		fuzz_check(doc == NULL, T, "a document came back with an error");
		fuzz_check(hidden == 99, T, "hidden written on an error");
		fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T, "a reason unterminated");
		fuzz_parse_error_ok(s, r, reason, 0, T);
		return;
	}
	fuzz_secret_ok(doc, T);
	fuzz_check(doc->kind == SECRET_TABLE, T, "a document that is not a table");
	root = json_loadb(s, len, JSON_ALLOW_NUL, NULL);
	fuzz_check(root != NULL, T, "a document from JSON jansson cannot read");
	fuzz_check(secret_table_count(doc) + hidden == json_object_size(root), T,
		   "names neither shown nor hidden");
	for (size_t i = 0; secret_table_at(doc, i, &e); i++) {
		json_t *v = json_object_get(root, e.name);

		fuzz_check(ns_name_is_safe(e.name, e.namelen), T, "an unsafe name shown");
		fuzz_check(json_is_string(v) && json_string_length(v) == e.valuelen &&
				   memcmp(json_string_value(v), e.value, e.valuelen) == 0,
			   T, "a value that is not the string sent");
	}
	json_decref(root);
	secret_unref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[BACKEND_REASON_MAX] = "", msg[KIT_ERROR_MESSAGE_MAX];
	char *s, *project = (char *)1, *config = (char *)1;
	size_t len;
	int r;

	s = fuzz_selected_input(data, size, &len);
	if (!s)
		return 0;
	switch (data[0] % 3) {
	case 0:
		check_download(s, len);
		break;
	case 1:
		doppler_parse_error(s, len, msg, sizeof(msg));
		fuzz_check(fuzz_text_ok(msg, sizeof(msg)), T, "a message unterminated");
		for (const char *p = msg; *p; p++)
			fuzz_check(*p >= 0x20 && *p <= 0x7e, T, "a message not printable ASCII");
		break;
	default:
		r = doppler_parse_source(s, &project, &config, reason, sizeof(reason));
		if (r < 0) {
			fuzz_check(project == (char *)1 && config == (char *)1, T,
				   "names came back with an error");
			fuzz_check(r == -EINVAL || r == -ENOMEM, T, "a SOURCE error not EINVAL");
			fuzz_check(fuzz_text_ok(reason, sizeof(reason)), T,
				   "a reason unterminated");
		} else {
			fuzz_check((project == NULL) == (config == NULL), T, "one name of two");
			fuzz_check(!project || (doppler_name_is_valid(project) &&
						doppler_name_is_valid(config)),
				   T, "a name that is not a slug");
			free(project);
			free(config);
		}
		break;
	}
	free(s);
	return 0;
}
