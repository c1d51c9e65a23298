/*
 * lazy-proc.c - one served process ("lpi"): its userfaultfd events (page
 * faults, fork, remap, remove, unmap), placing pages with UFFDIO_COPY and
 * UFFDIO_ZEROPAGE, background fill, completion, exit and kill.
 *
 * Ordering rules that keep memory right (see also lazy-shm.h):
 *  - every event of a read batch is applied before any fault of it is
 *    resolved: once the kernel has handed an event out, the process may
 *    already fault on the new layout, and the kernel's mmap_changing guard
 *    (EAGAIN) has been lifted;
 *  - a page is marked done only after the ioctl that placed it returned;
 *  - a resolve that fails with EAGAIN (layout changing) is retried after
 *    the pending events have been read, never dropped.
 */
#define LOG_PREFIX "lazy-pages: "

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lazy-int.h"
#include "lazy-nspid.h"
#include "log.h"
#include "proc.h"

#define PG LZ_PAGE_SIZE

static bool lpi_active(const struct lpi *p)
{
	return p->sh->state == LZ_SLOT_ACTIVE;
}

static void lpi_set_name(struct lpi *p, const struct lpi *parent)
{
	if (p->pid)
		snprintf(p->name, sizeof(p->name), "pid %d", p->pid);
	else if (parent)
		snprintf(p->name, sizeof(p->name), "child of %.40s", parent->name);
	else
		snprintf(p->name, sizeof(p->name), "slot %u", p->slot);
}

static struct lpi *lpi_alloc(struct lazy_daemon *d, unsigned slot)
{
	struct lpi *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->d = d;
	p->slot = slot;
	p->sh = &d->shm.hdr->slots[slot];
	p->uffd = -1;
	p->pidfd = -1;
	lr_init(&p->lay);
	p->next = d->procs;
	d->procs = p;
	return p;
}

static int pidfd_open_pid(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

static int pidfd_kill(int pidfd)
{
	return syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) ? -errno : 0;
}

/* The pid a pidfd refers to, from its fdinfo; -1 when it is not a pidfd. */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], buf[512], *s;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	if (proc_read_small(path, buf, sizeof(buf)) <= 0)
		return -1;
	s = strstr(buf, "\nPid:\t");
	return s ? (pid_t)atoi(s + 6) : -1;
}

/* ------------------------------------------------------------ teardown */

static void lpi_close(struct lpi *p)
{
	struct lazy_daemon *d = p->d;

	if (p->uffd >= 0)
		daemon_epoll_del(d, p->uffd);
	if (p->pidfd >= 0)
		daemon_epoll_del(d, p->pidfd);
	/* The slot's state is final before the guardian lets go of its copy. */
	guard_drop(d, p);
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->uffd = p->pidfd = -1;
	free(p->deferred);
	p->deferred = NULL;
	p->nr_deferred = p->cap_deferred = 0;
	lpi_ws_free(p); /* a recording not ended by now is not written */
}

static void lpi_gone(struct lpi *p, const char *why)
{
	if (!lpi_active(p))
		return;
	pr_info("%s %s; %" PRIu64 " of its pages were still outstanding", p->name, why,
		p->outstanding);
	lpi_ws_end(p, why);
	p->sh->state = LZ_SLOT_GONE;
	lpi_close(p);
}

void lazy_poison(int uffd, const struct lr_set *lay, const uint64_t *done)
{
	unsigned tries = 0;

	for (uint32_t i = 0; i < lay->nr; i++) {
		const struct lr_run *r = &lay->v[i];

		for (uint64_t k = 0; k < r->npages;) {
			uint64_t addr, n = 0, got;
			int ret;

			if (lr_done(done, r->idx + k)) {
				k++;
				continue;
			}
			while (k + n < r->npages && !lr_done(done, r->idx + k + n))
				n++;
			addr = r->start + k * PG;
			k += n;
			while (n) {
				ret = uffd_poison(uffd, addr, n * PG, &got);
				got = ret ? got / PG : n;
				if (ret == -EEXIST || ret == -ENOENT)
					got++; /* in place, or unmapped: nothing to guard */
				else if (ret && (ret != -EAGAIN || (!got && ++tries > 1000)))
					break;
				got = MIN(got, n);
				addr += got * PG;
				n -= got;
			}
		}
	}
}

static void lpi_poison_outstanding(struct lpi *p)
{
	if (p->uffd >= 0 && p->done)
		lazy_poison(p->uffd, &p->lay, p->done);
}

void lpi_kill(struct lpi *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!lpi_active(p))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("%s: %s; killing it (%" PRIu64 " pages could not be served)", p->name, msg,
	       p->outstanding);
	p->d->nr_killed++;
	if (p->pidfd >= 0 && pidfd_kill(p->pidfd) && errno != ESRCH)
		pr_perror("%s: pidfd_send_signal(SIGKILL)", p->name);
	lpi_poison_outstanding(p);
	p->sh->state = LZ_SLOT_KILLED;
	lpi_close(p);
}

