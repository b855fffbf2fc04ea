/*
 * errors.c - which backend errors are worth riding out.
 *
 * The cache serves an expired value over a transient error only: the store is
 * still there and the value is probably still right.  A denial, a not-found or
 * a malformed answer is the store telling us something, so it ends the entry.
 */
#include <errno.h>

#include "secretfs/backend.h"

int backend_error_is_transient(int err)
{
	switch (err) {
	case -EAGAIN:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EBUSY:
		return 1;
	default:
		return 0;
	}
}
