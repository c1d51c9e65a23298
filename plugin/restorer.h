/*
 * restorer.h - the ABI between the restore plugin (hosted C, in the lazarus
 * child) and the restorer blob (freestanding, see plugin/blob/).
 *
 * The plugin maps one "bootstrap area" at an address where neither the
 * lazarus child nor the target has anything, copies the blob there, fills in
 * a struct lz_blob_args and a signal frame, and jumps. Every pointer in the
 * args is an absolute address inside that area: the area never moves.
 *
 * The blob cannot unmap the code that issues rt_sigreturn nor the frame it
 * reads, so the whole area is left to the lazarus parent: after "OK" the
 * blob waits for one byte on the go pipe, the parent seizes it with ptrace,
 * lets it go, catches it at the exit of rt_sigreturn and unmaps the area
 * with an injected munmap (src/restore-finish.c).
 *
 * The blob reports through the status pipe with fixed-size struct lz_rst_msg
 * records (smaller than PIPE_BUF, so every write is atomic). The lazarus
 * child uses the same records for its own failures, with a text.
 *
 * Only <stdint.h>/<stddef.h>: this header is compiled freestanding too.
 */
#ifndef LZ_RESTORER_H
#define LZ_RESTORER_H

#include <stddef.h>
#include <stdint.h>

#define LZ_BLOB_ABI_VERSION 10 /* 7: shared memory VMAs (shm) or POSIX timers; 8: both;
				9: POSIX locks taken by the blob; 10: fill buffer */
#define LZ_BLOB_MAX_THREADS 1024 /* threads of one process */
#define LZ_BLOB_MAX_CPU_WORDS 128 /* affinity mask: 8192 CPUs */
#define LZ_BLOB_THREAD_STACK (32UL << 10) /* blob stack of each created thread */
#define LZ_BLOB_FILL_BUF (1UL << 20)	/* the blob reads the pages file through it */
#define LZ_BLOB_MAX_RLIMITS 16
#define LZ_BLOB_MAX_ITIMERS 3
#define LZ_BLOB_AUXV_MAX 64	/* u64 words, (type, value) pairs incl. AT_NULL */
#define LZ_BLOB_MAX_SIGINFO 256 /* pending signals, both queues together */
#define LZ_BLOB_SIGINFO_SIZE 128 /* siginfo_t of x86_64 */
#define LZ_BLOB_MAX_GROUPS 65536 /* NGROUPS_MAX of the kernel */
#define LZ_BLOB_TASK_SIZE 0x7ffffffff000ULL /* 47-bit user address space */
#define LZ_BLOB_MAX_TIMERS 4096 /* POSIX timers of one process */

/* lz_blob_vma.vflags */
#define LZ_BVMA_FILL 0x1U	/* has page runs: mapped writable until filled */
#define LZ_BVMA_LAZY 0x2U	/* lazy mode: register with the uffd after the fill */
#define LZ_BVMA_MLOCK 0x4U	/* mlock after filling (VmFlags "lo") */
#define LZ_BVMA_SYSV 0x8U	/* SysV shm: shmat(shmid) instead of mmap (fd is -1) */
#define LZ_BVMA_SHM_RDONLY 0x10U /* SysV shm: attached SHM_RDONLY (no VmFlags "mw") */

/* One target mapping, in address order. vdso/vvar/vsyscall are not here. */
struct lz_blob_vma {
	uint64_t start;
	uint64_t end;
	uint64_t pgoff;	   /* file offset in bytes */
	uint32_t prot;	   /* final PROT_* */
	uint32_t flags;	   /* MAP_* for mmap, without MAP_FIXED* */
	int32_t fd;	   /* service fd of the file, -1 for anonymous */
	uint32_t madv;	   /* (1 << MADV_x) for each madvise(MADV_x) to apply */
	uint32_t vflags;   /* LZ_BVMA_* */
	int32_t shmid;	   /* LZ_BVMA_SYSV: the segment; pgoff is the offset in it */
	uint64_t shm_size; /* LZ_BVMA_SYSV: its size, page-aligned (what shmat maps) */
};
_Static_assert(sizeof(struct lz_blob_vma) == 56, "lz_blob_vma is 56 bytes");
_Static_assert(offsetof(struct lz_blob_vma, shmid) == 44, "vma: shmid at 44");

