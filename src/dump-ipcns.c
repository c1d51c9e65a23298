/*
 * dump-ipcns.c - the IPC namespace of a tree that has one of its own.
 *
 * /proc/sysvipc/{shm,msg,sem} and the IPC sysctls of /proc/sys/kernel
 * show the IPC namespace of the process that reads them, so lazarus
 * enters the tree's with setns (one thread: setns changes the caller's
 * only) for as long as it reads them and shmat()s the segments no process
 * of the tree has attached (dump-shmem.c), and returns to its own before
 * anything else. SysV message queues are read with msgrcv(MSG_COPY), which
 * copies the Nth message and leaves the queue as it is. POSIX message queues live in the namespace's mqueue
 * filesystem: a mount made inside the namespace (fsopen/fsmount, detached,
 * never attached to any mount tree) lists them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-ipcns.h"
#include "proc.h"

#define FSCONFIG_CMD_CREATE_ 6
#define FSMOUNT_CLOEXEC_ 1U
#define MSG_COPY_ 040000
#define MSQ_BYTES_MAX (16U << 20) /* all queues' messages: inventory.img holds them */

int dump_ipcns_enter(struct dump_ipcns *n, pid_t root, const char *link)
{
	char path[64], now[64];
	int fd, ret;

	memset(n, 0, sizeof(*n));
	n->root = root;
	n->back = open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
	if (n->back < 0) {
		pr_perror("opening /proc/self/ns/ipc");
		return -errno;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", root);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ret = fd < 0 ? -errno : proc_readlink(root, "ns/ipc", now, sizeof(now));
	if (!ret && strcmp(now, link))
		ret = -ESTALE;
	if (!ret && setns(fd, CLONE_NEWIPC))
		ret = -errno;
	if (fd >= 0)
		close(fd);
	if (ret) {
		pr_err("process %d: entering its IPC namespace %s: %s", root, link,
		       ret == -ESTALE ? "it changed while frozen" : strerror(-ret));
		close(n->back);
		n->back = -1;
	}
	return ret;
}

int dump_ipcns_leave(struct dump_ipcns *n)
{
	int ret = 0;

	if (n->back < 0)
		return 0;
	if (setns(n->back, CLONE_NEWIPC)) {
		ret = -errno;
		pr_perror("returning to lazarus's IPC namespace");
	}
	close(n->back);
	n->back = -1;
	return ret;
}

/* The first object of /proc/sysvipc/NAME: its key and id; 0 if there is none. */
static int sysvipc_first(const char *name, int *key, int *id)
{
	char path[64], line[512];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sysvipc/%s", name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fgets(line, sizeof(line), f)) /* the header */
		while (!found && fgets(line, sizeof(line), f))
			found = sscanf(line, "%d %d", key, id) == 2;
	fclose(f);
	return found;
}

/* The first POSIX message queue of our IPC namespace into NAME; 0 if none. */
static int first_mqueue(char *name, size_t len)
{
	int fs, mnt = -1, dfd, found = 0, ret = 0;
	struct dirent *de;
	DIR *d;

	fs = (int)syscall(SYS_fsopen, "mqueue", 1U /* FSOPEN_CLOEXEC */);
	if (fs < 0)
		return -errno;
	if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE_, NULL, NULL, 0) < 0)
		ret = -errno;
	if (!ret) {
		mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC_, 0);
		if (mnt < 0)
			ret = -errno;
	}
	close(fs);
	if (ret)
		return ret;
	dfd = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(mnt);
	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -ENOMEM;
	}
	while (!found && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(name, len, "%s", de->d_name);
			found = 1;
		}
	closedir(d);
	return found;
}

