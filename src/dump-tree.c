/*
 * dump-tree.c - freeze a process tree thread by thread and let it go.
 *
 * Threads: a running thread can make new threads and children, a frozen one
 * cannot. So the threads of a process are seized round after round, each
 * round seizing what /proc/PID/task lists and was not seized yet, until a
 * round finds nothing new: then every thread is frozen and the list cannot
 * change any more (a thread of ours cannot exit either while it is stopped).
 * A thread that is gone before it could be seized was never part of it.
 *
 * Children: only once all threads of a process are frozen are its children
 * read (/proc/PID/task/TID/children of every thread), so that none made
 * after the read exists; each is frozen in turn (breadth first, so parents
 * come before children in pstree order). A child that exits meanwhile is
 * a zombie as long as its frozen parent cannot reap it, and is taken as one;
 * one that is gone (autoreaped) was never part of the tree.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-tree.h"
#include "pstree.pb-c.h"

#define KCMP_VM 1	       /* include/uapi/linux/kcmp.h */
#define FREEZE_ROUNDS_MAX 1000 /* rounds of new threads tolerated while freezing */

static int read_stat(pid_t pid, struct proc_stat *st)
{
	char *text;
	int ret;

	ret = proc_read(pid, "stat", &text, NULL);
	if (ret)
		return ret;
	ret = proc_parse_stat(text, st);
	free(text);
	if (ret)
		pr_err("process %d: cannot parse /proc/%d/stat", pid, pid);
	return ret;
}

/* The tids of /proc/PID/task into *tids (malloc'd). */
static int list_tids(pid_t pid, pid_t **tids, size_t *nr)
{
	size_t cap = 0;
	char path[64];
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	*tids = NULL;
	*nr = 0;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (*nr == cap) {
			pid_t *n = realloc(*tids, (cap = cap ? 2 * cap : 16) * sizeof(**tids));

			if (!n) {
				closedir(dir);
				return -ENOMEM;
			}
			*tids = n;
		}
		(*tids)[(*nr)++] = atoi(de->d_name);
	}
	closedir(dir);
	return 0;
}

static bool proc_has_thread(const struct dump_proc *p, pid_t tid)
{
	for (size_t i = 0; i < p->nr_th; i++)
		if (p->th[i].t.pid == tid)
			return true;
	return false;
}

static struct dump_thread *add_thread(struct dump_proc *p)
{
	if (p->nr_th == p->cap_th) {
		size_t cap = p->cap_th ? 2 * p->cap_th : 4;
		struct dump_thread *n = realloc(p->th, cap * sizeof(*n));

		if (!n)
			return NULL;
		p->th = n;
		p->cap_th = cap;
	}
	memset(&p->th[p->nr_th], 0, sizeof(p->th[0]));
	return &p->th[p->nr_th++];
}

/* Seize TID into a new thread slot; *gone when it exited first (not an error). */
static int seize_thread(struct dump_tree *tr, struct dump_proc *p, pid_t tid, bool *gone)
{
	struct dump_thread *th = add_thread(p);
	int ret;

	*gone = false;
	if (!th) {
		pr_err("process %d: %s", p->pid, strerror(ENOMEM));
		return -ENOMEM;
	}
	ret = tracee_seize_hooked(&th->t, tid, tr->freeze_timeout_ms, &tr->hooks);
	if (ret) {
		p->nr_th--; /* the slot holds no tracee */
		*gone = ret == -ESRCH && tid != p->pid;
	}
	return *gone ? 0 : ret;
}

/* One round: seize the tids not seized yet; *more if there was any. */
static int seize_round(struct dump_tree *tr, struct dump_proc *p, bool *more)
{
	size_t nr;
	pid_t *tids;
	int ret;

	*more = false;
	ret = list_tids(p->pid, &tids, &nr);
	if (ret) {
		pr_err("process %d: listing /proc/%d/task: %s", p->pid, p->pid, strerror(-ret));
		return ret;
	}
	for (size_t i = 0; !ret && i < nr; i++) {
		bool gone;

		if (proc_has_thread(p, tids[i]))
			continue;
		ret = seize_thread(tr, p, tids[i], &gone);
		*more = true;
	}
	free(tids);
	return ret;
}

