"""Restore of multi-threaded processes (issue 6 item 1, restore side).

Every thread comes back with its own tid (clone3 set_tid from the
restorer blob), its registers, signal mask, sigaltstack, rseq, pending
signals and credentials, and resumes where it stopped; all threads of the
process switch to their dumped state only once every thread exists.

Workloads: lzthreads (8 threads, each waiting its own way: spinning, futex
wait woken by the check, nanosleep, poll timing out, sigwaitinfo of a
signal the check sends with data, a thread-directed RT signal with data
pending and blocked, futex wait with a timeout; each with its own memory,
counter, sigaltstack, mask and live rseq, checking all of it itself),
pythreads.py (python3 threading: workers on shared state under a Lock,
waiters in Event.wait and Queue.get at dump time), and the lazy-pages
daemon under load (16 processes x 4 threads of lzlazyops restored lazily at
once, every thread faulting at the same time). A restore failing in a
per-thread step (LAZARUS_FAULT_BLOB) fails with one line and leaves no
process or thread behind.
"""
import os
import subprocess
import time

import pytest

import harness
from conftest import MODES

SIGRTMIN = 34  # glibc's, as the C workloads see it
TIMEOUT = 60


class LzThreads(harness.Workload):
    kind = "lzthreads"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def progress_file(self):
        return "result"

    def tids(self):
        return [int(t) for t in self.ready["tids"].split(",")]


class PyThreads(harness.Workload):
    kind = "pythreads"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def tids(self):
        return [int(t) for t in self.ready["tids"].split(",")]


class LzThreadState(harness.Workload):
    kind = "lzthreadstate"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def tids(self):
        return [int(t) for t in self.ready["tids"].split(",")]