void lpi_exited(struct lpi *p)
{
	lpi_gone(p, "exited");
}

/* ------------------------------------------------------------ placing */

static void lpi_mark(struct lpi *p, uint64_t idx, uint64_t n, uint64_t *counter)
{
	lr_mark(p->done, idx, n);
	p->outstanding -= MIN(n, p->outstanding);
	*counter += n;
}

/* An error of a resolving ioctl that is not a retry: the process is gone,
 * or something we cannot serve around. */
static int lpi_ioctl_failed(struct lpi *p, const char *op, uint64_t addr, int err)
{
	if (err == -ESRCH) {
		lpi_gone(p, "exited (ESRCH)");
		return -ESRCH;
	}
	lpi_kill(p, "%s at 0x%" PRIx64 ": %s", op, addr, strerror(-err));
	return err;
}

/*
 * Place [ch->start, +npages) (outstanding pages of one run) from the
 * source. 0 when all of it is in; -EAGAIN when the layout is changing (the
 * rest stays outstanding; retry after reading events); another -errno when
 * the process is gone or was killed.
 */
int lpi_place(struct lpi *p, const struct lr_run *ch, enum place_kind kind,
	      const uint8_t *data_in)
{
	uint64_t addr = ch->start, idx = ch->idx, left = ch->npages;
	uint64_t *ctr = kind == PLACE_FILL ? &p->sh->st.pages_fill :
			kind == PLACE_PREFETCH ? &p->sh->st.pages_prefetch : &p->sh->st.pages_fault;
	bool single = false;

	while (left) {
		uint64_t n = single ? 1 : left, done = 0;
		const void *data = data_in ? data_in + (idx - ch->idx) * PG : NULL;
		int ret = data_in ? 0 : src_pages(p->src, idx, &n, &data);

		if (ret) {
			lpi_kill(p, "%s", p->src->why);
			return ret;
		}
		if (data)
			ret = uffd_copy(p->uffd, addr, data, n * PG, &done);
		else
			ret = uffd_zero(p->uffd, addr, n * PG, &done);
		done = ret ? done / PG : n;
		if (done)
			lpi_mark(p, idx, done, data ? ctr : &p->sh->st.pages_zero);
		addr += done * PG;
		idx += done;
		left -= done;
		if (!ret || (ret == -EAGAIN && done))
			continue; /* a partial copy: the next call says why it stopped */
		if (ret == -EAGAIN)
			return -EAGAIN;
		if (ret == -EEXIST) {
			/* Already there: placed before a crash, or by a racing fault. */
			lpi_mark(p, idx, 1, &p->sh->st.pages_exist);
			addr += PG, idx++, left--;
			continue;
		}
		if (ret == -ENOENT && !single && n > 1) {
			/* The range crosses a VMA boundary the restore did not
			 * announce (mprotect splits without an event): go page by
			 * page so every page that is registered still gets in. */
			single = true;
			continue;
		}
		if (ret == -ENOENT) {
			if (!p->warned_enoent)
				pr_warn("%s: 0x%" PRIx64 " is not in a registered VMA; its lazy pages "
					"are dropped", p->name, addr);
			p->warned_enoent = true;
			lpi_mark(p, idx, 1, &p->sh->st.pages_dropped);
			addr += PG, idx++, left--;
			continue;
		}
		return lpi_ioctl_failed(p, data ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE", addr, ret);
	}
	return 0;
}

/*
 * A fault on a page that is not outstanding: never dumped (zero), dropped,
 * or already placed (then the zero page is refused with EEXIST). Holes are
 * often large, so zero-fill ahead within the fault-around window, up to the
 * next run; a page already present stops the fill there.
 */
static int lpi_zero_around(struct lpi *p, uint64_t addr)
{
	uint64_t lo, hi, win = p->d->fa_pages * PG, end, done;
	int ret;

	lr_gap(&p->lay, addr, &lo, &hi);
	end = MIN(ALIGN_DOWN(addr, win) + win, hi);
	if (end <= addr) /* a page already placed: this fault raced its copy */
		end = addr + PG;
	ret = uffd_zero(p->uffd, addr, end - addr, &done);
	if (ret == -ENOENT && end - addr > PG) { /* the window crosses a VMA end */
		end = addr + PG;
		ret = uffd_zero(p->uffd, addr, PG, &done);
	}
	if (!ret)
		done = end - addr;
	p->sh->st.pages_zero += done / PG;
	if (done)
		return 0;
	if (ret == -EEXIST)
		p->sh->st.faults_dup++;
	else if (ret == -EAGAIN)
		return -EAGAIN;
	else if (ret && ret != -ENOENT) /* ENOENT: unmapped meanwhile; it faults anew */
		return lpi_ioctl_failed(p, "UFFDIO_ZEROPAGE", addr, ret);
	return 0;
}

/*
 * Serve a fault: only its own page here, so the thread runs again after one
 * page copied instead of its whole window; *around says the rest of the
 * window is outstanding (lpi_around_later queues it).
 */
static int lpi_resolve(struct lpi *p, uint64_t addr, bool *around)
{
	/* Recording a working set: one page per fault, so each first access is
	 * a fault of its own and gets recorded. */
	uint64_t fa = p->ws_rec ? 1 : p->d->fa_pages;
	struct lr_run ch;
	int ret;

	*around = false;
	if (lr_fault_chunk(&p->lay, p->done, addr, fa, &ch) == 0) {
		if (ch.npages > 1) {
			ch.idx += (addr - ch.start) / PG;
			ch.start = addr;
			ch.npages = 1;
			*around = true;
		}
		ret = lpi_place(p, &ch, PLACE_FAULT, NULL);
		if (!ret)
			lpi_ws_fault(p, &ch);
		return ret;
	}
	ret = lshm_fault(p, addr); /* shared memory is never a hole to zero */
	return ret == 1 ? lpi_zero_around(p, addr) : ret;
}

/*
 * The rest of a served fault's window: the outstanding pages on either side
 * of its page, within the aligned window (lr_fault_chunk clips to the run and
 * stops at pages already in place). Both sides are read and checked as one
 * piece of the source first. A changing layout (-EAGAIN) leaves them to the
 * fill; an error has killed or dropped the process already.
 */
static void lpi_fault_around(struct lpi *p, uint64_t addr)
{
	uint64_t fa = p->d->fa_pages, win = fa * PG, wlo = ALIGN_DOWN(addr, win);
	struct lr_run lo = { 0 }, hi = { 0 };

	if (addr > wlo && lr_fault_chunk(&p->lay, p->done, addr - PG, fa, &lo))
		lo.npages = 0;
	if (addr + PG < wlo + win && lr_fault_chunk(&p->lay, p->done, addr + PG, fa, &hi))
		hi.npages = 0;
	if (lo.npages && hi.npages && lo.idx + lo.npages + 1 == hi.idx) {
		uint64_t n = hi.idx + hi.npages - lo.idx;
		const void *data;

		/* Errors come again, and are handled, in lpi_place. */
		(void)src_pages(p->src, lo.idx, &n, &data);
	}
	if (lo.npages && lpi_place(p, &lo, PLACE_FAULT, NULL) && !lpi_active(p))
		return;
	/* Again: lo may have covered it (the layout changed since the fault). */
	if (hi.npages && lpi_active(p) &&
	    !lr_fault_chunk(&p->lay, p->done, addr + PG, fa, &hi))
		(void)lpi_place(p, &hi, PLACE_FAULT, NULL);
}

static void lpi_defer(struct lpi *p, uint64_t addr, uint64_t t_read, uint32_t tid)
{
	if (p->nr_deferred == p->cap_deferred) {
		size_t cap = p->cap_deferred ? p->cap_deferred * 2 : 16;
		struct lazy_fault *v = realloc(p->deferred, cap * sizeof(*v));

		if (!v) {
			/* The thread would wait forever: better dead than stuck. */
			lpi_kill(p, "out of memory queueing a fault");
			return;
		}
		p->deferred = v;
		p->cap_deferred = cap;
	}
	p->deferred[p->nr_deferred++] = (struct lazy_fault){ addr, t_read, tid };
}

/* true when the rest of its window is due (lpi_fault_around) */
static bool lpi_serve_fault(struct lpi *p, uint64_t addr, uint64_t t_read, uint32_t tid)
{
	bool around;
	int ret = lpi_resolve(p, addr, &around);

	if (ret == -EAGAIN)
		lpi_defer(p, addr, t_read, tid);
	else if (ret == 0)
		stats_fault(&p->sh->st, tid, lz_now_ns() - t_read);
	return !ret && around;
}

/*
 * A forked child is known only by its uffd; its first fault names a thread,
 * by its id in its own pid namespace (lazy-nspid.h): looked up from its
 * parent's namespace, checked again once we hold a pidfd.
 */
static void lpi_learn_pid(struct lpi *p, pid_t tid)
{
	pid_t tgid = lazy_tid_here(p->kin, tid);
	int fd;

	if (tgid <= 0)
		return;
	fd = pidfd_open_pid(tgid);
	if (fd < 0)
		return;
	if (lazy_tid_here(p->kin, tid) != tgid) {
		close(fd);
		return;
	}
	pr_info("%s is pid %d", p->name, tgid);
	p->pid = tgid;
	p->sh->pid = tgid;
	p->pidfd = fd;
	lpi_set_name(p, NULL);
	if (daemon_epoll_add(p->d, fd, &p->h_pidfd, H_PIDFD, p))
		pr_warn("%s: cannot watch its exit", p->name);
	guard_pidfd(p->d, p);
}

static bool lpi_fault(struct lpi *p, const struct uffd_msg *m, uint64_t t_read)
{
	uint32_t tid = 0;

	p->sh->st.faults++;
	if (p->sh->features & UFFD_FEATURE_THREAD_ID) {
		tid = m->arg.pagefault.feat.ptid;
		if (!p->pid && tid)
			lpi_learn_pid(p, (pid_t)tid);
	}
	return lpi_serve_fault(p, ALIGN_DOWN(m->arg.pagefault.address, PG), t_read, tid);
}

/* ------------------------------------------------------------ events */

/* Publish a changed layout; what it no longer holds is dropped. */
static void lpi_layout_changed(struct lpi *p, const struct lr_set *removed)
{
	uint64_t gone = 0;

	for (uint32_t i = 0; removed && i < removed->nr; i++)
		gone += lr_count_clear(p->done, removed->v[i].idx, removed->v[i].npages);
	p->outstanding -= MIN(gone, p->outstanding);
	p->sh->st.pages_dropped += gone;
	if (shm_layout_publish(&p->d->shm, p->sh, &p->lay))
		lpi_kill(p, "the shared state is full; its layout can no longer be kept");
}

static void lpi_cut(struct lpi *p, uint64_t start, uint64_t end, const char *what)
{
	struct lr_set cut;

	lr_init(&cut);
	if (lr_cut(&p->lay, start, end, &cut)) {
		lpi_kill(p, "out of memory applying %s", what);
		return;
	}
	pr_debug("%s: %s [0x%" PRIx64 ", 0x%" PRIx64 ")", p->name, what, start, end);
	lpi_layout_changed(p, &cut);
	lr_fini(&cut);
}

static void lpi_remap(struct lpi *p, const struct uffd_msg *m)
{
	uint64_t from = m->arg.remap.from, to = m->arg.remap.to, len = m->arg.remap.len;
	struct lr_set dropped;

	lr_init(&dropped);
	if (lr_remap(&p->lay, from, to, ALIGN_UP(len, PG), &dropped)) {
		lpi_kill(p, "cannot apply mremap 0x%" PRIx64 " -> 0x%" PRIx64, from, to);
		return;
	}
	pr_debug("%s: remap 0x%" PRIx64 " -> 0x%" PRIx64 " (%" PRIu64 " bytes)", p->name, from, to,
		 len);
	lpi_layout_changed(p, &dropped);
	lr_fini(&dropped);
}

/* The child inherits the parent's outstanding pages: same layout, same
 * done bits, same source. Pages the parent got after the fork are not the
 * child's: the kernel refuses copies into the parent (EAGAIN) from the
 * moment it duplicates the mm until this event has been read. */
static void lpi_fork(struct lpi *p, int ufd)
{
	struct lazy_daemon *d = p->d;
	int slot;
	struct lpi *c;

	if (d->o.test_crash_on_fork)
		kill(getpid(), SIGKILL); /* the worst moment to die: tests the guardian */
	slot = shm_slot_new(&d->shm);
	if (slot < 0 || !(c = lpi_alloc(d, (unsigned)slot))) {
		pr_err("%s forked, but a new process cannot be tracked (%s); its missing pages "
		       "are poisoned", p->name, slot < 0 ? "too many processes" : "out of memory");
		lazy_poison(ufd, &p->lay, p->done);
		close(ufd);
		return;
	}
	/* The kernel gives the child's uffd the flags the parent's was
	 * created with, not the ones set on it since: non-blocking, as above. */
	fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK);
	c->uffd = ufd;
	c->kin = p->pid ? p->pid : p->kin; /* in the child's pid namespace */
	c->src = src_get(p->src);
	c->finished = p->finished;
	c->conn = p->conn;
	c->fill_cursor = p->fill_cursor;
	lpi_set_name(c, p);
	c->sh->img_id = p->sh->img_id;
	memcpy(c->sh->dump_id, p->sh->dump_id, sizeof(c->sh->dump_id));
	c->sh->parent = p->slot;
	c->sh->features = p->sh->features;
	c->sh->flags = LZ_SLOT_F_FORKED | (p->sh->flags & LZ_SLOT_F_FINISHED);
	p->sh->pending_fork = c->slot;
	if (lr_copy(&c->lay, &p->lay) ||
	    shm_slot_bitmap(&d->shm, c->sh, p->sh->nr_idx, p->done) ||
	    shm_layout_publish(&d->shm, c->sh, &c->lay)) {
		pr_err("%s forked, but its child's state cannot be kept; killing the child", p->name);
		lazy_poison(ufd, &p->lay, p->done);
		c->sh->state = LZ_SLOT_KILLED;
		lpi_close(c);
		return;
	}
	c->done = shm_done(&d->shm, c->sh);
	c->outstanding = p->outstanding;
	c->sh->st.pages_total = c->outstanding;
	c->sh->st.t_start_ns = lz_now_ns();
	c->sh->state = LZ_SLOT_ACTIVE;
	d->nr_served++;
	if (guard_add(d, c))
		pr_warn("%s: the guardian does not hold its userfaultfd", c->name);
	if (daemon_epoll_add(d, ufd, &c->h_uffd, H_UFFD, c))
		lpi_kill(c, "cannot watch its userfaultfd");
	pr_info("%s forked: serving its child (%" PRIu64 " pages outstanding)", p->name,
		c->outstanding);
}

