/*
 * escape.h - writing secret values into the text formats of config files:
 * the escapers templates apply to each reference and the format views
 * (.secretfs/view/FMT/PATH) apply to each key of an object secret.
 *
 * Everything written here is derived from values, so it goes into a growing
 * buffer in the locked heap (struct lbuf) that is wiped when it grows or is
 * freed, and leaves as a locked struct secret.  Like the other library-like
 * modules this one does not log: a value a format cannot hold is -EINVAL with
 * a reason that says why without quoting the value.
 */
#ifndef SECRETFS_ESCAPE_H
#define SECRETFS_ESCAPE_H

#include <stddef.h>

struct secret;

/* A growing byte buffer in the locked heap (secret_mem_*), wiped when freed or grown. */
struct lbuf {
	char *data;
	size_t len, cap;
};

int lbuf_append(struct lbuf *b, const void *p, size_t n); /* 0 or -ENOMEM */
/* The same for a C string. */
int lbuf_appends(struct lbuf *b, const char *s);
void lbuf_free(struct lbuf *b); /* wipes */
/* Moves into a locked blob (an empty buffer gives an empty blob); frees @b, also on failure. */
int lbuf_to_secret(struct lbuf *b, struct secret **ret);

static inline void lbuf_freep(struct lbuf *b)
{
	lbuf_free(b);
}
#define _cleanup_lbuf_ __attribute__((cleanup(lbuf_freep)))

enum escape_kind {
	ESCAPE_RAW,
	ESCAPE_ENV,
	ESCAPE_SHELL,
	ESCAPE_JSON,
	ESCAPE_YAML,
	ESCAPE_PROPERTIES,
	ESCAPE_INI,
	ESCAPE_URL,
	ESCAPE_BASE64,
	ESCAPE_BASE64D,
};
#define ESCAPE_KIND_COUNT (ESCAPE_BASE64D + 1)

int escape_from_name(const char *name, enum escape_kind *ret); /* -EINVAL if unknown */
const char *escape_name(enum escape_kind k);		       /* NULL if out of range */

/*
 * Appends @v as a value in format @k:
 *   raw         the bytes as they are;
 *   env         "..." with \ " $ and ` escaped by a backslash, LF and CR kept as they are;
 *               a NUL is an error;
 *   shell       '...' with ' written as '\''; a NUL is an error;
 *   json, yaml  an RFC 8259 string: " \ and controls escaped (\n, \t, ... or \u00XX), and
 *               also DEL, U+0080-U+009F, U+2028, U+2029, U+FFFE and U+FFFF as \uXXXX, so
 *               that the same bytes are a YAML 1.1/1.2 double-quoted scalar; invalid UTF-8
 *               is an error whose reason suggests `| base64`;
 *   properties  java.util.Properties.store()'s value escaping: \\ \t \n \r \f, a leading
 *               space, = : # ! escaped, other characters outside printable ASCII as
 *               \uXXXX (UTF-16, so a surrogate pair above U+FFFF); invalid UTF-8 is an error;
 *   ini         the bytes on one line; CR, LF and NUL are errors;
 *   url         RFC 3986 percent-encoding: all but ALPHA DIGIT - . _ ~ as %XX;
 *   base64      RFC 4648 with padding, on one line;
 *   base64d     the bytes that strict RFC 4648 base64 @v stands for (padding required,
 *               no whitespace); anything else is an error.
 * Returns 0, -EINVAL (with @reason set, never quoting the value; @out is then left as
 * it was) or -ENOMEM.
 */
int escape_value(enum escape_kind k, const void *v, size_t len, struct lbuf *out, char *reason,
		 size_t reasonlen);

/*
 * An object secret (SECRET_TABLE) whole in format @k (env, shell, json, yaml,
 * properties): exactly what .secretfs/view/FMT/PATH shows and what a
 * template's {{* PATH }} gives.  Keys sorted.
 */
#define VIEW_UPPER 1u /* -o view_env_case=upper: keys as UPPER_SNAKE (env, shell) */
int view_render(enum escape_kind k, const struct secret *table, unsigned flags, struct lbuf *out,
		char *reason, size_t reasonlen);

#endif
