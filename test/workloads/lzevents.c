/*
 * lzevents.c - eventfd, epoll, timerfd, signalfd and inotify, each in a
 * state a restore must keep.
 *
 *   lzevents --dir DIR [--fanotify]
 *
 * Sets up, then writes DIR/ready ("pid=P"):
 *   counter  eventfd with counter 7, EFD_NONBLOCK
 *   sem      eventfd in semaphore mode with counter 3, EFD_NONBLOCK
 *   ep       epoll: counter (EPOLLIN, data 0x1111), a pipe's read end with
 *            5 bytes queued (EPOLLIN|EPOLLET, 0x2222), its write end
 *            (EPOLLOUT, 0x3333) and ep2 (EPOLLIN, 0x4444), itself an
 *            epoll watching sem (EPOLLIN, 0x5555): nested
 *   once     timerfd (CLOCK_MONOTONIC) that expired once 10 ms after set
 *            up, period one hour, its expiration not read
 *   later    timerfd (CLOCK_MONOTONIC), one-shot, 100 s away
 *   tick     timerfd (CLOCK_BOOTTIME), every 20 ms
 *   sfd      signalfd for SIGUSR2 (blocked)
 *   ino      inotify, IN_NONBLOCK: wd 1 on DIR/w1, wd 3 on DIR/w3 (wd 2
 *            was added and removed: the numbers have a gap), IN_CREATE
 * With --fanotify it holds a fanotify fd too (lazarus must refuse it).
 *
 * On SIGUSR1 it checks once, after a restore (reading consumes state):
 * epoll_wait returns exactly 0x1111, 0x2222, 0x3333 and 0x4444; ep2
 * returns 0x5555; EPOLL_CTL_ADD of counter fails with EEXIST, EPOLL_CTL_MOD
 * of the write end to EPOLLIN takes it off the ready list; reading counter
 * gives 7 once, sem 1 three times, then both would block; `once` has one
 * expiration queued and a period of an hour; `later` has between 0 and
 * 100 s left and no period; `tick` fires again; SIGUSR2 sent to itself is
 * read from sfd; a file created in DIR/w1 and in DIR/w3 is reported with
 * wd 1 and wd 3. DIR/result: "PASS seq=S pid=P" or "FAIL ...: reasons".
 * SIGTERM exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzevents"
#include "wl.h"


struct events {
	const char *dir;
	int counter, sem, ep, ep2, pipe[2], once, later, tick, sfd, ino, fan;
	int wd1, wd3;
	uint64_t seq;
	char fails[2048];
};

#define FAIL(e, ...) \
	snprintf((e)->fails + strlen((e)->fails), sizeof((e)->fails) - strlen((e)->fails), __VA_ARGS__)

static void ep_add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		die("epoll_ctl add %d", fd);
}

static void arm(int fd, time_t vs, long vns, time_t is, long ins)
{
	struct itimerspec its = { .it_value = { vs, vns }, .it_interval = { is, ins } };

	if (timerfd_settime(fd, 0, &its, NULL))
		die("timerfd_settime");
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void setup_inotify(struct events *e)
{
	char path[4200], buf[4096];
	int wd2;

	e->ino = inotify_init1(IN_NONBLOCK);
	if (e->ino < 0)
		die("inotify_init1");
	for (int i = 1; i <= 3; i++) {
		snprintf(path, sizeof(path), "%s/w%d", e->dir, i);
		if (mkdir(path, 0700) && errno != EEXIST)
			die("mkdir %s", path);
	}
	snprintf(path, sizeof(path), "%s/w1", e->dir);
	e->wd1 = inotify_add_watch(e->ino, path, IN_CREATE);
	snprintf(path, sizeof(path), "%s/w2", e->dir);
	wd2 = inotify_add_watch(e->ino, path, IN_CREATE);
	if (wd2 < 0 || inotify_rm_watch(e->ino, wd2))
		die("inotify w2");
	snprintf(path, sizeof(path), "%s/w3", e->dir);
	e->wd3 = inotify_add_watch(e->ino, path, IN_CREATE);
	if (e->wd1 != 1 || e->wd3 != 3)
		die("inotify wds %d %d", e->wd1, e->wd3);
	while (read(e->ino, buf, sizeof(buf)) > 0) /* wd 2's IN_IGNORED */
		;
}

