/*
 * test_fd_fdinfo.c - the fdinfo parsers of event fds (fd-fdinfo.c) on the
 * text kernel 6.18 prints, on damaged text, and on this process's own fds.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "unit.h"
#include "fd-fdinfo.h"

static const char eventfd_text[] = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n"
				   "eventfd-count:                5\neventfd-id: 1\n"
				   "eventfd-semaphore: 1\n";
static const char timerfd_text[] = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\nclockid: 1\n"
				   "ticks: 3\nsettime flags: 01\nit_value: (2, 5000)\n"
				   "it_interval: (0, 10000000)\n";
static const char epoll_text[] =
	"pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\n"
	"tfd:        5 events: 80000019 data:                5  pos:0 ino:38af sdev:f\n"
	"tfd:        3 events:       19 data: ffffffffffffffff  pos:-1 ino:40e sdev:10\n";
static const char inotify_text[] =
	"pos:\t0\nflags:\t00\nmnt_id:\t17\nino:\t1038\n"
	"inotify wd:1 ino:3c51a sdev:fe00000 mask:100 ignored_mask:0 fhandle-bytes:8 "
	"fhandle-type:1 f_handle:1ac5030000000000\n"
	"inotify wd:a ino:2 sdev:fe00001 mask:40000fff ignored_mask:0 fhandle-bytes:c "
	"fhandle-type:81 f_handle:0102030405060708090a0b0c\n";

static int test_eventfd(void)
{
	struct fdi_eventfd e;

	CHECK(fdi_parse_eventfd(eventfd_text, &e) == 0);
	CHECK(e.count == 5 && e.semaphore);
	CHECK(fdi_parse_eventfd("eventfd-count: ffffffffffffffff\neventfd-semaphore: 0\n", &e) ==
	      0);
	CHECK(e.count == UINT64_MAX && !e.semaphore);
	/* Kernels before eventfd-semaphore: the mode is unknown, not "off". */
	CHECK(fdi_parse_eventfd("eventfd-count: 1\n", &e) == -ENOENT);
	CHECK(fdi_parse_eventfd("eventfd-count: zz\neventfd-semaphore: 0\n", &e) == -EINVAL);
	CHECK(fdi_parse_eventfd("eventfd-count: 1\neventfd-semaphore: 2\n", &e) == -EINVAL);
	return 0;
}

static int test_timerfd(void)
{
	struct fdi_timerfd t;

	CHECK(fdi_parse_timerfd(timerfd_text, &t) == 0);
	CHECK(t.clockid == 1 && t.ticks == 3 && t.settime_flags == 1);
	CHECK(t.value_sec == 2 && t.value_nsec == 5000);
	CHECK(t.interval_sec == 0 && t.interval_nsec == 10000000);
	CHECK(fdi_parse_timerfd("clockid: 1\nticks: 0\nsettime flags: 0\nit_value: (1, 2)\n", &t) ==
	      -ENOENT);
	CHECK(fdi_parse_timerfd("clockid: 1\nticks: 0\nsettime flags: 0\nit_value: (1 2)\n"
				"it_interval: (0, 0)\n", &t) == -EINVAL);
	CHECK(fdi_parse_timerfd("clockid: 1\nticks: 0\nsettime flags: 0\nit_value: (1, 1000000000)\n"
				"it_interval: (0, 0)\n", &t) == -EINVAL);
	return 0;
}

static int test_signalfd(void)
{
	uint64_t m;

	CHECK(fdi_parse_signalfd("pos:\t0\nsigmask:\t0000000000004200\n", &m) == 0);
	CHECK(m == 0x4200);
	CHECK(fdi_parse_signalfd("pos:\t0\n", &m) == -ENOENT);
	return 0;
}

