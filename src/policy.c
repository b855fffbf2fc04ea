/*
 * policy.c - the access policy: who may open which path, and what stat shows
 * for it (docs/design.md section 5).
 *
 * A policy file is read once into an array of rules.  Names are resolved to
 * ids and globs are checked and split into components at load, so that every
 * mistake is reported with its file and line before the mount, and so that
 * deciding needs neither the user database nor any allocation: it runs on
 * every lookup and open.  A decision copies the path onto the stack, splits it
 * into components there, and walks the rules from the last one, as the last
 * matching rule decides.  Each component is matched with fnmatch(3); "**"
 * stands for any number of whole components.  A loaded policy is never
 * modified, only shared by reference, so a reload swaps it under readers.
 *
 * Nothing here logs: errors come back as a negative errno and a reason.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wctype.h>

#include "secretfs/policy.h"
#include "secretfs/selector.h"
#include "secretfs/util.h"

/*
 * Limits that keep matching cheap and bounded.  The matcher recurses once per
 * "**", so 8 of them bound its stack depth; with the abort rule in
 * glob_match_from() the work for one rule is at most (components of the glob) x
 * (components of the path) comparisons, and 64 components keep that product
 * small and let a rule describe its components in one 64-bit mask.  4096 bytes
 * a line bound every fnmatch() pattern and let a line be parsed on the stack.
 */
#define LINE_MAX_BYTES	  4096
#define GLOB_MAX_COMPS	  64
#define GLOB_MAX_STARSTAR 8
/* A policy is a hand-written file; anything this big is not one. */
#define POLICY_MAX_BYTES (1024 * 1024)

enum subject_kind {
	SUBJECT_ANY,
	SUBJECT_USER,
	SUBJECT_GROUP,
};

struct rule {
	unsigned line;
	bool permit;
	enum subject_kind kind;
	uint32_t id; /* uid or gid, by kind */
	/* exe=: the binary's identity, resolved at load; !has_exe: any executable */
	bool has_exe;
	dev_t exe_dev;
	ino_t exe_ino;
	bool sets_attrs;
	struct policy_attrs attrs;
	/* versions=: the selector kinds (SELECTOR_BIT) a permit grants under META/at/; current always */
	unsigned versions;
	/* The glob's components, each NUL-terminated, component i at glob + off[i]. */
	char *glob;
	unsigned ncomp;
	uint64_t starstar; /* bit i: component i is "**" */
	uint64_t literal;  /* bit i: component i has no wildcard, so strcmp() will do */
	uint16_t off[GLOB_MAX_COMPS];
};

struct policy {
	atomic_uint refs;
	char *file;
	bool uses_groups, uses_exe;
	struct rule *rules;
	size_t nrules, cap;
	gid_t *gids; /* the groups rules name, sorted, each once */
	size_t ngids;
};

/* Echo only short printable text: a terminal should not get escape sequences from a file. */
static const char *printable(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (s[n] < 0x20 || s[n] > 0x7e)
			return "(not printable)";
	return n <= 128 ? s : "(too long to show)";
}

/* strerror() shares a buffer between threads, and a reload need not run on the main one. */
static const char *errno_text(int e)
{
	const char *desc = strerrordesc_np(e);

	return desc ? desc : "unknown error";
}

static inline uint64_t bit(unsigned i)
{
	return UINT64_C(1) << i;
}

/* ---- the user database ---- */

/* (uid_t)-1 and (gid_t)-1 mean "no id" to chown() and setresuid(); never a subject. */
#define ID_MAX (UINT32_MAX - 1)

/* A number is an id, as for chown(1); anything else is looked up. */
static int user_id(const char *s, uid_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	struct passwd pw;
	uint64_t v;
	int r;

	if (isdigit((unsigned char)s[0]) && s[strspn(s, "0123456789")] == '\0') {
		r = parse_uint(s, ID_MAX, &v);
		if (r < 0)
			return r;
		*ret = (uid_t)v;
		return 0;
	}
	r = user_lookup(s, 0, &pw, &buf);
	if (r < 0)
		return r;
	*ret = pw.pw_uid;
	return 0;
}

static int group_id(const char *s, gid_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	struct group gr;
	uint64_t v;
	int r;

	if (isdigit((unsigned char)s[0]) && s[strspn(s, "0123456789")] == '\0') {
		r = parse_uint(s, ID_MAX, &v);
		if (r < 0)
			return r;
		*ret = (gid_t)v;
		return 0;
	}
	r = group_lookup(s, 0, &gr, &buf);
	if (r < 0)
		return r;
	*ret = gr.gr_gid;
	return 0;
}

