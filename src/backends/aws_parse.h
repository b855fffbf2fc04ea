/*
 * aws_parse.h - the pure half of the AWS backends (aws-sm, aws-ssm): the
 * SOURCE string, endpoint URLs, the JSON 1.1 request bodies we send, every
 * response body Secrets Manager and Parameter Store send us, and their
 * errors.  No network, no locks, no logging, so unit tests and fuzz targets
 * link it alone (private to src/backends).
 *
 * Body parsers take the raw bytes of a response (they may hold secrets: the
 * caller wipes them) and return 0 or a negative errno with a reason that
 * never quotes the body.  A body that is not what AWS sends is -EBADMSG, a
 * malformed answer (transient, backend.h); a well-formed secret that cannot
 * be shown (bad base64, a bad key) is -EIO.
 */
#ifndef SECRETFS_AWS_PARSE_H
#define SECRETFS_AWS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretfs/backend.h"
#include "secretfs/secret.h"

/* An error code as AWS names it ("ResourceNotFoundException"), normalised. */
#define AWS_CODE_MAX 96
/* The longest part of AWS's error message we repeat in a reason. */
#define AWS_MESSAGE_MAX 160
/* The longest NextToken we pass back (AWS's are a few hundred bytes). */
#define AWS_NEXT_TOKEN_MAX 8192

enum aws_service {
	AWS_SM,	 /* Secrets Manager, scheme aws-sm */
	AWS_SSM, /* Systems Manager Parameter Store, scheme aws-ssm */
};

/* What SOURCE names: a region and a prefix under which the tree is shown. */
struct aws_source {
	char *region; /* "us-east-1" */
	/*
	 * "" or "prod/app": no outer '/'.  Secrets Manager: a name prefix
	 * ("prod" shows the secrets named prod/...).  Parameter Store: a path
	 * ("app/prod" shows the parameters under /app/prod/).
	 */
	char *prefix;
};

/*
 * Parses what follows "aws-sm:" or "aws-ssm:": "REGION[/PREFIX]", or
 * "[/PREFIX]" with the region from @env_region (AWS_REGION, else
 * AWS_DEFAULT_REGION; NULL when neither is set).  -EINVAL with @reason on a
 * bad form.
 */
int aws_parse_source(enum aws_service svc, const char *arg, const char *env_region,
		     struct aws_source *ret, char *reason, size_t reasonlen);
void aws_source_done(struct aws_source *s);

/* Where requests go. */
struct aws_endpoint {
	char *url;  /* what libcurl is given: "https://host:port/base/" */
	char *host; /* the Host header as signed: lowercase, ":port" unless the default */
	char *path; /* "/" or "/base/": the path as sent and signed */
	bool tls;   /* https */
};

/*
 * Parses an endpoint URL ("https://HOST[:PORT][/PATH]", http:// too; no
 * userinfo, query or fragment), as AWS_ENDPOINT_URL* give one.
 */
int aws_parse_endpoint(const char *url, struct aws_endpoint *ret, char *reason, size_t reasonlen);
/* https://@service.@region.amazonaws.com (.amazonaws.com.cn in the cn- regions). */
int aws_default_endpoint(const char *service, const char *region, struct aws_endpoint *ret);
void aws_endpoint_done(struct aws_endpoint *e);

/* ---- ids and names ---- */

/*
 * The store's name for the secret @id under @prefix: "prod/db" for Secrets
 * Manager, "/app/prod/db" for Parameter Store.  NULL on ENOMEM.
 */
char *aws_name_for_id(enum aws_service svc, const char *prefix, const char *id);

/* A growing list of names (ListSecrets, GetParametersByPath pages), bounded. */
struct aws_names {
	char **v;
	size_t n, cap;
};
/* Adds a copy of @name; -E2BIG past @max names. */
int aws_names_add(struct aws_names *l, const char *name, size_t max);
void aws_names_done(struct aws_names *l);

/*
 * The listing of folder @folder (relative to @prefix, "" for the top) from
 * the store's names: what ns_listing_from_ids() makes of the names under
 * @prefix, with Parameter Store's leading '/' taken off.  -ENOENT when
 * nothing lies under a non-empty @folder.
 */
int aws_listing_from_names(enum aws_service svc, const struct aws_names *names, const char *prefix,
			   const char *folder, struct secret **ret);

/* ---- request bodies (JSON 1.1); malloc'ed, NUL-terminated, no secrets in them ---- */