/* The leader exited but other threads run on: no thread to inject through as the process. */
static int check_leader(struct dump_proc *p)
{
	if (p->stat.state != 'Z' || p->stat.num_threads <= 1)
		return 0;
	pr_err("process %d: its main thread has exited while %ld other threads run on: not "
	       "supported yet",
	       p->pid, p->stat.num_threads - 1);
	return -EOPNOTSUPP;
}

/*
 * A vfork parent sleeps (state D) until its child execs or exits, where no
 * ptrace interrupt reaches it, and shares its memory with that child:
 * refuse it by name rather than wait for the freeze timeout. Its children
 * can be read while it runs: sleeping, it makes none.
 */
static int check_vfork(const struct dump_proc *p)
{
	pid_t *tids;
	size_t nr;
	int ret;

	if (p->stat.state != 'D')
		return 0;
	ret = list_tids(p->pid, &tids, &nr);
	if (ret)
		return 0; /* the freeze will say what is wrong */
	for (size_t i = 0; !ret && i < nr; i++) {
		char name[64], *text, *s, *end;

		snprintf(name, sizeof(name), "task/%d/children", tids[i]);
		if (proc_read(p->pid, name, &text, NULL))
			continue;
		for (s = text; !ret; s = end) {
			long child = strtol(s, &end, 10);

			if (end == s)
				break;
			if (syscall(SYS_kcmp, p->pid, (pid_t)child, KCMP_VM, 0, 0) != 0)
				continue;
			pr_err("process %d is a vfork parent waiting for its child %ld (they share "
			       "one address space): not supported yet",
			       p->pid, child);
			ret = -EOPNOTSUPP;
		}
		free(text);
	}
	free(tids);
	return ret;
}

static int freeze_threads(struct dump_tree *tr, struct dump_proc *p)
{
	bool more = true, gone;
	int ret;

	/* The leader first: it is th[0] and, stopped, it cannot exec meanwhile. */
	ret = seize_thread(tr, p, p->pid, &gone);
	for (int round = 0; !ret && more; round++) {
		if (round == FREEZE_ROUNDS_MAX) {
			pr_err("process %d keeps making threads: gave up freezing it after %d "
			       "rounds",
			       p->pid, FREEZE_ROUNDS_MAX);
			return -EAGAIN;
		}
		ret = seize_round(tr, p, &more);
	}
	if (ret)
		return ret;
	p->stopped = p->th[0].t.group_stop_sig != 0;
	p->stop_sig = p->th[0].t.group_stop_sig;
	return read_stat(p->pid, &p->stat);
}

static struct dump_proc *add_proc(struct dump_tree *tr, pid_t pid)
{
	struct dump_proc *p;

	if (tr->nr == tr->cap) {
		size_t cap = tr->cap ? 2 * tr->cap : 8;
		struct dump_proc **n = realloc(tr->procs, cap * sizeof(*n));

		if (!n)
			return NULL;
		tr->procs = n;
		tr->cap = cap;
	}
	p = calloc(1, sizeof(*p)); /* task_dump is large: not for an array that moves */
	if (!p)
		return NULL;
	p->pid = pid;
	p->files.pid = p->mm.pid = p->task.pid = pid;
	tr->procs[tr->nr++] = p;
	return p;
}

/*
 * Freeze one process: a zombie as it is (nothing to seize), else every
 * thread. *gone when a descendant vanished before it could be frozen.
 */
