/*
 * args.c - turn the images into the restorer blob's argument block: the VMA
 * array, the page runs to read, the mm map with auxv, timers, rlimits,
 * the pending signals, and per thread its pointers, scheduling state and
 * credentials. See restorer.h for the layout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "compiler.h"
#include "image.h"
#include "plugin.h"

#define SCHED_RESET_ON_FORK_ 0x40000000U

static bool vma_is_mapped(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_ANON || v->kind == VMA_KIND__VMA_FILE_PRIVATE ||
	       v->kind == VMA_KIND__VMA_FILE_SHARED || v->kind == VMA_KIND__VMA_SHMEM;
}

/* A private mapping of a file or memfd: its copied-on-write pages are in the pages file. */
static bool vma_is_private_file(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_FILE_PRIVATE ||
	       (v->kind == VMA_KIND__VMA_SHMEM && !(v->flags & MAP_SHARED));
}

/*
 * extra: [vmas][runs][close fds][threads][POSIX timers][POSIX locks], then per thread
 * its groups and its affinity words (8-byte aligned each).
 */
size_t plg_args_extra(const struct plg_images *im, const struct plg_fds *fds)
{
	size_t n = im->mm->n_vmas * sizeof(struct lz_blob_vma) +
		   im->nr_pm * sizeof(struct lz_blob_run) +
		   ALIGN_UP(fds->nr_close_fds * sizeof(int32_t), 8) +
		   im->nr_threads * sizeof(struct lz_blob_thread) +
		   im->task->n_posix_timers * sizeof(struct lz_blob_timer) +
		   fds->nr_locks * sizeof(struct lz_blob_lock);

	for (size_t i = 0; i < im->nr_threads; i++) {
		const SeccompEntry *sc = im->cores[i]->seccomp;

		n += ALIGN_UP(im->cores[i]->creds->n_groups * sizeof(uint32_t), 8) +
		     im->cores[i]->n_cpu_affinity * sizeof(uint64_t);
		for (size_t j = 0; sc && j < sc->n_filters; j++)
			n += sizeof(struct lz_blob_seccomp) + ALIGN_UP(sc->filters[j]->prog.len, 8);
	}
	return n;
}

struct lz_blob_thread *plg_args_threads(struct lz_blob_args *a)
{
	return (struct lz_blob_thread *)(uintptr_t)a->threads;
}

/* LZ_MADV_* of the image -> one bit per madvise() advice value. */
static uint32_t madv_mask(uint32_t lz)
{
	static const struct {
		uint32_t lz;
		int advice;
	} map[] = {
		{ LZ_MADV_HUGEPAGE, MADV_HUGEPAGE },	 { LZ_MADV_NOHUGEPAGE, MADV_NOHUGEPAGE },
		{ LZ_MADV_DONTDUMP, MADV_DONTDUMP },	 { LZ_MADV_DONTFORK, MADV_DONTFORK },
		{ LZ_MADV_WIPEONFORK, MADV_WIPEONFORK }, { LZ_MADV_MERGEABLE, MADV_MERGEABLE },
		{ LZ_MADV_SEQUENTIAL, MADV_SEQUENTIAL }, { LZ_MADV_RANDOM, MADV_RANDOM },
	};
	uint32_t mask = 0;

	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (lz & map[i].lz)
			mask |= 1U << map[i].advice;
	return mask;
}

