/*
 * restore-finish.h - the last step of a restore, from the lazarus parent:
 * catch every thread of the restored process at the exit of its
 * rt_sigreturn with ptrace, unmap the restorer's bootstrap area from
 * outside once none is inside it, detach them all.
 */
#ifndef LZ_RESTORE_FINISH_H
#define LZ_RESTORE_FINISH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.pb-c.h"

struct rst_finish {
	pid_t pid;	       /* the restored process, blocked on its go pipe after "OK" */
	int go_wr;	       /* write end of that pipe: one byte lets the blob go on */
	uint64_t area;	       /* the bootstrap area ("OK" record) */
	uint64_t area_len;
	const CoreEntry *const *cores; /* per thread, the leader first (pstree order): */
	size_t nr_threads;	       /* what each must look like after rt_sigreturn */
	const pid_t *tids;     /* --pidns: each thread's tid as seen here; NULL: as dumped */
	uint64_t vdso_start;   /* its [vdso] (dumped address), where a `syscall` is */
	uint64_t vdso_end;     /* found for the injection; 0, 0: none */
	bool fault;	       /* testing: the injected munmap fails (EINVAL) */
	unsigned nr_stops;     /* out: ptrace stops on the way to rt_sigreturn, all threads */
};

/*
 * Returns 0 with the process running on, every thread untraced, and
 * without the area; or -errno with the process killed and every thread
 * reaped from ptrace (never left stopped or traced). Logs
 * a failure once. The caller closes go_wr afterwards (EOF makes a blob that
 * was never traced fail by itself).
 */
int rst_finish_process(struct rst_finish *f);

#endif
