/*
 * aws_sigv4.h - AWS Signature Version 4 for the AWS backends (aws-sm, aws-ssm,
 * and the STS calls of their credential providers).
 *
 * The signer canonicalises a request exactly the way botocore's SigV4Auth
 * does for every service but S3 (the differential test compares the two),
 * which is also what the AWS SigV4 test suite expects:
 *
 *   canonical URI      the path as sent with its dot segments removed and
 *                      runs of '/' collapsed, then percent-encoded once more
 *                      (every byte but A-Z a-z 0-9 - . _ ~ and '/'), so a
 *                      path sent as /a%20b is signed as /a%2520b.  S3 is
 *                      not supported: it wants the path neither normalised
 *                      nor encoded again.
 *   canonical query    the query as sent split on '&' and at the first '=';
 *                      pairs sorted by name then value; "name" alone becomes
 *                      "name=".  Names and values are expected encoded the
 *                      way AWS wants (RFC 3986: unreserved bytes as they
 *                      are, every other byte as %XX); a %XX is kept as it
 *                      is, and any other byte outside the unreserved set is
 *                      encoded, so raw UTF-8 or spaces are signed the way
 *                      they should have been sent.
 *   canonical headers  lowercase names sorted; values trimmed of spaces and
 *                      tabs with inner runs folded to one space; repeated
 *                      names joined with ',' in the order given.  Host,
 *                      X-Amz-Date and X-Amz-Security-Token are added by the
 *                      signer; User-Agent, Expect and X-Amzn-Trace-Id are
 *                      sent but not signed (proxies rewrite them).
 *   hashed payload     hex SHA-256 of the body, or the caller's own
 *                      X-Amz-Content-SHA256 value when it sends one.
 *
 * Signing keys (kDate -> kRegion -> kService -> kSigning) are derived once
 * per access key, secret, day, region and service and kept in a small
 * process-wide cache, wiped when a slot is reused and by sigv4_cache_clear(),
 * which the owner of the credentials calls at teardown.
 *
 * Everything here is thread-safe.  Nothing logs; failures return a negative
 * errno and a reason that never quotes a secret, a token or a header value.
 */
#ifndef SECRETFS_AWS_SIGV4_H
#define SECRETFS_AWS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretfs/http.h"

/*
 * One set of AWS credentials.  The strings are owned by the struct (heap
 * copies) and wiped by aws_credentials_wipe().
 */
struct aws_credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;	  /* NULL: long-term credentials */
	uint64_t expiration_usec; /* CLOCK_REALTIME; 0: never expires */
};

/* Wipes and frees the strings and zeroes @c; NULL is a no-op. */
void aws_credentials_wipe(struct aws_credentials *c);

/* What is signed: the request exactly as it will be sent. */
struct sigv4_request {
	const char *method; /* "GET", "POST", ...: an HTTP token, uppercased for signing */
	/*
	 * The Host header's value as it will be sent: lowercase, with ":port"
	 * only when the port is not the scheme's default.  The signer returns
	 * it in sigv4_signed.host so the request carries exactly what was
	 * signed.
	 */
	const char *host;
	/* As sent (already percent-encoded), from its first '/'; NULL or "": "/". */
	const char *path;
	const char *query; /* as sent, without the '?'; NULL: none */
	/*
	 * Every other header that will be sent, in the order sent.  Host,
	 * X-Amz-Date, X-Amz-Security-Token, Authorization and Date are the
	 * signer's and are refused here (-EINVAL).  Values may not hold
	 * control characters other than tab (no CR/LF: no header injection).
	 */
	const struct http_header *headers;
	size_t nheaders;
	const void *body; /* NULL when body_len is 0 */
	size_t body_len;
};

