/*
 * restore.c - `lazarus restore`: verify the images, create the process tree
 * with its pids, let every process restore itself, wait for every "OK",
 * release them all, write stats.
 *
 * A tree (pstree.img): lazarus creates the root; every process creates its
 * own children (restore-child.c), and lazarus holds a pidfd of each from
 * then on, so that a failure anywhere kills exactly the tree
 * (rst_tree_abort). Each process has its own status and go pipes, its own
 * userfaultfd in lazy mode (lazy_hand_over once per process).
 *
 * The pieces: restore-images.c/restore-verify.c (everything is checked
 * before anything is created), restore-proc.c (clone3 with the pid, the
 * status pipe), restore-child.c (fds, session, handlers, fs in the new
 * process), plugin/ (bootstrap area, blob arguments, signal frame) and
 * plugin/blob/ (memory, thread state, rt_sigreturn).
 *
 * Lazy mode (--lazy-pages): before anything is created, connect to the
 * lazy-pages daemon of the work dir (lazy-client.c starts one when none
 * listens). The restored process opens its own userfaultfd; we take a copy
 * with pidfd_getfd, hand it to the daemon with the ranges the blob will
 * register, and only then let the process go on. Once it is in place,
 * "finished" starts the daemon's background fill.
 *
 * Before anything is read, restore checks whose images these are
 * (restore-trust.h: root's, its own user's, or --trust-images-of's only).
 *
 * Either mode ends the same way: the blob says "OK" and waits; we trace it
 * through its rt_sigreturn, unmap its bootstrap area from outside and
 * detach (restore-finish.c), so no trace of the restorer is left.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/syscall.h>

#define LOG_PREFIX "restore: "
#include "lazarus/lazarus.h"
#include "lazy-client.h"
#include "log.h"
#include "plugin.h"
#include "proc.h"
#include "restore-fds.h"
#include "restore-images.h"
#include "restore-ipcns.h"
#include "restore-netns.h"
#include "restore-proc.h"
#include "restore-shmem.h"
#include "restore-tty.h"
#include "restore-trust.h"
#include "restore-verify.h"
#include "safe-file.h"
#include "sk-net.h"
#include "uffd.h"

#define STATS_RESTORE "stats-restore.json"

struct restore_ctx {
	const struct lz_restore_opts *opts;
	struct rst_trust trust;	    /* whose images are read */
	struct rst_images im;
	struct rst_proc *procs;	    /* one per im.tasks entry, same order; procs[0] the root */
	size_t nr_procs;
	struct rst_chan *chans;	    /* every process's pipes, same order */
	struct uffd_kinfo ki;	    /* lazy: probed once */
	struct lazy_client *lazy;   /* lazy: connection to the daemon */
	struct rst_init init;	    /* --pidns: the namespace's init */
	int netns_old;		    /* --netns: lazarus's own network namespace; -1 */
	int ipcns_old;		    /* IPCNS_OWN: lazarus's own IPC namespace; -1 */
	struct rst_fstore fstore;   /* every open file description, until the tree has it */
	uint64_t t_start;  /* lz_restore entered */
	uint64_t t_loaded; /* images verified */
	uint64_t t_ready;  /* OK received */
	uint64_t t_resumed; /* detached from it: it runs on without the restorer */
	uint64_t t_done;   /* lazy: the daemon was told "finished" */
};

static double ms(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e6 : 0.0;
}

/* Data pages, VMAs, page runs and fds of every process of the dump. */
struct dump_sizes {
	uint64_t data_pages;
	size_t vmas, runs, fds;
};

static struct dump_sizes dump_sizes(const struct rst_images *im)
{
	struct dump_sizes z = { 0 };

	for (size_t i = 0; i < im->nr_tasks; i++) {
		const struct rst_task *t = &im->tasks[i];

		z.data_pages += t->pm_head ? t->pm_head->nr_data_pages : 0;
		z.vmas += t->mm ? t->mm->n_vmas : 0;
		z.runs += t->nr_pm;
		z.fds += t->nr_fdinfo;
	}
	return z;
}

/*
 * stats-restore.json in the work dir: times per phase and pages restored.
 * Created under the rules of safe-file.h (checked directory, O_EXCL
 * temporary, 0600: it holds addresses); a failure is only a warning.
 */