/* user_id() with the reason it failed; @field names the option, "" for a subject. */
static int resolve_user(const char *name, const char *field, uid_t *ret, char *why, size_t whylen)
{
	int e = user_id(name, ret);

	if (e == -ENOENT)
		return set_error(why, whylen, -EINVAL, "unknown user '%s'%s", printable(name),
				 field);
	if (e == -ERANGE || e == -EINVAL)
		return set_error(why, whylen, -EINVAL, "bad user id '%s'%s: at most %u",
				 printable(name), field, (unsigned)ID_MAX);
	if (e < 0)
		return set_error(why, whylen, e, "cannot look up user '%s': %s", printable(name),
				 errno_text(-e));
	return 0;
}

static int resolve_group(const char *name, const char *field, gid_t *ret, char *why, size_t whylen)
{
	int e = group_id(name, ret);

	if (e == -ENOENT)
		return set_error(why, whylen, -EINVAL, "unknown group '%s'%s", printable(name),
				 field);
	if (e == -ERANGE || e == -EINVAL)
		return set_error(why, whylen, -EINVAL, "bad group id '%s'%s: at most %u",
				 printable(name), field, (unsigned)ID_MAX);
	if (e < 0)
		return set_error(why, whylen, e, "cannot look up group '%s': %s", printable(name),
				 errno_text(-e));
	return 0;
}

/* ---- globs ---- */

/*
 * Where the bracket expression opening at c[i] closes, or 0 when it does
 * not.  The grammar is fnmatch()'s: a leading '!' or '^' negates, a ']' right
 * after them is a member, '\' escapes, and "[:class:]", "[.x.]", "[=x=]" nest.
 * fnmatch() would read an unclosed '[' as a literal, which in a policy is far
 * more likely a typo than a file name.
 */
static size_t bracket_end(const char *c, size_t i, const char **why)
{
	size_t j = i + 1;

	if (c[j] == '!' || c[j] == '^')
		j++;
	if (c[j] == ']')
		j++;
	for (; c[j]; j++) {
		if (c[j] == ']')
			return j;
		if (c[j] == '\\') {
			if (!c[j + 1])
				break;
			j++;
		} else if (c[j] == '[' && (c[j + 1] == ':' || c[j + 1] == '.' || c[j + 1] == '=')) {
			char close[3] = { c[j + 1], ']', '\0' };
			const char *end = strstr(c + j + 2, close);

			if (!end)
				break;
			if (c[j + 1] == ':') {
				char name[32];
				size_t n = (size_t)(end - (c + j + 2));

				if (n >= sizeof(name)) {
					*why = "unknown character class";
					return 0;
				}
				memcpy(name, c + j + 2, n);
				name[n] = '\0';
				if (!wctype(name)) {
					*why = "unknown character class";
					return 0;
				}
			}
			j = (size_t)(end - c) + 1; /* on the ']' of ":]"; the loop steps past it */
		}
	}
	*why = "'[' without a closing ']'";
	return 0;
}

/* NULL if @c is a usable component pattern, else what is wrong with it. */
static const char *comp_check(const char *c)
{
	const char *why = NULL;

	if (strcmp(c, "**") != 0 && strstr(c, "**"))
		return "'**' must be a whole component, like a/**/b";
	for (size_t i = 0; c[i]; i++) {
		if (c[i] == '\\') {
			if (!c[i + 1])
				return "ends with a lone '\\'";
			i++;
		} else if (c[i] == '[') {
			i = bracket_end(c, i, &why);
			if (!i)
				return why;
		}
	}
	return NULL;
}

/*
 * Splits @text into r->glob.  Consecutive "**" components are stored as one:
 * they match the same paths, and the matcher then never nests two "**" with
 * nothing between them.  Returns 0, or -EINVAL with the reason in @why.
 */
