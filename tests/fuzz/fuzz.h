/*
 * fuzz.h - the libFuzzer entry point every tests/fuzz/fuzz_*.c defines, so that
 * replay.c can run a corpus through it without libFuzzer, and the checks the
 * targets share.
 */
#ifndef SECRETFS_TESTS_FUZZ_H
#define SECRETFS_TESTS_FUZZ_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "secretfs/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed promise of the code under test: report it and crash, so libFuzzer keeps the input. */
static inline void fuzz_check(int cond, const char *target, const char *what)
{
	if (!cond) {
		fprintf(stderr, "%s: %s\n", target, what);
		abort();
	}
}

/* @data as a malloc'ed NUL-terminated string of exactly @size + 1 bytes; NULL on ENOMEM. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

/*
 * For targets that cover several parsers: the first byte selects the parser
 * (the caller switches on data[0]), the rest is the input, returned as by
 * fuzz_cstr() with its length in *ret_len.  NULL when there is no selector
 * byte or on ENOMEM.
 */
static inline char *fuzz_selected_input(const uint8_t *data, size_t size, size_t *ret_len)
{
	if (size < 1)
		return NULL;
	*ret_len = size - 1;
	return fuzz_cstr(data + 1, size - 1);
}

/* A reason or error buffer is a string that fits its buffer. */
static inline bool fuzz_text_ok(const char *buf, size_t len)
{
	return memchr(buf, '\0', len) != NULL;
}

/*
 * Seeds carry this marker in the places a secret goes (values, tokens,
 * keys); a parser that promises never to quote its input in a reason must
 * not show it, however the input is mutated around it.
 */
#define FUZZ_MARK "s3cr3tZq9"

static inline void fuzz_no_quote(const char *input, const char *reason, const char *target)
{
	if (strstr(input, FUZZ_MARK))
		fuzz_check(strstr(reason, FUZZ_MARK) == NULL, target, "a reason quotes the input");
}

/*
 * A store response parser failed: its reason does not quote the input, and
 * its errno is one backend.h allows a parser (EBADMSG: a malformed answer,
 * transient), or @extra (0: none).
 */
static inline void fuzz_parse_error_ok(const char *input, int r, const char *reason, int extra,
				       const char *target)
{
	fuzz_no_quote(input, reason, target);
	fuzz_check(r == -EIO || r == -ENOENT || r == -ENOMEM || r == -EINVAL || r == -EACCES ||
			   r == -EBADMSG || (extra && r == -extra),
		   target, "an errno outside backend.h's set");
}

/*
 * A secret a parser handed back is well-formed: a blob within its
 * allocation, or a table whose entries are in strictly increasing name
 * order, each name NUL-terminated where it says, and findable by name.
 */
static inline void fuzz_secret_ok(const struct secret *s, const char *target)
{
	struct secret_entry e, prev = { 0 }, found;
	size_t n;

	fuzz_check(s != NULL, target, "success without a secret");
	fuzz_check(s->len <= s->cap, target, "a secret longer than its allocation");
	if (s->kind == SECRET_BLOB)
		return;
	fuzz_check(s->kind == SECRET_TABLE, target, "a secret of an unknown kind");
	n = secret_table_count(s);
	for (size_t i = 0; i < n; i++) {
		fuzz_check(secret_table_at(s, i, &e), target, "a table entry missing");
		fuzz_check(e.name[e.namelen] == '\0', target, "a table name not terminated");
		fuzz_check(strlen(e.name) == e.namelen, target, "a table name with a NUL");
		if (i > 0) {
			int c = memcmp(prev.name, e.name,
				       prev.namelen < e.namelen ? prev.namelen : e.namelen);

			fuzz_check(c < 0 || (c == 0 && prev.namelen < e.namelen), target,
				   "table names out of order");
		}
		fuzz_check(secret_table_find(s, e.name, &found) && found.value == e.value, target,
			   "a table name that is not found");
		prev = e;
	}
	fuzz_check(!secret_table_at(s, n, &e), target, "a table entry past the count");
}

/* A versions list (backend_ops.list_versions): entries with an id, a state and labels. */
static inline void fuzz_version_list_ok(json_t *list, const char *target)
{
	json_t *e;
	size_t i;

	fuzz_check(json_is_array(list), target, "a version list that is not an array");
	json_array_foreach(list, i, e)
		fuzz_check(json_is_string(json_object_get(e, "id")) &&
				   json_is_string(json_object_get(e, "state")) &&
				   json_is_array(json_object_get(e, "labels")),
			   target, "a version entry without id, state or labels");
}

#endif
