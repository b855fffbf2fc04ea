/*
 * aws_creds_parse.c - the parsers of the AWS credential providers, without
 * the network (see aws_creds_parse.h).
 *
 * STS answers in XML.  Four fields of one small, well-known document do
 * not justify libxml2 and its allocator (which we would have to teach to
 * wipe), so this file carries a small reader that knows elements, text,
 * the predefined entities, character references, comments, processing
 * instructions and CDATA, and refuses a DTD outright: nothing it reads can
 * make it expand an entity or fetch anything.
 *
 * Every buffer that held a secret key or a token is wiped before it is
 * freed; reasons say which field or line was wrong, never what it held.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "backends/aws_creds_parse.h"
#include "secretfs/namespace.h"
#include "secretfs/util.h"

#define WHY_MAX 160

static void wipe_str(char **s)
{
	if (*s)
		wipe_free(*s, strlen(*s));
	*s = NULL;
}

/* ---- credentials ---- */

bool aws_token_is_valid(const char *s, size_t len, size_t max)
{
	return kit_credential_is_valid(s, len, max);
}

/* Checks a set of credentials and fills @ret, taking the strings. */
static int credentials_take(char **akid, char **secret, char **token, const char *expiration,
			    const char *where, struct aws_credentials *ret, char *reason,
			    size_t reasonlen)
{
	int64_t exp = 0;

	if (!*akid || !aws_token_is_valid(*akid, strlen(*akid), AWS_KEY_ID_MAX)) {
		snprintf(reason, reasonlen, "%s: %s", where,
			 *akid ? "AccessKeyId is not an access key id" : "no AccessKeyId");
		return -EIO;
	}
	if (!*secret || !aws_token_is_valid(*secret, strlen(*secret), AWS_SECRET_KEY_MAX)) {
		snprintf(reason, reasonlen, "%s: %s", where,
			 *secret ? "SecretAccessKey is not a secret key" : "no SecretAccessKey");
		return -EIO;
	}
	if (*token && !aws_token_is_valid(*token, strlen(*token), AWS_SESSION_MAX)) {
		snprintf(reason, reasonlen, "%s: the session token is not a token", where);
		return -EIO;
	}
	if (expiration && (aws_parse_time(expiration, &exp) < 0 || exp <= 0)) {
		snprintf(reason, reasonlen, "%s: Expiration is not an ISO 8601 time", where);
		return -EIO;
	}
	*ret = (struct aws_credentials){
		.access_key_id = TAKE_PTR(*akid),
		.secret_access_key = TAKE_PTR(*secret),
		.session_token = TAKE_PTR(*token),
		.expiration_usec = (uint64_t)exp,
	};
	return 0;
}

/* ---- a small XML reader ---- */

#define XML_DEPTH_MAX 32

struct xml_want {
	const char *path; /* "A/B/C", local names */
	char *value;	  /* the decoded text, malloc'ed; NULL until found */
};

/* The local name: "sts:Code" -> "Code". */
static void local_name(const char **name, size_t *len)
{
	const char *colon = memchr(*name, ':', *len);

	if (colon) {
		*len -= (size_t)(colon + 1 - *name);
		*name = colon + 1;
	}
}

struct xml_elem {
	const char *name;
	size_t len;
	const char *content; /* just after the start tag */
	bool has_child;
};

static bool path_matches(const struct xml_elem *stack, size_t depth, const char *path)
{
	for (size_t i = 0; i < depth; i++) {
		size_t n = strcspn(path, "/");

		if (n != stack[i].len || memcmp(path, stack[i].name, n) != 0)
			return false;
		path += n;
		if (i + 1 < depth) {
			if (*path != '/')
				return false;
			path++;
		}
	}
	return *path == '\0';
}

/* Appends code point @cp as UTF-8. */
static int put_utf8(char *out, size_t *o, unsigned long cp)
{
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -EINVAL;
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xC0 | (cp >> 6));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		out[(*o)++] = (char)(0xE0 | (cp >> 12));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		out[(*o)++] = (char)(0xF0 | (cp >> 18));
		out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	}
	return 0;
}

/*
 * Decodes the content of a leaf element (text, entities, character
 * references, CDATA, comments) into a new string, surrounding blanks
 * dropped.  The output is never longer than the input.
 */
