/*
 * op_parse.h - 1Password Connect's documents and names, without a network
 * (private to src/backends; the fuzz target and unit tests call it).
 *
 * Errors follow backend.h: a 2xx body that is not the document asked for is
 * -EBADMSG.  Reasons never quote a body or a field's value.
 */
#ifndef SECRETFS_OP_PARSE_H
#define SECRETFS_OP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "secretfs/backend.h"
#include "secretfs/secret.h"

#define OP_ID_MAX    64	 /* ids are 26 characters of [a-z0-9]; room for others */
#define OP_TITLE_MAX 512 /* longer vault and item titles are not looked up */

/*
 * "VAULT[/PREFIX]" of SOURCE: VAULT a title or an id (printable, no '"' or
 * '\\', which a filter cannot quote), PREFIX a safe relative path (ITEM or
 * ITEM/SECTION...).  Both malloc'ed; *ret_prefix "" when none.
 */
int op_parse_source(const char *arg, char **ret_vault, char **ret_prefix, char *reason,
		    size_t reasonlen);
/* Whether @s is a 1Password id: 26 characters of [a-z0-9]. */
int op_is_id(const char *s);
/* Whether @title can be sent in `filter=title eq "..."`: no '"', '\\' or control character. */
int op_title_is_filterable(const char *title);

/*
 * A [Vault] answer to GET /v1/vaults?filter=title eq "T": the id of the one
 * vault named @title into @ret_id.  -ENOENT when none is; -EIO (and @reason
 * naming two ids) when more than one is.
 */
int op_parse_vaults(const char *body, size_t len, const char *title, char ret_id[OP_ID_MAX],
		    char *reason, size_t reasonlen);
/* A Vault answer to GET /v1/vaults/V: its id into @ret_id. */
int op_parse_vault(const char *body, size_t len, char ret_id[OP_ID_MAX], char *reason,
		   size_t reasonlen);

/* One item summary of a listing. */
struct op_summary {
	const char *id, *title;
	char version[BACKEND_VERSION_MAX]; /* the item's version, as decimal text */
};
/*
 * An [Item] listing (GET /v1/vaults/V/items): calls @add for each summary
 * that has an id and a title (others are skipped).  The strings live until
 * the call returns.
 */
int op_parse_summaries(const char *body, size_t len,
		       int (*add)(void *ctx, const struct op_summary *s), void *ctx, char *reason,
		       size_t reasonlen);

/*
 * A full Item: its fields as a SECRET_TABLE (locked memory) whose names are
 * the paths inside the item directory, "LABEL" or "SECTION/LABEL" (the
 * section's label), and whose values are the fields' values; the item's
 * version into @ret_version.  A field with neither label nor value is
 * skipped; one without a label is named by its id; one without a value is
 * empty.  A field in a section without a (safe) label, or in a section the
 * item does not list, sits at the top.  Unsafe names are hidden, and of
 * two fields with the same path the first is kept; *ret_hidden counts both.
 */
int op_parse_item(const char *body, size_t len, struct secret **ret_table,
		  char ret_version[BACKEND_VERSION_MAX], size_t *ret_hidden, char *reason,
		  size_t reasonlen);

/*
 * The error document {"status": N, "message": "..."}: the message's first
 * line, cleaned (kit_append_clean), into @msg; "" when absent or unreadable.
 */
void op_parse_error(const char *body, size_t len, char *msg, size_t msglen);

#endif
