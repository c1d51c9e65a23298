/*
 * blob.h - what the restorer blob's files share. Everything is hidden and
 * position independent; the only entry point is lz_blob_entry (entry.c).
 */
#ifndef LZ_BLOB_H
#define LZ_BLOB_H

#include "restorer.h"

/* Per-run state of the blob: lives on the blob stack. */
struct blob {
	struct lz_blob_args *a;
	struct lz_blob_thread *t; /* the calling thread's state */
	struct lz_blob_vma *vmas;
	struct lz_blob_run *runs;
	uint64_t nr_pages; /* pages read from the pages file */
	long self_pid;	   /* blob_fill: process_vm_writev to ourselves; 0: pread direct */
	uint64_t t_entry;
	uint64_t t_mem;
};

/* Tell the parent; never fails (a dead parent is not our problem here). */
void blob_report(struct blob *b, int type, int step, long err, uint32_t arg, uint64_t addr);
/* The thread's seccomp mode and filters, once traced (seccomp.c). */
void blob_restore_seccomp(const struct lz_blob_thread *t);

/* Report a failure and exit_group: the process never runs half-restored. */
__attribute__((noreturn)) void blob_fail(struct blob *b, int step, long err, uint32_t arg,
					 uint64_t addr);
uint64_t blob_now_ns(void);

/* mem.c */
void blob_unmap_old(struct blob *b);
void blob_map_vdso(struct blob *b);
void blob_map_vmas(struct blob *b);
void blob_fill(struct blob *b);
void blob_finish_vmas(struct blob *b);

/* thread.c */
void blob_clone_threads(struct blob *b);
/* The per-thread steps, the barrier; the leader returns, the others leave. */
void blob_thread_restore(struct blob *b);
__attribute__((noreturn)) void blob_sigreturn_when_go(struct blob *b);
void blob_let_threads_go(struct blob *b);
/* Fail step ID here if the fault hook (LAZARUS_FAULT_BLOB) names it. */
void blob_fault_point(struct blob *b, int id);

/* lazy.c */
void blob_register_lazy(struct blob *b);

/* task.c */
void blob_restore_mm(struct blob *b);
/* The calling thread's pointers: clear tid, robust list, rseq, fs/gs base. */
void blob_restore_thread(struct blob *b);
void blob_restore_itimers(struct blob *b);
void blob_restore_rlimits(struct blob *b);
void blob_release(struct blob *b);
void blob_close_fds(struct blob *b);
void blob_take_locks(struct blob *b);
void blob_wait_tracer(struct blob *b);

/* creds.c: the calling thread's; dumpable (per process) once all did theirs. */
void blob_restore_creds(struct blob *b);
void blob_restore_dumpable(struct blob *b);

/* signal.c: the calling thread's own queue; the leader's also the process's. */
void blob_queue_own_signals(struct blob *b);
void blob_queue_signals(struct blob *b);

/* timers.c: POSIX timers with their ids once every thread exists; armed last. */
void blob_create_timers(struct blob *b);
void blob_arm_timers(struct blob *b);

/* finish.c: rt_sigreturn with the frame at `frame`. */
__attribute__((noreturn)) void lz_blob_finish(uint64_t frame);

/* util.c: the compiler may emit calls to these. */
void *memset(void *s, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

#endif