static void write_stats(const struct restore_ctx *c)
{
	const char *dir = c->opts->work_dir ? c->opts->work_dir : c->opts->images_dir;
	const struct rst_proc *root = &c->procs[0];
	const uint64_t *t = root->ok.t_ns; /* child start, blob entry, memory done, done */
	struct dump_sizes z = dump_sizes(&c->im);
	uint64_t nr_pages = 0;
	unsigned nr_warnings = 0;
	char why[SF_WHY_MAX];
	struct sf_tmp tmp;
	int dfd, ret;
	FILE *f;

	for (size_t i = 0; i < c->nr_procs; i++) {
		nr_pages += c->procs[i].ok.nr_pages;
		nr_warnings += c->procs[i].nr_warnings;
	}
	dfd = sf_dir_open_checked(AT_FDCWD, dir, 0, why);
	if (dfd < 0) {
		pr_warn("not writing %s/" STATS_RESTORE ": %s", dir, why);
		return;
	}
	ret = sf_create_tmp(dfd, STATS_RESTORE, &tmp);
	f = ret ? NULL : fdopen(dup(tmp.fd), "w");
	if (!f) {
		pr_warn("cannot write %s/" STATS_RESTORE ": %s", dir, strerror(ret ? -ret : errno));
		goto out_abort;
	}
	fprintf(f,
		"{\n  \"pid\": %u,\n  \"detached\": %s,\n  \"lazy\": %s,\n"
		"  \"verify_ms\": %.3f,\n  \"create_ms\": %.3f,\n  \"prepare_ms\": %.3f,\n"
		"  \"memory_ms\": %.3f,\n  \"finish_ms\": %.3f,\n  \"unmap_ms\": %.3f,\n"
		"  \"unmap_ptrace_stops\": %u,\n  \"total_ms\": %.3f,\n"
		"  \"vmas\": %zu,\n  \"pages_restored\": %" PRIu64 ",\n"
		"  \"bytes_restored\": %" PRIu64 ",\n  \"image_data_pages\": %" PRIu64 ",\n"
		"  \"warnings\": %u,\n  \"vm_hwm_kib\": %" PRIu64 "\n}\n",
		c->im.tasks[0].pid, c->opts->detach ? "true" : "false", c->opts->lazy_pages ? "true" : "false",
		ms(c->t_start, c->t_loaded),
		ms(root->t_clone, t[0]), ms(t[0], t[1]), ms(t[1], t[2]), ms(t[2], t[3]),
		ms(c->t_ready, c->t_resumed), root->nr_stops, ms(c->t_start, c->t_done),
		z.vmas, nr_pages, nr_pages * 4096, z.data_pages, nr_warnings, proc_self_hwm_kib());
	ret = fflush(f) || ferror(f) ? -(errno ? errno : EIO) : 0;
	if (fclose(f) && !ret)
		ret = -errno;
	/* Figures, not data: after a crash the old file, none or an empty one
	 * is as good; no fsync of the file nor of the directory before restore
	 * returns (milliseconds each on a disk). */
	tmp.no_sync = true;
	if (!ret)
		ret = sf_commit(dfd, &tmp);
	if (ret)
		pr_warn("cannot write %s/" STATS_RESTORE ": %s", dir, strerror(-ret));
out_abort:
	sf_abort(dfd, &tmp); /* nothing left to do after a commit */
	close(dfd);
}

static int lazy_connect(struct restore_ctx *c)
{
	struct lazy_client_opts lo = {
		.images_dir = c->opts->images_dir,
		.work_dir = c->opts->work_dir,
		.spawn = true,
		.dump_id = &c->im.id,
		.trust_images_of = c->opts->trust_images_of,
		.log_level = log_get_level() > LOG_INFO ? log_get_level() : 0,
	};
	int ret;

	uffd_probe(&c->ki);
	if (!c->ki.usable) {
		pr_err("--lazy-pages: userfaultfd is not usable here: %s", strerror(-c->ki.err));
		return c->ki.err ? c->ki.err : -ENOSYS;
	}
	if ((c->ki.features & UFFD_LAZY_REQUIRED) != UFFD_LAZY_REQUIRED) {
		pr_err("--lazy-pages: this kernel's userfaultfd lacks the fork/remap/remove/unmap events");
		return -EOPNOTSUPP;
	}
	ret = lazy_client_connect(&lo, &c->lazy);
	if (ret) {
		pr_err("--lazy-pages: %s", c->lazy ? lazy_client_error(c->lazy) : strerror(-ret));
		lazy_client_close(c->lazy);
		c->lazy = NULL;
		return ret;
	}
	pr_info("lazy-pages daemon %d serves this restore", (int)lazy_client_daemon_pid(c->lazy));
	return 0;
}

