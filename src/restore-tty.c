/*
 * restore-tty.c - controlling terminals and shell jobs at restore (issue
 * 7, item 9). What dump-tty.c recorded, made again:
 *
 *   - a session leader whose terminal was a pty of the dump: right after
 *     its setsid() (restore-task.c) and before it creates its children, it
 *     opens the slave from the master in the store (TIOCGPTPEER, or a
 *     slave of the store) and makes it its controlling terminal
 *     (TIOCSCTTY). Children made after that inherit it: the kernel copies
 *     the terminal at fork, TIOCSCTTY sets only the caller's.
 *   - the foreground group: TIOCSPGRP takes only a group that exists in the
 *     caller's session, so the leader sets it once its children exist,
 *     retrying while the group's own leader has not made it yet (bounded).
 *     Every signal is blocked here, so the kernel's SIGTTOU for a
 *     background caller does not apply (tty_check_change).
 *   - a shell job (--shell-job): the root does not lead its session, so it
 *     stays in lazarus's, whose terminal it inherits; the dumped terminal's
 *     fds are lazarus's stdin terminal reopened (fd-pty.c); if its group
 *     was the foreground one it is made so on the new terminal.
 *
 * Both settings use /dev/tty (the caller's controlling terminal), opened
 * before the process changes its root.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "log.h"
#include "fd-kind.h"
#include "restore-tty.h"

#define FG_WAIT_MS 10000

/* The master entry whose slave is the terminal of the session led by SID. */
static const FileEntry *ctty_master(const struct rst_images *im, uint32_t sid)
{
	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *e = im->files[i];

		if (e->kind == FILE_KIND__FD_PTY && e->pty && e->pty->master &&
		    e->pty->has_ctty_of && e->pty->ctty_of == sid)
			return e;
	}
	return NULL;
}

/* A live process of the dump in group PGRP of session SID? */
static bool group_in_session(const struct rst_images *im, uint32_t pgrp, uint32_t sid)
{
	for (size_t i = 0; i < im->nr_tasks; i++) {
		const PstreeEntry *p = im->tasks[i].pstree;

		if (!p->zombie && p->pgid == pgrp && p->sid == sid)
			return true;
	}
	return false;
}

static int check_master(const struct rst_images *im, const FileEntry *e)
{
	const PtyEntry *pe = e->pty;
	const struct rst_task *s = rst_task_by_pid(im, pe->ctty_of);

	if (!s || s->pstree->sid != s->pid || s->pstree->zombie) {
		pr_err("files.img: file %u: pty %u is the controlling terminal of session %u, "
		       "which no live process of pstree.img leads",
		       e->id, pe->index, pe->ctty_of);
		return -EBADMSG;
	}
	if (ctty_master(im, pe->ctty_of) != e) {
		pr_err("files.img: file %u: session %u has two controlling terminals", e->id,
		       pe->ctty_of);
		return -EBADMSG;
	}
	if (pe->has_fg_pgrp && !group_in_session(im, pe->fg_pgrp, pe->ctty_of)) {
		pr_err("files.img: file %u: the foreground group %u of pty %u is not a group of "
		       "session %u in pstree.img",
		       e->id, pe->fg_pgrp, pe->index, pe->ctty_of);
		return -EBADMSG;
	}
	return 0;
}

static int check_shell_job(const struct rst_images *im, bool shell_job)
{
	const PstreeEntry *r = im->tasks[0].pstree;

	for (size_t i = 1; i < im->nr_tasks; i++)
		if (im->tasks[i].pstree->has_shell_job) {
			pr_err("pstree.img: process %u: a shell job's fields on a process that is "
			       "not the root", im->tasks[i].pid);
			return -EBADMSG;
		}
	if (!r->shell_job) {
		if (r->sid != r->pid && !rst_task_by_pid(im, r->sid)) {
			pr_err("pstree.img: process %u: in session %u led from outside the tree, "
			       "not dumped with --shell-job", r->pid, r->sid);
			return -EBADMSG;
		}
		return 0;
	}
	if (r->sid == r->pid) {
		pr_err("pstree.img: process %u: a shell job that leads its session", r->pid);
		return -EBADMSG;
	}
	if (r->has_shell_fg_pgrp && !group_in_session(im, r->shell_fg_pgrp, r->sid)) {
		pr_err("pstree.img: process %u: the foreground group %u of its terminal is not a "
		       "group of the tree", r->pid, r->shell_fg_pgrp);
		return -EBADMSG;
	}
	if (!shell_job) {
		pr_err("process %u was dumped as a shell job (its session %u led from outside, "
		       "its terminal outside): restore it with --shell-job",
		       r->pid, r->sid);
		return -EOPNOTSUPP;
	}
	if (!isatty(STDIN_FILENO) || tcgetsid(STDIN_FILENO) != getsid(0)) {
		pr_err("--shell-job: the standard input of lazarus is not the controlling "
		       "terminal of its session: process %u has no terminal to attach to",
		       r->pid);
		return -ENOTTY;
	}
	return 0;
}