static void vma_fill(struct lz_blob_vma *b, const VmaEntry *v, int fd, const struct plg_fds *fds)
{
	uint32_t share = v->flags & (MAP_SHARED | MAP_PRIVATE);

	memset(b, 0, sizeof(*b));
	b->start = v->start;
	b->end = v->end;
	b->prot = v->prot & (PROT_READ | PROT_WRITE | PROT_EXEC);
	if (!share)
		share = v->kind == VMA_KIND__VMA_FILE_SHARED ? MAP_SHARED : MAP_PRIVATE;
	b->flags = share | (v->flags & (MAP_GROWSDOWN | MAP_NORESERVE));
	if (v->kind == VMA_KIND__VMA_ANON) {
		b->flags |= MAP_ANONYMOUS;
		b->fd = -1;
	} else {
		b->fd = fd;
		b->pgoff = v->pgoff;
	}
	if (v->kind == VMA_KIND__VMA_SHMEM && fds->shm_ids && v->has_shmem_id) {
		const struct plg_shm *sh = plg_shm_find(fds, v->shmem_id);

		if (sh && sh->lazy && fds->uffd >= 0)
			b->vflags |= LZ_BVMA_LAZY;

		if (sh && sh->shmid >= 0) {
			b->fd = -1;
			b->vflags |= LZ_BVMA_SYSV;
			b->shmid = sh->shmid;
			b->shm_size = sh->size;
			if (v->has_may_write && !v->may_write)
				b->vflags |= LZ_BVMA_SHM_RDONLY;
		}
	}
	b->madv = madv_mask(v->madv);
	if (v->madv & LZ_MADV_LOCKED)
		b->vflags |= LZ_BVMA_MLOCK;
}

/* idx[i]: blob VMA index of mm->vmas[i], or -1 (vdso, vvar, vsyscall). */
static uint32_t build_vmas(struct lz_blob_vma *out, int32_t *idx, const struct plg_images *im,
			   const struct plg_fds *fds)
{
	uint32_t n = 0;

	for (size_t i = 0; i < im->mm->n_vmas; i++) {
		const VmaEntry *v = im->mm->vmas[i];

		idx[i] = -1;
		if (!vma_is_mapped(v))
			continue;
		vma_fill(&out[n], v, fds->vma_fds[i], fds);
		idx[i] = (int32_t)n++;
	}
	return n;
}

/* Which pagemap entries the blob acts on, and how. */
static bool run_wanted(const VmaEntry *v, uint32_t flags, uint32_t *rflags)
{
	*rflags = 0;
	if (!vma_is_mapped(v) || v->kind == VMA_KIND__VMA_FILE_SHARED ||
	    (v->kind == VMA_KIND__VMA_SHMEM && (v->flags & MAP_SHARED)))
		return false; /* shared pages live in the file or the shmem object */
	if (flags & LZ_PE_PRESENT)
		return true;
	if ((flags & LZ_PE_ZERO) && vma_is_private_file(v)) {
		*rflags = LZ_BRUN_ZERO; /* else the file's data would show through */
		return true;
	}
	return false; /* zero pages of anonymous memory: fresh pages are zero */
}

/*
 * Runs are sorted and verified to lie inside one VMA each (restore-images.c).
 * In lazy mode the LZ_PE_LAZY runs are left to the lazy-pages daemon: their
 * VMA is registered with the userfaultfd instead of read in here.
 */
static uint64_t build_runs(struct lz_blob_run *out, struct lz_blob_vma *vmas, const int32_t *idx,
			   const struct plg_images *im, bool lazy, uint64_t *nr_data_pages)
{
	const MmEntry *mm = im->mm;
	uint64_t n = 0;
	size_t j = 0;

	*nr_data_pages = 0;
	for (size_t i = 0; i < im->nr_pm; i++) {
		const PagemapEntry *e = im->pm[i];
		uint64_t len = e->nr_pages * LZ_PAGE_SIZE, off = 0;
		uint32_t rflags;

		while (j < mm->n_vmas && mm->vmas[j]->end <= e->vaddr)
			j++;
		if (j == mm->n_vmas)
			continue;
		if (lazy && plg_run_is_lazy(mm->vmas[j], e->flags)) {
			vmas[idx[j]].vflags |= LZ_BVMA_LAZY;
			continue;
		}
		if (!run_wanted(mm->vmas[j], e->flags, &rflags))
			continue;
		if (!rflags) {
			off = LZ_PAGES_HDR_SIZE + e->data_page * LZ_PAGE_SIZE;
			*nr_data_pages += e->nr_pages;
		}
		vmas[idx[j]].vflags |= LZ_BVMA_FILL;
		if (n && out[n - 1].vma == (uint32_t)idx[j] && out[n - 1].flags == rflags &&
		    out[n - 1].vaddr + out[n - 1].len == e->vaddr &&
		    (rflags || out[n - 1].off + out[n - 1].len == off)) {
			out[n - 1].len += len;
			continue;
		}
		out[n++] = (struct lz_blob_run){ .vaddr = e->vaddr, .off = off, .len = len,
						 .flags = rflags, .vma = (uint32_t)idx[j] };
	}
	return n;
}

