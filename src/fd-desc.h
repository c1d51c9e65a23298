/*
 * fd-desc.h - what every open file description has whatever its kind
 * (fd-desc.c): the O_ASYNC owner and signal (F_SETOWN_EX, F_SETSIG) and
 * the file locks held on it (flock, OFD and POSIX locks). dump-files.c and
 * restore-fds.c call these around the kinds' own hooks.
 */
#ifndef LZ_FD_DESC_H
#define LZ_FD_DESC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fd-kind.h"
#include "restorer.h"

/*
 * Dump, fd P of a description E: the owner (for a new E: FIRST), and the
 * locks of its fdinfo "lock:" lines that E does not have yet (flock and OFD
 * locks show on every fd of the description, POSIX ones on the fds of the
 * process holding them). Leases and unknown lock kinds are refused by name.
 */
int fd_desc_dump(struct fd_probe *p, FileEntry *e, bool first);

/* Restore, in lazarus: E's flock and OFD locks on FD, the store's. */
int rst_desc_open(const FileEntry *e, int fd, char *why, size_t len);
/*
 * Restore, in process PID once FD is at its number (the first fd of E in
 * it: FIRST): the owner and signal, then O_ASYNC. E's POSIX locks of PID are
 * checked free (else refused) and appended to LOCKS (*NR_LOCKS grows by at
 * most E->n_locks): the blob takes them after closing its service fds.
 */
int rst_desc_install(const FileEntry *e, pid_t pid, int fd, bool first,
		     struct lz_blob_lock *locks, unsigned *nr_locks, char *why, size_t len);

/* "FLOCK", "POSIX", "OFD" */
const char *fd_lock_kind_name(FileLockKind k);

#endif
