/*
 * restorer.c - set up the bootstrap area and enter the restorer blob.
 *
 * Area layout (one anonymous mapping, never moved):
 *
 *   [ blob stack | blob code | signal frames | args, arrays | thread stacks | fill buffer ]
 *
 * One signal frame per thread, the leader's first; one stack per created
 * thread (the leader runs on the blob stack). Code and the frames are made
 * read+exec once written; the args (the threads' futex words among them)
 * and the thread stacks stay writable. Nothing of it is unmapped from inside: the code issuing
 * rt_sigreturn and the frame it reads must exist at that moment. The lazarus
 * parent unmaps the whole area once rt_sigreturn is done (restore-finish.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compiler.h"
#include "plugin.h"
#include "restorer-blob.h"

#define BLOB_STACK_SIZE (64UL << 10)

struct area_plan {
	size_t code_off;   /* blob bytes */
	size_t frame_off;  /* signal frames, right after the blob, 64-aligned each */
	size_t args_off;   /* page after the frames: stays writable */
	size_t stacks_off; /* page after the args: created threads' stacks */
	size_t buf_off;	   /* the blob's buffer for the pages file */
	size_t total;
};

static size_t frame_span(const CoreEntry *c)
{
	return ALIGN_UP(plg_sigframe_size(c), 64);
}

static void area_plan(struct area_plan *p, const struct plg_images *im, const struct plg_fds *fds)
{
	size_t frames = 0;

	for (size_t i = 0; i < im->nr_threads; i++)
		frames += frame_span(im->cores[i]);
	p->code_off = BLOB_STACK_SIZE;
	p->frame_off = ALIGN_UP(p->code_off + sizeof(restorer_blob), 64);
	p->args_off = ALIGN_UP(p->frame_off + frames, LZ_PAGE_SIZE);
	p->stacks_off = ALIGN_UP(p->args_off + sizeof(struct lz_blob_args) + plg_args_extra(im, fds),
				 LZ_PAGE_SIZE);
	p->buf_off = p->stacks_off + (im->nr_threads - 1) * LZ_BLOB_THREAD_STACK;
	p->total = p->buf_off + LZ_BLOB_FILL_BUF;
}

/* Each thread's frame, and each created thread's stack. */
static void place_threads(struct lz_blob_args *a, uint8_t *base, const struct area_plan *ap,
			  const struct plg_images *im)
{
	struct lz_blob_thread *t = plg_args_threads(a);
	size_t frame = ap->frame_off;

	for (size_t i = 0; i < im->nr_threads; i++) {
		t[i].sigframe = plg_build_sigframe(base + frame, im->cores[i], im->xfeatures);
		frame += frame_span(im->cores[i]);
		if (i)
			t[i].stack_top = a->area_start + ap->stacks_off + i * LZ_BLOB_THREAD_STACK;
	}
}

/*
 * Fault injection for tests: LAZARUS_FAULT_BLOB=<step> makes the blob fail
 * that step with EIO, after everything before it really happened. A step
 * every thread takes fails in the last thread (the leader if it is alone).
 */
static uint32_t fault_step(void)
{
	static const char *const names[LZ_STEP_MAX] = {
		[LZ_STEP_UNMAP] = "unmap",   [LZ_STEP_VDSO] = "vdso",	  [LZ_STEP_MAP] = "map",
		[LZ_STEP_FILL] = "fill",     [LZ_STEP_PROTECT] = "protect", [LZ_STEP_MM] = "mm",
		[LZ_STEP_ROBUST] = "thread", [LZ_STEP_ITIMER] = "itimer", [LZ_STEP_RLIMIT] = "rlimit",
		[LZ_STEP_CLOSE] = "close",   [LZ_STEP_SIGQUEUE] = "sigqueue", [LZ_STEP_CREDS] = "creds",
		[LZ_STEP_CLONE] = "clone",   [LZ_STEP_SCHED] = "sched",	  [LZ_STEP_BARRIER] = "barrier",
		[LZ_STEP_TIMER] = "timer",   [LZ_STEP_LOCK] = "lock",
	};
	const char *want = getenv("LAZARUS_FAULT_BLOB");

	for (uint32_t i = 0; want && i < LZ_STEP_MAX; i++)
		if (names[i] && !strcmp(names[i], want))
			return i;
	return 0;
}

