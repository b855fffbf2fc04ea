/*
 * doppler_parse.h - Doppler's documents and names, without a network
 * (private to src/backends; the fuzz target and unit tests call it).
 *
 * Errors follow backend.h: a 2xx body that is not the document asked for is
 * -EBADMSG.  Reasons never quote a body.
 */
#ifndef SECRETFS_DOPPLER_PARSE_H
#define SECRETFS_DOPPLER_PARSE_H

#include <stddef.h>

#include "secretfs/secret.h"

/* Project and config names: Doppler's slugs, [A-Za-z0-9._-], at most this long. */
#define DOPPLER_NAME_MAX 128
/* A config with more secrets than this is refused rather than half shown. */
#define DOPPLER_SECRETS_MAX 100000

/*
 * "PROJECT/CONFIG" of SOURCE, or "" when the service token implies them:
 * then both are NULL.  Otherwise both are malloc'ed.  -EINVAL with @reason
 * for anything else (one name only, a third part, a character outside the
 * slug alphabet).
 */
int doppler_parse_source(const char *arg, char **ret_project, char **ret_config, char *reason,
			 size_t reasonlen);
/* Whether @s is a project or config name Doppler could have. */
int doppler_name_is_valid(const char *s);
/*
 * The answer of secrets/download?format=json: one flat object NAME ->
 * computed value.  *ret is a SECRET_TABLE in locked memory, one entry per
 * secret in name order, each value the string's bytes exactly (a value that
 * is itself JSON text stays text: no directory is made of it).  A name that
 * cannot be a file name is left out (*ret_hidden counts them).  A member
 * that is not a string, a duplicate name, or more than DOPPLER_SECRETS_MAX
 * secrets is -EBADMSG.  Every intermediate copy is wiped.
 */
int doppler_parse_download(const char *body, size_t len, struct secret **ret, size_t *ret_hidden,
			   char *reason, size_t reasonlen);
/*
 * An error body {"messages": ["..."], "success": false}: the messages,
 * joined by "; ", control characters blanked, cut to fit @msg ("" when there
 * are none or the body is not that document).  Never fails.
 */
void doppler_parse_error(const char *body, size_t len, char *msg, size_t msglen);

#endif
