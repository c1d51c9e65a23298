"""A tree whose root is pid 1 of its own pid namespace (issue 6).

lzpidns runs as `unshare --pid --fork [--mount-proc] lzpidns`: the root is
pid 1 with a second thread, two children, a grandchild, a child it reaps
on request and an orphan it adopted. The dump records every pid as seen
inside the namespace (pstree.img, the image names) and that the root was
its init (inventory.img pid_ns); with --mount-proc, also that the mount
namespace is lazarus's with a fresh /proc of its own (mnt_ns). Restore,
eager and lazy, makes a fresh pid namespace whose pid 1 is the root itself
(no lazarus-init), with the same pids inside, whatever pids are taken
outside: every process then checks its memory, its counter, getpid() and
getppid() (with its own /proc: /proc/self too), and the root reaps its
child and the orphan with waitpid. The same images restored twice while
the original runs: three trees side by side. python3 as pid 1 too. What
cannot be restored (not the init, nested namespaces, a session led from
outside, other mounts) is refused with one line, the tree left running;
crafted inventories are refused with one line.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

import harness
from test_lazy import Daemon
from test_state import tamper

NAMES = ("root", "c1", "c1a", "c2", "w", "o")
PIDNS_ROOT_INIT, MNTNS_PROC = 1, 1


def kv(text):
    return dict(w.split("=", 1) for w in text.split())


def status_ids(pid, key="NSpid"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return [int(x) for x in line.split()[1:]]
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def ns_members(outer_root):
    """{pid inside: pid here} of every process in outer_root's pid namespace."""
    ns = os.readlink(f"/proc/{outer_root}/ns/pid")
    out = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{e}/ns/pid") != ns:
                continue
        except OSError:  # gone, or not ours to look at
            continue
        ids = status_ids(int(e))
        if ids and len(ids) == 2:
            out[ids[1]] = int(e)
    return out


def ns_inits(comm):
    """Pids here of the processes named comm that are pid 1 of a child namespace."""
    out = set()
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/comm") as f:
                if f.read().strip() != comm:
                    continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        if status_ids(int(e)) == [int(e), 1]:
            out.add(int(e))
    return out


def unshare_argv(own_proc, prog):
    return ["unshare", "--pid", "--fork"] + (["--mount-proc"] if own_proc else []) + prog


def start_as_init(env, d, own_proc, prog, what):
    """Run PROG as pid 1 of a new pid namespace (unshare) in directory D and
    wait for its "ready" file; return (the unshare Popen, the ready text,
    the root's pid here)."""
    with open(d / "out", "wb") as out:
        p = subprocess.Popen(unshare_argv(own_proc, prog), cwd=d, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             close_fds=True)
    env.procs.append(p)
    harness.wait_for((d / "ready").exists, harness.READY_TIMEOUT, f"{what} to be ready")
    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
        (outer,) = [int(x) for x in f.read().split()]
    env.pids.add(outer)
    return p, (d / "ready").read_text(), outer


