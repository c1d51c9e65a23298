/*
 * main.c - the lazarus command line: option parsing and dispatch only.
 * Each subcommand is one call into the library.
 */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lazarus/lazarus.h"
#include "cli.h"
#include "lazy-daemon.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lazarus COMMAND [OPTIONS]\n"
		"\n"
		"Checkpoint a running process to image files and restore it.\n"
		"\n"
		"Commands:\n"
		"  dump -t PID -D DIR [-R]     checkpoint process PID into DIR\n"
		"  restore -D DIR [-d]         restore the process dumped in DIR\n"
		"  lazy-pages -D DIR           serve lazily restored memory ('lazy-pages --help')\n"
		"  show FILE                   print an image file as JSON\n"
		"  check                       report the kernel features lazarus uses\n"
		"\n"
		"Common options:\n"
		"  -D, --images-dir DIR        directory of the image files\n"
		"  -o, --log-file FILE         log to FILE (relative to DIR unless absolute)\n"
		"  -v N                        log level 0-4 (default 2: warnings); -v alone means 4\n"
		"  -h, --help                  this help; 'lazarus COMMAND --help' for one command\n"
		"  -V, --version               print the version\n"
		"\n"
		"dump options:\n"
		"  -t, --tree PID              the process to dump, with its descendants (pid 1\n"
		"                              of a pid namespace: pids as seen inside it)\n"
		"  -R, --leave-running         keep the process running after the dump\n"
		"      --progress              report memory dump progress on stderr\n"
		"      --freeze-timeout SEC    give up if the process does not stop (default 10)\n"
		"      --tcp-established       keep established TCP connections (TCP_REPAIR; their\n"
		"                              packets are dropped by nftables until restore)\n"
		"      --ext-unix-sk           a unix socket connected to a peer outside the tree\n"
		"                              is reconnected to the peer's name at restore\n"
		"      --shell-job             the process is a job of a shell: its terminal and\n"
		"                              session are outside the tree\n"
		"\n"
		"restore options:\n"
		"  -d, --restore-detached      return once the process runs; do not wait for it\n"
		"      --lazy-pages            restore anonymous memory on demand through the\n"
		"                              lazy-pages daemon of WORKDIR (started if none)\n"
		"      --pidns                 into a fresh pid namespace (pids kept inside); a\n"
		"                              dumped root that was pid 1 of its own always is\n"
		"      --netns PATH            into the network namespace PATH (/run/netns/NAME,\n"
		"                              /proc/PID/ns/net): every socket is created there\n"
		"      --tcp-established       restore established TCP connections (dumped so)\n"
		"      --shell-job             attach a shell job to the terminal on stdin\n"
		"  -W, --work-dir WORKDIR      lazy-pages socket and stats (default: DIR)\n"
		"      --trust-images-of USER  also trust images owned by USER (name or uid);\n"
		"                              otherwise only root's and the caller's\n"
		"\n"
		"See lazarus(8) for details.\n");
}

enum {
	OPT_PROGRESS = 1000,
	OPT_FREEZE_TIMEOUT,
	OPT_LAZY_PAGES,
	OPT_WORK_DIR,
	OPT_TRUST_IMAGES_OF,
	OPT_PIDNS,
	OPT_NETNS,
	OPT_TCP_ESTABLISHED,
	OPT_EXT_UNIX_SK,
	OPT_SHELL_JOB,
};

static const struct option long_opts[] = {
	{ "tree", required_argument, NULL, 't' },
	{ "images-dir", required_argument, NULL, 'D' },
	{ "work-dir", required_argument, NULL, 'W' },
	{ "log-file", required_argument, NULL, 'o' },
	{ "verbosity", optional_argument, NULL, 'v' },
	{ "leave-running", no_argument, NULL, 'R' },
	{ "restore-detached", no_argument, NULL, 'd' },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "freeze-timeout", required_argument, NULL, OPT_FREEZE_TIMEOUT },
	{ "lazy-pages", no_argument, NULL, OPT_LAZY_PAGES },
	{ "trust-images-of", required_argument, NULL, OPT_TRUST_IMAGES_OF },
	{ "pidns", no_argument, NULL, OPT_PIDNS },
	{ "netns", required_argument, NULL, OPT_NETNS },
	{ "tcp-established", no_argument, NULL, OPT_TCP_ESTABLISHED },
	{ "ext-unix-sk", no_argument, NULL, OPT_EXT_UNIX_SK },
	{ "shell-job", no_argument, NULL, OPT_SHELL_JOB },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 },
};

