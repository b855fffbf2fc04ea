/*
 * aws_creds.h - where the AWS backends get their credentials (private to
 * src/backends).
 *
 * The providers are tried in the order the AWS SDKs use, once, at init:
 * the environment, web identity (STS AssumeRoleWithWebIdentity), the
 * shared credentials and config files (static keys, credential_process),
 * container credentials (ECS, EKS Pod Identity) and EC2 instance metadata
 * (IMDSv2).  The first that yields credentials is the one used from then
 * on.  Temporary credentials are fetched again from it about 5 minutes
 * before they expire, on demand, before a request; and at once after AWS
 * answered ExpiredTokenException.
 *
 * Credentials live in one struct secret ("KEYID\0SECRET\0TOKEN\0"),
 * replaced as a whole: a request holds a reference while it signs, so a
 * refresh never pulls the strings from under it.
 */
#ifndef SECRETFS_AWS_CREDS_H
#define SECRETFS_AWS_CREDS_H

#include <stddef.h>
#include <stdint.h>

#include "backends/aws_parse.h"
#include "secretfs/aws_sigv4.h"
#include "secretfs/http.h"
#include "secretfs/secret.h"

/*
 * The environment's secrets: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN (or the older AWS_SECURITY_TOKEN) and
 * AWS_CONTAINER_AUTHORIZATION_TOKEN, copied, then wiped where they lived
 * and unset, so /proc/PID/environ and our children never see them.
 */
struct aws_env_secrets {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;
	char *container_token;
};
void aws_env_secrets_take(struct aws_env_secrets *ret);
void aws_env_secrets_done(struct aws_env_secrets *e);

struct aws_creds;

/*
 * Chooses the profile (@profile from -o aws_profile, else AWS_PROFILE, else
 * "default") and reads its sections of the shared files; no network.
 * @env's strings are taken.  A profile named explicitly that neither file
 * has, or a file that cannot be read or parsed, is an error.
 */
int aws_creds_new(const char *profile, struct aws_env_secrets *env, struct aws_creds **ret,
		  char *reason, size_t reasonlen);
/* The region the profile's config section names, or NULL. */
const char *aws_creds_profile_region(const struct aws_creds *c);

/*
 * Walks the provider chain and fetches the first credentials (network:
 * STS, the container endpoint, instance metadata).  @sts is where
 * AssumeRoleWithWebIdentity goes; @http the TLS settings for it and for an
 * https container URI.  The credentials then live in a kit token source:
 * @wait_usec (fetch_timeout) bounds how long a request waits for another
 * thread's refresh.  When no provider has credentials, @reason lists
 * what was tried.
 */
int aws_creds_resolve(struct aws_creds *c, const struct aws_endpoint *sts,
		      const struct http_config *http, uint64_t wait_usec, char *reason,
		      size_t reasonlen);
/* Where the credentials come from, for messages: "the environment", "web identity (ROLE)", ... */
const char *aws_creds_source(const struct aws_creds *c);

/* A reference to the current credentials, for one request. */
struct aws_creds_ref {
	struct aws_credentials view; /* points into s: never aws_credentials_wipe() it */
	struct secret *s;
	uint64_t gen; /* which credentials these are, for aws_creds_expired() */
};

/*
 * The current credentials, refreshed first when they expire within about
 * 5 minutes (or were found expired).  A failed refresh while the old ones
 * still work uses the old ones.  Thread-safe.
 */
int aws_creds_get(struct aws_creds *c, struct aws_creds_ref *ret, char *reason, size_t reasonlen);
void aws_creds_put(struct aws_creds_ref *r);
/* AWS said the credentials of generation @gen have expired: the next get fetches new ones. */
void aws_creds_expired(struct aws_creds *c, uint64_t gen);
/* Wipes everything. */
void aws_creds_free(struct aws_creds *c);

#endif
