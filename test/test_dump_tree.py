"""The dump side of threads and process trees (issue 6).

Until restore can bring back more than one thread or process, dump refuses
them with today's lines, writes nothing and leaves everything running,
untraced. With LAZARUS_TEST_DUMP_PLURAL=1 (Documentation/testing.md) the
dump goes through, so that these tests can hold the images against what
/proc said: pstree.img (pids, parents, groups, sessions, threads, zombies,
stopped processes) and one core-<tid>.img per thread (signal mask,
sigaltstack, thread-directed pending signals, comm), mm-<pid>.img per live
process. The targets keep running untraced and pass their own checks.

Workloads: lzthreads (8 threads, each waiting its own way), lztree (three
levels, a group of its own, a zombie, a stopped process), pythreads.py
(python3 threading), and a small python tree whose grandchild holds a
socket.
"""
import os
import signal
import struct
import textwrap

import pytest

import harness

PLURAL = "LAZARUS_TEST_DUMP_PLURAL"
SIGRTMIN = 34  # glibc's, as the C workloads see it
PENDING_SIG, PENDING_VALUE = SIGRTMIN + 4, 0x6666
ERR_TREE = "lazarus: Error: dump: process {} has a child (pid {}): process trees are not " \
           "supported yet"


def bit(sig):
    return 1 << (sig - 1)


class LzThreads(harness.Workload):
    kind = "lzthreads"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def restored(self):
        return type(self)(self.env, self.dir, self.pid)

    def tids(self):
        return [int(t) for t in self.ready["tids"].split(",")]

    def altstacks(self):
        return [tuple(int(x, 0) for x in a.split(":")) for a in self.ready["alt"].split(",")]

    def expected_masks(self):
        """The blocked set each thread set up (lzthreads.c setup_thread)."""
        masks = []
        for i in range(8):
            m = bit(SIGRTMIN + 3) | bit(SIGRTMIN + 4) | bit(SIGRTMIN + 10 + i)
            if i:
                m |= bit(signal.SIGUSR1) | bit(signal.SIGTERM)
            masks.append(m)
        return masks


class LzTree(harness.Workload):
    kind = "lztree"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def restored(self):
        return type(self)(self.env, self.dir, self.pid)

    def pids(self):
        return {k: int(v) for k, v in self.ready.items()}

    def member(self, name):
        """The process NAME of the tree as a workload of its own (its dir)."""
        w = LzTree(self.env, self.dir / name, self.pids()[name])
        w.ready = {"pid": str(w.pid)}
        return w


class PyThreads(harness.Workload):
    kind = "pythreads"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def tids(self):
        return [int(t) for t in self.ready["tids"].split(",")]


class PyTree(harness.Workload):
    kind = "pytree"


PYTREE = textwrap.dedent("""
    import os, socket, sys, time
    d = sys.argv[1]
    def beat(name):
        n = 0
        while True:
            n += 1
            with open(os.path.join(d, "beat-" + name + ".tmp"), "w") as f:
                f.write(str(n))
            os.rename(os.path.join(d, "beat-" + name + ".tmp"), os.path.join(d, "beat-" + name))
            time.sleep(0.01)
    def publish(name, text):
        with open(os.path.join(d, name + ".tmp"), "w") as f:
            f.write(text)
        os.rename(os.path.join(d, name + ".tmp"), os.path.join(d, name))
    child = os.fork()
    if child == 0:
        out = os.open(os.path.join(d, "out-child"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.dup2(out, 1); os.dup2(out, 2); os.close(out)
        gc = os.fork()
        if gc == 0:
            out = os.open(os.path.join(d, "out-gc"), os.O_WRONLY | os.O_CREAT, 0o644)
            os.dup2(out, 1); os.dup2(out, 2); os.close(out)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            publish("gc", "pid=%d fd=%d" % (os.getpid(), s.fileno()))
            beat("gc")
        beat("child")
    while not os.path.exists(os.path.join(d, "gc")):
        time.sleep(0.001)
    gc, fd = [w.split("=")[1] for w in open(os.path.join(d, "gc")).read().split()]
    publish("ready", "pid=%d child=%d gc=%s fd=%s" % (os.getpid(), child, gc, fd))
    beat("root")
""")


