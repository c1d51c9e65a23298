/*
 * lzpipes.c - pipes and a FIFO with data queued in them, over two processes.
 *
 *   lzpipes --dir DIR
 *
 * Sets up, then writes DIR/ready ("pid=P child=C cap=N"):
 *   down   pipe parent -> child, 5000 bytes queued (the child holds the read end)
 *   up     pipe child -> parent, 3000 bytes queued (the parent holds the read end)
 *   big    pipe in the parent with both ends, F_SETPIPE_SZ 256 KiB, filled
 *          until the write would block (its capacity exactly)
 *   self   pipe in the parent with both ends, 1000 bytes, read end O_NONBLOCK
 *   fifo   DIR/fifo, opened read-only and write-only by the parent, 2000 bytes
 * Each stream is a pattern of its own, so a byte from the wrong pipe or
 * offset shows. On SIGUSR1 the parent checks every pipe it reads (every
 * byte, then that nothing more is queued, the capacity, the flags, that
 * the pipe still carries new data), asks the child (SIGUSR1) to check
 * `down`, reads the child's verdict after `up`'s bytes, refills everything
 * for a next check and writes DIR/result: "PASS seq=S pid=P child=C" or
 * "FAIL seq=S pid=P child=C: reasons". SIGTERM exits 0 (the child with it).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WL_NAME "lzpipes"
#include "wl.h"

#define DOWN_LEN 5000
#define UP_LEN 3000
#define SELF_LEN 1000
#define FIFO_LEN 2000
#define BIG_CAP (256 * 1024)
#define VERDICT_LEN 128 /* the child's verdict: one fixed-size record */


struct pipes {
	const char *dir;
	pid_t child;
	int down[2], up[2], big[2], self[2], fifo_rd, fifo_wr;
	char fifo_path[4200];
	int big_cap;	/* F_GETPIPE_SZ after F_SETPIPE_SZ */
	int big_len;	/* what filled it */
	uint64_t seq;
};

static uint8_t pat(int stream, size_t i)
{
	return (uint8_t)(i * 131 + (i >> 8) * 7 + (size_t)stream * 59 + 1);
}

static void fill(uint8_t *buf, int stream, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(stream, i);
}

static void put(int fd, int stream, size_t len)
{
	uint8_t *buf = malloc(len);

	if (!buf)
		die("malloc");
	fill(buf, stream, len);
	if (write_all(fd, buf, len))
		die("write stream %d", stream);
	free(buf);
}

/* Read exactly LEN bytes (blocking or not: poll first); 0 if all match stream STREAM. */
static int take(int fd, int stream, size_t len, char *fails, size_t flen, const char *name)
{
	uint8_t *buf = malloc(len ? len : 1);
	size_t got = 0;

	if (!buf)
		die("malloc");
	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0)
			break;
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	for (size_t i = 0; i < got; i++)
		if (buf[i] != pat(stream, i)) {
			snprintf(fails + strlen(fails), flen - strlen(fails),
				 "%s: byte %zu is %#x, want %#x; ", name, i, buf[i], pat(stream, i));
			free(buf);
			return -1;
		}
	free(buf);
	if (got != len) {
		snprintf(fails + strlen(fails), flen - strlen(fails), "%s: %zu bytes of %zu; ",
			 name, got, len);
		return -1;
	}
	return 0;
}

/* Nothing more queued in FD. */
static int empty(int fd, char *fails, size_t flen, const char *name)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 0) == 0)
		return 0;
	snprintf(fails + strlen(fails), flen - strlen(fails), "%s: more data queued (revents %#x); ",
		 name, p.revents);
	return -1;
}

static void child_main(struct pipes *p)
{
	char fails[VERDICT_LEN * 2], rec[VERDICT_LEN];
	sigset_t none;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&none);
	put(p->up[1], 2, UP_LEN);
	for (;;) {
		while (!check_requested && !term_requested)
			sigsuspend(&none);
		if (term_requested)
			_exit(0);
		check_requested = 0;
		fails[0] = 0;
		if (!take(p->down[0], 1, DOWN_LEN, fails, sizeof(fails), "down"))
			empty(p->down[0], fails, sizeof(fails), "down");
		memset(rec, ' ', sizeof(rec));
		snprintf(rec, sizeof(rec), "%s %s", fails[0] ? "FAIL" : "PASS", fails);
		rec[strlen(rec)] = ' ';
		rec[VERDICT_LEN - 1] = '\n';
		if (write_all(p->up[1], rec, sizeof(rec)))
			_exit(3);
		put(p->up[1], 2, UP_LEN); /* for the next check */
	}
}

static void fill_big(struct pipes *p)
{
	uint8_t *buf = malloc(BIG_CAP * 2);
	ssize_t n;
	int len = 0;

	if (!buf)
		die("malloc");
	fill(buf, 3, BIG_CAP * 2);
	fcntl(p->big[1], F_SETFL, O_NONBLOCK);
	while ((n = write(p->big[1], buf + len, 4096)) > 0)
		len += (int)n;
	if (errno != EAGAIN)
		die("filling big");
	fcntl(p->big[1], F_SETFL, 0);
	p->big_len = len;
	free(buf);
}

