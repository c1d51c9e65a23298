/*
 * lzwork.c - the main test workload: a process whose whole state can check
 * itself after a checkpoint and restore.
 *
 *   lzwork --dir DIR [--mib N] [--thp]
 *
 * Set-up: N MiB (default 64) of private anonymous memory filled with a
 * deterministic non-zero pattern (some pages never touched, some touched
 * and then zeroed, the tail made read-only); counters in the heap (malloc),
 * an mmap page, main's stack, .data, .bss and TLS; a SIGUSR1 handler on an
 * alternate signal stack; SIGUSR2 blocked; umask, a lowered RLIMIT_NOFILE and
 * an ITIMER_VIRTUAL; FE_UPWARD rounding; DIR/log open (no O_APPEND) with
 * one fixed-size record appended every REC_EVERY iterations. Then DIR/ready
 * is written (tmp + rename) and the main loop runs: FP/SIMD arithmetic
 * recomputable from the iteration count, vdso clock_gettime (monotonic must
 * never go backwards), all counters incremented together, a 1 ms sleep.
 *
 * SIGUSR1 asks for a self-check: the handler only sets a flag and notes
 * whether it ran on the alternate stack; the main loop then verifies
 * everything and writes DIR/result (tmp + rename):
 *   "PASS seq=S pid=P ctr=C prev=C0 ..."  or  "FAIL seq=S pid=P ...: reasons"
 * SIGTERM exits 0, SIGINT exits 42 (distinct codes for exit-status tests).
 *
 * Every syscall that a dump may interrupt is EINTR-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <fenv.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzwork"
#include "wl.h"

#define PAGE 4096UL
#define WORDS_PER_PAGE (PAGE / sizeof(uint64_t))
#define REC_SIZE 64		/* bytes per log record */
#define REC_EVERY 16		/* iterations per log record */
#define FP_ROUNDS 256		/* vector rounds per iteration */
#define NOFILE_SOFT 777		/* RLIMIT_NOFILE soft limit we set and check */
#define UMASK 027
#define ITIMER_SEC 100000	/* ITIMER_VIRTUAL interval: never fires in a test */
#define KCMP_FILE 0

/* Page p of the pattern area is never touched / touched then zeroed. */
static int page_untouched(uint64_t p) { return p % 251 == 7; }
static int page_zeroed(uint64_t p) { return p % 251 == 100; }

/* Counters: all start at 0 and are incremented together every iteration. */
static uint64_t c_data = 0xdeadbeef; /* .data: lives in a private file mapping */
static uint64_t c_bss;		/* .bss */
static __thread uint64_t c_tls;	/* TLS: reached through fs_base */
#define C_DATA_BASE 0xdeadbeefULL

/* Written by signal handlers. */
static volatile sig_atomic_t check_requested, term_requested, int_requested;
static volatile sig_atomic_t handler_runs, handler_on_altstack = 1;

struct fpstate {
	double v[8] __attribute__((aligned(64)));
	long double ld;
};

/* Everything the self-check needs to know. */
struct work {
	const char *dir;
	uint64_t mib;
	uint8_t *mem;		/* pattern area */
	size_t mem_len;
	size_t ro_off;		/* read-only from here to mem_len */
	uint64_t *c_heap;	/* malloc */
	uint64_t *c_mmap;	/* a page of its own */
	bool thp;		/* --thp: its memory MADV_HUGEPAGE */
	uint8_t *altstack;
	size_t altstack_len;
	int logfd;
	uint64_t log_off;	/* where our next record goes */
	uint64_t records;
	struct timespec last_mono;
	uint64_t mono_backwards;
	struct fpstate fp;	/* evolves every iteration */
	const char *simd;	/* which fp_chunk variant runs */
	void (*fp_chunk)(struct fpstate *, uint64_t);
	int stdio_shared;	/* kcmp(1, 2) == 0 at start; -1: kcmp unavailable */
	char cwd[4096];
	uint64_t seq;		/* checks done */
	uint64_t prev_ctr;	/* counter at the previous check */
	int prev_handler_runs;
};

static uint64_t pattern(uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 32;
	return x ? x : 1;
}

/* --- FP/SIMD: the same function is used to run and to recompute --- */

#define FP_MUL 1.0000001
#define FP_ADD(i, r) ((double)((i) & 1023) * 1e-3 + (double)(r) * 1e-7)

typedef double v8d __attribute__((vector_size(64)));
typedef double v4d __attribute__((vector_size(32)));
typedef double v2d __attribute__((vector_size(16)));

