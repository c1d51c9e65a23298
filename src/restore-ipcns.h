/*
 * restore-ipcns.h - a dump whose tree had an IPC namespace of its own
 * (inventory.img IPCNS_OWN) is restored into a fresh one: lazarus unshares
 * it before it makes the SysV segments (restore-shmem.c) and clones the
 * tree, which inherits it, and returns to its own once the tree holds them.
 * Functions return 0 or -errno and log once.
 */
#ifndef LZ_RESTORE_IPCNS_H
#define LZ_RESTORE_IPCNS_H

#include "restore-images.h"

#define RST_IPC_MNI_MAX (1U << 24) /* IPCMNI_EXTEND: the most ids a kernel has */

/*
 * inventory.img's message queues (IPCNS_OWN): ids, keys, modes, message
 * types and sizes; -EBADMSG and WHY when one is wrong.
 */
int rst_ipcns_check(const InventoryEntry *inv, char *why, size_t len);
/*
 * unshare(CLONE_NEWIPC) and set the dumped IPC sysctls there (the limits
 * first: the segments are made under them), then make the message queues. *OLD gets an fd of the
 * namespace lazarus was in (-1 when IM is no IPCNS_OWN dump: nothing done).
 */
int rst_ipcns_enter(const struct rst_images *im, int *old);
/* Once every segment is made: kernel.shm_next_id as dumped (usually -1). */
int rst_ipcns_finish(const struct rst_images *im);
/* Back into OLD (closed); nothing if OLD < 0. A failure is logged. */
int rst_ipcns_return(int old);

#endif