static int glob_parse(const char *text, struct rule *r, char *why, size_t whylen)
{
	size_t len = strlen(text), used = 0;
	unsigned total = 0, nstar = 0;
	const char *s = text;

	if (text[0] == '/')
		return set_error(why, whylen, -EINVAL,
				 "bad path '%s': paths are relative to the mount root, "
				 "without a leading '/'",
				 printable(text));
	r->glob = malloc(len + 1);
	if (!r->glob)
		return set_error(why, whylen, -ENOMEM, "out of memory");
	r->ncomp = 0;
	for (;;) {
		size_t n = strcspn(s, "/");
		char *c = r->glob + used;
		const char *bad;
		bool star;

		memcpy(c, s, n);
		c[n] = '\0';
		if (n == 0)
			return set_error(why, whylen, -EINVAL, "bad path '%s': empty component",
					 printable(text));
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0)
			return set_error(why, whylen, -EINVAL,
					 "bad path '%s': '.' and '..' are not allowed",
					 printable(text));
		if (++total > GLOB_MAX_COMPS)
			return set_error(why, whylen, -EINVAL,
					 "bad glob '%s': more than %d components", printable(text),
					 GLOB_MAX_COMPS);
		bad = comp_check(c);
		if (bad)
			return set_error(why, whylen, -EINVAL, "bad glob '%s': %s", printable(text),
					 bad);
		star = strcmp(c, "**") == 0;
		if (star && ++nstar > GLOB_MAX_STARSTAR)
			return set_error(why, whylen, -EINVAL,
					 "bad glob '%s': more than %d '**' components",
					 printable(text), GLOB_MAX_STARSTAR);
		if (!(star && r->ncomp && (r->starstar & bit(r->ncomp - 1)))) {
			r->off[r->ncomp] = (uint16_t)used;
			if (star)
				r->starstar |= bit(r->ncomp);
			else if (!strpbrk(c, "*?[\\"))
				r->literal |= bit(r->ncomp);
			r->ncomp++;
			used += n + 1;
		}
		s += n;
		if (!*s)
			return 0;
		s++;
	}
}

/* ---- matching, on the decision path: no allocation ---- */

/*
 * A path split in place: its components, NUL-terminated, one after the other
 * from buf to end.  A path the kernel sends fits in PATH_MAX.
 */
struct split_path {
	char buf[PATH_MAX];
	const char *end;
};

/*
 * Copies @path into @sp, dropping empty components.  False for a path too
 * long to be real or with a "." or ".." component: no glob may name those,
 * but "*" would match them, so such a path matches nothing.
 */
static bool path_split(const char *path, struct split_path *sp)
{
	size_t used = 0;

	while (*path) {
		size_t n;

		if (*path == '/') {
			path++;
			continue;
		}
		n = strcspn(path, "/");
		if (n + 1 > sizeof(sp->buf) - used)
			return false;
		if (path[0] == '.' && (n == 1 || (n == 2 && path[1] == '.')))
			return false;
		memcpy(sp->buf + used, path, n);
		sp->buf[used + n] = '\0';
		used += n + 1;
		path += n;
	}
	sp->end = sp->buf + used;
	return true;
}

static inline const char *next_comp(const char *s)
{
	return s + strlen(s) + 1;
}

static bool comp_match(const struct rule *r, unsigned i, const char *name)
{
	const char *pat = r->glob + r->off[i];

	if (r->literal & bit(i))
		return strcmp(pat, name) == 0;
	return fnmatch(pat, name, 0) == 0;
}

enum {
	GLOB_MATCH,
	GLOB_NOMATCH,
	/* No match, and none for an earlier "**" either: see glob_match_from(). */
	GLOB_ABORT,
};

/*
 * Whether glob components i.. match exactly the path components from @s to
 * @end.  A "**" takes no component, then one more at a time, and recurses
 * for the rest of the glob at each.  If the rest fails at every position, an
 * earlier "**" cannot help by trying a later position: the later "**" would
 * only get fewer components to try.  So that failure aborts the whole match
 * (git's and rsync's wildmatch stop the same way), which keeps the work to
 * about glob x path comparisons instead of growing with the power of the
 * number of "**".
 */
static int glob_match_from(const struct rule *r, unsigned i, const char *s, const char *end)
{
	for (; i < r->ncomp; i++) {
		if (r->starstar & bit(i)) {
			if (i + 1 == r->ncomp)
				return GLOB_MATCH;
			for (;;) {
				int m = glob_match_from(r, i + 1, s, end);

				if (m != GLOB_NOMATCH)
					return m;
				if (s == end)
					return GLOB_ABORT;
				s = next_comp(s);
			}
		}
		if (s == end || !comp_match(r, i, s))
			return GLOB_NOMATCH;
		s = next_comp(s);
	}
	return s == end ? GLOB_MATCH : GLOB_NOMATCH;
}

static bool glob_match(const struct rule *r, const struct split_path *sp)
{
	return glob_match_from(r, 0, sp->buf, sp->end) == GLOB_MATCH;
}

