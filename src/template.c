/*
 * template.c - the template language of issue 11: a parser that turns a
 * template file into literal runs and references, and a renderer that
 * fills the references with values the caller fetched and checked.
 *
 * Parsing happens once, at start and on reload, so every syntax error is
 * found before a reader ever opens the file, and names FILE:LINE:COL.  The
 * renderer writes only into locked memory (struct lbuf, then a secret), and
 * its errors name the line and the reference, never a value.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretfs/config.h"
#include "secretfs/namespace.h"
#include "secretfs/template.h"
#include "secretfs/util.h"

struct parser {
	const char *text;
	size_t len, pos;
	const char *open, *close;
	size_t openlen, closelen;
	const char *name;
	struct template *t;
	size_t segcap, refcap;
	char *err;
	size_t errlen;
};

/* Line and column (1-based, bytes) of offset @off. */
static void position(const struct parser *p, size_t off, unsigned *line, unsigned *col)
{
	unsigned l = 1;
	size_t start = 0;

	for (size_t i = 0; i < off && i < p->len; i++)
		if (p->text[i] == '\n') {
			l++;
			start = i + 1;
		}
	*line = l;
	*col = (unsigned)(off - start + 1);
}

static int parse_error(struct parser *p, size_t off, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int parse_error(struct parser *p, size_t off, int r, const char *fmt, ...)
{
	char what[256];
	unsigned line, col;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	position(p, off, &line, &col);
	return set_error(p->err, p->errlen, r, "%s:%u:%u: %s", p->name, line, col, what);
}

static int add_seg(struct parser *p, size_t off, size_t len, int ref)
{
	struct template *t = p->t;

	if (ref < 0 && len == 0)
		return 0;
	if (t->nsegs == p->segcap) {
		size_t cap = p->segcap ? p->segcap * 2 : 16;
		struct template_seg *s = realloc(t->segs, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		t->segs = s;
		p->segcap = cap;
	}
	t->segs[t->nsegs++] = (struct template_seg){ .off = off, .len = len, .ref = ref };
	return 0;
}

static bool at(const struct parser *p, const char *s, size_t n)
{
	return p->len - p->pos >= n && memcmp(p->text + p->pos, s, n) == 0;
}

static void skip_blanks(struct parser *p)
{
	while (p->pos < p->len && strchr(" \t\r\n", p->text[p->pos]) && p->text[p->pos])
		p->pos++;
}

/* A quoted string: "..." with \" and \\; into a new NUL-terminated copy. */
static int parse_quoted(struct parser *p, char **ret, size_t *ret_len)
{
	size_t start = p->pos, n = 0;
	char *s = malloc(p->len - p->pos + 1);

	if (!s)
		return -ENOMEM;
	p->pos++; /* the opening quote */
	while (p->pos < p->len && p->text[p->pos] != '"') {
		char ch = p->text[p->pos];

		if (ch == '\n' || ch == '\0') {
			free(s);
			return parse_error(p, p->pos, -EINVAL,
					   ch ? "newline inside a quoted string"
					      : "NUL inside a quoted string");
		}
		if (ch == '\\') {
			if (p->pos + 1 >= p->len ||
			    (p->text[p->pos + 1] != '"' && p->text[p->pos + 1] != '\\')) {
				free(s);
				return parse_error(p, p->pos, -EINVAL,
						   "unknown escape in a quoted string, only \\\" "
						   "and \\\\ are allowed");
			}
			p->pos++;
			ch = p->text[p->pos];
		}
		s[n++] = ch;
		p->pos++;
	}
	if (p->pos >= p->len) {
		free(s);
		return parse_error(p, start, -EINVAL, "unterminated quoted string");
	}
	p->pos++; /* the closing quote */
	s[n] = '\0';
	*ret = s;
	*ret_len = n;
	return 0;
}

/* A bare word: up to a blank, '|', '"' or the closing delimiter. */
static size_t word_len(const struct parser *p)
{
	size_t n = 0;

	while (p->pos + n < p->len) {
		char ch = p->text[p->pos + n];

		if (strchr(" \t\r\n|\"", ch) || ch == '\0')
			break;
		if (p->len - p->pos - n >= p->closelen &&
		    memcmp(p->text + p->pos + n, p->close, p->closelen) == 0)
			break;
		n++;
	}
	return n;
}

static int parse_path(struct parser *p, struct template_ref *ref)
{
	size_t start = p->pos, n;
	char *path;
	int r;

	if (p->pos < p->len && p->text[p->pos] == '"') {
		r = parse_quoted(p, &path, &n);
		if (r < 0)
			return r;
		if (strlen(path) != n) {
			free(path);
			return parse_error(p, start, -EINVAL, "NUL in a path");
		}
	} else {
		n = word_len(p);
		if (n == 0)
			return parse_error(p, start, -EINVAL, "expected a path after '%s'",
					   p->open);
		path = strndup(p->text + p->pos, n);
		if (!path)
			return -ENOMEM;
		p->pos += n;
	}
	if (!ns_id_is_safe(path)) {
		free(path);
		return parse_error(p, start, -EINVAL,
				   "not a mount path: use 'a/b/c' without a leading '/', "
				   "empty parts, '.' or '..'");
	}
	ref->path = path;
	return 0;
}

static int parse_filter(struct parser *p, struct template_ref *ref)
{
	size_t start = p->pos, n = word_len(p);
	enum escape_kind k;
	char name[16];

	if (n == 0)
		return parse_error(p, start, -EINVAL, "expected a filter name after '|'");
	if (ref->has_escaper)
		return parse_error(p, start, -EINVAL,
				   "a filter after the escaper '%s': the escaper must come last",
				   escape_name(ref->escaper));
	if (n == 7 && memcmp(p->text + p->pos, "default", 7) == 0) {
		p->pos += n;
		skip_blanks(p);
		if (ref->def)
			return parse_error(p, start, -EINVAL, "'default' given twice");
		if (p->pos >= p->len || p->text[p->pos] != '"')
			return parse_error(p, p->pos, -EINVAL,
					   "'default' needs a quoted value: default \"5432\"");
		return parse_quoted(p, &ref->def, &ref->deflen);
	}
	snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1),
		 p->text + p->pos);
	if (n >= sizeof(name) || escape_from_name(name, &k) < 0)
		return parse_error(p, start, -EINVAL,
				   "unknown filter '%.*s', expected url, json, shell, base64, "
				   "base64d, default, raw, env, yaml, properties or ini",
				   (int)(n > 32 ? 32 : n), p->text + p->pos);
	p->pos += n;
	if (k == ESCAPE_BASE64 || k == ESCAPE_BASE64D) {
		if (ref->ntransforms == TEMPLATE_MAX_FILTER)
			return parse_error(p, start, -EINVAL, "more than %d base64 filters",
					   TEMPLATE_MAX_FILTER);
		ref->transforms[ref->ntransforms++] = k;
		return 0;
	}
	ref->has_escaper = true;
	ref->escaper = k;
	return 0;
}

