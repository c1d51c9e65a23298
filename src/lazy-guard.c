/*
 * lazy-guard.c - the guardian: the part of the lazy-pages daemon that makes
 * sure no restored process ever runs on zero pages because the daemon died.
 *
 * When every copy of a userfaultfd is closed, the kernel turns the missing
 * pages of its registered ranges into ordinary zero-fill memory. So the
 * daemon forks a small guardian (own session, so it survives the daemon's
 * SIGKILL and the terminal's signals) and sends it a dup of every uffd (and
 * pidfd) it serves; the shared state memfd (lazy-shm.h) tells it what is
 * still outstanding. While the daemon lives the guardian only collects fds.
 * When the daemon's end of their socketpair closes without a goodbye, the
 * guardian waits for `lazarus lazy-pages --resume` on the daemon's own
 * listening socket (it holds a dup) and hands everything over; if nobody
 * comes within the timeout, it poisons every outstanding page
 * (UFFDIO_POISON: a touch is SIGBUS) and SIGKILLs every served process and
 * its descendants, then exits. Documentation/lazy-pages.md lists what this
 * does and does not cover.
 */
#define LOG_PREFIX "lazy-pages: "

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lazy-int.h"
#include "log.h"
#include "proc.h"

/*
 * Bounds of the waits between daemon, guardian and a resuming daemon: a
 * takeover step, the guardian leaving after G_DONE, a send to a guardian
 * that stopped reading (then it counts as lost and a new one starts).
 */
#define TAKE_TIMEOUT_MS 10000U
#define TAKE_TIMEOUT_STR "10000 ms"
#define GUARD_DONE_MS 5000
#define GUARD_SEND_MS 5000U

struct guard {
	struct lz_shm *shm;
	int chan;	 /* to the daemon; -1 while orphaned */
	int listen_fd, lock_fd;
	unsigned timeout_s;
	const char *work_dir;
	int *uffd, *pidfd; /* per slot, -1 when not held */
	struct lz_msg msg;
};

/* ------------------------------------------------------------ daemon side */

static int guard_send_slot(struct lazy_daemon *d, uint16_t type, struct lpi *p, const int *fds,
			   int nfds)
{
	struct lz_lazy_g_slot s = { .slot = p->slot, .flags = nfds > 1 ? LZ_LAZY_GF_PIDFD : 0 };

	if (d->guard_fd < 0)
		return -EPIPE;
	return lz_msg_send(d->guard_fd, type, 0, &s, sizeof(s), fds, nfds);
}

int guard_add(struct lazy_daemon *d, struct lpi *p)
{
	int fds[2] = { p->uffd, p->pidfd };
	int ret = guard_send_slot(d, LZ_LAZY_G_ADD, p, fds, p->pidfd >= 0 ? 2 : 1);

	if (!ret)
		return 0;
	/* A new guardian is sent every served process, this one included. */
	guard_lost(d);
	return d->guard_fd >= 0 ? 0 : ret;
}

void guard_pidfd(struct lazy_daemon *d, struct lpi *p)
{
	if (guard_send_slot(d, LZ_LAZY_G_PIDFD, p, &p->pidfd, 1))
		guard_lost(d);
}

void guard_drop(struct lazy_daemon *d, struct lpi *p)
{
	if (guard_send_slot(d, LZ_LAZY_G_DROP, p, NULL, 0) && d->guard_fd >= 0)
		guard_lost(d);
}

static void guard_forget(struct lazy_daemon *d)
{
	if (d->guard_fd >= 0) {
		daemon_epoll_del(d, d->guard_fd);
		close(d->guard_fd);
	}
	d->guard_fd = -1;
	if (d->guard_is_child && d->guard_pid > 0)
		waitpid(d->guard_pid, NULL, WNOHANG);
	d->guard_pid = 0;
}

