"""Restore of process trees (issue 6): the same tree with the same pids.

lztree (three levels, a session and a process group of its own, memory in
every process, a zombie its parent never reaped, a process stopped by
SIGSTOP) is dumped whole and restored, eager and lazy, with and without
-d: every pid, parent, group and session is the dumped one (/proc), every
live process passes its own check (memory, counter, parent, group,
session; the root checks the whole shape, a that its zombie is still there
with exit status 7 and that it can wait for it), the stopped process is
stopped and runs on after SIGCONT. A shell in its own session comes back
still waiting for its two children; a restore failing in a grandchild kills
the whole tree, with one line naming that process.
"""
import os
import re
import signal

import pytest

import harness
from test_dump_tree import spawn_tree, check_members
from test_lazy import Daemon, SLOW_US

MODES = ["eager", "lazy"]


@pytest.fixture(autouse=True)
def no_plural(monkeypatch):
    """Dump takes trees by itself (LZ_RESTORE_TREES): no test switch."""
    monkeypatch.delenv("LAZARUS_TEST_DUMP_PLURAL", raising=False)


def stat(pid):
    """(state, ppid, pgid, sid) from /proc/PID/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    w = s[s.rindex(")") + 2:].split()
    return w[0], int(w[1]), int(w[2]), int(w[3])


def shape(pids, root):
    """Everything but the root's parent (whoever restored it)."""
    out = {}
    for name, pid in pids.items():
        st, ppid, pgid, sid = stat(pid)
        out[name] = (st if st in "TZ" else "run", None if pid == root else ppid, pgid, sid)
    return out


def dump_tree(env, w, img):
    pids = w.pids() if hasattr(w, "pids") else w.all
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    w.proc.wait(harness.EXIT_TIMEOUT)
    for pid in pids.values():
        harness.reap(pid)  # reparented to us (a subreaper)
        assert harness.proc_state(pid) is None
    return r


def restore_tree(env, img, mode, detach, pids):
    """Restore; return the Popen without -d (None with -d) once the tree runs on."""
    env.pids.update(pids.values())
    if detach:
        r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
        assert r.rc == 0 and not r.errors, r.describe()
        return None, r.log
    p = env.restore_bg(img, mode, harness.Workload(env, env.base, pids["pid"]))

    def up():
        if p.poll() is not None:
            raise harness.HarnessError(f"restore exited with {p.returncode}\n"
                                       f"{harness.tail(p.log)}")
        return p.log.exists() and "it runs on" in p.log.read_text()

    harness.wait_for(up, harness.LAZARUS_TIMEOUT, "the tree to be restored", env.diag)
    return p, p.log


@pytest.mark.parametrize("detach", [True, False], ids=["d", "wait"])
@pytest.mark.parametrize("mode", MODES)
def test_tree_restored(env, mode, detach):
    w = spawn_tree(env)
    check_members(w)
    pids = w.pids()
    before = shape(pids, w.pid)
    assert before["z"][0] == "Z" and before["b"][0] == "T"
    img = env.path("img")
    dump_tree(env, w, img)

    p, log = restore_tree(env, img, mode, detach, pids)
    assert shape(pids, w.pid) == before, harness.tail(log)
    if not detach:
        assert stat(w.pid)[1] == p.pid, "without -d lazarus is the root's parent"
    r = w.restored()
    r.ready = w.ready
    check_members(r)  # a: z is its zombie with status 7; root: the whole shape
    b = r.member("b")
    assert harness.proc_state(b.pid) == "T", "b is stopped again"
    os.kill(b.pid, signal.SIGCONT)
    b.check_pass()
    r.member("b1").check_pass()
    if not detach:
        os.kill(w.pid, signal.SIGTERM)  # lztree exits 0: so does lazarus, its parent
        assert p.wait(harness.EXIT_TIMEOUT) == 0, harness.tail(log)


class Shell(harness.Workload):
    kind = "sh"


SCRIPT = "sleep 1000 </dev/null >/dev/null 2>&1 & sleep 1000 </dev/null >/dev/null 2>&1 & " \
         "echo pid=$$ a=$! >ready.tmp; mv ready.tmp ready; wait; echo waited >done"