def per_thread_state(pid):
    """Per tid what /proc says of its own kernel state."""
    out = {}
    for tid in task_tids(pid):
        base = f"/proc/{pid}/task/{tid}"
        st = thread_status(pid, tid)
        with open(f"{base}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"{base}/comm") as f:
            comm = f.read().strip()
        # stat fields after the comm: 19 nice is index 16, 41 policy is index 38
        out[tid] = {"comm": comm, "uid": st["Uid"], "gid": st["Gid"], "caps": st["CapEff"],
                    "nice": fields[16], "policy": fields[38],
                    "cpus": st["Cpus_allowed_list"]}
    return out


def spawn_lzthreads(env, name="threads"):
    d = env.base / name
    return env.spawn(LzThreads, [harness.WORKLOADS / "lzthreads", "--dir", d], d)


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def task_tids(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def thread_status(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def snapshot(pid):
    """Per thread: what /proc says of its mask, altstack-independent state, creds, comm."""
    out = {}
    for tid in task_tids(pid):
        st = thread_status(pid, tid)
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            comm = f.read().strip()
        out[tid] = (comm, st["Uid"], st["Gid"], st["CapEff"], st["CapPrm"], st["NoNewPrivs"])
    return out


def finished(p, pid):
    """The waiting restorer p says it let go of every thread of pid."""
    try:
        text = p.log.read_text()
    except FileNotFoundError:
        return False
    return any(f"process {pid}: restorer area" in line and line.endswith("; detached")
               for line in text.splitlines())


def restore_checked(env, img, mode, w, detach):
    """Restore (-d or waiting) and return the restored workload and the restorer (or None)."""
    if detach:
        return env.restore(img, mode, w), None
    p = env.restore_bg(img, mode, w)
    harness.wait_for(lambda: finished(p, w.pid), TIMEOUT,
                     f"restored {w.kind} {w.pid} with all its threads, untraced",
                     lambda: harness.tail(p.log))
    return w.restored(), p


@pytest.mark.parametrize("detach", [True, False], ids=["detached", "waiting"])
@pytest.mark.parametrize("mode", MODES)
def test_lzthreads(env, mode, detach):
    """8 threads, each blocked its own way at dump time, come back with the
    same tids and pass every self-check, twice (everything moves on)."""
    w = spawn_lzthreads(env)
    w.check_pass()
    tids = w.tids()
    assert task_tids(w.pid) == sorted(tids)
    before = snapshot(w.pid)
    img = env.path("img")
    env.dump(w, img)
    r, p = restore_checked(env, img, mode, w, detach)
    assert task_tids(r.pid) == sorted(tids), "the same tids, nothing more"
    for tid in tids:
        tracer = harness.task_status(r.pid)[tid].get("TracerPid")
        assert tracer == "0", f"thread {tid} traced by {tracer}: {cmdline(tracer)}"
    assert snapshot(r.pid) == before, "comm, ids, capabilities, no_new_privs per thread"
    r.ready = w.ready
    first = r.check_pass()
    second = r.check_pass()
    c1 = [int(c) for c in first["ctr"].split(",")]
    c2 = [int(c) for c in second["ctr"].split(",")]
    assert all(b > a for a, b in zip(c1, c2)), f"every thread made progress: {c1} -> {c2}"
    if p is None:
        r.stop()
    else:
        os.kill(r.pid, 15)
        assert p.wait(TIMEOUT) == 0, harness.tail(p.log)


@pytest.mark.parametrize("mode", MODES)
def test_lzthreads_restored_twice(env, mode):
    """A restored multi-threaded process dumps and restores again."""
    w = spawn_lzthreads(env)
    w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    r = env.restore(img, mode, w)
    r.ready = w.ready
    r.check_pass()
    img2 = env.path("img2")
    env.dump(r, img2)
    r2 = env.restore(img2, mode, w)
    r2.ready = w.ready
    assert task_tids(r2.pid) == sorted(w.tids())
    r2.check_pass()
    r2.stop()


@pytest.mark.parametrize("mode", MODES)
def test_per_thread_state(env, mode):
    """Threads whose ids, name, nice, policy, affinity and timer slack differ
    from each other's (set with raw syscalls, per thread) get each their own
    back, read from /proc and by each thread itself."""
    d = env.base / "ts"
    w = env.spawn(LzThreadState, [harness.WORKLOADS / "lzthreadstate", "--dir", d], d)
    w.check_pass()
    before = per_thread_state(w.pid)
    tids = w.tids()
    assert before[tids[1]]["uid"].split()[0] == "65534" and before[tids[2]]["policy"] == "3", \
        before  # the workload did set different state per thread
    assert len({(v["comm"], v["uid"], v["gid"], v["nice"], v["policy"], v["cpus"])
                for v in before.values()}) == 4, before
    img = env.path("img")
    env.dump(w, img)
    r = env.restore(img, mode, w)
    assert per_thread_state(r.pid) == before
    r.ready = w.ready
    r.check_pass()
    r.check_pass()
    r.stop()


@pytest.mark.parametrize("mode", MODES)
def test_python_threading(env, mode):
    """python3 threading: workers on a shared counter under a Lock, waiters
    in Event.wait and Queue.get at dump time; after restore the program's
    own check passes (total = sum of the workers' counts, every worker moved,
    every thread alive with its tid)."""
    d = env.base / "py"
    w = env.spawn(PyThreads, [harness.PYTHON, harness.ROOT / "test" / "workloads" /
                              "pythreads.py", "--dir", d], d)
    w.check_pass()
    tids = task_tids(w.pid)
    img = env.path("img")
    env.dump(w, img)
    r = env.restore(img, mode, w)
    assert task_tids(r.pid) == tids
    r.ready = w.ready
    r.check_pass()
    r.check_pass()
    r.stop()


@pytest.mark.parametrize("step", ["clone", "thread", "sched", "creds", "sigqueue", "barrier",
                                  "finish"])
@pytest.mark.parametrize("mode", MODES)
def test_thread_step_fails(env, mode, step, monkeypatch):
    """A restore failing in a thread step (in the last thread for a step
    every thread takes), or while the restorer is taken out of the traced
    threads (finish): one line, non-zero, and no process or thread left
    with the dumped pid or any of its tids."""
    w = spawn_lzthreads(env)
    tids = w.tids()
    img = env.path("img")
    env.dump(w, img)
    monkeypatch.setenv("LAZARUS_FAULT_BLOB", step)
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc != 0, r.describe()
    assert len(r.errors) == 1 and "(injected by LAZARUS_FAULT_BLOB" in r.errors[0], \
        r.describe()
    if step in ("thread", "sched", "creds", "sigqueue"):
        assert f"restorer: thread {tids[-1]}: " in r.errors[0], r.describe()
    for tid in tids:
        harness.wait_for(lambda: harness.proc_state(tid) in (None, "Z"), TIMEOUT,
                         f"tid {tid} to be gone", r.describe)
    # Killed: reaped by the -d helper, or (once released) reparented to us, the subreaper.
    harness.reap(w.pid, TIMEOUT)
    # The images are intact: the same restore without the fault works.
    monkeypatch.delenv("LAZARUS_FAULT_BLOB")
    rr = env.restore(img, mode, w)
    rr.ready = w.ready
    rr.check_pass()
    rr.stop()


def test_lazy_daemon_under_load(env):
    """16 multi-threaded processes (8 threads each) restored lazily at once,
    each from its own dump with its own daemon; every thread of every
    process then checks its own memory at the same time (all pages still
    outstanding but what resuming touched), and every check passes."""
    n = 16
    ws = [spawn_lzthreads(env, f"t{i}") for i in range(n)]
    imgs = []
    for i, w in enumerate(ws):
        w.check_pass()
        img = env.path(f"img{i}")
        env.dump(w, img)
        imgs.append(img)
    procs = [env.restore_bg(img, "lazy", w) for img, w in zip(imgs, ws)]
    rs = []
    for w, p in zip(ws, procs):
        harness.wait_for(lambda: finished(p, w.pid), TIMEOUT,
                         f"lzthreads {w.pid} restored", lambda: harness.tail(p.log))
        assert task_tids(w.pid) == sorted(w.tids())
        rs.append(w.restored())
    for r in rs:  # all at once: every thread of every process faults now
        (r.dir / "result").unlink(missing_ok=True)
        os.kill(r.pid, 10)
    for r in rs:
        harness.wait_for((r.dir / "result").exists, TIMEOUT, f"lzthreads {r.pid} to check",
                         r.diag)
    for r in rs:
        res = r.parse_result((r.dir / "result").read_text())
        assert res["verdict"] == "PASS" and int(res["pid"]) == r.pid, res["line"]
    for r, p in zip(rs, procs):
        os.kill(r.pid, 15)
        assert p.wait(TIMEOUT) == 0, harness.tail(p.log)
