/*
 * restore-netns.c - entering the network namespace of restore --netns.
 *
 * setns(CLONE_NEWNET) changes the namespace of the calling thread only;
 * lazarus is single-threaded when it restores, and everything created after
 * (the sockets of the fd store, the processes of the tree, the lazy-pages
 * daemon if it is started now) belongs to the new namespace. The nftables
 * network lock of --tcp-established lives in the namespace of the dump, so
 * restore goes back to its own before releasing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "log.h"
#include "restore-netns.h"

#define NSIO 0xb7
#define NS_GET_NSTYPE _IO(NSIO, 0x3) /* linux/nsfs.h */

int rst_netns_enter(const char *path, int *old)
{
	int fd, type, ret;

	*old = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*old < 0) {
		pr_perror("--netns: opening /proc/self/ns/net");
		return -errno;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		pr_err("--netns %s: %s", path, strerror(errno));
		goto out_close_old;
	}
	type = ioctl(fd, NS_GET_NSTYPE);
	if (type != CLONE_NEWNET) {
		ret = -EINVAL;
		pr_err("--netns %s: not a network namespace", path);
		goto out_close;
	}
	if (setns(fd, CLONE_NEWNET)) {
		ret = -errno;
		pr_err("--netns %s: setns: %s", path, strerror(errno));
		goto out_close;
	}
	close(fd);
	pr_info("restoring into the network namespace %s", path);
	return 0;
out_close:
	close(fd);
out_close_old:
	close(*old);
	*old = -1;
	return ret;
}

int rst_netns_return(int old)
{
	int ret = 0;

	if (old < 0)
		return 0;
	if (setns(old, CLONE_NEWNET)) {
		ret = -errno;
		pr_perror("--netns: back to lazarus's network namespace");
	}
	close(old);
	return ret;
}