static void ref_done(struct template_ref *ref)
{
	free(ref->path);
	free(ref->def);
}

/* After the opening delimiter at @open_off: a comment, an expansion or a reference. */
static int parse_action(struct parser *p, size_t open_off)
{
	struct template_ref ref = { 0 };
	struct template *t = p->t;
	int r;

	position(p, open_off, &ref.line, &ref.col);
	if (p->pos < p->len && p->text[p->pos] == '!') {
		/* A comment: everything up to the closing delimiter. */
		const char *end = memmem(p->text + p->pos, p->len - p->pos, p->close, p->closelen);

		if (!end)
			return parse_error(p, open_off, -EINVAL, "unterminated comment, no '%s'",
					   p->close);
		p->pos = (size_t)(end - p->text) + p->closelen;
		/* A comment alone on its lines leaves no blank line (Mustache's "standalone"). */
		if ((open_off == 0 || p->text[open_off - 1] == '\n') && p->pos < p->len &&
		    (p->text[p->pos] == '\n' || (p->text[p->pos] == '\r' && p->pos + 1 < p->len &&
						 p->text[p->pos + 1] == '\n')))
			p->pos += p->text[p->pos] == '\r' ? 2 : 1;
		return 0;
	}
	if (p->pos < p->len && p->text[p->pos] == '*') {
		ref.expand = true;
		p->pos++;
	}
	skip_blanks(p);
	r = parse_path(p, &ref);
	for (;;) {
		if (r < 0)
			break;
		skip_blanks(p);
		if (at(p, p->close, p->closelen)) {
			p->pos += p->closelen;
			break;
		}
		if (p->pos >= p->len) {
			r = parse_error(p, open_off, -EINVAL, "'%s' without a closing '%s'",
					p->open, p->close);
			break;
		}
		if (p->text[p->pos] != '|') {
			r = parse_error(p, p->pos, -EINVAL, "expected '|' or '%s'", p->close);
			break;
		}
		if (ref.expand) {
			r = parse_error(p, p->pos, -EINVAL,
					"'%s*' takes no filters: it renders in the template's "
					"format",
					p->open);
			break;
		}
		p->pos++;
		skip_blanks(p);
		r = parse_filter(p, &ref);
	}
	if (r >= 0 && t->nrefs == TEMPLATE_MAX_REFS)
		r = parse_error(p, open_off, -E2BIG, "more than %d references in one template",
				TEMPLATE_MAX_REFS);
	if (r >= 0 && t->nrefs == p->refcap) {
		size_t cap = p->refcap ? p->refcap * 2 : 8;
		struct template_ref *refs = realloc(t->refs, cap * sizeof(*refs));

		if (refs) {
			t->refs = refs;
			p->refcap = cap;
		} else {
			r = -ENOMEM;
		}
	}
	if (r >= 0)
		r = add_seg(p, 0, 0, (int)t->nrefs);
	if (r < 0) {
		ref_done(&ref);
		return r;
	}
	t->refs[t->nrefs++] = ref;
	return 0;
}

