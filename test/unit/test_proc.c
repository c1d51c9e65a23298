/*
 * test_proc.c - the /proc parsers of the dump, on fixed text (kernel 6.x
 * formats, odd names, damaged input) and on this process's own files.
 */
#include <errno.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "unit.h"
#include "proc.h"

static const char smaps_text[] =
	"55d0c2a4a000-55d0c2a4c000 r--p 00000000 fd:01 1234                       /usr/bin/cat\n"
	"Size:                  8 kB\n"
	"KernelPageSize:        4 kB\n"
	"THPeligible:           0\n"
	"VmFlags: rd mr mw me \n"
	"55d0c2a4c000-55d0c2a51000 r-xp 00002000 fd:01 1234                       /usr/bin/cat\n"
	"VmFlags: rd ex mr mw me \n"
	"7f0000000000-7f0000200000 rw-p 00000000 00:00 0 \n"
	"Size:               2048 kB\n"
	"Anonymous:            12 kB\n"
	"Swap:                  4 kB\n"
	"SwapPss:               4 kB\n"
	"VmFlags: rd wr mr mw me ac hg lo dd \n"
	"7f0000200000-7f0000201000 rw-s 00001000 00:05 77                         /my file (deleted)\n"
	"VmFlags: rd wr sh mr mw me ms \n"
	"7ffc739ba000-7ffc739db000 rw-p 00000000 00:00 0                          [stack]\n"
	"VmFlags: rd wr mr mw me gd ac \n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"
	"VmFlags: ex \n";

static int test_smaps(void)
{
	struct proc_vmas v;

	CHECK(proc_parse_maps(smaps_text, &v) == 0);
	CHECK(v.nr == 6);
	CHECK(v.v[0].start == 0x55d0c2a4a000ULL && v.v[0].end == 0x55d0c2a4c000ULL);
	CHECK(v.v[0].prot == PROT_READ && !v.v[0].shared);
	CHECK(v.v[0].dev_major == 0xfd && v.v[0].dev_minor == 1 && v.v[0].ino == 1234);
	CHECK(!strcmp(v.v[0].path, "/usr/bin/cat") && v.v[0].vmflags == PROC_VMF_MW);
	CHECK(!v.v[0].has_usage && v.v[2].has_usage);
	CHECK(v.v[2].anon_kb == 12 && v.v[2].swap_kb == 4);
	CHECK(v.v[1].prot == (PROT_READ | PROT_EXEC) && v.v[1].pgoff == 0x2000);
	CHECK(v.v[2].path[0] == '\0' && v.v[2].prot == (PROT_READ | PROT_WRITE));
	CHECK(v.v[2].vmflags == (PROC_VMF_MW | PROC_VMF_HG | PROC_VMF_LO | PROC_VMF_DD));
	CHECK(v.v[3].shared && !strcmp(v.v[3].path, "/my file (deleted)") && v.v[3].ino == 77);
	CHECK(!strcmp(v.v[4].path, "[stack]") && v.v[4].vmflags == (PROC_VMF_MW | PROC_VMF_GD));
	CHECK(!strcmp(v.v[5].path, "[vsyscall]") && v.v[5].prot == PROT_EXEC);
	proc_vmas_free(&v);
	CHECK(v.v == NULL && v.nr == 0);
	return 0;
}

static int test_maps_refused(void)
{
	static const char *const bad[] = {
		"7f00-7e00 rw-p 00000000 00:00 0\n",		   /* end before start */
		"7f00-7f01 rw-x 00000000 00:00 0\n",		   /* neither p nor s */
		"7f00 rw-p 00000000 00:00 0\n",			   /* no end */
		"7f00-7f01 rw-p 00000000 0000 0\n",		   /* no minor */
		"7f00-8000 rw-p 0 00:00 0\n7e00-7f00 r--p 0 00:00 0\n", /* out of order */
		"VmFlags: rd\n",				   /* flags before any vma */
		"7f00-7f01 rw-p 0 00:00 0\nAnonymous: lots kB\n",	   /* not a number */
	};
	struct proc_vmas v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (proc_parse_maps(bad[i], &v) != -EINVAL) {
			fprintf(stderr, "  accepted: %s", bad[i]);
			return 1;
		}
	}
	CHECK(proc_parse_maps("", &v) == 0 && v.nr == 0);
	return 0;
}

