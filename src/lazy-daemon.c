/*
 * lazy-daemon.c - the lazy-pages daemon's life: claim the work directory,
 * listen, start the guardian (or take over from one with --resume), run
 * the event loop, and leave a statistics file when every page is in place.
 *
 * The loop gives demand faults priority: every round first handles what
 * epoll reports (faults and events of every uffd, client messages), retries
 * faults that met a changing layout, and only then copies one background
 * chunk, in pieces it leaves as soon as anything is ready (lpi_fill_one).
 * With fill work pending it polls without sleeping.
 */
#define LOG_PREFIX "lazy-pages: "

#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lazy-int.h"
#include "log.h"
#include "safe-file.h"

void lazy_daemon_opts_init(struct lazy_daemon_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->status_fd = -1;
	o->ready_fd = -1;
	o->guard_timeout_s = LZ_LAZY_GUARD_TIMEOUT_S;
	o->conn_timeout_ms = LZ_LAZY_CONN_TIMEOUT_MS;
	o->fault_around_kib = LZ_LAZY_FAULT_AROUND_KIB;
	o->fill_chunk_kib = LZ_LAZY_FILL_CHUNK_KIB;
}

int daemon_epoll_add(struct lazy_daemon *d, int fd, struct lazy_handler *h, enum lazy_hkind kind,
		     void *obj)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = h };

	h->kind = kind;
	h->obj = obj;
	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

bool daemon_work_pending(struct lazy_daemon *d)
{
	struct epoll_event ev;

	/* Level-triggered: whatever is reported here is reported again by the
	 * loop's own epoll_wait, which handles it. */
	return epoll_wait(d->epfd, &ev, 1, 0) > 0;
}

void daemon_epoll_del(struct lazy_daemon *d, int fd)
{
	/* ENOENT (never added) is fine: teardown paths call this blindly. */
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static int daemon_dirs(struct lazy_daemon *d)
{
	const char *work = d->o.work_dir ? d->o.work_dir : d->o.images_dir;
	char why[SF_WHY_MAX], twhy[PATH_MAX + 256];
	int ret;

	if (!d->o.images_dir || !realpath(d->o.images_dir, d->images_dir)) {
		pr_perror("images directory %s", d->o.images_dir ? d->o.images_dir : "(none)");
		return -errno;
	}
	/* The rule for every directory lazarus writes in (safe-file.h): ours or
	 * root's, nobody else may write there, not a symlink. Restore checks the
	 * same before it connects: another user who can write here could
	 * replace the socket, the lock or the statistics. */
	d->workfd = sf_dir_open_checked(AT_FDCWD, work, 0, why);
	if (d->workfd < 0) {
		if (d->workfd == -EPERM || d->workfd == -ELOOP)
			pr_err("work directory %s: %s; refusing to listen there", work, why);
		else
			pr_err("work directory %s: %s", work, why);
		return d->workfd;
	}
	if (!realpath(work, d->work_dir)) {
		pr_perror("work directory %s", work);
		return -errno;
	}
	d->dirfd = open(d->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd < 0) {
		pr_perror("images directory %s", d->images_dir);
		return -errno;
	}
	/*
	 * What it serves goes into the memory of processes restore runs with
	 * its privilege: the same trust rule as restore's (restore-trust.h),
	 * here for the directory, and for each image when it is opened.
	 */
	rst_trust_init(&d->trust, d->o.trust_images_of);
	ret = rst_trust_dir(&d->trust, d->dirfd, d->images_dir, twhy, sizeof(twhy));
	if (ret) {
		pr_err("%s; refusing to serve it", twhy);
		return ret;
	}
	/* --record-ws writes ws-<id>.img there: the rule of every directory
	 * lazarus writes in (safe-file.h). */
	if (d->o.record_ws && (ret = sf_dir_check(d->dirfd, 0, why)))
		pr_err("images directory %s: %s; refusing to record working sets there",
		       d->images_dir, why);
	return ret;
}

/*
 * WORKDIR/lazy-pages.lock, created 0600 or reused (it outlives daemons, so
 * not O_EXCL): never through a symlink, never a file that is not ours.
 * Read-write, unlike a log (sf_open_log): a second daemon reads the pid.
 */
static int lock_open(struct lazy_daemon *d)
{
	const char *why = NULL;
	struct stat st;
	int fd, ret = 0;

	fd = openat(d->workfd, LZ_LAZY_LOCK_NAME,
		    O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st))
		ret = -errno;
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_uid != geteuid())
		why = "owned by another user";
	else if (st.st_nlink != 1)
		why = "has more than one link";
	else if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600))
		ret = -errno;
	if (!ret && !why)
		return fd;
	pr_err("%s/%s: %s", d->work_dir, LZ_LAZY_LOCK_NAME,
	       why ? why : ret == -ELOOP ? "is a symbolic link" : strerror(-ret));
	if (fd >= 0)
		close(fd);
	return ret ? ret : -EPERM;
}

