/*
 * dump.c - `lazarus dump`: checkpoint one single-threaded process.
 *
 * The steps, in an order that matters:
 *  1. freeze: seize and interrupt the process (ptrace.c);
 *  2. checks: one thread, no children, every VMA and fd of a kind we can
 *     dump, no state we can neither restore nor leave out (dump-checks.c),
 *     so that a refusal comes before anything is touched or written;
 *  3. registers and other state readable from outside (dump-core.c);
 *  4. injected syscalls for what only the task can tell (sigaltstack,
 *     itimers, prctls, signal dispositions, brk), with a scratch page that is
 *     unmapped again before memory is read, and a check that /proc/PID/maps
 *     is byte-identical afterwards;
 *  5. memory (dump-mem.c), then the rest of /proc, then the other images;
 *  6. inventory.img, last: its presence means the dump is complete;
 *  7. commit: every file was written into a fresh staging directory; now
 *     they replace the previous dump in DIR, inventory.img last, and DIR is
 *     fsynced (dump-img.c), so a failure up to here leaves the previous
 *     dump whole;
 *  8. kill the process, or with leave_running let it run on.
 * Any failure removes the images written so far and resumes the process as
 * it was frozen. So does a stop signal (dump-signals.c), taken at the safe
 * points between and inside the steps up to 6; after 6 the dump finishes.
 */
#include <cpuid.h>
#include <dirent.h>
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
#include "dump-files.h"
#include "dump-img.h"
#include "dump-mem.h"
#include "dump-mm.h"
#include "dump-signals.h"
#include "dump-task.h"
#include "inventory.pb-c.h"
#include "proc.h"
#include "pstree.pb-c.h"
#include "ptrace.h"
#include "safe-file.h"

#define STATS_FILE "stats-dump.json"

struct dump_ctx {
	const struct lz_dump_opts *opts;
	pid_t pid;
	struct dump_imgs imgs;
	struct dump_sig *sig; /* stop signals and test hooks */
	struct tracee t;
	struct core_dump core;
	struct task_dump task;
	struct mm_dump mm;
	struct files_dump files;
	struct mem_stats mem;
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

/* ------------------------------------------------------------ freeze and checks */

/* Before seizing: the pid exists, is not us, and is neither dead nor stopped. */
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
	if (st.state == 'T') {
		pr_err("process %d is stopped (state T): stopped processes are not supported yet",
		       d->pid);
		return -EBUSY;
	}
	return 0;
}

static int count_threads(pid_t pid, size_t *nr)
{
	char path[64];
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir) {
		pr_perror("process %d: opening %s", pid, path);
		return -errno;
	}
	*nr = 0;
	while ((de = readdir(dir)))
		*nr += de->d_name[0] != '.';
	closedir(dir);
	return 0;
}

/*
 * Frozen, a single-threaded task can create neither threads nor children,
 * so what we see now stays true for the whole dump.
 */
static int check_tree(struct dump_ctx *d)
{
	uint64_t tgid, seccomp = 0;
	char name[64], *text;
	size_t nr = 0;
	int ret;

	ret = proc_read(d->pid, "status", &text, NULL);
	if (!ret) {
		ret = proc_parse_status_num(text, "Tgid", 10, &tgid);
		proc_parse_status_num(text, "Seccomp", 10, &seccomp); /* absent without seccomp */
		free(text);
	}
	if (ret) {
		pr_err("process %d: reading Tgid of /proc/%d/status: %s", d->pid, d->pid,
		       strerror(-ret));
		return ret;
	}
	if (tgid != (uint64_t)d->pid) {
		pr_err("%d is a thread of process %" PRIu64 ": dump the process instead", d->pid,
		       tgid);
		return -EINVAL;
	}
	/*
	 * A seccomp filter could kill the task for one of our injected
	 * syscalls, and the images have no place for it: refuse.
	 */
	if (seccomp) {
		pr_err("process %d uses seccomp (mode %" PRIu64 "): seccomp is not supported yet",
		       d->pid, seccomp);
		return -EOPNOTSUPP;
	}
	ret = count_threads(d->pid, &nr);
	if (ret)
		return ret;
	if (nr > 1) {
		pr_err("process %d has %zu threads: multi-threaded processes are not supported yet",
		       d->pid, nr);
		return -EOPNOTSUPP;
	}
	snprintf(name, sizeof(name), "task/%d/children", d->pid);
	ret = proc_read(d->pid, name, &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/%s: %s", d->pid, d->pid, name, strerror(-ret));
		return ret;
	}
	if (text[0]) {
		pr_err("process %d has a child (pid %d): process trees are not supported yet",
		       d->pid, atoi(text));
		ret = -EOPNOTSUPP;
	}
	free(text);
	return ret;
}

static int freeze_and_check(struct dump_ctx *d)
{
	int ret;

	ret = check_target(d);
	if (ret)
		return ret;
	ret = tracee_seize_hooked(&d->t, d->pid,
				  d->opts->freeze_timeout_ms ? d->opts->freeze_timeout_ms
							     : LZ_FREEZE_TIMEOUT_MS,
				  &(struct tracee_hooks){ dsig_tracee_stop, d->sig, d->sig->fault, true });
	if (!ret)
		ret = dsig_point(d->sig, "seized");
	if (ret)
		return ret;
	d->ns.seize = now_ns(CLOCK_MONOTONIC);
	pr_info("process %d frozen in %.3f ms", d->pid, (d->ns.seize - d->ns.start) / 1e6);
	ret = check_tree(d);
	if (!ret)
		ret = dump_check_state(d->pid);
	if (!ret)
		ret = task_collect_state(&d->task, d->pid);
	if (!ret)
		ret = mm_collect_vmas(&d->mm, d->pid);
	if (!ret)
		ret = files_collect(&d->files, d->pid);
	d->ns.checked = now_ns(CLOCK_MONOTONIC);
	return ret;
}

