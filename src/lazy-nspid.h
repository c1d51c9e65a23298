/*
 * lazy-nspid.h - which process here a fault's thread id names.
 *
 * A userfaultfd page fault reports the faulting thread's id as seen in its
 * own pid namespace (task_pid_vnr), which is not the daemon's for a tree
 * restored into a fresh pid namespace (restore --pidns, a root that was pid
 * 1 of its own): there the number is some other process's here.
 */
#ifndef LZ_LAZY_NSPID_H
#define LZ_LAZY_NSPID_H

#include <sys/types.h>

/*
 * The process (tgid) here whose thread is TID in the pid namespace of KIN,
 * a process here known to share that namespace (the parent at the fork);
 * 0 when none is found. The faulting thread waits for its page, so it
 * exists while this looks: the answer is that thread's process, checked
 * again by the caller after it took a pidfd (a pid reused in between).
 */
pid_t lazy_tid_here(pid_t kin, pid_t tid);

#endif
