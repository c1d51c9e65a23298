/*
 * lazy-cli.c - `lazarus lazy-pages`: options, detaching (-d), logging, then
 * lazy_daemon_run().
 */
#include <fcntl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "lazy-daemon.h"
#include "log.h"
#include "safe-file.h"

enum {
	OPT_STATUS_FD = 1000,
	OPT_RESUME,
	OPT_GUARD_TIMEOUT,
	OPT_FAULT_AROUND,
	OPT_FILL_CHUNK,
	OPT_TRUST_IMAGES_OF,
	OPT_RECORD_WS,
	OPT_PREFETCH_WS,
};

static const struct option lazy_opts[] = {
	{ "images-dir", required_argument, NULL, 'D' },
	{ "work-dir", required_argument, NULL, 'W' },
	{ "log-file", required_argument, NULL, 'o' },
	{ "verbosity", optional_argument, NULL, 'v' },
	{ "daemon", no_argument, NULL, 'd' },
	{ "status-fd", required_argument, NULL, OPT_STATUS_FD },
	{ "resume", no_argument, NULL, OPT_RESUME },
	{ "guardian-timeout", required_argument, NULL, OPT_GUARD_TIMEOUT },
	{ "fault-around", required_argument, NULL, OPT_FAULT_AROUND },
	{ "fill-chunk", required_argument, NULL, OPT_FILL_CHUNK },
	{ "trust-images-of", required_argument, NULL, OPT_TRUST_IMAGES_OF },
	{ "record-ws", optional_argument, NULL, OPT_RECORD_WS },
	{ "prefetch-ws", no_argument, NULL, OPT_PREFETCH_WS },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static void lazy_usage(FILE *f)
{
	fprintf(f,
		"Usage: lazarus lazy-pages -D DIR [-W WORKDIR] [--status-fd FD] [-d] [-o LOGFILE]\n"
		"                          [-v[N]] [--resume] [--guardian-timeout SEC]\n"
		"                          [--fault-around KIB] [--fill-chunk KIB]\n"
		"                          [--trust-images-of USER] [--record-ws[=MS] | --prefetch-ws]\n"
		"\n"
		"Serve the memory of processes restored with 'restore --lazy-pages' from the\n"
		"images in DIR, listening on WORKDIR/lazy-pages.sock (WORKDIR defaults to DIR).\n"
		"Exits 0 when every page is in place or its process is gone.\n"
		"\n"
		"  -D, --images-dir DIR      the dump\n"
		"  -W, --work-dir WORKDIR    socket, lock, lazy-pages-stats.json, relative logs\n"
		"      --status-fd FD        write one byte to FD when ready to serve\n"
		"  -d, --daemon              detach once ready (logs to WORKDIR/lazy-pages.log\n"
		"                            unless -o says otherwise)\n"
		"  -o, --log-file FILE       log to FILE (relative to WORKDIR)\n"
		"  -v N                      log level 0-4; -v alone means 4\n"
		"      --resume              take over from the guardian of a daemon that died\n"
		"      --guardian-timeout S  how long the guardian waits for --resume before it\n"
		"                            kills the processes it guards (default %u)\n"
		"      --fault-around KIB    pages placed per fault, power of two (default %u)\n"
		"      --fill-chunk KIB      background fill chunk, 64-2048 (default %u)\n"
		"      --trust-images-of USER  also serve images owned by USER (name or uid);\n"
		"                            root's and our own are always trusted\n"
		"      --record-ws[=MS]      record each restored process's working set (the pages\n"
		"                            it touches first, in order; no fill meanwhile) for MS\n"
		"                            ms (default %u; 0: until it exits) into DIR/ws-<id>.img\n"
		"      --prefetch-ws         place the recorded working set first, then the rest\n"
		"\n"
		"LAZARUS_LAZY_CONN_TIMEOUT_MS=N: how long a client may owe a message (10000).\n"
		"Tests only: LAZARUS_LAZY_FILL_DELAY_US=N pauses N us after each fill chunk;\n"
		"LAZARUS_LAZY_TEST_CRASH=fork makes the daemon SIGKILL itself on reading a fork.\n",
		LZ_LAZY_GUARD_TIMEOUT_S, LZ_LAZY_FAULT_AROUND_KIB, LZ_LAZY_FILL_CHUNK_KIB,
		LZ_LAZY_RECORD_WS_MS);
}

static int num(const char *s, const char *what, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v > max) {
		fprintf(stderr, "lazarus: %s: not a valid number: '%s'\n", what, s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int lazy_parse(int argc, char **argv, struct lazy_daemon_opts *o, const char **log_file,
		      int *level, bool *detach)
{
	unsigned v;
	int c;

	optind = 2;
	while ((c = getopt_long(argc, argv, "D:W:o:v::dh", lazy_opts, NULL)) != -1) {
		switch (c) {
		case 'D':
			o->images_dir = optarg;
			break;
		case 'W':
			o->work_dir = optarg;
			break;
		case 'o':
			*log_file = optarg;
			break;
		case 'v':
			if (!optarg)
				*level = LOG_DEBUG;
			else if (num(optarg, "-v", LOG_DEBUG, &v))
				return 2;
			else
				*level = (int)v;
			break;
		case 'd':
			*detach = true;
			break;
		case OPT_STATUS_FD:
			if (num(optarg, "--status-fd", 1 << 20, &v))
				return 2;
			o->status_fd = (int)v;
			break;
		case OPT_RESUME:
			o->resume = true;
			break;
		case OPT_GUARD_TIMEOUT:
			if (num(optarg, "--guardian-timeout", 86400, &o->guard_timeout_s))
				return 2;
			break;
		case OPT_TRUST_IMAGES_OF:
			if (cli_parse_user(optarg, &o->trust_images_of))
				return 2;
			break;
		case OPT_RECORD_WS:
			o->record_ws = true;
			o->record_ws_ms = LZ_LAZY_RECORD_WS_MS;
			if (optarg && num(optarg, "--record-ws", 86400000, &o->record_ws_ms))
				return 2;
			break;
		case OPT_PREFETCH_WS:
			o->prefetch_ws = true;
			break;
		case OPT_FAULT_AROUND:
			if (num(optarg, "--fault-around", 2048, &o->fault_around_kib))
				return 2;
			break;
		case OPT_FILL_CHUNK:
			if (num(optarg, "--fill-chunk", 2048, &o->fill_chunk_kib))
				return 2;
			break;
		case 'h':
			lazy_usage(stdout);
			return 1;
		default:
			fprintf(stderr, "lazarus: see 'lazarus lazy-pages --help'\n");
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "lazarus: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o->images_dir) {
		fprintf(stderr, "lazarus: lazy-pages needs the images directory: -D DIR\n");
		return 2;
	}
	return 0;
}

/*
 * -d: the parent returns once the daemon listens (or failed to start), so
 * `lazarus lazy-pages -d ... && lazarus restore --lazy-pages ...` is safe.
 * It waits at most DETACH_READY_MS for that.
 */
#define DETACH_READY_MS 60000
static int lazy_detach(struct lazy_daemon_opts *o)
{
	int pfd[2], null;
	pid_t pid;
	char b;

	if (pipe2(pfd, O_CLOEXEC)) {
		perror("lazarus: pipe");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		perror("lazarus: fork");
		return -1;
	}
	if (pid > 0) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int n;

		close(pfd[1]);
		do
			n = poll(&p, 1, DETACH_READY_MS);
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			fprintf(stderr, "lazarus: Error: lazy-pages: the daemon (pid %d) did not get "
				"ready within %d ms; see its log\n", pid, DETACH_READY_MS);
			exit(1);
		}
		/* A byte: ready. EOF: it failed, and its log (or stderr) said why. */
		exit(n == 1 && read(pfd[0], &b, 1) == 1 ? 0 : 1);
	}
	close(pfd[0]);
	setsid();
	o->ready_fd = pfd[1];
	o->detached = true;
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		close(null);
	}
	return 0;
}

int cli_lazy_pages(int argc, char **argv)
{
	struct lazy_daemon_opts o;
	const char *log_file = NULL, *env;
	int level = LOG_WARN, ret;
	bool detach = false;
	unsigned v;

	lazy_daemon_opts_init(&o);
	ret = lazy_parse(argc, argv, &o, &log_file, &level, &detach);
	if (ret)
		return ret == 1 ? 0 : ret;
	env = getenv("LAZARUS_LAZY_FILL_DELAY_US");
	if (env && !num(env, "LAZARUS_LAZY_FILL_DELAY_US", 10000000, &v))
		o.fill_delay_us = v;
	env = getenv("LAZARUS_LAZY_TEST_CRASH");
	o.test_crash_on_fork = env && !strcmp(env, "fork");
	if (detach && !log_file)
		log_file = "lazy-pages.log";
	env = getenv("LAZARUS_LAZY_CONN_TIMEOUT_MS");
	if (env && !num(env, "LAZARUS_LAZY_CONN_TIMEOUT_MS", 3600000, &v) && v)
		o.conn_timeout_ms = v;
	log_init(level, -1);
	if (log_file) {
		/* Created 0600 (it holds addresses), never through a symlink. */
		char why[SF_WHY_MAX];

		ret = log_open_file_why(o.work_dir ? o.work_dir : o.images_dir, log_file, why);
		if (ret) {
			fprintf(stderr, "lazarus: Error: lazy-pages: log file %s: %s\n", log_file,
				why);
			return 1;
		}
	}
	if (detach && lazy_detach(&o))
		return 1;
	ret = lazy_daemon_run(&o);
	return ret ? 1 : 0;
}