/* rst_uffd_cb: the restored process's uffd goes to the daemon. */
static int lazy_hand_over(void *ctx, struct rst_proc *p, int fd, uint64_t features)
{
	struct restore_ctx *c = ctx;
	struct plg_range *pr = NULL;
	struct lz_lazy_range *lr = NULL;
	uint32_t nr = 0;
	int pidfd, uffd = -1, ret;

	pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (pidfd < 0 && errno == ESRCH)
		return -ESRCH; /* it failed and exited: its own record says why */
	if (pidfd < 0) {
		pr_perror("pidfd_open %d", p->pid);
		return -errno;
	}
	uffd = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (uffd < 0) {
		ret = -errno;
		if (ret != -ESRCH)
			pr_perror("pidfd_getfd: userfaultfd %d of process %d", fd, p->pid);
		goto out_close;
	}
	ret = plg_lazy_ranges(p->t->mm, p->t->pm, p->t->nr_pm, &pr, &nr);
	if (!ret)
		ret = rst_shmem_lazy_ranges(&c->im, p->t->mm, &pr, &nr);
	if (ret) {
		pr_err("lazy ranges: %s", strerror(-ret));
		goto out_close;
	}
	lr = calloc(nr ? nr : 1, sizeof(*lr));
	if (!lr) {
		ret = -ENOMEM;
		pr_err("lazy ranges: %s", strerror(-ret));
		goto out_free;
	}
	for (uint32_t i = 0; i < nr; i++)
		lr[i] = (struct lz_lazy_range){ .start = pr[i].start, .len = pr[i].end - pr[i].start };
	struct lazy_client_proc lp = {
		.pid = p->pid,
		.img_id = p->t->pid,
		.uffd = uffd,
		.pidfd = pidfd,
		.features = features,
		.ranges = lr,
		.nr_ranges = nr,
	};
	ret = lazy_client_add(c->lazy, &lp);
	if (ret)
		pr_err("%s", lazy_client_error(c->lazy));
	else
		pr_info("process %d: %u lazy ranges handed to the lazy-pages daemon", p->pid, nr);
out_free:
	free(lr);
	free(pr);
out_close:
	if (uffd >= 0)
		close(uffd);
	close(pidfd);
	return ret;
}

/* The shared memory objects made empty: the daemon serves them by object. */
static int lazy_shmem_hand_over(struct restore_ctx *c)
{
	uint32_t nr;
	struct lz_lazy_shmem_obj *o = rst_shmem_lazy_objs(&c->im, &nr);
	int ret = 0;

	if (!o) {
		pr_err("out of memory");
		return -ENOMEM;
	}
	if (nr) {
		ret = lazy_client_shmem(c->lazy, o, nr);
		if (ret)
			pr_err("%s", lazy_client_error(c->lazy));
		else
			pr_info("%u shared memory objects handed to the lazy-pages daemon", nr);
	}
	free(o);
	return ret;
}

/*
 * Test hook (Documentation/testing.md, test-only): LAZARUS_TEST_PAUSE=verified
 * stops restore (SIGSTOP to itself) right after every image is verified,
 * so a test can swap an image and check nothing reads it by name again.
 */
static void test_pause(const char *where)
{
	const char *want = getenv("LAZARUS_TEST_PAUSE");

	if (!want || strcmp(want, where))
		return;
	pr_info("LAZARUS_TEST_PAUSE=%s: stopping until SIGCONT", where);
	raise(SIGSTOP);
}

/*
 * --tcp-established: the nftables tables (netlock.c) that have dropped the
 * packets of the restored connections since the dump. A failure leaves the
 * connections without traffic: a warning naming the table to delete.
 */
static void rst_release_netlock(const struct rst_images *im)
{
	char why[256];

	for (size_t i = 0; i < im->nr_files; i++) {
		const InetSkEntry *sk = im->files[i]->inet_sk;
		bool seen = false;

		if (!sk || !sk->lock_table)
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = im->files[j]->inet_sk && im->files[j]->inet_sk->lock_table &&
			       !strcmp(im->files[j]->inet_sk->lock_table, sk->lock_table);
		if (seen)
			continue;
		if (netlock_release_table(sk->lock_table, why, sizeof(why)))
			pr_warn("the network lock stays: %s; 'nft delete table inet %s' lets the "
				"connections go", why, sk->lock_table);
		else
			pr_info("network lock released (nft table inet %s)", sk->lock_table);
	}
}