static int xml_text(const char *s, size_t n, char **ret)
{
	char *out = malloc(n + 1);
	size_t o = 0, i = 0, start, end;

	if (!out)
		return -ENOMEM;
	while (i < n) {
		if (s[i] == '&') {
			static const struct {
				const char *name;
				char c;
			} ents[] = { { "lt;", '<' },
				     { "gt;", '>' },
				     { "amp;", '&' },
				     { "quot;", '"' },
				     { "apos;", '\'' } };
			const char *semi = memchr(s + i, ';', n - i);
			bool done = false;

			if (!semi || semi - (s + i) > 12)
				goto bad;
			for (size_t k = 0; k < ARRAY_SIZE(ents) && !done; k++) {
				size_t el = strlen(ents[k].name);

				if ((size_t)(semi + 1 - (s + i + 1)) == el &&
				    memcmp(s + i + 1, ents[k].name, el) == 0) {
					out[o++] = ents[k].c;
					done = true;
				}
			}
			if (!done && s[i + 1] == '#') {
				const char *p = s + i + 2;
				bool hex = p < semi && (*p == 'x' || *p == 'X');
				unsigned long cp = 0;

				if (hex)
					p++;
				if (p == semi)
					goto bad;
				for (; p < semi; p++) {
					int dv;

					if (isdigit((unsigned char)*p))
						dv = *p - '0';
					else if (hex && isxdigit((unsigned char)*p))
						dv = tolower((unsigned char)*p) - 'a' + 10;
					else
						goto bad;
					cp = cp * (hex ? 16 : 10) + (unsigned long)dv;
					if (cp > 0x10FFFF)
						goto bad;
				}
				/* "&#1114111;" is 10 bytes for at most 4: never longer. */
				if (put_utf8(out, &o, cp) < 0)
					goto bad;
				done = true;
			}
			if (!done)
				goto bad;
			i = (size_t)(semi - s) + 1;
		} else if (s[i] == '<') {
			const char *close;

			if (n - i >= 9 && memcmp(s + i, "<![CDATA[", 9) == 0) {
				close = memmem(s + i + 9, n - i - 9, "]]>", 3);
				if (!close)
					goto bad;
				memcpy(out + o, s + i + 9, (size_t)(close - (s + i + 9)));
				o += (size_t)(close - (s + i + 9));
				i = (size_t)(close - s) + 3;
			} else if (n - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
				close = memmem(s + i + 4, n - i - 4, "-->", 3);
				if (!close)
					goto bad;
				i = (size_t)(close - s) + 3;
			} else {
				goto bad;
			}
		} else {
			out[o++] = s[i++];
		}
	}
	start = 0;
	end = o;
	while (start < end && isspace((unsigned char)out[start]))
		start++;
	while (end > start && isspace((unsigned char)out[end - 1]))
		end--;
	memmove(out, out + start, end - start);
	explicit_bzero(out + (end - start), o - (end - start) + 1);
	out[end - start] = '\0';
	*ret = out;
	return 0;
bad:
	wipe_free(out, n + 1);
	return -EINVAL;
}

/* Finds @what (NUL-terminated) in [p, end), or NULL. */
static const char *find(const char *p, const char *end, const char *what)
{
	return memmem(p, (size_t)(end - p), what, strlen(what));
}

/*
 * Reads @body and sets the value of each @want whose path names a leaf
 * element.  -EIO with @reason when the document is not well-formed (as far
 * as this reader can tell) or has a DTD; a wanted element met twice is
 * an error too.
 */