/* Apply one non-fault event. Each is idempotent given the state it was read
 * in, so replaying an unconsumed one after a crash is safe. */
static void lpi_event(struct lpi *p, struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_FORK:
		lpi_fork(p, (int)m->arg.fork.ufd);
		break;
	case UFFD_EVENT_REMAP:
		lpi_remap(p, m);
		break;
	case UFFD_EVENT_REMOVE:
		/* MADV_DONTNEED/REMOVE: the pages must read back as zeros. They
		 * stay registered; a later fault there finds nothing outstanding
		 * and gets a zero page, which is what the kernel would do. */
		lshm_removed(p, m->arg.remove.start, m->arg.remove.end);
		lpi_cut(p, m->arg.remove.start, m->arg.remove.end, "remove");
		break;
	case UFFD_EVENT_UNMAP:
		lpi_cut(p, m->arg.remove.start, m->arg.remove.end, "unmap");
		break;
	default:
		pr_warn("%s: unknown userfaultfd event 0x%x ignored", p->name, m->event);
		break;
	}
	/* Consumed only now that its effect is published. */
	__atomic_store_n(&m->event, 0, __ATOMIC_RELEASE);
	p->sh->pending_fork = LZ_SHM_NO_SLOT;
}

/* Queue the rest of a served fault's window (lpi_around_one places it). */
static void lpi_around_later(struct lpi *p, uint64_t addr)
{
	if (p->nr_around == LZ_AROUND_MAX) {
		memmove(p->around, p->around + 1, (LZ_AROUND_MAX - 1) * sizeof(p->around[0]));
		p->nr_around--;
	}
	p->around[p->nr_around++] = addr;
}

