/*
 * lzvfork.c - a process that cannot be frozen for a while: it vforks, and a
 * vfork parent waits for its child in uninterruptible sleep (state D), where
 * no ptrace interrupt reaches it. The child writes DIR/ready ("pid=PARENT
 * child=CHILD") and sleeps up to 60 s; once it is gone the parent writes
 * DIR/resumed and exits 0. Used to check that a dump gives up cleanly.
 *
 *   lzvfork --dir DIR
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzvfork"
#include "wl.h"

int main(int argc, char **argv)
{
	char text[64];
	pid_t parent = getpid(), child;

	if (argc != 3 || strcmp(argv[1], "--dir"))
		die("usage: lzvfork --dir DIR");
	child = vfork();
	if (child == 0) {
		/* Only plain syscalls here: this runs on the parent's stack. */
		struct timespec ts = { 60, 0 };
		char tmp[4200], dst[4200], line[64];
		int fd, n;

		n = snprintf(line, sizeof(line), "pid=%d child=%d\n", parent, getpid());
		snprintf(tmp, sizeof(tmp), "%s/ready.tmp", argv[2]);
		snprintf(dst, sizeof(dst), "%s/ready", argv[2]);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, line, (size_t)n) != n || close(fd) || rename(tmp, dst))
			_exit(2);
		nanosleep(&ts, NULL);
		_exit(0);
	}
	if (child < 0)
		die("vfork");
	snprintf(text, sizeof(text), "pid=%d\n", parent);
	wl_publish(argv[2], "resumed", text);
	return 0;
}
