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
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- rate limit per path and reason ---- */

#define LIMIT_SETS 256
#define LIMIT_WAYS 4

struct limit_slot {
	uint64_t key; /* 0: free */
	uint64_t logged_usec;
	unsigned suppressed;
};

static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct limit_slot limit_table[LIMIT_SETS][LIMIT_WAYS]; /* protected by limit_lock */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

bool log_limit(const char *what, const char *path, int err, uint64_t now_usec,
	       unsigned *ret_suppressed)
{
	uint64_t key = 0xcbf29ce484222325ULL;
	struct limit_slot *set, *slot = NULL;
	bool log = true;

	/* The NULs keep ("ab", "c") and ("a", "bc") apart. */
	key = fnv1a(key, what, strlen(what) + 1);
	key = fnv1a(key, path, strlen(path) + 1);
	key = fnv1a(key, &err, sizeof(err));
	key |= 1; /* never 0, the free mark */

	pthread_mutex_lock(&limit_lock);
	set = limit_table[(key >> 1) % LIMIT_SETS];
	for (size_t i = 0; i < LIMIT_WAYS && !slot; i++)
		if (set[i].key == key)
			slot = &set[i];
	if (slot && now_usec - slot->logged_usec < LOG_LIMIT_WINDOW_USEC) {
		slot->suppressed++;
		log = false;
	} else if (slot) {
		*ret_suppressed = slot->suppressed;
	} else {
		/* A free way, else the one logged longest ago. */
		slot = &set[0];
		for (size_t i = 1; i < LIMIT_WAYS && slot->key; i++)
			if (!set[i].key || set[i].logged_usec < slot->logged_usec)
				slot = &set[i];
		*ret_suppressed = 0;
	}
	if (log)
		*slot = (struct limit_slot){ .key = key, .logged_usec = now_usec };
	pthread_mutex_unlock(&limit_lock);
	return log;
}