/* lz_blob_run.flags */
#define LZ_BRUN_ZERO 0x1U /* zero the range (private file mapping), no data */

/* A contiguous run of pages inside one VMA, with its data in the pages file. */
struct lz_blob_run {
	uint64_t vaddr;
	uint64_t off;	/* offset in the pages file; unused for LZ_BRUN_ZERO */
	uint64_t len;	/* bytes, page multiple */
	uint32_t flags; /* LZ_BRUN_* */
	uint32_t vma;	/* index into the VMA array */
};
_Static_assert(sizeof(struct lz_blob_run) == 32, "lz_blob_run is 32 bytes");

struct lz_blob_rlimit {
	uint32_t resource; /* RLIMIT_* */
	uint32_t reserved;
	uint64_t cur;
	uint64_t max;
};
_Static_assert(sizeof(struct lz_blob_rlimit) == 24, "lz_blob_rlimit is 24 bytes");

/* struct itimerval as the kernel reads it, plus which. */
struct lz_blob_itimer {
	uint32_t which; /* ITIMER_* */
	uint32_t reserved;
	int64_t interval_sec;
	int64_t interval_usec;
	int64_t value_sec;
	int64_t value_usec;
};
_Static_assert(sizeof(struct lz_blob_itimer) == 40, "lz_blob_itimer is 40 bytes");

/*
 * One POSIX timer (blob/timers.c): the timer_create() arguments and the
 * relative timer_settime() value (struct itimerspec: interval first).
 */
struct lz_blob_timer {
	uint32_t id;	    /* the timer id it must get back */
	int32_t clock;	    /* CLOCK_* */
	int32_t notify;	    /* sigev_notify: SIGEV_SIGNAL, NONE, THREAD, THREAD_ID */
	int32_t signo;	    /* sigev_signo */
	int32_t tid;	    /* SIGEV_THREAD_ID: the thread signalled */
	uint32_t reserved;  /* 0 */
	uint64_t value;	    /* sigev_value */
	int64_t interval_sec;
	int64_t interval_nsec;
	int64_t value_sec;  /* 0 0: disarmed */
	int64_t value_nsec;
};
_Static_assert(sizeof(struct lz_blob_timer) == 64, "lz_blob_timer is 64 bytes");

/* lz_blob_args.timer_flags */
#define LZ_BTIMER_LINEAR 0x1U /* testing: ids the pre-6.16 way, without the prctl */

/*
 * A POSIX (fcntl) lock of the process, taken by the blob once it has closed
 * its service fds (blob/task.c): closing any fd of a file drops every POSIX
 * lock the process holds on it, and the service fds include the files the
 * process maps (sqlite maps its -shm file and locks it).
 */
struct lz_blob_lock {
	int32_t fd;	   /* the target's fd, at its number */
	uint16_t type;	   /* F_RDLCK or F_WRLCK */
	uint16_t reserved; /* 0 */
	uint64_t start;	   /* from the start of the file */
	uint64_t len;	   /* 0: to the end, however far it grows */
};
_Static_assert(sizeof(struct lz_blob_lock) == 24, "lz_blob_lock is 24 bytes");

/* struct prctl_mm_map of <linux/prctl.h>, field for field. */
struct lz_blob_mm_map {
	uint64_t start_code;
	uint64_t end_code;
	uint64_t start_data;
	uint64_t end_data;
	uint64_t start_brk;
	uint64_t brk;
	uint64_t start_stack;
	uint64_t arg_start;
	uint64_t arg_end;
	uint64_t env_start;
	uint64_t env_end;
	uint64_t auxv;	    /* address of lz_blob_args.auxv */
	uint32_t auxv_size; /* bytes */
	uint32_t exe_fd;    /* service fd of the dumped executable */
};
_Static_assert(sizeof(struct lz_blob_mm_map) == 104, "prctl_mm_map is 104 bytes");