int template_delims(const char *spec, char *open, char *close, char *err, size_t errlen)
{
	size_t n1, gap, n2;

	spec += strspn(spec, " \t");
	n1 = strcspn(spec, " \t");
	gap = strspn(spec + n1, " \t");
	n2 = strcspn(spec + n1 + gap, " \t");
	if (n1 == 0 || gap == 0 || n2 == 0 ||
	    spec[n1 + gap + n2 + strspn(spec + n1 + gap + n2, " \t")])
		return set_error(err, errlen, -EINVAL,
				 "expected two delimiters separated by a blank, like <%% %%>");
	if (n1 > TEMPLATE_DELIM_MAX || n2 > TEMPLATE_DELIM_MAX)
		return set_error(err, errlen, -EINVAL, "a delimiter longer than %d characters",
				 TEMPLATE_DELIM_MAX);
	for (size_t i = 0; i < n1 + gap + n2; i++)
		if ((i < n1 || i >= n1 + gap) &&
		    ((unsigned char)spec[i] <= 0x20 || (unsigned char)spec[i] > 0x7e))
			return set_error(err, errlen, -EINVAL,
					 "delimiters are printable ASCII characters");
	memcpy(open, spec, n1);
	open[n1] = '\0';
	memcpy(close, spec + n1 + gap, n2);
	close[n2] = '\0';
	if (strchr("!*|\"", open[n1 - 1]) || strchr("|\"", close[0]))
		return set_error(err, errlen, -EINVAL,
				 "the opening delimiter may not end, nor the closing one start, "
				 "with ! * | or \"");
	return 0;
}

int template_parse(const char *text, size_t len, const char *open, const char *close,
		   const char *name, struct template **ret, char *err, size_t errlen)
{
	struct parser p = { .text = text,
			    .len = len,
			    .open = open ? open : "{{",
			    .close = close ? close : "}}",
			    .name = name,
			    .err = err,
			    .errlen = errlen };
	size_t lit = 0;
	int r = 0;

	p.openlen = strlen(p.open);
	p.closelen = strlen(p.close);
	if (len > TEMPLATE_MAX_BYTES)
		return set_error(err, errlen, -EFBIG, "%s: larger than %d KiB", name,
				 TEMPLATE_MAX_BYTES / 1024);
	if (p.openlen == 0 || p.closelen == 0)
		return set_error(err, errlen, -EINVAL, "%s: empty delimiter", name);
	p.t = calloc(1, sizeof(*p.t));
	if (!p.t)
		return set_error(err, errlen, -ENOMEM, "%s: out of memory", name);
	p.t->text = malloc(len + 1);
	if (!p.t->text) {
		template_free(p.t);
		return set_error(err, errlen, -ENOMEM, "%s: out of memory", name);
	}
	memcpy(p.t->text, text, len);
	p.t->text[len] = '\0';
	p.t->len = len;
	p.text = p.t->text;

	while (r >= 0 && p.pos < p.len) {
		const char *o = memmem(p.text + p.pos, p.len - p.pos, p.open, p.openlen);
		size_t open_off;

		if (!o) {
			p.pos = p.len;
			break;
		}
		open_off = (size_t)(o - p.text);
		r = add_seg(&p, lit, open_off - lit, -1);
		p.pos = open_off + p.openlen;
		if (r >= 0)
			r = parse_action(&p, open_off);
		lit = p.pos;
	}
	if (r >= 0)
		r = add_seg(&p, lit, p.len - lit, -1);
	if (r < 0) {
		if (r == -ENOMEM)
			set_error(err, errlen, r, "%s: out of memory", name);
		template_free(p.t);
		return r;
	}
	*ret = p.t;
	return 0;
}

void template_free(struct template *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrefs; i++)
		ref_done(&t->refs[i]);
	free(t->refs);
	free(t->segs);
	free(t->text);
	free(t);
}