static int test_vmflags(void)
{
	CHECK(proc_parse_vmflags("") == 0);
	CHECK(proc_parse_vmflags(" rd wr ht\n") == PROC_VMF_HT);
	CHECK(proc_parse_vmflags("nh wf dc mg sr rr io pf") ==
	      (PROC_VMF_NH | PROC_VMF_WF | PROC_VMF_DC | PROC_VMF_MG | PROC_VMF_SR | PROC_VMF_RR |
	       PROC_VMF_IO | PROC_VMF_PF));
	CHECK(proc_parse_vmflags("hgx gd") == PROC_VMF_GD); /* not a two-letter word */
	CHECK(proc_parse_vmflags("rd wr mr mw me nr") == (PROC_VMF_MW | PROC_VMF_NR));
	return 0;
}

static int test_stat(void)
{
	/* comm with spaces and parentheses; fields 4..51 numbered by their value. */
	char text[2048] = "1234 (a) b (c)) S";
	struct proc_stat st;

	for (int f = 4; f <= 52; f++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), " %d",
			 f == 5 || f == 8 ? -1 : f);
	strcat(text, "\n");
	CHECK(proc_parse_stat(text, &st) == 0);
	CHECK(st.state == 'S' && st.ppid == 4 && st.session == 6 && st.num_threads == 20);
	CHECK(st.tty_nr == 7 && st.tpgid == -1); /* no foreground group: -1, not 1 */
	CHECK(st.start_code == 26 && st.end_code == 27 && st.start_stack == 28);
	CHECK(st.start_data == 45 && st.start_brk == 47 && st.arg_start == 48);
	CHECK(st.env_start == 50 && st.env_end == 51);
	CHECK(proc_parse_stat("1234 (cat) S 1 2 3\n", &st) == -EINVAL); /* truncated */
	CHECK(proc_parse_stat("1234 cat S 1\n", &st) == -EINVAL);
	return 0;
}

static int test_status_fdinfo(void)
{
	static const char status[] = "Name:\tcat\nUmask:\t0027\nState:\tS (sleeping)\n"
				     "Tgid:\t4321\nTracerPid:\t0\n";
	static const char fdinfo[] = "pos:\t4096\nflags:\t02100002\nmnt_id:\t23\nino:\t99\n";
	uint64_t v, pos;
	uint32_t flags;

	CHECK(proc_parse_status_num(status, "Umask", 8, &v) == 0 && v == 027);
	CHECK(proc_parse_status_num(status, "Tgid", 10, &v) == 0 && v == 4321);
	CHECK(proc_parse_status_num(status, "TracerPid", 10, &v) == 0 && v == 0);
	CHECK(proc_parse_status_num(status, "Tgi", 10, &v) == -ENOENT);
	CHECK(proc_parse_status_num(status, "Name", 10, &v) == -EINVAL);
	CHECK(proc_parse_fdinfo(fdinfo, &pos, &flags) == 0);
	CHECK(pos == 4096 && flags == 02100002);
	CHECK(proc_parse_fdinfo("pos:\t1\n", &pos, &flags) == -EINVAL);
	return 0;
}

