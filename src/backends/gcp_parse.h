/*
 * gcp_parse.h - Google Secret Manager's documents and names, without a
 * network (private to src/backends; the fuzz target and unit tests call it).
 *
 * Errors follow backend.h: a 2xx body that is not the document asked for is
 * -EBADMSG; a well-formed answer whose value cannot be shown (bad base64,
 * a checksum that does not match) is -EIO.  Reasons never quote a body.
 */
#ifndef SECRETFS_GCP_PARSE_H
#define SECRETFS_GCP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "secretfs/backend.h"
#include "secretfs/secret.h"

#define GCP_SECRET_ID_MAX 255

/* "PROJECT[/PREFIX]" of SOURCE: both malloc'ed; *ret_prefix "" when none. */
int gcp_parse_source(const char *arg, char **ret_project, char **ret_prefix, char *reason,
		     size_t reasonlen);
/*
 * The secret id for path @id under @prefix ("" for none): each '/' becomes
 * @sep (NULL: no '/' may appear).  -ENOENT when no secret id can have that
 * name (a character outside [A-Za-z0-9_-], a component holding @sep, too
 * long), so the path simply does not exist.  *ret malloc'ed.
 */
int gcp_name_for_id(const char *prefix, const char *sep, const char *id, char **ret);
/*
 * The path of secret id @name, or NULL when it is not under @prefix or does
 * not map to a safe path (an empty component).  Malloc'ed; *ret NULL for
 * "not shown", and the return value -ENOMEM only when out of memory.
 */
int gcp_id_for_name(const char *prefix, const char *sep, const char *name, char **ret);
/*
 * An AccessSecretVersionResponse {name, payload{data, dataCrc32c}}: the
 * value (a SECRET_TABLE for a JSON object), the version (the number at the
 * end of name).  data is base64 in either alphabet; a dataCrc32c that is
 * present must match the decoded bytes, else -EIO and "payload checksum
 * mismatch" (the value is wiped, never returned).
 */
int gcp_parse_access(const char *body, size_t len, struct secret **ret_value,
		     struct backend_info *ret_info, char *reason, size_t reasonlen);
/* A SecretVersion {name, state}: the version number and whether state is ENABLED. */
int gcp_parse_version(const char *body, size_t len, char version[BACKEND_VERSION_MAX],
		      int *ret_enabled, char *reason, size_t reasonlen);
/*
 * A ListSecretsResponse: calls @add with each secret id (the last segment
 * of secrets[].name), and sets *ret_next to nextPageToken (malloc'ed) or
 * NULL after the last page.
 */
int gcp_parse_list(const char *body, size_t len, int (*add)(void *ctx, const char *id), void *ctx,
		   char **ret_next, char *reason, size_t reasonlen);
/*
 * A token answer {access_token, expires_in, token_type} (the token URI's
 * and the metadata server's): the token with its NUL in locked memory,
 * the expiry as CLOCK_REALTIME microseconds from @now_usec.
 */
int gcp_parse_token(const char *body, size_t len, uint64_t now_usec, struct secret **ret_token,
		    uint64_t *ret_expires_usec, char *reason, size_t reasonlen);

enum gcp_cred_type {
	GCP_CRED_SERVICE_ACCOUNT = 1,
	GCP_CRED_AUTHORIZED_USER,
};

/* A credentials file's members; the secret ones point into @doc (locked memory). */
struct gcp_creds {
	enum gcp_cred_type type;
	struct secret *doc; /* the parsed members, NUL-separated: owned */
	const char *client_email, *key_id, *key_pem; /* service_account */
	const char *client_id, *client_secret, *refresh_token;	 /* authorized_user */
	const char *token_uri; /* the file's, or Google's default */
};

/*
 * Parses a service_account or authorized_user JSON credentials file (the
 * bytes in @text).  Any other type, or a missing member, is -EINVAL with
 * @reason naming the member (never its value).
 */
int gcp_parse_credentials(const char *text, size_t len, struct gcp_creds *ret, char *reason,
			  size_t reasonlen);
void gcp_creds_done(struct gcp_creds *c);

#endif