void guard_done(struct lazy_daemon *d)
{
	struct pollfd pfd = { .fd = d->guard_fd, .events = POLLIN };
	bool gone = false;

	if (d->guard_fd < 0)
		return;
	if (!lz_msg_send(d->guard_fd, LZ_LAZY_G_DONE, 0, NULL, 0, NULL, 0)) {
		/* It closes its end when it has let go of every fd. */
		while (poll(&pfd, 1, GUARD_DONE_MS) > 0) {
			if (lz_msg_recv(d->guard_fd, &d->msg, &(const char *){ NULL })) {
				gone = true;
				break;
			}
			lz_msg_close_fds(&d->msg);
		}
	}
	if (!gone && d->guard_pid > 0) {
		/* Every page is in place: nothing is left for it to protect. */
		pr_warn("the guardian (pid %d) did not exit within %d ms of G_DONE; killing it",
			d->guard_pid, GUARD_DONE_MS);
		kill(d->guard_pid, SIGKILL);
	}
	if (d->guard_is_child && d->guard_pid > 0)
		waitpid(d->guard_pid, NULL, 0);
	d->guard_pid = 0;
	daemon_epoll_del(d, d->guard_fd);
	close(d->guard_fd);
	d->guard_fd = -1;
}

void guard_lost(struct lazy_daemon *d)
{
	pr_err("the guardian (pid %d) is gone; starting a new one", d->guard_pid);
	guard_forget(d);
	if (d->guard_spawns >= 16 || guard_spawn(d))
		pr_err("no guardian: if this daemon dies now, its processes are not protected");
}

/* ------------------------------------------------------------ kill */

static int read_children(pid_t pid, pid_t *out, int max)
{
	char path[64], buf[4096];
	struct dirent *de;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while ((de = readdir(dir)) && n < max) {
		char *p, *end;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/children", pid, de->d_name);
		if (proc_read_small(path, buf, sizeof(buf)) <= 0)
			continue;
		for (p = buf; n < max; p = end) {
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			out[n++] = (pid_t)v;
		}
	}
	closedir(dir);
	return n;
}

void lz_kill_tree(pid_t pid, int pidfd)
{
	enum { MAX_TREE = 4096 };
	pid_t *tree;
	int n = 0;

	if (pid <= 0)
		return;
	if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0))
		return;
	tree = malloc(MAX_TREE * sizeof(*tree));
	if (!tree) {
		kill(pid, SIGKILL);
		return;
	}
	/* Stop each process before reading its children: a stopped process
	 * cannot fork one more behind our back. */
	tree[n++] = pid;
	for (int i = 0; i < n; i++) {
		kill(tree[i], SIGSTOP);
		n += read_children(tree[i], tree + n, MAX_TREE - n);
	}
	for (int i = 0; i < n; i++)
		kill(tree[i], SIGKILL);
	free(tree);
}

/* ------------------------------------------------------------ guardian */

static unsigned guard_held(const struct guard *g)
{
	unsigned n = 0;

	for (unsigned i = 0; i < LZ_SHM_MAX_SLOTS; i++)
		n += g->uffd[i] >= 0;
	return n;
}

static void guard_release(struct guard *g, unsigned slot)
{
	if (g->uffd[slot] >= 0)
		close(g->uffd[slot]);
	if (g->pidfd[slot] >= 0)
		close(g->pidfd[slot]);
	g->uffd[slot] = g->pidfd[slot] = -1;
}

/* A message from the daemon; 1 when it said goodbye. */
static int guard_handle(struct guard *g, struct lz_msg *m)
{
	struct lz_lazy_g_slot s;

	if (m->hdr.type == LZ_LAZY_G_DONE)
		return 1;
	if (m->hdr.len != sizeof(s)) {
		lz_msg_close_fds(m);
		return 0;
	}
	memcpy(&s, m->payload, sizeof(s));
	if (s.slot >= LZ_SHM_MAX_SLOTS) {
		lz_msg_close_fds(m);
		return 0;
	}
	switch (m->hdr.type) {
	case LZ_LAZY_G_ADD:
		guard_release(g, s.slot);
		g->uffd[s.slot] = m->nfds > 0 ? m->fds[0] : -1;
		g->pidfd[s.slot] = m->nfds > 1 ? m->fds[1] : -1;
		m->nfds = 0;
		break;
	case LZ_LAZY_G_PIDFD:
		if (m->nfds == 1 && g->pidfd[s.slot] < 0) {
			g->pidfd[s.slot] = m->fds[0];
			m->nfds = 0;
		}
		break;
	case LZ_LAZY_G_DROP:
		guard_release(g, s.slot);
		break;
	}
	lz_msg_close_fds(m);
	return 0;
}