int rst_tty_check(const struct rst_images *im, bool shell_job)
{
	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *e = im->files[i];
		int ret;

		if (e->kind != FILE_KIND__FD_PTY || !e->pty)
			continue;
		if (!e->pty->master && (e->pty->has_ctty_of || e->pty->has_fg_pgrp)) {
			pr_err("files.img: file %u: a pty slave with a master's terminal fields",
			       e->id);
			return -EBADMSG;
		}
		if (!e->pty->has_ctty_of) {
			if (e->pty->has_fg_pgrp) {
				pr_err("files.img: file %u: a foreground group without a session",
				       e->id);
				return -EBADMSG;
			}
			continue;
		}
		ret = check_master(im, e);
		if (ret)
			return ret;
	}
	return check_shell_job(im, shell_job);
}

bool rst_tty_is_shell_tty(const struct rst_images *im, uint64_t rdev)
{
	const PstreeEntry *r = im->tasks[0].pstree;

	return im->shell_job && r->shell_job && r->shell_tty && r->shell_tty == rdev;
}

/*
 * A new slave fd of master M. A locked pair (TIOCSPTLCK, restored by
 * fd-pty.c after its slaves) opens no slave: unlocked for the open and
 * locked again; nothing else holds the pair yet.
 */
static int peer_open(int m, bool locked)
{
	int unlock = 0, lock = 1, s, err;

	if (locked && ioctl(m, TIOCSPTLCK, &unlock) < 0)
		return -errno;
	s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	err = s < 0 ? -errno : 0;
	if (locked && ioctl(m, TIOCSPTLCK, &lock) < 0 && !err) {
		err = -errno;
		close(s);
	}
	return err ? err : s;
}

/* A new fd of the slave of master entry ME: a slave of the store, or from the master. */
static int slave_of(const struct rst_images *im, const FileEntry *me)
{
	int m;

	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *x = im->files[i];
		int s;

		if (x->kind != FILE_KIND__FD_PTY || !x->pty || x->pty->master ||
		    x->pty->index != me->pty->index)
			continue;
		s = rst_fstore_get(im->fstore, x->id);
		if (s >= 0 && (s = fcntl(s, F_DUPFD_CLOEXEC, 0)) >= 0)
			return s;
	}
	m = rst_fstore_get(im->fstore, me->id);
	if (m < 0)
		return -ENOENT;
	return peer_open(m, me->pty->locked);
}

int rst_tty_session(const struct rst_images *im, const struct rst_task *rt, char *why,
		    size_t len)
{
	const FileEntry *me;
	int s, ret = 0;

	if (rt->pstree->sid != rt->pid)
		return 0;
	me = ctty_master(im, rt->pid);
	if (!me)
		return 0;
	s = slave_of(im, me);
	if (s < 0) {
		snprintf(why, len, "pty %u: opening its slave: %s", me->pty->index, strerror(-s));
		return s;
	}
	if (ioctl(s, TIOCSCTTY, 0) < 0) {
		ret = -errno;
		snprintf(why, len, "pty %u: TIOCSCTTY: %s", me->pty->index, strerror(errno));
	}
	close(s);
	return ret;
}

int rst_tty_foreground(const struct rst_images *im, const struct rst_task *rt, char *why,
		       size_t len)
{
	const PstreeEntry *p = rt->pstree;
	const FileEntry *me = NULL;
	pid_t fg = 0;
	int fd, ret = 0;

	if (p->sid == rt->pid) {
		me = ctty_master(im, rt->pid);
		if (me && me->pty->has_fg_pgrp)
			fg = (pid_t)me->pty->fg_pgrp;
	} else if (rt->parent < 0 && p->shell_job && p->has_shell_fg_pgrp && im->shell_job) {
		fg = (pid_t)p->shell_fg_pgrp;
	}
	if (!fg)
		return 0;
	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "opening its terminal /dev/tty: %s", strerror(errno));
		return -errno;
	}
	for (int ms = 0; tcsetpgrp(fd, fg) < 0; ms++) {
		if ((errno != EPERM && errno != ESRCH) || ms >= FG_WAIT_MS) {
			ret = -errno;
			snprintf(why, len, "making group %d the foreground group of its terminal: %s",
				 fg, strerror(errno));
			break;
		}
		usleep(1000); /* the group's leader has not made it yet */
	}
	close(fd);
	return ret;
}
