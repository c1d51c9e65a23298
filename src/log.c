/*
 * log.c - leveled logging to stderr or a log file.
 *
 * Logging is the one piece of process-wide state: the level and the
 * destination are set once by the command line before any work starts.
 * When the destination is a file, errors are copied to stderr too, so the
 * user always sees the one line that says what failed.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "safe-file.h"

static struct {
	int level;
	int fd;		  /* -1: stderr */
	struct timespec start;
} logger = { .level = LOG_WARN, .fd = -1 };

void log_init(int level, int fd)
{
	logger.level = level;
	logger.fd = fd;
	clock_gettime(CLOCK_MONOTONIC, &logger.start);
}

int log_get_level(void)
{
	return logger.level;
}

int log_get_fd(void)
{
	return logger.fd < 0 ? STDERR_FILENO : logger.fd;
}

int log_open_file_why(const char *dir, const char *path, char *why)
{
	char buf[4096], dbuf[4096], dwhy[SF_WHY_MAX];
	const char *base;
	int dfd, fd;

	if (path[0] != '/' && dir) {
		if (snprintf(buf, sizeof(buf), "%s/%s", dir, path) >= (int)sizeof(buf)) {
			snprintf(why, SF_WHY_MAX, "%s", strerror(ENAMETOOLONG));
			return -ENAMETOOLONG;
		}
		path = buf;
	}
	base = sf_split(path, dbuf, sizeof(dbuf));
	if (!base || !strcmp(base, ".") || !strcmp(base, "..")) {
		snprintf(why, SF_WHY_MAX, "not a file name");
		return -EINVAL;
	}
	/* A sticky directory is fine here: sf_open_log refuses a file that is not ours. */
	dfd = sf_dir_open_checked(AT_FDCWD, dbuf, SF_DIR_STICKY_OK, dwhy);
	if (dfd < 0) {
		/* Truncation is fine: the directory is named in full in the path. */
		if (snprintf(why, SF_WHY_MAX, "its directory: %s", dwhy) < 0)
			why[0] = '\0';
		return dfd;
	}
	fd = sf_open_log(dfd, base, why);
	close(dfd);
	if (fd < 0)
		return fd;
	if (logger.fd >= 0)
		close(logger.fd);
	logger.fd = fd;
	return 0;
}

int log_open_file(const char *dir, const char *path)
{
	char why[SF_WHY_MAX];

	return log_open_file_why(dir, path, why);
}

void log_close(void)
{
	if (logger.fd >= 0)
		close(logger.fd);
	logger.fd = -1;
}

static const char *level_tag(int level)
{
	switch (level) {
	case LOG_ERROR:
		return "Error: ";
	case LOG_WARN:
		return "Warn: ";
	case LOG_INFO:
		return "";
	case LOG_DEBUG:
		return "";
	}
	return "";
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void print_on_level(int level, const char *fmt, ...)
{
	char msg[2048], line[2200];
	struct timespec now;
	int saved_errno = errno;
	va_list ap;
	int n;

	if (level > logger.level && level != LOG_MSG)
		return;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		goto out;
	/* One line per message: the logger owns the newline. */
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';

	if (level == LOG_MSG) {
		n = snprintf(line, sizeof(line), "%s\n", msg);
		write_all(STDOUT_FILENO, line, (size_t)MIN(n, (int)sizeof(line) - 1));
		goto out;
	}

	if (logger.fd >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		double t = (double)(now.tv_sec - logger.start.tv_sec) +
			   (double)(now.tv_nsec - logger.start.tv_nsec) / 1e9;
		n = snprintf(line, sizeof(line), "(%10.6f) %5d %s%s\n", t, getpid(),
			     level_tag(level), msg);
		write_all(logger.fd, line, (size_t)MIN(n, (int)sizeof(line) - 1));
	}
	if (logger.fd < 0 || level == LOG_ERROR) {
		n = snprintf(line, sizeof(line), "lazarus: %s%s\n", level_tag(level), msg);
		write_all(STDERR_FILENO, line, (size_t)MIN(n, (int)sizeof(line) - 1));
	}
out:
	errno = saved_errno;
}