@pytest.fixture
def plural(monkeypatch):
    monkeypatch.setenv(PLURAL, "1")


def show_entries(imgdir, name):
    return harness.show(imgdir / name)["entries"]


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return {"state": rest[0], "ppid": int(rest[1]), "pgid": int(rest[2]), "sid": int(rest[3])}


def tracer_pids(pid):
    return {tid: f.get("TracerPid") for tid, f in harness.task_status(pid).items()}


def dump_refused(env, w, want):
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-R", log=env.log_path("dump"))
    assert r.rc == 1, r.describe()
    assert r.errors == [want], r.describe()
    assert not (img / "inventory.img").exists()
    assert not [p for p in img.iterdir() if p.name != "dump.log"], list(img.iterdir())


def siginfo(raw_hex):
    """signo, code and the int value of a 128-byte x86_64 siginfo."""
    raw = bytes.fromhex(raw_hex)
    signo, _errno, code = struct.unpack_from("<iii", raw, 0)
    value, = struct.unpack_from("<i", raw, 24)
    return signo, code, value


# --- threads ---

def spawn_threads(env, name="threads"):
    d = env.base / name
    return env.spawn(LzThreads, [harness.WORKLOADS / "lzthreads", "--dir", d], d)


def test_threads_dumped_without_switch(env, monkeypatch):
    """Restore brings threads back (LZ_RESTORE_THREADS): no switch needed."""
    monkeypatch.delenv(PLURAL, raising=False)
    w = spawn_threads(env)
    w.check_pass()
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    assert show_entries(img, "pstree.img")[0]["threads"] == w.tids()
    assert sorted(harness.task_status(w.pid)) == sorted(w.tids())
    w.check_pass()
    w.stop()


def test_threads_images(env, plural):
    """Every thread in pstree.img and its own core image, as /proc showed it."""
    w = spawn_threads(env)
    w.check_pass()
    tids = w.tids()
    status = harness.task_status(w.pid)
    assert sorted(status) == sorted(tids)
    img = env.path("img")
    env.dump(w, img, leave_running=True)

    pstree = show_entries(img, "pstree.img")
    assert len(pstree) == 1, pstree
    e = pstree[0]
    assert e["threads"] == tids, "leader first, every thread, nothing else"
    st = proc_stat(w.pid)
    assert (e["pid"], e["ppid"], e["pgid"], e["sid"]) == (w.pid, st["ppid"], st["pgid"], st["sid"])
    assert not e.get("zombie") and not e.get("stopped")
    assert (img / f"mm-{w.pid}.img").exists()

    masks, alts = w.expected_masks(), w.altstacks()
    for i, tid in enumerate(tids):
        core = show_entries(img, f"core-{tid}.img")[0]
        assert core["tid"] == tid
        with open(f"/proc/{w.pid}/task/{tid}/comm") as f:
            assert core["comm"] == f.read().strip()
        assert core["blocked_sigset"] == masks[i], f"thread {i} ({tid})"
        if i != 5:  # the sigwaitinfo thread shows its temporary mask in /proc while it waits
            assert core["blocked_sigset"] == int(status[tid]["SigBlk"], 16), f"thread {i}"
        assert (core["sas"]["ss_sp"], core["sas"]["ss_size"]) == alts[i], f"thread {i}"
        assert core["sas"]["ss_flags"] == 0
        assert "rseq" in core, f"thread {i}: glibc registers rseq for every thread"
        pending = [siginfo(p) for p in core.get("pending_siginfo", [])]
        if i == 6:
            assert pending == [(PENDING_SIG, -1, PENDING_VALUE)], pending
            assert int(status[tid]["SigPnd"], 16) == bit(PENDING_SIG)
        else:
            assert pending == [], f"thread {i}: {pending}"
    assert not [p for p in os.listdir(img) if p.startswith("core-")
                and int(p[5:-4]) not in tids]

    assert sorted(harness.task_status(w.pid)) == sorted(tids)
    w.check_pass()
    w.stop()