/*
 * Whether the glob can match the directory @sp itself or some path below it:
 * its leading components match the directory's, and a "**" can take all the
 * rest of the directory and more.  No backtracking is needed.
 */
static bool glob_match_prefix(const struct rule *r, const struct split_path *sp)
{
	const char *s = sp->buf;

	for (unsigned i = 0; i < r->ncomp; i++) {
		if (s == sp->end || (r->starstar & bit(i)))
			return true;
		if (!comp_match(r, i, s))
			return false;
		s = next_comp(s);
	}
	return s == sp->end;
}

/*
 * Whether the glob matches every path below the directory @sp: consuming the
 * directory's components leaves exactly "**".  That is the same as ending in
 * "**" and matching the directory itself, as the final "**" may match nothing
 * there and anything below.
 */
static bool glob_covers_below(const struct rule *r, const struct split_path *sp)
{
	return (r->starstar & bit(r->ncomp - 1)) && glob_match(r, sp);
}

static bool in_groups(const struct policy_subject *who, gid_t gid)
{
	for (size_t k = 0; who->groups && k < who->ngroups; k++)
		if (who->groups[k] == gid)
			return true;
	return false;
}

/*
 * What is unknown fails closed: a deny that may apply is taken to apply, a
 * permit that may not is taken not to.
 */
static bool rule_applies(const struct rule *r, const struct policy_subject *who)
{
	if (r->kind == SUBJECT_USER && who->uid != r->id)
		return false;
	if (r->kind == SUBJECT_GROUP && who->gid != r->id && !in_groups(who, r->id) &&
	    (r->permit || !who->groups_incomplete))
		return false;
	if (r->has_exe) {
		if (!who->exe_known)
			return !r->permit;
		if (who->exe_dev != r->exe_dev || who->exe_ino != r->exe_ino)
			return false;
	}
	return true;
}

void policy_decide(const struct policy *p, const char *path, const struct policy_subject *who,
		   struct policy_decision *ret)
{
	struct split_path sp;

	*ret = (struct policy_decision){ .permit = false, .line = 0 };
	if (!path_split(path, &sp))
		return;
	/* From the end: the first rule that matches there is the last one that matches. */
	for (size_t k = p->nrules; k-- > 0;) {
		const struct rule *r = &p->rules[k];

		if (rule_applies(r, who) && glob_match(r, &sp)) {
			ret->permit = r->permit;
			ret->line = r->line;
			ret->versions = r->permit ? r->versions | SELECTOR_BIT(SELECTOR_CURRENT) : 0;
			return;
		}
	}
}

void policy_decide_dir(const struct policy *p, const char *path, const struct policy_subject *who,
		       struct policy_decision *ret)
{
	struct split_path sp;

	*ret = (struct policy_decision){ .permit = false, .line = 0 };
	if (!path_split(path, &sp))
		return;
	/*
	 * From the end, the first relevant rule decides: a permit that could
	 * match something here or below means no later deny covers the whole
	 * directory; a deny covering it comes after every such permit.
	 */
	for (size_t k = p->nrules; k-- > 0;) {
		const struct rule *r = &p->rules[k];

		if (!rule_applies(r, who))
			continue;
		if (r->permit ? glob_match_prefix(r, &sp) : glob_covers_below(r, &sp)) {
			ret->permit = r->permit;
			ret->line = r->line;
			return;
		}
	}
}

void policy_attrs(const struct policy *p, const char *path, struct policy_attrs *ret)
{
	struct split_path sp;

	*ret = (struct policy_attrs){ 0 };
	if (!path_split(path, &sp))
		return;
	for (size_t k = p->nrules; k-- > 0;) {
		const struct rule *r = &p->rules[k];

		if (r->sets_attrs && glob_match(r, &sp)) {
			*ret = r->attrs;
			return;
		}
	}
}

/* ---- parsing ---- */

/* The next blank-separated field of the line at *cur, or NULL at its end or at a comment. */
static char *next_field(char **cur)
{
	char *s = *cur + strspn(*cur, " \t");
	char *e;

	if (!*s || *s == '#') {
		*cur = s + strlen(s);
		return NULL;
	}
	e = s + strcspn(s, " \t");
	if (*e)
		*e++ = '\0';
	*cur = e;
	return s;
}

