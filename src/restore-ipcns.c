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
 * The SysV message queues are made here, right after the sysctls, each
 * with its id (kernel.msg_next_id), key, owner, mode and msg_qbytes, and
 * its messages sent again in their order.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/msg.h>
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

int rst_ipcns_check(const InventoryEntry *inv, char *why, size_t len)
{
	for (size_t i = 0; i < inv->n_msg_queues; i++) {
		const SysvMsgQueue *q = inv->msg_queues[i];
		uint64_t bytes = 0;
		const char *w = NULL;

		if (q->id < 0)
			w = "id out of range";
		else if (q->mode & ~0777U)
			w = "mode out of range";
		for (size_t j = 0; !w && j < i; j++) {
			if (inv->msg_queues[j]->id == q->id)
				w = "id listed twice";
			else if (inv->msg_queues[j]->key == q->key && q->key != IPC_PRIVATE)
				w = "key listed twice";
		}
		for (size_t m = 0; !w && m < q->n_msgs; m++) {
			if (q->msgs[m]->type <= 0)
				w = "a message of type 0 or less";
			else if (q->msgs[m]->text.len > inv->ipc->msgmax)
				w = "a message longer than kernel.msgmax";
			bytes += q->msgs[m]->text.len;
		}
		if (!w && bytes > q->qbytes)
			w = "more bytes than its msg_qbytes";
		if (w) {
			snprintf(why, len, "SysV message queue %d: %s", q->id, w);
			return -EBADMSG;
		}
	}
	return 0;
}

static int make_queue(const SysvMsgQueue *q)
{
	struct msqid_ds ds;
	char v[16];
	int id, ret;

	snprintf(v, sizeof(v), "%d", q->id);
	ret = write_sysctl("msg_next_id", v);
	if (ret)
		return ret;
	id = msgget(q->key, IPC_CREAT | IPC_EXCL | 0600);
	if (id != q->id)
		return rst_verify_fail("inventory.img", id < 0 ? -errno : -EEXIST,
				       "SysV message queue %d (key %#x): msgget: %s", q->id,
				       (unsigned)q->key, id < 0 ? strerror(errno) : "another id");
	if (msgctl(id, IPC_STAT, &ds) < 0)
		return rst_verify_fail("inventory.img", -errno, "SysV message queue %d: IPC_STAT: %s",
				       id, strerror(errno));
	ds.msg_perm.uid = q->uid;
	ds.msg_perm.gid = q->gid;
	ds.msg_perm.mode = (unsigned short)q->mode;
	ds.msg_qbytes = q->qbytes;
	if (msgctl(id, IPC_SET, &ds) < 0)
		return rst_verify_fail("inventory.img", -errno,
				       "SysV message queue %d: setting owner %u:%u mode %o qbytes %" PRIu64
				       ": %s",
				       id, q->uid, q->gid, q->mode, q->qbytes, strerror(errno));
	for (size_t m = 0; m < q->n_msgs; m++) {
		size_t len = q->msgs[m]->text.len;
		char *buf = malloc(sizeof(long) + len + 1);
		long type = (long)q->msgs[m]->type;

		if (!buf)
			return rst_verify_fail("inventory.img", -ENOMEM, "out of memory");
		memcpy(buf, &type, sizeof(type));
		if (len)
			memcpy(buf + sizeof(long), q->msgs[m]->text.data, len);
		ret = msgsnd(id, buf, len, IPC_NOWAIT) < 0 ? -errno : 0;
		free(buf);
		if (ret)
			return rst_verify_fail("inventory.img", ret,
					       "SysV message queue %d: sending message %zu: %s", id,
					       m + 1, strerror(-ret));
	}
	return 0;
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
	for (size_t i = 0; !ret && i < im->inv->n_msg_queues; i++)
		ret = make_queue(im->inv->msg_queues[i]);
	/* msg_next_id goes back to -1 by itself once used (and takes no -1). */
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
