"""Event fds (issue 7, item 6): eventfd, epoll, timerfd, signalfd, inotify.

lzevents holds an eventfd with a counter and one in semaphore mode, an epoll
set with several fds and their event data and a nested epoll, a timerfd
with an expiration not yet read, one with time left and one ticking, a
signalfd, and an inotify instance whose watches have a gap in their
numbers. Dumped and restored, eager and lazy, it checks them itself (see
lzevents.c): epoll_wait returns the dumped data, EPOLL_CTL_MOD works on the
restored items, the counters read back, the unread expiration is there, a
signal sent after restore comes through the signalfd, a file created after
restore is reported by inotify with the dumped wd. A fanotify fd is
refused by name, the process left running with its state intact.
"""
import pytest

import harness


class LzEvents(harness.Workload):
    kind = "lzevents"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def progress_file(self):
        return "result"


def spawn(env, *extra, name="events"):
    d = env.base / name
    return env.spawn(LzEvents, [harness.WORKLOADS / "lzevents", "--dir", d, *extra], d)


def test_events_live(env):
    """The workload's own check, without lazarus: it passes on the live state."""
    w = spawn(env)
    w.check_pass()
    w.stop()


def test_events_restored(env, mode):
    w = spawn(env)
    img = env.path("img")
    env.dump(w, img)
    kinds = sorted(f["kind"] for f in harness.file_entries(img))
    for k in ("FD_EVENTFD", "FD_EPOLL", "FD_TIMERFD", "FD_SIGNALFD", "FD_INOTIFY"):
        assert k in kinds, f"no {k} in files.img: {kinds}"
    r = env.restore(img, mode, w)
    r.check_pass()
    r.stop()


def test_fanotify_refused(env):
    w = spawn(env, "--fanotify")
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1, f"dump of a process with a fanotify fd did not fail\n{r.describe()}"
    assert len(r.errors) == 1, r.describe()
    assert f"process {w.pid} fd " in r.errors[0] and "fanotify" in r.errors[0], r.describe()
    harness.assert_not_stopped(w.pid)
    w.check_pass()  # nothing it holds was disturbed
    w.stop()