static void setup(struct pipes *p)
{
	if (pipe(p->down) || pipe(p->up) || pipe(p->big) || pipe2(p->self, 0))
		die("pipe");
	p->big_cap = fcntl(p->big[1], F_SETPIPE_SZ, BIG_CAP);
	if (p->big_cap < BIG_CAP)
		die("F_SETPIPE_SZ");
	fill_big(p);
	put(p->self[1], 4, SELF_LEN);
	fcntl(p->self[0], F_SETFL, O_NONBLOCK);
	snprintf(p->fifo_path, sizeof(p->fifo_path), "%s/fifo", p->dir);
	unlink(p->fifo_path);
	if (mkfifo(p->fifo_path, 0600))
		die("mkfifo");
	p->fifo_rd = open(p->fifo_path, O_RDONLY | O_NONBLOCK);
	p->fifo_wr = open(p->fifo_path, O_WRONLY);
	if (p->fifo_rd < 0 || p->fifo_wr < 0)
		die("open fifo");
	put(p->fifo_wr, 5, FIFO_LEN);
	p->child = fork();
	if (p->child < 0)
		die("fork");
	if (p->child == 0) {
		close(p->down[1]);
		close(p->up[0]);
		child_main(p);
	}
	close(p->down[0]);
	close(p->up[1]);
	put(p->down[1], 1, DOWN_LEN);
}

#define FAIL(...) snprintf(fails + strlen(fails), sizeof(fails) - strlen(fails), __VA_ARGS__)

static void check_big(struct pipes *p, char *fails, size_t flen)
{
	int cap = fcntl(p->big[0], F_GETPIPE_SZ);

	if (cap != p->big_cap)
		snprintf(fails + strlen(fails), flen - strlen(fails), "big: capacity %d, want %d; ",
			 cap, p->big_cap);
	if (p->big_len != p->big_cap)
		snprintf(fails + strlen(fails), flen - strlen(fails), "big: filled %d of %d; ",
			 p->big_len, p->big_cap);
	if (!take(p->big[0], 3, (size_t)p->big_len, fails, flen, "big"))
		empty(p->big[0], fails, flen, "big");
	fill_big(p);
}

static void check_fifo(struct pipes *p, char *fails, size_t flen)
{
	struct stat a, b;

	if (fstat(p->fifo_rd, &a) || stat(p->fifo_path, &b) || !S_ISFIFO(a.st_mode) ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		snprintf(fails + strlen(fails), flen - strlen(fails),
			 "fifo: the fd is not DIR/fifo any more; ");
	if (!take(p->fifo_rd, 5, FIFO_LEN, fails, flen, "fifo"))
		empty(p->fifo_rd, fails, flen, "fifo");
	put(p->fifo_wr, 5, FIFO_LEN);
}

static void self_check(struct pipes *p)
{
	char fails[1024] = "", rec[VERDICT_LEN + 1], text[1200];
	int fl = fcntl(p->self[0], F_GETFL);

	p->seq++;
	if (fl < 0 || !(fl & O_NONBLOCK))
		FAIL("self: read end lost O_NONBLOCK (flags %#x); ", fl);
	if (!take(p->self[0], 4, SELF_LEN, fails, sizeof(fails), "self"))
		empty(p->self[0], fails, sizeof(fails), "self");
	put(p->self[1], 4, SELF_LEN);
	check_big(p, fails, sizeof(fails));
	check_fifo(p, fails, sizeof(fails));
	if (kill(p->child, SIGUSR1))
		FAIL("child %d: %s; ", p->child, strerror(errno));
	if (!take(p->up[0], 2, UP_LEN, fails, sizeof(fails), "up")) {
		ssize_t n = 0, got = 0;

		while (got < VERDICT_LEN && (n = read(p->up[0], rec + got, VERDICT_LEN - (size_t)got)))
			if (n > 0)
				got += n;
			else if (errno != EINTR)
				break;
		rec[got] = 0;
		if (got != VERDICT_LEN || strncmp(rec, "PASS", 4))
			FAIL("child: %.*s; ", (int)strcspn(rec, "\n"), rec);
	}
	put(p->down[1], 1, DOWN_LEN);
	snprintf(text, sizeof(text), "%s seq=%llu pid=%d child=%d%s%s\n", fails[0] ? "FAIL" : "PASS",
		 (unsigned long long)p->seq, getpid(), p->child, fails[0] ? ": " : "", fails);
	wl_publish(p->dir, "result", text);
}

int main(int argc, char **argv)
{
	struct pipes p = { 0 };
	struct sigaction sa = { 0 };
	char ready[256];
	sigset_t none;

	for (int i = 1; i + 1 < argc; i += 2)
		if (!strcmp(argv[i], "--dir"))
			p.dir = argv[i + 1];
	if (!p.dir) {
		fprintf(stderr, "usage: lzpipes --dir DIR\n");
		return 2;
	}
	sa.sa_handler = wl_on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = wl_on_term;
	sigaction(SIGTERM, &sa, NULL);
	/* Only sigsuspend lets them in: a request between the test and the wait is not lost. */
	sigemptyset(&none);
	sigaddset(&none, SIGUSR1);
	sigaddset(&none, SIGTERM);
	sigprocmask(SIG_BLOCK, &none, NULL);
	setup(&p);
	snprintf(ready, sizeof(ready), "pid=%d child=%d cap=%d\n", getpid(), p.child, p.big_cap);
	wl_publish(p.dir, "ready", ready);
	sigemptyset(&none);
	for (;;) {
		while (!check_requested && !term_requested)
			sigsuspend(&none);
		if (term_requested)
			break;
		check_requested = 0;
		self_check(&p);
	}
	kill(p.child, SIGTERM);
	waitpid(p.child, NULL, 0);
	return 0;
}
