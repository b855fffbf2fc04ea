/*
 * fuzz_template.c - template_parse() on arbitrary bytes, then
 * template_render() of what parsed.  Byte 0 picks the delimiters ("{{ }}"
 * or "<% %>"), the format, and whether missing references are empty; the
 * rest is the template.  Each reference's value is its own path, and every
 * third one is missing.  Checked: a refusal names the file, a line and a
 * column and hands nothing back; a parsed template has at most 256
 * references, each a safe path, whose line and column lie in the input; a
 * render either succeeds within max or fails with a reason that names a
 * line, and its output is a locked blob.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "secretfs/escape.h"
#include "secretfs/namespace.h"
#include "secretfs/template.h"
#include "secretfs/util.h"

#define NAME "fuzz.tmpl"
#define MAX  4096

static const enum escape_kind formats[] = { ESCAPE_RAW,	 ESCAPE_ENV,	    ESCAPE_SHELL,
					    ESCAPE_JSON, ESCAPE_PROPERTIES, ESCAPE_INI };

static void check(int cond, const char *what, const char *detail)
{
	if (!cond) {
		fprintf(stderr, "fuzz_template: %s (%s)\n", what, detail);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct template_value vals[TEMPLATE_MAX_REFS];
	char err[TEMPLATE_ERR_MAX] = "";
	struct template *t = NULL;
	struct secret *out = NULL;
	unsigned lines = 1;
	uint8_t mode;
	int r, bad = 0;

	if (size == 0)
		return 0;
	mode = data[0];
	data++;
	size--;
	r = template_parse((const char *)data, size, mode & 1 ? "<%" : NULL, mode & 1 ? "%>" : NULL,
			   NAME, &t, err, sizeof(err));
	if (r < 0) {
		check(t == NULL, "a template came back with an error", err);
		check(strncmp(err, NAME ":", strlen(NAME) + 1) == 0, "error without the name", err);
		return 0;
	}
	check(t != NULL, "no template and no error", "");
	check(t->nrefs <= TEMPLATE_MAX_REFS, "too many references", "");
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	for (size_t i = 0; i < t->nrefs; i++) {
		const struct template_ref *ref = &t->refs[i];

		check(ns_id_is_safe(ref->path), "an unsafe path", ref->path);
		check(ref->line >= 1 && ref->line <= lines && ref->col >= 1, "position outside",
		      ref->path);
		vals[i] = (struct template_value){ .missing = i % 3 == 2,
						   .data = (const unsigned char *)ref->path,
						   .len = strlen(ref->path) };
	}
	r = template_render(t, formats[(mode >> 1) % ARRAY_SIZE(formats)], 0, vals, mode & 0x80,
			    MAX, &out, &bad, err, sizeof(err));
	if (r < 0) {
		check(out == NULL, "output with an error", err);
		check(bad < (int)t->nrefs, "a fault outside the references", err);
		check(bad < 0 || strncmp(err, "line ", 5) == 0, "a reason without a line", err);
	} else {
		check(out != NULL && out->kind == SECRET_BLOB, "no blob", "");
		check(out->len <= MAX, "output past max", "");
		secret_unref(out);
	}
	template_free(t);
	return 0;
}