static int xml_extract(const char *body, size_t len, struct xml_want *want, size_t nwant,
		       char *reason, size_t reasonlen)
{
	struct xml_elem stack[XML_DEPTH_MAX];
	const char *p = body, *end = body + len;
	size_t depth = 0;
	bool root_seen = false;
	int r;

	if (!body || len == 0) {
		snprintf(reason, reasonlen, "an empty answer where XML was expected");
		return -EIO;
	}
	while (p < end) {
		const char *gt;

		if (*p != '<') {
			if (depth == 0 && !isspace((unsigned char)*p) &&
			    !(p == body && len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)) {
				snprintf(reason, reasonlen, "malformed XML: text outside the root");
				return -EIO;
			}
			p += p == body && len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0 ? 3 : 1;
			continue;
		}
		if (end - p >= 2 && p[1] == '?') {
			gt = find(p + 2, end, "?>");
			if (!gt)
				goto malformed;
			p = gt + 2;
			continue;
		}
		if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
			gt = find(p + 4, end, "-->");
			if (!gt)
				goto malformed;
			p = gt + 3;
			continue;
		}
		if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
			if (depth == 0)
				goto malformed;
			gt = find(p + 9, end, "]]>");
			if (!gt)
				goto malformed;
			p = gt + 3;
			continue;
		}
		if (end - p >= 2 && p[1] == '!') {
			snprintf(reason, reasonlen,
				 "XML with a DTD or declaration is not accepted");
			return -EIO;
		}
		if (end - p >= 2 && p[1] == '/') {
			const char *name = p + 2, *ne;
			size_t nl;

			gt = memchr(name, '>', (size_t)(end - name));
			if (!gt || depth == 0)
				goto malformed;
			ne = gt;
			while (ne > name && isspace((unsigned char)ne[-1]))
				ne--;
			nl = (size_t)(ne - name);
			local_name(&name, &nl);
			if (nl != stack[depth - 1].len ||
			    memcmp(name, stack[depth - 1].name, nl) != 0)
				goto malformed;
			if (!stack[depth - 1].has_child) {
				for (size_t w = 0; w < nwant; w++) {
					if (!path_matches(stack, depth, want[w].path))
						continue;
					if (want[w].value) {
						snprintf(reason, reasonlen,
							 "malformed answer: %s appears twice",
							 strrchr(want[w].path, '/') + 1);
						return -EIO;
					}
					r = xml_text(stack[depth - 1].content,
						     (size_t)(p - stack[depth - 1].content),
						     &want[w].value);
					if (r == -ENOMEM)
						return r;
					if (r < 0) {
						snprintf(reason, reasonlen,
							 "malformed XML in the text of %s",
							 strrchr(want[w].path, '/') + 1);
						return -EIO;
					}
				}
			}
			depth--;
			p = gt + 1;
			continue;
		}
		/* A start tag: <name attr="v" ...> or <name .../> */
		{
			const char *name = p + 1, *q = name;
			bool self_close = false;
			size_t nl;

			while (q < end && !isspace((unsigned char)*q) && *q != '>' && *q != '/')
				q++;
			nl = (size_t)(q - name);
			if (nl == 0 || q == end)
				goto malformed;
			for (size_t i = 0; i < nl; i++)
				if (!isalnum((unsigned char)name[i]) && !strchr("_-.:", name[i]))
					goto malformed;
			while (q < end && *q != '>') {
				if (*q == '"' || *q == '\'') {
					const char *cq = memchr(q + 1, *q, (size_t)(end - q - 1));

					if (!cq)
						goto malformed;
					q = cq + 1;
					continue;
				}
				if (*q == '<')
					goto malformed;
				q++;
			}
			if (q == end)
				goto malformed;
			self_close = q[-1] == '/';
			if (depth == 0 && root_seen)
				goto malformed; /* a second root */
			if (depth == XML_DEPTH_MAX) {
				snprintf(reason, reasonlen, "XML nested too deeply");
				return -EIO;
			}
			if (depth)
				stack[depth - 1].has_child = true;
			root_seen = true;
			local_name(&name, &nl);
			stack[depth] = (struct xml_elem){ name, nl, q + 1, false };
			if (self_close) {
				/* <x/> is an empty leaf. */
				for (size_t w = 0; w < nwant; w++)
					if (path_matches(stack, depth + 1, want[w].path) &&
					    !want[w].value) {
						want[w].value = strdup("");
						if (!want[w].value)
							return -ENOMEM;
					}
			} else {
				depth++;
			}
			p = q + 1;
		}
	}
	if (depth != 0 || !root_seen)
		goto malformed;
	return 0;
malformed:
	snprintf(reason, reasonlen, "malformed XML");
	return -EIO;
}

static void wants_done(struct xml_want *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		wipe_str(&w[i].value);
}

#define STS_CREDS "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/"