/* Established connections come back only when asked (CRIU's rule). */
static int check_tcp_established(const struct rst_images *im, bool allowed)
{
	for (size_t i = 0; i < im->nr_files && !allowed; i++) {
		const InetSkEntry *sk = im->files[i]->inet_sk;
		char la[INET_ADDR_STRLEN], pa[INET_ADDR_STRLEN];

		if (!sk || sk->state != INET_SK_STATE__INET_SK_ESTABLISHED)
			continue;
		inet_addr_fmt(sk->local, la, sizeof(la));
		inet_addr_fmt(sk->peer, pa, sizeof(pa));
		pr_err("files.img: file %u: established TCP connection %s -> %s: restore with "
		       "--tcp-established", im->files[i]->id, la, pa);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int restore_run(struct restore_ctx *c, int *wait_status, int *root_pid)
{
	struct dump_sizes z;
	struct rst_proc *root;
	bool pidns;
	int ret;

	pr_info("verifying images in %s", c->opts->images_dir);
	rst_trust_init(&c->trust, c->opts->trust_images_of);
	ret = rst_images_load(&c->im, c->opts->images_dir, c->opts->lazy_pages, &c->trust);
	if (ret)
		return ret;
	c->t_loaded = rst_now_ns();
	pidns = c->opts->pidns || c->im.root_init; /* pids inside a fresh pid namespace */
	test_pause("verified");
	ret = check_tcp_established(&c->im, c->opts->tcp_established);
	if (!ret)
		ret = rst_tty_check(&c->im, c->opts->shell_job);
	if (ret)
		return ret;
	c->im.shell_job = c->opts->shell_job;
	z = dump_sizes(&c->im);
	pr_info("images of pid %u verified: %zu processes, %zu VMAs, %zu page runs, %" PRIu64
		" data pages, %zu fds",
		c->im.tasks[0].pid, c->im.nr_tasks, z.vmas, z.runs, z.data_pages, z.fds);
	c->procs = calloc(c->im.nr_tasks, sizeof(*c->procs));
	c->chans = calloc(c->im.nr_tasks, sizeof(*c->chans));
	if (!c->procs || !c->chans) {
		pr_err("out of memory");
		return -ENOMEM;
	}
	c->nr_procs = c->im.nr_tasks;
	for (size_t i = 0; i < c->nr_procs; i++)
		c->procs[i].pidfd = -1;
	root = &c->procs[0];
	/* Before any socket of the tree is created: they all belong there. */
	if (c->opts->netns) {
		ret = rst_netns_enter(c->opts->netns, &c->netns_old);
		if (ret)
			return ret;
	}

	if (c->im.root_init)
		pr_info("the root was pid 1 of its own pid namespace: restored into a fresh one%s",
			c->im.mnt_proc ? ", with a fresh mount namespace and /proc" : "");
	if (c->opts->lazy_pages) {
		/* Fail on a taken pid before a daemon is started for nothing. */
		for (size_t i = 0; i < c->im.nr_tasks && !pidns; i++)
			if (rst_pid_wait_free((pid_t)c->im.tasks[i].pid))
				return -EEXIST;
		for (size_t i = 0; i < c->im.nr_groups && !pidns; i++)
			if (rst_pid_wait_free((pid_t)c->im.groups[i].pgid))
				return -EEXIST;
		ret = lazy_connect(c);
		if (ret)
			return ret;
	}
	/*
	 * After the daemon is forked: it must not hold any process's pipe or
	 * file. The shared memory objects first: a memfd held as an fd is one
	 * of them (fd-memfd.c). The store and the objects are inherited by the
	 * root (or the -d helper, or the --pidns init) and from it by every
	 * process.
	 */
	ret = rst_tree_prepare(c->procs, c->chans, &c->im, c->opts->detach, pidns,
			       c->opts->lazy_pages ? &c->ki : NULL);
	if (!ret)
		ret = rst_verify_files(&c->im); /* after the pids: which fail first is theirs */
	if (!ret) /* the tree's own IPC namespace: its segments are made there */
		ret = rst_ipcns_enter(&c->im, &c->ipcns_old);
	if (!ret)
		ret = rst_shmem_create(&c->im);
	if (!ret)
		ret = rst_ipcns_finish(&c->im);
	if (!ret && c->lazy)
		ret = lazy_shmem_hand_over(c);
	if (!ret)
		ret = rst_fstore_open(&c->im, &c->fstore);
	if (ret)
		return ret;
	c->im.fstore = &c->fstore;
	/* The root that was pid 1 is pid 1 again: no init of ours. */
	ret = rst_tree_create(c->procs, c->chans, pidns && !c->im.root_init ? &c->init : NULL);
	rst_fstore_close(&c->fstore); /* the root has it: a pipe's EOF must not wait for us */
	if (ret)
		return ret;
	ret = rst_tree_wait_ready(c->procs, c->nr_procs, lazy_hand_over, c);
	if (ret)
		return ret;
	c->t_ready = rst_now_ns();
	ret = rst_tree_finish(c->procs, c->nr_procs);
	if (ret)
		return ret;
	rst_shmem_release(&c->im, false); /* every process holds what it maps */
	rst_ipcns_return(c->ipcns_old);	  /* the tree keeps the namespace */
	c->ipcns_old = -1;
	c->t_resumed = rst_now_ns();
	/* The tree runs: its connections may have their packets back. */
	rst_netns_return(c->netns_old);
	c->netns_old = -1;
	rst_release_netlock(&c->im);
	if (c->lazy) {
		/*
		 * The process is in place and runs on. The daemon may start its
		 * background fill.
		 */
		ret = lazy_client_finish(c->lazy);
		if (ret) {
			pr_err("%s", lazy_client_error(c->lazy));
			return ret;
		}
		lazy_client_close(c->lazy);
		c->lazy = NULL;
	}
	c->t_done = rst_now_ns();
	if (c->nr_procs > 1)
		pr_info("tree of %zu processes under %d restored in %.1f ms; it runs on",
			c->nr_procs, root->pid, ms(c->t_start, c->t_done));
	else
		pr_info("process %d restored in %.1f ms (%" PRIu64 " pages read); it runs on",
			root->pid, ms(c->t_start, c->t_done), root->ok.nr_pages);
	write_stats(c);
	if (root_pid)
		*root_pid = root->pid;
	if (c->opts->detach) {
		if (wait_status)
			*wait_status = 0;
		return 0;
	}
	if (c->init.pid)
		return rst_init_wait(&c->init, wait_status ? wait_status : &(int){ 0 });
	return rst_proc_wait_exit(root, wait_status ? wait_status : &(int){ 0 });
}

int lz_restore(const struct lz_restore_opts *opts, int *wait_status, int *root_pid)
{
	struct restore_ctx c = { .opts = opts, .t_start = rst_now_ns(),
				 .init = { .pid = 0, .pidfd = -1 }, .netns_old = -1,
				 .ipcns_old = -1 };
	int ret;

	c.im.dirfd = -1;
	c.fstore.hi = -1;
	ret = restore_run(&c, wait_status, root_pid);
	if (ret) {
		rst_tree_abort(c.procs, c.nr_procs); /* nothing of a failed restore stays behind */
		rst_init_kill(&c.init);		     /* --pidns: the namespace goes with it */
	}
	rst_shmem_release(&c.im, ret != 0); /* in the tree's IPC namespace, if it has one */
	rst_ipcns_return(c.ipcns_old);
	if (c.init.pidfd >= 0)
		close(c.init.pidfd); /* -d: the init runs on, ours until we exit */
	for (size_t i = 0; i < c.nr_procs; i++) {
		rst_proc_release(&c.procs[i]);
		if (c.procs[i].status_rd >= 0)
			close(c.procs[i].status_rd);
		if (c.procs[i].go_wr >= 0)
			close(c.procs[i].go_wr);
	}
	for (size_t i = 0; i < c.nr_procs; i++) {
		if (c.chans[i].status_wr >= 0)
			close(c.chans[i].status_wr); /* never handed to a process */
		if (c.chans[i].go_rd >= 0)
			close(c.chans[i].go_rd);
	}
	free(c.procs);
	free(c.chans);
	lazy_client_close(c.lazy); /* on failure: the daemon kills what it was given */
	if (c.netns_old >= 0)
		close(c.netns_old);
	rst_fstore_fini(&c.fstore);
	rst_images_free(&c.im);
	return ret;
}