/* Nobody resumed: poison what is missing, kill what is served. */
static void guard_punish(struct guard *g)
{
	for (unsigned i = 0; i < LZ_SHM_MAX_SLOTS; i++) {
		struct lz_shm_slot *sl = &g->shm->hdr->slots[i];
		uint64_t *done = shm_done(g->shm, sl);
		struct lr_set lay;

		if (g->uffd[i] < 0)
			continue;
		if (sl->state == LZ_SLOT_ACTIVE) {
			if (done && !shm_layout_read(g->shm, sl, &lay)) {
				pr_err("guardian: pid %d: nobody resumed the lazy-pages daemon within %u s: %" PRIu64
				       " of its pages are missing; poisoned them and killed it",
				       sl->pid, g->timeout_s, lr_outstanding(&lay, done));
				lazy_poison(g->uffd[i], &lay, done);
				lr_fini(&lay);
			}
			if (sl->pid > 0)
				lshm_poison(g->shm, g->uffd[i], sl->pid);
			/* Its tree first (the pidfd proves the pid is still
			 * it), then the process itself, by pidfd. */
			if (g->pidfd[i] >= 0) {
				lz_kill_tree(sl->pid, g->pidfd[i]);
				syscall(SYS_pidfd_send_signal, g->pidfd[i], SIGKILL, NULL, 0);
			}
			sl->state = LZ_SLOT_KILLED;
		}
		guard_release(g, i);
	}
}

static int guard_handover(struct guard *g, int fd)
{
	struct lz_lazy_g_state st = { .nr_slots = guard_held(g), .guard_pid = (uint32_t)getpid() };
	int fds[3] = { g->shm->fd, g->listen_fd, g->lock_fd };
	int ret = lz_reply(fd, 0, 0, "guardian pid %d hands over %u processes", getpid(),
			   st.nr_slots);

	if (!ret)
		ret = lz_msg_send(fd, LZ_LAZY_G_STATE, 0, &st, sizeof(st), fds, 3);
	for (unsigned i = 0; !ret && i < LZ_SHM_MAX_SLOTS; i++) {
		struct lz_lazy_g_slot s = { .slot = i };
		int f[2] = { g->uffd[i], g->pidfd[i] };

		if (g->uffd[i] < 0)
			continue;
		s.flags = f[1] >= 0 ? LZ_LAZY_GF_PIDFD : 0;
		ret = lz_msg_send(fd, LZ_LAZY_G_ADD, 0, &s, sizeof(s), f, f[1] >= 0 ? 2 : 1);
	}
	if (!ret)
		ret = lz_msg_send(fd, LZ_LAZY_G_END, 0, NULL, 0, NULL, 0);
	return ret;
}

