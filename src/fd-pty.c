/*
 * fd-pty.c - pseudo-terminals (issue 7, item 9, in part).
 *
 * A pty pair is a master (/dev/ptmx) and its slave (/dev/pts/N). Dump
 * keeps the master's index N, the pair's termios (tcgetattr on a master
 * reaches its slave), window size, lock and packet mode; each slave fd
 * keeps its index and path. Restore opens a new master in lazarus (the
 * index is the kernel's choice: programs that kept the name see another
 * number), sets all that, and opens every slave of the same dumped index
 * from it (TIOCGPTPEER), so the pair is one again whatever /dev/pts/N
 * is now. A slave whose master is not in the dump (the terminal of the
 * caller, of a terminal emulator outside) is the same terminal while its
 * master lives, and is reopened by path, as it was by fd-chr.c.
 *
 * A pty whose slave is a session's controlling terminal keeps on its master
 * entry the session and foreground group (dump-tty.c, restore-tty.c). With
 * --shell-job, the slaves of the dumped job's terminal (outside) are opened
 * from lazarus's own terminal (its stdin) instead of by path.
 *
 * Not kept: data queued in the pair. Dump refuses a pair with complete
 * input lines or output queued (it cannot read them without taking them);
 * a partial input line in canonical mode (typed, no newline yet) is not
 * seen by TIOCINQ and is lost. See lazarus(8), "Terminals".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "as-owner.h"
#include "fd-kind.h"
#include "fd-pty.h"
#include "restore-fds.h"
#include "restore-images.h"
#include "restore-tty.h"

#define KERNEL_NCCS 19 /* struct termios of the kernel (glibc's has room for 32) */

static bool is_master(const struct stat *st)
{
	return major(st->st_rdev) == 5 && minor(st->st_rdev) == 2;
}

static bool is_slave(const struct stat *st)
{
	return major(st->st_rdev) >= 136 && major(st->st_rdev) <= 143;
}

static bool pty_match(const struct fd_probe *p)
{
	return S_ISCHR(p->st.st_mode) && !(p->flags & O_PATH) && p->link[0] == '/' &&
	       (is_master(&p->st) || is_slave(&p->st));
}

static int queued(int fd, unsigned long req)
{
	int n = 0;

	return ioctl(fd, req, &n) < 0 ? 0 : n;
}

static PtyTermios *termios_entry(const struct termios *t)
{
	PtyTermios *pt = malloc(sizeof(*pt));

	if (!pt)
		return NULL;
	pty_termios__init(pt);
	pt->iflag = t->c_iflag;
	pt->oflag = t->c_oflag;
	pt->cflag = t->c_cflag;
	pt->lflag = t->c_lflag;
	pt->line = t->c_line;
	pt->ispeed = cfgetispeed(t);
	pt->ospeed = cfgetospeed(t);
	pt->cc.len = KERNEL_NCCS;
	pt->cc.data = malloc(KERNEL_NCCS);
	if (!pt->cc.data) {
		free(pt);
		return NULL;
	}
	memcpy(pt->cc.data, t->c_cc, KERNEL_NCCS);
	return pt;
}

/* The master's pair state: termios, window size, lock, packet mode. */
static int master_dump(struct fd_probe *p, int local, PtyEntry *pe)
{
	struct winsize ws;
	struct termios t;
	int lck = 0, pkt = 0;

	if (ioctl(local, TIOCGPTN, &pe->index) < 0 || tcgetattr(local, &t) < 0 ||
	    ioctl(local, TIOCGWINSZ, &ws) < 0 || ioctl(local, TIOCGPTLCK, &lck) < 0 ||
	    ioctl(local, TIOCGPKT, &pkt) < 0) {
		pr_err("process %d fd %d: pty master: %s", p->pid, p->fd, strerror(errno));
		return -errno;
	}
	pe->termios = termios_entry(&t);
	if (!pe->termios)
		return -ENOMEM;
	pe->has_rows = pe->has_cols = pe->has_xpixel = pe->has_ypixel = true;
	pe->rows = ws.ws_row;
	pe->cols = ws.ws_col;
	pe->xpixel = ws.ws_xpixel;
	pe->ypixel = ws.ws_ypixel;
	pe->has_locked = pe->has_packet = true;
	pe->locked = lck != 0;
	pe->packet = pkt != 0;
	return 0;
}

