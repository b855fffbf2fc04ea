/*
 * escape.c - secret values written into config-file formats (escape.h).
 *
 * Each escaper is exact for the readers that matter for its format (bash and
 * systemd for env, POSIX sh for shell, RFC 8259 and YAML 1.1/1.2 for json and
 * yaml, java.util.Properties for properties), and refuses what the format
 * cannot hold rather than writing something a reader would take differently.
 * A refusal leaves the output buffer as it was, so a caller never has half a
 * value in it, and its reason says what and where (a byte offset), never the
 * bytes themselves.
 *
 * The output grows in scratch memory from the locked heap; every block is
 * wiped when it is freed or moved (secret_mem_realloc), and a refusal wipes
 * what it had already appended.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "secretfs/escape.h"
#include "secretfs/namespace.h"
#include "secretfs/secret.h"

/* ---- the buffer ---- */

/* Room for @n more bytes; returns where they go, or NULL (ENOMEM). */
static unsigned char *lbuf_reserve(struct lbuf *b, size_t n)
{
	if (n > SIZE_MAX / 2 - b->len)
		return NULL;
	if (!b->data || b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *d;

		while (cap < b->len + n)
			cap *= 2;
		d = secret_mem_realloc(b->data, cap); /* wipes a block it moves from */
		if (!d)
			return NULL;
		b->data = d;
		b->cap = cap;
	}
	return (unsigned char *)b->data + b->len;
}

int lbuf_append(struct lbuf *b, const void *p, size_t n)
{
	unsigned char *dst;

	if (n == 0)
		return 0;
	dst = lbuf_reserve(b, n);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, p, n);
	b->len += n;
	return 0;
}

int lbuf_appends(struct lbuf *b, const char *s)
{
	return lbuf_append(b, s, strlen(s));
}

void lbuf_free(struct lbuf *b)
{
	secret_mem_free(b->data); /* wipes the whole block */
	b->data = NULL;
	b->len = b->cap = 0;
}