int aws_parse_sts_credentials(const char *body, size_t len, struct aws_credentials *ret,
			      char *reason, size_t reasonlen)
{
	struct xml_want w[] = {
		{ STS_CREDS "AccessKeyId", NULL },
		{ STS_CREDS "SecretAccessKey", NULL },
		{ STS_CREDS "SessionToken", NULL },
		{ STS_CREDS "Expiration", NULL },
	};
	char why[WHY_MAX];
	int r;

	r = xml_extract(body, len, w, ARRAY_SIZE(w), why, sizeof(why));
	if (r < 0) {
		snprintf(reason, reasonlen, "STS: %s", r == -ENOMEM ? "out of memory" : why);
		wants_done(w, ARRAY_SIZE(w));
		return r;
	}
	if (!w[0].value && !w[1].value) {
		snprintf(reason, reasonlen,
			 "STS: the answer is not an AssumeRoleWithWebIdentityResponse with "
			 "Credentials");
		wants_done(w, ARRAY_SIZE(w));
		return -EIO;
	}
	if (!w[2].value || !w[3].value) {
		snprintf(reason, reasonlen, "STS: the Credentials have no %s",
			 !w[2].value ? "SessionToken" : "Expiration");
		wants_done(w, ARRAY_SIZE(w));
		return -EIO;
	}
	r = credentials_take(&w[0].value, &w[1].value, &w[2].value, w[3].value, "STS", ret, reason,
			     reasonlen);
	wants_done(w, ARRAY_SIZE(w));
	return r;
}

void aws_parse_sts_error(const char *body, size_t len, char *code, size_t codelen, char *msg,
			 size_t msglen)
{
	struct xml_want w[] = {
		{ "ErrorResponse/Error/Code", NULL },
		{ "ErrorResponse/Error/Message", NULL },
	};
	char why[WHY_MAX];

	if (codelen)
		code[0] = '\0';
	if (msglen)
		msg[0] = '\0';
	if (xml_extract(body, len, w, ARRAY_SIZE(w), why, sizeof(why)) >= 0) {
		/* First line, printable ASCII only: it goes into a log line. */
		for (size_t k = 0; k < 2; k++) {
			char *out = k ? msg : code;
			size_t outlen = k ? msglen : codelen, o = 0;
			const char *in = w[k].value;

			if (!in || !outlen)
				continue;
			if (k && outlen > 161)
				outlen = 161;
			for (; *in && *in != '\n' && *in != '\r' && o + 1 < outlen; in++)
				out[o++] = *in >= 0x20 && *in < 0x7f ? *in : '?';
			out[o] = '\0';
		}
	}
	wants_done(w, ARRAY_SIZE(w));
}

/* ---- JSON credentials ---- */

