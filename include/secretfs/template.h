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
/* A render's bound when max_body is not set: the HTTP layer's default body bound. */
#define TEMPLATE_MAX_RENDER ((size_t)1024 * 1024)

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

/*
 * The templates in service: every [template NAME] section and -o template=
 * of the config, read (with the trust checks of trusted_file_open) and
 * parsed.  Immutable and reference counted, so a reload swaps in a new set
 * while opens in flight finish with the old one.
 */
struct template_entry {
	char *name;
	char *path; /* where it appears in the mount */
	char *file;
	enum escape_kind format;
	bool access_whole;  /* access = template */
	bool missing_empty; /* missing = empty */
	struct template *t;
	bool clash_logged; /* atomic: a clash with the store was logged */
};

struct template_set {
	unsigned refs; /* atomic */
	size_t n;
	struct template_entry e[];
};

struct config;
/*
 * Loads every template of @cfg.  @meta_dir is the reserved name at the
 * mount root (".secretfs"): no template may appear under it nor refer into
 * it.  Returns 0 with *ret NULL when there are none.  On error writes
 * "FILE:LINE:COL: ..." (a template's syntax) or "ORIGIN: [template NAME]
 * ..." (its settings) into @err.
 */
int template_set_load(const struct config *cfg, const char *meta_dir, struct template_set **ret,
		      char *err, size_t errlen);
struct template_set *template_set_ref(struct template_set *s);
void template_set_unref(struct template_set *s); /* NULL is a no-op */
/* The template shown at mount path @path, or NULL. */
const struct template_entry *template_set_find(const struct template_set *s, const char *path);
/* Whether some template lies below the directory @path ("" is the root). */
bool template_set_has_below(const struct template_set *s, const char *path);

#endif