/* ------------------------------------------------------------ injection */

static int inject_all(struct dump_ctx *d)
{
	char *before = NULL, *after = NULL;
	int ret, end;

	ret = proc_read(d->pid, "maps", &before, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/maps: %s", d->pid, d->pid, strerror(-ret));
		return ret;
	}
	ret = tracee_inject_begin(&d->t, before);
	if (!ret)
		ret = dsig_point(d->sig, "inject"); /* with a syscall injected */
	if (!ret)
		ret = core_collect_injected(&d->core, &d->t);
	if (!ret)
		ret = dsig_poll(d->sig);
	if (!ret)
		ret = task_collect_injected(&d->task, &d->t);
	if (!ret)
		ret = task_collect_thread_injected(&d->core.sched, &d->t);
	if (!ret)
		ret = dsig_poll(d->sig);
	if (!ret)
		ret = mm_collect_brk(&d->mm, &d->t);
	end = tracee_inject_end(&d->t);
	ret = ret ? ret : end;
	if (ret)
		goto out_free;
	/* The scratch page is gone again: the layout must be exactly the original one. */
	ret = proc_read(d->pid, "maps", &after, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/maps: %s", d->pid, d->pid, strerror(-ret));
	} else if (strcmp(before, after)) {
		pr_err("process %d: its memory map changed during syscall injection", d->pid);
		ret = -EIO;
	}
out_free:
	free(before);
	free(after);
	return ret;
}

/* ------------------------------------------------------------ images */

static int write_pstree(struct dump_ctx *d)
{
	PstreeEntry e = PSTREE_ENTRY__INIT;
	uint32_t tid = (uint32_t)d->pid;

	e.pid = (uint32_t)d->pid;
	e.ppid = (uint32_t)d->mm.stat.ppid;
	e.pgid = (uint32_t)d->mm.stat.pgrp;
	e.sid = (uint32_t)d->mm.stat.session;
	e.n_threads = 1;
	e.threads = &tid;
	return dump_img_write_one(&d->imgs, "pstree.img", LZ_IMG_PSTREE, &e.base);
}

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
	e.root_pid = (uint32_t)d->pid;
	e.dump_time_ns = now_ns(CLOCK_REALTIME);
	e.kernel_release = u.release;
	e.arch = (char *)"x86_64";
	e.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	e.xsave_size = d->core.xsave_size;
	e.xfeatures = read_xcr0();
	e.n_files = d->imgs.nr;
	e.files = files;
	ret = dump_img_write_one(&d->imgs, "inventory.img", LZ_IMG_INVENTORY, &e.base);
	free(files);
	free(fv);
	return ret;
}

static int write_images(struct dump_ctx *d)
{
	int ret;

	/* mm fields first: the memory dump keeps the argv/envp pages eager. */
	ret = mm_collect_proc(&d->mm);
	if (ret)
		return ret;
	ret = mem_dump(&d->mm, d->core.regs.rsp, d->opts->progress, &d->imgs, &d->mem, d->sig);
	d->ns.memory = now_ns(CLOCK_MONOTONIC);
	if (!ret)
		ret = task_collect_proc(&d->task, d->pid);
	if (!ret)
		ret = core_write(&d->core, &d->imgs);
	if (!ret)
		ret = task_write(&d->task, &d->imgs);
	if (!ret)
		ret = mm_write(&d->mm, &d->imgs);
	if (!ret)
		ret = files_write(&d->files, &d->imgs);
	if (!ret)
		ret = write_pstree(d);
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

static int dump_frozen(struct dump_ctx *d)
{
	int ret;

	ret = dsig_poll(d->sig);
	if (!ret)
		ret = freeze_and_check(d);
	if (!ret)
		ret = core_collect_frozen(&d->core, &d->t);
	if (!ret)
		ret = inject_all(d);
	/* After injection: what arrived while it had every signal blocked is queued too. */
	if (!ret)
		ret = core_collect_pending(&d->core, &d->t, TRACEE_MAX_PENDING);
	if (!ret)
		ret = task_collect_pending(&d->task, &d->t,
					   TRACEE_MAX_PENDING - d->core.nr_pending);
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
	ret = d->opts->leave_running ? tracee_detach(&d->t) : tracee_kill(&d->t);
	d->ns.released = now_ns(CLOCK_MONOTONIC);
	return ret;
}

static void dump_fini(struct dump_ctx *d)
{
	core_fini(&d->core);
	mm_fini(&d->mm);
	files_fini(&d->files);
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
	d->pid = opts->pid;
	d->ns.start = now_ns(CLOCK_MONOTONIC);
	ret = dump_imgs_init(&d->imgs, dirfd);
	if (ret) {
		close(dirfd);
		free(d);
		return ret;
	}
	dsig_begin(&sig);
	d->sig = &sig;

	ret = dump_frozen(d);
	if (ret) {
		/* Resume the task first, then take back what was written. */
		undo = tracee_detach(&d->t);
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