/* A connection while orphaned: only a resuming daemon is welcome. */
static void guard_conn(struct guard *g, int fd)
{
	struct timeval tv = { .tv_sec = 2 };
	struct lz_lazy_hello h;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	const char *why;

	/* A silent or slow peer costs the waiting guardian at most 2 s per
	 * receive or send (SO_RCVTIMEO / SO_SNDTIMEO). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) || !lz_uid_trusted(cr.uid) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    lz_msg_recv(fd, &g->msg, &why)) {
		close(fd);
		return;
	}
	lz_msg_close_fds(&g->msg);
	memcpy(&h, g->msg.payload, sizeof(h));
	if (g->msg.hdr.type != LZ_LAZY_HELLO || g->msg.hdr.len != sizeof(h) ||
	    h.role != LZ_LAZY_ROLE_RESUME) {
		pr_warn("guardian: client pid %d refused: the daemon died, only a resume is accepted", cr.pid);
		lz_reply(fd, g->msg.hdr.seq, -ECONNREFUSED,
			 "the lazy-pages daemon of %s died; until 'lazarus lazy-pages --resume' "
			 "takes over, nothing else is accepted", g->work_dir);
		close(fd);
		return;
	}
	if (guard_handover(g, fd)) {
		pr_err("guardian: handover to pid %d failed", cr.pid);
		close(fd);
		return;
	}
	tv.tv_sec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	pr_warn("guardian: handed %u processes over to the resumed daemon (pid %d)", guard_held(g), cr.pid);
	g->chan = fd;
}

/*
 * A FORK read by the daemon whose child's uffd never reached us: that uffd
 * died with the daemon and the child already runs on plain memory. Nothing
 * can serve it again, so its parent's tree goes now, not at the timeout.
 */
static void guard_kill_lost_forks(struct guard *g)
{
	for (unsigned i = 0; i < LZ_SHM_MAX_SLOTS; i++) {
		struct lz_shm_slot *sl = &g->shm->hdr->slots[i];
		bool lost = false;

		if (g->uffd[i] < 0 || sl->state != LZ_SLOT_ACTIVE)
			continue;
		for (unsigned k = 0; k < LZ_SHM_INBOX; k++)
			lost |= sl->inbox[k].event == UFFD_EVENT_FORK &&
				(sl->pending_fork >= LZ_SHM_MAX_SLOTS ||
				 g->uffd[sl->pending_fork] < 0);
		if (!lost)
			continue;
		pr_err("guardian: pid %d forked as the daemon died and the child's userfaultfd is "
		       "lost; killing pid %d and its descendants", sl->pid, sl->pid);
		lz_kill_tree(sl->pid, g->pidfd[i]);
	}
}

/*
 * Let go of the processes that have exited meanwhile (their pidfd polls
 * readable): there is nothing left to protect in them. Processes whose pid
 * was never learnt (no pidfd) are kept until the timeout.
 */
static void guard_drop_exited(struct guard *g)
{
	for (unsigned i = 0; i < LZ_SHM_MAX_SLOTS; i++) {
		struct pollfd p = { .fd = g->pidfd[i], .events = POLLIN };

		if (g->uffd[i] < 0 || g->pidfd[i] < 0)
			continue;
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
			guard_release(g, i);
	}
}

#define GUARD_RECHECK_MS 200

/* 0: a daemon resumed (g->chan); 1: timed out, punished; 2: nobody left. */
static int guard_wait_resume(struct guard *g)
{
	uint64_t deadline = lz_now_ns() + (uint64_t)g->timeout_s * 1000000000ULL;

	pr_err("guardian: the daemon died with %u processes still served; waiting %u s for "
	       "'lazarus lazy-pages --resume' in %s", guard_held(g), g->timeout_s, g->work_dir);
	guard_kill_lost_forks(g);
	while (g->chan < 0) {
		struct pollfd pfd = { .fd = g->listen_fd, .events = POLLIN };
		uint64_t now = lz_now_ns();
		int fd;

		if (now >= deadline) {
			guard_punish(g);
			return 1;
		}
		if (poll(&pfd, 1, (int)MIN((deadline - now) / 1000000 + 1, GUARD_RECHECK_MS)) <= 0) {
			guard_drop_exited(g);
			if (!guard_held(g)) {
				pr_info("guardian: every process it guarded has exited; nothing to wait "
					"for");
				return 2;
			}
			continue;
		}
		fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			guard_conn(g, fd);
	}
	return 0;
}

static int guard_loop(struct guard *g)
{
	for (;;) {
		const char *why;
		int ret = lz_msg_recv(g->chan, &g->msg, &why);

		if (ret == 0) {
			if (guard_handle(g, &g->msg))
				return 0;
			continue;
		}
		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		close(g->chan);
		g->chan = -1;
		if (!guard_held(g)) {
			pr_info("guardian: the daemon is gone and no process is left to guard");
			return 0;
		}
		ret = guard_wait_resume(g);
		if (ret)
			return ret == 1;
	}
}

/* The guardian process. Never returns. */
static void guard_main(struct lazy_daemon *d, int chan)
{
	int keep[] = { chan, d->listen_fd, d->lock_fd, d->shm.fd, log_get_fd() };
	struct guard *g = calloc(1, sizeof(*g));

	setsid();
	prctl(PR_SET_NAME, "lazarus-guard");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	lz_close_fds_except(keep, (int)ARRAY_SIZE(keep));
	if (d->o.detached && log_get_fd() > STDERR_FILENO) {
		/* Whoever started a detached daemon may wait for the end of its
		 * output (a pipe): the guardian must not hold it either. */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		for (int fd = 0; fd <= STDERR_FILENO && null >= 0; fd++)
			dup2(null, fd);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (!g)
		_exit(1);
	g->shm = &d->shm;
	g->chan = chan;
	g->listen_fd = d->listen_fd;
	g->lock_fd = d->lock_fd;
	g->timeout_s = d->o.guard_timeout_s;
	g->work_dir = d->work_dir;
	g->uffd = malloc(LZ_SHM_MAX_SLOTS * sizeof(int));
	g->pidfd = malloc(LZ_SHM_MAX_SLOTS * sizeof(int));
	if (!g->uffd || !g->pidfd)
		_exit(1);
	memset(g->uffd, 0xff, LZ_SHM_MAX_SLOTS * sizeof(int));
	memset(g->pidfd, 0xff, LZ_SHM_MAX_SLOTS * sizeof(int));
	_exit(guard_loop(g));
}

int guard_spawn(struct lazy_daemon *d)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		guard_main(d, sv[1]);
	}
	close(sv[1]);
	lz_sock_timeouts(sv[0], GUARD_SEND_MS);
	d->guard_spawns++;
	d->guard_fd = sv[0];
	d->guard_pid = pid;
	d->guard_is_child = true;
	d->shm.hdr->guard_pid = pid;
	if (daemon_epoll_add(d, sv[0], &d->h_guard, H_GUARD, d))
		pr_warn("cannot watch the guardian");
	pr_info("started the guardian (pid %d)", pid);
	/* A replacement guardian gets every process that is served. */
	for (struct lpi *p = d->procs; p; p = p->next)
		if (p->sh->state == LZ_SLOT_ACTIVE && p->uffd >= 0)
			guard_add(d, p);
	return 0;
}

