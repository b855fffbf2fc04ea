/*
 * log.h - the daemon's own messages: stderr in the foreground, syslog once
 * daemonized.  Only main and fs log; library-like modules return reasons.
 * Never pass a secret value, a token or a key to these functions.
 */
#ifndef SECRETFS_LOG_H
#define SECRETFS_LOG_H

#include <stdbool.h>
#include <syslog.h>

void log_open(bool to_syslog, bool debug);
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