bool plg_run_is_lazy(const VmaEntry *v, uint32_t pe_flags)
{
	return (pe_flags & LZ_PE_LAZY) && v->kind == VMA_KIND__VMA_ANON &&
	       !(v->madv & LZ_MADV_LOCKED);
}

int plg_lazy_ranges(const MmEntry *mm, PagemapEntry *const *pm, size_t nr_pm,
		    struct plg_range **out, uint32_t *nr)
{
	struct plg_range *r = NULL;
	uint32_t n = 0;
	size_t j = 0;

	for (size_t i = 0; i < nr_pm; i++) {
		const PagemapEntry *e = pm[i];

		while (j < mm->n_vmas && mm->vmas[j]->end <= e->vaddr)
			j++;
		if (j == mm->n_vmas || !plg_run_is_lazy(mm->vmas[j], e->flags))
			continue;
		if (n && r[n - 1].start == mm->vmas[j]->start)
			continue;
		struct plg_range *nr_ = realloc(r, (n + 1) * sizeof(*r));
		if (!nr_) {
			free(r);
			return -ENOMEM;
		}
		r = nr_;
		r[n].start = mm->vmas[j]->start;
		r[n].end = mm->vmas[j]->end;
		n++;
	}
	*out = r;
	*nr = n;
	return 0;
}

/*
 * auxv as (type, value) pairs up to AT_NULL, always ending in one. More
 * than the blob's array holds is refused, never cut (dump refuses it too).
 */
static int build_mm(struct lz_blob_args *a, const MmEntry *mm, int exe_fd, char *why, size_t len)
{
	struct lz_blob_mm_map *m = &a->mm;
	size_t n = 0, words = 0;

	while (words + 1 < mm->n_auxv && mm->auxv[words])
		words += 2;
	if (words + 2 > LZ_BLOB_AUXV_MAX) {
		snprintf(why, len, "mm image: auxv of %zu words, at most %d can be restored",
			 words + 2, LZ_BLOB_AUXV_MAX);
		return -E2BIG;
	}

	*m = (struct lz_blob_mm_map){
		.start_code = mm->start_code, .end_code = mm->end_code,
		.start_data = mm->start_data, .end_data = mm->end_data,
		.start_brk = mm->start_brk,   .brk = mm->brk,
		.start_stack = mm->start_stack, .arg_start = mm->arg_start,
		.arg_end = mm->arg_end,	      .env_start = mm->env_start,
		.env_end = mm->env_end,	      .exe_fd = (uint32_t)exe_fd,
	};
	for (size_t i = 0; i + 1 < mm->n_auxv && n + 2 < LZ_BLOB_AUXV_MAX; i += 2) {
		if (mm->auxv[i] == 0)
			break;
		a->auxv[n++] = mm->auxv[i];
		a->auxv[n++] = mm->auxv[i + 1];
	}
	a->auxv[n++] = 0;
	a->auxv[n++] = 0;
	m->auxv = (uint64_t)(uintptr_t)a->auxv;
	m->auxv_size = (uint32_t)(n * sizeof(uint64_t));
	return 0;
}