__attribute__((target("avx512f"), noinline)) static void fp_chunk_avx512(struct fpstate *s,
									  uint64_t it)
{
	v8d v, m = { FP_MUL, FP_MUL, FP_MUL, FP_MUL, 1 / FP_MUL, 1 / FP_MUL, 1 / FP_MUL, 1 / FP_MUL };

	memcpy(&v, s->v, sizeof(v));
	for (int r = 0; r < FP_ROUNDS; r++)
		v = v * m + FP_ADD(it, r);
	memcpy(s->v, &v, sizeof(v));
	s->ld = s->ld * 1.000001L + (long double)it;
}

__attribute__((target("avx2"), noinline)) static void fp_chunk_avx2(struct fpstate *s, uint64_t it)
{
	v4d a, b, ma = { FP_MUL, FP_MUL, FP_MUL, FP_MUL },
		  mb = { 1 / FP_MUL, 1 / FP_MUL, 1 / FP_MUL, 1 / FP_MUL };

	memcpy(&a, s->v, sizeof(a));
	memcpy(&b, s->v + 4, sizeof(b));
	for (int r = 0; r < FP_ROUNDS; r++) {
		a = a * ma + FP_ADD(it, r);
		b = b * mb + FP_ADD(it, r);
	}
	memcpy(s->v, &a, sizeof(a));
	memcpy(s->v + 4, &b, sizeof(b));
	s->ld = s->ld * 1.000001L + (long double)it;
}

__attribute__((noinline)) static void fp_chunk_sse2(struct fpstate *s, uint64_t it)
{
	v2d x[4], m[4] = { { FP_MUL, FP_MUL }, { FP_MUL, FP_MUL },
			   { 1 / FP_MUL, 1 / FP_MUL }, { 1 / FP_MUL, 1 / FP_MUL } };

	memcpy(x, s->v, sizeof(x));
	for (int r = 0; r < FP_ROUNDS; r++)
		for (int k = 0; k < 4; k++)
			x[k] = x[k] * m[k] + FP_ADD(it, r);
	memcpy(s->v, x, sizeof(x));
	s->ld = s->ld * 1.000001L + (long double)it;
}

static void fp_init(struct fpstate *s)
{
	for (int k = 0; k < 8; k++)
		s->v[k] = 1.0 + k;
	s->ld = 1.0L;
}

static void fp_pick(struct work *w)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		w->fp_chunk = fp_chunk_avx512;
		w->simd = "avx512";
	} else if (__builtin_cpu_supports("avx2")) {
		w->fp_chunk = fp_chunk_avx2;
		w->simd = "avx2";
	} else {
		w->fp_chunk = fp_chunk_sse2;
		w->simd = "sse2";
	}
}

/* --- signals --- */

static void on_usr1(int sig)
{
	char here;
	stack_t ss;

	(void)sig;
	/* sigaltstack() is async-signal-safe; the address test does not need it. */
	if (sigaltstack(NULL, &ss) || !(ss.ss_flags & SS_ONSTACK) ||
	    (uintptr_t)&here < (uintptr_t)ss.ss_sp ||
	    (uintptr_t)&here >= (uintptr_t)ss.ss_sp + ss.ss_size)
		handler_on_altstack = 0;
	handler_runs++;
	check_requested = 1;
}

static void on_term(int sig)
{
	if (sig == SIGINT)
		int_requested = 1;
	else
		term_requested = 1;
}

static void setup_signals(struct work *w)
{
	struct sigaction sa = { 0 };
	stack_t ss;
	sigset_t set;

	w->altstack_len = 4 * SIGSTKSZ;
	w->altstack = mmap(NULL, w->altstack_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->altstack == MAP_FAILED)
		die("mmap altstack");
	ss.ss_sp = w->altstack;
	ss.ss_size = w->altstack_len;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL))
		die("sigaltstack");

	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK;
	if (sigaction(SIGUSR1, &sa, NULL))
		die("sigaction SIGUSR1");
	sa.sa_handler = on_term;
	sa.sa_flags = 0;
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		die("sigaction SIGTERM");

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask");
}

/* --- memory --- */

