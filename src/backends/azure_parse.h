/*
 * azure_parse.h - the pure half of the Azure Key Vault backend: the SOURCE
 * string, secret names, and every body Key Vault, the token endpoint and
 * IMDS send us.  No network, no locks, no logging, so unit tests and the
 * fuzz target link it alone (private to src/backends).
 *
 * Body parsers take the raw bytes of a response (they may hold secrets: the
 * caller wipes them) and return 0 or a negative errno with a reason that
 * never quotes the body.  A body that is not what Azure sends is -EBADMSG (a
 * malformed answer, transient); a well-formed secret that cannot be shown is
 * -EIO.
 */
#ifndef SECRETFS_AZURE_PARSE_H
#define SECRETFS_AZURE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretfs/backend.h"
#include "secretfs/secret.h"

/* Key Vault's own bound on a secret name. */
#define AZURE_NAME_MAX 127
/* Longest access token we accept (Entra ID tokens are a few KiB). */
#define AZURE_TOKEN_MAX (16 * 1024)
#define AZURE_PKCS12_CT "application/x-pkcs12"

/* What SOURCE names: the vault's base URL. */
struct azure_source {
	char *base_url; /* "https://NAME.vault.azure.net" or "https://HOST[:PORT]", no '/' at the
			   end */
	bool tls;	/* https */
};

/*
 * Parses what follows "azure-kv:": a vault NAME (3-24 of [0-9A-Za-z-],
 * starting with a letter), or "https://HOST[:PORT]" (http:// is taken too;
 * the backend then insists on -o insecure).  A path other than "/", a
 * query, a fragment or userinfo is refused.  -EINVAL with @reason.
 */
int azure_parse_source(const char *arg, struct azure_source *ret, char *reason, size_t reasonlen);
void azure_source_done(struct azure_source *s);

/*
 * Whether @sep may be a name_separator for Key Vault names: 1-8 of
 * [0-9A-Za-z-], so that it can appear in a name at all.
 */
bool azure_separator_is_valid(const char *sep);

/*
 * A Key Vault secret name -> a secretfs id: with @sep (NULL: none) every
 * occurrence of SEP, left to right, becomes '/'.  -EINVAL when @name is not
 * [0-9A-Za-z-]{1,127} or the id is not safe (an empty component); then the
 * name is not shown.
 */
int azure_name_to_id(const char *name, const char *sep, char **ret);
/*
 * A secretfs id -> the Key Vault name it stands for: each '/' becomes SEP.
 * -ENOENT when no name maps back to @id exactly (a character Key Vault does
 * not allow, a '/' without a separator, a name past 127 bytes): it cannot
 * exist, so nothing is asked.
 */
int azure_id_to_name(const char *id, const char *sep, char **ret);

/*
 * A SecretBundle (GET /secrets/NAME, 200): the value is "value"; with
 * contentType application/x-pkcs12 it is base64 and served decoded; a
 * string holding a JSON object is a directory of its keys; the version is
 * the last segment of "id".
 */
int azure_parse_secret(const char *body, size_t len, struct secret **ret_value,
		       struct backend_info *ret_info, char *reason, size_t reasonlen);

/* One page of GET /secrets: the names on it and where the next one is. */
struct azure_page {
	char **names; /* malloc'ed Key Vault names (not ids), disabled secrets left out */
	size_t n;
	char *next_link; /* NULL on the last page */
};

/*
 * A page of GET /secrets (200).  The nextLink must stay on @base_url's
 * scheme, host and port (kit_page_link()): a link anywhere else would get
 * our token, so it is -EIO, never followed.
 */
int azure_parse_list(const char *body, size_t len, const char *base_url, struct azure_page *ret,
		     char *reason, size_t reasonlen);
void azure_page_done(struct azure_page *p);

/*
 * A token answer, from the v2.0 token endpoint or IMDS: access_token, and
 * expires_in in seconds (a number, or a string of digits as IMDS sends it).
 * *ret_token is malloc'ed (the caller wipes it) and printable ASCII.
 */
int azure_parse_token(const char *body, size_t len, char **ret_token, size_t *ret_token_len,
		      uint64_t *ret_expires_in_usec, char *reason, size_t reasonlen);

/*
 * The token endpoint's error, {"error":"invalid_client","error_description":
 * "AADSTS7000215: ..."}: the error in @code, the description's first line
 * in @msg, "" when absent.  (Key Vault's own errors are kit_parse_json_error()'s.)
 */
void azure_parse_token_error(const char *body, size_t len, char *code, size_t codelen, char *msg,
			     size_t msglen);

#endif
