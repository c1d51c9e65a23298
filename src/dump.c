/*
 * dump.c - `lazarus dump`: checkpoint a process tree, each process with its
 * threads.
 *
 * The steps, in an order that matters:
 *  1. freeze: every thread of the root and of every descendant, each
 *     process's children read only once it is frozen (dump-tree.c);
 *  2. checks: what restore can take (dump_plural_supported: more than one
 *     thread or process only once restore can bring them back), per process
 *     every VMA and fd of a kind we can dump, no state we can neither
 *     restore nor leave out (dump-checks.c), nothing shared between
 *     processes that issue 7 owns, so that a refusal comes before anything
 *     is touched or written;
 *  3. per thread, registers and other state readable from outside
 *     (dump-core.c);
 *  4. injected syscalls for what only the task can tell: into each thread
 *     for its own state (sigaltstack, clear-child-tid, securebits, TSC
 *     mode), into the leader also for the process's (itimers, prctls,
 *     signal dispositions, POSIX timers, brk); one thread at a time, each with a scratch
 *     page unmapped again before the next, and a check that /proc/PID/maps
 *     is byte-identical afterwards; then the pending signals;
 *  5. per process memory (dump-mem.c), the rest of /proc and its images;
 *     then the shared memory objects, once each (dump-shmem.c), files.img
 *     and pstree.img for the tree;
 *  6. inventory.img, last: its presence means the dump is complete;
 *  7. commit: every file was written into a fresh staging directory; now
 *     they replace the previous dump in DIR, inventory.img last, and DIR is
 *     fsynced (dump-img.c), so a failure up to here leaves the previous
 *     dump whole;
 *  8. kill every process, or with leave_running let them run on.
 * Any failure removes the images written so far and resumes every thread as
 * it was frozen (a stopped process stays stopped). So does a stop signal
 * (dump-signals.c), taken at the safe points between and inside the steps
 * up to 6; after 6 the dump finishes.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "lazarus/lazarus.h"
#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-checks.h"
#include "dump-core.h"
#include "dump-delmap.h"
#include "dump-files.h"
#include "dump-img.h"
#include "dump-ipcns.h"
#include "dump-mem.h"
#include "dump-mm.h"
#include "dump-shmem.h"
#include "dump-signals.h"
#include "dump-task.h"
#include "dump-tree.h"
#include "dump-plural.h"
#include "dump-tty.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "proc.h"
#include "pstree.pb-c.h"
#include "ptrace.h"
#include "safe-file.h"
#include "sk-net.h"
#include "timens.h"

#define STATS_FILE "stats-dump.json"

struct dump_ctx {
	const struct lz_dump_opts *opts;
	pid_t pid;		 /* the root */
	struct dump_imgs imgs;
	struct dump_sig *sig;	 /* stop signals and test hooks */
	struct dump_tree tree;	 /* every process and thread, frozen */
	struct shmem_table shm;	 /* shared memory objects of the whole tree */
	struct dump_ns tree_ns;	 /* its pid and mount namespace */
	struct dump_ipcns ipc;	 /* tree_ns.ipc_own: its IPC namespace's sysctls */
	struct files_table files; /* every open file description of the tree: files.img */
	struct sk_dump_opts net;  /* sockets: --tcp-established and its network lock */
	bool test_plural;	 /* LAZARUS_TEST_DUMP_PLURAL=1 */
	struct mem_stats mem;	 /* summed over the processes */
	struct timens_clocks clocks; /* the root's MONOTONIC and BOOTTIME once frozen */
	struct {
		uint64_t start, seize, checked, injected, memory, written, released;
	} ns; /* CLOCK_MONOTONIC at the end of each phase */
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define for_each_proc(d, p)                                                                 \
	for (size_t _i = 0; _i < (d)->tree.nr && ((p) = (d)->tree.procs[_i], 1); _i++)

/* ------------------------------------------------------------ what restore can take */