/* One plain reference's bytes through its transforms, then its escaper. */
static int render_ref(const struct template_ref *ref, enum escape_kind format,
		      const unsigned char *data, size_t len, struct lbuf *out, char *why,
		      size_t whylen)
{
	struct lbuf a = { 0 }, b = { 0 };
	int r = 0;

	for (size_t i = 0; r >= 0 && i < ref->ntransforms; i++) {
		b = (struct lbuf){ 0 };
		r = escape_value(ref->transforms[i], data, len, &b, why, whylen);
		lbuf_free(&a);
		a = b;
		data = (const unsigned char *)a.data;
		len = a.len;
	}
	if (r >= 0)
		r = escape_value(ref->has_escaper ? ref->escaper : format,
				 data ? data : (const unsigned char *)"", len, out, why, whylen);
	lbuf_free(&a);
	return r;
}

int template_render(const struct template *t, enum escape_kind format, unsigned view_flags,
		    const struct template_value *vals, bool missing_empty, size_t max,
		    struct secret **ret, int *ret_ref, char *reason, size_t reasonlen)
{
	struct lbuf out = { 0 };
	char why[256] = "";
	int r = 0, bad = -1;

	for (size_t i = 0; r >= 0 && i < t->nsegs; i++) {
		const struct template_seg *s = &t->segs[i];
		const struct template_ref *ref;
		const struct template_value *v;

		if (s->ref < 0) {
			r = lbuf_append(&out, t->text + s->off, s->len);
			if (r < 0)
				snprintf(why, sizeof(why), "out of memory");
			continue;
		}
		ref = &t->refs[s->ref];
		v = &vals[s->ref];
		bad = s->ref;
		if (v->missing && ref->def) {
			r = render_ref(ref, format, (const unsigned char *)ref->def, ref->deflen,
				       &out, why, sizeof(why));
		} else if (v->missing && !missing_empty) {
			r = -ENOENT;
			snprintf(why, sizeof(why), "not found");
		} else if (ref->expand && !v->missing) {
			if (!v->table) {
				r = -EINVAL;
				snprintf(why, sizeof(why), "not an object secret");
			} else {
				r = view_render(format, v->table, view_flags, &out, why,
						sizeof(why));
			}
		} else if (!v->missing) {
			r = render_ref(ref, format, v->data, v->len, &out, why, sizeof(why));
		} else if (!ref->expand) {
			r = render_ref(ref, format, (const unsigned char *)"", 0, &out, why,
				       sizeof(why));
		}
		if (r >= 0 && out.len > max) {
			r = -EFBIG;
			snprintf(why, sizeof(why), "output larger than max_body (%zu bytes)", max);
		}
		if (r >= 0)
			bad = -1;
	}
	if (r >= 0 && out.len > max) {
		r = -EFBIG;
		snprintf(why, sizeof(why), "output larger than max_body (%zu bytes)", max);
	}
	if (r < 0) {
		lbuf_free(&out);
		if (bad >= 0)
			set_error(reason, reasonlen, r, "line %u: %s: %s", t->refs[bad].line,
				  t->refs[bad].path, why);
		else
			set_error(reason, reasonlen, r, "%s", why);
		if (ret_ref)
			*ret_ref = bad;
		return r;
	}
	if (ret_ref)
		*ret_ref = -1;
	r = lbuf_to_secret(&out, ret);
	if (r < 0)
		return set_error(reason, reasonlen, r, "out of memory");
	return 0;
}

struct template_set *template_set_ref(struct template_set *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void template_set_unref(struct template_set *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->e[i].name);
		free(s->e[i].path);
		free(s->e[i].file);
		template_free(s->e[i].t);
	}
	free(s);
}

const struct template_entry *template_set_find(const struct template_set *s, const char *path)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (strcmp(s->e[i].path, path) == 0)
			return &s->e[i];
	return NULL;
}

/* Whether @path is @dir or lies below it. */
static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return n == 0 || (strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0'));
}

bool template_set_has_below(const struct template_set *s, const char *path)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (strcmp(s->e[i].path, path) != 0 && path_under(s->e[i].path, path))
			return true;
	return false;
}

/* Reads, checks and parses one template into @e. */
static int entry_load(const struct config_template *ct, const char *meta_dir,
		      struct template_entry *e, char *err, size_t errlen)
{
	char open[TEMPLATE_DELIM_MAX + 1], close[TEMPLATE_DELIM_MAX + 1], why[256];
	char *text = NULL;
	size_t len = 0;
	int r;

