"""A tree in an IPC namespace of its own, as containers run (issue 7 item 7).

lzipcns (a parent and its child) runs under `unshare --ipc`, or `unshare
--ipc --pid --fork --mount-proc`, with three SysV segments: A (a key,
attached in both), B (a key, filled then detached: only the namespace
holds it) and C (IPC_PRIVATE, attached in both). The dump records the
namespace (inventory.img IPCNS_OWN and its IPC sysctls) and every segment
of it; restore makes a fresh IPC namespace with the same ids, keys, modes
and contents, eager and lazy, also twice beside the running original.
Each process checks its ids (IPC_STAT), keys, modes, attach counts and
contents, and that the OTHER process's writes after the restore show in A
and C (one object, not two copies); `nsenter -i ipcs -m` lists them.
A SysV message queue comes back with its id, key, mode, msg_qbytes and
messages. SysV semaphore sets, POSIX message queues and a tree spread
over two IPC namespaces are refused with one line, the tree running on; a
crafted shmem.img (negative id, size overflow, an id twice) is refused
before anything runs.
"""
import os
import signal
import struct
import subprocess

import pytest

import harness
from test_pidns_root import kv, ns_inits, ns_members, status_ids
from test_state import crc32c, img_header_size, pb_encode, pb_fields

MODES = ["eager", "lazy"]
KEY = 0x4C5A1000
SIZES = {"ida": 1 << 20, "idb": 64 << 10, "idc": 128 << 10}
PERMS = {"ida": 0o640, "idb": 0o604, "idc": 0o666}
KEYS = {"ida": KEY, "idb": KEY + 1, "idc": 0}