static int pty_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	bool master = is_master(&p->st);
	int local, n, ret = 0;
	PtyEntry *pe;

	(void)imgs;
	local = fd_probe_getfd(p);
	if (local < 0)
		return local;
	n = queued(local, FIONREAD);
	if (n > 0) {
		pr_err("process %d fd %d: pty %s with %d bytes queued %s: not supported yet",
		       p->pid, p->fd, p->link, n, master ? "for the master" : "as input");
		return -EOPNOTSUPP;
	}
	pe = malloc(sizeof(*pe));
	if (!pe)
		return -ENOMEM;
	pty_entry__init(pe);
	e->pty = pe;
	pe->master = master;
	if (master)
		return master_dump(p, local, pe);
	if (sscanf(p->link, "/dev/pts/%u", &pe->index) != 1) {
		pr_err("process %d fd %d: pty slave %s: not under /dev/pts: not supported yet",
		       p->pid, p->fd, p->link);
		return -EOPNOTSUPP;
	}
	pe->path = strdup(p->link);
	pe->has_rdev = true;
	pe->rdev = p->st.st_rdev;
	if (!pe->path)
		ret = -ENOMEM;
	return ret;
}

static int pty_verify(const FileEntry *e, char *why, size_t len)
{
	const PtyEntry *pe = e->pty;
	unsigned n = 0;
	int end = 0;

	if (!pe) {
		snprintf(why, len, "a pty without its pty entry");
		return -EBADMSG;
	}
	if (pe->master && (!pe->termios || pe->termios->cc.len != KERNEL_NCCS ||
			   !pe->has_rows || !pe->has_cols)) {
		snprintf(why, len, "pty master %u without its termios and window size", pe->index);
		return -EBADMSG;
	}
	if (!pe->master && (!pe->path || strncmp(pe->path, "/dev/pts/", 9) || !pe->has_rdev)) {
		snprintf(why, len, "pty slave %u without its /dev/pts path", pe->index);
		return -EBADMSG;
	}
	if (!pe->master && (sscanf(pe->path, "/dev/pts/%u%n", &n, &end) != 1 ||
			    pe->path[end] || n != pe->index)) {
		snprintf(why, len, "pty slave %u named %s", pe->index, pe->path);
		return -EBADMSG;
	}
	return 0;
}

/* The master entry of pty INDEX in the dump; NULL if its master is not in it. */
static const FileEntry *master_of(const struct rst_images *im, uint32_t index)
{
	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *x = im->files[i];

		if (x->kind == FILE_KIND__FD_PTY && x->pty && x->pty->master &&
		    x->pty->index == index)
			return x;
	}
	return NULL;
}

static int set_status(int fd, uint32_t flags)
{
	return fcntl(fd, F_SETFL, (int)flags & (O_NONBLOCK | O_APPEND)) < 0 ? -errno : 0;
}

static int pair_setup(int m, const PtyEntry *pe)
{
	const PtyTermios *pt = pe->termios;
	struct winsize ws = { (unsigned short)pe->rows, (unsigned short)pe->cols,
			      (unsigned short)pe->xpixel, (unsigned short)pe->ypixel };
	struct termios t;
	int pkt = pe->packet;

	if (tcgetattr(m, &t) < 0)
		return -errno;
	t.c_iflag = pt->iflag;
	t.c_oflag = pt->oflag;
	t.c_cflag = pt->cflag;
	t.c_lflag = pt->lflag;
	t.c_line = (cc_t)pt->line;
	memcpy(t.c_cc, pt->cc.data, KERNEL_NCCS);
	if (cfsetispeed(&t, pt->ispeed) < 0 || cfsetospeed(&t, pt->ospeed) < 0 ||
	    tcsetattr(m, TCSANOW, &t) < 0 || ioctl(m, TIOCSWINSZ, &ws) < 0 ||
	    ioctl(m, TIOCPKT, &pkt) < 0)
		return -errno;
	return 0;
}