class PidnsTree:
    """An lzpidns tree: the unshare Popen, the root's pid here, its dir."""

    def __init__(self, env, name, own_proc):
        self.env, self.own_proc = env, own_proc
        self.dir = env.base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        prog = [str(harness.WORKLOADS / "lzpidns"), "--dir", str(self.dir)] + \
            (["--own-proc"] if own_proc else [])
        with open(self.dir / "out", "wb") as out:
            self.proc = subprocess.Popen(unshare_argv(own_proc, prog), cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         close_fds=True)
        env.procs.append(self.proc)
        env.pids.add(self.proc.pid)
        ready = self.dir / "root" / "ready"

        def ok():
            if ready.exists():
                return True
            if self.proc.poll() is not None:
                raise harness.HarnessError(f"unshare exited with {self.proc.returncode}\n"
                                           f"{harness.tail(self.dir / 'out')}")
            return False

        harness.wait_for(ok, harness.READY_TIMEOUT, "lzpidns to be ready")
        self.ready = kv(ready.read_text())
        self.inner = {n: int(self.ready["pid" if n == "root" else n]) for n in NAMES}
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            (self.root,) = [int(x) for x in f.read().split()]
        env.pids.add(self.root)

    def check_all(self, root, reaped=False):
        """Every process of the tree under root (here) checks itself: PASS, by its pid
        inside. reaped: w and o were reaped on request (reap_on_request)."""
        names = [n for n in NAMES if not reaped or n not in ("w", "o")]
        members = ns_members(root)
        assert sorted(members) == sorted(self.inner[n] for n in names), \
            f"pids inside the namespace of {root}: {sorted(members)}, want {self.inner}"
        for name in names:
            inner = self.inner[name]
            outer = members[inner]
            assert status_ids(outer) == [outer, inner]
            result = self.dir / name / "result"
            try:
                result.unlink()
            except FileNotFoundError:
                pass
            os.kill(outer, signal.SIGUSR1)

            def answered():
                if result.exists():
                    return True
                if not harness.alive(outer):
                    raise harness.HarnessError(f"{name} ({outer} here) died\n"
                                               f"{harness.tail(self.dir / name / 'out')}")
                return False

            harness.wait_for(answered, harness.CHECK_TIMEOUT, f"{name} to check itself")
            text = result.read_text().strip()
            assert text.startswith("PASS "), f"{name} ({inner} inside, {outer} here): {text}"
            assert harness.parse_kv(text)["pid"] == str(inner), text
        return members