enum plural { PLURAL_THREADS, PLURAL_TREES };

/*
 * The one place that says whether the images may hold more than one thread
 * of a process (PLURAL_THREADS) or more than one process, zombies and
 * stopped processes (PLURAL_TREES): only once restore can bring them back
 * (dump-plural.h), or for the tests of the dump side
 * (LAZARUS_TEST_DUMP_PLURAL=1, Documentation/testing.md).
 */
static bool dump_plural_supported(const struct dump_ctx *d, enum plural what)
{
	if (d->test_plural)
		return true;
	return what == PLURAL_THREADS ? LZ_RESTORE_THREADS : LZ_RESTORE_TREES;
}

/* The refusals of what restore cannot take yet, on the frozen tree. */
static int check_plural(const struct dump_ctx *d)
{
	const struct dump_proc *p;

	for_each_proc(d, p) {
		if (p->nr_th > 1 && !dump_plural_supported(d, PLURAL_THREADS)) {
			pr_err("process %d has %zu threads: multi-threaded processes are not "
			       "supported yet",
			       p->pid, p->nr_th);
			return -EOPNOTSUPP;
		}
	}
	if (d->tree.nr > 1 && !dump_plural_supported(d, PLURAL_TREES)) {
		pr_err("process %d has a child (pid %d): process trees are not supported yet",
		       d->pid, d->tree.procs[1]->pid);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* ------------------------------------------------------------ freeze and checks */

/* Before seizing: the root is a process, not a thread of one. */
static int check_root_tgid(pid_t pid)
{
	uint64_t tgid;
	char *text;
	int ret;

	ret = proc_read(pid, "status", &text, NULL);
	if (!ret) {
		ret = proc_parse_status_num(text, "Tgid", 10, &tgid);
		free(text);
	}
	if (ret) {
		pr_err("process %d: reading Tgid of /proc/%d/status: %s", pid, pid, strerror(-ret));
		return ret;
	}
	if (tgid != (uint64_t)pid) {
		pr_err("%d is a thread of process %" PRIu64 ": dump the process instead", pid, tgid);
		return -EINVAL;
	}
	return 0;
}

/* Before seizing: the pid exists, is not us, a process, neither dead nor stopped. */
static int check_target(struct dump_ctx *d)
{
	struct proc_stat st;
	char *text;
	int ret;

	if (d->pid == getpid()) {
		pr_err("process %d is lazarus itself", d->pid);
		return -EINVAL;
	}
	ret = proc_read(d->pid, "stat", &text, NULL);
	if (ret) {
		pr_err("process %d: %s", d->pid, strerror(ret == -ENOENT ? ESRCH : -ret));
		return ret == -ENOENT ? -ESRCH : ret;
	}
	ret = proc_parse_stat(text, &st);
	free(text);
	if (ret) {
		pr_err("process %d: cannot parse /proc/%d/stat", d->pid, d->pid);
		return ret;
	}
	if (st.state == 'Z' || st.state == 'X') {
		pr_err("process %d is a zombie (state %c): there is nothing left to dump", d->pid,
		       st.state);
		return -ESRCH;
	}
	if (st.state == 'T' && !dump_plural_supported(d, PLURAL_TREES)) {
		pr_err("process %d is stopped (state T): stopped processes are not supported yet",
		       d->pid);
		return -EBUSY;
	}
	ret = check_root_tgid(d->pid);
	return ret ? ret : dump_ns_probe(&d->tree_ns, d->pid);
}

/* The POSIX timers, checked against the process's own threads (after tree_map_pids). */
static int collect_timers(struct dump_proc *p)
{
	pid_t *tids = calloc(2 * p->nr_th + 1, sizeof(*tids));
	struct timers_ids ids = { .pid = p->pid, .vpid = p->v.pid, .nr = p->nr_th };
	int ret;

	if (!tids) {
		pr_err("process %d: %s", p->pid, strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t j = 0; j < p->nr_th; j++) {
		tids[j] = p->th[j].t.pid;
		tids[p->nr_th + j] = p->th[j].vtid;
	}
	ids.tids = tids;
	ids.vtids = tids + p->nr_th;
	ret = timers_collect(&p->task.timers, &ids);
	free(tids);
	return ret;
}

static int collect_proc_state(struct dump_ctx *d, struct dump_proc *p)
{
	int ret;

	ret = dump_check_state(p->pid, tree_has(&d->tree, p->stat.session) || d->opts->shell_job,
			       &d->tree_ns);
	if (!ret)
		ret = collect_timers(p);
	if (!ret)
		ret = task_collect_state(&p->task, p->pid);
	if (!ret)
		ret = mm_collect_vmas(&p->mm, p->pid);
	if (!ret)
		ret = files_collect(&p->files, &d->files, p->pid, &d->imgs);
	return ret;
}

/*
 * Shared memory objects of every process, each once (dump-shmem.c); the
 * content of deleted files they map, each once (dump-delmap.c).
 */
static int collect_shmem(struct dump_ctx *d)
{
	struct mm_dump **mms = calloc(d->tree.nr + 1, sizeof(*mms));
	struct dump_proc *p;
	size_t n = 0;
	int ret;

	if (!mms) {
		pr_err("%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for_each_proc(d, p)
		if (!p->zombie)
			mms[n++] = &p->mm;
	if (!d->tree_ns.ipc_own) {
		ret = shmem_collect(&d->shm, mms, n, &d->files);
	} else {
		/* Its own IPC namespace: read there, every segment of it (dump-ipcns.c). */
		ret = dump_ipcns_enter(&d->ipc, d->pid, d->tree_ns.ipc_link);
		if (!ret)
			ret = dump_ipcns_collect(&d->ipc);
		if (!ret)
			ret = shmem_collect(&d->shm, mms, n, &d->files);
		if (!ret)
			ret = shmem_collect_ns(&d->shm, d->pid);
		if (d->ipc.back >= 0) {
			int r = dump_ipcns_leave(&d->ipc);

			ret = ret ? ret : r;
		}
	}
	if (!ret)
		ret = delmap_collect(mms, n, &d->files, &d->imgs);
	free(mms);
	return ret;
}

static const struct dump_proc *proc_of(const struct dump_ctx *d, pid_t pid)
{
	const struct dump_proc *p;

	for_each_proc(d, p)
		if (p->pid == pid && !p->zombie)
			return p;
	return NULL;
}

/* An O_ASYNC owner restore can set again: a process (or group) of the tree. */
static bool owner_in_tree(const struct dump_ctx *d, const FileOwner *o)
{
	const struct dump_proc *p;

	if (o->pid_type != F_OWNER_PGRP)
		return proc_of(d, o->pid) != NULL; /* a thread's tid does not exist yet when set */
	for_each_proc(d, p)
		if (!p->zombie && p->stat.pgrp == o->pid)
			return true;
	return false;
}

/*
 * What involves the tree as a whole: owners of O_ASYNC descriptions. (POSIX
 * locks on files their process also maps are taken by the restorer blob
 * after it closed the fds it mapped them from: fd-desc.c.)
 */
static int check_files_tree(const struct dump_ctx *d)
{
	for (size_t i = 0; i < d->files.nr; i++) {
		const struct dump_file *df = &d->files.files[i];
		const FileEntry *e = df->e;

		if (e->fown && e->fown->pid && !owner_in_tree(d, e->fown)) {
			pr_err("process %d fd %d: its signal-driven I/O owner %s %d is not a "
			       "process of the dumped tree: not supported",
			       df->pid, df->fd, e->fown->pid_type == F_OWNER_PGRP ? "group" :
			       e->fown->pid_type == F_OWNER_TID ? "thread" : "process",
			       e->fown->pid);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

static int check_tree(struct dump_ctx *d)
{
	struct dump_proc *p;
	int ret;

	for_each_proc(d, p) {
		if (p->zombie)
			continue;
		ret = collect_proc_state(d, p);
		if (ret)
			return ret;
	}
	ret = collect_shmem(d);
	if (!ret)
		ret = check_files_tree(d);
	/* Then the kinds' checks across the tree (a unix socket's peer). */
	if (!ret)
		ret = files_finish(&d->files);
	return ret ? ret : dump_tty_tree(&d->tree, &d->files, d->opts->shell_job);
}

static int freeze_and_check(struct dump_ctx *d)
{
	int ret;

	ret = check_target(d);
	if (ret)
		return ret;
	d->tree.descend = true;
	d->tree.freeze_timeout_ms =
		d->opts->freeze_timeout_ms ? d->opts->freeze_timeout_ms : LZ_FREEZE_TIMEOUT_MS;
	d->tree.hooks = (struct tracee_hooks){ .stop = dsig_tracee_stop,
					       .arg = d->sig,
					       .fault = d->sig->fault,
					       .exitkill_injected = true,
					       .may_vanish = true,
					       .accept_group_stop = true };
	ret = tree_freeze(&d->tree, d->pid);
	if (!ret)
		ret = dsig_point(d->sig, "seized");
	if (ret)
		return ret;
	d->ns.seize = now_ns(CLOCK_MONOTONIC);
	ret = timens_read_clocks(d->pid, &d->clocks);
	if (ret) {
		pr_err("process %d: its clocks (/proc/%d/timens_offsets): %s", d->pid, d->pid,
		       strerror(-ret));
		return ret;
	}
	pr_info("process %d frozen in %.3f ms: %zu processes, %zu threads", d->pid,
		(d->ns.seize - d->ns.start) / 1e6, d->tree.nr, tree_nr_threads(&d->tree));
	ret = check_plural(d);
	if (!ret && d->tree_ns.root_init)
		ret = dump_ns_check_mnt(&d->tree_ns, d->pid);
	if (!ret)
		ret = tree_map_pids(&d->tree, &d->tree_ns);
	if (!ret)
		ret = check_tree(d);
	d->ns.checked = now_ns(CLOCK_MONOTONIC);
	return ret;
}

/* ------------------------------------------------------------ per-thread state */

static int collect_frozen(struct dump_ctx *d)
{
	struct dump_proc *p;

	for_each_proc(d, p) {
		for (size_t j = 0; j < p->nr_th; j++) {
			int ret = core_collect_frozen(&p->th[j].core, &p->th[j].t);

			if (ret)
				return ret;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ injection */

/* dump_check_numa_injected for the process's VMAs (not the gate VMA: no mm of its own). */
static int check_numa(struct dump_proc *p, struct tracee *t)
{
	uint64_t *addrs = calloc(p->mm.nr_vmas + 1, sizeof(*addrs));
	size_t n = 0;
	int ret;

	if (!addrs) {
		pr_err("%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->mm.nr_vmas; i++)
		if (p->mm.vmas[i].kind != VMA_KIND__VMA_VSYSCALL)
			addrs[n++] = p->mm.vmas[i].start;
	ret = dump_check_numa_injected(t, addrs, n);
	free(addrs);
	return ret;
}

/*
 * What only the thread itself can tell, by syscalls injected into it; the
 * leader (th[0]) also answers for the whole process.
 */
static int inject_thread(struct dump_ctx *d, struct dump_proc *p, struct dump_thread *th,
			 const char *maps)
{
	bool leader = th == &p->th[0];
	int ret, end;

	ret = tracee_inject_begin(&th->t, maps);
	if (!ret)
		ret = dsig_point(d->sig, "inject"); /* with a syscall injected */
	if (!ret)
		ret = core_collect_injected(&th->core, &th->t);
	if (!ret)
		ret = dsig_poll(d->sig);
	if (!ret && leader)
		ret = task_collect_injected(&p->task, &th->t);
	if (!ret && leader)
		ret = timers_collect_injected(&p->task.timers, &th->t);
	if (!ret)
		ret = task_collect_thread_injected(&th->core.sched, &th->t);
	if (!ret)
		ret = dsig_poll(d->sig);
	if (!ret && leader)
		ret = mm_collect_brk(&p->mm, &th->t);
	if (!ret && leader)
		ret = check_numa(p, &th->t);
	end = tracee_inject_end(&th->t);
	return ret ? ret : end;
}

/*
 * One thread after the other, each with its own scratch page unmapped
 * again before the next: the layout must be exactly the original one after.
 */
static int inject_proc(struct dump_ctx *d, struct dump_proc *p)
{
	char *before = NULL, *after = NULL;
	int ret;

	ret = proc_read(p->pid, "maps", &before, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/maps: %s", p->pid, p->pid, strerror(-ret));
		return ret;
	}
	for (size_t j = 0; !ret && j < p->nr_th; j++)
		ret = inject_thread(d, p, &p->th[j], before);
	if (ret)
		goto out_free;
	ret = proc_read(p->pid, "maps", &after, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/maps: %s", p->pid, p->pid, strerror(-ret));
	} else if (strcmp(before, after)) {
		pr_err("process %d: its memory map changed during syscall injection", p->pid);
		ret = -EIO;
	}
out_free:
	free(before);
	free(after);
	return ret;
}

/*
 * After injection: what arrived while a thread had every signal blocked is
 * queued too. Each thread's queue, then the process's, within one budget.
 */
static int collect_pending(struct dump_proc *p)
{
	unsigned left = TRACEE_MAX_PENDING;
	int ret;

	for (size_t j = 0; j < p->nr_th; j++) {
		struct core_dump *c = &p->th[j].core;

		ret = core_collect_pending(c, &p->th[j].t, left);
		if (ret)
			return ret;
		left -= c->nr_pending;
	}
	return task_collect_pending(&p->task, &p->th[0].t, left);
}

static int inject_all(struct dump_ctx *d)
{
	struct dump_proc *p;
	int ret;

	for_each_proc(d, p) {
		if (p->zombie)
			continue;
		ret = inject_proc(d, p);
		if (!ret)
			ret = collect_pending(p);
		if (ret)
			return ret;
	}
	return 0;
}

/* ------------------------------------------------------------ images */

/* XCR0: the xsave features this host's kernel enabled. */
static uint64_t read_xcr0(void)
{
	unsigned a, b, c, dx;
	uint32_t lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &dx) || !(c & bit_OSXSAVE))
		return 0;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static int write_inventory(struct dump_ctx *d)
{
	InventoryEntry e = INVENTORY_ENTRY__INIT;
	IpcSysctls ipc;
	ImageFile *fv, **files;
	struct utsname u;
	int ret;

	files = calloc(d->imgs.nr + 1, sizeof(*files));
	fv = calloc(d->imgs.nr + 1, sizeof(*fv));
	if (!files || !fv) {
		free(files);
		free(fv);
		pr_err("writing inventory.img: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < d->imgs.nr; i++) {
		image_file__init(&fv[i]);
		fv[i].name = d->imgs.files[i].name;
		fv[i].size = d->imgs.files[i].size;
		fv[i].crc = d->imgs.files[i].crc;
		files[i] = &fv[i];
	}
	uname(&u);
	e.format_version = LZ_IMG_FORMAT_VERSION;
	e.tool_version = (char *)LAZARUS_VERSION;
	e.root_pid = (uint32_t)d->tree.procs[0]->v.pid;
	if (d->tree_ns.root_init) {
		e.has_pid_ns = true;
		e.pid_ns = PID_NS_KIND__PIDNS_ROOT_INIT;
	}
	if (d->tree_ns.mnt_proc) {
		e.has_mnt_ns = true;
		e.mnt_ns = MNT_NS_KIND__MNTNS_PROC;
	}
	if (d->tree_ns.ipc_own) {
		e.has_ipc_ns = true;
		e.ipc_ns = IPC_NS_KIND__IPCNS_OWN;
		dump_ipcns_entry(&d->ipc, &ipc);
		e.ipc = &ipc;
		e.n_msg_queues = d->ipc.nr_msq;
		e.msg_queues = d->ipc.msq;
	}
	e.dump_time_ns = now_ns(CLOCK_REALTIME);
	e.kernel_release = u.release;
	e.arch = (char *)"x86_64";
	e.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	e.xsave_size = d->tree.procs[0]->th[0].core.xsave_size;
	e.xfeatures = read_xcr0();
	e.has_monotonic_ns = e.has_boottime_ns = true;
	e.monotonic_ns = d->clocks.monotonic_ns;
	e.boottime_ns = d->clocks.boottime_ns;
	e.n_files = d->imgs.nr;
	e.files = files;
	ret = dump_img_write_one(&d->imgs, "inventory.img", LZ_IMG_INVENTORY, &e.base);
	free(files);
	free(fv);
	return ret;
}

static void add_stats(struct mem_stats *sum, const struct mem_stats *m)
{
	sum->pages_scanned += m->pages_scanned;
	sum->pages_written += m->pages_written;
	sum->pages_zero += m->pages_zero;
	sum->pages_zero_pfn += m->pages_zero_pfn;
	sum->pages_lazy += m->pages_lazy;
	sum->nr_runs += m->nr_runs;
	sum->bytes_written += m->bytes_written;
}

static int dump_memory(struct dump_ctx *d, struct dump_proc *p)
{
	uint64_t *sp = calloc(p->nr_th + 1, sizeof(*sp));
	int ret;

	if (!sp) {
		pr_err("process %d: %s", p->pid, strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t j = 0; j < p->nr_th; j++)
		sp[j] = p->th[j].core.regs.rsp;
	ret = mem_dump(&p->mm, sp, p->nr_th, d->opts->progress, &d->imgs, &p->mem, d->sig);
	free(sp);
	return ret;
}

/* Memory, then the images of one process (files.img is the tree's: write_images). */
static int write_proc(struct dump_ctx *d, struct dump_proc *p)
{
	int ret;

	/* mm fields first: the memory dump keeps the argv/envp pages eager. */
	tree_name_images(p);
	ret = mm_collect_proc(&p->mm);
	if (!ret)
		ret = dump_memory(d, p);
	add_stats(&d->mem, &p->mem);
	if (!ret)
		ret = task_collect_proc(&p->task, p->pid);
	for (size_t j = 0; !ret && j < p->nr_th; j++)
		ret = core_write(&p->th[j].core, &d->imgs);
	if (!ret)
		ret = task_write(&p->task, &d->imgs);
	if (!ret)
		ret = mm_write(&p->mm, &d->imgs);
	return ret;
}

static int write_files_all(struct dump_ctx *d)
{
	struct files_dump **all = calloc(d->tree.nr + 1, sizeof(*all));
	struct dump_proc *p;
	size_t n = 0;
	int ret;

	if (!all) {
		pr_err("writing files.img: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for_each_proc(d, p)
		if (!p->zombie)
			all[n++] = &p->files;
	ret = files_write(&d->files, all, n, &d->imgs);
	free(all);
	return ret;
}

static int write_images(struct dump_ctx *d)
{
	struct dump_proc *p;
	int ret = 0;

	for_each_proc(d, p) {
		if (!ret && !p->zombie)
			ret = write_proc(d, p);
	}
	if (!ret)
		ret = shmem_dump(&d->shm, &d->imgs, d->sig);
	d->ns.memory = now_ns(CLOCK_MONOTONIC);
	if (!ret)
		ret = write_files_all(d);
	if (!ret)
		ret = tree_write_pstree(&d->tree, &d->imgs);
	if (!ret)
		ret = dsig_point(d->sig, "images"); /* the last moment to stop */
	if (!ret)
		ret = write_inventory(d);
	/* The previous dump in DIR stays whole until here (dump-img.c). */
	if (!ret)
		ret = dump_imgs_commit(&d->imgs);
	d->ns.written = now_ns(CLOCK_MONOTONIC);
	return ret;
}

/* ------------------------------------------------------------ stats */

static double ms(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e6 : 0.0;
}

/*
 * stats-dump.json: not an image; a failure to write it is only a warning.
 * 0600 and through an O_EXCL temporary (safe-file.h): it holds addresses.
 */
static void write_stats(struct dump_ctx *d, uint64_t end)
{
	const struct mem_stats *m = &d->mem;
	struct sf_tmp t;
	FILE *f;
	int ret;

	ret = sf_create_tmp(d->imgs.dirfd, STATS_FILE, &t);
	if (ret) {
		pr_warn("writing %s: %s", STATS_FILE, strerror(-ret));
		return;
	}
	f = fdopen(dup(t.fd), "w");
	if (!f) {
		pr_warn_perror("writing %s", STATS_FILE);
		sf_abort(d->imgs.dirfd, &t);
		return;
	}
	fprintf(f,
		"{\n  \"pid\": %d,\n  \"pages_scanned\": %" PRIu64 ",\n  \"pages_written\": %" PRIu64
		",\n  \"pages_zero\": %" PRIu64 ",\n  \"pages_zero_pfn\": %" PRIu64
		",\n  \"pages_lazy\": %" PRIu64 ",\n  \"pagemap_runs\": %" PRIu64
		",\n  \"pages_bytes\": %" PRIu64 ",\n",
		d->pid, m->pages_scanned, m->pages_written, m->pages_zero, m->pages_zero_pfn,
		m->pages_lazy, m->nr_runs, m->bytes_written);
	fprintf(f,
		"  \"freeze_ms\": %.3f,\n  \"checks_ms\": %.3f,\n  \"inject_ms\": %.3f,\n"
		"  \"memory_ms\": %.3f,\n  \"write_ms\": %.3f,\n  \"frozen_ms\": %.3f,\n"
		"  \"total_ms\": %.3f,\n  \"leave_running\": %s\n}\n",
		ms(d->ns.start, d->ns.seize), ms(d->ns.seize, d->ns.checked),
		ms(d->ns.checked, d->ns.injected), ms(d->ns.injected, d->ns.memory),
		ms(d->ns.memory, d->ns.written), ms(d->ns.seize, d->ns.released),
		ms(d->ns.start, end), d->opts->leave_running ? "true" : "false");
	ret = fflush(f) || ferror(f) ? -(errno ? errno : EIO) : 0;
	if (fclose(f) && !ret)
		ret = -errno;
	if (!ret)
		ret = sf_commit(d->imgs.dirfd, &t);
	else
		sf_abort(d->imgs.dirfd, &t);
	if (ret)
		pr_warn("writing %s: %s", STATS_FILE, strerror(-ret));
}

/* ------------------------------------------------------------ the dump */

/* Read once: the test-only switch of dump_plural_supported(). */
static bool test_plural_env(void)
{
	const char *v = getenv("LAZARUS_TEST_DUMP_PLURAL");

	return v && !strcmp(v, "1");
}

static int dump_frozen(struct dump_ctx *d)
{
	int ret;

	ret = dsig_poll(d->sig);
	if (!ret)
		ret = freeze_and_check(d);
	if (!ret)
		ret = collect_frozen(d);
	if (!ret)
		ret = inject_all(d);
	d->ns.injected = now_ns(CLOCK_MONOTONIC);
	if (!ret)
		ret = dsig_poll(d->sig);
	if (!ret)
		ret = write_images(d);
	if (ret)
		return ret;
	/* inventory.img is in place: the dump is complete, a signal no longer stops it. */
	dsig_pause(d->sig, "inventory");
	pr_info("process %d: %" PRIu64 " pages written, %" PRIu64 " zero, %" PRIu64
		" lazy, in %" PRIu64 " runs",
		d->pid, d->mem.pages_written, d->mem.pages_zero, d->mem.pages_lazy, d->mem.nr_runs);
	if (d->opts->leave_running) {
		/* Out of repair mode before the tree runs again: it may use them at once. */
		netlock_finish(d->net.lock, false);
		d->net.lock = NULL;
		ret = tree_detach(&d->tree);
	} else {
		/* Killed in repair mode, the connections close silently; the lock stays. */
		ret = tree_kill(&d->tree);
		netlock_finish(d->net.lock, true);
		d->net.lock = NULL;
	}
	d->ns.released = now_ns(CLOCK_MONOTONIC);
	return ret;
}

static void dump_fini(struct dump_ctx *d)
{
	netlock_finish(d->net.lock, false);
	tree_fini(&d->tree);
	shmem_fini(&d->shm);
	dump_ipcns_fini(&d->ipc);
	files_table_fini(&d->files);
	dump_imgs_fini(&d->imgs);
	if (d->imgs.dirfd >= 0)
		close(d->imgs.dirfd);
}

int lz_dump(const struct lz_dump_opts *opts)
{
	char why[SF_WHY_MAX];
	struct dump_sig sig;
	struct dump_ctx *d;
	int dirfd, ret, undo = 0;

	/* Before the target is touched: a directory others can write to is refused. */
	dirfd = sf_dir_open_checked(AT_FDCWD, opts->images_dir, 0, why);
	if (dirfd < 0) {
		pr_err("images directory %s: %s", opts->images_dir, why);
		return dirfd;
	}
	d = calloc(1, sizeof(*d)); /* holds PATH_MAX buffers: not for the stack */
	if (!d) {
		close(dirfd);
		pr_err("%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	d->opts = opts;
	d->files.ctx.ext_unix_sk = opts->ext_unix_sk;
	d->pid = opts->pid;
	d->test_plural = test_plural_env();
	d->ns.start = now_ns(CLOCK_MONOTONIC);
	ret = dump_imgs_init(&d->imgs, dirfd);
	if (ret) {
		close(dirfd);
		free(d);
		return ret;
	}
	dsig_begin(&sig);
	d->sig = &sig;
	d->net.tcp_established = opts->tcp_established;
	d->files.ctx.net = &d->net;
	if (opts->tcp_established) {
		char tag[40];

		snprintf(tag, sizeof(tag), "%d_%" PRIx64, d->pid, now_ns(CLOCK_REALTIME));
		if (netlock_open(&d->net.lock, tag)) {
			pr_err("%s", strerror(ENOMEM));
			dump_fini(d);
			free(d);
			dsig_end(&sig);
			return -ENOMEM;
		}
	}

	ret = dump_frozen(d);
	if (ret) {
		/* Resume the task first, then take back what was written. */
		netlock_finish(d->net.lock, false);
		d->net.lock = NULL;
		undo = tree_detach(&d->tree);
		dump_imgs_remove(&d->imgs);
	} else {
		uint64_t end = now_ns(CLOCK_MONOTONIC);

		pr_info("process %d dumped into %s in %.1f ms (frozen %.1f ms), %s", d->pid,
			opts->images_dir, ms(d->ns.start, end), ms(d->ns.seize, d->ns.released),
			opts->leave_running ? "left running" : "killed");
		write_stats(d, end);
	}
	dsig_report(&sig, d->pid, ret, undo, opts->leave_running);
	dump_fini(d);
	free(d);
	dsig_end(&sig);
	return ret;
}