static const char limits_text[] =
	"Limit                     Soft Limit           Hard Limit           Units     \n"
	"Max cpu time              unlimited            unlimited            seconds   \n"
	"Max file size             unlimited            unlimited            bytes     \n"
	"Max data size             unlimited            unlimited            bytes     \n"
	"Max stack size            8388608              unlimited            bytes     \n"
	"Max core file size        0                    unlimited            bytes     \n"
	"Max resident set          unlimited            unlimited            bytes     \n"
	"Max processes             96364                96364                processes \n"
	"Max open files            777                  20000                files     \n"
	"Max locked memory         8388608              8388608              bytes     \n"
	"Max address space         unlimited            unlimited            bytes     \n"
	"Max file locks            unlimited            unlimited            locks     \n"
	"Max pending signals       96364                96364                signals   \n"
	"Max msgqueue size         819200               819200               bytes     \n"
	"Max nice priority         0                    0                    \n"
	"Max realtime priority     0                    0                    \n"
	"Max realtime timeout      unlimited            unlimited            us        \n";

static int test_limits(void)
{
	struct proc_rlimit lim[PROC_NR_RLIMITS];
	char cut[sizeof(limits_text)];

	CHECK(proc_parse_limits(limits_text, lim) == 0);
	CHECK(lim[RLIMIT_CPU].cur == ~0ULL && lim[RLIMIT_CPU].max == ~0ULL);
	CHECK(lim[RLIMIT_STACK].cur == 8388608 && lim[RLIMIT_STACK].max == ~0ULL);
	CHECK(lim[RLIMIT_NOFILE].cur == 777 && lim[RLIMIT_NOFILE].max == 20000);
	CHECK(lim[RLIMIT_RTTIME].cur == ~0ULL && lim[RLIMIT_NICE].max == 0);
	/* A missing row is an error, not a zero limit. */
	memcpy(cut, limits_text, sizeof(cut));
	*strstr(cut, "Max realtime timeout") = '\0';
	CHECK(proc_parse_limits(cut, lim) == -EINVAL);
	return 0;
}

/* The parsers on this process's own files agree with what the kernel says. */
static int test_self(void)
{
	struct proc_rlimit lim[PROC_NR_RLIMITS];
	struct proc_stat st;
	struct proc_vmas v;
	struct rlimit rl;
	char *text;
	bool found_stack = false;

	CHECK(proc_read(getpid(), "smaps", &text, NULL) == 0);
	CHECK(proc_parse_maps(text, &v) == 0 && v.nr > 5);
	for (size_t i = 0; i < v.nr; i++) {
		uintptr_t here = (uintptr_t)&found_stack;

		if (v.v[i].start <= here && here < v.v[i].end)
			found_stack = !strcmp(v.v[i].path, "[stack]") &&
				      (v.v[i].vmflags & PROC_VMF_GD);
	}
	CHECK(found_stack);
	proc_vmas_free(&v);
	free(text);

	CHECK(proc_read(0, "self/stat", &text, NULL) == 0);
	CHECK(proc_parse_stat(text, &st) == 0);
	CHECK(st.state == 'R' && st.ppid == getppid() && st.num_threads == 1);
	CHECK(st.start_code < st.end_code && st.arg_start < st.arg_end);
	free(text);

	CHECK(proc_read(getpid(), "limits", &text, NULL) == 0);
	CHECK(proc_parse_limits(text, lim) == 0);
	free(text);
	for (int r = 0; r < PROC_NR_RLIMITS; r++) {
		CHECK(getrlimit((__rlimit_resource_t)r, &rl) == 0);
		CHECK(lim[r].cur == rl.rlim_cur && lim[r].max == rl.rlim_max);
	}
	return 0;
}

static int test_readlink(void)
{
	char buf[PATH_MAX], tiny[4];

	CHECK(proc_readlink(getpid(), "exe", buf, sizeof(buf)) == 0 && buf[0] == '/');
	CHECK(proc_readlink(getpid(), "exe", tiny, sizeof(tiny)) == -ENAMETOOLONG);
	CHECK(proc_readlink(getpid(), "no-such-file", buf, sizeof(buf)) == -ENOENT);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_smaps),
	UNIT(test_maps_refused),
	UNIT(test_vmflags),
	UNIT(test_stat),
	UNIT(test_status_fdinfo),
	UNIT(test_limits),
	UNIT(test_self),
	UNIT(test_readlink),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