static int refuse_objects(struct dump_ipcns *n)
{
	static const struct {
		const char *file, *what;
	} kinds[] = { { "sem", "SysV semaphore set" } };
	char mq[256];
	int key, id, ret;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		ret = sysvipc_first(kinds[i].file, &key, &id);
		if (ret < 0) {
			pr_err("process %d: reading /proc/sysvipc/%s of its IPC namespace: %s", n->root,
			       kinds[i].file, strerror(-ret));
			return ret;
		}
		if (ret) {
			pr_err("process %d: its IPC namespace holds %s %d (key %#x): %ss are not "
			       "supported yet",
			       n->root, kinds[i].what, id, (unsigned)key, kinds[i].what);
			return -EOPNOTSUPP;
		}
	}
	ret = first_mqueue(mq, sizeof(mq));
	if (ret < 0) {
		pr_err("process %d: listing the POSIX message queues of its IPC namespace: %s",
		       n->root, strerror(-ret));
		return ret;
	}
	if (ret) {
		pr_err("process %d: its IPC namespace holds POSIX message queue /%s: POSIX message "
		       "queues are not supported yet",
		       n->root, mq);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* /proc/sys/kernel/NAME: NR numbers into V (shmmax is near 2^64). */
static int read_sysctl(const char *name, unsigned long long *v, int nr)
{
	char path[64], buf[128];
	char *s = buf, *end;
	int fd;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0)
		return -errno;
	buf[len] = '\0';
	for (int i = 0; i < nr; i++, s = end) {
		errno = 0;
		v[i] = strtoull(s, &end, 10); /* "-1" reads as all ones */
		if (end == s || errno)
			return -EINVAL;
	}
	return 0;
}

static int read_sysctls(struct dump_ipcns *n)
{
	static const char *const one[] = { "shmmax", "shmall",	"shmmni", "shm_rmid_forced",
					   "msgmax", "msgmnb",	"msgmni", "shm_next_id" };
	unsigned long long v[8], sem[IPCNS_SEM_NR];
	const char *name = "sem";
	int ret = 0;
	size_t i;

	for (i = 0; !ret && i < 8; i++) {
		name = one[i];
		ret = read_sysctl(one[i], &v[i], 1);
	}
	if (!ret) {
		name = "sem";
		ret = read_sysctl("sem", sem, IPCNS_SEM_NR);
	}
	if (ret) {
		pr_err("process %d: reading kernel.%s of its IPC namespace: %s", n->root, name,
		       strerror(-ret));
		return ret;
	}
	n->shmmax = (uint64_t)v[0];
	n->shmall = (uint64_t)v[1];
	n->shmmni = (uint32_t)v[2];
	n->shm_rmid_forced = (uint32_t)v[3];
	n->msgmax = (uint32_t)v[4];
	n->msgmnb = (uint32_t)v[5];
	n->msgmni = (uint32_t)v[6];
	n->shm_next_id = (int32_t)v[7];
	for (i = 0; i < IPCNS_SEM_NR; i++)
		n->sem[i] = (uint32_t)sem[i];
	return 0;
}

/* ------------------------------------------------------------ message queues */