static int build_task(struct lz_blob_args *a, const TaskEntry *t, char *why, size_t len)
{
	if (t->n_rlimits > LZ_BLOB_MAX_RLIMITS || t->n_itimers > LZ_BLOB_MAX_ITIMERS) {
		snprintf(why, len, "task image: %zu rlimits and %zu itimers, at most %d and %d",
			 t->n_rlimits, t->n_itimers, LZ_BLOB_MAX_RLIMITS, LZ_BLOB_MAX_ITIMERS);
		return -E2BIG;
	}
	for (size_t i = 0; i < t->n_rlimits && a->nr_rlimits < LZ_BLOB_MAX_RLIMITS; i++) {
		const RlimitEntry *r = t->rlimits[i];

		a->rlimits[a->nr_rlimits++] =
			(struct lz_blob_rlimit){ .resource = r->resource, .cur = r->cur, .max = r->max };
	}
	for (size_t i = 0; i < t->n_itimers && a->nr_itimers < LZ_BLOB_MAX_ITIMERS; i++) {
		const ItimerEntry *it = t->itimers[i];

		a->itimers[a->nr_itimers++] = (struct lz_blob_itimer){
			.which = it->which,
			.interval_sec = (int64_t)it->interval_sec,
			.interval_usec = (int64_t)it->interval_usec,
			.value_sec = (int64_t)it->value_sec,
			.value_usec = (int64_t)it->value_usec,
		};
	}
	return 0;
}

/*
 * The scheduling state a created thread sets itself (the leader's is set
 * by the lazarus child, restore-task.c). Its affinity words go to `aff`.
 */
static int build_sched(struct lz_blob_thread *t, uint64_t *aff, const CoreEntry *c, char *why,
		       size_t len)
{
	if (c->n_cpu_affinity > LZ_BLOB_MAX_CPU_WORDS) {
		snprintf(why, len, "core-%u.img: CPU affinity mask of %zu words, at most %d", c->tid,
			 c->n_cpu_affinity, LZ_BLOB_MAX_CPU_WORDS);
		return -EINVAL;
	}
	if (c->n_cpu_affinity) {
		memcpy(aff, c->cpu_affinity, c->n_cpu_affinity * sizeof(uint64_t));
		t->affinity = (uint64_t)(uintptr_t)aff;
		t->nr_affinity = (uint32_t)c->n_cpu_affinity;
		t->sched |= LZ_BSCHED_AFFINITY;
	}
	if (c->has_nice) {
		t->nice = c->nice;
		t->sched |= LZ_BSCHED_NICE;
	}
	if (c->has_sched_policy) {
		t->sched_policy = c->sched_policy | (c->sched_reset_on_fork ? SCHED_RESET_ON_FORK_ : 0);
		t->sched_priority = c->sched_priority;
		t->sched |= LZ_BSCHED_POLICY;
	}
	if (c->has_timerslack_ns) {
		t->timerslack_ns = c->timerslack_ns;
		t->sched |= LZ_BSCHED_SLACK;
	}
	if (c->has_mce_kill) {
		t->mce_kill = c->mce_kill;
		t->sched |= LZ_BSCHED_MCE;
	}
	if (c->has_tsc_mode) {
		t->tsc_mode = c->tsc_mode;
		t->sched |= LZ_BSCHED_TSC;
	}
	return 0;
}

static void build_thread(struct lz_blob_thread *t, uint32_t index, const CoreEntry *c)
{
	t->tid = c->tid;
	t->index = index;
	t->clear_child_tid = c->clear_child_tid;
	t->robust_list = c->robust_list;
	t->robust_list_len = c->robust_list_len;
	if (c->rseq && c->rseq->abi_pointer) {
		t->rseq_ptr = c->rseq->abi_pointer;
		t->rseq_len = c->rseq->abi_size;
		t->rseq_sig = c->rseq->signature;
	}
	t->fs_base = c->regs->fs_base;
	t->gs_base = c->regs->gs_base;
	if (c->comm)
		snprintf(t->comm, sizeof(t->comm), "%s", c->comm); /* the kernel keeps 15 */
}

