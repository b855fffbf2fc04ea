/*
 * selector.h - which version of a secret a path names: the SELECTOR of
 * META/at/SELECTOR/PATH (docs/design.md, "Versions").
 *
 *   current        what the store serves by default
 *   previous       the version before current (AWSPREVIOUS; Vault KV v2: the
 *                  newest live version below current)
 *   pending        the version being rotated in (AWSPENDING)
 *   N              version number N (1 to 2^53 - 1, no sign, no leading zero)
 *   id:ID          the store's version id (AWS VersionId; Azure's version segment)
 *   label:NAME     a label the store attaches (AWS VersionStage; SSM label)
 *
 * One strict parser; a name it refuses is not a selector, so the lookup is
 * ENOENT.  Pure: no allocation, no logging.
 */
#ifndef SECRETFS_SELECTOR_H
#define SECRETFS_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest ID or NAME: AWS's VersionId is 32 to 64 characters, a VersionStage at most 256. */
#define SELECTOR_ARG_MAX 256

enum selector_kind {
	SELECTOR_CURRENT,
	SELECTOR_PREVIOUS,
	SELECTOR_PENDING,
	SELECTOR_NUMBER,
	SELECTOR_ID,
	SELECTOR_LABEL,
};

/* Bits of a set of selector kinds, as a policy rule's versions= grants them. */
#define SELECTOR_BIT(k) (1u << (k))
#define SELECTOR_ALL                                                                     \
	(SELECTOR_BIT(SELECTOR_CURRENT) | SELECTOR_BIT(SELECTOR_PREVIOUS) |              \
	 SELECTOR_BIT(SELECTOR_PENDING) | SELECTOR_BIT(SELECTOR_NUMBER) |                \
	 SELECTOR_BIT(SELECTOR_ID) | SELECTOR_BIT(SELECTOR_LABEL))

struct selector {
	enum selector_kind kind;
	uint64_t number;	       /* SELECTOR_NUMBER */
	char arg[SELECTOR_ARG_MAX + 1]; /* SELECTOR_ID, SELECTOR_LABEL: ID or NAME; else "" */
};

/*
 * Parses @s.  ID is 1 to SELECTOR_ARG_MAX of [A-Za-z0-9._-]; NAME the same
 * plus '+', '=' and '@' (no '/', no space, nothing a shell or a path treats
 * specially).  Returns 0, or -EINVAL with @ret untouched.
 */
int selector_parse(const char *s, struct selector *ret);

/*
 * The selector's one spelling ("previous", "7", "id:ABC"), what selector_parse()
 * accepts back: @buf of at least SELECTOR_ARG_MAX + 8 bytes.
 */
void selector_format(const struct selector *sel, char *buf, size_t len);

/* A version number or id names one version forever; every other selector moves. */
bool selector_is_pinned(const struct selector *sel);

/* "current", "previous", "pending", "number", "id", "label"; NULL for another value. */
const char *selector_kind_name(enum selector_kind k);
/*
 * The kind named @name, as versions=KIND,... spells it: one of the names
 * above.  Returns 0 or -EINVAL.
 */
int selector_kind_from_name(const char *name, size_t len, enum selector_kind *ret);

#endif