/*
 * Events first, then every fault's own page. The fault-arounds wait in
 * p->around and go like fill pieces, one per loop round once nothing is
 * ready: a thread waits for the pages of the faults read before its own,
 * not for their whole windows.
 */
static void lpi_batch(struct lpi *p, size_t nr, uint64_t t_read)
{
	struct uffd_msg *in = p->sh->inbox;

	for (size_t i = 0; i < nr && lpi_active(p); i++)
		if (in[i].event != UFFD_EVENT_PAGEFAULT)
			lpi_event(p, &in[i]);
	for (size_t i = 0; i < nr; i++) {
		if (in[i].event != UFFD_EVENT_PAGEFAULT)
			continue;
		if (lpi_active(p)) {
			if (in[i].arg.pagefault.flags &
			    (UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_MINOR))
				pr_warn("%s: unexpected WP/minor fault at 0x%llx", p->name,
					in[i].arg.pagefault.address);
			else if (lpi_fault(p, &in[i], t_read))
				lpi_around_later(p, ALIGN_DOWN(in[i].arg.pagefault.address, PG));
		}
		in[i].event = 0;
	}
}

void lpi_readable(struct lpi *p)
{
	/* A few reads per wakeup; epoll reports the rest (level-triggered). */
	for (int round = 0; round < 8 && lpi_active(p); round++) {
		ssize_t n = read(p->uffd, p->sh->inbox, sizeof(p->sh->inbox));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			lpi_kill(p, "read from its userfaultfd: %s", strerror(errno));
			break;
		}
		lpi_batch(p, (size_t)n / sizeof(struct uffd_msg), lz_now_ns());
		if ((size_t)n < sizeof(p->sh->inbox))
			break;
	}
}

