/*
 * lzipcns.c - a parent and its child in an IPC namespace of their own (run
 * under `unshare --ipc`, or `unshare --ipc --pid --fork --mount-proc`),
 * holding SysV shared memory as a container does, each able to prove after
 * a restore that its segments are the dumped ones, by id, and still ONE
 * object with the other process.
 *
 *   lzipcns --dir DIR [--key K] [--msg] [--sem] [--mq]
 *
 * The parent (DIR/) makes, before it forks the child (DIR/child/):
 *   A  key K (default 0x4c5a1000), 1 MiB, mode 0640, attached in both
 *   B  key K+1, 64 KiB, mode 0604, filled then detached: no process
 *      attaches it, the namespace alone keeps it
 *   C  IPC_PRIVATE, 128 KiB, mode 0666, attached in both
 * and, on request, a SysV message queue (key K+2, mode 0640, msg_qbytes
 * 4096, three messages: type 7 "hello", type 3 "three", type 7 empty),
 * a semaphore set (key K+3, two semaphores, values 3 and 5) or a POSIX
 * message queue /lzipcns. Page 0 of A and C holds a counter per process
 * (parent at offset 0, child at 64), bumped every millisecond; every other
 * page holds a pattern of its segment and page number (every 16th page
 * left zero). DIR/ready: "pid=P child=C ida=I idb=J idc=K key=K" (pids
 * as the processes see them); DIR/child/ready: "pid=C".
 *
 * SIGUSR1 makes a process check itself into DIR[/child]/result:
 *   "PASS seq=S pid=P" or "FAIL seq=S pid=P: reasons"
 * IPC_STAT of each id it was given at creation (same key, mode, size,
 * attach count: A and C twice, B never), every pattern (B through a
 * read-only shmat of its id, detached again), and that within 3 s the
 * OTHER process's counter moves in A and in C: a write made by the other
 * after the restore, seen here, proves one object, not two copies. With a
 * message queue: its key, mode, msg_qbytes and the three messages in order
 * (msgrcv MSG_COPY: the queue is left as it is). SIGTERM
 * exits 0 (the parent stops and reaps the child first).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mqueue.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzipcns"
#include "wl.h"

#define PAGE 4096UL
#define WAIT_MS 3000

enum seg { S_A, S_B, S_C, S_NR };
static const char *const names[S_NR] = { "A", "B", "C" };
static const size_t sizes[S_NR] = { 1UL << 20, 64UL << 10, 128UL << 10 };
static const unsigned modes[S_NR] = { 0640, 0604, 0666 };
static const unsigned nattch[S_NR] = { 2, 0, 2 };

struct ipc {
	char dir[4096];
	int child;
	pid_t other;
	key_t key;
	int id[S_NR];
	uint8_t *mem[S_NR]; /* B: NULL */
	int msq;	    /* the message queue; -1 */
	uint64_t seq;
};

static key_t seg_key(const struct ipc *s, int g)
{
	return g == S_C ? IPC_PRIVATE : s->key + g;
}

static uint64_t pattern(int g, uint64_t page, uint64_t word)
{
	uint64_t x = (page * 512 + word + 7) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)(g + 1) << 56);

	x ^= x >> 31;
	return x | 1;
}

static void fill(int g, uint8_t *m)
{
	for (uint64_t p = 1; p < sizes[g] / PAGE; p++)
		if (p % 16)
			for (uint64_t i = 0; i < PAGE / 8; i++)
				((uint64_t *)(m + p * PAGE))[i] = pattern(g, p, i);
}

static long bad_page(int g, const uint8_t *m)
{
	for (uint64_t p = 1; p < sizes[g] / PAGE; p++)
		for (uint64_t i = 0; i < PAGE / 8; i++)
			if (((const uint64_t *)(m + p * PAGE))[i] != (p % 16 ? pattern(g, p, i) : 0))
				return (long)p;
	return -1;
}

