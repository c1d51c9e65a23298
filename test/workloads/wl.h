/*
 * wl.h - what the C test workloads share: dying with a reason, writing a
 * whole buffer through EINTR, and publishing a file atomically (a harness
 * reading DIR/NAME sees all of it or nothing), and the two requests the
 * harness sends: SIGUSR1 (check yourself) and SIGTERM (exit). Each workload
 * sets WL_NAME.
 */
#ifndef LZ_WL_H
#define LZ_WL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef WL_NAME
#error "define WL_NAME (the workload's name) before including wl.h"
#endif

__attribute__((format(printf, 1, 2), noreturn, unused)) static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, WL_NAME ": ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	va_end(ap);
	exit(2);
}

/* Set by wl_on_usr1 / wl_on_term; the workload's loop polls and clears them. */
__attribute__((unused)) static volatile sig_atomic_t check_requested, term_requested;

__attribute__((unused)) static void wl_on_usr1(int sig)
{
	(void)sig;
	check_requested = 1;
}

__attribute__((unused)) static void wl_on_term(int sig)
{
	(void)sig;
	term_requested = 1;
}

__attribute__((unused)) static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write DIR/NAME atomically, through a temporary file and rename. */
__attribute__((unused)) static void wl_publish(const char *dir, const char *name, const char *text)
{
	char tmp[4200], dst[4200];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	do
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		die("open %s", tmp);
	if (write_all(fd, text, strlen(text)) || close(fd))
		die("write %s", tmp);
	if (rename(tmp, dst))
		die("rename %s", dst);
}

#endif