/* A member's string, copied (NULL when absent or null); -EIO on a wrong type. */
static int json_str(json_t *o, const char *key, char **ret)
{
	json_t *v = json_object_get(o, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return -EIO;
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

int aws_parse_json_credentials(enum aws_json_creds kind, const char *body, size_t len,
			       struct aws_credentials *ret, char *reason, size_t reasonlen)
{
	static const char *const where[] = { "instance metadata", "container credentials",
					     "credential_process" };
	char *akid = NULL, *secret = NULL, *token = NULL, *exp = NULL, *code = NULL;
	const char *w = where[kind];
	json_auto_t *root = NULL;
	json_error_t je;
	char why[128];
	int r;

	if (!body || len == 0) {
		snprintf(reason, reasonlen, "%s: an empty answer", w);
		return -EIO;
	}
	root = json_loadb(body, len, 0, &je);
	if (!root || !json_is_object(root)) {
		if (root)
			snprintf(why, sizeof(why), "not a JSON object");
		else
			ns_json_error_text(&je, why, sizeof(why));
		snprintf(reason, reasonlen, "%s: malformed JSON (%s)", w, why);
		return -EIO;
	}
	if (kind == AWS_JSON_PROCESS) {
		json_t *v = json_object_get(root, "Version");

		if (!json_is_integer(v) || json_integer_value(v) != 1) {
			snprintf(reason, reasonlen, "%s: %s", w,
				 v ? "Version is not 1, the only version there is"
				   : "no Version (it must be 1)");
			return -EIO;
		}
	}
	r = json_str(root, "AccessKeyId", &akid);
	if (r >= 0)
		r = json_str(root, "SecretAccessKey", &secret);
	if (r >= 0)
		r = json_str(root, kind == AWS_JSON_PROCESS ? "SessionToken" : "Token", &token);
	if (r >= 0)
		r = json_str(root, "Expiration", &exp);
	if (r >= 0 && kind == AWS_JSON_IMDS)
		r = json_str(root, "Code", &code);
	if (r == -EIO)
		snprintf(reason, reasonlen, "%s: a credential field is not a string", w);
	if (r >= 0 && code && strcmp(code, "Success") != 0) {
		snprintf(reason, reasonlen, "%s: Code is not Success", w);
		r = -EIO;
	}
	if (r >= 0 && kind != AWS_JSON_PROCESS && (!token || !exp)) {
		snprintf(reason, reasonlen, "%s: no %s", w, !token ? "Token" : "Expiration");
		r = -EIO;
	}
	if (r >= 0)
		r = credentials_take(&akid, &secret, &token, exp, w, ret, reason, reasonlen);
	wipe_str(&akid);
	wipe_str(&secret);
	wipe_str(&token);
	free(exp);
	free(code);
	return r;
}

/* ---- the shared files ---- */

void aws_profile_done(struct aws_profile *p)
{
	char **fields[] = { &p->aws_access_key_id,
			    &p->aws_secret_access_key,
			    &p->aws_session_token,
			    &p->credential_process,
			    &p->region,
			    &p->role_arn,
			    &p->source_profile,
			    &p->credential_source,
			    &p->web_identity_token_file,
			    &p->role_session_name,
			    &p->sso_start_url };

	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		wipe_str(fields[i]);
	*p = (struct aws_profile){ 0 };
}

/* Where a key's value goes, or NULL for a key we do not use. */
static char **profile_field(struct aws_profile *p, const char *key, size_t kl)
{
	static const struct {
		const char *key;
		size_t offset;
	} keys[] = {
		{ "aws_access_key_id", offsetof(struct aws_profile, aws_access_key_id) },
		{ "aws_secret_access_key", offsetof(struct aws_profile, aws_secret_access_key) },
		{ "aws_session_token", offsetof(struct aws_profile, aws_session_token) },
		{ "aws_security_token", offsetof(struct aws_profile, aws_session_token) },
		{ "credential_process", offsetof(struct aws_profile, credential_process) },
		{ "region", offsetof(struct aws_profile, region) },
		{ "role_arn", offsetof(struct aws_profile, role_arn) },
		{ "source_profile", offsetof(struct aws_profile, source_profile) },
		{ "credential_source", offsetof(struct aws_profile, credential_source) },
		{ "web_identity_token_file",
		  offsetof(struct aws_profile, web_identity_token_file) },
		{ "role_session_name", offsetof(struct aws_profile, role_session_name) },
		{ "sso_start_url", offsetof(struct aws_profile, sso_start_url) },
		{ "sso_session", offsetof(struct aws_profile, sso_start_url) },
	};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strlen(keys[i].key) == kl && strncasecmp(keys[i].key, key, kl) == 0)
			return (char **)((char *)p + keys[i].offset);
	return NULL;
}

/*
 * Whether section header @h (the text between the brackets, trimmed) names
 * @profile: "[NAME]" in the credentials file; "[default]", "[profile NAME]"
 * or "[profile "NAME"]" in the config file.
 */
static bool section_is(const char *h, size_t hl, bool config, const char *profile)
{
	size_t pl = strlen(profile);

	if (config) {
		if (hl == 7 && memcmp(h, "default", 7) == 0)
			return strcmp(profile, "default") == 0;
		if (hl < 8 || memcmp(h, "profile", 7) != 0 || (h[7] != ' ' && h[7] != '\t'))
			return false;
		h += 7;
		hl -= 7;
		while (hl && (*h == ' ' || *h == '\t')) {
			h++;
			hl--;
		}
		/* botocore splits the header like a shell: a quoted name may hold blanks. */
		if (hl >= 2 && (h[0] == '"' || h[0] == '\'') && h[hl - 1] == h[0]) {
			h++;
			hl -= 2;
		} else if (memchr(h, ' ', hl) || memchr(h, '\t', hl)) {
			return false;
		}
	}
	return hl == pl && memcmp(h, profile, pl) == 0;
}

int aws_parse_shared_file(const char *text, size_t len, bool config, const char *profile,
			  struct aws_profile *ret, char *reason, size_t reasonlen)
{
	struct aws_profile p = { 0 };
	const char *line = text, *end = text + len;
	bool in_section = false, any_section = false, in_value = false;
	unsigned lineno = 0;

	while (line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		const char *s, *e, *delim;
		size_t kl;

		if (!eol)
			eol = end;
		lineno++;
		s = line;
		e = eol;
		line = eol + 1;
		while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (s == e) {
			continue; /* a blank line; a value may go on after it, as in configparser */
		}
		if ((*s == ' ' || *s == '\t') && in_value)
			continue; /* more of the previous value: a nested setting */
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		if (*s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			const char *hs = s + 1, *he = e;

			if (e[-1] != ']' || e - s < 3) {
				snprintf(reason, reasonlen,
					 "line %u: a section header must be [NAME] on its own line",
					 lineno);
				aws_profile_done(&p);
				return -EINVAL;
			}
			he--;
			while (hs < he && (*hs == ' ' || *hs == '\t'))
				hs++;
			while (he > hs && (he[-1] == ' ' || he[-1] == '\t'))
				he--;
			in_section = section_is(hs, (size_t)(he - hs), config, profile);
			p.found |= in_section;
			any_section = true;
			in_value = false;
			continue;
		}
		delim = s;
		while (delim < e && *delim != '=' && *delim != ':')
			delim++;
		if (delim == e || delim == s) {
			snprintf(reason, reasonlen,
				 "line %u: expected [section], key = value or a comment", lineno);
			aws_profile_done(&p);
			return -EINVAL;
		}
		if (!any_section) {
			snprintf(reason, reasonlen, "line %u: a setting before the first [section]",
				 lineno);
			aws_profile_done(&p);
			return -EINVAL;
		}
		in_value = true;
		if (!in_section)
			continue;
		kl = (size_t)(delim - s);
		while (kl && (s[kl - 1] == ' ' || s[kl - 1] == '\t'))
			kl--;
		{
			char **field = profile_field(&p, s, kl);
			const char *v = delim + 1;
			char *copy;

			if (!field)
				continue;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			copy = strndup(v, (size_t)(e - v));
			if (!copy) {
				aws_profile_done(&p);
				return -ENOMEM;
			}
			wipe_str(field);
			*field = copy;
		}
	}
	*ret = p;
	return 0;
}

/* ---- credential_process ---- */

void aws_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		wipe_str(a);
	free(argv);
}