static volatile uint64_t *counter(struct ipc *s, int g, int who)
{
	return (volatile uint64_t *)(s->mem[g] + who * 64);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void addf(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

static void bump(struct ipc *s)
{
	(*counter(s, S_A, s->child))++;
	(*counter(s, S_C, s->child))++;
}

#define MSQ_QBYTES 4096
static const struct {
	long type;
	const char *text;
} msgs[] = { { 7, "hello" }, { 3, "three" }, { 7, "" } };
#define NR_MSGS (sizeof(msgs) / sizeof(msgs[0]))

static void check_msq(struct ipc *s, char *fails, size_t len)
{
	struct {
		long type;
		char text[64];
	} m;
	struct msqid_ds ds;

	if (msgctl(s->msq, IPC_STAT, &ds) < 0) {
		addf(fails, len, " queue: IPC_STAT of id %d: %s;", s->msq, strerror(errno));
		return;
	}
	if (ds.msg_perm.__key != s->key + 2 || (ds.msg_perm.mode & 0777) != 0640 ||
	    ds.msg_qbytes != MSQ_QBYTES || ds.msg_qnum != NR_MSGS)
		addf(fails, len, " queue %d: key %#x mode %o qbytes %lu qnum %lu;", s->msq,
		     (unsigned)ds.msg_perm.__key, ds.msg_perm.mode & 0777,
		     (unsigned long)ds.msg_qbytes, (unsigned long)ds.msg_qnum);
	for (size_t i = 0; i < NR_MSGS; i++) {
		ssize_t n = msgrcv(s->msq, &m, sizeof(m.text), (long)i, MSG_COPY | IPC_NOWAIT);

		if (n < 0 || m.type != msgs[i].type || (size_t)n != strlen(msgs[i].text) ||
		    memcmp(m.text, msgs[i].text, (size_t)n))
			addf(fails, len, " queue: message %zu is not type %ld \"%s\";", i,
			     msgs[i].type, msgs[i].text);
	}
}

static void check(struct ipc *s)
{
	char fails[2048] = "", text[2400];
	uint64_t before[S_NR], deadline;
	int moved[S_NR] = { 0 };

	s->seq++;
	for (int g = 0; g < S_NR; g++) {
		struct shmid_ds ds;
		uint8_t *m;
		long bad;

		if (shmctl(s->id[g], IPC_STAT, &ds) < 0) {
			addf(fails, sizeof(fails), " %s: IPC_STAT of id %d: %s;", names[g], s->id[g],
			     strerror(errno));
			continue;
		}
		if (ds.shm_perm.__key != seg_key(s, g) || (ds.shm_perm.mode & 0777) != modes[g] ||
		    ds.shm_segsz != sizes[g] || ds.shm_nattch != nattch[g])
			addf(fails, sizeof(fails),
			     " %s (id %d): key %#x mode %o size %zu nattch %lu, want %#x %o %zu %u;",
			     names[g], s->id[g], (unsigned)ds.shm_perm.__key, ds.shm_perm.mode & 0777,
			     (size_t)ds.shm_segsz, (unsigned long)ds.shm_nattch, (unsigned)seg_key(s, g),
			     modes[g], sizes[g], nattch[g]);
		m = s->mem[g] ? s->mem[g] : shmat(s->id[g], NULL, SHM_RDONLY);
		if (m == (void *)-1) {
			addf(fails, sizeof(fails), " %s: shmat %d: %s;", names[g], s->id[g],
			     strerror(errno));
			continue;
		}
		bad = bad_page(g, m);
		if (bad >= 0)
			addf(fails, sizeof(fails), " %s: page %ld is not the pattern;", names[g], bad);
		if (!s->mem[g])
			shmdt(m);
	}
	if (s->msq >= 0)
		check_msq(s, fails, sizeof(fails));
	before[S_A] = *counter(s, S_A, !s->child);
	before[S_C] = *counter(s, S_C, !s->child);
	deadline = now_ms() + WAIT_MS;
	while ((!moved[S_A] || !moved[S_C]) && now_ms() < deadline) {
		bump(s);
		moved[S_A] = *counter(s, S_A, !s->child) != before[S_A];
		moved[S_C] = *counter(s, S_C, !s->child) != before[S_C];
		usleep(1000);
	}
	for (int g = S_A; g <= S_C; g += 2)
		if (!moved[g])
			addf(fails, sizeof(fails), " %s: the other process's counter did not move;",
			     names[g]);
	snprintf(text, sizeof(text), "%s seq=%" PRIu64 " pid=%d%s%s\n", fails[0] ? "FAIL" : "PASS",
		 s->seq, (int)getpid(), fails[0] ? ":" : "", fails);
	wl_publish(s->dir, "result", text);
}

static void run(struct ipc *s)
{
	for (;;) {
		if (check_requested) {
			check_requested = 0;
			check(s);
		}
		if (term_requested) {
			if (!s->child) {
				kill(s->other, SIGTERM);
				waitpid(s->other, NULL, 0);
			}
			exit(0);
		}
		bump(s);
		usleep(1000);
	}
}

/* The child's own stdio (a description shared across processes is not dumped yet). */
static void own_stdio(const char *dir)
{
	char path[4200];
	int in = open("/dev/null", O_RDONLY), out;

	snprintf(path, sizeof(path), "%s/out", dir);
	out = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		die("stdio of the child");
	close(in);
	close(out);
}

static void make_segments(struct ipc *s)
{
	for (int g = 0; g < S_NR; g++) {
		uint8_t *m;

		s->id[g] = shmget(seg_key(s, g), sizes[g], IPC_CREAT | IPC_EXCL | (int)modes[g]);
		if (s->id[g] < 0)
			die("shmget %s", names[g]);
		m = shmat(s->id[g], NULL, 0);
		if (m == (void *)-1)
			die("shmat %s", names[g]);
		fill(g, m);
		if (g == S_B)
			shmdt(m);
		else
			s->mem[g] = m;
	}
}

static void make_others(struct ipc *s, int msg, int sem, int mq)
{
	if (msg) {
		struct msqid_ds ds;

		s->msq = msgget(s->key + 2, IPC_CREAT | IPC_EXCL | 0640);
		if (s->msq < 0 || msgctl(s->msq, IPC_STAT, &ds) < 0)
			die("message queue");
		ds.msg_qbytes = MSQ_QBYTES;
		if (msgctl(s->msq, IPC_SET, &ds) < 0)
			die("message queue: IPC_SET");
		for (size_t i = 0; i < NR_MSGS; i++) {
			struct {
				long type;
				char text[16];
			} m = { msgs[i].type, "" };

			strcpy(m.text, msgs[i].text);
			if (msgsnd(s->msq, &m, strlen(m.text), 0) < 0)
				die("msgsnd");
		}
	}
	if (sem) {
		int id = semget(s->key + 3, 2, IPC_CREAT | IPC_EXCL | 0600);

		if (id < 0 || semctl(id, 0, SETVAL, 3) < 0 || semctl(id, 1, SETVAL, 5) < 0)
			die("semaphore set");
	}
	if (mq) {
		mqd_t q = mq_open("/lzipcns", O_CREAT | O_EXCL | O_RDWR, 0600, NULL);

		if (q == (mqd_t)-1)
			die("mq_open /lzipcns");
	}
}

int main(int argc, char **argv)
{
	struct ipc s = { .key = 0x4c5a1000, .msq = -1 };
	int msg = 0, sem = 0, mq = 0;
	char text[256];
	pid_t pid;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			snprintf(s.dir, sizeof(s.dir), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--key") && i + 1 < argc)
			s.key = (key_t)strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--msg"))
			msg = 1;
		else if (!strcmp(argv[i], "--sem"))
			sem = 1;
		else if (!strcmp(argv[i], "--mq"))
			mq = 1;
		else {
			fprintf(stderr, "usage: lzipcns --dir DIR [--key K] [--msg] [--sem] [--mq]\n");
			return 2;
		}
	}
	if (!s.dir[0]) {
		fprintf(stderr, "lzipcns: --dir is required\n");
		return 2;
	}
	/* As pid 1 of its own pid namespace: a session of its own (a leader already: EPERM). */
	setsid();
	signal(SIGUSR1, wl_on_usr1);
	signal(SIGTERM, wl_on_term);
	make_segments(&s);
	make_others(&s, msg, sem, mq);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		s.child = 1;
		s.other = getppid();
		snprintf(s.dir + strlen(s.dir), sizeof(s.dir) - strlen(s.dir), "/child");
		if (mkdir(s.dir, 0700) < 0 && errno != EEXIST)
			die("mkdir %s", s.dir);
		own_stdio(s.dir);
		snprintf(text, sizeof(text), "pid=%d\n", (int)getpid());
		wl_publish(s.dir, "ready", text);
		run(&s);
	}
	s.other = pid;
	/* The child's ready first: the test then finds both. */
	for (int i = 0; i < 5000; i++) {
		char path[4200];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/child/ready", s.dir);
		if (stat(path, &sb) == 0)
			break;
		usleep(1000);
	}
	snprintf(text, sizeof(text), "pid=%d child=%d ida=%d idb=%d idc=%d key=%d\n", (int)getpid(),
		 (int)pid, s.id[S_A], s.id[S_B], s.id[S_C], (int)s.key);
	wl_publish(s.dir, "ready", text);
	run(&s);
}
