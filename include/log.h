/*
 * log.h - the one logging family of Lazarus.
 *
 * Levels follow CRIU's -v: 0 silent but fatal errors, 1 errors, 2 warnings,
 * 3 info, 4 debug. Messages get a timestamp, the level and a per-file prefix
 * (define LOG_PREFIX before including); the logger adds the newline.
 * pr_perror() appends strerror(errno).
 */
#ifndef LZ_LOG_H
#define LZ_LOG_H

#include <errno.h>
#include "compiler.h"

enum log_level {
	LOG_MSG = 0, /* always printed (user-facing output) */
	LOG_ERROR = 1,
	LOG_WARN = 2,
	LOG_INFO = 3,
	LOG_DEBUG = 4,
};

#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

/* Set the level and destination. fd < 0 means stderr. */
void log_init(int level, int fd);
int log_get_level(void);
int log_get_fd(void);
/*
 * Open PATH (relative paths land in DIR, when given) for appending and make
 * it the destination. Its directory and the file follow the rules of
 * safe-file.h for logs: the directory is not writable by others (a sticky
 * one is accepted), the file is not a symlink, is ours, has one link, and
 * is mode 0600. Returns 0 or -errno; log_open_file_why also puts what is
 * wrong into WHY (SF_WHY_MAX bytes), for a one-line error.
 */
int log_open_file(const char *dir, const char *path);
int log_open_file_why(const char *dir, const char *path, char *why);
void log_close(void);

void print_on_level(int level, const char *fmt, ...) __printf(2, 3);

#define pr_msg(fmt, ...) print_on_level(LOG_MSG, fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...) print_on_level(LOG_ERROR, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) print_on_level(LOG_WARN, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) print_on_level(LOG_INFO, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) print_on_level(LOG_DEBUG, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_perror(fmt, ...) \
	print_on_level(LOG_ERROR, LOG_PREFIX fmt ": %s", ##__VA_ARGS__, strerror(errno))
#define pr_warn_perror(fmt, ...) \
	print_on_level(LOG_WARN, LOG_PREFIX fmt ": %s", ##__VA_ARGS__, strerror(errno))

#include <string.h>

#endif