int lbuf_to_secret(struct lbuf *b, struct secret **ret)
{
	struct secret *s = secret_dup(b->data, b->len);

	lbuf_free(b);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* Drops what was appended since @len (a refusal), wiping it. */
static void lbuf_truncate(struct lbuf *b, size_t len)
{
	if (b->len > len) {
		OPENSSL_cleanse(b->data + len, b->len - len);
		b->len = len;
	}
}

static int lbuf_putc(struct lbuf *b, char c)
{
	return lbuf_append(b, &c, 1);
}

/* ---- names ---- */

static const char *const kind_names[ESCAPE_KIND_COUNT] = {
	[ESCAPE_RAW] = "raw",	      [ESCAPE_ENV] = "env",   [ESCAPE_SHELL] = "shell",
	[ESCAPE_JSON] = "json",	      [ESCAPE_YAML] = "yaml", [ESCAPE_PROPERTIES] = "properties",
	[ESCAPE_INI] = "ini",	      [ESCAPE_URL] = "url",   [ESCAPE_BASE64] = "base64",
	[ESCAPE_BASE64D] = "base64d",
};

int escape_from_name(const char *name, enum escape_kind *ret)
{
	for (size_t i = 0; i < ESCAPE_KIND_COUNT; i++)
		if (strcmp(name, kind_names[i]) == 0) {
			*ret = (enum escape_kind)i;
			return 0;
		}
	return -EINVAL;
}

const char *escape_name(enum escape_kind k)
{
	return (unsigned)k < ESCAPE_KIND_COUNT ? kind_names[k] : NULL;
}

/* ---- UTF-8 ---- */

/*
 * Decodes one strict UTF-8 sequence at @p (no overlong forms, no surrogates,
 * nothing above U+10FFFF).  Returns its length, or 0 when it is invalid.
 */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *ret)
{
	uint32_t c;
	size_t len, i;

	if (p[0] < 0x80) {
		*ret = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*ret = c;
	return len;
}

static int hex_u(struct lbuf *out, uint32_t unit)
{
	char buf[8];

	snprintf(buf, sizeof(buf), "\\u%04X", (unsigned)unit & 0xffff);
	return lbuf_append(out, buf, 6);
}

static void refuse_utf8(const char *fmt, size_t at, const char *hint, char *reason,
			size_t reasonlen)
{
	snprintf(reason, reasonlen, "%s cannot hold invalid UTF-8 (at byte %zu)%s", fmt, at, hint);
}

/* ---- the escapers; each returns 0, -EINVAL with @reason, or -ENOMEM ---- */

/* -EINVAL with @reason when @v holds a NUL, which format @fmt cannot hold; else 0. */
static int refuse_nul(const char *fmt, const unsigned char *v, size_t len, char *reason,
		      size_t reasonlen)
{
	const unsigned char *nul = memchr(v, '\0', len);

	if (!nul)
		return 0;
	snprintf(reason, reasonlen, "%s cannot hold a NUL byte (at byte %zu)", fmt,
		 (size_t)(nul - v));
	return -EINVAL;
}

static int esc_env(const unsigned char *v, size_t len, struct lbuf *out, char *reason,
		   size_t reasonlen)
{
	int r = refuse_nul("env", v, len, reason, reasonlen);

	if (r < 0)
		return r;
	r = lbuf_putc(out, '"');
	for (size_t i = 0; r == 0 && i < len; i++) {
		if (strchr("\\\"$`", v[i]))
			r = lbuf_putc(out, '\\');
		if (r == 0)
			r = lbuf_putc(out, (char)v[i]);
	}
	return r ? r : lbuf_putc(out, '"');
}

static int esc_shell(const unsigned char *v, size_t len, struct lbuf *out, char *reason,
		     size_t reasonlen)
{
	int r = refuse_nul("shell", v, len, reason, reasonlen);

	if (r < 0)
		return r;
	r = lbuf_putc(out, '\'');
	for (size_t i = 0; r == 0 && i < len; i++)
		r = v[i] == '\'' ? lbuf_append(out, "'\\''", 4) : lbuf_putc(out, (char)v[i]);
	return r ? r : lbuf_putc(out, '\'');
}

/* The two-character escapes JSON and java.util.Properties share, or NULL. */
static const char *short_escape(uint32_t c)
{
	switch (c) {
	case '\\':
		return "\\\\";
	case '\t':
		return "\\t";
	case '\n':
		return "\\n";
	case '\r':
		return "\\r";
	case '\f':
		return "\\f";
	}
	return NULL;
}

/* Code points a YAML reader takes as line breaks or refuses unescaped; JSON allows escaping them.
 */
static bool json_must_escape(uint32_t c)
{
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029 ||
	       c == 0xfffe || c == 0xffff;
}

static int esc_json(const char *fmt, const unsigned char *v, size_t len, struct lbuf *out,
		    char *reason, size_t reasonlen)
{
	int r = lbuf_putc(out, '"');

	for (size_t i = 0; r == 0 && i < len;) {
		uint32_t c;
		const char *esc;
		size_t n = utf8_decode(v + i, len - i, &c);

		if (n == 0) {
			refuse_utf8(fmt, i, "; use `| base64` for binary values", reason,
				    reasonlen);
			return -EINVAL;
		}
		esc = c == '"' ? "\\\"" : c == '\b' ? "\\b" : short_escape(c);
		if (esc)
			r = lbuf_append(out, esc, 2);
		else
			r = json_must_escape(c) ? hex_u(out, c) : lbuf_append(out, v + i, n);
		i += n;
	}
	return r ? r : lbuf_putc(out, '"');
}

/*
 * java.util.Properties.store()'s saveConvert(): @key escapes every space
 * (a key ends at the first unescaped one), a value only a leading one
 * (load() skips the blanks before a value, keeps those inside and after).
 */
static int esc_properties(const unsigned char *v, size_t len, bool key, struct lbuf *out,
			  char *reason, size_t reasonlen)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < len;) {
		uint32_t c;
		size_t n = utf8_decode(v + i, len - i, &c);

		if (n == 0) {
			refuse_utf8("properties", i, "; use `| base64` for binary values", reason,
				    reasonlen);
			return -EINVAL;
		}
		if (short_escape(c)) {
			r = lbuf_append(out, short_escape(c), 2);
			i += n;
			continue;
		}
		switch (c) {
		case ' ':
			r = (key || i == 0) ? lbuf_append(out, "\\ ", 2) : lbuf_putc(out, ' ');
			break;
		case '=':
		case ':':
		case '#':
		case '!':
			r = lbuf_putc(out, '\\');
			if (r == 0)
				r = lbuf_putc(out, (char)c);
			break;
		default:
			if (c >= 0x20 && c <= 0x7e)
				r = lbuf_putc(out, (char)c);
			else if (c <= 0xffff)
				r = hex_u(out, c);
			else if ((r = hex_u(out, 0xd800 + ((c - 0x10000) >> 10))) == 0)
				r = hex_u(out, 0xdc00 + ((c - 0x10000) & 0x3ff));
		}
		i += n;
	}
	return r;
}

