/*
 * template.h - config file templates (issue 11): parsed once, rendered on
 * every open for the reader at hand.
 *
 * The syntax has no logic (no loops, conditions, env, file or exec):
 *
 *   {{ prod/db/password }}              a reference: the path cat would read
 *   {{ "odd name/x" }}                  a quoted path ("\"" and "\\" inside)
 *   {{ prod/db/password | url }}        filters, applied left to right:
 *                                       base64, base64d transform the bytes;
 *                                       an escaper (raw env shell json yaml
 *                                       properties ini url) comes last and
 *                                       replaces the format's;
 *   {{ prod/db/port | default "5432" }} a fallback when the path is missing
 *   {{* prod/db }}                      every key of an object secret, in the
 *                                       template's format (a format view)
 *   {{! a comment }}
 *
 * The delimiters may be changed ("delims = <% %>").  This module knows
 * neither FUSE nor the store: the caller resolves each reference and hands
 * the values to template_render().  Nothing here logs.
 */
#ifndef SECRETFS_TEMPLATE_H
#define SECRETFS_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "secretfs/escape.h"
#include "secretfs/secret.h"

#define TEMPLATE_MAX_BYTES  (64 * 1024)
#define TEMPLATE_MAX_REFS   256
#define TEMPLATE_DELIM_MAX  8
#define TEMPLATE_MAX_FILTER 4
#define TEMPLATE_ERR_MAX    512

struct template_ref {
	char *path;    /* the mount path it reads, "/"-separated, safe components */
	unsigned line; /* 1-based, of the opening delimiter */
	unsigned col;  /* 1-based, in bytes */
	bool expand;   /* {{* PATH }}: every key of an object, in the format */
	bool has_escaper;
	enum escape_kind escaper; /* when has_escaper; else the format's */
	size_t ntransforms;	  /* base64 / base64d, in order */
	enum escape_kind transforms[TEMPLATE_MAX_FILTER];
	char *def; /* | default "..."; NULL when none */
	size_t deflen;
};

struct template
{
	char *text; /* the template's body, as read */
	size_t len;
	/* Literal text and references, in order. */
	struct template_seg {
		size_t off, len; /* a literal run of text; unused for a reference */
		int ref;	 /* index into refs, or -1 for a literal */
	} * segs;
	size_t nsegs;
	struct template_ref *refs;
	size_t nrefs;
};

/*
 * Parses @len bytes of @text (at most TEMPLATE_MAX_BYTES) with the
 * delimiters @open and @close (NULL: "{{" and "}}").  On error returns
 * -EINVAL (or -EFBIG, -E2BIG, -ENOMEM) and writes "NAME:LINE:COL: what is
 * wrong" into @err, @name being the template file.
 */
int template_parse(const char *text, size_t len, const char *open, const char *close,
		   const char *name, struct template **ret, char *err, size_t errlen);
void template_free(struct template *t);

/* "<% %>" -> "<%" and "%>".  0, or -EINVAL with @err saying why. */
int template_delims(const char *spec, char *open, char *close, char *err, size_t errlen);

/* What the caller found for one reference. */
struct template_value {
	bool missing;		   /* not found in the store */
	const unsigned char *data; /* a plain reference: the bytes */
	size_t len;
	const struct secret *table; /* an expanding reference: the object secret */
};

/*
 * Renders @t with @vals (one per reference) in @format, into a new locked
 * blob of at most @max bytes.  A missing reference without a default is
 * -ENOENT unless @missing_empty (then it is an empty value).  -EINVAL when a
 * value cannot be held by its escaper, -EFBIG past @max.  @reason then
 * reads "line L: PATH: why" (never a value); *ret_ref (may be NULL) is the
 * reference at fault, or -1.
 */
int template_render(const struct template *t, enum escape_kind format, unsigned view_flags,
		    const struct template_value *vals, bool missing_empty, size_t max,
		    struct secret **ret, int *ret_ref, char *reason, size_t reasonlen);

#endif