static void setup_memory(struct work *w)
{
	size_t pages;

	w->mem_len = w->mib << 20;
	pages = w->mem_len / PAGE;
	w->mem = mmap(NULL, w->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->mem == MAP_FAILED)
		die("mmap %" PRIu64 " MiB", w->mib);
	/* --thp: transparent huge pages where the kernel can (THP "madvise"). */
	if (w->thp && madvise(w->mem, w->mem_len, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE)");
	for (size_t p = 0; p < pages; p++) {
		uint64_t *wp = (uint64_t *)(w->mem + p * PAGE);

		if (page_untouched(p))
			continue;
		for (size_t k = 0; k < WORDS_PER_PAGE; k++)
			wp[k] = pattern(p * WORDS_PER_PAGE + k);
		if (page_zeroed(p))
			memset(wp, 0, PAGE);
	}
	/* The last eighth read-only: a VMA of its own with different prot. */
	w->ro_off = (pages - pages / 8) * PAGE;
	if (pages / 8 && mprotect(w->mem + w->ro_off, w->mem_len - w->ro_off, PROT_READ))
		die("mprotect");

	w->c_heap = calloc(1, sizeof(*w->c_heap));
	w->c_mmap = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!w->c_heap || w->c_mmap == MAP_FAILED)
		die("counters");
}

/* --- files --- */

static void format_record(char *rec, uint64_t j)
{
	char tmp[REC_SIZE + 1];

	snprintf(tmp, sizeof(tmp), "record %012" PRIu64 " iteration %012" PRIu64, j,
		 (j + 1) * REC_EVERY);
	memset(rec, '.', REC_SIZE);
	memcpy(rec, tmp, strlen(tmp));
	rec[REC_SIZE - 1] = '\n';
}

static void append_record(struct work *w)
{
	char rec[REC_SIZE];

	format_record(rec, w->records);
	if (write_all(w->logfd, rec, REC_SIZE))
		die("write log");
	w->records++;
	w->log_off += REC_SIZE;
}

static void setup_files(struct work *w)
{
	char path[4200];
	struct rlimit rl;

	snprintf(path, sizeof(path), "%s/log", w->dir);
	w->logfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (w->logfd < 0)
		die("open %s", path);
	w->stdio_shared = (int)syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 1, 2);
	if (w->stdio_shared < 0)
		w->stdio_shared = -1;
	else
		w->stdio_shared = w->stdio_shared == 0;
	if (!getcwd(w->cwd, sizeof(w->cwd)))
		die("getcwd");
	umask(UMASK);
	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit");
	if (rl.rlim_max >= NOFILE_SOFT) {
		rl.rlim_cur = NOFILE_SOFT;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			die("setrlimit");
	}
	struct itimerval it = { { ITIMER_SEC, 0 }, { ITIMER_SEC, 0 } };
	if (setitimer(ITIMER_VIRTUAL, &it, NULL))
		die("setitimer");
}

/* --- the self-check --- */

struct verdict {
	char buf[3000];
	size_t len;
	int fails;
};

static void fail(struct verdict *v, const char *fmt, ...)
{
	va_list ap;

	if (v->len >= sizeof(v->buf) - 1)
		return;
	v->fails++;
	va_start(ap, fmt);
	v->len += (size_t)vsnprintf(v->buf + v->len, sizeof(v->buf) - v->len, fmt, ap);
	va_end(ap);
	if (v->len < sizeof(v->buf) - 2) {
		v->buf[v->len++] = ';';
		v->buf[v->len++] = ' ';
		v->buf[v->len] = '\0';
	} else {
		v->len = sizeof(v->buf) - 1;
	}
}

static void check_memory(const struct work *w, struct verdict *v)
{
	size_t pages = w->mem_len / PAGE;
	int bad = 0;

	for (size_t p = 0; p < pages && bad < 5; p++) {
		const uint64_t *wp = (const uint64_t *)(w->mem + p * PAGE);
		int zero = page_untouched(p) || page_zeroed(p);

		for (size_t k = 0; k < WORDS_PER_PAGE; k++) {
			uint64_t want = zero ? 0 : pattern(p * WORDS_PER_PAGE + k);

			if (wp[k] != want) {
				fail(v, "memory: page %zu word %zu is %#" PRIx64 ", want %#" PRIx64,
				     p, k, wp[k], want);
				bad++;
				break;
			}
		}
	}
}

static void check_counters(const struct work *w, struct verdict *v, uint64_t stack_ctr,
			   uint64_t *ctr)
{
	uint64_t c[6] = { c_data - C_DATA_BASE, c_bss, c_tls, stack_ctr, *w->c_heap, *w->c_mmap };
	static const char *const names[6] = { "data", "bss", "tls", "stack", "heap", "mmap" };

	*ctr = c[0];
	for (int i = 1; i < 6; i++)
		if (c[i] != c[0])
			fail(v, "counters: %s=%" PRIu64 " but data=%" PRIu64, names[i], c[i], c[0]);
	if (c[0] <= w->prev_ctr)
		fail(v, "counters: %" PRIu64 " did not advance past %" PRIu64, c[0], w->prev_ctr);
}