def dump(env, t, img, leave_running=False):
    img.mkdir(parents=True, exist_ok=True)
    r = env.lazarus("dump", "-t", t.root, "-D", img, *(["-R"] if leave_running else []),
                    log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    if not leave_running:
        t.proc.wait(harness.EXIT_TIMEOUT)  # unshare goes with its child
        for pid in [t.root]:
            harness.wait_for(lambda: harness.proc_state(pid) is None, harness.EXIT_TIMEOUT,
                             "the dumped root to be gone")
    return r


def restore(env, img, mode, before):
    """restore -d; the restored root's pid here (a new pid 1 named lzpidns)."""
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    new = ns_inits("lzpidns") - before
    env.pids.update(new)
    assert r.rc == 0 and not r.errors, r.describe()
    assert len(new) == 1, f"new pid-1 lzpidns processes: {new}"
    return new.pop()


def assert_tree_restored(t, root):
    assert status_ids(root) == [root, 1]
    if os.path.exists("/proc/self/ns/time"):  # its clocks go on from the dump's
        assert os.readlink(f"/proc/{root}/ns/time") != os.readlink("/proc/self/ns/time")
    assert "lazarus-init" not in open(f"/proc/{harness.proc_ppid(root)}/comm").read()
    members = t.check_all(root)
    t.check_all(root)  # it runs on
    return members


def reap_on_request(t, root):
    """The root (pid 1) reaps its child w and the orphan o it adopted."""
    reaped = t.dir / "root" / "reaped"
    os.kill(root, signal.SIGUSR2)
    harness.wait_for(reaped.exists, harness.CHECK_TIMEOUT, "the root to reap w and o")
    assert kv(reaped.read_text()) == {"w": "3", "o": "4", "f": "0"}
    return kv((t.dir / "root" / "forked").read_text())


# --- dump ---

@pytest.mark.parametrize("own_proc", [False, True], ids=["host-proc", "mount-proc"])
def test_dump_records_pids_inside(env, own_proc):
    t = PidnsTree(env, "tree", own_proc)
    t.check_all(t.root)
    img = env.path("img")
    dump(env, t, img, leave_running=True)
    inv = harness.show(img / "inventory.img")["entries"][0]
    assert inv["root_pid"] == 1 and inv["pid_ns"] == "PIDNS_ROOT_INIT", inv
    assert inv.get("mnt_ns") == ("MNTNS_PROC" if own_proc else None), inv
    entries = harness.show(img / "pstree.img")["entries"]
    want = {t.inner[n]: n for n in NAMES}
    assert sorted(e["pid"] for e in entries) == sorted(want)
    by = {want[e["pid"]]: e for e in entries}
    assert by["root"]["ppid"] == 0 and by["root"]["threads"] == [1, int(t.ready["tid"])]
    assert by["c1a"]["ppid"] == t.inner["c1"]
    for n in ("c1", "c2", "w", "o"):
        assert by[n]["ppid"] == 1, by[n]
    for e in entries:
        assert e["pgid"] == 1 and e["sid"] == 1, e
    names = set(harness.image_files(img))
    for n in NAMES:
        assert f"core-{t.inner[n]}.img" in names and f"mm-{t.inner[n]}.img" in names
    assert f"core-{t.ready['tid']}.img" in names
    t.check_all(t.root)  # left running, unharmed


# --- restore ---

@pytest.mark.parametrize("own_proc", [False, True], ids=["host-proc", "mount-proc"])
def test_restore_root_init(env, mode, own_proc):
    t = PidnsTree(env, "tree", own_proc)
    t.check_all(t.root)
    img = env.path("img")
    dump(env, t, img)
    before = ns_inits("lzpidns")
    root = restore(env, img, mode, before)
    members = assert_tree_restored(t, root)
    if own_proc:
        with open(f"/proc/{root}/mountinfo") as f:
            tops = [line for line in f if " /proc " in line]
        assert tops[-1].split(" - ")[0].endswith("/ /proc rw,nosuid,nodev,noexec,relatime")
    reap_on_request(t, root)
    for n in ("w", "o"):
        assert harness.proc_state(members[t.inner[n]]) is None
    os.kill(root, signal.SIGTERM)  # pid 1 exits (0): the namespace goes with it
    for pid in members.values():
        harness.wait_for(lambda: harness.proc_state(pid) in (None, "Z"), harness.EXIT_TIMEOUT,
                         f"{pid} to go with the namespace")


def test_restore_side_by_side(env, mode):
    """The original keeps running; two restores of its images beside it."""
    t = PidnsTree(env, "tree", True)
    img = env.path("img")
    dump(env, t, img, leave_running=True)
    roots = [t.root]
    for _ in range(2):
        roots.append(restore(env, img, mode, ns_inits("lzpidns")))
    for root in roots:
        t.check_all(root)
    assert len({os.readlink(f"/proc/{r}/ns/pid") for r in roots}) == 3
    reap_on_request(t, roots[1])
    for root in (roots[0], roots[2]):
        t.check_all(root)  # the others keep their w and o


def test_restore_waits_for_root(env, mode):
    """Without -d lazarus is the root's parent here and exits with its status."""
    t = PidnsTree(env, "tree", False)
    img = env.path("img")
    dump(env, t, img)
    before = ns_inits("lzpidns")
    argv = [str(harness.LAZARUS)] + [str(a) for a in env.restore_args(img, mode, False)]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, close_fds=True)
    env.procs.append(p)
    harness.wait_for(lambda: ns_inits("lzpidns") - before or p.poll() is not None,
                     harness.CHECK_TIMEOUT, "the restored root")
    (root,) = ns_inits("lzpidns") - before
    env.pids.add(root)
    assert harness.proc_ppid(root) == p.pid
    if os.path.exists("/proc/self/ns/time"):  # lazarus cloned it into a time namespace
        assert os.readlink(f"/proc/{root}/ns/time") != os.readlink("/proc/self/ns/time")
    t.check_all(root)
    os.kill(root, signal.SIGTERM)
    assert p.wait(harness.EXIT_TIMEOUT) == 0, p.stderr.read()


def ask(d, outer, inner):
    """SIGUSR1 to an lztree process (outer here); its result line, checked PASS by inner."""
    result = d / "result"
    result.unlink(missing_ok=True)
    os.kill(outer, signal.SIGUSR1)
    harness.wait_for(result.exists, harness.CHECK_TIMEOUT, f"{d.name} to check itself")
    r = harness.parse_kv(result.read_text())
    assert r["verdict"] == "PASS" and r["pid"] == str(inner), r["line"]