static void setup(struct events *e, int fanotify)
{
	sigset_t usr2;

	e->counter = eventfd(7, EFD_NONBLOCK);
	e->sem = eventfd(3, EFD_NONBLOCK | EFD_SEMAPHORE);
	e->ep = epoll_create1(0);
	e->ep2 = epoll_create1(0);
	if (e->counter < 0 || e->sem < 0 || e->ep < 0 || e->ep2 < 0 || pipe(e->pipe))
		die("eventfd/epoll/pipe");
	if (write_all(e->pipe[1], "hello", 5))
		die("write pipe");
	ep_add(e->ep2, e->sem, EPOLLIN, 0x5555);
	ep_add(e->ep, e->counter, EPOLLIN, 0x1111);
	ep_add(e->ep, e->pipe[0], EPOLLIN | EPOLLET, 0x2222);
	ep_add(e->ep, e->pipe[1], EPOLLOUT, 0x3333);
	ep_add(e->ep, e->ep2, EPOLLIN, 0x4444);
	e->once = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	e->later = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	e->tick = timerfd_create(CLOCK_BOOTTIME, 0);
	if (e->once < 0 || e->later < 0 || e->tick < 0)
		die("timerfd_create");
	arm(e->once, 0, 10000000, 3600, 0);
	arm(e->later, 100, 0, 0, 0);
	arm(e->tick, 0, 20000000, 0, 20000000);
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, NULL);
	e->sfd = signalfd(-1, &usr2, SFD_NONBLOCK);
	if (e->sfd < 0)
		die("signalfd");
	setup_inotify(e);
	e->fan = -1;
	if (fanotify) {
		e->fan = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
		if (e->fan < 0)
			die("fanotify_init");
	}
	nap_ms(50); /* `once` has expired */
}

static void check_epoll(struct events *e)
{
	struct epoll_event ev[8], mod = { .events = EPOLLIN, .data.u64 = 0x3334 };
	uint64_t seen = 0;
	int n;

	n = epoll_wait(e->ep, ev, 8, 1000);
	for (int i = 0; i < n; i++) {
		uint64_t d = ev[i].data.u64;

		if (d < 0x1111 || d > 0x4444 || d % 0x1111)
			FAIL(e, "epoll returned data %#llx; ", (unsigned long long)d);
		else
			seen |= 1ULL << (d / 0x1111);
	}
	if (n != 4 || seen != 0x1e)
		FAIL(e, "epoll_wait: %d events (seen %#llx), want 0x1111..0x4444; ", n,
		     (unsigned long long)seen);
	n = epoll_wait(e->ep2, ev, 8, 0);
	if (n != 1 || ev[0].data.u64 != 0x5555)
		FAIL(e, "nested epoll: %d events, want 0x5555; ", n);
	if (!epoll_ctl(e->ep, EPOLL_CTL_ADD, e->counter, &mod) || errno != EEXIST)
		FAIL(e, "EPOLL_CTL_ADD of a watched fd: %s, want EEXIST; ", strerror(errno));
	if (epoll_ctl(e->ep, EPOLL_CTL_MOD, e->pipe[1], &mod))
		FAIL(e, "EPOLL_CTL_MOD of the pipe's write end: %s; ", strerror(errno));
	n = epoll_wait(e->ep, ev, 8, 0);
	for (int i = 0; i < n; i++)
		if (ev[i].data.u64 == 0x3333 || ev[i].data.u64 == 0x3334)
			FAIL(e, "the write end is still ready after EPOLL_CTL_MOD to EPOLLIN; ");
}

static void check_eventfds(struct events *e)
{
	uint64_t v = 0;

	if (read(e->counter, &v, 8) != 8 || v != 7)
		FAIL(e, "counter: read %llu, want 7; ", (unsigned long long)v);
	if (read(e->counter, &v, 8) != -1 || errno != EAGAIN)
		FAIL(e, "counter: a second read did not block; ");
	for (int i = 0; i < 3; i++)
		if (read(e->sem, &v, 8) != 8 || v != 1)
			FAIL(e, "sem: read %d gave %llu, want 1; ", i, (unsigned long long)v);
	if (read(e->sem, &v, 8) != -1 || errno != EAGAIN)
		FAIL(e, "sem: a fourth read did not block; ");
}

