/*
 * fuzz_escape.c - the escapers and the format views on arbitrary bytes.
 * The first byte picks what runs, the rest is its input:
 *
 *   0-9   escape_value() of the input in format (byte % 10), enum escape_kind
 *         order; then, where a reader is simple to write in C, the output is
 *         read back and must give the input again: env ("..." with \ " $ `),
 *         shell ('...' and '\''), json and yaml (jansson), properties
 *         (\uXXXX, surrogate pairs, \t \n \r \f, \X), url (%XX), ini, base64
 *         (through base64d), raw
 *   10+   the input as a JSON document through ns_secret_from_json(), then
 *         view_render() of the object in every view format and both key
 *         cases; a json view must parse back to an object with as many keys
 *
 * Every call returns 0 or -EINVAL (never another error for these sizes); a
 * refusal leaves the output as it was and its reason is a string that does
 * not quote the input (a view's may name a key, never a value).
 */
#include <errno.h>
#include <jansson.h>

#include "fuzz.h"
#include "secretfs/escape.h"
#include "secretfs/namespace.h"

#define T "fuzz_escape"

/* @in is "" when the reason may quote the input (a view names a key, and keys are names). */
static void check_refusal(const char *in, int r, const char *reason, const struct lbuf *out,
			  size_t before)
{
	fuzz_check(r == 0 || r == -EINVAL, T, "an error other than EINVAL");
	if (r == 0)
		return;
	fuzz_check(fuzz_text_ok(reason, 256), T, "a reason that is not a string");
	fuzz_check(reason[0] != '\0', T, "a refusal without a reason");
	fuzz_check(out->len == before, T, "a refusal left bytes in the output");
	fuzz_no_quote(in, reason, T);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* UTF-8 of code point @cp into @o; its length. */
static size_t put_utf8(uint32_t cp, unsigned char *o)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Reads @e (@n bytes, what escape_value() wrote) back the way a reader of
 * the format would, into @o (room for @n * 2 bytes); returns the length, or
 * -1 when @e is not something the format's reader takes.
 */
static long read_back(enum escape_kind k, const unsigned char *e, size_t n, unsigned char *o)
{
	size_t w = 0, i = 0;

	switch (k) {
	case ESCAPE_RAW:
	case ESCAPE_INI:
		if (n)
			memcpy(o, e, n);
		return (long)n;
	case ESCAPE_ENV: /* bash and systemd: "...", \ before \ " $ ` */
		if (n < 2 || e[0] != '"' || e[n - 1] != '"')
			return -1;
		for (i = 1; i < n - 1; i++) {
			if (e[i] == '\\') {
				if (i + 1 >= n - 1 || !strchr("\\\"$`", e[i + 1]))
					return -1;
				i++;
			} else if (strchr("\"$`", e[i])) {
				return -1; /* would end the value, expand or substitute */
			}
			o[w++] = e[i];
		}
		return (long)w;
	case ESCAPE_SHELL: /* POSIX sh: '...' runs joined by \' */
		while (i < n) {
			if (e[i] == '\\' && i + 1 < n && e[i + 1] == '\'') {
				o[w++] = '\'';
				i += 2;
			} else if (e[i] == '\'') {
				for (i++; i < n && e[i] != '\''; i++)
					o[w++] = e[i];
				if (i >= n)
					return -1;
				i++;
			} else {
				return -1;
			}
		}
		return (long)w;
	case ESCAPE_URL:
		while (i < n) {
			if (e[i] == '%') {
				if (i + 2 >= n)
					return -1;
				if (hexval(e[i + 1]) < 0 || hexval(e[i + 2]) < 0)
					return -1;
				o[w++] = (unsigned char)(hexval(e[i + 1]) << 4 | hexval(e[i + 2]));
				i += 3;
			} else {
				if (!strchr("-._~", e[i]) && !(e[i] >= 'a' && e[i] <= 'z') &&
				    !(e[i] >= 'A' && e[i] <= 'Z') && !(e[i] >= '0' && e[i] <= '9'))
					return -1;
				o[w++] = e[i++];
			}
		}
		return (long)w;
	case ESCAPE_PROPERTIES: /* java.util.Properties.load() of a value */
		while (i < n) {
			unsigned char c = e[i++];
			uint32_t cp;

			if (c != '\\') {
				if (c < 0x20 || c > 0x7e)
					return -1; /* store() writes ASCII only */
				if (w == 0 && c == ' ')
					return -1; /* load() would skip it */
				o[w++] = c;
				continue;
			}
			if (i >= n)
				return -1;
			c = e[i++];
			switch (c) {
			case 't':
				o[w++] = '\t';
				break;
			case 'n':
				o[w++] = '\n';
				break;
			case 'r':
				o[w++] = '\r';
				break;
			case 'f':
				o[w++] = '\f';
				break;
			case 'u':
				if (i + 4 > n)
					return -1;
				cp = 0;
				for (int d = 0; d < 4; d++) {
					if (hexval(e[i + d]) < 0)
						return -1;
					cp = cp << 4 | (uint32_t)hexval(e[i + d]);
				}
				i += 4;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					uint32_t lo = 0;

					if (i + 6 > n || e[i] != '\\' || e[i + 1] != 'u')
						return -1;
					for (int d = 0; d < 4; d++) {
						if (hexval(e[i + 2 + d]) < 0)
							return -1;
						lo = lo << 4 | (uint32_t)hexval(e[i + 2 + d]);
					}
					if (lo < 0xdc00 || lo > 0xdfff)
						return -1;
					i += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					return -1;
				}
				w += put_utf8(cp, o + w);
				break;
			default:
				o[w++] = c;
			}
		}
		return (long)w;
	default:
		return -1;
	}
}

