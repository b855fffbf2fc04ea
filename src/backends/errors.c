/*
 * errors.c - the one place that decides which backend errors are worth
 * riding out, and which errnos leave the backends at all.
 *
 * The cache serves an expired value over a transient error only: the store is
 * still there and the value is probably still right.  A denial or a not-found
 * is the store telling us something, so it ends the entry.  An answer that
 * never arrived whole (a connection refused, reset or dropped, a body cut
 * short) or that arrived garbled (a 200 whose body is not the document asked
 * for: a proxy gone wrong) tells us nothing about the secret, so it is
 * transient: a user would rather read yesterday's password than nothing.
 * The HTTP layer retries exactly the failures this table calls transient.
 */
#include <errno.h>
#include <stdbool.h>

#include "secretfs/backend.h"
#include "secretfs/util.h"

static const struct {
	int err;
	bool transient;
	bool passes; /* reaches the cache and readers as it is (docs/design.md section 8's set) */
} error_table[] = {
	{ ENOENT, false, true },
	{ EACCES, false, true },
	{ ENOMEM, false, true },
	{ EIO, false, true },
	{ EAGAIN, true, true },
	{ ETIMEDOUT, true, true },
	{ EHOSTUNREACH, true, true },
	{ ENETUNREACH, true, true },
	{ ECONNREFUSED, true, true },
	{ ECONNRESET, true, true },
	/* Transient, but readers get EAGAIN: */
	{ EBADMSG, true, false }, /* a malformed answer (backend.h) */
	{ EBUSY, true, false },	  /* 409: a conflict that passes */
	{ ECONNABORTED, true, false },
	{ ENETDOWN, true, false },
	{ ENETRESET, true, false },
	{ EHOSTDOWN, true, false },
	{ EPIPE, true, false },
};

static int find(int err)
{
	for (size_t i = 0; i < ARRAY_SIZE(error_table); i++)
		if (-error_table[i].err == err)
			return (int)i;
	return -1;
}

int backend_error_is_transient(int err)
{
	int i = find(err);

	return i >= 0 && error_table[i].transient;
}

int backend_error_normalise(int err)
{
	int i;

	if (err >= 0)
		return err;
	i = find(err);
	if (i >= 0 && error_table[i].passes)
		return err;
	return i >= 0 && error_table[i].transient ? -EAGAIN : -EIO;
}
