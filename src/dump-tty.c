/*
 * dump-tty.c - controlling terminals and sessions of the dumped tree
 * (issue 7, item 9).
 *
 * /proc/PID/stat gives, per process, its controlling terminal (tty_nr, a
 * device number) and that terminal's foreground group (tpgid), both as
 * seen at the freeze. Two shapes are kept (restore-tty.c makes them again):
 *
 *   - a session led by a process of the tree whose terminal is a pty whose
 *     master is held in the tree (tmux, screen, sshd, expect): the master's
 *     entry names the session leader (ctty_of) and the foreground group
 *     (fg_pgrp), which must be a group of the tree in that session;
 *   - with --shell-job, a session led from outside (a job of an
 *     interactive shell): the root's entry says so (shell_job), with the
 *     terminal's device and the foreground group when it is the tree's.
 *
 * Everything else is refused by name: a terminal that is not a pty, a pty
 * whose master is outside for a session led inside, a process whose
 * terminal differs from its session leader's (it detached with TIOCNOTTY),
 * a foreground group with no process in the tree.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/sysmacros.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-tty.h"

static bool tty_is_pts(int tty)
{
	return major((dev_t)tty) >= 136 && major((dev_t)tty) <= 143;
}

static unsigned pts_index(int tty)
{
	return (major((dev_t)tty) - 136) * 256 + minor((dev_t)tty);
}

/* "/dev/pts/N" or "tty MAJ:MIN", for messages. */
static const char *tty_name(int tty, char *buf, size_t len)
{
	if (tty_is_pts(tty))
		snprintf(buf, len, "/dev/pts/%u", pts_index(tty));
	else
		snprintf(buf, len, "tty %u:%u", major((dev_t)tty), minor((dev_t)tty));
	return buf;
}

static const struct dump_proc *proc_by_pid(const struct dump_tree *tr, pid_t pid)
{
	for (size_t i = 0; i < tr->nr; i++)
		if (tr->procs[i]->pid == pid)
			return tr->procs[i];
	return NULL;
}

/* A live process of the tree in group PGRP of session SID; NULL if none. */
static const struct dump_proc *tree_group_member(const struct dump_tree *tr, pid_t pgrp, pid_t sid)
{
	for (size_t i = 0; i < tr->nr; i++) {
		const struct dump_proc *p = tr->procs[i];

		if (!p->zombie && p->stat.pgrp == pgrp && p->stat.session == sid)
			return p;
	}
	return NULL;
}

static PtyEntry *master_of(struct files_table *ft, unsigned index)
{
	for (size_t i = 0; i < ft->nr; i++) {
		FileEntry *e = ft->files[i].e;

		if (e->kind == FILE_KIND__FD_PTY && e->pty && e->pty->master &&
		    e->pty->index == index)
			return e->pty;
	}
	return NULL;
}

/* S leads its session and has terminal TTY: record it on the pty's master. */
static int leader_tty(const struct dump_tree *tr, struct files_table *ft,
		      const struct dump_proc *s)
{
	int tty = s->stat.tty_nr;
	const struct dump_proc *g;
	char name[48];
	PtyEntry *m;

	if (!tty_is_pts(tty)) {
		pr_err("process %d: its controlling terminal %s is not a pseudo-terminal: not "
		       "supported",
		       s->pid, tty_name(tty, name, sizeof(name)));
		return -EOPNOTSUPP;
	}
	m = master_of(ft, pts_index(tty));
	if (!m) {
		pr_err("process %d leads a session whose controlling terminal %s has its master "
		       "outside the tree: not supported",
		       s->pid, tty_name(tty, name, sizeof(name)));
		return -EOPNOTSUPP;
	}
	if (m->has_ctty_of) {
		pr_err("process %d: its controlling terminal %s is another session's too",
		       s->pid, tty_name(tty, name, sizeof(name)));
		return -EOPNOTSUPP;
	}
	m->has_ctty_of = true;
	m->ctty_of = (uint32_t)s->v.pid;
	if (s->stat.tpgid <= 0)
		return 0;
	g = tree_group_member(tr, s->stat.tpgid, s->pid);
	if (!g) {
		pr_err("process %d: the foreground group %d of its terminal %s has no process in "
		       "the tree: not supported",
		       s->pid, s->stat.tpgid, tty_name(tty, name, sizeof(name)));
		return -EOPNOTSUPP;
	}
	m->has_fg_pgrp = true;
	m->fg_pgrp = (uint32_t)g->v.pgid;
	return 0;
}

/* P is in a session led from outside the tree (--shell-job). */
static int shell_member(struct dump_tree *tr, const struct dump_proc *p)
{
	const struct dump_proc *root = tr->procs[0], *g;
	char a[48], b[48];

	if (p->stat.session != root->stat.session || p->stat.tty_nr != root->stat.tty_nr) {
		pr_err("process %d: session %d and terminal %s, the root's %d and %s: not "
		       "supported with --shell-job",
		       p->pid, p->stat.session, tty_name(p->stat.tty_nr, a, sizeof(a)),
		       root->stat.session, tty_name(root->stat.tty_nr, b, sizeof(b)));
		return -EOPNOTSUPP;
	}
	if (p != root)
		return 0;
	tr->shell.job = true;
	tr->shell.tty = (uint64_t)p->stat.tty_nr;
	tr->shell.fg_pgrp = 0;
	g = p->stat.tpgid > 0 ? tree_group_member(tr, p->stat.tpgid, p->stat.session) : NULL;
	if (g)
		tr->shell.fg_pgrp = (uint32_t)g->v.pgid;
	return 0;
}

int dump_tty_tree(struct dump_tree *tr, struct files_table *ft, bool shell_job)
{
	char a[48], b[48];

	/* The root first: shell_member compares the others with it. */
	for (size_t i = 0; i < tr->nr; i++) {
		const struct dump_proc *p = tr->procs[i], *s;
		int ret = 0;

		if (p->zombie)
			continue;
		s = proc_by_pid(tr, p->stat.session);
		if (!s) {
			if (!shell_job) /* dump-checks.c refused it already */
				return -EOPNOTSUPP;
			ret = shell_member(tr, p);
		} else if (s->zombie && p->stat.tty_nr) {
			pr_err("process %d: terminal %s of a session whose leader %d is a zombie: "
			       "not supported",
			       p->pid, tty_name(p->stat.tty_nr, a, sizeof(a)), s->pid);
			ret = -EOPNOTSUPP;
		} else if (!s->zombie && p->stat.tty_nr != s->stat.tty_nr) {
			pr_err("process %d: controlling terminal %s, its session leader %d's %s: not "
			       "supported",
			       p->pid, p->stat.tty_nr ? tty_name(p->stat.tty_nr, a, sizeof(a)) : "none",
			       s->pid,
			       s->stat.tty_nr ? tty_name(s->stat.tty_nr, b, sizeof(b)) : "none");
			ret = -EOPNOTSUPP;
		} else if (p == s && p->stat.tty_nr) {
			ret = leader_tty(tr, ft, p);
		}
		if (ret)
			return ret;
	}
	return 0;
}