static int parse_subject(const char *s, struct rule *r, char *why, size_t whylen)
{
	int e;

	if (strcmp(s, "*") == 0) {
		r->kind = SUBJECT_ANY;
		return 0;
	}
	if (strncmp(s, "user:", 5) == 0 && s[5]) {
		uid_t uid = 0;

		e = resolve_user(s + 5, "", &uid, why, whylen);
		if (e < 0)
			return e;
		r->kind = SUBJECT_USER;
		r->id = uid;
		return 0;
	}
	if (strncmp(s, "group:", 6) == 0 && s[6]) {
		gid_t gid = 0;

		e = resolve_group(s + 6, "", &gid, why, whylen);
		if (e < 0)
			return e;
		r->kind = SUBJECT_GROUP;
		r->id = gid;
		return 0;
	}
	return set_error(why, whylen, -EINVAL,
			 "bad subject '%s': expected user:NAME, user:UID, group:NAME, group:GID "
			 "or *",
			 printable(s));
}

/* "0400" or "400": octal permission bits, without setuid, setgid or sticky. */
static int parse_mode(const char *s, mode_t *ret)
{
	size_t n = strspn(s, "01234567");
	unsigned long v;

	if (n == 0 || n > 4 || s[n])
		return -EINVAL;
	v = strtoul(s, NULL, 8);
	if (v > 0777)
		return -EINVAL;
	*ret = (mode_t)v;
	return 0;
}

enum {
	OPT_OWNER = 1 << 0,
	OPT_GROUP = 1 << 1,
	OPT_MODE = 1 << 2,
	OPT_EXE = 1 << 3,
	OPT_VERSIONS = 1 << 4,
};

/* "versions" (every selector) or "versions=KIND,KIND" (selector.h's kind names). */
static int parse_versions(const char *value, struct rule *r, char *why, size_t whylen)
{
	unsigned bits = SELECTOR_BIT(SELECTOR_CURRENT);

	if (!value) {
		r->versions = SELECTOR_ALL;
		return 0;
	}
	for (const char *p = value;;) {
		size_t n = strcspn(p, ",");
		enum selector_kind k;

		if (selector_kind_from_name(p, n, &k) < 0)
			return set_error(why, whylen, -EINVAL,
					 "bad versions= list '%s': expected names among previous, "
					 "pending, number, id, label, current, separated by ','",
					 printable(value));
		bits |= SELECTOR_BIT(k);
		if (!p[n])
			break;
		p += n + 1;
	}
	r->versions = bits;
	return 0;
}

static int parse_option(char *opt, struct rule *r, unsigned *seen, char *why, size_t whylen)
{
	static const struct {
		const char *key;
		unsigned flag;
	} keys[] = {
		{ "owner", OPT_OWNER },
		{ "group", OPT_GROUP },
		{ "mode", OPT_MODE },
		{ "exe", OPT_EXE },
	};
	char *eq = strchr(opt, '=');
	const char *value;
	unsigned flag = 0;
	int e;

	if (strcmp(opt, "versions") == 0 || strncmp(opt, "versions=", 9) == 0) {
		if (*seen & OPT_VERSIONS)
			return set_error(why, whylen, -EINVAL, "duplicate option versions");
		*seen |= OPT_VERSIONS;
		if (!r->permit)
			return set_error(why, whylen, -EINVAL,
					 "versions on a deny rule: a deny refuses every version");
		return parse_versions(eq ? eq + 1 : NULL, r, why, whylen);
	}
	if (eq) {
		*eq = '\0';
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
			if (strcmp(opt, keys[i].key) == 0)
				flag = keys[i].flag;
		*eq = '=';
	}
	if (!flag)
		return set_error(why, whylen, -EINVAL,
				 "unknown option '%s': expected owner=, group=, mode=, exe= or "
				 "versions[=...]",
				 printable(opt));
	*eq = '\0';
	value = eq + 1;
	if (*seen & flag)
		return set_error(why, whylen, -EINVAL, "duplicate option %s=", opt);
	*seen |= flag;
	if (!*value)
		return set_error(why, whylen, -EINVAL, "missing value for %s=", opt);

	switch (flag) {
	case OPT_OWNER:
		e = resolve_user(value, " in owner=", &r->attrs.owner, why, whylen);
		if (e < 0)
			return e;
		r->attrs.has_owner = true;
		break;
	case OPT_GROUP:
		e = resolve_group(value, " in group=", &r->attrs.group, why, whylen);
		if (e < 0)
			return e;
		r->attrs.has_group = true;
		break;
	case OPT_MODE:
		if (parse_mode(value, &r->attrs.mode) < 0)
			return set_error(why, whylen, -EINVAL,
					 "bad mode '%s': expected octal permission bits like 0400, "
					 "at most 0777",
					 printable(value));
		r->attrs.has_mode = true;
		break;
	case OPT_EXE: {
		struct stat st;

		/* A relative path would depend on the daemon's working directory. */
		if (value[0] != '/')
			return set_error(
				why, whylen, -EINVAL,
				"bad exe '%s': expected an absolute path like /usr/bin/prog",
				printable(value));
		/*
		 * The binary, not its name: a user can put another file at this
		 * path in a mount namespace of their own, but not change which
		 * file this path is here.  stat() follows symlinks, as the kernel
		 * does when it runs one.
		 */
		if (stat(value, &st) < 0)
			return set_error(why, whylen, -EINVAL, "exe '%s': %s", printable(value),
					 errno_text(errno));
		if (!S_ISREG(st.st_mode))
			return set_error(why, whylen, -EINVAL, "exe '%s': not a regular file",
					 printable(value));
		r->has_exe = true;
		r->exe_dev = st.st_dev;
		r->exe_ino = st.st_ino;
		break;
	}
	}
	r->sets_attrs = r->attrs.has_owner || r->attrs.has_group || r->attrs.has_mode;
	return 0;
}