static void check_timers(struct events *e)
{
	struct itimerspec its;
	struct pollfd p = { .fd = e->tick, .events = POLLIN };
	uint64_t v = 0;

	if (read(e->once, &v, 8) != 8 || v != 1)
		FAIL(e, "once: %llu expirations (%s), want 1; ", (unsigned long long)v,
		     strerror(errno));
	if (timerfd_gettime(e->once, &its) || its.it_interval.tv_sec != 3600 ||
	    its.it_interval.tv_nsec || its.it_value.tv_sec > 3600 ||
	    (!its.it_value.tv_sec && !its.it_value.tv_nsec))
		FAIL(e, "once: period %lds, next in %lds, want 3600 and at most 3600; ",
		     (long)its.it_interval.tv_sec, (long)its.it_value.tv_sec);
	if (timerfd_gettime(e->later, &its) || its.it_interval.tv_sec || its.it_interval.tv_nsec ||
	    its.it_value.tv_sec >= 100 || (!its.it_value.tv_sec && !its.it_value.tv_nsec))
		FAIL(e, "later: next in %ld.%09lds period %lds, want under 100 s, one-shot; ",
		     (long)its.it_value.tv_sec, its.it_value.tv_nsec, (long)its.it_interval.tv_sec);
	if (read(e->later, &v, 8) != -1 || errno != EAGAIN)
		FAIL(e, "later: expired already; ");
	if (poll(&p, 1, 2000) != 1 || read(e->tick, &v, 8) != 8 || !v)
		FAIL(e, "tick: does not fire; ");
}

static void check_signalfd(struct events *e)
{
	struct signalfd_siginfo si;
	struct pollfd p = { .fd = e->sfd, .events = POLLIN };

	if (poll(&p, 1, 0) != 0)
		FAIL(e, "sfd: readable before any signal; ");
	kill(getpid(), SIGUSR2);
	if (poll(&p, 1, 2000) != 1 || read(e->sfd, &si, sizeof(si)) != sizeof(si) ||
	    si.ssi_signo != SIGUSR2 || si.ssi_pid != (uint32_t)getpid())
		FAIL(e, "sfd: SIGUSR2 not read from it; ");
}

static void check_inotify(struct events *e)
{
	char path[4200], buf[4096] __attribute__((aligned(8)));
	struct pollfd p = { .fd = e->ino, .events = POLLIN };
	int got = 0;
	ssize_t n;

	for (int w = 1; w <= 3; w += 2) {
		snprintf(path, sizeof(path), "%s/w%d/new-%llu", e->dir, w,
			 (unsigned long long)e->seq);
		if (close(open(path, O_CREAT | O_WRONLY, 0600)))
			FAIL(e, "create DIR/w%d/new: %s; ", w, strerror(errno));
	}
	while (got != 3 && poll(&p, 1, 2000) == 1 && (n = read(e->ino, buf, sizeof(buf))) > 0) {
		for (char *q = buf; q < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)q;

			if (!(ev->mask & IN_CREATE) || strncmp(ev->name, "new-", 4) ||
			    (ev->wd != 1 && ev->wd != 3))
				FAIL(e, "inotify: event wd %d mask %#x name %s; ", ev->wd, ev->mask,
				     ev->len ? ev->name : "");
			else
				got |= ev->wd == 1 ? 1 : 2;
			q += sizeof(*ev) + ev->len;
		}
	}
	if (got != 3)
		FAIL(e, "inotify: creations seen %#x, want wd 1 and wd 3; ", got);
}

static void self_check(struct events *e)
{
	char text[2300];

	e->seq++;
	e->fails[0] = 0;
	check_epoll(e);
	check_eventfds(e);
	check_timers(e);
	check_signalfd(e);
	check_inotify(e);
	snprintf(text, sizeof(text), "%s seq=%llu pid=%d%s%s\n", e->fails[0] ? "FAIL" : "PASS",
		 (unsigned long long)e->seq, getpid(), e->fails[0] ? ": " : "", e->fails);
	wl_publish(e->dir, "result", text);
}

int main(int argc, char **argv)
{
	struct events e = { 0 };
	struct sigaction sa = { 0 };
	int fanotify = 0;
	char ready[64];
	sigset_t mask, none;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			e.dir = argv[++i];
		else if (!strcmp(argv[i], "--fanotify"))
			fanotify = 1;
	}
	if (!e.dir) {
		fprintf(stderr, "usage: lzevents --dir DIR [--fanotify]\n");
		return 2;
	}
	sa.sa_handler = wl_on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = wl_on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	setup(&e, fanotify);
	snprintf(ready, sizeof(ready), "pid=%d\n", getpid());
	wl_publish(e.dir, "ready", ready);
	sigemptyset(&none);
	sigaddset(&none, SIGUSR2); /* stays blocked: it is for sfd */
	for (;;) {
		while (!check_requested && !term_requested)
			sigsuspend(&none);
		if (term_requested)
			break;
		check_requested = 0;
		self_check(&e);
	}
	return 0;
}