/* A new pair for master entry ME; it and every slave of its index into the store. */
static int pair_open(const FileEntry *me, const struct rst_images *im, struct rst_fstore *st,
		     char *why, size_t len)
{
	const PtyEntry *pe = me->pty;
	int m, unlock = 0, lock = 1, ret;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0) {
		snprintf(why, len, "file %u: pty master: posix_openpt: %s", me->id, strerror(errno));
		return -errno;
	}
	ret = ioctl(m, TIOCSPTLCK, &unlock) < 0 ? -errno : pair_setup(m, pe);
	for (size_t i = 0; !ret && i < im->nr_files; i++) {
		const FileEntry *x = im->files[i];
		int s;

		if (x->kind != FILE_KIND__FD_PTY || !x->pty || x->pty->master ||
		    x->pty->index != pe->index)
			continue;
		s = ioctl(m, TIOCGPTPEER, (int)(x->flags & O_ACCMODE) | O_NOCTTY | O_CLOEXEC);
		if (s < 0) {
			ret = -errno;
			break;
		}
		ret = set_status(s, x->flags);
		if (ret) {
			close(s);
			break;
		}
		ret = rst_fstore_put(st, x->id, s, why, len);
		if (ret)
			goto out_close;
	}
	if (!ret && pe->locked && ioctl(m, TIOCSPTLCK, &lock) < 0)
		ret = -errno;
	if (!ret)
		ret = set_status(m, me->flags);
	if (ret) {
		snprintf(why, len, "file %u: pty pair %u: %s", me->id, pe->index, strerror(-ret));
		goto out_close;
	}
	return rst_fstore_put(st, me->id, m, why, len);
out_close:
	close(m);
	return ret;
}

/*
 * A shell job's terminal (--shell-job): lazarus's stdin terminal, opened
 * again (a description of its own, with the dumped flags), through
 * /proc/self/fd/0 so that no path is looked up.
 */
static int shell_tty_open(const FileEntry *e, int flags, struct rst_fstore *st, char *why,
			  size_t len)
{
	struct stat s;
	int fd = open("/proc/self/fd/0", flags | O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, len, "opening the terminal of lazarus (stdin) for the shell job: %s",
			 strerror(errno));
		return -errno;
	}
	if (fstat(fd, &s) < 0 || !S_ISCHR(s.st_mode) || !isatty(fd)) {
		snprintf(why, len, "the standard input of lazarus is not a terminal");
		close(fd);
		return -ENOTTY;
	}
	return rst_fstore_put(st, e->id, fd, why, len);
}

/*
 * A slave of a master outside the dump: the same terminal, by path, opened
 * as the process that holds it (as-owner.h) and only so: pty numbers are
 * reused, and /dev/pts/N may be another user's terminal by now.
 */
static int slave_reopen(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
			char *why, size_t len)
{
	const PtyEntry *pe = e->pty;
	int flags = (int)(e->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_ASYNC)) | O_NOCTTY;
	char what[128];
	struct stat s;
	int fd;

	if (rst_tty_is_shell_tty(im, pe->rdev))
		return shell_tty_open(e, flags, st, why, len);
	fd = as_owner_open_typed(as_owner_of_file(im, e->id), pe->path, flags, S_IFCHR, NULL, what,
				 sizeof(what));
	if (fd < 0) {
		snprintf(why, len, "terminal %s", what);
		return fd;
	}
	if (fstat(fd, &s) < 0 || s.st_rdev != (dev_t)pe->rdev) {
		snprintf(why, len, "%s: character device %u:%u, dumped as %u:%u", pe->path,
			 major(s.st_rdev), minor(s.st_rdev), major((dev_t)pe->rdev),
			 minor((dev_t)pe->rdev));
		close(fd);
		return -EINVAL;
	}
	return rst_fstore_put(st, e->id, fd, why, len);
}

static int pty_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		    char *why, size_t len)
{
	const FileEntry *me = e->pty->master ? e : master_of(im, e->pty->index);

	return me ? pair_open(me, im, st, why, len) : slave_reopen(e, im, st, why, len);
}

const struct fd_kind fd_kind_pty = {
	.kind = FILE_KIND__FD_PTY,
	.name = "pty",
	.match = pty_match,
	.dump = pty_dump,
	.verify = pty_verify,
	.open = pty_open,
};
