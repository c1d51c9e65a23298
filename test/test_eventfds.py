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
import os

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


EPOLL_ORPHAN = r'''
import os, select, time
ep = select.epoll()
r, w = os.pipe()
ep.register(r, select.EPOLLIN)
child = os.fork()
if child == 0:  # holds the pipe's read end, not the epoll set
    ep.close()
    while True:
        time.sleep(1)
os.close(r)  # the item lives on: its file is still open, in the child
open("ready.tmp", "w").write("pid=%d child=%d r=%d\n" % (os.getpid(), child, r))
os.rename("ready.tmp", "ready")
while True:
    time.sleep(1)
'''


EPOLL_SHARED = r'''
import os, select, time
ep = select.epoll()
r, w = os.pipe()
ep.register(r, select.EPOLLIN)
child = os.fork()
if child == 0:  # shares the epoll set; its fd r is another file now
    os.dup2(w, r)
    while True:
        time.sleep(1)
open("ready.tmp", "w").write("pid=%d child=%d r=%d ep=%d\n" % (os.getpid(), child, r, ep.fileno()))
os.rename("ready.tmp", "ready")
while True:
    time.sleep(1)
'''


def test_epoll_shared_other_file_refused(env):
    """An epoll set shared through fork, whose item's fd number is another
    file in the child: the child's copy would watch the wrong file, so the
    dump is refused naming the child and its fds; both run on."""
    d = env.path("shared")
    w = env.spawn(harness.Workload, [harness.PYTHON, "-c", EPOLL_SHARED], d)
    child = int(w.ready["child"])
    env.pids.add(child)
    r = env.lazarus("dump", "-t", w.pid, "-D", env.path("img"), log=env.log_path("dump"))
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert f"process {child} fd {w.ready['ep']}: epoll watches a file as fd {w.ready['r']}" in \
        r.errors[0], r.describe()
    harness.assert_not_stopped(w.pid)
    harness.assert_not_stopped(child, "child")


def test_epoll_item_held_elsewhere_refused(env):
    """An epoll item whose fd the process closed, its file kept open only by
    another process of the tree: it could not be added again by number, so
    the dump is refused naming the fds, and both processes run on."""
    d = env.path("orphan")
    w = env.spawn(harness.Workload, [harness.PYTHON, "-c", EPOLL_ORPHAN], d)
    child = int(w.ready["child"])
    env.pids.add(child)
    r = env.lazarus("dump", "-t", w.pid, "-D", env.path("img"), log=env.log_path("dump"))
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert f"process {w.pid} fd " in r.errors[0], r.describe()
    assert f"epoll watches a file as fd {w.ready['r']}" in r.errors[0], r.describe()
    harness.assert_not_stopped(w.pid)
    harness.assert_not_stopped(child, "child")


def test_inotify_watched_dir_gone(env):
    """A watched directory removed between dump and restore: refused with
    one line naming the watch, before anything runs."""
    w = spawn(env)
    img = env.path("img")
    env.dump(w, img)
    os.rmdir(w.dir / "w3")
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "inotify watch 3 on inode" in r.errors[0] and "its file is gone" in r.errors[0], \
        r.describe()
    assert harness.proc_state(w.pid) is None


PYSELECT = r'''
import os, selectors, threading, time
r, w = os.pipe()
efd = os.eventfd(0, os.EFD_NONBLOCK)
sel = selectors.DefaultSelector()  # epoll
sel.register(r, selectors.EVENT_READ, "records")
sel.register(efd, selectors.EVENT_READ, "ticks")


def writer():
    i = 0
    while True:
        os.write(w, b"%08d\n" % i)
        os.eventfd_write(efd, 1)
        i += 1
        time.sleep(0.002)


def publish(name, text):
    open(name + ".tmp", "w").write(text)
    os.rename(name + ".tmp", name)


threading.Thread(target=writer, daemon=True).start()
publish("ready", "pid=%d\n" % os.getpid())
expect, buf, ticks, last = 0, b"", 0, 0
while True:
    for key, _ in sel.select(timeout=1):
        if key.data == "records":
            buf += os.read(r, 65536)
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if int(line) != expect:
                    publish("fail", "record %s after %d\n" % (line, expect - 1))
                    os._exit(1)
                expect += 1
        else:
            try:
                ticks += os.eventfd_read(efd)
            except BlockingIOError:
                pass
    if expect - last >= 20:
        publish("count", "%d %d\n" % (expect, ticks))
        last = expect
'''


def test_python_selector(env, mode):
    """python3 with two threads: one writes numbered records into a pipe and
    ticks an eventfd, the main thread reads them through an epoll selector
    and checks that every record follows the last. Restored with records
    queued, it goes on without a gap or a repeat, its eventfd still ticking."""
    d = env.path("pysel")
    w = env.spawn(harness.Workload, [harness.PYTHON, "-c", PYSELECT], d)

    def count():
        try:
            return tuple(int(x) for x in (d / "count").read_text().split())
        except (FileNotFoundError, ValueError):
            return (0, 0)

    harness.wait_for(lambda: count()[0] >= 200, harness.READY_TIMEOUT, "records", w.diag)
    img = env.path("img")
    env.dump(w, img)
    at_dump = count()[0]
    env.restore(img, mode, w)
    harness.wait_for(lambda: count()[0] >= at_dump + 500 or (d / "fail").exists(),
                     harness.CHECK_TIMEOUT, "records after restore", w.diag)
    assert not (d / "fail").exists(), (d / "fail").read_text()
    n, ticks = count()
    assert n - 100 <= ticks <= n + 100, f"{ticks} eventfd ticks for {n} records"
    assert harness.alive(w.pid)