static int msq_new(struct dump_ipcns *n, SysvMsgQueue **out)
{
	SysvMsgQueue **v = realloc(n->msq, (n->nr_msq + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	n->msq = v;
	*out = v[n->nr_msq] = calloc(1, sizeof(**v));
	if (!*out)
		return -ENOMEM;
	n->nr_msq++;
	sysv_msg_queue__init(*out);
	return 0;
}

/* Every message of queue Q (QNUM of them, CBYTES bytes), copied in order. */
static int msq_read(struct dump_ipcns *n, SysvMsgQueue *q, unsigned long qnum,
		    unsigned long cbytes, uint64_t *total)
{
	size_t cap = cbytes + 1;
	char *buf = malloc(sizeof(long) + cap);
	int ret = 0;

	q->msgs = calloc(qnum + 1, sizeof(*q->msgs));
	if (!buf || !q->msgs) {
		free(buf);
		return -ENOMEM;
	}
	for (unsigned long i = 0; !ret && i < qnum; i++) {
		ssize_t len = msgrcv(q->id, buf, cap, (long)i, MSG_COPY_ | IPC_NOWAIT);
		SysvMsg *m;
		long type;

		if (len < 0) {
			ret = -errno;
			pr_err("process %d: SysV message queue %d (key %#x): copying message %lu of "
			       "%lu: %s",
			       n->root, q->id, (unsigned)q->key, i + 1, qnum, strerror(errno));
			break;
		}
		*total += (uint64_t)len;
		if (*total > MSQ_BYTES_MAX) {
			pr_err("process %d: the SysV message queues of its IPC namespace hold more "
			       "than %u bytes: not supported yet",
			       n->root, MSQ_BYTES_MAX);
			ret = -EOPNOTSUPP;
			break;
		}
		m = malloc(sizeof(*m));
		if (m)
			sysv_msg__init(m);
		if (!m || !(m->text.data = malloc((size_t)len + 1))) {
			free(m);
			ret = -ENOMEM;
			break;
		}
		memcpy(&type, buf, sizeof(type));
		m->type = type;
		m->text.len = (size_t)len;
		memcpy(m->text.data, buf + sizeof(long), (size_t)len);
		q->msgs[q->n_msgs++] = m;
	}
	free(buf);
	if (ret == -ENOMEM)
		pr_err("process %d: SysV message queue %d: %s", n->root, q->id, strerror(ENOMEM));
	return ret;
}

/* Every queue of /proc/sysvipc/msg (we are in the tree's namespace). */
static int read_queues(struct dump_ipcns *n)
{
	uint64_t total = 0;
	char line[512];
	int ret = 0;
	FILE *f;

	f = fopen("/proc/sysvipc/msg", "re");
	if (!f) {
		pr_perror("process %d: reading /proc/sysvipc/msg of its IPC namespace", n->root);
		return -errno;
	}
	while (!ret && fgets(line, sizeof(line), f)) {
		unsigned long cbytes, qnum;
		unsigned perms, uid, gid, cuid, cgid;
		struct msqid_ds ds;
		SysvMsgQueue *q;
		int key, id;

		if (sscanf(line, "%d %d %o %lu %lu %*d %*d %u %u %u %u", &key, &id, &perms, &cbytes,
			   &qnum, &uid, &gid, &cuid, &cgid) != 9)
			continue; /* the header */
		if (msgctl(id, IPC_STAT, &ds) < 0) {
			ret = -errno;
			pr_perror("process %d: SysV message queue %d (key %#x): IPC_STAT", n->root, id,
				  (unsigned)key);
			break;
		}
		ret = msq_new(n, &q);
		if (ret) {
			pr_err("process %d: SysV message queues: %s", n->root, strerror(ENOMEM));
			break;
		}
		q->key = key;
		q->id = id;
		q->mode = perms & 0777;
		q->uid = uid;
		q->gid = gid;
		q->cuid = cuid;
		q->cgid = cgid;
		q->qbytes = ds.msg_qbytes;
		/* The tree is frozen: what IPC_STAT says now is what the file said. */
		ret = msq_read(n, q, (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes,
			       &total);
		if (!ret)
			pr_debug("SysV message queue %d (key %#x): %zu messages", id, (unsigned)key,
				 q->n_msgs);
	}
	fclose(f);
	return ret;
}

int dump_ipcns_collect(struct dump_ipcns *n)
{
	int ret = refuse_objects(n);

	if (!ret)
		ret = read_sysctls(n);
	return ret ? ret : read_queues(n);
}

void dump_ipcns_fini(struct dump_ipcns *n)
{
	for (size_t i = 0; i < n->nr_msq; i++) {
		for (size_t j = 0; j < n->msq[i]->n_msgs; j++) {
			free(n->msq[i]->msgs[j]->text.data);
			free(n->msq[i]->msgs[j]);
		}
		free(n->msq[i]->msgs);
		free(n->msq[i]);
	}
	free(n->msq);
	n->msq = NULL;
	n->nr_msq = 0;
}

void dump_ipcns_entry(struct dump_ipcns *n, IpcSysctls *e)
{
	ipc_sysctls__init(e);
	e->shmmax = n->shmmax;
	e->shmall = n->shmall;
	e->shmmni = n->shmmni;
	e->shm_rmid_forced = n->shm_rmid_forced;
	e->msgmax = n->msgmax;
	e->msgmnb = n->msgmnb;
	e->msgmni = n->msgmni;
	e->n_sem = IPCNS_SEM_NR;
	e->sem = n->sem;
	e->shm_next_id = n->shm_next_id;
}