def sleeps_of(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return sorted(int(x) for x in f.read().split())


@pytest.mark.parametrize("mode", MODES)
def test_shell_with_children(env, mode):
    """sh in its own session, waiting for two children: after restore it
    still waits for them, and reaps them when they end."""
    d = env.base / "sh"
    w = env.spawn(Shell, ["/bin/sh", "-c", SCRIPT], d)

    def execed():
        """Both children run sleep: their redirections are done."""
        k = sleeps_of(w.pid)
        return len(k) == 2 and all(os.path.realpath(f"/proc/{p}/exe").endswith("/sleep")
                                   for p in k) and k

    kids = harness.wait_for(execed, harness.READY_TIMEOUT, "sh's two sleeps")
    pids = {"pid": w.pid, "k0": kids[0], "k1": kids[1]}
    w.pids = lambda: pids
    before = shape(pids, w.pid)
    img = env.path("img")
    dump_tree(env, w, img)

    restore_tree(env, img, mode, True, pids)
    assert shape(pids, w.pid) == before
    assert sleeps_of(w.pid) == kids
    assert harness.proc_state(w.pid) == "S"
    for k in kids:
        os.kill(k, signal.SIGTERM)
    st = harness.reap(w.pid)  # reparented to us (-d), it exits once both are reaped
    assert st is not None and os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
    assert (d / "done").read_text() == "waited\n"
    for k in kids:
        assert harness.proc_state(k) is None, "sh reaped its children"


@pytest.mark.parametrize("step", ["fill", "finish"])
@pytest.mark.parametrize("mode", MODES)
def test_grandchild_failure_kills_tree(env, monkeypatch, mode, step):
    """A restore failing in a1 (a grandchild): one line naming it, and
    not one process of the tree left."""
    w = spawn_tree(env)
    pids = w.pids()
    img = env.path("img")
    dump_tree(env, w, img)

    monkeypatch.setenv("LAZARUS_FAULT_BLOB", step)
    monkeypatch.setenv("LAZARUS_FAULT_PID", str(pids["a1"]))
    env.pids.update(pids.values())
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    assert r.rc != 0, r.describe()
    assert len(r.errors) == 1, r.describe()
    assert r.errors[0].startswith(f"lazarus: Error: restore: process {pids['a1']}: "), \
        r.describe()
    assert "LAZARUS_FAULT_BLOB" in r.errors[0], r.describe()
    for name, pid in pids.items():
        harness.wait_for(lambda: harness.proc_state(pid) in (None, "Z"), harness.EXIT_TIMEOUT,
                         f"{name} ({pid}) to die")
        if harness.proc_state(pid) == "Z":
            harness.reap(pid)  # an orphan of the killed tree, reparented to us
        assert harness.proc_state(pid) is None, f"{name} ({pid}) left behind"


FORKER = r"""
import hashlib, os, sys, time
d = sys.argv[1]
def publish(name, text):
    with open(os.path.join(d, name + ".tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(d, name + ".tmp"), os.path.join(d, name))
def take(name):
    try:
        os.unlink(os.path.join(d, name))
        return True
    except FileNotFoundError:
        return False
def verdict():
    return "PASS" if hashlib.sha256(mem).hexdigest() == digest else "FAIL"
mem = bytearray(os.urandom(1 << 20)) * 48
digest = hashlib.sha256(mem).hexdigest()
child = os.fork()
if child == 0:
    fd = os.open(os.path.join(d, "out-child"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1); os.dup2(fd, 2); os.close(fd)
    publish("child-ready", "pid=%d" % os.getpid())  # its stdout is its own now
    while True:
        if take("check-child"):
            publish("result-child", verdict() + " pid=%d" % os.getpid())
        time.sleep(0.005)
while not os.path.exists(os.path.join(d, "child-ready")):
    time.sleep(0.005)  # a dump before the child has its own stdout would be refused
publish("ready", "pid=%d child=%d" % (os.getpid(), child))
while True:
    if take("fork"):
        k = os.fork()
        if k == 0:
            publish("result-forked", verdict() + " pid=%d" % os.getpid())
            os._exit(0)
        _, st = os.waitpid(k, 0)
        publish("result", verdict() + " pid=%d forked=%d status=%d" % (os.getpid(), k, st))
    time.sleep(0.005)
"""


class Forker(harness.Workload):
    kind = "forker"


def answer(d, name):
    harness.wait_for(lambda: (d / name).exists(), harness.CHECK_TIMEOUT, name)
    return (d / name).read_text().split()


@pytest.mark.parametrize("mode", MODES)
def test_fork_after_restore(env, mode):
    """A tree of two python3 processes with 48 MiB each; right after a -d
    restore (lazy: while the daemon still has pages to bring in) the root
    forks: the new child sees the whole memory, and so do the others."""
    d = env.base / "forker"
    w = env.spawn(Forker, [harness.PYTHON, "-c", FORKER, d], d)
    pids = {"pid": w.pid, "child": int(w.ready["child"])}
    w.pids = lambda: pids
    img = env.path("img")
    dump_tree(env, w, img)

    daemon = None
    if mode == "lazy":
        # A slow background fill: pages are still outstanding when it forks.
        daemon = Daemon(env, img, delay_us=SLOW_US)
    restore_tree(env, img, mode, True, pids)
    (d / "fork").write_text("")
    forked = answer(d, "result-forked")
    if daemon:
        m = re.search(r"forked: serving its child \((\d+) pages outstanding\)",
                      daemon.log_text())
        assert m and int(m.group(1)) > 0, daemon.describe()
    assert forked[0] == "PASS", forked
    res = answer(d, "result")
    assert res[0] == "PASS" and res[3] == "status=0", res
    assert int(forked[1].split("=")[1]) not in pids.values()
    (d / "check-child").write_text("")
    assert answer(d, "result-child") == ["PASS", f"pid={pids['child']}"]


GROUPS = r"""
import os, sys, time
d, gone = sys.argv[1], sys.argv[2] == "gone"
def publish(name, text):
    with open(os.path.join(d, name + ".tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(d, name + ".tmp"), os.path.join(d, name))
def own_out(name):
    fd = os.open(os.path.join(d, "out-" + name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1); os.dup2(fd, 2); os.close(fd)
leader = os.fork()
if leader == 0:
    own_out("leader")
    os.setpgid(0, 0)
    if gone:
        os._exit(0)
    while True:
        time.sleep(0.01)
while os.getpgid(leader) != leader:
    time.sleep(0.001)
member = os.fork()
if member == 0:
    own_out("member")
    os.setpgid(0, leader)
    publish("member-ready", "")
    while True:
        time.sleep(0.01)
while not os.path.exists(os.path.join(d, "member-ready")):
    time.sleep(0.001)
if gone:
    os.waitpid(leader, 0)
publish("ready", "pid=%d leader=%d member=%d" % (os.getpid(), leader, member))
while True:
    time.sleep(0.01)
"""


class Groups(harness.Workload):
    kind = "groups"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("leader", ["alive", "gone"])
def test_member_of_a_sibling_group(env, mode, leader):
    """A process in its sibling's process group: restored in it (it joins
    the group once its leader made it); with the leader gone (no process
    of the dump has that pid) too: a helper process of the session's
    leader holds the group's pid until the member joined, then exits; the
    group lives on in its member, the helper is no process of the tree."""
    d = env.base / "groups"
    w = env.spawn(Groups, [harness.PYTHON, "-c", GROUPS, d, leader], d)
    pids = {"pid": w.pid, "member": int(w.ready["member"])}
    if leader == "alive":
        pids["leader"] = int(w.ready["leader"])
    w.pids = lambda: pids
    before = shape(pids, w.pid)
    assert before["member"][2] == int(w.ready["leader"])
    img = env.path("img")
    dump_tree(env, w, img)
    restore_tree(env, img, mode, True, pids)
    assert shape(pids, w.pid) == before
    gone = int(w.ready["leader"])
    if leader == "gone":
        assert harness.proc_state(gone) is None, "the helper is still there"
        assert os.getpgid(pids["member"]) == gone
    with open(f"/proc/{w.pid}/task/{w.pid}/children") as f:
        assert sorted(int(x) for x in f.read().split()) == sorted(
            p for n, p in pids.items() if n != "pid"), "the root has other children"