/* One dumped siginfo: the right size and a signal the kernel would queue. */
static int siginfo_put(struct lz_blob_args *a, const ProtobufCBinaryData *d, const char *img,
		       char *why, size_t len)
{
	struct lz_blob_siginfo *si = &a->pending[a->nr_pending + a->nr_shared_pending];
	int32_t signo;

	if (d->len != LZ_BLOB_SIGINFO_SIZE) {
		snprintf(why, len, "%s: a pending signal's siginfo is %zu bytes, not %d", img,
			 d->len, LZ_BLOB_SIGINFO_SIZE);
		return -EINVAL;
	}
	memcpy(si->raw, d->data, sizeof(si->raw));
	memcpy(&signo, si->raw, sizeof(signo));
	if (signo < 1 || signo > 64) {
		snprintf(why, len, "%s: pending signal number %d out of range", img, signo);
		return -EINVAL;
	}
	return 0;
}

/* The threads' queues first, then the process's: see lz_blob_args.pending. */
static int build_pending(struct lz_blob_args *a, struct lz_blob_thread *threads,
			 const struct plg_images *im, char *why, size_t len)
{
	const TaskEntry *t = im->task;
	size_t total = t->n_shared_pending_siginfo;
	int ret = 0;

	for (size_t i = 0; i < im->nr_threads; i++)
		total += im->cores[i]->n_pending_siginfo;
	if (total > LZ_BLOB_MAX_SIGINFO) {
		snprintf(why, len, "%zu pending signals, at most %d can be restored", total,
			 LZ_BLOB_MAX_SIGINFO);
		return -E2BIG;
	}
	for (size_t i = 0; !ret && i < im->nr_threads; i++) {
		const CoreEntry *c = im->cores[i];
		char img[64];

		if (i)
			snprintf(img, sizeof(img), "core-%u.img", c->tid);
		else
			snprintf(img, sizeof(img), "core image");
		threads[i].pending_first = a->nr_pending;
		for (size_t j = 0; !ret && j < c->n_pending_siginfo; j++) {
			ret = siginfo_put(a, &c->pending_siginfo[j], img, why, len);
			threads[i].nr_pending += !ret;
			a->nr_pending += !ret;
		}
	}
	for (size_t i = 0; !ret && i < t->n_shared_pending_siginfo; i++) {
		ret = siginfo_put(a, &t->shared_pending_siginfo[i], "task image", why, len);
		a->nr_shared_pending += !ret;
	}
	return ret;
}

/*
 * An id of -1 would mean "leave it" to setresuid() and friends, i.e. keep
 * restore's root: such an image is refused, as is one with more groups than
 * the kernel allows. What the kernel itself refuses (an effective capability
 * that is not permitted...) fails in the blob, which reads everything back.
 */
static int build_creds(struct lz_blob_thread *a, uint32_t *groups, const CoreEntry *core,
		       const TaskEntry *t, char *why, size_t len)
{
	const CredsEntry *c = core->creds;
	const uint32_t ids[8] = { c->uid, c->euid, c->suid, c->fsuid,
				  c->gid, c->egid, c->sgid, c->fsgid };

	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		if (ids[i] == UINT32_MAX) {
			snprintf(why, len, "core image: credentials: %s %u is not a valid id",
				 i < 4 ? "uid" : "gid", ids[i]);
			return -EINVAL;
		}
	}
	if (c->n_groups > LZ_BLOB_MAX_GROUPS) {
		snprintf(why, len, "core image: credentials: %zu supplementary groups, at most %d",
			 c->n_groups, LZ_BLOB_MAX_GROUPS);
		return -E2BIG;
	}
	for (size_t i = 0; i < c->n_groups; i++) {
		if (c->groups[i] == UINT32_MAX) {
			snprintf(why, len, "core image: credentials: group %u is not a valid id",
				 c->groups[i]);
			return -EINVAL;
		}
		groups[i] = c->groups[i];
	}
	a->creds = (struct lz_blob_creds){
		.uid = c->uid, .euid = c->euid, .suid = c->suid, .fsuid = c->fsuid,
		.gid = c->gid, .egid = c->egid, .sgid = c->sgid, .fsgid = c->fsgid,
		.cap_inh = c->cap_inh, .cap_prm = c->cap_prm, .cap_eff = c->cap_eff,
		.cap_bnd = c->cap_bnd, .cap_amb = c->cap_amb,
		.groups = (uint64_t)(uintptr_t)groups, .nr_groups = (uint32_t)c->n_groups,
		.securebits = c->securebits,
		.no_new_privs = t->no_new_privs ? 1 : 0,
	};
	return 0;
}

