/*
 * dump-core.h - per-thread state of the dump: registers, FPU/xsave state,
 * signal mask, signals pending for the thread, sigaltstack, rseq, robust list, clear_child_tid,
 * credentials (core-<tid>.img). Functions return 0 or -errno and log failures once.
 */
#ifndef LZ_DUMP_CORE_H
#define LZ_DUMP_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/user.h>

#include "dump-creds.h"
#include "dump-img.h"
#include "dump-seccomp.h"
#include "dump-task.h"
#include "ptrace.h"

struct core_dump {
	pid_t tid;
	pid_t img_tid; /* its tid in the images (dump-ns.h: inside the tree's pid ns) */
	char comm[32];
	struct user_regs_struct regs;	 /* after the syscall-restart fixup */
	int64_t interrupted_syscall;	 /* orig_rax if stopped in a syscall, else -1 */
	uint8_t *xsave;			 /* NT_X86_XSTATE as the kernel gave it */
	uint32_t xsave_size;
	uint64_t sigmask;		 /* blocked signals */
	uint64_t ss_sp, ss_size;	 /* sigaltstack */
	uint32_t ss_flags;
	bool has_rseq;
	struct ptrace_rseq_config rseq;
	uint64_t robust_list, robust_list_len;
	uint64_t clear_child_tid;
	unsigned nr_pending;		 /* signals queued for this thread only */
	uint8_t pending[TRACEE_MAX_PENDING][TRACEE_SIGINFO_SIZE]; /* their siginfo, oldest first */
	struct creds_dump creds;	 /* uids, gids, groups, capabilities, securebits */
	struct thread_sched sched;	 /* nice, policy, affinity (task_collect_sched) */
	struct seccomp_dump seccomp;	 /* mode and filters (dump-seccomp.c) */
};

/*
 * What can be read from the frozen task from outside: registers, xsave,
 * sigmask, rseq, robust list, comm, credentials, scheduling state. Must run before injection; may move
 * t->resume.rip to an rseq abort handler (see dump-core.c).
 */
int core_collect_frozen(struct core_dump *c, struct tracee *t);
/* sigaltstack, clear_child_tid and securebits, by injected syscalls. */
int core_collect_injected(struct core_dump *c, struct tracee *t);
/*
 * The thread's own signal queue, at most MAX entries; more is refused with
 * one error line (-E2BIG). Runs after injection: signals that came in while
 * it had them all blocked are queued by then.
 */
int core_collect_pending(struct core_dump *c, struct tracee *t, unsigned max);
int core_write(const struct core_dump *c, struct dump_imgs *imgs);
void core_fini(struct core_dump *c);

#endif