/* A pending signal as the kernel reported it; si_signo is its first int. */
struct lz_blob_siginfo {
	uint8_t raw[LZ_BLOB_SIGINFO_SIZE];
};
_Static_assert(sizeof(struct lz_blob_siginfo) == 128, "siginfo_t is 128 bytes");

/*
 * The credentials of the thread, restored last (plugin/blob/creds.c). Ids
 * are never (uint32_t)-1: to the set*id calls that means "leave as is",
 * which would keep restore's root (plugin/args.c refuses such an image).
 */
struct lz_blob_creds {
	uint32_t uid, euid, suid, fsuid;
	uint32_t gid, egid, sgid, fsgid;
	uint64_t cap_inh; /* bit N: capability N */
	uint64_t cap_prm;
	uint64_t cap_eff;
	uint64_t cap_bnd;
	uint64_t cap_amb;
	uint64_t groups;     /* uint32_t[nr_groups], sorted as dumped */
	uint32_t nr_groups;
	uint32_t securebits; /* SECBIT_* with their locks */
	int32_t no_new_privs; /* 1: PR_SET_NO_NEW_PRIVS after the capabilities */
	int32_t reserved;     /* 0 (dumpable is the process's: lz_blob_args.dumpable) */
};
_Static_assert(sizeof(struct lz_blob_creds) == 96, "lz_blob_creds is 96 bytes");
_Static_assert(offsetof(struct lz_blob_creds, cap_inh) == 32, "creds: caps at 32");
_Static_assert(offsetof(struct lz_blob_creds, groups) == 72, "creds: groups at 72");

/* lz_rst_msg.arg of an LZ_STEP_CREDS failure: what failed. Names in restore-proc.c. */
enum lz_creds_op {
	LZ_CREDS_CAPGET,	 /* read our own capabilities */
	LZ_CREDS_CAPSET_KEEP,	 /* capset(all we have, dumped inheritable) */
	LZ_CREDS_AMBIENT,	 /* raise ambient capability addr */
	LZ_CREDS_BOUNDING,	 /* drop (or lacking: keep) bounding capability addr */
	LZ_CREDS_FIXUP,		 /* PR_SET_SECUREBITS(SECBIT_NO_SETUID_FIXUP) for the switch */
	LZ_CREDS_SETGROUPS,
	LZ_CREDS_SETRESGID,
	LZ_CREDS_SETRESUID,
	LZ_CREDS_SETFSGID,
	LZ_CREDS_SETFSUID,
	LZ_CREDS_SECUREBITS,	 /* PR_SET_SECUREBITS(dumped) */
	LZ_CREDS_CAPSET,	 /* capset(dumped) */
	LZ_CREDS_NO_NEW_PRIVS,
	LZ_CREDS_DUMPABLE,
	LZ_CREDS_CHECK,		 /* read back: not what was dumped; addr = enum lz_creds_check */
	LZ_CREDS_OP_MAX,
};

/* lz_rst_msg.addr of an LZ_CREDS_CHECK failure: what differs. */
enum lz_creds_check {
	LZ_CREDS_CHECK_UIDS,
	LZ_CREDS_CHECK_GIDS,
	LZ_CREDS_CHECK_GROUPS,
	LZ_CREDS_CHECK_CAPS,
	LZ_CREDS_CHECK_AMBIENT,
	LZ_CREDS_CHECK_BOUNDING,
	LZ_CREDS_CHECK_SECUREBITS,
	LZ_CREDS_CHECK_MAX,
};

/* lz_blob_thread.sched: which of the scheduling fields the thread sets itself. */
#define LZ_BSCHED_NICE 0x1U
#define LZ_BSCHED_POLICY 0x2U	 /* sched_policy (with SCHED_RESET_ON_FORK), sched_priority */
#define LZ_BSCHED_SLACK 0x4U	 /* timerslack_ns */
#define LZ_BSCHED_MCE 0x8U	 /* mce_kill */
#define LZ_BSCHED_TSC 0x10U	 /* tsc_mode */
#define LZ_BSCHED_AFFINITY 0x20U /* affinity[nr_affinity] */