/*
 * One daemon per work directory. The lock is an flock on lazy-pages.lock,
 * held by the daemon and inherited by its guardian, so a second daemon is
 * refused even while a dead daemon's guardian waits for --resume.
 */
static int daemon_lock(struct lazy_daemon *d)
{
	char pid[32] = "";
	ssize_t n;

	d->lock_fd = lock_open(d);
	if (d->lock_fd < 0)
		return d->lock_fd;
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB)) {
		n = pread(d->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		pr_err("%s/%s: another lazy-pages daemon (pid %s) or its guardian serves this "
		       "directory", d->work_dir, LZ_LAZY_SOCK_NAME, pid[0] ? pid : "?");
		return -EBUSY;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (ftruncate(d->lock_fd, 0) || pwrite(d->lock_fd, pid, (size_t)n, 0) != n)
		pr_warn_perror("%s/%s", d->work_dir, LZ_LAZY_LOCK_NAME);
	return 0;
}

static int daemon_listen(struct lazy_daemon *d)
{
	struct sockaddr_un sa;
	socklen_t len;
	mode_t mask;
	int ret = lz_sock_addr(d->work_dir, d->workfd, &sa, &len);

	if (ret) {
		pr_err("%s/%s: path too long", d->work_dir, LZ_LAZY_SOCK_NAME);
		return ret;
	}
	/* We hold the lock: any socket file left there is stale. */
	unlinkat(d->workfd, LZ_LAZY_SOCK_NAME, 0);
	d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0) {
		pr_perror("%s/%s", d->work_dir, LZ_LAZY_SOCK_NAME);
		return -errno;
	}
	/* The socket file is created 0600 (connecting needs write access): the
	 * umask decides its mode at bind, so nobody else ever sees it open. */
	mask = umask(0177);
	ret = bind(d->listen_fd, (struct sockaddr *)&sa, len) ? -errno : 0;
	umask(mask);
	if (!ret && listen(d->listen_fd, 64))
		ret = -errno;
	if (ret)
		pr_err("%s/%s: %s", d->work_dir, LZ_LAZY_SOCK_NAME, strerror(-ret));
	return ret;
}

static int daemon_start(struct lazy_daemon *d)
{
	int ret = daemon_lock(d);

	if (!ret)
		ret = daemon_listen(d);
	if (ret)
		return ret;
	ret = shm_create(&d->shm, d->images_dir);
	if (ret) {
		pr_err("shared state memfd: %s", strerror(-ret));
		return ret;
	}
	d->shm.hdr->daemon_pid = getpid();
	ret = guard_spawn(d);
	if (ret)
		pr_err("cannot start the guardian: %s", strerror(-ret));
	return ret;
}

static void ready_byte(int *fd)
{
	const char b = 1;

	if (*fd < 0)
		return;
	if (write(*fd, &b, 1) != 1)
		pr_warn_perror("status fd %d", *fd);
	close(*fd);
	*fd = -1;
}

