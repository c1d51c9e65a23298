/*
 * timens.h - time namespaces: what a process's CLOCK_MONOTONIC and
 * CLOCK_BOOTTIME read (dump), and a fresh time namespace for the children
 * of the caller in which both go on from given values (restore --pidns).
 * Functions return 0 or -errno; they do not log (the caller does, once).
 */
#ifndef LZ_TIMENS_H
#define LZ_TIMENS_H

#include <stdint.h>
#include <sys/types.h>

struct timens_clocks {
	uint64_t monotonic_ns;
	uint64_t boottime_ns;
};

/* PID's clocks now: ours moved by the difference of its offsets and ours. */
int timens_read_clocks(pid_t pid, struct timens_clocks *out);
/*
 * unshare(CLONE_NEWTIME) and write the offsets of the new namespace, which
 * only the caller's children after this call enter: their clocks read
 * `want` now and go on from there. Before any process is in it (the kernel
 * refuses offsets afterwards). Needs CAP_SYS_ADMIN and CAP_SYS_TIME.
 * On failure *what names the step; -EOPNOTSUPP: this kernel has no time
 * namespaces.
 */
int timens_unshare_at(const struct timens_clocks *want, const char **what);

#endif