/*
 * The thread's seccomp mode and filters (oldest first), put at `per`;
 * returns the bytes used there. The blob installs them after the parent
 * traces the thread with PTRACE_O_SUSPEND_SECCOMP (blob/seccomp.c), with
 * the restored credentials: a filter needs no_new_privs or CAP_SYS_ADMIN.
 */
static int build_seccomp(struct lz_blob_thread *th, uint8_t *per, size_t *used,
			 const CoreEntry *c, const TaskEntry *t, char *why, size_t len)
{
	const SeccompEntry *sc = c->seccomp;
	struct lz_blob_seccomp *f = (struct lz_blob_seccomp *)per;
	uint8_t *prog = per + (sc ? sc->n_filters : 0) * sizeof(*f);

	*used = 0;
	if (!sc)
		return 0;
	if (sc->mode != 1 && sc->mode != 2) {
		snprintf(why, len, "core image of thread %u: seccomp mode %u is not 1 or 2", c->tid,
			 sc->mode);
		return -EINVAL;
	}
	if ((sc->mode == 1) != !sc->n_filters) {
		snprintf(why, len, "core image of thread %u: seccomp mode %u with %zu filters",
			 c->tid, sc->mode, sc->n_filters);
		return -EINVAL;
	}
	if (sc->mode == 2 && !t->no_new_privs && !(c->creds->cap_eff & (1ULL << 21))) {
		snprintf(why, len,
			 "thread %u: seccomp filters without no_new_privs or CAP_SYS_ADMIN cannot be installed again",
			 c->tid);
		return -EPERM;
	}
	for (size_t j = 0; j < sc->n_filters; j++) {
		const ProtobufCBinaryData *p = &sc->filters[j]->prog;

		if (!p->len || p->len % 8 || p->len / 8 > 4096) {
			snprintf(why, len,
				 "core image of thread %u: seccomp filter %zu is %zu bytes, not 1..4096 instructions",
				 c->tid, j, p->len);
			return -EINVAL;
		}
		memcpy(prog, p->data, p->len);
		f[j] = (struct lz_blob_seccomp){ .prog = (uint64_t)(uintptr_t)prog,
						 .len = (uint32_t)(p->len / 8),
						 .flags = sc->filters[j]->flags };
		prog += ALIGN_UP(p->len, 8);
	}
	th->seccomp_mode = sc->mode;
	th->nr_seccomp = (uint32_t)sc->n_filters;
	th->seccomp = (uint64_t)(uintptr_t)f;
	*used = (size_t)(prog - per);
	return 0;
}