/* ------------------------------------------------------------ resume */

static int take_recv(struct lazy_daemon *d, int sock, uint16_t type, size_t len)
{
	const char *why = NULL;
	int ret = lz_msg_recv(sock, &d->msg, &why);

	if (ret) {
		pr_err("resume: reading from the guardian: %s",
		       why ? why : ret == -ENODATA ? "it hung up" :
		       ret == -EAGAIN ? "no answer within " TAKE_TIMEOUT_STR : strerror(-ret));
		return ret ? ret : -EPROTO;
	}
	if (d->msg.hdr.type != type || d->msg.hdr.len != len) {
		lz_msg_close_fds(&d->msg);
		pr_err("resume: unexpected message %u from the guardian", d->msg.hdr.type);
		return -EPROTO;
	}
	return 0;
}

static int take_hello(struct lazy_daemon *d, int sock)
{
	struct lz_lazy_hello h = { .role = LZ_LAZY_ROLE_RESUME };
	struct lz_lazy_reply r;
	int ret = lz_msg_send(sock, LZ_LAZY_HELLO, 1, &h, sizeof(h), NULL, 0);

	if (ret) {
		pr_err("resume: %s", strerror(-ret));
		return ret;
	}
	ret = take_recv(d, sock, LZ_LAZY_REPLY, sizeof(r));
	if (ret)
		return ret;
	memcpy(&r, d->msg.payload, sizeof(r));
	r.msg[sizeof(r.msg) - 1] = '\0';
	if (r.status) {
		pr_err("resume refused: %s", r.msg);
		return r.status;
	}
	return 0;
}

static int take_state(struct lazy_daemon *d, int sock, struct lz_lazy_g_state *st)
{
	int ret = take_recv(d, sock, LZ_LAZY_G_STATE, sizeof(*st));

	if (ret)
		return ret;
	memcpy(st, d->msg.payload, sizeof(*st));
	if (d->msg.nfds != 3) {
		lz_msg_close_fds(&d->msg);
		pr_err("resume: the guardian sent %d fds with its state, want 3", d->msg.nfds);
		return -EPROTO;
	}
	d->listen_fd = d->msg.fds[1];
	d->lock_fd = d->msg.fds[2];
	ret = shm_attach(&d->shm, d->msg.fds[0]);
	if (ret)
		pr_err("resume: the shared state from the guardian is not usable: %s",
		       strerror(-ret));
	return ret;
}

static int take_slots(struct lazy_daemon *d, int sock, uint32_t nr)
{
	for (uint32_t i = 0; i <= nr; i++) {
		struct lz_lazy_g_slot s;
		const char *why;
		int ret = lz_msg_recv(sock, &d->msg, &why);

		if (ret) {
			pr_err("resume: reading from the guardian: %s", why ? why :
			       ret == -EAGAIN ? "no answer within " TAKE_TIMEOUT_STR : strerror(-ret));
			return ret;
		}
		if (d->msg.hdr.type == LZ_LAZY_G_END)
			return 0;
		if (d->msg.hdr.type != LZ_LAZY_G_ADD || d->msg.hdr.len != sizeof(s) ||
		    d->msg.nfds < 1) {
			lz_msg_close_fds(&d->msg);
			return -EPROTO;
		}
		memcpy(&s, d->msg.payload, sizeof(s));
		if (s.slot >= LZ_SHM_MAX_SLOTS) {
			lz_msg_close_fds(&d->msg);
			return -EPROTO;
		}
		if (d->msg.nfds > 2)
			close(d->msg.fds[2]);
		ret = lpi_resume(d, s.slot, d->msg.fds[0], d->msg.nfds > 1 ? d->msg.fds[1] : -1);
		if (ret)
			return ret;
	}
	return -EPROTO;
}