void lpi_retry_deferred(struct lazy_daemon *d)
{
	for (struct lpi *p = d->procs; p; p = p->next) {
		struct lazy_fault *v = p->deferred;
		size_t nr = p->nr_deferred;

		if (!nr || !lpi_active(p))
			continue;
		p->deferred = NULL;
		p->nr_deferred = p->cap_deferred = 0;
		for (size_t i = 0; i < nr && lpi_active(p); i++)
			if (lpi_serve_fault(p, v[i].addr, v[i].t_read, v[i].tid))
				lpi_around_later(p, v[i].addr);
		free(v);
	}
}

bool lpi_any_deferred(const struct lazy_daemon *d)
{
	for (const struct lpi *p = d->procs; p; p = p->next)
		if (p->nr_deferred && lpi_active(p))
			return true;
	return false;
}

/* ------------------------------------------------------------ fill */

static bool lpi_fillable(const struct lpi *p)
{
	return lpi_active(p) && p->finished && p->outstanding && !p->nr_deferred && !p->ws_rec;
}

/*
 * Copy the chunk in pieces of at most d->fill_piece pages, each ending on a
 * checksum block (src_piece), and stop between two when anything is ready:
 * a fault waits behind one piece at most, never a whole chunk. What is left
 * stays outstanding and the cursor stays on it, so the next round goes on
 * from there once the loop has served what was ready.
 */
