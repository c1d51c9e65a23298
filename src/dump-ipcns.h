/*
 * dump-ipcns.h - the IPC namespace of a tree that has one of its own
 * (`unshare --ipc`, a container): lazarus enters it while it reads what
 * lives there (the SysV shm segments, dump-shmem.c), reads its SysV
 * message queues and its IPC sysctls for inventory.img, and refuses by
 * name what restore cannot bring back (SysV semaphore sets, POSIX message
 * queues).
 * Functions return 0 or -errno and log once, naming the root's pid.
 */
#ifndef LZ_DUMP_IPCNS_H
#define LZ_DUMP_IPCNS_H

#include <stdint.h>
#include <sys/types.h>

#include "inventory.pb-c.h"

#define IPCNS_SEM_NR 4 /* semmsl semmns semopm semmni */

struct dump_ipcns {
	pid_t root;
	int back; /* our own IPC namespace while inside the tree's; -1 */
	uint64_t shmmax, shmall;
	uint32_t shmmni, shm_rmid_forced, msgmax, msgmnb, msgmni;
	uint32_t sem[IPCNS_SEM_NR];
	int32_t shm_next_id;
	SysvMsgQueue **msq; /* its message queues, each with its messages */
	size_t nr_msq;
};

/*
 * Enter the IPC namespace of ROOT (setns, this thread), which must be the
 * one LINK names ("ipc:[N]", read before the freeze). n->back is set.
 */
int dump_ipcns_enter(struct dump_ipcns *n, pid_t root, const char *link);
/* Back into ours, if entered; a failure here is fatal to the dump. */
int dump_ipcns_leave(struct dump_ipcns *n);
/*
 * Inside it: refuse SysV semaphore sets and POSIX message queues by name;
 * read the IPC sysctls and every SysV message queue (MSG_COPY: the queues
 * are left as they are).
 */
int dump_ipcns_collect(struct dump_ipcns *n);
/* inventory.img's ipc_sysctls (E->sem points into N). */
void dump_ipcns_entry(struct dump_ipcns *n, IpcSysctls *e);
/* Free the queues read. */
void dump_ipcns_fini(struct dump_ipcns *n);

#endif