/*
 * The state of one thread, which only the thread itself can set. The
 * leader (index 0) is the restored process's first thread; it creates the
 * others with clone3(set_tid = tid) on their own stacks in the area. Its
 * scheduling state is set by the lazarus child before the jump (sched 0).
 */
struct lz_blob_thread {
	uint32_t tid;
	uint32_t index;		  /* in lz_blob_args.threads; 0: the leader */
	uint64_t sigframe;	  /* rsp for rt_sigreturn: the ucontext */
	uint64_t stack_top;	  /* initial rsp of a created thread; 0 for the leader */
	uint64_t fs_base;	  /* rt_sigreturn does not restore the bases */
	uint64_t gs_base;
	uint64_t clear_child_tid; /* set_tid_address */
	uint64_t robust_list;	  /* set_robust_list head; 0: none */
	uint64_t robust_list_len;
	uint64_t rseq_ptr; /* 0: no rseq registered at dump */
	uint32_t rseq_len;
	uint32_t rseq_sig;
	uint32_t pending_first; /* its own pending signals: lz_blob_args.pending[first, */
	uint32_t nr_pending;	/* first + nr) */
	uint32_t sched;		/* LZ_BSCHED_* */
	int32_t nice;
	uint32_t sched_policy; /* SCHED_* | SCHED_RESET_ON_FORK */
	uint32_t sched_priority;
	uint64_t timerslack_ns;
	uint32_t tsc_mode;
	int32_t mce_kill;
	uint64_t affinity; /* uint64_t[nr_affinity] */
	uint32_t nr_affinity;
	uint32_t reserved; /* 0 */
	char comm[16];	   /* PR_SET_NAME, NUL-terminated; "": leave */
	struct lz_blob_creds creds;
	uint32_t seccomp_mode;	/* 0 none, 1 strict, 2 filter (blob/seccomp.c) */
	uint32_t nr_seccomp;	/* filter mode: struct lz_blob_seccomp[nr_seccomp] */
	uint64_t seccomp;	/* oldest first */
};
_Static_assert(offsetof(struct lz_blob_thread, pending_first) == 80, "thread: pending at 80");
_Static_assert(offsetof(struct lz_blob_thread, affinity) == 120, "thread: affinity at 120");
_Static_assert(offsetof(struct lz_blob_thread, creds) == 152, "thread: creds at 152");
_Static_assert(offsetof(struct lz_blob_thread, seccomp_mode) == 248, "thread: seccomp at 248");
_Static_assert(sizeof(struct lz_blob_thread) == 264, "lz_blob_thread is 264 bytes");

/* One seccomp filter of a thread: a struct sock_filter[len] in the area. */
struct lz_blob_seccomp {
	uint64_t prog;
	uint32_t len;	/* instructions, 8 bytes each */
	uint32_t flags; /* SECCOMP_FILTER_FLAG_* */
};
_Static_assert(sizeof(struct lz_blob_seccomp) == 16, "lz_blob_seccomp is 16 bytes");

struct lz_blob_args {
	uint32_t abi_version; /* LZ_BLOB_ABI_VERSION */
	uint32_t size;	      /* sizeof(struct lz_blob_args) */

	uint64_t area_start; /* the bootstrap area: kept through the unmap, */
	uint64_t area_end;   /* unmapped by the lazarus parent after rt_sigreturn */
	uint64_t threads;    /* struct lz_blob_thread[nr_threads], the leader first */

	int32_t status_fd; /* pipe to the lazarus parent */
	int32_t pages_fd;  /* pages-<pid>.img */
	int32_t uffd;	   /* lazy mode: userfaultfd; -1 in eager mode */
	uint32_t nr_vmas;
	uint64_t vmas;	   /* struct lz_blob_vma[nr_vmas] */
	uint64_t runs;	   /* struct lz_blob_run[nr_runs] */
	uint64_t nr_runs;
	uint64_t close_fds; /* int32_t[nr_close_fds]: service fds to close */
	uint32_t nr_close_fds;