static void lpi_fill_chunk(struct lpi *p, const struct lr_run *ch)
{
	struct lazy_daemon *d = p->d;
	struct lr_run pc = { .start = ch->start, .idx = ch->idx };
	uint64_t left = ch->npages;

	while (left) {
		pc.npages = src_piece(p->src, pc.idx, MIN(left, d->fill_piece));
		p->fill_cursor = lr_end(&pc);
		if (lpi_place(p, &pc, PLACE_FILL, NULL))
			return; /* gone, killed, or a changing layout: the loop decides */
		pc.start = lr_end(&pc);
		pc.idx += pc.npages;
		left -= pc.npages;
		if (left && daemon_work_pending(d))
			return;
	}
}

/* The newest due fault-around of any process: it is where a thread runs
 * now. Before the working set and the fill, and like them one per round. */
static bool lpi_around_one(struct lazy_daemon *d)
{
	for (struct lpi *p = d->procs; p; p = p->next) {
		if (!p->nr_around)
			continue;
		if (!lpi_active(p)) {
			p->nr_around = 0;
			continue;
		}
		lpi_fault_around(p, p->around[--p->nr_around]);
		return true;
	}
	return false;
}

bool lpi_fill_one(struct lazy_daemon *d)
{
	unsigned n = 0, pick;
	struct lpi *p;
	struct lr_run ch;

	if (lpi_around_one(d))
		return true;

	/* A recorded working set goes before any background fill. */
	for (p = d->procs; p; p = p->next)
		if (p->ws_pre && lpi_fillable(p) && lpi_prefetch_one(p))
			return true;
	for (p = d->procs; p; p = p->next)
		n += lpi_fillable(p);
	if (!n) {
		bool filled = lshm_fill_one(d);

		if (filled && d->o.fill_delay_us)
			usleep(d->o.fill_delay_us);
		return filled;
	}
	pick = d->rr++ % n;
	for (p = d->procs; p; p = p->next)
		if (lpi_fillable(p) && pick-- == 0)
			break;
	if (lr_next_chunk(&p->lay, p->done, p->fill_cursor, d->fill_pages, &ch)) {
		/* The count drifted from the bitmap: trust the bitmap. */
		p->outstanding = lr_outstanding(&p->lay, p->done);
		return true;
	}
	lpi_fill_chunk(p, &ch);
	if (d->o.fill_delay_us)
		usleep(d->o.fill_delay_us);
	return true;
}

/* ------------------------------------------------------------ lifecycle */

void lpi_set_finished(struct lpi *p)
{
	p->finished = true;
	p->sh->flags |= LZ_SLOT_F_FINISHED;
}

static void lpi_complete(struct lpi *p)
{
	struct lz_shm_stats *st = &p->sh->st;

	/* Events still queued (a fork, say) must be seen before the uffd goes. */
	lpi_readable(p);
	if (!lpi_active(p) || p->outstanding || p->nr_deferred || lshm_outstanding(p->d))
		return;
	lpi_ws_end(p, "every page came in by fault");
	st->t_done_ns = lz_now_ns();
	pr_info("%s: every page in place (%" PRIu64 " on fault, %" PRIu64 " by fill, %" PRIu64
		" zero) after %" PRIu64 " ms", p->name, st->pages_fault, st->pages_fill,
		st->pages_zero, (st->t_done_ns - st->t_start_ns) / 1000000);
	lpi_thp_collapse(p);
	p->sh->state = LZ_SLOT_DONE;
	lpi_close(p);
}

static void lpi_free(struct lpi *p)
{
	src_put(p->src);
	lr_fini(&p->lay);
	free(p->deferred);
	free(p);
}

