/*
 * lzrefuse.c - targets that `lazarus dump` must refuse, and must leave
 * running unharmed.
 *
 *   lzrefuse --dir DIR --mode thread|child|socket|pipe
 *
 * thread: a second thread beating a counter; child: a child process beating
 * a counter in DIR/child-beat; socket: a UDP-Lite socket on 127.0.0.1
 * connected to itself (unix, TCP and UDP sockets are dumped since issues 7
 * and 8); pipe: a pipe. Once
 * set up, DIR/ready (tmp + rename) says "pid=P extra=X" (X: the thread's tid
 * or the child's pid, else 0). The main loop counts; on SIGUSR1 it checks
 * that its counter advanced, that the second thread or child still beats,
 * and that the socket or pipe still carries data, and writes DIR/result:
 * "PASS seq=S pid=P ctr=C ..." or "FAIL ...: reasons". SIGTERM exits 0 (and
 * kills the child).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzrefuse"
#include "wl.h"

#define BEAT_WAIT_MS 10000	/* how long a check waits for a heartbeat */

enum mode { M_THREAD, M_CHILD, M_SOCKET, M_PIPE };

static atomic_uint_fast64_t thread_beats;
static atomic_int thread_tid;

struct refuse {
	const char *dir;
	enum mode mode;
	int fds[2];		/* socket or pipe: [0] read end, [1] write end */
	pid_t child;
	char beat_path[4200];	/* child mode: the child's heartbeat file */
	uint64_t ctr, prev_ctr, seq;
};

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);	/* EINTR only shortens it */
}

static void *beat_thread(void *arg)
{
	(void)arg;
	atomic_store(&thread_tid, (int)syscall(SYS_gettid));
	for (;;) {
		atomic_fetch_add(&thread_beats, 1);
		nap_ms(1);
	}
	return NULL;
}

static void child_main(const char *path, pid_t parent)
{
	uint64_t beats = 0;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	/* Die with the parent, wherever an orphan would be reparented to. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (fd < 0 || getppid() != parent)
		_exit(2);
	for (;;) {
		beats++;
		if (pwrite(fd, &beats, sizeof(beats), 0) != sizeof(beats))
			_exit(3);
		nap_ms(1);
		if (getppid() != parent)
			_exit(0);
	}
}

static uint64_t child_beats(const struct refuse *r)
{
	uint64_t v = 0;
	int fd = open(r->beat_path, O_RDONLY);

	if (fd >= 0) {
		if (pread(fd, &v, sizeof(v), 0) != sizeof(v))
			v = 0;
		close(fd);
	}
	return v;
}

static int setup(struct refuse *r)
{
	pthread_t t;

	switch (r->mode) {
	case M_THREAD:
		errno = pthread_create(&t, NULL, beat_thread, NULL);
		if (errno)
			die("pthread_create");
		while (!atomic_load(&thread_tid))
			nap_ms(1);
		return atomic_load(&thread_tid);
	case M_CHILD:
		snprintf(r->beat_path, sizeof(r->beat_path), "%s/child-beat", r->dir);
		r->child = fork();
		if (r->child < 0)
			die("fork");
		if (r->child == 0)
			child_main(r->beat_path, getppid());
		while (!child_beats(r))
			nap_ms(1);
		return r->child;
	case M_SOCKET: {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t alen = sizeof(a);
		int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);

		if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(s, (struct sockaddr *)&a, &alen) ||
		    connect(s, (struct sockaddr *)&a, sizeof(a)))
			die("udp-lite socket");
		r->fds[0] = r->fds[1] = s;
		return 0;
	}
	case M_PIPE:
		if (pipe(r->fds))
			die("pipe");
		return 0;
	}
	return 0;
}

/* Wait (bounded) until a heartbeat moves past `from`. */
static int beats_advance(const struct refuse *r, uint64_t from)
{
	for (int ms = 0; ms < BEAT_WAIT_MS; ms++) {
		uint64_t now = r->mode == M_THREAD ? atomic_load(&thread_beats) : child_beats(r);

		if (now > from)
			return 1;
		nap_ms(1);
	}
	return 0;
}

/* The socket or pipe still carries a byte from one end to the other. */
static int channel_works(const struct refuse *r)
{
	char out = 'x', in = 0;
	ssize_t n;

	if (write_all(r->fds[1], &out, 1))
		return 0;
	do
		n = read(r->fds[0], &in, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 && in == out;
}

static void self_check(struct refuse *r)
{
	char fails[512] = "", text[1024];
	uint64_t from;
	int status;

	r->seq++;
	if (r->ctr <= r->prev_ctr)
		strcat(fails, "main loop did not advance; ");
	switch (r->mode) {
	case M_THREAD:
		from = atomic_load(&thread_beats);
		if (!beats_advance(r, from))
			strcat(fails, "second thread does not beat; ");
		break;
	case M_CHILD:
		if (waitpid(r->child, &status, WNOHANG) != 0)
			strcat(fails, "child is gone; ");
		else if (!beats_advance(r, child_beats(r)))
			strcat(fails, "child does not beat; ");
		break;
	case M_SOCKET:
	case M_PIPE:
		if (!channel_works(r))
			strcat(fails, "channel does not carry data; ");
		break;
	}
	snprintf(text, sizeof(text), "%s seq=%" PRIu64 " pid=%d ctr=%" PRIu64 " prev=%" PRIu64 "%s%s\n",
		 fails[0] ? "FAIL" : "PASS", r->seq, (int)getpid(), r->ctr, r->prev_ctr,
		 fails[0] ? ": " : "", fails);
	r->prev_ctr = r->ctr;
	wl_publish(r->dir, "result", text);
}

static enum mode parse_mode(const char *s)
{
	static const char *const names[] = { "thread", "child", "socket", "pipe" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return (enum mode)i;
	fprintf(stderr, "lzrefuse: unknown mode '%s'\n", s);
	exit(2);
}

int main(int argc, char **argv)
{
	struct refuse r = { .fds = { -1, -1 } };
	struct sigaction sa = { 0 };
	const char *mode = NULL;
	char ready[128];
	int extra;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			r.dir = argv[i + 1];
		else if (!strcmp(argv[i], "--mode"))
			mode = argv[i + 1];
	}
	if (!r.dir || !mode) {
		fprintf(stderr, "usage: lzrefuse --dir DIR --mode thread|child|socket|pipe\n");
		return 2;
	}
	r.mode = parse_mode(mode);

	sigemptyset(&sa.sa_mask);
	sa.sa_handler = wl_on_usr1;
	if (sigaction(SIGUSR1, &sa, NULL))
		die("sigaction");
	sa.sa_handler = wl_on_term;
	if (sigaction(SIGTERM, &sa, NULL))
		die("sigaction");

	extra = setup(&r);
	r.ctr = 1; /* a check right after ready sees progress */
	snprintf(ready, sizeof(ready), "pid=%d extra=%d\n", (int)getpid(), extra);
	wl_publish(r.dir, "ready", ready);

	while (!term_requested) {
		if (check_requested) {
			check_requested = 0;
			self_check(&r);
		}
		r.ctr++;
		nap_ms(1);
	}
	if (r.child > 0) {
		kill(r.child, SIGKILL);
		waitpid(r.child, NULL, 0);
	}
	return 0;
}
