/*
 * restore-ipcns.c - the fresh IPC namespace of an IPCNS_OWN dump.
 *
 * unshare(CLONE_NEWIPC) gives lazarus (its calling thread) an empty IPC
 * namespace with default limits; the dumped sysctls are written there
 * before any segment is made, so a segment the tree could make under its
 * limits can be made again. Every process lazarus clones after this (the
 * root, the -d helper, the --pidns init) starts in it; the lazy-pages
 * daemon, forked before, stays in ours (it never touches SysV segments:
 * they are filled eagerly). kernel.shm_next_id lets the segments keep
 * their ids (restore-shmem.c); it is set to the dumped value at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "log.h"
#include "restore-ipcns.h"
#include "restore-verify.h"

static int write_sysctl(const char *name, const char *val)
{
	char path[64];
	size_t len = strlen(val);
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return rst_verify_fail("inventory.img", -errno, "kernel.%s: opening %s: %s", name,
				       path, strerror(errno));
	if (write(fd, val, len) != (ssize_t)len)
		ret = rst_verify_fail("inventory.img", -errno,
				      "kernel.%s of the new IPC namespace: writing \"%s\": %s", name,
				      val, strerror(errno));
	close(fd);
	return ret;
}

static int write_sysctls(const IpcSysctls *s)
{
	char v[8][64];
	const char *names[8] = { "shmmax", "shmall", "shmmni", "shm_rmid_forced",
				 "msgmax", "msgmnb", "msgmni", "sem" };
	int ret = 0;

	snprintf(v[0], sizeof(v[0]), "%" PRIu64, s->shmmax);
	snprintf(v[1], sizeof(v[1]), "%" PRIu64, s->shmall);
	snprintf(v[2], sizeof(v[2]), "%u", s->shmmni);
	snprintf(v[3], sizeof(v[3]), "%u", s->shm_rmid_forced);
	snprintf(v[4], sizeof(v[4]), "%u", s->msgmax);
	snprintf(v[5], sizeof(v[5]), "%u", s->msgmnb);
	snprintf(v[6], sizeof(v[6]), "%u", s->msgmni);
	snprintf(v[7], sizeof(v[7]), "%u %u %u %u", s->sem[0], s->sem[1], s->sem[2], s->sem[3]);
	for (int i = 0; !ret && i < 8; i++)
		ret = write_sysctl(names[i], v[i]);
	return ret;
}

int rst_ipcns_enter(const struct rst_images *im, int *old)
{
	int ret;

	*old = -1;
	if (!im->ipc_own)
		return 0;
	*old = open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
	if (*old < 0)
		return rst_verify_fail("inventory.img", -errno, "opening /proc/self/ns/ipc: %s",
				       strerror(errno));
	if (unshare(CLONE_NEWIPC)) {
		ret = rst_verify_fail("inventory.img", -errno,
				      "the tree had an IPC namespace of its own: "
				      "unshare(CLONE_NEWIPC): %s",
				      strerror(errno));
		close(*old);
		*old = -1;
		return ret;
	}
	ret = write_sysctls(im->inv->ipc);
	if (!ret)
		pr_info("the tree had an IPC namespace of its own: restored into a fresh one");
	return ret;
}

int rst_ipcns_finish(const struct rst_images *im)
{
	char v[16];

	if (!im->ipc_own || im->inv->ipc->shm_next_id < 0)
		return 0;
	snprintf(v, sizeof(v), "%d", im->inv->ipc->shm_next_id);
	return write_sysctl("shm_next_id", v);
}

int rst_ipcns_return(int old)
{
	int ret = 0;

	if (old < 0)
		return 0;
	if (setns(old, CLONE_NEWIPC)) {
		ret = -errno;
		pr_perror("returning to lazarus's IPC namespace");
	}
	close(old);
	return ret;
}