int plg_prepare(struct plg_restore *p, const struct plg_images *im, const struct plg_fds *fds,
		uint64_t t_child_ns, char *why, size_t len)
{
	struct area_plan ap;
	struct lz_blob_args *a;
	uint8_t *base;
	uint64_t addr;
	int ret;

	if (!im->nr_threads || im->nr_threads > LZ_BLOB_MAX_THREADS) {
		snprintf(why, len, "%zu threads, at most %d can be restored", im->nr_threads,
			 LZ_BLOB_MAX_THREADS);
		return -E2BIG;
	}
	area_plan(&ap, im, fds);
	ret = plg_find_hole(im->mm, ap.total, &addr, why, len);
	if (ret)
		return ret;
	base = mmap((void *)(uintptr_t)addr, ap.total, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (base == MAP_FAILED || (uintptr_t)base != addr) {
		ret = base == MAP_FAILED ? -errno : -EEXIST;
		snprintf(why, len, "map the restorer area at %#" PRIx64 ": %s", addr, strerror(-ret));
		if (base != MAP_FAILED)
			munmap(base, ap.total);
		return ret;
	}
	memcpy(base + ap.code_off, restorer_blob, sizeof(restorer_blob));

	a = (struct lz_blob_args *)(base + ap.args_off);
	a->area_start = addr;
	a->area_end = addr + ap.total;
	a->t_child_ns = t_child_ns;
	a->fault_step = fault_step();
	a->fill_buf = addr + ap.buf_off;
	/* Testing: LAZARUS_TEST_FILL_PREAD=1 takes the way of kernels without process_vm_writev. */
	a->fill_buf_len = getenv("LAZARUS_TEST_FILL_PREAD") ? 0 : LZ_BLOB_FILL_BUF;
	/* Testing: LAZARUS_TEST_TIMERS_LINEAR=1 takes the way of kernels before 6.16. */
	if (getenv("LAZARUS_TEST_TIMERS_LINEAR"))
		a->timer_flags |= LZ_BTIMER_LINEAR;
	ret = plg_build_args(a, (uint8_t *)(a + 1), ap.total - ap.args_off - sizeof(*a), im, fds,
			     &p->nr_data_pages, why, len);
	if (ret)
		goto out_unmap;
	place_threads(a, base, &ap, im);
	a->fault_thread = (uint32_t)im->nr_threads - 1; /* per-thread steps: the last one fails */

	if (mprotect(base + ap.code_off, ap.args_off - ap.code_off, PROT_READ | PROT_EXEC)) {
		ret = -errno;
		snprintf(why, len, "mprotect the restorer: %s", strerror(errno));
		goto out_unmap;
	}
	p->area = addr;
	p->area_len = ap.total;
	p->stack_top = addr + BLOB_STACK_SIZE;
	p->entry = addr + ap.code_off + LZ_BLOB_ENTRY_OFF;
	p->args = a;
	return 0;

out_unmap:
	munmap(base, ap.total);
	return ret;
}

/*
 * glibc registered an rseq area in this thread's TLS, and fork/clone3 kept
 * the registration. The blob unmaps the TLS; the kernel would then fault on
 * its next cpu_id update and kill us with SIGSEGV. The kernel wants the
 * length used at registration: glibc 2.35/2.36 register 32 bytes but later
 * versions export a smaller __rseq_size, so try both.
 */
/*
 * Whether this thread has an rseq area registered at all: registering
 * another one fails (EINVAL) if it has; if it had none, ours is taken
 * and dropped again. A thread made with CLONE_VM inherits no registration
 * (the -d helper, restore-proc.c), nor does what it clones.
 */
static bool rseq_registered(void)
{
	static struct rseq probe __attribute__((aligned(32)));

	if (syscall(SYS_rseq, &probe, 32, 0, RSEQ_SIG))
		return true;
	syscall(SYS_rseq, &probe, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
	return false;
}

static int unregister_glibc_rseq(char *why, size_t len)
{
	const unsigned int lens[] = { __rseq_size, 32 };
	void *area;

	if (__rseq_size == 0)
		return 0; /* glibc did not register one */
	area = (char *)__builtin_thread_pointer() + __rseq_offset;
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		if (syscall(SYS_rseq, area, lens[i], RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0)
			return 0;
		if (errno != EINVAL)
			break;
	}
	if (errno == EINVAL && !rseq_registered())
		return 0; /* cloned from a CLONE_VM -d helper: the kernel kept none */
	snprintf(why, len, "unregister glibc's rseq: %s", strerror(errno));
	return -errno;
}

int plg_jump(struct plg_restore *p, char *why, size_t len)
{
	int ret = unregister_glibc_rseq(why, len);

	if (ret)
		return ret;
	/* From here on: no libc, no return. The blob reports on the pipe. */
	__asm__ volatile("mov %[sp], %%rsp\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "call *%[entry]\n\t"
			 "ud2"
			 :
			 : [sp] "r"(p->stack_top), [entry] "r"(p->entry), "D"(p->args)
			 : "memory");
	__builtin_unreachable();
}
