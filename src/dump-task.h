/*
 * dump-task.h - per-process state that is neither memory, files nor
 * threads (task-<pid>.img) and the signal dispositions (sigacts-<pid>.img).
 * Functions return 0 or -errno and log failures once.
 */
#ifndef LZ_DUMP_TASK_H
#define LZ_DUMP_TASK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dump-img.h"
#include "dump-timers.h"
#include "proc.h"
#include "ptrace.h"

#define TASK_NR_SIGNALS 64

/* struct sigaction as the rt_sigaction syscall of x86_64 fills it. */
struct kernel_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};
_Static_assert(sizeof(struct kernel_sigaction) == 32, "kernel ABI: 32 bytes");

struct task_itimer {
	uint64_t interval_sec, interval_usec;
	uint64_t value_sec, value_usec;
};

#define TASK_CPU_WORDS 128		/* affinity masks of up to 8192 CPUs */
#define TASK_CGROUP_TEXT 8192		/* /proc/PID/cgroup, all hierarchies */
#define TASK_MAX_CGROUPS 64		/* lines of it */

/* Scheduling state of one thread (core-<tid>.img fields 20 and up). */
struct thread_sched {
	int32_t nice;
	uint32_t policy;		/* SCHED_*, without SCHED_RESET_ON_FORK */
	uint32_t priority;		/* rt priority */
	bool reset_on_fork;
	uint64_t timerslack_ns;
	uint32_t tsc_mode;		/* PR_GET_TSC */
	int32_t mce_kill;		/* PR_MCE_KILL_GET */
	unsigned nr_affinity;		/* words of affinity[] the kernel filled */
	uint64_t affinity[TASK_CPU_WORDS];
};

struct task_dump {
	pid_t pid;
	pid_t img_pid; /* its pid in the images (dump-ns.h: inside the tree's pid ns) */
	char comm[32];
	uint32_t personality;
	struct proc_rlimit rlim[PROC_NR_RLIMITS];
	struct task_itimer itimer[3];	/* ITIMER_REAL, VIRTUAL, PROF */
	int32_t thp_disabled, dumpable, pdeath_sig, child_subreaper, no_new_privs;
	struct kernel_sigaction sigact[TASK_NR_SIGNALS + 1]; /* by signal number */
	int32_t oom_score_adj;
	uint32_t loginuid;		/* (uint32_t)-1: never set */
	uint32_t membarrier;		/* MEMBARRIER_CMD_REGISTER_* bits */
	uint32_t coredump_filter;
	char cgroups[TASK_CGROUP_TEXT];	/* /proc/PID/cgroup as read */
	unsigned nr_shared_pending;	/* signals queued for the whole process */
	uint8_t shared_pending[TRACEE_MAX_PENDING][TRACEE_SIGINFO_SIZE]; /* oldest first */
	struct timers_dump timers;	/* POSIX timers (dump-timers.c) */
};

/*
 * Checks phase, from outside: oom_score_adj, loginuid and cgroups of the
 * process; the scheduling state of thread TID into S. Refuses (one line,
 * -EOPNOTSUPP) SCHED_DEADLINE and utilization clamps.
 */
int task_collect_state(struct task_dump *td, pid_t pid);
int task_collect_sched(struct thread_sched *s, pid_t pid, pid_t tid);
/*
 * Injected: the thread's TSC mode and machine-check kill policy into S;
 * refuses (one line, -EOPNOTSUPP) memory-deny-write-execute (PR_SET_MDWE).
 */
int task_collect_thread_injected(struct thread_sched *s, struct tracee *t);
/* Point the scheduling fields of a core entry at S (which must outlive it). */
struct CoreEntry;
void task_sched_to_core(const struct thread_sched *s, struct CoreEntry *e);
/* itimers, prctl state, membarrier registrations and signal dispositions, by injected syscalls. */
int task_collect_injected(struct task_dump *td, struct tracee *t);
/* comm, personality and rlimits, from outside. */
int task_collect_proc(struct task_dump *td, pid_t pid);
/*
 * The process-wide signal queue, at most MAX entries (what the threads'
 * queues left of TRACEE_MAX_PENDING); more is refused with one error line
 * (-E2BIG). Runs after injection, see core_collect_pending().
 */
int task_collect_pending(struct task_dump *td, struct tracee *t, unsigned max);
/* task-<pid>.img and sigacts-<pid>.img */
int task_write(const struct task_dump *td, struct dump_imgs *imgs);

#endif