/* ACTIVE slots the guardian had no uffd for: the uffd died with the daemon. */
static void take_kill_orphans(struct lazy_daemon *d)
{
	for (unsigned i = 0; i < LZ_SHM_MAX_SLOTS; i++) {
		struct lz_shm_slot *sl = &d->shm.hdr->slots[i];
		bool have = false;

		if (sl->state != LZ_SLOT_ACTIVE)
			continue;
		for (struct lpi *p = d->procs; p && !have; p = p->next)
			have = p->slot == i;
		if (have)
			continue;
		pr_err("pid %d: its userfaultfd was lost with the daemon; killing it", sl->pid);
		lz_kill_tree(sl->pid, -1);
		sl->state = LZ_SLOT_KILLED;
	}
}

int guard_take_over(struct lazy_daemon *d)
{
	struct timeval tv = { 0 };
	struct lz_lazy_g_state st;
	struct sockaddr_un sa;
	struct ucred cr;
	socklen_t salen;
	int sock, ret;

	ret = lz_sock_addr(d->work_dir, d->workfd, &sa, &salen);
	if (ret)
		return ret;
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	/* Every step of the takeover is bounded: a guardian that does not
	 * answer within TAKE_TIMEOUT_MS fails the resume with a line. */
	lz_sock_timeouts(sock, TAKE_TIMEOUT_MS);
	ret = lz_sock_connect(sock, &sa, salen);
	if (ret) {
		if (ret == -ETIMEDOUT)
			pr_err("resume: %s/%s: nobody accepted the connection within %u ms",
			       d->work_dir, LZ_LAZY_SOCK_NAME, TAKE_TIMEOUT_MS);
		else
			pr_err("resume: nothing to resume in %s (%s: %s)", d->work_dir,
			       LZ_LAZY_SOCK_NAME, strerror(-ret));
		goto out_close;
	}
	/* The guardian hands over uffds and the lock: only ours, or root's. */
	ret = lz_peer_cred(sock, &cr);
	if (!ret && !lz_uid_trusted(cr.uid))
		ret = -EPERM;
	if (ret) {
		pr_err("resume: %s/%s: the listener (pid %d) runs as uid %u, not root or uid %u; "
		       "refusing to take anything from it", d->work_dir, LZ_LAZY_SOCK_NAME,
		       ret == -EPERM ? cr.pid : 0, ret == -EPERM ? (unsigned)cr.uid : 0,
		       (unsigned)geteuid());
		goto out_close;
	}
	ret = take_hello(d, sock);
	if (!ret)
		ret = take_state(d, sock, &st);
	if (!ret)
		ret = take_slots(d, sock, st.nr_slots);
	if (ret)
		goto out_close;
	/* From now on the guardian channel: the daemon only sends on it, and
	 * a guardian that stops reading is a lost guardian (EAGAIN). */
	lz_sock_timeouts(sock, GUARD_SEND_MS);
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	d->guard_fd = sock;
	d->guard_pid = (pid_t)st.guard_pid;
	d->guard_is_child = false;
	d->shm.hdr->generation++;
	d->shm.hdr->daemon_pid = getpid();
	take_kill_orphans(d);
	{
		char why[320];

		/* Before any fault is taken again: shared memory is never a hole. */
		if (lshm_resume(d, why, sizeof(why))) {
			pr_err("resume: shared memory cannot be served: %s; killing its processes",
			       why);
			for (struct lpi *p = d->procs; p; p = p->next)
				lpi_kill(p, "its shared memory cannot be served after the resume");
		}
	}
	for (struct lpi *p = d->procs; p; p = p->next)
		lpi_resume_finish(p);
	if (daemon_epoll_add(d, sock, &d->h_guard, H_GUARD, d))
		pr_warn("cannot watch the guardian");
	pr_warn("resumed: took over %u processes from the guardian (pid %d)", d->nr_served,
		d->guard_pid);
	return 0;

out_close:
	close(sock);
	return ret;
}