static int test_epoll(void)
{
	struct fdi_epoll_item *it;
	size_t n;

	CHECK(fdi_parse_epoll(epoll_text, &it, &n) == 0);
	CHECK(n == 2);
	CHECK(it[0].tfd == 5 && it[0].events == 0x80000019 && it[0].data == 5);
	CHECK(it[0].ino == 0x38af && it[0].sdev == 0xf);
	CHECK(it[1].tfd == 3 && it[1].data == UINT64_MAX && it[1].ino == 0x40e);
	free(it);
	CHECK(fdi_parse_epoll("pos:\t0\nflags:\t02\n", &it, &n) == 0 && n == 0 && !it);
	CHECK(fdi_parse_epoll("tfd: 5 events: 19 data: 5 pos:0 ino:zz sdev:f\n", &it, &n) ==
	      -EINVAL);
	CHECK(n == 0 && !it);
	CHECK(fdi_parse_epoll("tfd: 5 events: 19\n", &it, &n) == -EINVAL);
	return 0;
}

static int test_inotify(void)
{
	struct fdi_inotify_wd *w;
	size_t n;

	CHECK(fdi_parse_inotify(inotify_text, &w, &n) == 0);
	CHECK(n == 2);
	CHECK(w[0].wd == 1 && w[0].ino == 0x3c51a && w[0].sdev == 0xfe00000 && w[0].mask == 0x100);
	CHECK(w[0].handle_bytes == 8 && w[0].handle_type == 1);
	CHECK(w[0].handle[0] == 0x1a && w[0].handle[1] == 0xc5 && w[0].handle[7] == 0);
	CHECK(w[1].wd == 10 && w[1].mask == 0x40000fff && w[1].handle_bytes == 12);
	CHECK(w[1].handle_type == 0x81 && w[1].handle[11] == 0x0c);
	free(w);
	/* cut in the middle of the handle */
	CHECK(fdi_parse_inotify("inotify wd:1 ino:2 sdev:3 mask:100 ignored_mask:0 "
				"fhandle-bytes:8 fhandle-type:1 f_handle:1ac503\n", &w, &n) ==
	      -EINVAL);
	CHECK(fdi_parse_inotify("inotify wd:1 ino:2 sdev:3 mask:100 ignored_mask:0 "
				"fhandle-bytes:81 fhandle-type:1 f_handle:00\n", &w, &n) == -EINVAL);
	/* a filesystem without file handles */
	CHECK(fdi_parse_inotify("inotify wd:1 ino:2 sdev:3 mask:100 ignored_mask:0 \n", &w, &n) ==
	      -ENOENT);
	return 0;
}

/* Our own eventfd and epoll, through the real /proc text. */
static int read_own(int fd, char *buf, size_t size)
{
	char path[64];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = 0;
	return 0;
}

static int test_own(void)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 0x1234567890abcdefULL };
	int efd = eventfd(77, EFD_SEMAPHORE), ep = epoll_create1(0);
	struct fdi_epoll_item *it;
	struct fdi_eventfd e;
	struct stat st;
	char buf[4096];
	size_t n;

	CHECK(efd >= 0 && ep >= 0);
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0);
	CHECK(read_own(efd, buf, sizeof(buf)) == 0);
	CHECK(fdi_parse_eventfd(buf, &e) == 0 && e.count == 77 && e.semaphore);
	CHECK(read_own(ep, buf, sizeof(buf)) == 0);
	CHECK(fdi_parse_epoll(buf, &it, &n) == 0 && n == 1);
	CHECK(fstat(efd, &st) == 0);
	CHECK(it[0].tfd == (uint32_t)efd && it[0].data == ev.data.u64);
	CHECK((it[0].events & (EPOLLIN | EPOLLET)) == (EPOLLIN | EPOLLET));
	CHECK(it[0].ino == st.st_ino && fdi_sdev_to_dev(it[0].sdev) == st.st_dev);
	free(it);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_eventfd), UNIT(test_timerfd), UNIT(test_signalfd), UNIT(test_epoll),
	UNIT(test_inotify), UNIT(test_own), { 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