static void rule_done(struct rule *r)
{
	free(r->glob);
}

/* Parses one line of @n bytes into @r; r->glob is NULL after a blank or comment line. */
static int parse_line(const char *src, size_t n, struct rule *r, char *why, size_t whylen)
{
	char buf[LINE_MAX_BYTES + 1];
	char *cur = buf, *action, *subject, *glob, *opt;
	unsigned seen = 0;
	int e;

	if (n > LINE_MAX_BYTES)
		return set_error(why, whylen, -EINVAL, "line too long (at most %d bytes)",
				 LINE_MAX_BYTES);
	if (memchr(src, '\0', n))
		return set_error(why, whylen, -EINVAL, "NUL byte in line");
	memcpy(buf, src, n);
	/* A file from Windows must not make "\r" part of the last field. */
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';

	action = next_field(&cur);
	if (!action)
		return 0;
	subject = next_field(&cur);
	glob = subject ? next_field(&cur) : NULL;
	if (!subject || !glob)
		return set_error(why, whylen, -EINVAL,
				 "missing field: expected ACTION SUBJECT GLOB [OPTION=VALUE...]");
	if (strcmp(action, "permit") == 0)
		r->permit = true;
	else if (strcmp(action, "deny") == 0)
		r->permit = false;
	else
		return set_error(why, whylen, -EINVAL, "bad action '%s': expected permit or deny",
				 printable(action));
	e = parse_subject(subject, r, why, whylen);
	if (e < 0)
		return e;
	e = glob_parse(glob, r, why, whylen);
	if (e < 0)
		return e;
	while ((opt = next_field(&cur))) {
		e = parse_option(opt, r, &seen, why, whylen);
		if (e < 0)
			return e;
	}
	return 0;
}

static int policy_add(struct policy *p, const struct rule *r)
{
	if (p->nrules == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct rule *rules = reallocarray(p->rules, cap, sizeof(*rules));

		if (!rules)
			return -ENOMEM;
		p->rules = rules;
		p->cap = cap;
	}
	p->rules[p->nrules++] = *r;
	if (r->kind == SUBJECT_GROUP)
		p->uses_groups = true;
	if (r->has_exe)
		p->uses_exe = true;
	return 0;
}

static int gid_cmp(const void *a, const void *b)
{
	gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;

	return x < y ? -1 : x > y;
}

/* The sorted set of gids that rules name, for policy_names_group(). */
static int policy_index_groups(struct policy *p)
{
	size_t n = 0;

	for (size_t k = 0; k < p->nrules; k++)
		n += p->rules[k].kind == SUBJECT_GROUP;
	if (!n)
		return 0;
	p->gids = reallocarray(NULL, n, sizeof(*p->gids));
	if (!p->gids)
		return -ENOMEM;
	for (size_t k = 0; k < p->nrules; k++)
		if (p->rules[k].kind == SUBJECT_GROUP)
			p->gids[p->ngids++] = p->rules[k].id;
	qsort(p->gids, p->ngids, sizeof(*p->gids), gid_cmp);
	n = 1;
	for (size_t k = 1; k < p->ngids; k++)
		if (p->gids[k] != p->gids[n - 1])
			p->gids[n++] = p->gids[k];
	p->ngids = n;
	return 0;
}