def test_lztree_as_init(env, mode):
    """lztree (a group of its own, a zombie, a stopped process) as pid 1
    with its own /proc: restored, the root's check of the whole tree's
    shape from /proc (parents, groups, sessions, z a zombie with status 7,
    b stopped) passes inside the fresh namespace, and so do a, a1, b1."""
    d = env.base / "tree"
    d.mkdir()
    prog = [str(harness.WORKLOADS / "lztree"), "--dir", str(d)]
    p, text, outer = start_as_init(env, d, True, prog, "lztree")
    pids = {k: int(v) for k, v in kv(text).items()}
    assert pids["pid"] == 1
    ask(d, outer, 1)
    img = env.path("img")
    r = env.lazarus("dump", "-t", outer, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    p.wait(harness.EXIT_TIMEOUT)
    before = ns_inits("lztree")
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    new = ns_inits("lztree") - before
    env.pids.update(new)
    assert r.rc == 0 and not r.errors, r.describe()
    (root,) = new
    members = ns_members(root)
    assert sorted(members) == sorted(pids.values())
    ask(d, root, 1)
    for name in ("a", "a1", "b1"):
        ask(d / name, members[pids[name]], pids[name])
    assert harness.proc_state(members[pids["b"]]) == "T"
    assert harness.proc_state(members[pids["z"]]) == "Z"


def test_python_as_init(env, mode):
    """python3 (pystate.py) as pid 1: its own state and getpid() after restore."""
    d = env.base / "py"
    d.mkdir()
    prog = ["setsid", str(harness.PYTHON), str(harness.PYSTATE), "--dir", str(d)]
    p, text, outer = start_as_init(env, d, False, prog, "pystate")
    assert text.strip() == "pid=1"

    def check(pid):
        result = d / "result"
        if result.exists():
            result.unlink()
        os.kill(pid, signal.SIGUSR1)
        harness.wait_for(result.exists, harness.CHECK_TIMEOUT, "pystate to check itself")
        r = json.loads(result.read_text())
        assert r["verdict"] == "PASS" and r["pid"] == 1, r
        return r

    first = check(outer)
    img = env.path("img")
    r = env.lazarus("dump", "-t", outer, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    p.wait(harness.EXIT_TIMEOUT)
    before = ns_inits("python3")
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    new = ns_inits("python3") - before
    env.pids.update(new)
    assert r.rc == 0 and not r.errors, r.describe()
    (root,) = new
    again = check(root)
    assert again["n"] > first["n"], (first, again)
    check(root)


def test_lazy_fork_in_namespace(env):
    """Right after a lazy restore with a slow background fill, the root
    (pid 1) forks a child that reads its memory: the child's faults come
    through its own userfaultfd with its tid inside the namespace, and the
    daemon must learn its pid here (never take the pid inside for one of
    ours: another process has it here), and serve it."""
    t = PidnsTree(env, "tree", False)
    img = env.path("img")
    dump(env, t, img)
    daemon = Daemon(env, img, delay_us=200000)
    root = restore(env, img, "lazy", ns_inits("lzpidns"))
    forked = reap_on_request(t, root)
    inner, outer = int(forked["pid"]), int(forked["outer"])
    assert inner != outer and forked["bad"] == "0", forked
    log = daemon.log_text()
    m = re.findall(r"forked: serving its child \((\d+) pages outstanding\)", log)
    assert m and max(int(x) for x in m) > 0, daemon.describe()
    learned = re.findall(r"child of pid \d+ is pid (\d+)", log)
    assert learned == [str(outer)], daemon.describe()
    t.check_all(root, reaped=True)


def test_group_leader_gone_in_namespace(env, mode):
    """A process group whose leader exited, inside the namespace: restore
    makes it again with a helper that takes its pid inside, then exits."""
    from test_tree import GROUPS
    d = env.path("groups")
    prog = ["setsid", harness.PYTHON, "-c", GROUPS, str(d), "gone"]
    p, text, outer = start_as_init(env, d, True, prog, "the groups program")
    ready = {k: int(v) for k, v in kv(text).items()}
    assert ready["pid"] == 1
    img = env.path("img")
    r = env.lazarus("dump", "-t", outer, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    p.wait(harness.EXIT_TIMEOUT)
    before = ns_inits("python3")
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    new = ns_inits("python3") - before
    env.pids.update(new)
    assert r.rc == 0 and not r.errors, r.describe()
    (root,) = new
    members = ns_members(root)
    assert sorted(members) == [1, ready["member"]], members
    member = members[ready["member"]]
    assert status_ids(member, "NSpgid") == [os.getpgid(member), ready["leader"]]
    assert status_ids(member, "NSsid") == [root, 1]


# --- refusals ---

def spawn_unshared(env, argv, name):
    d = env.path(name)
    p = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    env.procs.append(p)
    return p


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        try:
            with open(f"/proc/{q}/task/{q}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            kids = []
        out += kids
        todo += kids
    return out


def wait_descendants(p, n):
    harness.wait_for(lambda: len(descendants(p.pid)) >= n, harness.READY_TIMEOUT,
                     f"{n} descendants of {p.pid}")
    time.sleep(0.2)  # let the last one exec
    return descendants(p.pid)


def refused(env, target, want):
    img = env.path("img")
    r = env.lazarus("dump", "-t", target, "-D", img, log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1 and want in r.errors[0], r.describe()
    assert not (img / "inventory.img").exists()
    assert harness.alive(target)
    harness.assert_not_stopped(target)
    assert status_ids(target, "TracerPid") == [0]


def test_refuse_not_the_init(env):
    p = spawn_unshared(env, unshare_argv(False, ["setsid", "sh", "-c",
                                                 "sleep 1000 & wait"]), "notinit")
    sh, sleep = wait_descendants(p, 2)
    refused(env, sleep, f"process {sleep} is pid 2 of its own pid namespace, not its init: "
                        "dump the namespace's init (pid 1) instead")


def test_refuse_nested_pidns(env):
    inner = unshare_argv(False, ["sleep", "1000"])
    p = spawn_unshared(env, unshare_argv(False, ["setsid"] + inner), "nested")
    outer_init, sleep = wait_descendants(p, 2)  # sleep: pid 1 of the nested namespace
    refused(env, outer_init, f"process {sleep} is in a pid namespace of its own inside "
                             "the tree's (pid 1 there): nested pid namespaces are not supported")
    refused(env, sleep, f"process {sleep} is pid 1 of a pid namespace 2 levels below "
                        "lazarus's: nested pid namespaces are not supported")


def test_refuse_session_from_outside(env):
    p = spawn_unshared(env, unshare_argv(False, ["sleep", "1000"]), "session")
    (sleep,) = wait_descendants(p, 1)
    refused(env, sleep, f"process {sleep}: its session {os.getsid(sleep)} is led from outside "
                        "its pid namespace: not supported")


def test_refuse_other_mounts(env):
    script = "mount -t tmpfs lzpidns-extra /mnt && exec setsid sleep 1000"
    p = spawn_unshared(env, unshare_argv(True, ["sh", "-c", script]), "mounts")
    (sleep,) = wait_descendants(p, 1)
    harness.wait_for(lambda: "sleep" in open(f"/proc/{sleep}/comm").read(),
                     harness.READY_TIMEOUT, "sh to exec sleep")
    refused(env, sleep, f"process {sleep} is in another mnt namespace")
    refused(env, sleep, "lzpidns-extra")


# --- crafted images ---

def pidns_field(field, value):
    """A varint field of inventory_entry, appended (the last one wins)."""
    from test_state import varint
    return varint(field << 3) + varint(value)


@pytest.mark.parametrize("extra,want", [
    (pidns_field(11, PIDNS_ROOT_INIT),
     "pstree.img: the root was pid 1 of its pid namespace, but is {pid} here"),
    (pidns_field(12, MNTNS_PROC),
     "inventory.img: a mount namespace with its own /proc, but no pid namespace of its own"),
    (pidns_field(11, 7), "inventory.img: unknown pid namespace kind 7"),
    (pidns_field(3, 4242), "inventory.img: the root is 4242, pstree.img's first process is {pid}"),
], ids=["init-not-1", "mnt-without-pidns", "unknown-kind", "root-pid"])
def test_crafted_inventory_refused(env, extra, want):
    w = env.lzwork(mib=4)
    img = env.path("img")
    env.dump(w, img)
    tamper(img, "inventory.img", extra)
    r = env.restore(img, "eager", expect_ok=False)
    assert r.rc != 0 and r.errors == [f"lazarus: Error: restore: {want.format(pid=w.pid)}"], \
        r.describe()
    assert harness.proc_state(w.pid) is None
