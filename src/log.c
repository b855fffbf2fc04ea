/*
 * log.c - where the daemon's own messages go.  In the foreground (and until
 * the daemon has detached) they go to stderr, prefixed with "secretfs: ";
 * afterwards to syslog, which systemd forwards to the journal.
 */
#include <stdarg.h>
#include <stdio.h>

#include "secretfs/log.h"

static bool log_syslog;
static bool log_debug_on;

void log_open(bool to_syslog, bool debug)
{
	log_debug_on = debug;
	if (to_syslog && !log_syslog)
		openlog("secretfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = to_syslog;
}

void log_msg(int priority, const char *fmt, ...)
{
	va_list ap;

	if (priority == LOG_DEBUG && !log_debug_on)
		return;
	va_start(ap, fmt);
	if (log_syslog) {
		vsyslog(priority, fmt, ap);
	} else {
		flockfile(stderr);
		fputs("secretfs: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		funlockfile(stderr);
	}
	va_end(ap);
}