static void policy_free(struct policy *p)
{
	for (size_t k = 0; k < p->nrules; k++)
		rule_done(&p->rules[k]);
	free(p->rules);
	free(p->gids);
	free(p->file);
	free(p);
}

int policy_parse(const char *text, size_t len, const char *name, struct policy **ret, char *err,
		 size_t errlen)
{
	char why[POLICY_ERR_MAX];
	struct policy *p;
	unsigned line = 0;
	size_t pos = 0;
	int e;

	if (len > POLICY_MAX_BYTES)
		return set_error(err, errlen, -EFBIG, "%s: larger than %d MiB", name,
				 POLICY_MAX_BYTES >> 20);
	p = calloc(1, sizeof(*p));
	if (!p || !(p->file = strdup(name))) {
		free(p);
		return set_error(err, errlen, -ENOMEM, "%s: out of memory", name);
	}
	atomic_init(&p->refs, 1);

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		struct rule r = { .line = ++line };

		e = parse_line(text + pos, n, &r, why, sizeof(why));
		if (e == 0 && r.glob)
			e = policy_add(p, &r);
		else if (e == 0)
			rule_done(&r); /* a blank or comment line */
		if (e < 0) {
			rule_done(&r);
			policy_free(p);
			if (e == -ENOMEM)
				return set_error(err, errlen, e, "%s: out of memory", name);
			return set_error(err, errlen, e, "%s:%u: %s", name, line, why);
		}
		pos += n + (nl ? 1 : 0);
	}
	if (policy_index_groups(p) < 0) {
		policy_free(p);
		return set_error(err, errlen, -ENOMEM, "%s: out of memory", name);
	}
	*ret = p;
	return 0;
}

int policy_load(const char *path, struct policy **ret, char *err, size_t errlen)
{
	size_t len = 0;
	char *buf;
	int e;

	/*
	 * Whoever can write the policy, or a directory above it, decides who
	 * reads every secret.  Symlinks are followed (Kubernetes mounts
	 * ConfigMaps as links into "..data"); the file reached is checked.
	 */
	e = trusted_file_read(path, "policy", POLICY_MAX_BYTES, &buf, &len, NULL, err, errlen);
	if (e < 0)
		return e;
	e = policy_parse(buf, len, path, ret, err, errlen);
	free(buf);
	return e;
}

struct policy *policy_ref(struct policy *p)
{
	if (p)
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

void policy_unref(struct policy *p)
{
	/* acq_rel: the last owner must see every other owner's reads finished. */
	if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		policy_free(p);
}

const char *policy_file(const struct policy *p)
{
	return p->file;
}

bool policy_uses_groups(const struct policy *p)
{
	return p->uses_groups;
}

bool policy_uses_exe(const struct policy *p)
{
	return p->uses_exe;
}

bool policy_names_group(const struct policy *p, gid_t gid)
{
	return p->ngids && bsearch(&gid, p->gids, p->ngids, sizeof(*p->gids), gid_cmp);
}

/* ---- secretfs check-policy ---- */

#define CHECK_USAGE "usage: secretfs check-policy FILE USER [--exe PATH] [--dir] PATH\n"

static int check_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int check_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("secretfs: check-policy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n" CHECK_USAGE, stderr);
	return 2;
}

/* USER as the kernel would present it: uid, primary gid, and every group it is in. */
static int check_subject(const char *user, struct policy_subject *ret, gid_t **ret_groups)
{
	_cleanup_free_ char *buf = NULL;
	struct passwd pw;
	gid_t *groups = NULL;
	int n = 16, e;
	uint64_t v;

	if (isdigit((unsigned char)user[0]) && user[strspn(user, "0123456789")] == '\0') {
		if (parse_uint(user, ID_MAX, &v) < 0)
			return -ENOENT;
		e = user_lookup(NULL, (uid_t)v, &pw, &buf);
	} else {
		e = user_lookup(user, 0, &pw, &buf);
	}
	if (e < 0)
		return e;
	for (;;) {
		int want = n;
		gid_t *g = reallocarray(groups, (size_t)n, sizeof(*g));

		if (!g) {
			free(groups);
			return -ENOMEM;
		}
		groups = g;
		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) >= 0)
			break;
		/* -1 with n set to the number needed; grow at least once to make progress. */
		if (n <= want)
			n = want * 2;
		if (n > 65536) {
			free(groups);
			return -E2BIG;
		}
	}
	ret->uid = pw.pw_uid;
	ret->gid = pw.pw_gid;
	ret->groups = groups;
	ret->ngroups = (size_t)n;
	*ret_groups = groups;
	return 0;
}

