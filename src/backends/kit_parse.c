/*
 * kit_parse.c - the parsing half of the backend kit (see kit.h): times,
 * error codes and documents, paging markers.  No network and no files, so
 * the backends' parsers that use it can be unit-tested and fuzzed alone.
 *
 * Reasons name the member that was wrong and never quote a body.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "backends/kit.h"
#include "secretfs/http.h"
#include "secretfs/util.h"

/* A paging token longer than this is not a token (AWS allows 8 KiB). */
#define PAGE_TOKEN_MAX 8192
/* A nextLink longer than this is not a link we follow. */
#define PAGE_LINK_MAX 8192

/* ---- time ---- */

static int days_from_civil(int y, int m, int d)
{
	/* Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date. */
	int era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* February has 29 days in leap years: "2023-02-29" is no date, not March 1st. */
static int days_in_month(int y, int m)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return mdays[m - 1] + (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

static bool digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

/* The offset at @p ("+HH:MM", and with ISO 8601 "+HHMM", "+HH") in seconds; NULL if malformed. */
static const char *parse_offset(const char *p, unsigned flags, int *ret_sec)
{
	bool neg = *p == '-';
	int oh, om = 0;

	if (!digits(p + 1, 2, &oh))
		return NULL;
	if (p[3] == ':' && digits(p + 4, 2, &om))
		p += 6;
	else if (!(flags & KIT_TIME_ISO8601))
		return NULL;
	else if (isdigit((unsigned char)p[3]) && digits(p + 3, 2, &om))
		p += 5;
	else
		p += 3;
	if (oh > 23 || om > 59)
		return NULL;
	*ret_sec = (neg ? -1 : 1) * (oh * 3600 + om * 60);
	return p;
}

int kit_parse_time(const char *s, unsigned flags, int64_t *ret_usec)
{
	int y, mo, d, h, mi, sec, off = 0;
	int64_t usec = 0, t;
	const char *p;
	bool sep;

	if (!s || strlen(s) < 20)
		return -EINVAL;
	sep = s[10] == 'T' || s[10] == 't' || ((flags & KIT_TIME_ISO8601) && s[10] == ' ');
	if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || !sep || !digits(s + 11, 2, &h) || s[13] != ':' ||
	    !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		int64_t scale = 100000;
		bool any = false;

		for (p++; isdigit((unsigned char)*p); p++, any = true) {
			usec += (*p - '0') * scale;
			scale /= 10;
		}
		if (!any)
			return -EINVAL;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-')
		p = parse_offset(p, flags, &off);
	else
		return -EINVAL;
	if (!p || *p)
		return -EINVAL;
	t = (int64_t)days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
	*ret_usec = t * (int64_t)USEC_PER_SEC + usec;
	return 0;
}

/* ---- errors ---- */

int kit_status_errno(long status)
{
	int r = http_status_to_errno(status);

	/* Only the kinds backend.h names: a 400 or 405 is the store saying no, in its own words. */
	if (r == -EINVAL || r == -EOPNOTSUPP || r == -EFBIG)
		return -EIO;
	return r;
}

const struct kit_error_code *kit_error_find(const struct kit_error_code *table, size_t n,
					    const char *code)
{
	if (!code || !*code)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].code, code) == 0)
			return &table[i];
	return NULL;
}

int kit_error_errno(const struct kit_error_code *table, size_t n, const char *code, long status)
{
	const struct kit_error_code *e = kit_error_find(table, n, code);
	int r;

	if (e && e->err)
		return e->err;
	r = kit_status_errno(status);
	return r ? r : -EIO;
}

void kit_append_clean(char *buf, size_t buflen, size_t *pos, const char *s, size_t n)
{
	for (size_t i = 0; i < n && *pos + 1 < buflen; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isspace(c) || c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c > 0x7e)
			c = '?';
		if (c == ' ' && (*pos == 0 || buf[*pos - 1] == ' '))
			continue;
		buf[(*pos)++] = (char)c;
	}
	buf[*pos] = '\0';
}