static void one_value(enum escape_kind k, const char *in, size_t len)
{
	struct lbuf out = { 0 }, back = { 0 };
	char reason[256];
	int r;

	reason[0] = '\0';
	r = escape_value(k, in, len, &out, reason, sizeof(reason));
	check_refusal(in, r, reason, &out, 0);
	if (r < 0)
		goto out;
	if (k == ESCAPE_JSON || k == ESCAPE_YAML) {
		json_error_t je;
		json_t *j = json_loadb(out.data ? out.data : "", out.len,
				       JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);

		fuzz_check(j && json_is_string(j), T, "json output that jansson does not read");
		fuzz_check(json_string_length(j) == len &&
				   memcmp(json_string_value(j), in, len) == 0,
			   T, "json output that reads back as another string");
		json_decref(j);
	} else if (k == ESCAPE_BASE64) {
		r = escape_value(ESCAPE_BASE64D, out.data, out.len, &back, reason, sizeof(reason));
		fuzz_check(r == 0 && back.len == len && (len == 0 || !memcmp(back.data, in, len)),
			   T, "base64 that base64d does not read back");
	} else if (k == ESCAPE_BASE64D) {
		/* Strict: what decodes encodes back to the very same text. */
		r = escape_value(ESCAPE_BASE64, out.data, out.len, &back, reason, sizeof(reason));
		fuzz_check(r == 0 && back.len == len && (len == 0 || !memcmp(back.data, in, len)),
			   T, "base64d accepted a text base64 does not give back");
	} else {
		unsigned char *o = malloc(out.len * 2 + 1);
		long got;

		if (!o)
			goto out;
		got = read_back(k, (const unsigned char *)out.data, out.len, o);
		fuzz_check(got == (long)len && (len == 0 || memcmp(o, in, len) == 0), T,
			   "output that the format's reader takes as another value");
		if (k == ESCAPE_INI)
			fuzz_check(!memchr(in, '\n', len) && !memchr(in, '\r', len) &&
					   !memchr(in, '\0', len),
				   T, "ini accepted a line break or a NUL");
		free(o);
	}
out:
	lbuf_free(&back);
	lbuf_free(&out);
}

static void views(const char *in, size_t len)
{
	static const enum escape_kind kinds[] = { ESCAPE_ENV, ESCAPE_SHELL, ESCAPE_JSON,
						  ESCAPE_YAML, ESCAPE_PROPERTIES };
	struct secret *t = NULL;
	char reason[256];
	json_t *j = json_loadb(in, len, JSON_ALLOW_NUL, NULL);

	if (!j)
		return;
	if (ns_secret_from_json(j, NS_JSON_BASE64, &t, reason, sizeof(reason)) < 0 ||
	    t->kind != SECRET_TABLE) {
		json_decref(j);
		secret_unref(t);
		return;
	}
	json_decref(j);
	/* A view's reason names a key, never a value: the mark in a value only must not show. */
	for (size_t i = 0; i < secret_table_count(t); i++) {
		struct secret_entry e;

		if (secret_table_at(t, i, &e) && strstr(e.name, FUZZ_MARK))
			in = "";
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		for (unsigned flags = 0; flags <= VIEW_UPPER; flags += VIEW_UPPER) {
			struct lbuf out = { 0 };
			int r;

			reason[0] = '\0';
			r = view_render(kinds[i], t, flags, &out, reason, sizeof(reason));
			check_refusal(in, r, reason, &out, 0);
			if (r == 0 && kinds[i] == ESCAPE_JSON) {
				json_t *back = json_loadb(out.data, out.len, JSON_ALLOW_NUL, NULL);

				fuzz_check(back && json_is_object(back) &&
						   json_object_size(back) == secret_table_count(t),
					   T, "a json view that is not the object back");
				json_decref(back);
			}
			lbuf_free(&out);
		}
	secret_unref(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	char *in = fuzz_selected_input(data, size, &len);

	if (!in)
		return 0;
	if (data[0] < 10)
		one_value((enum escape_kind)data[0], in, len);
	else
		views(in, len);
	free(in);
	return 0;
}