def test_python_threading_images(env, plural):
    d = env.base / "py"
    w = env.spawn(PyThreads, [harness.PYTHON, harness.ROOT / "test" / "workloads" / "pythreads.py",
                              "--dir", d], d)
    w.check_pass()
    tids = w.tids()
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    e = show_entries(img, "pstree.img")[0]
    assert e["threads"][0] == w.pid and sorted(e["threads"]) == sorted(harness.task_status(w.pid))
    assert set(tids) <= set(e["threads"])
    for tid in e["threads"]:
        assert show_entries(img, f"core-{tid}.img")[0]["tid"] == tid
    harness.assert_not_stopped(w.pid)
    w.check_pass()
    w.stop()


# --- trees ---

def spawn_tree(env, name="tree"):
    d = env.base / name
    w = env.spawn(LzTree, [harness.WORKLOADS / "lztree", "--dir", d], d)
    env.pids.update(w.pids().values())
    return w


def assert_tree_unharmed(w):
    """Every process untraced; b still stopped, z still a zombie, the rest running."""
    for name, pid in w.pids().items():
        if name == "z":
            assert harness.proc_state(pid) == "Z"
            continue
        assert set(tracer_pids(pid).values()) == {"0"}, f"{name} ({pid}) still traced"
        if name == "b":
            assert harness.proc_state(pid) == "T", "b no longer stopped"
        else:
            harness.assert_not_stopped(pid, name)


def check_members(w):
    w.check_pass()
    for name in ("a", "a1", "b1"):
        w.member(name).check_pass()


