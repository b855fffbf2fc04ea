/*
 * namespace.h - how secret ids become paths and values become files.
 *
 * docs/design.md section 2: "/" separates components; a secret whose value is a JSON
 * object is a directory with one file per top-level key (strings raw, other
 * JSON values as compact JSON text); anything else is a file with the raw
 * bytes; names that are not safe path components are never shown and never
 * fetched.  This module knows JSON but not FUSE.
 */
#ifndef SECRETFS_NAMESPACE_H
#define SECRETFS_NAMESPACE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "secretfs/secret.h"

/* A path component we will show: not "", ".", "..", no "/" and no NUL. */
bool ns_name_is_safe(const char *name, size_t len);
/* A secret id made only of safe components: "prod/db", not "/x", "a//b", "a/../b". */
bool ns_id_is_safe(const char *id);
/* "prod" + "db" -> "prod/db"; "" + "prod" -> "prod".  NULL on ENOMEM. */
char *ns_join(const char *prefix, const char *name);

enum {
	/* {"$base64": "..."} is a binary value (the file store's convention). */
	NS_JSON_BASE64 = 1 << 0,
	/* An object key that is not a usable file name is an error, not hidden. */
	NS_JSON_STRICT_NAMES = 1 << 1,
};

/*
 * Checks strict base64 (RFC 4648: the alphabet only, no whitespace, '=' only
 * as padding at the end of a length that is a multiple of 4): returns the
 * number of '=' (0 to 2), or -EINVAL with *@bad_at the offset of the first
 * byte that is not base64 (@len when the length is wrong).
 */
int ns_base64_check(const char *in, size_t len, size_t *bad_at);

/*
 * Turns a JSON value into the secret a backend hands to the cache: an object
 * becomes a SECRET_TABLE of its keys, a string its raw bytes, anything else
 * compact JSON text.  Keys that are not usable file names are hidden (docs/design.md
 * section 2), or with NS_JSON_STRICT_NAMES an error (-EINVAL, @reason names
 * the key).  Invalid base64 is an error.
 */
int ns_secret_from_json(json_t *value, unsigned flags, struct secret **ret, char *reason,
			size_t reasonlen);

/*
 * A value as a store keeps it, as text or bytes: a JSON object becomes a
 * directory (a SECRET_TABLE), anything else (plain text, a JSON number,
 * broken JSON, binary) a file with exactly these bytes.  An object that
 * cannot be shown is -EIO with "@what cannot be shown: why" in @reason.
 */
int ns_secret_from_text(const char *s, size_t len, const char *what, struct secret **ret,
			char *reason, size_t reasonlen);
/*
 * Builds the listing of folder @prefix from @n secret ids (any order): the
 * direct children's names, each with BACKEND_LIST_SECRET and/or
 * BACKEND_LIST_FOLDER.  Unsafe ids are skipped.  -ENOENT when nothing lies
 * under a non-empty @prefix.
 */
int ns_listing_from_ids(const char *const *ids, size_t n, const char *prefix, struct secret **ret);

/*
 * Builds a listing from the direct children a store names, "name" for a
 * secret and "name/" for a folder (Vault's LIST keys).  Both may appear;
 * unsafe names are skipped.
 */
int ns_listing_from_keys(const char *const *keys, size_t n, struct secret **ret);

/*
 * A parse error of jansson's in words that never quote the input: jansson's
 * own text does ("invalid token near 's3cr3t'"), and the input is a secret.
 */
void ns_json_error_text(const json_error_t *e, char *buf, size_t len);

/*
 * Parses a store's response @body as a JSON object, or says why not in
 * @reason ("@who sent malformed JSON (...)"), never quoting the body.
 */
json_t *ns_json_load_object(const char *body, size_t len, size_t flags, const char *who,
			    char *reason, size_t reasonlen);

/* Wiping allocators for jansson: every JSON copy is cleansed when freed. */
void ns_json_use_wiping_alloc(void);

#endif
