/*
 * log.c - where the daemon's own messages go.  In the foreground (and until
 * the daemon has detached) they go to stderr, prefixed with "secretfs: ";
 * afterwards to syslog, which systemd forwards to the journal.
 *
 * Under systemd (Type=notify with -f) stderr is the journal: each line then
 * starts with its sd-daemon(3) priority prefix ("<3>" for an error) instead,
 * so that `journalctl -p err` finds the errors.  That is when $NOTIFY_SOCKET
 * is set, or when $JOURNAL_STREAM names the device and inode of our stderr
 * (systemd.exec(5): a program started from a shell in a service may inherit
 * the variable without its stderr being the journal).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretfs/log.h"

static bool log_syslog;
static bool log_journal;
static bool log_debug_on;

static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (getenv("NOTIFY_SOCKET"))
		return true;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_open(bool to_syslog, bool debug)
{
	log_debug_on = debug;
	if (to_syslog && !log_syslog)
		openlog("secretfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = to_syslog;
	log_journal = !to_syslog && stderr_is_journal();
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
		if (log_journal)
			fprintf(stderr, "<%d>", LOG_PRI(priority));
		else
			fputs("secretfs: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		funlockfile(stderr);
	}
	va_end(ap);
}
