/*
 * selector.c - the one parser of version selectors (selector.h).  It is
 * strict because its input is a path component any reader of the mount
 * chooses: only the spellings listed are selectors, each has one form, and
 * what a selector carries is safe to put in a request body, a URL query and
 * a cache key.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "secretfs/selector.h"
#include "secretfs/util.h"

/* 2^53 - 1: every number a JSON parser (Vault's, AWS's) keeps exact. */
#define SELECTOR_NUMBER_MAX ((UINT64_C(1) << 53) - 1)

static const char *const kind_names[] = {
	[SELECTOR_CURRENT] = "current", [SELECTOR_PREVIOUS] = "previous",
	[SELECTOR_PENDING] = "pending", [SELECTOR_NUMBER] = "number",
	[SELECTOR_ID] = "id",		[SELECTOR_LABEL] = "label",
};

const char *selector_kind_name(enum selector_kind k)
{
	return (unsigned)k < ARRAY_SIZE(kind_names) ? kind_names[k] : NULL;
}

int selector_kind_from_name(const char *name, size_t len, enum selector_kind *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(kind_names); i++)
		if (strlen(kind_names[i]) == len && memcmp(kind_names[i], name, len) == 0) {
			*ret = (enum selector_kind)i;
			return 0;
		}
	return -EINVAL;
}

static bool arg_is_valid(const char *s, const char *extra)
{
	size_t n = 0;

	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];

		if (n >= SELECTOR_ARG_MAX)
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || (c && strchr(extra, c))))
			return false;
	}
	/* "." and ".." are path components, never ids or names */
	return n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int selector_parse(const char *s, struct selector *ret)
{
	struct selector sel = { .kind = SELECTOR_CURRENT };
	const char *arg = NULL;

	if (strcmp(s, "current") == 0) {
		sel.kind = SELECTOR_CURRENT;
	} else if (strcmp(s, "previous") == 0) {
		sel.kind = SELECTOR_PREVIOUS;
	} else if (strcmp(s, "pending") == 0) {
		sel.kind = SELECTOR_PENDING;
	} else if (s[0] >= '1' && s[0] <= '9') {
		/* parse_uint takes what strtoull takes; only digits are a number here */
		if (s[strspn(s, "0123456789")] != '\0' ||
		    parse_uint(s, SELECTOR_NUMBER_MAX, &sel.number) < 0)
			return -EINVAL;
		sel.kind = SELECTOR_NUMBER;
	} else if (strncmp(s, "id:", 3) == 0) {
		arg = s + 3;
		if (!arg_is_valid(arg, ""))
			return -EINVAL;
		sel.kind = SELECTOR_ID;
	} else if (strncmp(s, "label:", 6) == 0) {
		arg = s + 6;
		if (!arg_is_valid(arg, "+=@"))
			return -EINVAL;
		sel.kind = SELECTOR_LABEL;
	} else {
		return -EINVAL;
	}
	if (arg)
		snprintf(sel.arg, sizeof(sel.arg), "%s", arg);
	*ret = sel;
	return 0;
}

void selector_format(const struct selector *sel, char *buf, size_t len)
{
	switch (sel->kind) {
	case SELECTOR_NUMBER:
		snprintf(buf, len, "%llu", (unsigned long long)sel->number);
		break;
	case SELECTOR_ID:
		snprintf(buf, len, "id:%s", sel->arg);
		break;
	case SELECTOR_LABEL:
		snprintf(buf, len, "label:%s", sel->arg);
		break;
	default:
		snprintf(buf, len, "%s", kind_names[sel->kind]);
		break;
	}
}

bool selector_is_pinned(const struct selector *sel)
{
	return sel->kind == SELECTOR_NUMBER || sel->kind == SELECTOR_ID;
}