/* Each thread: pointers, scheduling (created threads), credentials. */
static int build_threads(struct lz_blob_args *a, struct lz_blob_thread *threads, uint8_t *per,
			 const struct plg_images *im, char *why, size_t len)
{
	int ret = 0;

	if (!im->nr_threads || im->nr_threads > LZ_BLOB_MAX_THREADS) {
		snprintf(why, len, "%zu threads, at most %d can be restored", im->nr_threads,
			 LZ_BLOB_MAX_THREADS);
		return -E2BIG;
	}
	a->threads = (uint64_t)(uintptr_t)threads;
	a->nr_threads = (uint32_t)im->nr_threads;
	for (size_t i = 0; !ret && i < im->nr_threads; i++) {
		const CoreEntry *c = im->cores[i];
		uint32_t *groups = (uint32_t *)per;

		per += ALIGN_UP(c->creds->n_groups * sizeof(uint32_t), 8);
		build_thread(&threads[i], (uint32_t)i, c);
		if (i)
			ret = build_sched(&threads[i], (uint64_t *)per, c, why, len);
		per += c->n_cpu_affinity * sizeof(uint64_t);
		if (!ret)
			ret = build_creds(&threads[i], groups, c, im->task, why, len);
		if (!ret) {
			size_t used;

			ret = build_seccomp(&threads[i], per, &used, c, im->task, why, len);
			per += used;
		}
	}
	return ret;
}

/*
 * `a` is already zeroed and has its area fields; `extra` follows it in the
 * bootstrap area and takes the VMA, run, fd and thread arrays (see
 * plg_args_extra). The threads' sigframe and stack_top are the caller's.
 */
int plg_build_args(struct lz_blob_args *a, uint8_t *extra, size_t extra_len,
		   const struct plg_images *im, const struct plg_fds *fds, uint64_t *nr_data,
		   char *why, size_t len)
{
	struct lz_blob_vma *vmas = (struct lz_blob_vma *)extra;
	struct lz_blob_run *runs = (struct lz_blob_run *)(vmas + im->mm->n_vmas);
	int32_t *close_fds = (int32_t *)(runs + im->nr_pm);
	struct lz_blob_thread *threads =
		(struct lz_blob_thread *)(close_fds + ALIGN_UP(fds->nr_close_fds, 2));
	struct lz_blob_timer *timers = (struct lz_blob_timer *)(threads + im->nr_threads);
	struct lz_blob_lock *locks = (struct lz_blob_lock *)(timers + im->task->n_posix_timers);
	uint8_t *per = (uint8_t *)(locks + fds->nr_locks);
	int32_t *idx;
	int ret;

	if (extra_len < plg_args_extra(im, fds)) {
		snprintf(why, len, "argument area too small");
		return -EINVAL;
	}
	idx = calloc(im->mm->n_vmas + 1, sizeof(*idx));
	if (!idx) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	a->abi_version = LZ_BLOB_ABI_VERSION;
	a->size = sizeof(*a);
	a->status_fd = fds->status_fd;
	a->pages_fd = fds->pages_fd;
	a->uffd = fds->uffd;
	a->release_fd = fds->release_fd;
	a->go_fd = fds->go_fd;
	a->helper_pid = fds->helper_pid;
	a->pdeath_sig = im->task->pdeath_sig;
	a->dumpable = im->task->dumpable;
	a->nr_vmas = build_vmas(vmas, idx, im, fds);
	a->vmas = (uint64_t)(uintptr_t)vmas;
	a->nr_runs = build_runs(runs, vmas, idx, im, fds->uffd >= 0, nr_data);
	a->runs = (uint64_t)(uintptr_t)runs;
	free(idx);
	for (unsigned i = 0; i < fds->nr_close_fds; i++)
		close_fds[i] = fds->close_fds[i];
	a->close_fds = (uint64_t)(uintptr_t)close_fds;
	a->nr_close_fds = fds->nr_close_fds;
	if (fds->nr_locks)
		memcpy(locks, fds->locks, fds->nr_locks * sizeof(*locks));
	a->locks = (uint64_t)(uintptr_t)locks;
	a->nr_locks = fds->nr_locks;
	plg_vdso_range(im->mm, &a->vdso_addr, &a->vdso_len);
	ret = build_mm(a, im->mm, fds->exe_fd, why, len);
	if (!ret)
		ret = build_task(a, im->task, why, len);
	if (!ret)
		ret = build_threads(a, threads, per, im, why, len);
	if (!ret)
		ret = plg_build_timers(a, timers, im, why, len);
	return ret ? ret : build_pending(a, threads, im, why, len);
}