int aws_body_get_secret_value(const char *secret_id, const char *stage, char **ret,
			      size_t *ret_len);
/* GetSecretValue of one version, by its VersionId. */
int aws_body_get_secret_version(const char *secret_id, const char *version_id, char **ret,
				size_t *ret_len);
/* ListSecretVersionIds, one page of 100 (AWS keeps about 100 versions at most). */
int aws_body_list_secret_versions(const char *secret_id, char **ret, size_t *ret_len);
int aws_body_describe_secret(const char *secret_id, char **ret, size_t *ret_len);
/* @name_prefix NULL or "": every secret; @next_token NULL on the first page. */
int aws_body_list_secrets(const char *name_prefix, const char *next_token, char **ret,
			  size_t *ret_len);
int aws_body_get_parameter(const char *name, char **ret, size_t *ret_len);
int aws_body_parameters_by_path(const char *path, const char *next_token, char **ret,
				size_t *ret_len);

/* ---- response bodies ---- */

/*
 * GetSecretValue: a SecretString holding a JSON object becomes a
 * SECRET_TABLE of its keys, any other SecretString its bytes as they are,
 * a SecretBinary its base64-decoded bytes.  The version is VersionId.
 */
int aws_parse_get_secret_value(const char *body, size_t len, struct secret **ret_value,
			       struct backend_info *ret_info, char *reason, size_t reasonlen);

/*
 * ListSecretVersionIds: *ret_list gets a JSON array of {id, labels (the
 * VersionStages), created, state} (kit_version_entry()); a version without
 * stages is "deprecated", as AWS calls it.  Never a value.
 */
int aws_parse_list_secret_versions(const char *body, size_t len, struct json_t **ret_list,
				   char *reason, size_t reasonlen);

/*
 * DescribeSecret: whether VersionIdsToStages still gives @stage to
 * @version_id (*ret_current), so a kept value may be served again.  A
 * secret scheduled for deletion (DeletedDate) is not current.
 */
int aws_parse_describe_secret(const char *body, size_t len, const char *version_id,
			      const char *stage, bool *ret_current, char *reason, size_t reasonlen);

/*
 * ListSecrets: adds SecretList[].Name to @names (at most @max in all) and
 * sets *ret_next_token to NextToken (malloc'ed), or NULL on the last page.
 */
int aws_parse_list_secrets(const char *body, size_t len, struct aws_names *names, size_t max,
			   char **ret_next_token, char *reason, size_t reasonlen);

/*
 * GetParameter: Parameter.Value as a file (a String or SecureString holding
 * a JSON object as a directory, as every store's; a StringList always as
 * stored), the version Parameter.Version.
 */
int aws_parse_get_parameter(const char *body, size_t len, struct secret **ret_value,
			    struct backend_info *ret_info, char *reason, size_t reasonlen);

/* GetParametersByPath: Parameters[].Name and NextToken, as aws_parse_list_secrets(). */
int aws_parse_parameters_by_path(const char *body, size_t len, struct aws_names *names, size_t max,
				 char **ret_next_token, char *reason, size_t reasonlen);

/* ---- errors ---- */

/*
 * The error of a non-2xx answer, by the awsJson1_1 rule: the code from
 * x-amzn-ErrorType (@header_error_type, "" when absent), else the body's
 * __type, else its code; of that, what follows the last '#' and precedes
 * the first ':'.  @code is "" when none is found.  @msg gets the body's
 * Message or message: its first line, printable ASCII, at most
 * AWS_MESSAGE_MAX bytes ("" when none).
 */
void aws_parse_error(const char *header_error_type, const char *body, size_t len, char *code,
		     size_t codelen, char *msg, size_t msglen);
/* The normalisation alone: "ns#Code:uri" -> "Code". */
void aws_error_code_normalize(const char *raw, size_t rawlen, char *code, size_t codelen);

/*
 * The one AWS error -> errno table: not found -ENOENT, denied -EACCES,
 * throttled or the server's trouble -EAGAIN, anything else -EIO; an
 * unknown code (or none) is judged by the HTTP status.
 */
int aws_error_to_errno(const char *code, long status);
/* Codes we retry ourselves, with backoff (they come as 400, which the http layer does not retry).
 */
bool aws_error_is_throttling(const char *code);
/* Codes that mean our temporary credentials have expired: refresh them and try once more. */
bool aws_error_is_expired_token(const char *code);

#endif
