"""Trees of multi-threaded processes (issue 6): threads and trees together.

pytreethreads.py (a python3 root with threads that forks a and b, a forks
a1; every process has its own memory, one slice per thread, and threads
that count and hash their own slice when asked) is dumped whole and
restored, eager and lazy, with and without -d: every pid and every tid
(/proc/PID/task) is the dumped one, every thread of every process moves on
and every process passes its own check. Also: a shell whose child is a
multi-threaded python3; a fork in a multi-threaded process right after a
lazy restore while pages are outstanding and its threads fault; and the
lazy-pages daemons under load (4 trees of 4 processes x 4 threads restored
lazily at once, every thread hashing its memory at the same time).
"""
import os
import re
import signal
from pathlib import Path

import pytest

import harness
from test_lazy import Daemon, SLOW_US
from test_tree import shape, dump_tree, restore_tree

MODES = ["eager", "lazy"]
PYTREE = harness.ROOT / "test" / "workloads" / "pytreethreads.py"
NAMES = ["root", "a", "a1", "b"]


@pytest.fixture(autouse=True)
def no_plural(monkeypatch):
    monkeypatch.delenv("LAZARUS_TEST_DUMP_PLURAL", raising=False)


class PyTree(harness.Workload):
    kind = "pytreethreads"

    def names(self):
        return [n for n in NAMES if n == "root" or n in self.ready]

    def pids(self):
        return {n: int(self.ready["pid" if n == "root" else n]) for n in self.names()}

    def tids(self, name):
        text = (self.dir / f"ready-{name}").read_text()
        return sorted(int(t) for t in text.split()[1].split("=")[1].split(","))


def spawn(env, name="tree", shape_="tree", mib=16, threads=4):
    d = env.base / name
    w = env.spawn(PyTree, [harness.PYTHON, PYTREE, "--dir", d, "--shape", shape_,
                           "--mib", mib, "--threads", threads], d)
    return w