bool kit_credential_is_valid(const char *s, size_t len, size_t max)
{
	if (!s || len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* Copies the first line of @s as printable ASCII, blanks collapsed, cut to fit. */
static void copy_clean(const char *s, char *buf, size_t buflen)
{
	size_t pos = 0;

	if (buflen == 0)
		return;
	buf[0] = '\0';
	if (s)
		kit_append_clean(buf, buflen, &pos, s, strcspn(s, "\r\n"));
	while (pos && buf[pos - 1] == ' ')
		buf[--pos] = '\0';
}

void kit_parse_json_error(const char *body, size_t len, const char *code_member, char *code,
			  size_t codelen, char *msg, size_t msglen)
{
	json_auto_t *root = NULL;
	json_error_t je;
	json_t *err;

	if (codelen)
		code[0] = '\0';
	if (msglen)
		msg[0] = '\0';
	root = body && len ? json_loadb(body, len, 0, &je) : NULL;
	err = json_object_get(root, "error");
	if (!json_is_object(err))
		return;
	copy_clean(json_string_value(json_object_get(err, code_member)), code, codelen);
	copy_clean(json_string_value(json_object_get(err, "message")), msg, msglen);
}

/* ---- paging ---- */

/* A marker at @member: absent, null or "" is none; else a printable string of 1 to @max. */
static int page_marker(const json_t *root, const char *member, size_t max, const char *noun,
		       char **ret, char *reason, size_t reasonlen)
{
	json_t *t = json_object_get(root, member);
	const char *s;
	size_t n;

	*ret = NULL;
	if (!t || json_is_null(t))
		return 0;
	if (!json_is_string(t)) {
		snprintf(reason, reasonlen, "%s is not a string", member);
		return -EBADMSG;
	}
	s = json_string_value(t);
	n = json_string_length(t);
	if (n == 0)
		return 0;
	if (n > max || strlen(s) != n) {
		snprintf(reason, reasonlen, "%s is not a usable %s", member, noun);
		return -EBADMSG;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e) {
			snprintf(reason, reasonlen, "%s is not a usable %s", member, noun);
			return -EBADMSG;
		}
	*ret = strndup(s, n);
	return *ret ? 0 : -ENOMEM;
}

int kit_page_token(const struct json_t *root, const char *member, char **ret, char *reason,
		   size_t reasonlen)
{
	return page_marker(root, member, PAGE_TOKEN_MAX, "token", ret, reason, reasonlen);
}

/*
 * Splits "scheme://authority/..." into the scheme's length and the
 * authority; the port defaults to the scheme's.  false when not such a URL
 * or when it carries userinfo.
 */
static bool origin_of(const char *url, size_t *ret_scheme, const char **ret_host,
		      size_t *ret_hostlen, unsigned long *ret_port)
{
	const char *sep = strstr(url, "://"), *host, *end, *colon;
	size_t sl;

	if (!sep)
		return false;
	sl = (size_t)(sep - url);
	if (sl == 5 && strncasecmp(url, "https", 5) == 0)
		*ret_port = 443;
	else if (sl == 4 && strncasecmp(url, "http", 4) == 0)
		*ret_port = 80;
	else
		return false;
	host = sep + 3;
	end = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(end - host)) || end == host)
		return false;
	/* The port follows the last ':' outside an IPv6 literal's brackets. */
	colon = NULL;
	for (const char *p = host; p < end; p++)
		if (*p == ':')
			colon = p;
	if (colon && host[0] == '[' && memchr(colon, ']', (size_t)(end - colon)))
		colon = NULL;
	if (colon) {
		char *e;

		if (colon + 1 == end || !isdigit((unsigned char)colon[1]))
			return false;
		*ret_port = strtoul(colon + 1, &e, 10);
		if (e != end || *ret_port == 0 || *ret_port > 65535)
			return false;
		end = colon;
	}
	*ret_scheme = sl;
	*ret_host = host;
	*ret_hostlen = (size_t)(end - host);
	return true;
}

bool kit_same_origin(const char *base, const char *url)
{
	size_t bs, us, bhl, uhl;
	const char *bh, *uh;
	unsigned long bp, up;

	if (!origin_of(base, &bs, &bh, &bhl, &bp) || !origin_of(url, &us, &uh, &uhl, &up))
		return false;
	return bs == us && strncasecmp(base, url, bs) == 0 && bhl == uhl &&
	       strncasecmp(bh, uh, bhl) == 0 && bp == up;
}

int kit_page_link(const struct json_t *root, const char *member, const char *base, char **ret,
		  char *reason, size_t reasonlen)
{
	char *link = NULL;
	int r;

	r = page_marker(root, member, PAGE_LINK_MAX, "link", &link, reason, reasonlen);
	if (r < 0 || !link) {
		*ret = NULL;
		return r;
	}
	if (!kit_same_origin(base, link)) {
		snprintf(reason, reasonlen,
			 "%s leads to another scheme, host or port than the store's; not followed",
			 member);
		free(link);
		*ret = NULL;
		return -EIO;
	}
	*ret = link;
	return 0;
}

/* ---- versions ---- */

/* One entry of a versions listing: {id, labels, created, state}; NULL on ENOMEM. */
json_t *kit_version_entry(const char *id, const char *const *labels, size_t nlabels,
			    int64_t created_usec, const char *state)
{
	char when[40] = "";
	json_t *l = json_array(), *e;

	for (size_t i = 0; l && i < nlabels; i++)
		if (json_array_append_new(l, json_string(labels[i])) < 0) {
			json_decref(l);
			return NULL;
		}
	if (created_usec > 0 && format_rfc3339((uint64_t)created_usec, when, sizeof(when)) < 0)
		when[0] = '\0';
	e = json_pack("{s:s, s:o*, s:s*, s:s}", "id", id, "labels", l, "created",
		      when[0] ? when : NULL, "state", state);
	return e;
}