static int parse_int(const char *s, const char *what, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 0 || v > 0x7fffffff) {
		fprintf(stderr, "lazarus: %s: not a valid number: '%s'\n", what, s);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static int check_dir(const char *dir)
{
	struct stat st;

	if (!dir) {
		pr_err("no images directory given (-D DIR)");
		return -1;
	}
	if (stat(dir, &st) < 0) {
		pr_err("images directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		pr_err("images directory %s: not a directory", dir);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cli_opts o = { .pid = -1, .verbosity = LOG_WARN };
	bool lazy_pages = false, pidns = false, tcp_established = false, shell_job = false;
	const char *netns = NULL;
	uid_t trust_uid = 0;
	const char *cmd;
	int c;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("lazarus %s\n", LAZARUS_VERSION);
		return 0;
	}

	if (!strcmp(cmd, "lazy-pages"))
		return cli_lazy_pages(argc, argv);
	if (!strcmp(cmd, "dump"))
		cli_block_stop_signals();

	optind = 2;
	while ((c = getopt_long(argc, argv, "t:D:W:o:v::Rdh", long_opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_int(optarg, "-t", &o.pid))
				return 2;
			break;
		case 'D':
			o.images_dir = optarg;
			break;
		case 'W':
			o.work_dir = optarg;
			break;
		case 'o':
			o.log_file = optarg;
			break;
		case 'v':
			if (!optarg)
				o.verbosity = LOG_DEBUG;
			else if (parse_int(optarg, "-v", &o.verbosity))
				return 2;
			if (o.verbosity > LOG_DEBUG)
				o.verbosity = LOG_DEBUG;
			break;
		case 'R':
			o.leave_running = true;
			break;
		case 'd':
			o.detach = true;
			break;
		case OPT_FREEZE_TIMEOUT:
			if (parse_int(optarg, "--freeze-timeout", &o.freeze_timeout_s))
				return 2;
			if (o.freeze_timeout_s == 0 || o.freeze_timeout_s > 3600) {
				fprintf(stderr, "lazarus: --freeze-timeout: 1 to 3600 seconds\n");
				return 2;
			}
			break;
		case OPT_PROGRESS:
			o.progress = true;
			break;
		case OPT_EXT_UNIX_SK:
			o.ext_unix_sk = true;
			break;
		case OPT_LAZY_PAGES:
			lazy_pages = true;
			break;
		case OPT_PIDNS:
			pidns = true;
			break;
		case OPT_NETNS:
			netns = optarg;
			break;
		case OPT_TCP_ESTABLISHED:
			tcp_established = true;
			break;
		case OPT_SHELL_JOB:
			shell_job = true;
			break;
		case OPT_TRUST_IMAGES_OF:
			if (cli_parse_user(optarg, &trust_uid))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "lazarus: see 'lazarus --help'\n");
			return 2;
		}
	}

	log_init(o.verbosity, -1);

	if (!strcmp(cmd, "show") || !strcmp(cmd, "check")) {
		if (!strcmp(cmd, "show")) {
			if (optind != argc - 1) {
				fprintf(stderr, "lazarus: usage: lazarus show FILE\n");
				return 2;
			}
			return cli_show(argv[optind]) ? 1 : 0;
		}
		return cli_check() ? 1 : 0;
	}
	if (optind != argc) {
		fprintf(stderr, "lazarus: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	if (!strcmp(cmd, "dump")) {
		struct lz_dump_opts d = {
			.pid = o.pid,
			.images_dir = o.images_dir,
			.leave_running = o.leave_running,
			.progress = o.progress,
			.ext_unix_sk = o.ext_unix_sk,
			.freeze_timeout_ms = (unsigned)o.freeze_timeout_s * 1000,
			.tcp_established = tcp_established,
			.shell_job = shell_job,
		};

		if (o.pid <= 0) {
			fprintf(stderr, "lazarus: dump needs a process: -t PID\n");
			return 2;
		}
		if (check_dir(o.images_dir))
			return 1;
		if (o.log_file && cli_open_log(&o))
			return 1;
		return lz_dump(&d) ? 1 : 0;
	}
	if (!strcmp(cmd, "restore")) {
		struct lz_restore_opts r = {
			.images_dir = o.images_dir,
			.detach = o.detach,
			.work_dir = o.work_dir,
			.lazy_pages = lazy_pages,
			.pidns = pidns,
			.netns = netns,
			.tcp_established = tcp_established,
			.shell_job = shell_job,
			.trust_images_of = trust_uid,
		};
		int status = 0, pid = 0;

		if (check_dir(o.images_dir))
			return 1;
		if (o.log_file && cli_open_log(&o))
			return 1;
		if (lz_restore(&r, &status, &pid))
			return 1;
		if (o.detach)
			return 0;
		if (WIFEXITED(status))
			return WEXITSTATUS(status);
		if (WIFSIGNALED(status))
			return 128 + WTERMSIG(status);
		return 1;
	}
	fprintf(stderr, "lazarus: unknown command '%s'; see 'lazarus --help'\n", cmd);
	return 2;
}