def task_tids(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def read_answer(d, name):
    return harness.parse_kv((d / name).read_text().strip())


def ask_all(w, cmd="check", result="result"):
    """Ask every process at once; return {name: parsed answer}."""
    d = w.dir
    for n in w.names():
        (d / f"{result}-{n}").unlink(missing_ok=True)
    for n in w.names():
        (d / f"{cmd}-{n}.tmp").write_text("")
        os.rename(d / f"{cmd}-{n}.tmp", d / f"{cmd}-{n}")
    out = {}
    for n in w.names():
        harness.wait_for((d / f"{result}-{n}").exists, harness.CHECK_TIMEOUT,
                         f"{w.kind} {n} to answer {cmd}", w.diag)
        out[n] = read_answer(d, f"{result}-{n}")
    return out


def check_all(w):
    pids = w.pids()
    for n, r in ask_all(w).items():
        assert r["verdict"] == "PASS", f"{n}: {r['line']}\n{w.diag()}"
        assert int(r["pid"]) == pids[n]


def check_tids(w):
    for n, pid in w.pids().items():
        assert task_tids(pid) == w.tids(n), f"{n} ({pid}): tids differ"


@pytest.mark.parametrize("detach", [True, False], ids=["d", "wait"])
@pytest.mark.parametrize("mode", MODES)
def test_threaded_tree(env, mode, detach):
    w = spawn(env)
    check_all(w)
    check_tids(w)
    pids = w.pids()
    before = shape(pids, w.pid)
    img = env.path("img")
    dump_tree(env, w, img)

    p, log = restore_tree(env, img, mode, detach, dict(pids, pid=w.pid))
    assert shape(pids, w.pid) == before, harness.tail(log)
    r = w.restored()
    r.ready = w.ready
    check_tids(r)
    check_all(r)  # every worker moved since the check before the dump
    check_all(r)
    if not detach:
        os.kill(w.pid, signal.SIGTERM)
        assert p.wait(harness.EXIT_TIMEOUT) == 0, harness.tail(log)


class Shell(harness.Workload):
    kind = "sh"


@pytest.mark.parametrize("mode", MODES)
def test_shell_with_threaded_child(env, mode):
    """sh waiting for a multi-threaded python3 and a sleep: restored, the
    python3 has its tids and passes its checks, and sh reaps both."""
    d = env.base / "sh"
    py = d / "py"
    py.mkdir(parents=True)
    script = (f"{harness.PYTHON} {PYTREE} --dir {py} --shape single --mib 8 "
              f"</dev/null >{py}/out 2>&1 & "
              "sleep 1000 </dev/null >/dev/null 2>&1 & "
              f"while [ ! -e {py}/ready ]; do sleep 0.01; done; "
              "echo pid=$$ >ready.tmp; mv ready.tmp ready; wait; echo waited >done")
    sh = env.spawn(Shell, ["/bin/sh", "-c", script], d)
    w = PyTree(env, py, None)
    w.ready = dict(x.partition("=")[::2] for x in (py / "ready").read_text().split())
    w.pid = int(w.ready["pid"])
    check_all(w)
    with open(f"/proc/{sh.pid}/task/{sh.pid}/children") as f:
        kids = sorted(int(x) for x in f.read().split())
    assert w.pid in kids and len(kids) == 2
    sleep = [k for k in kids if k != w.pid][0]
    pids = {"pid": sh.pid, "py": w.pid, "sleep": sleep}
    sh.pids = lambda: pids
    before = shape(pids, sh.pid)
    img = env.path("img")
    dump_tree(env, sh, img)

    restore_tree(env, img, mode, True, pids)
    assert shape(pids, sh.pid) == before
    check_tids(w)
    check_all(w)
    os.kill(w.pid, signal.SIGTERM)
    os.kill(sleep, signal.SIGTERM)
    st = harness.reap(sh.pid)
    assert st is not None and os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
    assert (d / "done").read_text() == "waited\n"


def test_fork_while_threads_fault(env):
    """Right after a lazy -d restore with a slow background fill, every
    process of the tree forks while its threads hash their memory: each
    new child sees all of the memory, and every check passes."""
    w = spawn(env, mib=32)
    check_all(w)
    pids = w.pids()
    img = env.path("img")
    dump_tree(env, w, img)

    daemon = Daemon(env, img, delay_us=SLOW_US)
    restore_tree(env, img, "lazy", True, dict(pids, pid=w.pid))
    r = w.restored()
    r.ready = w.ready
    for n in r.names():  # the workers start hashing (faulting on) their slices
        (r.dir / f"result-{n}").unlink(missing_ok=True)
        (r.dir / f"check-{n}").write_text("")
    forks = ask_all(r, "fork", "result-fork")  # while they do
    for n, pid in pids.items():
        harness.wait_for((r.dir / f"result-{n}").exists, harness.CHECK_TIMEOUT, n, r.diag)
        a = read_answer(r.dir, f"result-{n}")
        assert a["verdict"] == "PASS" and int(a["pid"]) == pid, a["line"]
    for n in r.names():
        f = read_answer(r.dir, f"result-forked-{n}")
        assert f["verdict"] == "PASS", f["line"]
        assert forks[n]["status"] == "0" and int(forks[n]["forked"]) not in pids.values()
    m = re.findall(r"forked: serving its child \((\d+) pages outstanding\)", daemon.log_text())
    assert m and max(int(x) for x in m) > 0, daemon.describe()
    check_tids(r)
    check_all(r)


def test_lazy_trees_under_load(env):
    """4 trees of 4 processes x 4 threads restored lazily at once (without
    -d, each restore with its own daemon); then every thread of the 16
    processes hashes its own memory at the same time; all pass."""
    ws = [spawn(env, f"t{i}", mib=16) for i in range(4)]
    imgs = []
    for i, w in enumerate(ws):
        check_all(w)
        img = env.path(f"img{i}")
        dump_tree(env, w, img)
        imgs.append(img)
    procs = [env.restore_bg(img, "lazy", w) for img, w in zip(imgs, ws)]
    for w, p in zip(ws, procs):
        env.pids.update(w.pids().values())

        def up():
            if p.poll() is not None:
                raise harness.HarnessError(f"restore exited with {p.returncode}\n"
                                           f"{harness.tail(p.log)}")
            return p.log.exists() and "it runs on" in p.log.read_text()

        harness.wait_for(up, harness.LAZARUS_TIMEOUT, "a tree to be restored", env.diag)
    rs = []
    for w in ws:
        r = w.restored()
        r.ready = w.ready
        check_tids(r)
        rs.append(r)
    for r in rs:  # all at once
        for n in r.names():
            (r.dir / f"result-{n}").unlink(missing_ok=True)
        for n in r.names():
            (r.dir / f"check-{n}").write_text("")
    for r in rs:
        for n, pid in r.pids().items():
            harness.wait_for((r.dir / f"result-{n}").exists, harness.CHECK_TIMEOUT,
                             f"{n} of {r.dir.name} to check", r.diag)
            a = read_answer(r.dir, f"result-{n}")
            assert a["verdict"] == "PASS" and int(a["pid"]) == pid, a["line"]
    for r, p in zip(rs, procs):
        os.kill(r.pid, signal.SIGTERM)
        assert p.wait(harness.EXIT_TIMEOUT) == 0, harness.tail(p.log)