static int freeze_proc(struct dump_tree *tr, struct dump_proc *p, bool *gone)
{
	int ret;

	*gone = false;
	ret = read_stat(p->pid, &p->stat);
	if (ret == -ENOENT && p != tr->procs[0]) {
		*gone = true;
		return 0;
	}
	if (ret) {
		if (ret != -EINVAL)
			pr_err("process %d: %s", p->pid, strerror(ret == -ENOENT ? ESRCH : -ret));
		return ret == -ENOENT ? -ESRCH : ret;
	}
	ret = check_leader(p);
	if (ret)
		return ret;
	if (p->stat.state == 'Z' && p != tr->procs[0]) {
		p->zombie = true;
		return 0;
	}
	/*
	 * Not for the root: there the freeze timeout says it (and lets an
	 * operator wait for the child with --freeze-timeout).
	 */
	ret = p == tr->procs[0] ? 0 : check_vfork(p);
	if (!ret)
		ret = freeze_threads(tr, p);
	if (ret == -ESRCH && p != tr->procs[0] && !read_stat(p->pid, &p->stat) &&
	    p->stat.state == 'Z') {
		/* It exited as we came: the zombie it became is what its parent will see. */
		p->zombie = true;
		return 0;
	}
	return ret;
}

/* Every child of every thread of P, appended to the tree (not yet frozen). */
static int add_children(struct dump_tree *tr, struct dump_proc *p)
{
	for (size_t i = 0; i < p->nr_th; i++) {
		char name[64], *text, *s, *end;
		int ret;

		snprintf(name, sizeof(name), "task/%d/children", p->th[i].t.pid);
		ret = proc_read(p->pid, name, &text, NULL);
		if (ret) {
			pr_err("process %d: reading /proc/%d/%s: %s", p->pid, p->pid, name,
			       strerror(-ret));
			return ret;
		}
		for (s = text;; s = end) {
			long child = strtol(s, &end, 10);

			if (end == s)
				break;
			if (!tree_has(tr, (pid_t)child) && !add_proc(tr, (pid_t)child)) {
				free(text);
				pr_err("process %d: %s", p->pid, strerror(ENOMEM));
				return -ENOMEM;
			}
		}
		free(text);
	}
	return 0;
}

static void drop_proc(struct dump_tree *tr, size_t i)
{
	free(tr->procs[i]->th);
	free(tr->procs[i]);
	memmove(&tr->procs[i], &tr->procs[i + 1], (tr->nr - i - 1) * sizeof(tr->procs[0]));
	tr->nr--;
}

