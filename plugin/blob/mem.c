/*
 * mem.c - the blob builds the target's address space: drop the old one,
 * place the vdso, map every VMA, read the pages in, then set the final
 * protections and madvise bits.
 */
#include <asm/prctl.h>
#include <asm/errno.h>
#include <linux/mman.h>

#include "blob.h"
#include "sys.h"

#define PAGE 4096UL

/*
 * Everything below TASK_SIZE but the bootstrap area goes, the old vdso and
 * vvar included (ARCH_MAP_VDSO_64 refuses while any vdso is mapped).
 * [vsyscall] lies above TASK_SIZE and is not a VMA of ours to unmap. The
 * lazarus child's rseq area goes too: the plugin unregistered it before the
 * jump, or the kernel's next cpu_id update would fault.
 */
void blob_unmap_old(struct blob *b)
{
	struct lz_blob_args *a = b->a;
	long r;

	if (a->area_start) {
		r = sys_munmap(0, a->area_start);
		if (r)
			blob_fail(b, LZ_STEP_UNMAP, r, 0, 0);
	}
	r = sys_munmap(a->area_end, LZ_BLOB_TASK_SIZE - a->area_end);
	if (r)
		blob_fail(b, LZ_STEP_UNMAP, r, 0, a->area_end);
}

/*
 * map_vdso() puts [vvar], [vvar_vclock] and [vdso] back to back from the
 * given address when it is free, which it is: the address space is empty
 * but for the bootstrap area, and the plugin kept the area off it. The
 * address is only a hint to the kernel, so check the range is now mapped.
 */
void blob_map_vdso(struct blob *b)
{
	struct lz_blob_args *a = b->a;
	unsigned char vec[64];
	long r;

	if (!a->vdso_addr)
		return;
	r = sys_arch_prctl(ARCH_MAP_VDSO_64, a->vdso_addr);
	if (r < 0)
		blob_fail(b, LZ_STEP_VDSO, r, 0, a->vdso_addr);
	if (a->vdso_len / PAGE <= sizeof(vec)) {
		r = sys_mincore(a->vdso_addr, a->vdso_len, vec);
		if (r)
			blob_fail(b, LZ_STEP_VDSO, r == -12 ? -99 /* EADDRNOTAVAIL */ : r, 1,
				  a->vdso_addr);
	}
}

/* The hugepage choice must be made before the pages are faulted in. */
static void vma_madvise(struct blob *b, uint32_t i, int before_fill)
{
	struct lz_blob_vma *v = &b->vmas[i];
	const uint32_t early = (1U << MADV_HUGEPAGE) | (1U << MADV_NOHUGEPAGE);
	uint32_t bits = v->madv & (before_fill ? early : ~early);

	for (int advice = 0; bits; advice++) {
		long r;

		if (!(bits & (1U << advice)))
			continue;
		bits &= ~(1U << advice);
		r = sys_madvise(v->start, v->end - v->start, advice);
		if (r)
			blob_report(b, LZ_MSG_WARN, LZ_STEP_MADVISE, r, (uint32_t)advice, v->start);
	}
}

#define SHM_RDONLY_ 010000
#define SHM_EXEC_ 0100000

/*
 * A SysV segment must be attached with shmat, not mmap'ed from a file: only
 * then does shmdt() find it and nattch count it. shmat maps the whole
 * segment; a VMA that is only part of it (split by mprotect or a partial
 * munmap) is attached elsewhere and its part moved into place with mremap
 * over a PROT_NONE placeholder (which keeps the kernel's choice of address
 * off the target range), the rest detached again. Protections other than
 * shmat's own are set right here: these VMAs are never filled by the blob.
 */