static void check_fp(const struct work *w, struct verdict *v, uint64_t iters)
{
	struct fpstate s;

	if (fegetround() != FE_UPWARD)
		fail(v, "fp: rounding mode %#x, want FE_UPWARD %#x", fegetround(), FE_UPWARD);
	fp_init(&s);
	for (uint64_t i = 0; i < iters; i++)
		w->fp_chunk(&s, i);
	if (memcmp(s.v, w->fp.v, sizeof(s.v)) || s.ld != w->fp.ld)
		fail(v, "fp: state after %" PRIu64 " iterations is %a/%La, want %a/%La", iters,
		     w->fp.v[0], w->fp.ld, s.v[0], s.ld);
}

static void check_log(const struct work *w, struct verdict *v)
{
	off_t cur = lseek(w->logfd, 0, SEEK_CUR);
	char rec[REC_SIZE], got[REC_SIZE];
	struct stat st;

	if (cur < 0 || (uint64_t)cur != w->log_off)
		fail(v, "log: fd offset %jd, want %" PRIu64, (intmax_t)cur, w->log_off);
	if (w->log_off != w->records * REC_SIZE)
		fail(v, "log: offset %" PRIu64 " for %" PRIu64 " records", w->log_off, w->records);
	if (fstat(w->logfd, &st))
		fail(v, "log: fstat: %s", strerror(errno));
	else if ((uint64_t)st.st_size != w->log_off)
		fail(v, "log: file size %jd, want %" PRIu64, (intmax_t)st.st_size, w->log_off);
	for (uint64_t j = 0; j < w->records; j++) {
		format_record(rec, j);
		if (pread(w->logfd, got, REC_SIZE, (off_t)(j * REC_SIZE)) != REC_SIZE ||
		    memcmp(rec, got, REC_SIZE)) {
			fail(v, "log: record %" PRIu64 " is wrong", j);
			break;
		}
	}
}

static void check_signals(struct work *w, struct verdict *v)
{
	struct sigaction sa;
	sigset_t set;
	stack_t ss = { 0 };

	if (handler_runs == w->prev_handler_runs)
		fail(v, "signals: SIGUSR1 handler did not run");
	w->prev_handler_runs = handler_runs;
	if (!handler_on_altstack)
		fail(v, "signals: SIGUSR1 handler ran off the alternate stack");
	if (sigaltstack(NULL, &ss) || ss.ss_sp != w->altstack || ss.ss_size != w->altstack_len)
		fail(v, "signals: sigaltstack is %p+%zu, want %p+%zu", ss.ss_sp, ss.ss_size,
		     (void *)w->altstack, w->altstack_len);
	if (sigaction(SIGUSR1, NULL, &sa) || sa.sa_handler != on_usr1 ||
	    !(sa.sa_flags & SA_ONSTACK))
		fail(v, "signals: SIGUSR1 action changed (flags %#x)", sa.sa_flags);
	if (sigprocmask(SIG_BLOCK, NULL, &set) || !sigismember(&set, SIGUSR2) ||
	    sigismember(&set, SIGUSR1))
		fail(v, "signals: blocked mask changed");
}

static void check_process(const struct work *w, struct verdict *v)
{
	struct itimerval it;
	struct rlimit rl;
	char cwd[4096] = "";
	mode_t m;

	if (w->mono_backwards)
		fail(v, "clock: CLOCK_MONOTONIC went backwards %" PRIu64 " times", w->mono_backwards);
	m = umask(0);
	umask(m);
	if (m != UMASK)
		fail(v, "umask %#o, want %#o", m, UMASK);
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, w->cwd))
		fail(v, "cwd is %s, want %s", cwd, w->cwd);
	if (getrlimit(RLIMIT_NOFILE, &rl) || (rl.rlim_max >= NOFILE_SOFT && rl.rlim_cur != NOFILE_SOFT))
		fail(v, "rlimit: NOFILE soft %ju, want %d", (uintmax_t)rl.rlim_cur, NOFILE_SOFT);
	if (getitimer(ITIMER_VIRTUAL, &it) || it.it_interval.tv_sec != ITIMER_SEC ||
	    (!it.it_value.tv_sec && !it.it_value.tv_usec))
		fail(v, "itimer: ITIMER_VIRTUAL interval %lds, value %lds", it.it_interval.tv_sec,
		     it.it_value.tv_sec);
	if (w->stdio_shared >= 0) {
		long r = syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 1, 2);

		if ((r == 0) != w->stdio_shared)
			fail(v, "stdio: fds 1 and 2 %s one open file, were %s", r == 0 ? "share" : "do not share",
			     w->stdio_shared ? "shared" : "separate");
	}
}