	uint32_t nr_rlimits;
	struct lz_blob_rlimit rlimits[LZ_BLOB_MAX_RLIMITS];
	uint32_t nr_itimers;
	uint32_t reserved0;
	struct lz_blob_itimer itimers[LZ_BLOB_MAX_ITIMERS];

	uint64_t vdso_addr; /* dumped [vvar] start: ARCH_MAP_VDSO_64 there; 0: none */
	uint64_t vdso_len;  /* [vvar] + [vvar_vclock] + [vdso] bytes */

	struct lz_blob_mm_map mm;
	uint64_t auxv[LZ_BLOB_AUXV_MAX];

	uint32_t nr_threads;
	/*
	 * Written by the blob's threads (futex words): how many threads have
	 * restored their own state, and 1 once the leader was let go by the
	 * lazarus parent (then every thread leaves through rt_sigreturn).
	 */
	uint32_t nr_ready;
	uint32_t go;
	int32_t dumpable; /* PR_SET_DUMPABLE once every thread has its ids; <0: leave */

	uint64_t t_child_ns; /* CLOCK_MONOTONIC at child start, echoed in OK */
	uint32_t fault_step; /* testing: fail this enum lz_rst_step with EIO; 0 none */
	int32_t pdeath_sig;  /* PR_SET_PDEATHSIG once the final parent is known */
	int32_t release_fd;  /* -d: one byte lets the helper exit; -1 without -d */
	int32_t helper_pid;  /* -d: the helper, our parent until released */
	int32_t go_fd;	     /* go pipe: one byte once the parent traces us; EOF: it gave up */
	uint32_t fault_thread; /* testing: the thread (index) that fails fault_step */

	/*
	 * Signals pending at dump time, re-queued just before the release:
	 * each thread's own queue (lz_blob_thread.pending_first, nr_pending)
	 * by that thread, then [nr_pending, nr_pending + nr_shared_pending)
	 * for the process, by the leader.
	 */
	uint32_t nr_pending; /* all threads' together */
	uint32_t nr_shared_pending;
	struct lz_blob_siginfo pending[LZ_BLOB_MAX_SIGINFO];

	uint32_t nr_timers;   /* POSIX timers, in id order (blob/timers.c) */
	uint32_t timer_flags; /* LZ_BTIMER_* */
	uint64_t timers;    /* struct lz_blob_timer[nr_timers] */

	uint32_t nr_locks;  /* POSIX locks, after closing the service fds */
	uint32_t reserved1; /* 0 */
	uint64_t locks;	    /* struct lz_blob_lock[nr_locks] */

	uint64_t fill_buf;     /* LZ_BLOB_FILL_BUF bytes in the area (blob/mem.c) */
	uint64_t fill_buf_len; /* its length; 0: pread straight into the mapping */
};
_Static_assert(offsetof(struct lz_blob_args, vmas) == 48, "args: vmas at 48");
_Static_assert(offsetof(struct lz_blob_args, rlimits) == 88, "args: rlimits at 88");
_Static_assert(offsetof(struct lz_blob_args, nr_threads) == 1232, "args: nr_threads at 1232");
_Static_assert(offsetof(struct lz_blob_args, go_fd) == 1272, "args: go_fd at 1272");
_Static_assert(offsetof(struct lz_blob_args, pending) == 1288, "args: pending at 1288");
_Static_assert(offsetof(struct lz_blob_args, nr_timers) == 34056, "args: timers at 34056");
_Static_assert(offsetof(struct lz_blob_args, locks) == 34080, "args: locks at 34080");
_Static_assert(offsetof(struct lz_blob_args, fill_buf) == 34088, "args: fill_buf at 34088");
_Static_assert(sizeof(struct lz_blob_args) == 34104, "args: 34104 bytes");
_Static_assert(sizeof(struct lz_blob_args) % 8 == 0, "args: 8-byte multiple");

/* Status records on the pipe. */
#define LZ_RST_MSG_MAGIC 0x4d54534cU /* "LSTM" */