def test_tree_dumped_without_switch(env, monkeypatch):
    """Restore takes trees (LZ_RESTORE_TREES is 1): no switch needed any more."""
    monkeypatch.delenv(PLURAL, raising=False)
    w = spawn_tree(env)
    check_members(w)
    r = env.lazarus("dump", "-t", w.pid, "-D", env.path("img"), "-R", log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    assert_tree_unharmed(w)
    check_members(w)


def test_tree_images(env, plural):
    w = spawn_tree(env)
    check_members(w)
    pids = w.pids()
    before = {name: proc_stat(pid) for name, pid in pids.items()}
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-R", log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()

    entries = show_entries(img, "pstree.img")
    by_pid = {e["pid"]: e for e in entries}
    assert entries[0]["pid"] == w.pid, "the root first"
    assert sorted(by_pid) == sorted(pids.values()), "exactly the tree"
    seen = set()
    for e in entries:  # every parent before its children
        assert e["pid"] == w.pid or e["ppid"] in seen, entries
        seen.add(e["pid"])
    for name, pid in pids.items():
        e, st = by_pid[pid], before[name]
        assert (e["ppid"], e["pgid"], e["sid"]) == (st["ppid"], st["pgid"], st["sid"]), name
        assert e.get("zombie", False) == (name == "z"), name
        assert e.get("stopped", False) == (name == "b"), name
        if name == "z":
            assert e["exit_status"] == 7 << 8, "the wait status of _exit(7)"
            assert e["threads"] == []
            assert not (img / f"core-{pid}.img").exists()
            assert not (img / f"mm-{pid}.img").exists()
            continue
        if name == "b":
            assert e["stop_signal"] == signal.SIGSTOP
        assert e["threads"] == [pid]
        assert show_entries(img, f"core-{pid}.img")[0]["tid"] == pid
        assert (img / f"mm-{pid}.img").exists() and (img / f"pages-{pid}.img").exists()
    assert entries[0]["sid"] == w.pid and by_pid[pids["a"]]["pgid"] == pids["a"]
    fds = [e for name, pid in pids.items() if name != "z"
           for e in show_entries(img, f"fdinfo-{pid}.img")]
    ids = [f["id"] for f in show_entries(img, "files.img")]
    assert len(ids) == len(set(ids)), "file ids unique across processes"
    assert {f["file_id"] for f in fds} <= set(ids)

    assert_tree_unharmed(w)
    check_members(w)
    b = w.member("b")
    os.kill(b.pid, signal.SIGCONT)
    harness.wait_for(lambda: harness.proc_state(b.pid) != "T", harness.READY_TIMEOUT,
                     "b to continue")
    b.check_pass()


def test_tree_refused_for_a_grandchild(env, plural):
    """One grandchild holds a socket: the whole tree is refused with one line
    naming it, and every process runs on, untraced."""
    d = env.base / "pytree"
    w = env.spawn(PyTree, [harness.PYTHON, "-c", PYTREE, d], d)
    child, gc, fd = (int(w.ready[k]) for k in ("child", "gc", "fd"))
    env.pids.update((child, gc))
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1, r.describe()
    assert len(r.errors) == 1, r.describe()
    assert r.errors[0].startswith(f"lazarus: Error: dump: process {gc} fd {fd}: socket"), \
        r.describe()
    assert r.errors[0].endswith("not supported yet"), r.describe()
    assert not (img / "inventory.img").exists()
    for name, pid in (("root", w.pid), ("child", child), ("grandchild", gc)):
        harness.assert_not_stopped(pid, name)
        beat = d / f"beat-{'gc' if name == 'grandchild' else name}"
        n0 = beat.read_text()
        harness.wait_for(lambda: beat.read_text() != n0, harness.READY_TIMEOUT,
                         f"{name} to beat after the refused dump")


CHURN = textwrap.dedent("""
    import os, sys, threading, time
    d = sys.argv[1]
    done = [0]
    def short():
        done[0] += 1
    def spawner():
        while True:
            t = threading.Thread(target=short)
            t.start()
            t.join()
    for _ in range(4):
        threading.Thread(target=spawner, daemon=True).start()
    with open(os.path.join(d, "ready.tmp"), "w") as f:
        f.write("pid=%d" % os.getpid())
    os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
    while True:
        time.sleep(0.01)
        with open(os.path.join(d, "beat.tmp"), "w") as f:
            f.write(str(done[0]))
        os.rename(os.path.join(d, "beat.tmp"), os.path.join(d, "beat"))
""")


def test_threads_come_and_go_while_freezing(env, plural):
    """Threads made and ended all the time: each dump freezes a consistent
    set (every listed thread has its core image), says nothing about the
    threads that went away, and leaves the process running untraced."""
    d = env.base / "churn"
    w = env.spawn(PyTree, [harness.PYTHON, "-c", CHURN, d], d)
    harness.wait_for((d / "beat").exists, harness.READY_TIMEOUT, "the first beat")
    for i in range(5):
        img = env.path(f"img{i}")
        env.dump(w, img, leave_running=True)
        threads = show_entries(img, "pstree.img")[0]["threads"]
        assert threads[0] == w.pid and len(threads) == len(set(threads)) >= 5, threads
        for tid in threads:
            assert show_entries(img, f"core-{tid}.img")[0]["tid"] == tid
        n0 = (d / "beat").read_text()
        harness.wait_for(lambda: (d / "beat").read_text() != n0, harness.READY_TIMEOUT,
                         "the threads to go on being made")


SHARED_OUT = textwrap.dedent("""
    import os, sys, time
    d = sys.argv[1]
    child = os.fork()
    if child == 0:  # keeps the parent's stdout and stderr: one open file description
        while True:
            time.sleep(0.01)
    with open(os.path.join(d, "ready.tmp"), "w") as f:
        f.write("pid=%d child=%d" % (os.getpid(), child))
    os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
    while True:
        time.sleep(0.01)
""")


def test_tree_shared_open_file(env, plural):
    """stdout shared across fork is one open file description: one entry of
    files.img that the fd 1 of both processes refers to (kcmp across the
    processes), and so are the fds 0 (/dev/null) and 2."""
    d = env.base / "shared"
    w = env.spawn(PyTree, [harness.PYTHON, "-c", SHARED_OUT, d], d)
    child = int(w.ready["child"])
    env.pids.add(child)
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    files = {f["id"]: f for f in show_entries(img, "files.img")}
    fds = {pid: {e["fd"]: e["file_id"] for e in show_entries(img, f"fdinfo-{pid}.img")}
           for pid in (w.pid, child)}
    for fd in (0, 1, 2):
        assert fds[w.pid][fd] == fds[child][fd], f"fd {fd}: {fds}"
    assert fds[w.pid][1] == fds[w.pid][2], "stdout and stderr: one description"
    assert len(files) == len(set(fds[w.pid].values()) | set(fds[child].values())), files
    harness.assert_not_stopped(w.pid)
    harness.assert_not_stopped(child, "child")


def test_tree_killed_after_dump(env, plural):
    """Without -R every process of the tree is killed once the dump is
    complete, the stopped one too; nothing is left traced or stopped."""
    w = spawn_tree(env)
    pids = w.pids()
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    assert (img / "inventory.img").exists()
    w.proc.wait(harness.EXIT_TIMEOUT)
    for name, pid in pids.items():
        harness.reap(pid)  # reparented to us (a subreaper) if not reaped by their parent
        assert harness.proc_state(pid) is None, f"{name} ({pid}) survived the dump"


def test_threads_killed_after_dump(env, plural):
    w = spawn_threads(env)
    img = env.path("img")
    env.dump(w, img)
    assert len(show_entries(img, "pstree.img")[0]["threads"]) == 8


def test_thread_id_refused(env, plural):
    """dump -t of a thread that is not the leader names the process to dump
    instead, before anything is seized."""
    w = spawn_threads(env)
    tid = w.tids()[3]
    img = env.path("img")
    r = env.lazarus("dump", "-t", tid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1, r.describe()
    assert r.errors == [f"lazarus: Error: dump: {tid} is a thread of process {w.pid}: "
                        "dump the process instead"], r.describe()
    harness.assert_not_stopped(w.pid)
    w.check_pass()


VFORK_ROOT = textwrap.dedent("""
    import os, subprocess, sys, time
    d, lzvfork = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(d, "v"), exist_ok=True)
    with open(os.path.join(d, "v", "out"), "w") as out:
        p = subprocess.Popen([lzvfork, "--dir", os.path.join(d, "v")], stdout=out,
                             stderr=out, close_fds=True)
    while not os.path.exists(os.path.join(d, "v", "ready")):
        time.sleep(0.001)
    with open(os.path.join(d, "ready.tmp"), "w") as f:
        f.write("pid=%d vfork=%d" % (os.getpid(), p.pid))
    os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
    while True:
        time.sleep(0.01)
""")


def test_tree_vfork_parent_refused(env, plural):
    """A descendant waiting for its vfork child is refused by name at once
    (no freeze timeout); the tree runs on, and the vfork parent resumes when
    its child is gone."""
    d = env.base / "vtree"
    w = env.spawn(PyTree, [harness.PYTHON, "-c", VFORK_ROOT, d, harness.WORKLOADS / "lzvfork"], d)
    parent = int(w.ready["vfork"])
    child = int((d / "v" / "ready").read_text().split("child=")[1].split()[0])
    env.pids.update((parent, child))
    assert harness.proc_state(parent) == "D"
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1, r.describe()
    assert r.errors == [f"lazarus: Error: dump: process {parent} is a vfork parent waiting for "
                        f"its child {child} (they share one address space): not supported yet"], \
        r.describe()
    harness.assert_not_stopped(w.pid)
    os.kill(child, signal.SIGKILL)
    harness.wait_for((d / "v" / "resumed").exists, harness.READY_TIMEOUT, "the vfork parent to resume")


@pytest.mark.parametrize("phase", ["seized", "inject"])
def test_tree_dump_interrupted(env, plural, phase):
    """SIGINT to a tree dump (frozen, or with a syscall injected into the
    root) while one of its processes was killed meanwhile: one line, nothing
    written, every other process runs on untraced (b still stopped) and
    passes its check; no hang on the dead one."""
    from test_dump_signals import PausedDump, interrupted_line

    w = spawn_tree(env)
    pids = w.pids()
    img = env.path("img")
    dump = PausedDump(env, w, img, phase)
    os.kill(pids["a1"], signal.SIGKILL)
    rc, errors = dump.signal(signal.SIGINT)
    assert rc == 1 and errors == [interrupted_line(signal.SIGINT, w.pid)], dump.describe()
    assert not (img / "inventory.img").exists()
    for name, pid in pids.items():
        if name in ("a1", "z"):
            continue
        assert set(tracer_pids(pid).values()) == {"0"}, f"{name} ({pid}) still traced"
        if name == "b":
            assert harness.proc_state(pid) == "T", "b no longer stopped"
        else:
            harness.assert_not_stopped(pid, name)
    for name in ("a", "b1"):
        w.member(name).check_pass()