static void self_check(struct work *w, uint64_t stack_ctr)
{
	struct verdict v = { .len = 0 };
	char text[3600];
	uint64_t ctr = 0;

	w->seq++;
	check_counters(w, &v, stack_ctr, &ctr);
	check_memory(w, &v);
	check_fp(w, &v, ctr);
	check_log(w, &v);
	check_signals(w, &v);
	check_process(w, &v);

	snprintf(text, sizeof(text),
		 "%s seq=%" PRIu64 " pid=%d ctr=%" PRIu64 " prev=%" PRIu64 " mib=%" PRIu64
		 " records=%" PRIu64 " log_off=%" PRIu64 " simd=%s%s%s\n",
		 v.fails ? "FAIL" : "PASS", w->seq, (int)getpid(), ctr, w->prev_ctr, w->mib,
		 w->records, w->log_off, w->simd, v.fails ? ": " : "", v.fails ? v.buf : "");
	w->prev_ctr = ctr;
	wl_publish(w->dir, "result", text);
	/* One line on stdout too (stdout and stderr may share one file). */
	write_all(STDOUT_FILENO, text, strlen(text));
}

/* --- main loop --- */

static void tick_clock(struct work *w)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec < w->last_mono.tv_sec ||
	    (now.tv_sec == w->last_mono.tv_sec && now.tv_nsec < w->last_mono.tv_nsec))
		w->mono_backwards++;
	w->last_mono = now;
}

static void parse_args(struct work *w, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "mib", required_argument, NULL, 'm' },
		{ "thp", no_argument, NULL, 't' },
		{ 0 },
	};
	int c;

	w->mib = 64;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'd')
			w->dir = optarg;
		else if (c == 'm')
			w->mib = strtoull(optarg, NULL, 0);
		else if (c == 't')
			w->thp = true;
		else
			exit(2);
	}
	if (!w->dir || !w->mib) {
		fprintf(stderr, "usage: lzwork --dir DIR [--mib N] [--thp]\n");
		exit(2);
	}
}

/* One iteration of the main loop, minus the signal checks. */
static void iterate(struct work *w, volatile uint64_t *stack_ctr)
{
	struct timespec nap = { 0, 1000000 };

	w->fp_chunk(&w->fp, *stack_ctr);
	tick_clock(w);
	c_data++;
	c_bss++;
	c_tls++;
	(*stack_ctr)++;
	(*w->c_heap)++;
	(*w->c_mmap)++;
	if (*stack_ctr % REC_EVERY == 0)
		append_record(w);
	/* EINTR (a signal, a dump) just ends the nap early. */
	nanosleep(&nap, NULL);
}

int main(int argc, char **argv)
{
	static struct work w;	/* in .bss: large, and needed by every check */
	volatile uint64_t stack_ctr = 0; /* the stack counter: main's frame */
	char ready[512];

	parse_args(&w, argc, argv);
	fp_pick(&w);
	fp_init(&w.fp);
	if (fesetround(FE_UPWARD))
		die("fesetround");
	setup_memory(&w);
	setup_signals(&w);
	setup_files(&w);
	clock_gettime(CLOCK_MONOTONIC, &w.last_mono);

	snprintf(ready, sizeof(ready),
		 "pid=%d mem=%#lx mib=%" PRIu64 " ro_off=%#zx altstack=%#lx altstack_len=%#zx "
		 "logfd=%d simd=%s\n",
		 (int)getpid(), (unsigned long)w.mem, w.mib, w.ro_off, (unsigned long)w.altstack,
		 w.altstack_len, w.logfd, w.simd);

	/* A first record before ready: a check right away sees progress. */
	while (stack_ctr < REC_EVERY)
		iterate(&w, &stack_ctr);
	wl_publish(w.dir, "ready", ready);

	for (;;) {
		if (term_requested)
			return 0;
		if (int_requested)
			return 42;
		if (check_requested) {
			check_requested = 0;
			self_check(&w, stack_ctr);
		}
		iterate(&w, &stack_ctr);
	}
}
