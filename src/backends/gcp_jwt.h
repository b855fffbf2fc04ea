/*
 * gcp_jwt.h - the signed assertion of Google's service-account grant
 * (RFC 7523 JWT bearer, RS256), as google-auth builds it.
 */
#ifndef SECRETFS_GCP_JWT_H
#define SECRETFS_GCP_JWT_H

#include <stddef.h>
#include <stdint.h>

#define GCP_SCOPE	     "https://www.googleapis.com/auth/cloud-platform"
#define GCP_JWT_LIFETIME_SEC 3600

/*
 * Signs {"alg":"RS256","typ":"JWT","kid":@key_id} .
 * {"iss":@client_email,"scope":@scope,"aud":@aud,"iat":@iat_sec,"exp":@iat_sec+3600}
 * with the RSA private key in @pem (PKCS#8 or PKCS#1 PEM, @pemlen bytes, not
 * NUL-terminated necessarily).  @key_id may be NULL or "" (no kid).
 * *ret_jwt is a NUL-terminated string from secret_mem_alloc(); the caller
 * frees it with secret_mem_free() (which wipes it).  OpenSSL's copy of the
 * key is freed (and its bignums cleared) before returning.
 * Returns 0, -EINVAL (not an RSA private key; @reason says so without
 * quoting the key), or -ENOMEM.
 */
int gcp_jwt_sign(const char *pem, size_t pemlen, const char *key_id, const char *client_email,
		 const char *scope, const char *aud, uint64_t iat_sec, char **ret_jwt, char *reason,
		 size_t reasonlen);

/* base64url without padding (RFC 7515 2) of @len bytes into @out, which
 * holds at least 4 * ((len + 2) / 3) + 1 bytes; returns the length written. */
size_t gcp_base64url(const void *data, size_t len, char *out);

#endif