int tree_freeze(struct dump_tree *tr, pid_t root)
{
	if (!add_proc(tr, root)) {
		pr_err("process %d: %s", root, strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < tr->nr;) {
		struct dump_proc *p = tr->procs[i];
		bool gone;
		int ret;

		ret = freeze_proc(tr, p, &gone);
		if (!ret && gone) {
			drop_proc(tr, i);
			continue;
		}
		if (!ret && tr->descend && !p->zombie)
			ret = add_children(tr, p);
		if (ret)
			return ret;
		i++;
	}
	return 0;
}

bool tree_has(const struct dump_tree *tr, pid_t pid)
{
	for (size_t i = 0; i < tr->nr; i++)
		if (tr->procs[i]->pid == pid)
			return true;
	return false;
}

size_t tree_nr_threads(const struct dump_tree *tr)
{
	size_t n = 0;

	for (size_t i = 0; i < tr->nr; i++)
		n += tr->procs[i]->nr_th;
	return n;
}

int tree_detach(struct dump_tree *tr)
{
	int ret = 0;

	for (size_t i = 0; i < tr->nr; i++) {
		struct dump_proc *p = tr->procs[i];

		for (size_t j = 0; j < p->nr_th; j++) {
			int r = tracee_detach(&p->th[j].t);

			ret = ret ? ret : r;
		}
	}
	return ret;
}

int tree_kill(struct dump_tree *tr)
{
	int ret = 0;

	for (size_t i = 0; i < tr->nr; i++) {
		struct dump_proc *p = tr->procs[i];

		if (!p->nr_th)
			continue; /* a zombie: its parent dies, someone else reaps it */
		if (kill(p->pid, SIGKILL) < 0) {
			pr_perror("process %d: kill", p->pid);
			ret = ret ? ret : -errno;
		}
	}
	/*
	 * The leader's exit is reported last, once its other threads are
	 * reaped. Children before their parents: pid 1 of a pid namespace
	 * exits only once every other process of it is reaped, which a traced
	 * one is only after we waited for it.
	 */
	for (size_t i = tr->nr; i-- > 0;) {
		struct dump_proc *p = tr->procs[i];

		for (size_t j = p->nr_th; j-- > 0;)
			tracee_reap(&p->th[j].t);
	}
	return ret;
}

static const struct dump_proc *tree_find(const struct dump_tree *tr, pid_t pid)
{
	for (size_t i = 0; i < tr->nr; i++)
		if (tr->procs[i]->pid == pid)
			return tr->procs[i];
	return NULL;
}

/* A group or session led from outside the pid namespace has no id in it. */
static int check_vids(const struct dump_proc *p)
{
	const char *what = !p->v.sid ? "session" : !p->v.pgid ? "process group" : NULL;

	if (!what)
		return 0;
	pr_err("process %d: its %s %d is led from outside its pid namespace: not supported "
	       "(start the namespace's init with setsid)",
	       p->pid, what, what[0] == 's' ? p->stat.session : p->stat.pgrp);
	return -EOPNOTSUPP;
}

static int map_proc(struct dump_tree *tr, struct dump_proc *p, const struct dump_ns *ns)
{
	const struct dump_proc *q = tree_find(tr, p->stat.ppid);
	int ret;

	ret = dump_ns_vids(ns, p->pid, p->pid, &p->v);
	if (ret)
		return ret;
	if (!ns->root_init) {
		p->v.pgid = p->stat.pgrp;
		p->v.sid = p->stat.session;
	}
	ret = check_vids(p);
	/* The root's parent is outside the tree: its pid there, or none (0) inside. */
	p->vppid = q ? q->v.pid : ns->root_init ? 0 : p->stat.ppid;
	for (size_t j = 0; !ret && j < p->nr_th; j++) {
		struct dump_vids tv;

		ret = dump_ns_vids(ns, p->pid, p->th[j].t.pid, &tv);
		p->th[j].vtid = tv.pid;
	}
	return ret;
}

static const struct dump_proc *tree_find_v(const struct dump_tree *tr, pid_t vpid)
{
	for (size_t i = 0; i < tr->nr; i++)
		if (tr->procs[i]->v.pid == vpid)
			return tr->procs[i];
	return NULL;
}

/*
 * Sessions and groups as restore can build them (restore-images.c,
 * link_tree): refused here, while the tree still runs, rather than after
 * the dump killed it. A process leads its session or is in its parent's;
 * it leads its group, is in its parent's, or in one whose leader is a
 * process of the tree in the same session, or whose leader exited (a
 * helper holds its pid at restore) in a session led by the tree.
 */
static int check_links(const struct dump_tree *tr, const struct dump_proc *p)
{
	const struct dump_proc *q = tree_find(tr, p->stat.ppid), *g, *s;

	if (p == tr->procs[0] || !q)
		return 0;
	if (p->v.sid != p->v.pid && p->v.sid != q->v.sid) {
		pr_err("process %d is in session %d, its parent %d in session %d: not supported "
		       "yet",
		       p->pid, p->stat.session, q->pid, q->stat.session);
		return -EOPNOTSUPP;
	}
	if (p->v.pgid == p->v.pid || p->v.pgid == q->v.pgid)
		return 0;
	g = tree_find_v(tr, p->v.pgid);
	if (g && g->v.pgid == g->v.pid && g->v.sid == p->v.sid)
		return 0;
	/* Its leader exited: a helper of its session's leader makes it again. */
	s = tree_find_v(tr, p->v.sid);
	if (!g && s && s->v.sid == s->v.pid && !s->zombie)
		return 0;
	if (!g)
		pr_err("process %d is in process group %d, whose leader has exited or is not in "
		       "the tree, in a session not led by a process of the tree: not supported "
		       "yet",
		       p->pid, p->stat.pgrp);
	else
		pr_err("process %d is in process group %d, whose leader is not in its session: "
		       "not supported yet",
		       p->pid, p->stat.pgrp);
	return -EOPNOTSUPP;
}

int tree_map_pids(struct dump_tree *tr, const struct dump_ns *ns)
{
	for (size_t i = 0; i < tr->nr; i++) {
		int ret = map_proc(tr, tr->procs[i], ns);

		if (ret)
			return ret;
	}
	for (size_t i = 0; i < tr->nr; i++) {
		int ret = check_links(tr, tr->procs[i]);

		if (ret)
			return ret;
	}
	if (ns->root_init && tr->procs[0]->v.pid != 1) {
		pr_err("process %d: pid %d inside its namespace, no longer its init",
		       tr->procs[0]->pid, tr->procs[0]->v.pid);
		return -EAGAIN;
	}
	return 0;
}

#define SIGEV_THREAD_ID_ 4 /* glibc hides it */

/*
 * Once, before the images are written. A SIGEV_THREAD_ID timer's target
 * came from /proc/PID/timers, in our pid namespace: the images want the
 * thread's tid inside the tree's (dump-timers.c checked it is one of P's).
 */
void tree_name_images(struct dump_proc *p)
{
	struct timers_dump *td = &p->task.timers;

	p->task.img_pid = p->mm.img_pid = p->files.img_pid = p->v.pid;
	for (size_t j = 0; j < p->nr_th; j++)
		p->th[j].core.img_tid = p->th[j].vtid;
	for (size_t i = 0; i < td->nr; i++) {
		struct proc_timer *t = &td->t[i];

		for (size_t j = 0; t->notify == SIGEV_THREAD_ID_ && j < p->nr_th; j++)
			if (p->th[j].t.pid == t->target) {
				t->target = p->th[j].vtid;
				break;
			}
	}
}

static void pstree_entry(const struct dump_proc *p, PstreeEntry *e, uint32_t *tids)
{
	pstree_entry__init(e);
	e->pid = (uint32_t)p->v.pid;
	e->ppid = (uint32_t)p->vppid;
	e->pgid = (uint32_t)p->v.pgid;
	e->sid = (uint32_t)p->v.sid;
	for (size_t j = 0; j < p->nr_th; j++)
		tids[j] = (uint32_t)p->th[j].vtid;
	e->n_threads = p->nr_th;
	e->threads = tids;
	if (p->zombie) {
		e->has_zombie = e->has_exit_status = true;
		e->zombie = true;
		e->exit_status = p->stat.exit_code;
	}
	if (p->stopped) {
		e->has_stopped = e->has_stop_signal = true;
		e->stopped = true;
		e->stop_signal = (uint32_t)p->stop_sig;
	}
}

int tree_write_pstree(const struct dump_tree *tr, struct dump_imgs *imgs)
{
	size_t nr_tids = tree_nr_threads(tr);
	const ProtobufCMessage **msgs = calloc(tr->nr + 1, sizeof(*msgs));
	PstreeEntry *e = calloc(tr->nr + 1, sizeof(*e));
	uint32_t *tids = calloc(nr_tids + 1, sizeof(*tids));
	int ret = -ENOMEM;

	if (!msgs || !e || !tids) {
		pr_err("writing pstree.img: %s", strerror(ENOMEM));
		goto out_free;
	}
	for (size_t i = 0, t = 0; i < tr->nr; t += tr->procs[i]->nr_th, i++) {
		pstree_entry(tr->procs[i], &e[i], &tids[t]);
		msgs[i] = &e[i].base;
	}
	if (tr->shell.job) {
		e[0].has_shell_job = e[0].has_shell_tty = true;
		e[0].shell_job = true;
		e[0].shell_tty = tr->shell.tty;
		e[0].has_shell_fg_pgrp = tr->shell.fg_pgrp != 0;
		e[0].shell_fg_pgrp = tr->shell.fg_pgrp;
	}
	ret = dump_img_write(imgs, "pstree.img", LZ_IMG_PSTREE, msgs, tr->nr);
out_free:
	free(tids);
	free(e);
	free(msgs);
	return ret;
}

void tree_fini(struct dump_tree *tr)
{
	for (size_t i = 0; i < tr->nr; i++) {
		struct dump_proc *p = tr->procs[i];

		for (size_t j = 0; j < p->nr_th; j++)
			core_fini(&p->th[j].core);
		mm_fini(&p->mm);
		timers_fini(&p->task.timers);
		files_fini(&p->files);
		free(p->th);
		free(p);
	}
	free(tr->procs);
	tr->procs = NULL;
	tr->nr = tr->cap = 0;
}