static void daemon_ready(struct lazy_daemon *d)
{
	int null;

	ready_byte(&d->o.status_fd);
	ready_byte(&d->o.ready_fd);
	/* Detached: whoever started us may wait for our stderr to close. */
	if (d->o.detached && (null = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0) {
		dup2(null, STDERR_FILENO);
		close(null);
	}
}

static void daemon_dispatch(struct lazy_daemon *d, struct lazy_handler *h)
{
	struct lpi *p = h->obj;

	switch (h->kind) {
	case H_LISTEN:
		conn_accept(d);
		break;
	case H_CONN:
		conn_readable(h->obj);
		break;
	case H_UFFD:
		if (p->sh->state == LZ_SLOT_ACTIVE)
			lpi_readable(p);
		break;
	case H_PIDFD:
		if (p->sh->state == LZ_SLOT_ACTIVE)
			lpi_exited(p);
		break;
	case H_GUARD:
		/* The guardian never writes: readable means it is gone. */
		guard_lost(d);
		break;
	}
}

static int daemon_loop(struct lazy_daemon *d)
{
	struct epoll_event ev[64];
	/* Try a fill before the first wait: a daemon that took processes over
	 * (--resume) may have fill work and no event that would wake it. */
	bool filled = true;

	for (;;) {
		bool active = lpi_reap(d);
		int timeout = conn_expire(d), ws = lpi_ws_tick(d), n;

		/* Done once some restore came and went, and nothing is left. */
		if (!active && !conn_pending(d) && (d->nr_served || d->nr_clients || d->o.resume))
			return d->nr_killed ? -EIO : 0;
		if (ws >= 0 && (timeout < 0 || ws < timeout))
			timeout = ws; /* a working-set recording ends then */
		if (filled)
			timeout = 0;
		else if (lpi_any_deferred(d) && (timeout < 0 || timeout > 1))
			timeout = 1; /* the layout is changing: retry soon */
		n = epoll_wait(d->epfd, ev, (int)ARRAY_SIZE(ev), timeout);
		if (n < 0 && errno != EINTR) {
			pr_perror("epoll_wait");
			return -errno;
		}
		for (int i = 0; i < n; i++)
			daemon_dispatch(d, ev[i].data.ptr);
		lpi_retry_deferred(d);
		filled = lpi_fill_one(d);
	}
}

static void daemon_fini(struct lazy_daemon *d, bool clean)
{
	conn_free_all(d);
	lpi_free_all(d);
	lshm_free_all(d);
	if (clean && d->listen_fd >= 0)
		unlinkat(d->workfd, LZ_LAZY_SOCK_NAME, 0);
	shm_detach(&d->shm);
	/* Status fds still open here mean we never got ready: closing them
	 * without a byte tells whoever waits. */
	int fds[] = { d->o.status_fd, d->o.ready_fd, d->guard_fd, d->listen_fd,
		      d->lock_fd,     d->epfd,	     d->dirfd,	  d->workfd };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(d);
}

static int daemon_check_opts(const struct lazy_daemon_opts *o)
{
	unsigned fa = o->fault_around_kib, fc = o->fill_chunk_kib;

	if (fa < 4 || fa > 2048 || (fa & (fa - 1))) {
		pr_err("fault-around %u KiB: must be a power of two from 4 to 2048", fa);
		return -EINVAL;
	}
	if (o->record_ws && o->prefetch_ws) {
		pr_err("--record-ws and --prefetch-ws: one or the other (a recording holds the "
		       "fill back, a prefetch runs it first)");
		return -EINVAL;
	}
	if (fc < 64 || fc > 2048 || fc % 4) {
		pr_err("fill chunk %u KiB: must be 64 to 2048 KiB, whole pages", fc);
		return -EINVAL;
	}
	return 0;
}

int lazy_daemon_run(const struct lazy_daemon_opts *opts)
{
	struct lazy_daemon *d;
	int ret = daemon_check_opts(opts);

	if (ret)
		return ret;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->o = *opts;
	d->dirfd = d->workfd = d->epfd = d->listen_fd = d->lock_fd = d->guard_fd = -1;
	d->shm.fd = -1;
	d->fa_pages = opts->fault_around_kib / 4;
	d->fill_pages = opts->fill_chunk_kib / 4;
	d->fill_piece = MIN(d->fill_pages, (uint64_t)LZ_LAZY_FILL_PIECE_KIB / 4);
	d->t_start_ns = lz_now_ns();
	d->thp = lz_thp_available();
	signal(SIGPIPE, SIG_IGN);

	ret = daemon_dirs(d);
	if (!ret) {
		d->epfd = epoll_create1(EPOLL_CLOEXEC);
		ret = d->epfd < 0 ? -errno : 0;
	}
	if (!ret)
		ret = d->o.resume ? guard_take_over(d) : daemon_start(d);
	if (!ret)
		ret = daemon_epoll_add(d, d->listen_fd, &d->h_listen, H_LISTEN, d);

	if (ret) {
		daemon_fini(d, false);
		return ret;
	}
	if (strcmp(d->shm.hdr->images_dir, d->images_dir))
		pr_warn("serving images of %s (the first daemon was given %s)", d->images_dir,
			d->shm.hdr->images_dir);
	pr_info("listening on %s/%s (fault-around %u KiB, fill chunk %u KiB%s)", d->work_dir,
		LZ_LAZY_SOCK_NAME, opts->fault_around_kib, opts->fill_chunk_kib,
		opts->record_ws ? ", recording working sets" :
		opts->prefetch_ws ? ", working sets first" : "");
	daemon_ready(d);

	ret = daemon_loop(d);
	stats_write(d);
	guard_done(d);
	if (!ret)
		pr_info("every page is in place or its process gone: exiting");
	else if (ret == -EIO)
		pr_err("exiting: %u processes were killed because their memory could not be "
		       "served", d->nr_killed);
	daemon_fini(d, ret == 0 || ret == -EIO);
	return ret;
}