/*
 * Flags for sigv4_sign().
 *
 * SIGV4_TOKEN_AFTER: the session token is sent but not signed (the test
 * suite's post-sts-header-after; a few old services want this).  Without
 * it the token is signed, as botocore does and current services expect.
 *
 * SIGV4_KEEP_TEXT: also return the canonical request and the string to
 * sign (tests, debugging).  The canonical request holds the session token
 * and header values: treat it as secret.
 */
#define SIGV4_TOKEN_AFTER (1u << 0)
#define SIGV4_KEEP_TEXT	  (1u << 1)

/* The result of sigv4_sign(); release with sigv4_signed_done(). */
struct sigv4_signed {
	char amz_date[17];	 /* X-Amz-Date: "YYYYMMDDTHHMMSSZ" */
	char content_sha256[65]; /* the hashed payload as signed (hex, or the caller's value) */
	char *host;		 /* Host, as signed */
	char *authorization;	 /* Authorization: "AWS4-HMAC-SHA256 Credential=..." */
	char *security_token;	 /* X-Amz-Security-Token (a copy); NULL without a token */
	char *canonical_request; /* SIGV4_KEEP_TEXT only, else NULL; may hold the token */
	char *string_to_sign;	 /* SIGV4_KEEP_TEXT only, else NULL */
};

/*
 * Signs @req with @cred for @region and @service at @time_usec
 * (CLOCK_REALTIME, normally realtime_usec(); the date and time used are
 * its whole seconds, UTC).  @flags: SIGV4_* above.
 *
 * On success returns 0 and fills *@ret; the request must then carry the
 * headers sigv4_added_headers() lists next to @req's own, and nothing in
 * the request may change.  On failure *@ret is untouched and @reason
 * (may be NULL) says why:
 *   -EINVAL       bad input: no credentials, an empty or malformed access
 *                 key id, secret, region, service, method, host or path, a
 *                 header the signer owns or with a control character, an
 *                 X-Amz-Content-SHA256 that is not 64 hex digits or
 *                 UNSIGNED-PAYLOAD, unknown flags, a time past year 9999
 *   -EKEYEXPIRED  @cred has an expiration and @time_usec is at or past it
 *   -E2BIG        the canonical request would pass 1 MiB
 *   -ENOMEM, -EIO (an OpenSSL failure)
 */
int sigv4_sign(const struct aws_credentials *cred, const char *region, const char *service,
	       uint64_t time_usec, const struct sigv4_request *req, unsigned flags,
	       struct sigv4_signed *ret, char *reason, size_t reasonlen);

/* Wipes and frees what sigv4_sign() filled in; safe on a zeroed struct and twice. */
void sigv4_signed_done(struct sigv4_signed *s);

/*
 * The headers the signer adds, for the request to send after @req's own:
 * Host, X-Amz-Date, X-Amz-Security-Token (when @s has one; marked secret)
 * and Authorization.  Host is set explicitly so what libcurl sends is what
 * was signed.  Values point into @s: valid until sigv4_signed_done().
 * Returns how many were written to @ret (at most SIGV4_ADDED_HEADERS).
 */
#define SIGV4_ADDED_HEADERS 4
size_t sigv4_added_headers(const struct sigv4_signed *s,
			   struct http_header ret[SIGV4_ADDED_HEADERS]);

/*
 * Wipes every cached signing key.  Call at teardown (the AWS backend's
 * done), and whenever keys should not outlive their credentials.  Signing
 * after a clear derives the keys anew.
 */
void sigv4_cache_clear(void);

/* Counters of the key cache, for tests and diagnostics. */
struct sigv4_cache_stats {
	uint64_t derivations; /* signing keys derived since start (cached or not) */
	uint64_t hits;	      /* signatures that reused a cached key */
	size_t entries;	      /* slots in use */
	size_t capacity;      /* slots in all */
	/*
	 * Non-zero bytes left in the key material of all slots, used or free:
	 * 0 after sigv4_cache_clear() shows the clear wiped every slot.
	 */
	size_t key_bytes_set;
};
void sigv4_cache_get_stats(struct sigv4_cache_stats *ret);

#endif