class Tree:
    """An lzipcns pair under unshare: host pids root and child, its dir."""

    def __init__(self, env, name, pidns=False, extra=()):
        self.env, self.pidns = env, pidns
        self.dir = env.base / name
        (self.dir / "child").mkdir(parents=True, exist_ok=True)
        argv = ["unshare", "--ipc"] + (["--pid", "--fork", "--mount-proc"] if pidns else []) + \
            [str(harness.WORKLOADS / "lzipcns"), "--dir", str(self.dir)] + list(extra)
        with open(self.dir / "out", "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, close_fds=True)
        env.procs.append(self.proc)
        env.pids.add(self.proc.pid)
        ready = self.dir / "ready"

        def ok():
            if ready.exists():
                return True
            if self.proc.poll() is not None:
                raise harness.HarnessError(f"unshare exited with {self.proc.returncode}\n"
                                           f"{harness.tail(self.dir / 'out')}")
            return False

        harness.wait_for(ok, harness.READY_TIMEOUT, "lzipcns to be ready")
        self.ready = kv(ready.read_text())
        self.ids = {k: int(self.ready[k]) for k in SIZES}
        if pidns:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                (self.root,) = [int(x) for x in f.read().split()]
        else:
            self.root = self.proc.pid
        self.child = child_of(self.root)
        env.pids.update({self.root, self.child})

    def check(self, root, child=None):
        """Both processes under ROOT (here) check themselves: PASS."""
        child = child or child_of(root)
        for pid, d in ((root, self.dir), (child, self.dir / "child")):
            result = d / "result"
            result.unlink(missing_ok=True)
            os.kill(pid, signal.SIGUSR1)
            harness.wait_for(result.exists, harness.CHECK_TIMEOUT, f"{pid} to check itself",
                             lambda: harness.tail(d / "out"))
            text = result.read_text()
            assert text.startswith("PASS"), f"process {pid}: {text}"

    def segments_ok(self, root):
        """ipcs inside ROOT's IPC namespace lists the three segments as made."""
        segs = ipcs(root)
        want = {self.ids[k]: (KEYS[k], PERMS[k], SIZES[k], 0 if k == "idb" else 2)
                for k in SIZES}
        assert segs == want, f"ipcs -m in {root}'s namespace: {segs}, want {want}"


def child_of(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        (c,) = [int(x) for x in f.read().split()]
    return c


def ipcs(pid):
    """{shmid: (key, perms, bytes, nattch)} from `nsenter -t PID -i ipcs -m`."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-i", "ipcs", "-m"], capture_output=True,
                         text=True, check=True).stdout
    segs = {}
    for line in out.splitlines():
        w = line.split()
        if len(w) >= 6 and w[0].startswith("0x"):
            segs[int(w[1])] = (int(w[0], 16), int(w[3], 8), int(w[4]), int(w[5]))
    return segs


def ipc_ns(pid):
    return os.readlink(f"/proc/{pid}/ns/ipc")


def dump(env, t, img, leave_running=False):
    img.mkdir(parents=True, exist_ok=True)
    r = env.lazarus("dump", "-t", t.root, "-D", img, *(["-R"] if leave_running else []),
                    log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    if not leave_running:
        t.proc.wait(harness.EXIT_TIMEOUT)
        if not t.pidns:
            harness.reap(t.child)  # orphaned to us, the subreaper
        for pid in (t.root, t.child):
            harness.wait_for(lambda: harness.proc_state(pid) is None, harness.EXIT_TIMEOUT,
                             f"dumped {pid} to be gone")
    return r


def restore(env, img, mode, t, extra=()):
    """restore -d; the restored root's pid here."""
    before = ns_inits("lzipcns")
    r = env.lazarus(*env.restore_args(img, mode, True), *extra, log=env.log_path("restore"))
    assert r.rc == 0 and not r.errors, r.describe()
    if t.pidns:
        new = ns_inits("lzipcns") - before
        assert len(new) == 1, f"new pid-1 lzipcns processes: {new}"
        root = new.pop()
    else:
        root = t.root
    env.pids.update({root, child_of(root)})
    return root


# --- dump ---

def test_dump_records_namespace(env):
    t = Tree(env, "tree")
    t.check(t.root, t.child)
    t.segments_ok(t.root)
    img = env.path("img")
    dump(env, t, img, leave_running=True)
    inv = harness.show(img / "inventory.img")["entries"][0]
    assert inv["ipc_ns"] == "IPCNS_OWN", inv
    ipc = inv["ipc"]
    assert ipc["shmmni"] > 0 and len(ipc["sem"]) == 4 and ipc["shm_next_id"] == -1, ipc
    ents = harness.show(img / "shmem.img")["entries"]
    got = {e["shmid"]: (e["kind"], e.get("key", 0), e["mode"], e["size"]) for e in ents}
    assert got == {t.ids[k]: ("SHMEM_SYSV", KEYS[k], PERMS[k], SIZES[k]) for k in SIZES}, got
    t.check(t.root, t.child)  # left running, unharmed
    t.segments_ok(t.root)


# --- restore ---

@pytest.mark.parametrize("pidns", [False, True], ids=["ipc", "ipc-pid-mountproc"])
def test_restore(env, mode, pidns):
    t = Tree(env, "tree", pidns)
    t.check(t.root, t.child)
    img = env.path("img")
    dump(env, t, img)
    root = restore(env, img, mode, t)
    assert ipc_ns(root) != ipc_ns(os.getpid()) and ipc_ns(child_of(root)) == ipc_ns(root)
    if pidns:
        assert status_ids(root) == [root, 1]
    t.segments_ok(root)
    t.check(root)
    t.check(root)  # twice: still one object after the first round of writes
    t.segments_ok(root)
    assert all(k not in (KEY, KEY + 1) for k, *_ in ipcs(os.getpid()).values())


def test_restore_side_by_side(env, mode):
    """The original runs on; two restores of its images beside it, each in a
    fresh IPC namespace with the same ids and keys."""
    t = Tree(env, "tree", pidns=True)
    img = env.path("img")
    dump(env, t, img, leave_running=True)
    roots = [t.root] + [restore(env, img, mode, t) for _ in range(2)]
    assert len({ipc_ns(r) for r in roots}) == 3
    for r in roots:
        t.segments_ok(r)
        t.check(r)
    # One namespace's writes stay in it: the original's counters are its own.
    for r in roots:
        t.check(r)


def test_restore_side_by_side_pidns_option(env, mode):
    """Dumped from `unshare --ipc` alone, restored twice with --pidns beside
    the running original: each copy under its lazarus-init in a fresh pid
    namespace and a fresh IPC namespace, the same ids in each."""
    from test_pidns import copies_of
    t = Tree(env, "tree")
    img = env.path("img")
    dump(env, t, img, leave_running=True)
    roots = [t.root]
    for _ in range(2):
        r = env.lazarus(*env.restore_args(img, mode, True), "--pidns",
                        log=env.log_path("restore"))
        assert r.rc == 0 and not r.errors, r.describe()
        new = [p for p in copies_of(t.root) if p not in roots]
        assert len(new) == 1, f"copies of {t.root}: {copies_of(t.root)}"
        env.pids.update({new[0], child_of(new[0])})
        roots += new
    assert len({ipc_ns(r) for r in roots}) == 3
    for r in roots:
        assert ipc_ns(child_of(r)) == ipc_ns(r)
        t.segments_ok(r)
        t.check(r)
    t.check(t.root, t.child)  # the original runs on, unharmed


def test_refused_attached_outside(env):
    """A process outside the tree, entered into its IPC namespace, attaches
    the segment no process of the tree attaches: refused by name, the tree
    and the outsider running on."""
    t = Tree(env, "tree")
    idb = t.ids["idb"]
    d = env.path("outsider")
    code = ("import ctypes, time, pathlib\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "libc.shmat.restype = ctypes.c_void_p\n"
            f"a = libc.shmat({idb}, None, 0o10000)\n"
            "assert a not in (None, ctypes.c_void_p(-1).value)\n"
            f"pathlib.Path('{d}/ready').write_text('ok')\n"
            "time.sleep(1000)\n")
    p = subprocess.Popen(["nsenter", "-t", str(t.root), "-i", "/usr/bin/python3", "-c", code],
                         stdin=subprocess.DEVNULL, start_new_session=True)
    env.procs.append(p)
    env.pids.add(p.pid)
    harness.wait_for((d / "ready").exists, harness.READY_TIMEOUT, "the outsider to attach")
    r = env.lazarus("dump", "-t", t.root, "-D", env.path("img"), log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"SysV shm {idb} (key {KEY + 1:#x}) of its IPC namespace is attached 1 times" \
        in r.errors[0] and "outside the tree" in r.errors[0], r.describe()
    assert harness.alive(p.pid)
    for pid in (t.root, t.child):
        harness.assert_not_stopped(pid)
    p.kill()
    p.wait(harness.EXIT_TIMEOUT)
    t.check(t.root, t.child)  # B back to no attachment: the tree's own checks pass


# --- refusals ---

def ipcs_queues(pid):
    """{msqid: (key, perms, used-bytes, messages)} from `nsenter -t PID -i ipcs -q`."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-i", "ipcs", "-q"], capture_output=True,
                         text=True, check=True).stdout
    qs = {}
    for line in out.splitlines():
        w = line.split()
        if len(w) >= 6 and w[0].startswith("0x"):
            qs[int(w[1])] = (int(w[0], 16), int(w[3], 8), int(w[4]), int(w[5]))
    return qs


def test_message_queue_restored(env, mode):
    """A SysV message queue of the namespace (three messages, one empty, a
    msg_qbytes of its own) comes back with its id, key, mode, msg_qbytes and
    messages in order, beside the running original; the original's queue is
    left as it was (MSG_COPY)."""
    t = Tree(env, "tree", pidns=True, extra=["--msg"])
    t.check(t.root, t.child)
    before = ipcs_queues(t.root)
    assert list(before.values()) == [(KEY + 2, 0o640, 10, 3)], before
    img = env.path("img")
    dump(env, t, img, leave_running=True)
    inv = harness.show(img / "inventory.img")["entries"][0]
    (q,) = inv["msg_queues"]
    assert q["key"] == KEY + 2 and q["qbytes"] == 4096 and [m["type"] for m in q["msgs"]] == \
        [7, 3, 7], q
    assert ipcs_queues(t.root) == before
    t.check(t.root, t.child)
    root = restore(env, img, mode, t)
    assert ipc_ns(root) != ipc_ns(t.root)
    assert ipcs_queues(root) == before
    t.segments_ok(root)
    t.check(root)
    t.check(t.root, t.child)


@pytest.mark.parametrize("what,want", [
    ("--sem", "its IPC namespace holds SysV semaphore set "),
    ("--mq", "its IPC namespace holds POSIX message queue /lzipcns"),
])
def test_refused_objects(env, what, want):
    t = Tree(env, "tree", extra=[what])
    r = env.lazarus("dump", "-t", t.root, "-D", env.path("img"), log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"process {t.root}: {want}" in r.errors[0] and "not supported" in r.errors[0], \
        r.describe()
    for pid in (t.root, t.child):
        harness.assert_not_stopped(pid)
    t.check(t.root, t.child)


def test_refused_two_namespaces(env):
    """The root in one IPC namespace, its child in another: refused by name."""
    d = env.path("two")
    p = subprocess.Popen(["unshare", "--ipc", "sh", "-c",
                          "unshare --ipc sleep 1000 & exec sleep 1000"],
                         cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    env.procs.append(p)
    env.pids.add(p.pid)
    harness.wait_for(lambda: harness.my_children() and open(
        f"/proc/{p.pid}/task/{p.pid}/children").read().split() and
        open(f"/proc/{p.pid}/comm").read().strip() == "sleep", harness.READY_TIMEOUT,
        "the two sleeps")
    kid = child_of(p.pid)
    harness.wait_for(lambda: open(f"/proc/{kid}/comm").read().strip() == "sleep",
                     harness.READY_TIMEOUT, "the inner sleep")
    env.pids.add(kid)
    r = env.lazarus("dump", "-t", p.pid, "-D", env.path("img"), log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"process {kid} is in another ipc namespace" in r.errors[0], r.describe()
    for pid in (p.pid, kid):
        harness.assert_not_stopped(pid)


# --- crafted shmem.img ---

def rewrite_entries(imgdir, name, edit):
    """Rewrite every message of a framed image through edit(index, fields)
    and make inventory.img list the new size and checksum."""
    from test_state import reframe
    path = imgdir / name
    data = path.read_bytes()
    hdr = img_header_size(data)
    marker, nr, _, magic = struct.unpack("<IIII", data[-16:])
    off, body = hdr, bytearray(data[:hdr])
    for i in range(nr):
        length, _ = struct.unpack_from("<II", data, off)
        payload = pb_encode(edit(i, pb_fields(data[off + 8:off + 8 + length])))
        body += struct.pack("<II", len(payload), crc32c(payload)) + payload
        off += 8 + length
    tail_crc = crc32c(bytes(body))
    path.write_bytes(bytes(body) + struct.pack("<IIII", marker, nr, tail_crc, magic))
    size = len(body) + 16

    def fix(payload):
        out = []
        for field, wt, v in pb_fields(payload):
            if field == 10 and wt == 2:
                sub = pb_fields(v)
                if any(f == 1 and x == name.encode() for f, _, x in sub):
                    sub = [(f, w, size if f == 2 else tail_crc if f == 3 else x)
                           for f, w, x in sub]
                    v = pb_encode(sub)
            out.append((field, wt, v))
        return pb_encode(out)

    reframe(imgdir / "inventory.img", fix)


def set_field(fields, num, value):
    return [(f, w, value if f == num else v) for f, w, v in fields]


CRAFT = {
    # shmid (8) negative: an int32 varint is sign-extended to 64 bits
    "id-negative": (lambda i, f: set_field(f, 8, (1 << 64) - 5) if i == 0 else f,
                    "SysV shm id out of range"),
    "size-overflow": (lambda i, f: set_field(f, 3, (1 << 64) - 1) if i == 0 else f,
                      "size out of range"),
    "id-twice": (None, "SysV shm id listed twice"),
}


@pytest.mark.parametrize("how", CRAFT)
def test_crafted_shmem_refused(env, how):
    t = Tree(env, "tree")
    img = env.path("img")
    dump(env, t, img)
    edit, want = CRAFT[how]
    if edit is None:
        first = {}

        def edit(i, f):
            ids = {fn: v for fn, _, v in f}
            if i == 0:
                first["id"] = ids[8]
                return f
            return set_field(f, 8, first["id"]) if i == 1 else f
    rewrite_entries(img, "shmem.img", edit)
    before = ns_inits("lzipcns")
    r = env.lazarus(*env.restore_args(img, "eager", True), log=env.log_path("restore"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "shmem.img: object" in r.errors[0] and want in r.errors[0], r.describe()
    for pid in (t.root, t.child):
        assert harness.proc_state(pid) is None, r.describe()
    assert ns_inits("lzipcns") == before and not harness.my_children(), r.describe()


@pytest.mark.parametrize("kind,want", [
    (7, "inventory.img: unknown IPC namespace kind 7"),
    (1, "inventory.img: IPC sysctls without an IPC namespace of its own, or the reverse"),
], ids=["unknown-kind", "own-without-sysctls"])
def test_crafted_inventory_refused(env, kind, want):
    from test_state import tamper, varint
    w = env.lzwork(mib=4)
    img = env.path("img")
    env.dump(w, img)
    tamper(img, "inventory.img", varint(70 << 3) + varint(kind))
    r = env.restore(img, "eager", expect_ok=False)
    assert r.rc != 0 and r.errors == [f"lazarus: Error: restore: {want}"], r.describe()
    assert harness.proc_state(w.pid) is None


def edit_queue(payload, edit):
    """inventory_entry with edit(queue fields) applied to its first msg_queues (72)."""
    out, done = [], False
    for f, w, v in pb_fields(payload):
        if f == 72 and w == 2 and not done:
            v, done = pb_encode(edit(pb_fields(v))), True
        out.append((f, w, v))
    return pb_encode(out)


def first_msg_type(fields, value):
    out, done = [], False
    for f, w, v in fields:
        if f == 9 and w == 2 and not done:
            v, done = pb_encode(set_field(pb_fields(v), 1, value)), True
        out.append((f, w, v))
    return out


@pytest.mark.parametrize("edit,want", [
    (lambda q: first_msg_type(q, 0), "a message of type 0 or less"),
    (lambda q: set_field(q, 8, 4), "more bytes than its msg_qbytes"),
    (lambda q: set_field(q, 2, (1 << 64) - 3), "id out of range"),
], ids=["type-0", "over-qbytes", "id-negative"])
def test_crafted_message_queue_refused(env, edit, want):
    from test_state import reframe
    t = Tree(env, "tree", extra=["--msg"])
    img = env.path("img")
    dump(env, t, img)
    n = int(subprocess.run([str(harness.LAZARUS), "show", str(img / "inventory.img")],
                             capture_output=True, text=True).stdout.count("msg_queues"))
    assert n == 1, "one queue dumped"
    reframe(img / "inventory.img", lambda p: edit_queue(p, edit))
    r = env.lazarus(*env.restore_args(img, "eager", True), log=env.log_path("restore"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "inventory.img: SysV message queue " in r.errors[0] and want in r.errors[0], \
        r.describe()
    assert harness.proc_state(t.root) is None and not harness.my_children(), r.describe()