int aws_shell_split(const char *cmd, char ***ret_argv, char *reason, size_t reasonlen)
{
	size_t n = strlen(cmd), argc = 0, o = 0;
	char **argv = calloc(n / 2 + 2, sizeof(*argv));
	char *word = malloc(n + 1);
	bool in_word = false;
	const char *p = cmd;

	if (!argv || !word) {
		free(argv);
		free(word);
		return -ENOMEM;
	}
	for (;;) {
		char c = *p;

		if (c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			if (in_word) {
				argv[argc] = strndup(word, o);
				if (!argv[argc])
					goto nomem;
				argc++;
				o = 0;
				in_word = false;
			}
			if (c == '\0')
				break;
			p++;
			continue;
		}
		in_word = true;
		if (c == '\\') {
			if (!p[1]) {
				snprintf(reason, reasonlen,
					 "credential_process ends with a backslash escaping "
					 "nothing");
				goto fail;
			}
			word[o++] = p[1];
			p += 2;
		} else if (c == '\'') {
			const char *q = strchr(p + 1, '\'');

			if (!q)
				goto unclosed;
			memcpy(word + o, p + 1, (size_t)(q - p - 1));
			o += (size_t)(q - p - 1);
			p = q + 1;
		} else if (c == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				word[o++] = *p;
			}
			if (!*p)
				goto unclosed;
			p++;
		} else {
			word[o++] = c;
			p++;
		}
	}
	wipe_free(word, n + 1);
	if (argc == 0) {
		snprintf(reason, reasonlen, "credential_process is empty");
		free(argv);
		return -EINVAL;
	}
	*ret_argv = argv;
	return 0;
unclosed:
	snprintf(reason, reasonlen, "credential_process has a quote that is not closed");
