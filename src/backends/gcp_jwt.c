/*
 * gcp_jwt.c - the RS256 JWT that a Google service-account key file is
 * exchanged for a token with (RFC 7523; the claims google-auth sends).
 *
 * The private key is parsed from the caller's buffer (locked memory) by
 * OpenSSL, whose allocations secretfs routes through a wiping allocator,
 * and freed before returning.  The signed JWT is a credential for an hour:
 * it lives in secret_mem and is wiped when freed.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "gcp_jwt.h"
#include "secretfs/secret.h"

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t gcp_base64url(const void *data, size_t len, char *out)
{
	const unsigned char *p = data;
	size_t o = 0, i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		out[o++] = b64url_alphabet[p[i] >> 2];
		out[o++] = b64url_alphabet[(p[i] & 3) << 4];
	} else if (len - i == 2) {
		out[o++] = b64url_alphabet[p[i] >> 2];
		out[o++] = b64url_alphabet[(p[i] & 3) << 4 | p[i + 1] >> 4];
		out[o++] = b64url_alphabet[(p[i + 1] & 15) << 2];
	}
	out[o] = '\0';
	return o;
}

static size_t b64url_size(size_t len)
{
	return 4 * ((len + 2) / 3) + 1;
}

/* Appends base64url(@json compact) to @out at *@pos. */
static int append_json(json_t *j, char *out, size_t cap, size_t *pos)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_free_t jfree;
	size_t n;

	/* jansson's allocator may be the wiping one (ns_json_use_wiping_alloc). */
	json_get_alloc_funcs(NULL, &jfree);
	if (!text)
		return -ENOMEM;
	n = strlen(text);
	if (b64url_size(n) > cap - *pos) {
		jfree(text);
		return -EINVAL;
	}
	*pos += gcp_base64url(text, n, out + *pos);
	jfree(text);
	return 0;
}

static EVP_PKEY *load_rsa_key(const char *pem, size_t pemlen)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio;

	if (pemlen > INT_MAX)
		return NULL;
	bio = BIO_new_mem_buf(pem, (int)pemlen);
	if (!bio)
		return NULL;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	BIO_free(bio);
	if (pkey && EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}

int gcp_jwt_sign(const char *pem, size_t pemlen, const char *key_id, const char *client_email,
		 const char *scope, const char *aud, uint64_t iat_sec, char **ret_jwt, char *reason,
		 size_t reasonlen)
{
	json_t *header = NULL, *claims = NULL;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0, pos = 0, cap = 4096;
	char *jwt = NULL;
	int r = -ENOMEM;

	pkey = load_rsa_key(pem, pemlen);
	if (!pkey) {
		snprintf(reason, reasonlen,
			 "the key is not an unencrypted RSA private key (PEM)");
		r = -EINVAL;
		goto out;
	}
	header = key_id && *key_id
			 ? json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "kid", key_id)
			 : json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
	claims = json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", client_email, "scope", scope, "aud", aud,
			   "iat", (json_int_t)iat_sec, "exp",
			   (json_int_t)(iat_sec + GCP_JWT_LIFETIME_SEC));
	if (!header || !claims) {
		snprintf(reason, reasonlen, "cannot build the JWT (out of memory or bad UTF-8)");
		goto out;
	}
	jwt = secret_mem_alloc(cap);
	md = EVP_MD_CTX_new();
	if (!jwt || !md) {
		snprintf(reason, reasonlen, "out of memory signing the JWT");
		goto out;
	}
	r = append_json(header, jwt, cap, &pos);
	if (r == 0) {
		jwt[pos++] = '.';
		r = append_json(claims, jwt, cap, &pos);
	}
	if (r < 0) {
		snprintf(reason, reasonlen, "JWT claims too long (client_email or token_uri)");
		goto out;
	}
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)jwt, pos) != 1 ||
	    !(sig = OPENSSL_malloc(siglen)) ||
	    EVP_DigestSign(md, sig, &siglen, (unsigned char *)jwt, pos) != 1) {
		snprintf(reason, reasonlen, "RS256 signing failed");
		r = -EINVAL;
		goto out;
	}
	if (1 + b64url_size(siglen) > cap - pos) {
		snprintf(reason, reasonlen, "JWT too long");
		r = -EINVAL;
		goto out;
	}
	jwt[pos++] = '.';
	pos += gcp_base64url(sig, siglen, jwt + pos);
	*ret_jwt = jwt;
	jwt = NULL;
	r = 0;
out:
	OPENSSL_free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	json_decref(header);
	json_decref(claims);
	secret_mem_free(jwt);
	return r;
}