static int esc_ini(const unsigned char *v, size_t len, struct lbuf *out, char *reason,
		   size_t reasonlen)
{
	for (size_t i = 0; i < len; i++)
		if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0') {
			snprintf(reason, reasonlen, "ini holds one line: %s at byte %zu",
				 v[i] == '\0'	? "a NUL"
				 : v[i] == '\r' ? "a CR"
						: "a line feed",
				 i);
			return -EINVAL;
		}
	return lbuf_append(out, v, len);
}

static int esc_url(const unsigned char *v, size_t len, struct lbuf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	int r = 0;

	for (size_t i = 0; r == 0 && i < len; i++) {
		unsigned char c = v[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			r = lbuf_putc(out, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			r = lbuf_append(out, e, 3);
		}
	}
	return r;
}

static int esc_base64(const unsigned char *v, size_t len, struct lbuf *out)
{
	unsigned char *dst;
	size_t n;

	if (len > (SIZE_MAX / 4 - 4) / 4 * 3 || len > INT32_MAX / 4 * 3)
		return -ENOMEM;
	n = (len + 2) / 3 * 4;
	dst = lbuf_reserve(out, n + 1);
	if (!dst)
		return -ENOMEM;
	/* EVP_EncodeBlock: no line breaks, padded, NUL-terminated. */
	out->len += (size_t)EVP_EncodeBlock(dst, v, (int)len);
	return 0;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static int esc_base64d(const unsigned char *v, size_t len, struct lbuf *out, char *reason,
		       size_t reasonlen)
{
	size_t pad, n, bad_at;
	unsigned char *dst;
	int got, r = ns_base64_check((const char *)v, len, &bad_at);

	if (r < 0 && bad_at == len) {
		snprintf(reason, reasonlen,
			 "base64d: not base64 (length %zu is not a multiple of 4)", len);
		return -EINVAL;
	}
	if (r < 0) {
		snprintf(reason, reasonlen, "base64d: not base64 (at byte %zu)", bad_at);
		return -EINVAL;
	}
	pad = (size_t)r;
	/* A non-canonical last character ("QR==" for "QQ==") carries bits that decoding
	 * drops: refused, so that text and bytes are one-to-one. */
	if (pad && (b64_val(v[len - pad - 1]) & (pad == 2 ? 0x0f : 0x03))) {
		snprintf(reason, reasonlen, "base64d: not base64 (non-zero padding bits)");
		return -EINVAL;
	}
	if (len > INT32_MAX)
		return -ENOMEM;
	n = len / 4 * 3;
	dst = lbuf_reserve(out, n);
	if (!dst)
		return -ENOMEM;
	got = len ? EVP_DecodeBlock(dst, v, (int)len) : 0;
	if (got < 0 || (size_t)got != n) {
		OPENSSL_cleanse(dst, n);
		snprintf(reason, reasonlen, "base64d: not base64");
		return -EINVAL;
	}
	out->len += n - pad;
	OPENSSL_cleanse(dst + n - pad, pad);
	return 0;
}

int escape_value(enum escape_kind k, const void *v, size_t len, struct lbuf *out, char *reason,
		 size_t reasonlen)
{
	const unsigned char *p = v ? v : (const unsigned char *)"";
	size_t start = out->len;
	int r;

	switch (k) {
	case ESCAPE_RAW:
		r = lbuf_append(out, p, len);
		break;
	case ESCAPE_ENV:
		r = esc_env(p, len, out, reason, reasonlen);
		break;
	case ESCAPE_SHELL:
		r = esc_shell(p, len, out, reason, reasonlen);
		break;
	case ESCAPE_JSON:
	case ESCAPE_YAML:
		r = esc_json(kind_names[k], p, len, out, reason, reasonlen);
		break;
	case ESCAPE_PROPERTIES:
		r = esc_properties(p, len, false, out, reason, reasonlen);
		break;
	case ESCAPE_INI:
		r = esc_ini(p, len, out, reason, reasonlen);
		break;
	case ESCAPE_URL:
		r = esc_url(p, len, out);
		break;
	case ESCAPE_BASE64:
		r = esc_base64(p, len, out);
		break;
	case ESCAPE_BASE64D:
		r = esc_base64d(p, len, out, reason, reasonlen);
		break;
	default:
		snprintf(reason, reasonlen, "unknown format %d", (int)k);
		r = -EINVAL;
	}
	if (r < 0)
		lbuf_truncate(out, start);
	return r;
}

/* ---- views ---- */

/* A shell and env name: [A-Za-z_][A-Za-z0-9_]*. */
static bool is_identifier(const char *s, size_t len)
{
	if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/*
 * -o view_env_case=upper: "dbPassword", "db-password", "db.password" and
 * "db password" all become DB_PASSWORD: ASCII letters upper-cased, '-', '.'
 * and ' ' to '_', and a '_' where a lower-case letter or digit meets an
 * upper-case one.  Other bytes stay (and then fail the identifier check).
 */
static char *upper_snake(const char *s, size_t len)
{
	char *o = malloc(2 * len + 1), *w = o;

	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (i > 0 && c >= 'A' && c <= 'Z' &&
		    ((s[i - 1] >= 'a' && s[i - 1] <= 'z') || (s[i - 1] >= '0' && s[i - 1] <= '9')))
			*w++ = '_';
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (c == '-' || c == '.' || c == ' ')
			c = '_';
		*w++ = c;
	}
	*w = '\0';
	return o;
}

/* A key written as is in YAML: a plain word that no YAML 1.1 or 1.2 reader takes as
 * anything but a string. */
static bool yaml_plain_key(const char *s, size_t len)
{
	static const char *const special[] = { "y",   "n",    "yes",   "no",  "on",
					       "off", "true", "false", "null" };

	if (len == 0 ||
	    !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!(is_identifier(s + i, 1) || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (strlen(special[i]) == len && strncasecmp(s, special[i], len) == 0)
			return false;
	return true;
}

/*
 * A value kept as compact JSON (a number, boolean, null, array or object)
 * written so that YAML 1.1 readers take it as JSON does: code points a YAML
 * reader refuses or folds are escaped inside its strings (as json_must_escape
 * says), and a number with an exponent gets the ".0" and the sign YAML 1.1
 * requires ("1e20" and "1.0e20" are strings to YAML 1.1, "1.0e+20" a float
 * to every reader).  The result is still the
 * same JSON value.  The text came from jansson, so it is valid UTF-8 JSON.
 */
static int json_text(const unsigned char *v, size_t len, struct lbuf *out)
{
	bool in_string = false, in_num = false, num_dot = false;
	int r = 0;

	for (size_t i = 0; r == 0 && i < len;) {
		unsigned char c = v[i];
		uint32_t cp;
		size_t n;

		if (in_string) {
			if (c == '\\') {
				r = lbuf_append(out, v + i, i + 1 < len ? 2 : 1);
				i += 2;
				continue;
			}
			if (c == '"')
				in_string = false;
			n = utf8_decode(v + i, len - i, &cp);
			if (n == 0)
				n = 1; /* not from jansson; passed through */
			else if (json_must_escape(cp)) {
				r = hex_u(out, cp);
				i += n;
				continue;
			}
			r = lbuf_append(out, v + i, n);
			i += n;
			continue;
		}
		if (in_num && !(c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' ||
				(c >= '0' && c <= '9')))
			in_num = false;
		if (!in_num && (c == '-' || (c >= '0' && c <= '9'))) {
			in_num = true;
			num_dot = false;
		}
		if (in_num && c == '.')
			num_dot = true;
		if (in_num && (c == 'e' || c == 'E')) {
			if (!num_dot)
				r = lbuf_append(out, ".0", 2);
			num_dot = true;
			if (r == 0)
				r = lbuf_putc(out, (char)c);
			/* YAML 1.1 wants the exponent's sign */
			if (r == 0 && i + 1 < len && v[i + 1] != '-' && v[i + 1] != '+')
				r = lbuf_putc(out, '+');
			i++;
			continue;
		}
		if (c == '"')
			in_string = true;
		if (r == 0)
			r = lbuf_putc(out, (char)c);
		i++;
	}
	return r;
}

struct view_key {
	const char *name; /* the key as written: the entry's name or its upper_snake */
	size_t len;
	char *mapped; /* owned when mapped */
	struct secret_entry e;
};

static int cmp_view_keys(const void *a, const void *b)
{
	const struct view_key *x = a, *y = b;
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

	return c ? c : x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

/* One "key=value" line (or the format's equivalent). */
static int view_line(enum escape_kind k, const struct view_key *vk, bool first, struct lbuf *out,
		     char *reason, size_t reasonlen)
{
	const struct secret_entry *e = &vk->e;
	bool json = e->type == SECRET_VALUE_JSON;
	char why[192] = "";
	int r = 0;

	switch (k) {
	case ESCAPE_ENV:
	case ESCAPE_SHELL:
		if (k == ESCAPE_SHELL)
			r = lbuf_appends(out, "export ");
		if (r == 0)
			r = lbuf_append(out, vk->name, vk->len);
		if (r == 0)
			r = lbuf_putc(out, '=');
		if (r == 0)
			r = escape_value(k, e->value, e->valuelen, out, why, sizeof(why));
		break;
	case ESCAPE_PROPERTIES:
		r = esc_properties((const unsigned char *)vk->name, vk->len, true, out, why,
				   sizeof(why));
		if (r == 0)
			r = lbuf_putc(out, '=');
		if (r == 0)
			r = escape_value(k, e->value, e->valuelen, out, why, sizeof(why));
		break;
	case ESCAPE_JSON:
		r = lbuf_putc(out, first ? '{' : ',');
		if (r == 0)
			r = esc_json("json", (const unsigned char *)vk->name, vk->len, out, why,
				     sizeof(why));
		if (r == 0)
			r = lbuf_putc(out, ':');
		if (r == 0)
			r = json ? json_text(e->value, e->valuelen, out)
				 : escape_value(k, e->value, e->valuelen, out, why, sizeof(why));
		break;
	case ESCAPE_YAML:
		r = yaml_plain_key(vk->name, vk->len)
			    ? lbuf_append(out, vk->name, vk->len)
			    : esc_json("yaml", (const unsigned char *)vk->name, vk->len, out, why,
				       sizeof(why));
		if (r == 0)
			r = lbuf_append(out, ": ", 2);
		if (r == 0)
			r = json ? json_text(e->value, e->valuelen, out)
				 : escape_value(k, e->value, e->valuelen, out, why, sizeof(why));
		break;
	default:
		snprintf(reason, reasonlen, "there is no %s view",
			 escape_name(k) ? escape_name(k) : "such");
		return -EINVAL;
	}
	if (r == -EINVAL)
		snprintf(reason, reasonlen, "key '%s': %s", e->name, why);
	if (r < 0 || k == ESCAPE_JSON) /* JSON is one line, closed by the caller */
		return r;
	return lbuf_putc(out, '\n');
}

int view_render(enum escape_kind k, const struct secret *table, unsigned flags, struct lbuf *out,
		char *reason, size_t reasonlen)
{
	size_t n = secret_table_count(table), start = out->len, i;
	bool env = k == ESCAPE_ENV || k == ESCAPE_SHELL;
	struct view_key *keys;
	int r = 0;

	if (k != ESCAPE_ENV && k != ESCAPE_SHELL && k != ESCAPE_JSON && k != ESCAPE_YAML &&
	    k != ESCAPE_PROPERTIES) {
		snprintf(reason, reasonlen, "there is no %s view",
			 escape_name(k) ? escape_name(k) : "such");
		return -EINVAL;
	}
	if (table->kind != SECRET_TABLE) {
		snprintf(reason, reasonlen, "not an object secret");
		return -EINVAL;
	}
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (i = 0; i < n && r == 0; i++) {
		struct view_key *vk = &keys[i];

		if (!secret_table_at(table, i, &vk->e)) {
			r = -EINVAL;
			snprintf(reason, reasonlen, "a damaged table");
			break;
		}
		vk->name = vk->e.name;
		vk->len = vk->e.namelen;
		if (env && (flags & VIEW_UPPER)) {
			vk->mapped = upper_snake(vk->e.name, vk->e.namelen);
			if (!vk->mapped) {
				r = -ENOMEM;
				break;
			}
			vk->name = vk->mapped;
			vk->len = strlen(vk->mapped);
		}
		if (env && !is_identifier(vk->name, vk->len)) {
			snprintf(reason, reasonlen, "key '%s' is not a valid %s name%s", vk->e.name,
				 escape_name(k),
				 flags & VIEW_UPPER
					 ? ""
					 : " (view_env_case=upper maps - . and space to _)");
			r = -EINVAL;
		}
	}
	if (r == 0 && env && (flags & VIEW_UPPER)) {
		qsort(keys, n, sizeof(*keys), cmp_view_keys);
		for (i = 1; i < n; i++)
			if (cmp_view_keys(&keys[i - 1], &keys[i]) == 0) {
				snprintf(reason, reasonlen, "keys '%s' and '%s' are both %s",
					 keys[i - 1].e.name, keys[i].e.name, keys[i].name);
				r = -EINVAL;
				break;
			}
	}
	for (i = 0; i < n && r == 0; i++)
		r = view_line(k, &keys[i], i == 0, out, reason, reasonlen);
	if (r == 0 && k == ESCAPE_JSON)
		r = lbuf_appends(out, n ? "}\n" : "{}\n");
	if (r == 0 && k == ESCAPE_YAML && n == 0)
		r = lbuf_appends(out, "{}\n");
	for (i = 0; i < n; i++)
		free(keys[i].mapped);
	free(keys);
	if (r < 0)
		lbuf_truncate(out, start);
	return r;
}