/* The name of a uid or gid for display; the number itself, as ls(1) does, when it has none. */
static void id_name(bool user, unsigned id, char *name, size_t len)
{
	_cleanup_free_ char *buf = NULL;
	struct passwd pw;
	struct group gr;

	if (user && user_lookup(NULL, id, &pw, &buf) == 0)
		snprintf(name, len, "%s", pw.pw_name);
	else if (!user && group_lookup(NULL, id, &gr, &buf) == 0)
		snprintf(name, len, "%s", gr.gr_name);
	else
		snprintf(name, len, "%u", id);
}

int policy_check_main(int argc, char **argv)
{
	const char *args[3], *exe = NULL;
	struct stat st;
	struct policy_subject who = { 0 };
	struct policy_decision d;
	struct policy_attrs a;
	_cleanup_free_ gid_t *groups = NULL;
	_cleanup_free_ char *path = NULL;
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX], name[256];
	bool dir = false, opts = true;
	int nargs = 0, e;
	size_t len;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (opts && strcmp(s, "--") == 0) {
			opts = false;
		} else if (opts && (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)) {
			fputs(CHECK_USAGE, stdout);
			fflush(stdout);
			return 0;
		} else if (opts && strcmp(s, "--dir") == 0) {
			dir = true;
		} else if (opts && strcmp(s, "--exe") == 0) {
			if (++i == argc)
				return check_usage("%s needs a PATH", s);
			exe = argv[i];
		} else if (opts && strncmp(s, "--exe=", 6) == 0) {
			exe = s + 6;
		} else if (opts && s[0] == '-' && s[1]) {
			return check_usage("unknown option '%s'", printable(s));
		} else if (nargs == 3) {
			return check_usage("unexpected argument '%s'", printable(s));
		} else {
			args[nargs++] = s;
		}
	}
	if (nargs != 3)
		return check_usage("expected FILE, USER and PATH");
	if (exe && exe[0] != '/')
		return check_usage("--exe needs an absolute path, got '%s'", printable(exe));

	path = strdup(args[2]);
	if (!path) {
		fputs("secretfs: out of memory\n", stderr);
		return 2;
	}
	len = strlen(path);
	/* "prod/" is the directory prod, "/" and "" the root. */
	if (len == 0 || path[len - 1] == '/')
		dir = true;
	while (len && path[len - 1] == '/')
		path[--len] = '\0';

	e = policy_load(args[0], &p, err, sizeof(err));
	if (e < 0) {
		fprintf(stderr, "secretfs: %s\n", err);
		return 2;
	}
	e = check_subject(args[1], &who, &groups);
	if (e < 0) {
		if (e == -ENOENT)
			fprintf(stderr, "secretfs: unknown user '%s'\n", printable(args[1]));
		else
			fprintf(stderr, "secretfs: cannot look up user '%s': %s\n",
				printable(args[1]), errno_text(-e));
		policy_unref(p);
		return 2;
	}
	/* Resolved as the exe= of a rule is: the file, not the name. */
	if (exe) {
		if (stat(exe, &st) < 0) {
			fprintf(stderr, "secretfs: check-policy: --exe %s: %s\n", printable(exe),
				errno_text(errno));
			policy_unref(p);
			return 2;
		}
		who.exe_known = true;
		who.exe_dev = st.st_dev;
		who.exe_ino = st.st_ino;
	}

	if (dir)
		policy_decide_dir(p, path, &who, &d);
	else
		policy_decide(p, path, &who, &d);
	policy_attrs(p, path, &a);

	printf("%s\n", d.permit ? "permit" : "deny");
	if (d.line)
		printf("rule: %s:%u\n", policy_file(p), d.line);
	else
		printf("rule: none (no rule matched)\n");
	if (!a.has_owner && !a.has_group && !a.has_mode) {
		printf("attributes: default\n");
	} else {
		const char *sep = "";

		if (a.has_owner) {
			id_name(true, a.owner, name, sizeof(name));
			printf("owner: %s(%u)", name, (unsigned)a.owner);
			sep = " ";
		}
		if (a.has_group) {
			id_name(false, a.group, name, sizeof(name));
			printf("%sgroup: %s(%u)", sep, name, (unsigned)a.group);
			sep = " ";
		}
		if (a.has_mode)
			printf("%smode: %04o", sep, (unsigned)a.mode);
		printf("\n");
	}
	fflush(stdout);
	policy_unref(p);
	return d.permit ? 0 : 1;
}