bool lpi_reap(struct lazy_daemon *d)
{
	bool active = false;

	/* Completing may read a FORK and add a process at the list head: finish
	 * this walk before unlinking anything. */
	for (struct lpi *p = d->procs; p; p = p->next)
		if (lpi_active(p) && p->finished && !p->outstanding && !p->nr_deferred &&
		    !lshm_outstanding(d))
			lpi_complete(p);
	for (struct lpi **pp = &d->procs; *pp;) {
		struct lpi *p = *pp;

		if (lpi_active(p)) {
			active = true;
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		lpi_free(p);
	}
	return active;
}

void lpi_free_all(struct lazy_daemon *d)
{
	while (d->procs) {
		struct lpi *p = d->procs;

		d->procs = p->next;
		if (p->uffd >= 0)
			close(p->uffd);
		if (p->pidfd >= 0)
			close(p->pidfd);
		lpi_free(p);
	}
}

/* ------------------------------------------------------------ handover */

static int lpi_check_fds(struct lazy_add *a, char *why, size_t whylen)
{
	uint64_t feat;
	char have[256];
	int fl;

	if (uffd_fdinfo(a->uffd, &feat)) {
		snprintf(why, whylen, "pid %d: the fd sent is not an initialised userfaultfd", a->pid);
		return -EINVAL;
	}
	/*
	 * The loop must never wait in read(2): whatever mode the sender opened
	 * the uffd in, ours is non-blocking (the flag is the open file's, so
	 * the sender's copy changes too; it never reads it).
	 */
	fl = fcntl(a->uffd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(a->uffd, F_SETFL, fl | O_NONBLOCK))) {
		int ret = -errno;

		snprintf(why, whylen, "pid %d: cannot make its userfaultfd non-blocking: %s", a->pid,
			 strerror(-ret));
		return ret;
	}
	if ((feat & UFFD_LAZY_REQUIRED) != UFFD_LAZY_REQUIRED) {
		uffd_features_str(feat, have, sizeof(have));
		snprintf(why, whylen, "pid %d: its userfaultfd lacks the fork/remap/remove/unmap "
			 "events (it has %s)", a->pid, have);
		return -EINVAL;
	}
	a->features = feat;
	if (a->pidfd < 0) {
		a->pidfd = pidfd_open_pid(a->pid);
		if (a->pidfd < 0) {
			snprintf(why, whylen, "pid %d: %s", a->pid, strerror(-a->pidfd));
			return a->pidfd;
		}
	} else if (pidfd_pid(a->pidfd) != a->pid) {
		snprintf(why, whylen, "pid %d: the pidfd sent is not that process's", a->pid);
		return -EINVAL;
	}
	return 0;
}

/* The slot and private state of a newly handed-over process. */
static int lpi_setup(struct lazy_daemon *d, struct lpi *p, struct lazy_add *a,
		     struct lr_set *lay)
{
	p->uffd = a->uffd;
	p->pidfd = a->pidfd;
	a->uffd = a->pidfd = -1;
	p->pid = a->pid;
	p->lay = *lay;
	lr_init(lay);
	lpi_set_name(p, NULL);
	p->sh->img_id = a->img_id;
	memcpy(p->sh->dump_id, a->dump_id, sizeof(p->sh->dump_id));
	p->sh->pid = a->pid;
	p->sh->features = a->features;
	if (shm_slot_bitmap(&d->shm, p->sh, p->src->nr_idx, NULL) ||
	    shm_layout_publish(&d->shm, p->sh, &p->lay))
		return -ENOSPC;
	p->done = shm_done(&d->shm, p->sh);
	p->outstanding = lr_outstanding(&p->lay, p->done);
	p->sh->st.pages_total = p->outstanding;
	p->sh->st.t_start_ns = lz_now_ns();
	p->sh->state = LZ_SLOT_ACTIVE;
	return 0;
}

static int lpi_build_layout(struct lazy_src *src, struct lazy_add *a, struct lr_set *lay)
{
	struct lr_run *lazy;
	size_t nr;
	int ret = src_lazy_runs(src, &lazy, &nr);

	if (ret)
		return ret;
	ret = lr_build(lay, lazy, nr, a->ranges, a->nr_ranges);
	free(lazy);
	return ret;
}

int lpi_add(struct lazy_daemon *d, struct lazy_conn *c, struct lazy_add *a, char *why,
	    size_t whylen)
{
	struct lazy_src *src = NULL;
	struct lr_set lay;
	struct lpi *p;
	int ret, slot;

	lr_init(&lay);
	ret = lpi_check_fds(a, why, whylen);
	if (ret)
		goto out_close;
	ret = lr_ranges_sort(a->ranges, a->nr_ranges);
	if (ret) {
		snprintf(why, whylen, "pid %d: registered ranges unaligned or overlapping", a->pid);
		goto out_close;
	}
	ret = src_open(d->dirfd, &d->trust, a->img_id, a->dump_id, &src, why, whylen);
	if (ret) {
		/* Its memory can never be right: it must not run. */
		pidfd_kill(a->pidfd);
		d->nr_killed++;
		snprintf(why + strlen(why), whylen - strlen(why), "; pid %d killed", a->pid);
		goto out_close;
	}
	ret = lpi_build_layout(src, a, &lay);
	slot = ret ? ret : shm_slot_new(&d->shm);
	if (slot < 0 || !(p = lpi_alloc(d, (unsigned)slot))) {
		ret = slot < 0 ? slot : -ENOMEM;
		snprintf(why, whylen, "pid %d: %s", a->pid,
			 ret == -ENOSPC ? "too many processes" : strerror(-ret));
		goto out_src;
	}
	p->src = src;
	p->conn = c;
	ret = lpi_setup(d, p, a, &lay);
	if (!ret && (ret = lpi_ws_start(p, why, whylen))) {
		/* A bad working set: refused like bad images, before it runs. */
		pidfd_kill(p->pidfd);
		d->nr_killed++;
		snprintf(why + strlen(why), whylen - strlen(why), "; pid %d killed", p->pid);
		p->sh->state = LZ_SLOT_KILLED;
		lpi_close(p);
		return ret;
	}
	if (!ret)
		ret = guard_add(d, p);
	if (!ret)
		ret = daemon_epoll_add(d, p->uffd, &p->h_uffd, H_UFFD, p);
	if (!ret)
		ret = daemon_epoll_add(d, p->pidfd, &p->h_pidfd, H_PIDFD, p);
	if (ret) {
		snprintf(why, whylen, "pid %d: cannot be served safely (%s)", a->pid,
			 strerror(-ret));
		p->sh->state = LZ_SLOT_GONE;
		lpi_close(p);
		return ret;
	}
	d->nr_served++;
	pr_info("%s: serving %" PRIu64 " lazy pages from pagemap-%u.img (%u ranges)", p->name,
		p->outstanding, a->img_id, a->nr_ranges);
	return 0;

out_src:
	src_put(src);
out_close:
	lr_fini(&lay);
	if (a->uffd >= 0)
		close(a->uffd);
	if (a->pidfd >= 0)
		close(a->pidfd);
	a->uffd = a->pidfd = -1;
	return ret;
}

