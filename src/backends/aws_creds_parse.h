/*
 * aws_creds_parse.h - the pure half of the AWS credential providers
 * (aws_creds.c): the shared credentials and config files, STS's XML
 * answers, the JSON of instance metadata, container endpoints and
 * credential_process, ISO 8601 expirations, the credential_process command
 * line and the container URL rules.  No network, no processes, no logging
 * (private to src/backends).
 *
 * Everything here may hold a secret key or a token: strings returned are
 * malloc'ed and the caller wipes them (aws_credentials_wipe(),
 * aws_profile_done()); reasons never quote the input.
 */
#ifndef SECRETFS_AWS_CREDS_PARSE_H
#define SECRETFS_AWS_CREDS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/kit.h"
#include "secretfs/aws_sigv4.h"

/* The largest shared file, token file and credential_process output we read. */
#define AWS_FILE_MAX	(1024 * 1024)
#define AWS_TOKEN_MAX	(64 * 1024)
#define AWS_PROCESS_MAX (64 * 1024)
/* Bounds of what we accept as credentials. */
#define AWS_KEY_ID_MAX	   128
#define AWS_SECRET_KEY_MAX 1024
#define AWS_SESSION_MAX	   16384

/*
 * "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00", "...+0200",
 * "2024-05-01 12:00:00Z" -> microseconds since the epoch; -EINVAL if not
 * (the kit's one parser, with the ISO 8601 forms AWS sends).
 */
static inline int aws_parse_time(const char *s, int64_t *ret_usec)
{
	return kit_parse_time(s, KIT_TIME_ISO8601, ret_usec);
}

/* ---- the shared files ---- */

/* One profile's settings that matter to us, from one file; NULL when unset. */
struct aws_profile {
	bool found; /* the file has a section for the profile */
	char *aws_access_key_id;
	char *aws_secret_access_key;
	char *aws_session_token; /* or the older aws_security_token */
	char *credential_process;
	char *region;
	char *role_arn;
	char *source_profile;
	char *credential_source;
	char *web_identity_token_file;
	char *role_session_name;
	char *sso_start_url; /* or sso_session: an SSO profile */
};

/*
 * Reads @profile's section from the text of a shared file, the way
 * botocore's parser does: "[NAME]" in the credentials file; "[profile NAME]"
 * (and "[default]") in the config file (@config true); "key = value" or
 * "key: value" with keys case-insensitive; '#' and ';' comment lines;
 * indented lines continue the previous value (nested settings) and are
 * skipped; a section given twice is merged.  A line that is none of these
 * is -EINVAL with the line number in @reason.  Not finding the profile is
 * not an error (ret->found is false).
 */
int aws_parse_shared_file(const char *text, size_t len, bool config, const char *profile,
			  struct aws_profile *ret, char *reason, size_t reasonlen);
/* Wipes and frees every string; zeroes @p. */
void aws_profile_done(struct aws_profile *p);

/*
 * Splits a credential_process command line as botocore does (Python's
 * shlex.split, POSIX mode: blanks separate words, '...' is literal, "..."
 * keeps a backslash unless it escapes '"' or '\', a backslash outside
 * quotes escapes any character; no shell: no $, no globbing).  *ret_argv
 * is NULL-terminated, each string and the array malloc'ed; free it with
 * aws_argv_free().  -EINVAL for an empty command or an unclosed quote.
 */
int aws_shell_split(const char *cmd, char ***ret_argv, char *reason, size_t reasonlen);
void aws_argv_free(char **argv);

/* ---- answers ---- */

/*
 * STS AssumeRoleWithWebIdentity's XML answer: the AccessKeyId,
 * SecretAccessKey, SessionToken and Expiration of its Credentials.
 */
int aws_parse_sts_credentials(const char *body, size_t len, struct aws_credentials *ret,
			      char *reason, size_t reasonlen);
/* STS's <ErrorResponse><Error><Code>..</Code><Message>..</Message>: "" when absent. */
void aws_parse_sts_error(const char *body, size_t len, char *code, size_t codelen, char *msg,
			 size_t msglen);

/* Where a JSON document of credentials comes from: each has its own shape. */
enum aws_json_creds {
	AWS_JSON_IMDS,	    /* {Code: Success, AccessKeyId, SecretAccessKey, Token, Expiration} */
	AWS_JSON_CONTAINER, /* {AccessKeyId, SecretAccessKey, Token, Expiration} */
	AWS_JSON_PROCESS, /* {Version: 1, AccessKeyId, SecretAccessKey[, SessionToken, Expiration]}
			   */
};
int aws_parse_json_credentials(enum aws_json_creds kind, const char *body, size_t len,
			       struct aws_credentials *ret, char *reason, size_t reasonlen);

/* Whether @s (length @len) can be a key id, a secret key or a token: printable ASCII, no blank. */
bool aws_token_is_valid(const char *s, size_t len, size_t max);

/* ---- container credentials ---- */

/*
 * The URL to ask: http://169.254.170.2 + @relative (AWS_CONTAINER_
 * CREDENTIALS_RELATIVE_URI), else @full (..._FULL_URI), whose host must be
 * a loopback address or one of the ECS and EKS link-local addresses, as
 * botocore requires.  -EINVAL with @reason otherwise.
 */
int aws_container_url(const char *relative, const char *full, char **ret, char *reason,
		      size_t reasonlen);

#endif
