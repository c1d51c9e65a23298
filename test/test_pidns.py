"""restore --pidns (issue 6): a tree restored into a fresh pid namespace.

lzwork is dumped with -R and restored with --pidns while the original
keeps running, twice side by side, eager and lazy: every copy runs under
an init of Lazarus's own (pid 1 inside), has the dumped pid inside (the
last NSpid of /proc/OUTER/status) and passes its own check, addressed by
its pid here. Without -d, lazarus waits for the init, which exits with the
root's status. lztree restored with --pidns: its processes have their
dumped pids inside; a process whose parent is killed is the init's, which
reaps it. A restore failing after the namespace exists leaves no process.
"""
import os
import shutil
import signal
import subprocess

import harness
from test_dump_tree import spawn_tree


def nspid(pid):
    """The NSpid line of /proc/PID/status as a list of ints, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def copies_of(inner):
    """Outer pids of the processes whose pid in a child namespace is `inner`."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        ns = nspid(int(e))
        if ns and len(ns) == 2 and ns[1] == inner:
            out.append(int(e))
    return sorted(out)


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def check_copy(w, outer):
    """The workload's self-check, sent to the copy at its pid here."""
    result = w.dir / "result"
    try:
        result.unlink()
    except FileNotFoundError:
        pass
    os.kill(outer, signal.SIGUSR1)

    def answered():
        if result.exists():
            return True
        if not harness.alive(outer):
            raise harness.HarnessError(f"copy {outer} died before answering\n{w.diag()}")
        return False

    harness.wait_for(answered, harness.CHECK_TIMEOUT, f"copy {outer} to check itself", w.diag)
    r = w.parse_result(result.read_text())
    assert int(r["pid"]) == w.pid, f"result by pid {r['pid']} inside, want {w.pid}"
    assert r["verdict"] == "PASS", f"copy {outer} self-check failed: {r.get('line', r)}"
    return r


def fork_dir(w, img, n):
    """Each copy its own files: the running processes keep theirs (open),
    renamed away; the names get fresh copies as the dump left them, for the
    next restore. The cwd (DIR, checked by lzwork) stays the same."""
    for name in ("log", "out"):
        f = w.dir / name
        os.rename(f, w.dir / f"{name}.{n}")
        shutil.copyfile(w.dir / f"{name}.{n}", f)
    harness.rewind_files(img, w.dir)


def restore_pidns(env, img, mode, detach=True, work=None):
    args = env.restore_args(img, mode, detach) + ["--pidns"]
    if work:
        args += ["-W", work]
    return env.lazarus(*args, log=env.log_path("restore"))


def assert_in_ns(outer, inner):
    ns = nspid(outer)
    assert ns == [outer, inner], f"NSpid of {outer}: {ns}, want [{outer}, {inner}]"
    init = harness.proc_ppid(outer)
    assert comm(init) == "lazarus-init", f"parent of {outer} is {init} ({comm(init)})"
    assert nspid(init) == [init, 1], f"NSpid of the init {init}: {nspid(init)}"


def test_pidns_side_by_side(env, mode):
    w = env.lzwork()
    w.check_pass()
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    seen = []
    for i in range(2):
        fork_dir(w, img, i)
        r = restore_pidns(env, img, mode, work=env.path(f"work{i}"))
        assert r.rc == 0 and not r.errors, r.describe()
        new = [p for p in copies_of(w.pid) if p not in seen]
        assert len(new) == 1, f"copies of {w.pid}: {copies_of(w.pid)}, seen {seen}"
        env.pids.add(new[0])
        seen += new
        assert_in_ns(new[0], w.pid)
    assert harness.alive(w.pid) and nspid(w.pid) == [w.pid]
    w.check_pass()  # the original runs on, unharmed
    for outer in seen:
        check_copy(w, outer)
        check_copy(w, outer)  # and once more: it runs on
    w.check_pass()


def test_pidns_wait_passes_status(env, mode):
    """Without -d, lazarus waits for the init: the root's exit status is its."""
    w = env.lzwork()
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    fork_dir(w, img, 0)
    log = env.log_path("restore")
    argv = [str(harness.LAZARUS)] + [str(a) for a in env.restore_args(img, mode, False)] + \
        ["--pidns", "-o", str(log), "-v4"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, close_fds=True)
    env.procs.append(p)

    def restored():
        assert p.poll() is None, p.stderr.read()
        return log.exists() and "it runs on" in log.read_text()

    harness.wait_for(restored, harness.CHECK_TIMEOUT, "the copy to be restored")
    (outer,) = copies_of(w.pid)
    env.pids.add(outer)
    check_copy(w, outer)
    os.kill(outer, signal.SIGKILL)
    assert p.wait(harness.EXIT_TIMEOUT) == 128 + signal.SIGKILL, p.stderr.read()
    assert copies_of(w.pid) == []
    w.check_pass()


def test_pidns_tree_orphan_reaped(env, mode):
    w = spawn_tree(env)
    pids = w.pids()
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-R", log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    r = restore_pidns(env, img, mode)
    assert r.rc == 0 and not r.errors, r.describe()
    outer = {}
    for name, pid in pids.items():
        (o,) = copies_of(pid)
        outer[name] = o
        env.pids.add(o)
        assert nspid(o) == [o, pid]
    (root,) = copies_of(w.pid)
    assert_in_ns(root, w.pid)
    init = harness.proc_ppid(root)
    # a1's parent a goes: a1 becomes the init's; killed, the init reaps it.
    a, a1 = outer["a"], outer["a1"]
    assert harness.proc_ppid(a1) == a
    os.kill(a, signal.SIGKILL)
    harness.wait_for(lambda: harness.proc_ppid(a1) == init, harness.CHECK_TIMEOUT,
                     "a1 to be the init's")
    os.kill(a1, signal.SIGKILL)
    harness.wait_for(lambda: harness.proc_state(a1) is None, harness.CHECK_TIMEOUT,
                     "the init to reap a1")
    assert harness.alive(init)


def test_pidns_failure_leaves_nothing(env, mode, monkeypatch):
    w = env.lzwork()
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    fork_dir(w, img, 0)
    monkeypatch.setenv("LAZARUS_FAULT_BLOB", "finish")
    r = restore_pidns(env, img, mode)
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "restorer area" in r.errors[0] and "LAZARUS_FAULT_BLOB" in r.errors[0], r.describe()
    assert copies_of(w.pid) == []
    assert not [p for p in harness.my_children() if comm(p) == "lazarus-init"]
    w.check_pass()


def test_pidns_threads(env, mode):
    """Every thread has its dumped tid inside; the ptrace finish found each from here."""
    from test_threads import spawn_lzthreads
    w = spawn_lzthreads(env)
    w.check_pass()
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    r = restore_pidns(env, img, mode)
    assert r.rc == 0 and not r.errors, r.describe()
    (outer,) = copies_of(w.pid)
    env.pids.add(outer)
    assert_in_ns(outer, w.pid)
    inner = sorted(nspid(f"{outer}/task/{t}")[1] for t in os.listdir(f"/proc/{outer}/task"))
    assert inner == sorted(w.tids())
    check_copy(w, outer)
    w.check_pass()
