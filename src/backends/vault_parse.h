/*
 * vault_parse.h - the pure half of the Vault backend: the SOURCE string and
 * every response body Vault sends us, turned into values, listings, versions
 * and token facts.  No network, no locks, no logging, so unit tests and fuzz
 * targets link it alone (private to src/backends).
 *
 * Every body parser takes the raw bytes of a response (they may hold
 * secrets: the caller wipes them) and returns 0 or a negative errno with a
 * reason that never quotes the body.  A body that is not what Vault sends
 * (does not parse, wrong shape) is -EBADMSG, a malformed answer (transient,
 * backend.h); a well-formed secret that cannot be shown is -EIO.  The mount
 * description, read once at start, is -EIO either way.
 */
#ifndef SECRETFS_VAULT_PARSE_H
#define SECRETFS_VAULT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/kit.h"
#include "secretfs/backend.h"
#include "secretfs/secret.h"

/* Longest token, role_id, secret_id we accept (batch tokens are a few hundred bytes). */
#define VAULT_TOKEN_MAX 4096
/* Longest message of Vault's "errors" array we repeat in a reason. */
#define VAULT_ERROR_MAX 160

/* What SOURCE names: a server and a path inside it. */
struct vault_addr {
	char *base_url; /* "https://host:8200", plus VAULT_ADDR's own path; no trailing '/' */
	char *path;	/* "secret" or "secret/team/app": mount, then a prefix; no outer '/' */
	bool tls;	/* https */
};

/*
 * Parses what follows "vault:": "https://HOST[:PORT]/MOUNT[/PREFIX]", or
 * "MOUNT[/PREFIX]" with the server from @env_addr (VAULT_ADDR; NULL when
 * unset).  Userinfo, queries, fragments and unsafe path components are
 * refused.  -EINVAL with @reason on a bad form.
 */
int vault_parse_source(const char *arg, const char *env_addr, struct vault_addr *ret, char *reason,
		       size_t reasonlen);
void vault_addr_done(struct vault_addr *a);

/* What a KV mount description (GET sys/internal/ui/mounts/PATH) says. */
struct vault_mount_info {
	int kv_version; /* 1 or 2 */
	char *mount;	/* "secret" or "team/kv", without the trailing '/' */
};

/*
 * Parses a ui/mounts answer for @path: the mount must be of type kv (or the
 * old generic) and a leading part of @path.  On success ret->mount is
 * malloc'ed.
 */
int vault_parse_mount(const char *body, size_t len, const char *path, struct vault_mount_info *ret,
		      char *reason, size_t reasonlen);

/*
 * A KV v2 read.  @status is 200 or 404.  200: the value is data.data (a JSON
 * object becomes a table), the version data.metadata.version.  A 404, or a
 * 200 with null data (older Vaults), whose envelope carries metadata is a
 * soft-deleted or destroyed latest version: -ENOENT, as is a plain 404.
 */
int vault_parse_kv2_read(long status, const char *body, size_t len, struct secret **ret_value,
			 struct backend_info *ret_info, char *reason, size_t reasonlen);

/*
 * A KV v2 metadata read (GET MOUNT/metadata/ID, 200): *@ret_versions (when
 * not NULL) gets a JSON array of {id, labels, created, state}, newest first,
 * state "enabled", "deleted" or "destroyed", labels "current" and
 * "previous"; *@ret_previous the newest version below current_version that
 * is neither deleted nor destroyed, 0 when there is none.  Never a value.
 */
int vault_parse_kv2_metadata(const char *body, size_t len, struct json_t **ret_versions,
			     uint64_t *ret_previous, char *reason, size_t reasonlen);

/* A KV v1 read (200): the value is data, lease_duration becomes ttl_hint_usec. */
int vault_parse_kv1_read(const char *body, size_t len, struct secret **ret_value,
			 struct backend_info *ret_info, char *reason, size_t reasonlen);

/* A LIST answer (200): data.keys, "name" for a secret and "name/" for a folder. */
int vault_parse_list(const char *body, size_t len, struct secret **ret_listing, char *reason,
		     size_t reasonlen);

/* What Vault says about a token. */
struct vault_token_info {
	uint64_t ttl_usec;		/* left at the time of the answer; 0 = never expires */
	uint64_t creation_ttl_usec;	/* the TTL it was given (what a renewal asks for again) */
	uint64_t explicit_max_ttl_usec; /* 0 = none */
	int64_t expire_time_usec;	/* realtime; 0 = none or unknown */
	bool renewable;
};

/* GET auth/token/lookup-self: data.ttl, data.renewable, data.expire_time, ... */
int vault_parse_lookup_self(const char *body, size_t len, struct vault_token_info *ret,
			    char *reason, size_t reasonlen);

/*
 * A login or renew-self answer: auth.client_token, auth.lease_duration,
 * auth.renewable.  *ret_token is malloc'ed (the caller wipes it) and holds
 * only printable ASCII, so it can go in a header.
 */
int vault_parse_auth(const char *body, size_t len, char **ret_token, size_t *ret_token_len,
		     struct vault_token_info *ret, char *reason, size_t reasonlen);

/*
 * The first message of Vault's {"errors": [...]} in @buf, one line, at most
 * VAULT_ERROR_MAX bytes; "" when the body has none (e.g. a 404 {"errors":[]}).
 * Vault >= 1.16's "1 error occurred:\n\t* permission denied\n\n" reads
 * "permission denied".
 */
void vault_parse_error(const char *body, size_t len, char *buf, size_t buflen);

/* Whether @s (length @len) may be a token, a role_id or a secret_id: printable ASCII only. */
bool vault_token_is_valid(const char *s, size_t len);

/*
 * "2018-05-19T11:35:54.466476215-04:00" -> microseconds since the epoch;
 * -EINVAL if not RFC 3339 (the kit's one parser, strict).
 */
static inline int vault_parse_time(const char *s, int64_t *ret_usec)
{
	return kit_parse_time(s, 0, ret_usec);
}

#endif