static void vma_shmat(struct blob *b, uint32_t i)
{
	struct lz_blob_vma *v = &b->vmas[i];
	uint64_t len = v->end - v->start, at;
	int flags = ((v->vflags & LZ_BVMA_SHM_RDONLY) ? SHM_RDONLY_ : 0) |
		    ((v->prot & PROT_EXEC) ? SHM_EXEC_ : 0);
	int got = PROT_READ | ((v->vflags & LZ_BVMA_SHM_RDONLY) ? 0 : PROT_WRITE) |
		  (v->prot & PROT_EXEC);
	long r;

	if (!v->pgoff && len == v->shm_size) {
		r = sys_shmat(v->shmid, v->start, flags);
		if (r < 0 && r > -4096)
			blob_fail(b, LZ_STEP_MAP, r, i, v->start);
		if ((uint64_t)r != v->start)
			blob_fail(b, LZ_STEP_MAP, -EEXIST, i, v->start);
	} else {
		r = sys_mmap(v->start, len, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (r < 0 && r > -4096)
			blob_fail(b, LZ_STEP_MAP, r, i, v->start);
		r = sys_shmat(v->shmid, 0, flags);
		if (r < 0 && r > -4096)
			blob_fail(b, LZ_STEP_MAP, r, i, v->start);
		at = (uint64_t)r;
		r = sys_mremap(at + v->pgoff, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, v->start);
		if (r < 0 && r > -4096)
			blob_fail(b, LZ_STEP_MAP, r, i, v->start);
		if (v->pgoff)
			sys_munmap(at, v->pgoff);
		if (v->pgoff + len < v->shm_size)
			sys_munmap(at + v->pgoff + len, v->shm_size - v->pgoff - len);
	}
	if (got != (int)v->prot) {
		r = sys_mprotect(v->start, len, (int)v->prot);
		if (r)
			blob_fail(b, LZ_STEP_PROTECT, r, i, v->start);
	}
}

/*
 * MAP_FIXED_NOREPLACE: a target VMA may never land on the bootstrap area or
 * the vdso; if the plan was wrong we fail instead of corrupting the blob.
 * VMAs with pages to read are writable until blob_finish_vmas().
 */
void blob_map_vmas(struct blob *b)
{
	for (uint32_t i = 0; i < b->a->nr_vmas; i++) {
		struct lz_blob_vma *v = &b->vmas[i];
		int prot = (int)v->prot | ((v->vflags & LZ_BVMA_FILL) ? PROT_WRITE : 0);
		long r;

		if (v->vflags & LZ_BVMA_SYSV) {
			vma_shmat(b, i);
			vma_madvise(b, i, 1);
			continue;
		}
		r = sys_mmap(v->start, v->end - v->start, prot,
			     (int)v->flags | MAP_FIXED_NOREPLACE, v->fd, v->pgoff);
		if (r < 0 && r > -4096)
			blob_fail(b, LZ_STEP_MAP, r, i, v->start);
		if ((uint64_t)r != v->start)
			blob_fail(b, LZ_STEP_MAP, -17 /* EEXIST */, i, v->start);
		vma_madvise(b, i, 1);
	}
}

/*
 * The rest of the run from DONE on, pread straight into it. The caller
 * populated it: faulting pages in one by one inside pread's copy costs more
 * than the copy (only an optimisation: pread faults them in itself).
 */
static void read_direct(struct blob *b, const struct lz_blob_run *run, uint64_t done)
{
	while (done < run->len) {
		long n = sys_pread64(b->a->pages_fd, (void *)(uintptr_t)(run->vaddr + done),
				     run->len - done, run->off + done);

		if (n == -4 /* EINTR */)
			continue;
		if (n <= 0)
			blob_fail(b, LZ_STEP_FILL, n ? n : -5 /* EIO: short file */, run->vma,
				  run->vaddr + done);
		done += (uint64_t)n;
	}
}

/* LEN bytes at OFF of the pages file into the fill buffer, all or fail. */
static void read_buf(struct blob *b, const struct lz_blob_run *run, uint64_t off, uint64_t len)
{
	uint64_t got = 0;

	while (got < len) {
		long n = sys_pread64(b->a->pages_fd, (void *)(uintptr_t)(b->a->fill_buf + got),
				     len - got, run->off + off + got);

		if (n == -4 /* EINTR */)
			continue;
		if (n <= 0)
			blob_fail(b, LZ_STEP_FILL, n ? n : -5 /* EIO: short file */, run->vma,
				  run->vaddr + off);
		got += (uint64_t)n;
	}
}

/*
 * pread through a small buffer, then process_vm_writev into the run. On a
 * guest with shadow page tables (PVM) the kernel's copy_to_user into a
 * fresh page costs a shadow fault (~4 us) on top of the one the process
 * takes on its own first access; process_vm_writev copies through the
 * kernel's mapping of the page instead: 512 MiB placed in ~0.35 s, not
 * ~2 s. Where it is refused (no CONFIG_CROSS_MEMORY_ATTACH) pread
 * straight into the run.
 */
static void run_read(struct blob *b, uint32_t idx)
{
	struct lz_blob_run *run = &b->runs[idx];
	uint64_t done = 0;

	while (done < run->len && b->self_pid > 0) {
		uint64_t len = run->len - done < b->a->fill_buf_len ? run->len - done
								    : b->a->fill_buf_len;
		uint64_t put = 0;

		/* a buffer's worth at a time: the zeroed pages are still in cache */
		sys_madvise(run->vaddr + done, len, MADV_POPULATE_WRITE);
		read_buf(b, run, done, len);
		while (put < len) {
			struct sys_iovec l = { b->a->fill_buf + put, len - put };
			struct sys_iovec r = { run->vaddr + done + put, len - put };
			long n = sys_process_vm_writev((int)b->self_pid, &l, &r);

			if (n == -4 /* EINTR */)
				continue;
			if (n <= 0 && !put && (n == -38 /* ENOSYS */ || n == -1 /* EPERM */)) {
				b->self_pid = 0; /* pread from here on */
				break;
			}
			if (n <= 0)
				blob_fail(b, LZ_STEP_FILL, n ? n : -14 /* EFAULT */, run->vma,
					  run->vaddr + done + put);
			put += (uint64_t)n;
		}
		if (put < len)
			break;
		done += len;
	}
	if (done < run->len)
		sys_madvise(run->vaddr + done, run->len - done, MADV_POPULATE_WRITE);
	read_direct(b, run, done);
	b->nr_pages += run->len / PAGE;
}

/* Private file pages that were zero at dump must not show the file again. */
void blob_fill(struct blob *b)
{
	b->self_pid = b->a->fill_buf_len ? sys_getpid() : 0;
	for (uint64_t i = 0; i < b->a->nr_runs; i++) {
		struct lz_blob_run *run = &b->runs[i];

		if (run->flags & LZ_BRUN_ZERO)
			memset((void *)(uintptr_t)run->vaddr, 0, run->len);
		else
			run_read(b, (uint32_t)i);
	}
}

/* Drop the temporary PROT_WRITE, then the madvise bits and mlock. */
void blob_finish_vmas(struct blob *b)
{
	for (uint32_t i = 0; i < b->a->nr_vmas; i++) {
		struct lz_blob_vma *v = &b->vmas[i];
		long r;

		if ((v->vflags & LZ_BVMA_FILL) && !(v->prot & PROT_WRITE)) {
			r = sys_mprotect(v->start, v->end - v->start, (int)v->prot);
			if (r)
				blob_fail(b, LZ_STEP_PROTECT, r, i, v->start);
		}
		vma_madvise(b, i, 0);
		if (v->vflags & LZ_BVMA_MLOCK) {
			r = sys_mlock(v->start, v->end - v->start);
			if (r)
				blob_report(b, LZ_MSG_WARN, LZ_STEP_MLOCK, r, i, v->start);
		}
	}
}