	if (!ns_id_is_safe(ct->path))
		return set_error(err, errlen, -EINVAL,
				 "%s: [template %s] path '%s': not a mount path, use 'a/b/c' "
				 "without a leading '/', empty parts, '.' or '..'",
				 ct->origin, ct->name, ct->path);
	if (path_under(ct->path, meta_dir))
		return set_error(err, errlen, -EINVAL,
				 "%s: [template %s] path '%s': %s/ is reserved for secretfs",
				 ct->origin, ct->name, ct->path, meta_dir);
	if (ct->delims && template_delims(ct->delims, open, close, why, sizeof(why)) < 0)
		return set_error(err, errlen, -EINVAL, "%s: [template %s] delims: %s", ct->origin,
				 ct->name, why);
	if (escape_from_name(ct->format ? ct->format : "raw", &e->format) < 0)
		return set_error(err, errlen, -EINVAL, "%s: [template %s] format: unknown",
				 ct->origin, ct->name);
	r = trusted_file_read(ct->file, "template", TEMPLATE_MAX_BYTES, &text, &len, NULL, why,
			      sizeof(why));
	if (r == -EFBIG)
		return set_error(err, errlen, r, "%s: larger than %d KiB ([template %s])", ct->file,
				 TEMPLATE_MAX_BYTES / 1024, ct->name);
	if (r < 0)
		return set_error(err, errlen, r, "%s ([template %s])", why, ct->name);
	r = template_parse(text, len, ct->delims ? open : NULL, ct->delims ? close : NULL, ct->file,
			   &e->t, err, errlen);
	wipe_free(text, len + 1);
	if (r < 0)
		return r;
	for (size_t i = 0; i < e->t->nrefs; i++)
		if (path_under(e->t->refs[i].path, meta_dir))
			return set_error(err, errlen, -EINVAL,
					 "%s:%u:%u: '%s' is inside %s/, which templates cannot "
					 "read; use {{* PATH }} for a format view",
					 ct->file, e->t->refs[i].line, e->t->refs[i].col,
					 e->t->refs[i].path, meta_dir);
	e->name = strdup(ct->name);
	e->path = strdup(ct->path);
	e->file = strdup(ct->file);
	e->access_whole = ct->access_whole;
	e->missing_empty = ct->missing_empty;
	if (!e->name || !e->path || !e->file)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

int template_set_load(const struct config *cfg, const char *meta_dir, struct template_set **ret,
		      char *err, size_t errlen)
{
	struct template_set *s;
	int r = 0;

	*ret = NULL;
	if (cfg->ntemplates == 0)
		return 0;
	s = calloc(1, sizeof(*s) + cfg->ntemplates * sizeof(s->e[0]));
	if (!s)
		return set_error(err, errlen, -ENOMEM, "out of memory");
	s->refs = 1;
	for (size_t i = 0; r >= 0 && i < cfg->ntemplates; i++) {
		const struct config_template *ct = &cfg->templates[i];

		for (size_t j = 0; r >= 0 && j < i; j++) {
			const struct config_template *o = &cfg->templates[j];

			if (strcmp(o->name, ct->name) == 0)
				r = set_error(err, errlen, -EINVAL,
					      "%s: [template %s]: the name is taken by %s",
					      ct->origin, ct->name, o->origin);
			else if (path_under(ct->path, o->path) || path_under(o->path, ct->path))
				r = set_error(err, errlen, -EINVAL,
					      "%s: [template %s] path '%s': clashes with '%s' of "
					      "[template %s] (%s)",
					      ct->origin, ct->name, ct->path, o->path, o->name,
					      o->origin);
		}
		if (r >= 0) {
			r = entry_load(ct, meta_dir, &s->e[i], err, errlen);
			s->n = i + 1;
		}
	}
	/*
	 * A reference to a template's path would read the stored secret the
	 * template hides there: templates do not nest, and nothing reads what
	 * the mount no longer shows.
	 */
	for (size_t i = 0; r >= 0 && i < s->n; i++)
		for (size_t k = 0; r >= 0 && k < s->e[i].t->nrefs; k++)
			for (size_t j = 0; r >= 0 && j < s->n; j++) {
				const struct template_ref *ref = &s->e[i].t->refs[k];

				if (path_under(ref->path, s->e[j].path))
					r = set_error(
						err, errlen, -EINVAL,
						"%s:%u:%u: '%s' is the path of [template %s]; "
						"templates do not refer to templates",
						s->e[i].file, ref->line, ref->col, ref->path,
						s->e[j].name);
			}
	if (r < 0) {
		template_set_unref(s);
		return r;
	}
	*ret = s;
	return 0;
}
