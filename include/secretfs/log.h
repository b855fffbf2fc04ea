/*
 * log.h - the daemon's own messages: stderr in the foreground, syslog once
 * daemonized.  Only main and fs log; library-like modules return reasons.
 * Never pass a secret value, a token or a key to these functions.
 */
#ifndef SECRETFS_LOG_H
#define SECRETFS_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

void log_open(bool to_syslog, bool debug);
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* One message per path and reason in this time; the rest are counted. */
#define LOG_LIMIT_WINDOW_USEC (60ULL * 1000000ULL)

/*
 * Rate limit for messages about one thing that fails over and over: returns
 * true at most once per LOG_LIMIT_WINDOW_USEC for a key (@what, @path, @err),
 * with *@ret_suppressed set to the messages held back for that key since its
 * last one ("(N similar suppressed)").  @now_usec is CLOCK_MONOTONIC.  The
 * table is fixed (1024 keys); a new key pushes out the least recently logged
 * one in its set, so a flood of new keys can add messages but never hide the
 * first one for a key.  Thread-safe.
 */
bool log_limit(const char *what, const char *path, int err, uint64_t now_usec,
	       unsigned *ret_suppressed);

#endif