fail:
	wipe_free(word, n + 1);
	aws_argv_free(argv);
	return -EINVAL;
nomem:
	wipe_free(word, n + 1);
	aws_argv_free(argv);
	return -ENOMEM;
}

/* ---- container credentials ---- */

/* Loopback, localhost, or the ECS (169.254.170.2) and EKS Pod Identity endpoints. */
static bool container_host_allowed(const char *host, size_t hl)
{
	static const char *const fixed[] = { "169.254.170.2", "169.254.170.23", "fd00:ec2::23" };
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char a[sizeof(struct in6_addr)], b[sizeof(struct in6_addr)];

	if (hl == 9 && strncasecmp(host, "localhost", 9) == 0)
		return true;
	if (hl >= sizeof(buf))
		return false;
	memcpy(buf, host, hl);
	buf[hl] = '\0';
	if (inet_pton(AF_INET, buf, a) == 1) {
		if (a[0] == 127)
			return true;
		for (size_t i = 0; i < 2; i++)
			if (inet_pton(AF_INET, fixed[i], b) == 1 && memcmp(a, b, 4) == 0)
				return true;
		return false;
	}
	if (inet_pton(AF_INET6, buf, a) == 1) {
		if (IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a))
			return true;
		return inet_pton(AF_INET6, fixed[2], b) == 1 && memcmp(a, b, 16) == 0;
	}
	return false;
}

/* A blank, a control character or '#' (no fragment): not part of a URL we send. */
static bool url_has_bad_char(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '#')
			return true;
	return false;
}

int aws_container_url(const char *relative, const char *full, char **ret, char *reason,
		      size_t reasonlen)
{
	const char *auth, *hs, *he, *p;
	size_t sl;

	if (relative && *relative) {
		if (relative[0] != '/' || url_has_bad_char(relative)) {
			snprintf(reason, reasonlen,
				 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not a path starting "
				 "with "
				 "'/'");
			return -EINVAL;
		}
		if (asprintf(ret, "http://169.254.170.2%s", relative) < 0)
			return -ENOMEM;
		return 0;
	}
	if (!full || !*full) {
		snprintf(reason, reasonlen, "no container credentials URI");
		return -EINVAL;
	}
	if (strncasecmp(full, "http://", 7) == 0)
		sl = 7;
	else if (strncasecmp(full, "https://", 8) == 0)
		sl = 8;
	else
		sl = 0;
	auth = full + sl;
	if (!sl || url_has_bad_char(full) || memchr(auth, '@', strcspn(auth, "/?"))) {
		snprintf(reason, reasonlen,
			 "AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http:// or https:// URL "
			 "without user information");
		return -EINVAL;
	}
	if (*auth == '[') {
		hs = auth + 1;
		he = strchr(hs, ']');
		/* "[::1]" then a port, a path, a query or nothing: not "[::1]evil.example". */
		if (!he || !strchr(":/?", he[1])) {
			snprintf(reason, reasonlen,
				 "AWS_CONTAINER_CREDENTIALS_FULL_URI has a broken "
				 "IPv6 host");
			return -EINVAL;
		}
	} else {
		hs = auth;
		he = hs + strcspn(hs, ":/?");
	}
	if (!container_host_allowed(hs, (size_t)(he - hs))) {
		snprintf(
			reason, reasonlen,
			"AWS_CONTAINER_CREDENTIALS_FULL_URI: unsupported host '%.*s'; as botocore, "
			"only a loopback address, localhost, 169.254.170.2, 169.254.170.23 or "
			"fd00:ec2::23",
			(int)((he - hs) > 64 ? 64 : (he - hs)), hs);
		return -EINVAL;
	}
	/* What follows the host: nothing, a path, a query, or ":PORT" and then one of those. */
	p = he + (*auth == '[');
	if (*p == ':') {
		size_t nd = strspn(p + 1, "0123456789");

		p += 1 + nd;
		if (nd == 0 || nd > 5 || strtoul(he + (*auth == '[') + 1, NULL, 10) > 65535)
			p = "x";
	}
	if (*p && *p != '/' && *p != '?') {
		snprintf(reason, reasonlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI has a bad port");
		return -EINVAL;
	}
	*ret = strdup(full);
	return *ret ? 0 : -ENOMEM;
}