enum lz_rst_msg_type {
	LZ_MSG_OK = 1,	 /* restored; addr = bootstrap area, arg = its length in pages.
			    The process waits on its go pipe for the parent's ptrace */
	LZ_MSG_WARN = 2, /* something was not restored exactly; continuing */
	LZ_MSG_FAIL = 3, /* restore failed; the process exits */
	LZ_MSG_UFFD = 4, /* lazy mode: arg = our uffd's fd number, addr = its features;
			    the process waits for one byte on its go pipe */
};

/* What the child or the blob was doing. Names in restore-proc.c. */
enum lz_rst_step {
	LZ_STEP_CHILD = 1, /* lazarus child (libc): text says it all */
	LZ_STEP_ABI,
	LZ_STEP_UNMAP,
	LZ_STEP_VDSO,
	LZ_STEP_MAP,
	LZ_STEP_MADVISE,
	LZ_STEP_FILL,
	LZ_STEP_PROTECT,
	LZ_STEP_MM,
	LZ_STEP_ROBUST,
	LZ_STEP_RSEQ,
	LZ_STEP_TLS,
	LZ_STEP_ITIMER,
	LZ_STEP_RLIMIT,
	LZ_STEP_CLOSE,
	LZ_STEP_MLOCK,
	LZ_STEP_RELEASE,
	LZ_STEP_UFFD,
	LZ_STEP_TRACER, /* after OK: wait on the go pipe for the parent */
	LZ_STEP_SIGQUEUE, /* re-queue a pending signal: arg = its index, addr = signal */
	LZ_STEP_CREDS,	  /* credentials: arg = enum lz_creds_op, addr = its detail */
	LZ_STEP_CLONE,	  /* create a thread: arg = its index, addr = its tid */
	LZ_STEP_SCHED,	  /* a thread's scheduling state: arg = enum lz_sched_op */
	LZ_STEP_BARRIER,  /* wait until every thread restored itself: arg = threads ready */
	LZ_STEP_TIMER,	  /* POSIX timers: arg = enum lz_timer_op, addr = timer id | got << 32 */
	LZ_STEP_LOCK,	  /* take a POSIX lock: arg = its fd, addr = its start */
	LZ_STEP_MAX,
};

/* lz_rst_msg.arg of an LZ_STEP_SCHED failure. Names in restore-proc.c. */
enum lz_sched_op {
	LZ_SCHED_AFFINITY,
	LZ_SCHED_NICE,
	LZ_SCHED_POLICY,
	LZ_SCHED_SLACK,
	LZ_SCHED_MCE,
	LZ_SCHED_TSC,
	LZ_SCHED_OP_MAX,
};

/* lz_rst_msg.arg of an LZ_STEP_TIMER failure. Names in restore-proc.c. */
enum lz_timer_op {
	LZ_TIMER_CREATE,  /* timer_create */
	LZ_TIMER_ID,	  /* the kernel gave another id: addr >> 32 */
	LZ_TIMER_SETTIME, /* timer_settime */
	LZ_TIMER_PRCTL,	  /* PR_TIMER_CREATE_RESTORE_IDS */
	LZ_TIMER_GAPS,	  /* without it: too many ids to skip */
	LZ_TIMER_OP_MAX,
};

#define LZ_RST_TEXT_MAX 188
#define LZ_RST_ARG_FAULT 0xffffffffU /* arg of a failure made by LAZARUS_FAULT_BLOB */

struct lz_rst_msg {
	uint32_t magic;	   /* LZ_RST_MSG_MAGIC */
	uint16_t type;	   /* enum lz_rst_msg_type */
	uint16_t step;	   /* enum lz_rst_step */
	int32_t err;	   /* -errno, 0 if none */
	uint32_t arg;	   /* step detail: VMA index, RLIMIT_*, ITIMER_*, enum lz_creds_op */
	uint64_t addr;	   /* step detail: an address */
	uint64_t t_ns[4];  /* OK: child start, blob entry, memory done, done */
	uint64_t nr_pages; /* OK: pages read from the pages file */
	uint32_t tid;	   /* the thread that failed; 0: the process as a whole */
	char text[LZ_RST_TEXT_MAX]; /* child messages: the whole line */
};
_Static_assert(sizeof(struct lz_rst_msg) == 256, "lz_rst_msg is 256 bytes");

#endif