/* ------------------------------------------------------------ resume */

int lpi_resume(struct lazy_daemon *d, unsigned slot, int uffd, int pidfd)
{
	struct lz_shm_slot *sl = &d->shm.hdr->slots[slot];
	struct lz_dump_id id;
	char why[256];
	struct lpi *p;
	int ret;

	if (sl->state != LZ_SLOT_ACTIVE || !(p = lpi_alloc(d, slot))) {
		close(uffd);
		if (pidfd >= 0)
			close(pidfd);
		return sl->state == LZ_SLOT_ACTIVE ? -ENOMEM : 0;
	}
	p->uffd = uffd;
	p->pidfd = pidfd;
	p->pid = sl->pid;
	p->finished = sl->flags & LZ_SLOT_F_FINISHED;
	lpi_set_name(p, NULL);
	d->nr_served++;
	p->done = shm_done(&d->shm, sl);
	ret = p->done ? shm_layout_read(&d->shm, sl, &p->lay) : -EINVAL;
	if (ret) {
		lpi_kill(p, "its shared state is damaged");
		return 0;
	}
	memcpy(&id, sl->dump_id, sizeof(id));
	ret = src_open(d->dirfd, &d->trust, sl->img_id, &id, &p->src, why, sizeof(why));
	if (ret) {
		lpi_kill(p, "%s", why);
		return 0;
	}
	p->outstanding = lr_outstanding(&p->lay, p->done);
	pr_info("%s taken over: %" PRIu64 " pages outstanding, restore %s", p->name,
		p->outstanding, p->finished ? "finished" : "not finished yet");
	ret = daemon_epoll_add(d, uffd, &p->h_uffd, H_UFFD, p);
	if (!ret && pidfd >= 0)
		ret = daemon_epoll_add(d, pidfd, &p->h_pidfd, H_PIDFD, p);
	if (ret)
		lpi_kill(p, "cannot watch its fds");
	return 0;
}

static struct lpi *lpi_by_slot(struct lazy_daemon *d, uint32_t slot)
{
	for (struct lpi *p = d->procs; p; p = p->next)
		if (p->slot == slot)
			return p;
	return NULL;
}

/*
 * Events the dead daemon had read but not applied are applied now, in
 * order. A FORK whose child never reached the guardian means the child's
 * uffd is gone: its missing pages would read as zeros, so the tree goes.
 * Threads whose faults were read and never answered are woken: they fault
 * again and the fault is read anew.
 */
void lpi_resume_finish(struct lpi *p)
{
	struct uffd_msg *in = p->sh->inbox;

	for (size_t i = 0; i < LZ_SHM_INBOX && lpi_active(p); i++) {
		if (!in[i].event || in[i].event == UFFD_EVENT_PAGEFAULT) {
			in[i].event = 0;
			continue;
		}
		if (in[i].event != UFFD_EVENT_FORK) {
			lpi_event(p, &in[i]);
			continue;
		}
		if (p->sh->pending_fork == LZ_SHM_NO_SLOT ||
		    !lpi_by_slot(p->d, p->sh->pending_fork)) {
			pr_err("%s: a child it forked was lost with the daemon; killing %s and its "
			       "descendants", p->name, p->name);
			lz_kill_tree(p->pid, p->pidfd);
			lpi_kill(p, "its forked child cannot be served");
		}
		in[i].event = 0;
		p->sh->pending_fork = LZ_SHM_NO_SLOT;
	}
	if (lpi_active(p) && uffd_wake_all(p->uffd))
		pr_warn("%s: UFFDIO_WAKE: %s", p->name, strerror(errno));
}
