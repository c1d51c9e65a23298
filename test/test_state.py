"""Task, thread and mm state of Documentation/state.md: what restore brings
back exactly, and what dump refuses with one line while the target runs on.

lzstate (test/workloads/lzstate.c) sets nice, policy, affinity, timer slack,
oom_score_adj, loginuid, membarrier registrations, madvise/MAP_NORESERVE
regions and a read-only shared mapping of a writable file; the test puts it
in a cgroup of its own; it records all that and, after the restore, checks
itself against the record. The refused items are set up by small Python
targets (PYTARGET below).
"""
import os
import signal
import struct
import subprocess
import time

import pytest

import harness

ERR = harness.ERROR_PREFIX


class LzState(harness.Workload):
    kind = "lzstate"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def progress_file(self):
        return "result"

    def record(self):
        """SIGUSR2: the workload records its state now; return it as a dict."""
        rec = self.dir / "recorded"
        try:
            rec.unlink()
        except FileNotFoundError:
            pass
        os.kill(self.pid, signal.SIGUSR2)
        harness.wait_for(rec.exists, harness.CHECK_TIMEOUT, f"lzstate {self.pid} to record",
                         self.diag)
        return dict(line.partition("=")[::2] for line in rec.read_text().splitlines()[1:])


def spawn_state(env, policy="batch", name="st"):
    d = env.base / name
    return env.spawn(LzState, [harness.WORKLOADS / "lzstate", "--dir", d, "--policy", policy],
                     d)


# --- cgroups ---

def cgroup2_mount():
    """Where the cgroup2 hierarchy is mounted from its root, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if right.split()[:1] == ["cgroup2"] and fields[3] == "/":
                return fields[4]
    return None


class Cgroup:
    def __init__(self, mount, name):
        self.mount, self.name = mount, name
        self.path = os.path.join(mount, name)

    def add(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def remove(self):
        """rmdir, once every process of it is gone (killed and reaped by env)."""
        def empty():
            try:
                with open(os.path.join(self.path, "cgroup.procs")) as f:
                    return not f.read().strip()
            except FileNotFoundError:
                return True
        harness.wait_for(empty, harness.EXIT_TIMEOUT, f"cgroup {self.path} to empty")
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass


@pytest.fixture
def cgroup():
    """A fresh cgroup2 cgroup. Ask for it before `env`, so that env's teardown
    (which kills the processes) runs first."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    cg = Cgroup(mount, f"lzt-state-{os.getpid()}-{time.monotonic_ns()}")
    os.mkdir(cg.path)
    yield cg
    cg.remove()


# --- restored exactly ---

@pytest.mark.parametrize("policy", ["batch", "idle", "fifo"])
def test_state_restored(cgroup, env, mode, policy):
    w = spawn_state(env, policy)
    cgroup.add(w.pid)
    rec = w.record()
    # What the workload set really took: else the comparison proves nothing.
    assert rec["nice"] == "10" and rec["oom_score_adj"] == "400" and rec["loginuid"] == "3", rec
    assert rec["policy"] == {"batch": "3", "idle": "5", "fifo": "1"}[policy], rec
    assert rec["reset_on_fork"] == ("1" if policy == "fifo" else "0"), rec
    assert rec["cgroup"].endswith(f";0::/{cgroup.name}"), rec["cgroup"]
    assert int(rec["membarrier"]) & 16 and int(rec["membarrier"]) & 64, rec  # private (+sync core)
    assert "dd" in rec["dontdump"].split(","), rec
    assert "nr" in rec["noreserve"].split(",") and "ac" not in rec["noreserve"].split(","), rec
    assert {"dc", "wf"} <= set(rec["dontfork"].split(",")), rec
    assert "mw" in rec["shared"].split(","), rec
    assert rec["coredump_filter"] == "00000007" and rec["tsc"] == "2" and rec["mce_kill"] == "1", \
        rec
    w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    r = w.check()
    assert r["verdict"] == "PASS", f"restored state differs: {r['line']}\n{w.diag()}"
    with open(f"/proc/{w.pid}/cgroup") as f:
        assert f"0::/{cgroup.name}\n" in f.read()
    w.check_pass()  # twice: the shared mapping went writable and back
    w.stop()


# --- restore refuses to restore something else ---

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def zigzag_varint(field, value):
    """A protobuf varint field of type sint32."""
    v = (value << 1) ^ (value >> 31)
    out = bytearray()
    for x in ((field << 3) | 0, v & 0xFFFFFFFF):
        while True:
            b = x & 0x7F
            x >>= 7
            out.append(b | (0x80 if x else 0))
            if not x:
                break
    return bytes(out)


def varint(x):
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        out.append(b | (0x80 if x else 0))
        if not x:
            return bytes(out)


def read_varint(data, off):
    x = shift = 0
    while True:
        b = data[off]
        off += 1
        x |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return x, off


def pb_fields(data):
    """[(field, wire type, value)]: an int for varints, bytes otherwise."""
    out, off = [], 0
    while off < len(data):
        key, off = read_varint(data, off)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, off = read_varint(data, off)
        elif wt == 2:
            n, off = read_varint(data, off)
            v, off = bytes(data[off:off + n]), off + n
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            v, off = bytes(data[off:off + n]), off + n
        else:
            raise ValueError(f"wire type {wt}")
        out.append((field, wt, v))
    return out


def pb_encode(fields):
    out = bytearray()
    for field, wt, v in fields:
        out += varint((field << 3) | wt)
        if wt == 0:
            out += varint(v)
        elif wt == 2:
            out += varint(len(v)) + v
        else:
            out += v
    return bytes(out)


def img_header_size(data):
    """16 bytes in format 1, 32 (with the dump id) from format 2 on (images/image.h)."""
    return 16 if struct.unpack_from("<H", data, 4)[0] < 2 else 32


def reframe(path, payload_of):
    """Rewrite the one message of a framed image through payload_of(payload),
    keeping the framing valid (images/image.h); return (size, tail crc)."""
    data = path.read_bytes()
    hdr = img_header_size(data)
    marker, nr, _, magic = struct.unpack("<IIII", data[-16:])
    assert marker == 0xFFFFFFFF and nr == 1, path
    length, _ = struct.unpack_from("<II", data, hdr)
    payload = payload_of(data[hdr + 8:hdr + 8 + length])
    body = data[:hdr] + struct.pack("<II", len(payload), crc32c(payload)) + payload
    tail_crc = crc32c(body)
    path.write_bytes(body + struct.pack("<IIII", marker, nr, tail_crc, magic))
    return len(body) + 16, tail_crc


def tamper(imgdir, name, extra):
    """Append `extra` to the message of image `name` (for a scalar field the
    last one wins) and, from format 2 on, make inventory.img list the new
    size and checksum: a crafted image as an attacker would write it."""
    size, crc = reframe(imgdir / name, lambda p: p + extra)

    def fix_inventory(payload):
        out = []
        for field, wt, v in pb_fields(payload):
            if field == 10 and wt == 2:  # image_file {name 1, size 2, crc 3}
                sub = pb_fields(v)
                if any(f == 1 and x == name.encode() for f, _, x in sub):
                    sub = [(f, w, size if f == 2 else crc if f == 3 else x) for f, w, x in sub]
                    v = pb_encode(sub)
            out.append((field, wt, v))
        return pb_encode(out)

    inv = imgdir / "inventory.img"
    if img_header_size(inv.read_bytes()) == 32:
        reframe(inv, fix_inventory)


def test_oom_score_adj_below_floor(env, mode):
    """An oom_score_adj lower than restore may set without CAP_SYS_RESOURCE
    fails the restore with one line; it is never restored as another value."""
    p = subprocess.run(["sh", "-c", "echo -100 > /proc/self/oom_score_adj"],
                       capture_output=True)
    if p.returncode == 0:
        pytest.skip("restore may lower oom_score_adj here (CAP_SYS_RESOURCE)")
    with open("/proc/self/oom_score_adj") as f:
        own = int(f.read())
    w = spawn_state(env)
    img = env.path("img")
    env.dump(w, img)
    tamper(img, f"task-{w.pid}.img", zigzag_varint(20, own - 100))
    task = harness.show(img / f"task-{w.pid}.img")["entries"][0]
    assert task["oom_score_adj"] == own - 100, task
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc == 1 and r.errors == [
        f"{ERR}restore: oom_score_adj {own - 100} cannot be set without CAP_SYS_RESOURCE "
        f"(restore's is {own})"], r.describe()
    assert harness.proc_state(w.pid) is None


def test_cgroup_gone_at_restore(cgroup, env, mode):
    w = spawn_state(env)
    cgroup.add(w.pid)
    img = env.path("img")
    env.dump(w, img)
    cgroup.remove()
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc == 1 and r.errors == [
        f"{ERR}restore: cgroup /{cgroup.name} (hierarchy 0:): does not exist"], r.describe()
    assert harness.proc_state(w.pid) is None


@pytest.mark.parametrize("what", ["open", "mapped"])
def test_fifo_in_place_at_restore(env, mode, what):
    """A FIFO where a dumped file was is refused before anything is created,
    without blocking on it."""
    w = spawn_state(env)
    img = env.path("img")
    env.dump(w, img)
    path = w.dir / ("out" if what == "open" else "shared")
    path.unlink()
    os.mkfifo(path)
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    head = f"{ERR}restore: {path}: a FIFO, dumped as a regular file "
    if what == "open":
        assert r.errors[0] == head + f"(process {w.pid}, fd 1)", r.describe()
    else:
        assert r.errors[0].startswith(head + "(mapped at 0x"), r.describe()
    assert harness.proc_state(w.pid) is None


# --- refused at dump ---

# A Python target: sets up one thing the dump must refuse, writes
# DIR/ready "pid=P fd=N extra=..." (or "skip=why") and sleeps.
PYTARGET = r'''
import ctypes, ctypes.util, fcntl, os, struct, sys, time
what, d = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
info = {"pid": os.getpid(), "fd": -1}

def sched_setattr(policy, flags, runtime=0, deadline=0, period=0, umin=0, umax=1024):
    attr = struct.pack("<IIQiIQQQII", 56, policy, flags, 0, 0, runtime, deadline, period,
                       umin, umax)
    buf = ctypes.create_string_buffer(attr)
    if libc.syscall(314, 0, buf, 0) != 0:  # SYS_sched_setattr
        raise OSError(ctypes.get_errno(), "sched_setattr")

try:
    if what == "timer":  # on the CPU-time clock of pid 1 (clock_getcpuclockid)
        tid = ctypes.c_long()
        if libc.timer_create(ctypes.c_int((~1 << 3) | 2), None, ctypes.byref(tid)):
            raise OSError(ctypes.get_errno(), "timer_create")
    elif what == "timer-thread":  # on this thread's CPU time, with a second thread
        import threading
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
        tid = ctypes.c_long()
        if libc.timer_create(3, None, ctypes.byref(tid)):  # CLOCK_THREAD_CPUTIME_ID
            raise OSError(ctypes.get_errno(), "timer_create")
    elif what == "posix_mapped":
        import mmap
        path = os.path.join(d, "locked")
        f = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(f, 4096)
        fcntl.lockf(f, fcntl.LOCK_EX)
        m = mmap.mmap(f, 4096)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        info["fd"], info["path"], info["addr"] = f, path, hex(addr)
    elif what == "lease":
        f = os.open(os.path.join(d, "locked"), os.O_RDWR | os.O_CREAT, 0o600)
        info["fd"] = f
        os.close(f)
        f = os.open(os.path.join(d, "locked"), os.O_RDONLY)
        info["fd"] = f
        fcntl.fcntl(f, 1024, fcntl.F_RDLCK)  # F_SETLEASE
    elif what == "pidns":
        if libc.unshare(0x20000000):  # CLONE_NEWPID: for the children to come
            raise OSError(ctypes.get_errno(), "unshare")
    elif what == "async_owner":
        path = "/dev/urandom"  # a device with fasync (a regular file has none)
        f = os.open(path, os.O_RDONLY)
        fcntl.fcntl(f, fcntl.F_SETOWN, os.getppid())  # not a process of the dumped tree
        fcntl.fcntl(f, fcntl.F_SETFL, os.O_ASYNC)
        info["fd"], info["path"], info["owner"] = f, path, os.getppid()
    elif what == "kmsg":  # per-open state (its read position); a pty master is dumped (test_pty.py)
        info["fd"] = os.open("/dev/kmsg", os.O_RDONLY)
    elif what == "fifo":
        path = os.path.join(d, "fifo")
        os.mkfifo(path)
        info["fd"] = os.open(path, os.O_RDWR)
        os.unlink(path)  # a FIFO by path is dumped (test_pipes.py); a deleted one is not
        info["path"] = path
    elif what == "session":
        child = os.fork()
        if child == 0:  # the target: in its parent's session
            while True:
                time.sleep(1)
        info["target"] = child
    elif what == "autogroup":
        with open("/proc/self/autogroup", "w") as f:
            f.write("5")
    elif what == "numa":
        mask = ctypes.c_ulong(1)
        if libc.syscall(238, 2, ctypes.byref(mask), 64):  # set_mempolicy(MPOL_BIND, node 0)
            raise OSError(ctypes.get_errno(), "set_mempolicy")
    elif what == "speculation":
        if libc.prctl(53, 0, 4, 0, 0):  # PR_SET_SPECULATION_CTRL, STORE_BYPASS, DISABLE
            raise OSError(ctypes.get_errno(), "PR_SET_SPECULATION_CTRL")
    elif what == "mdwe":
        if libc.prctl(65, 1, 0, 0, 0):  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
            raise OSError(ctypes.get_errno(), "PR_SET_MDWE")
    elif what == "deadline":
        sched_setattr(6, 0, runtime=1000000, deadline=100000000, period=100000000)
    elif what == "uclamp":
        sched_setattr(0, 0x08 | 0x10 | 0x20, umin=100)  # KEEP_POLICY|KEEP_PARAMS|UTIL_CLAMP_MIN
except OSError as e:
    info = {"pid": os.getpid(), "skip": f"{what}: {e}".replace(" ", "_")}
text = " ".join(f"{k}={v}" for k, v in info.items())
with open(os.path.join(d, "ready.tmp"), "w") as f:
    f.write(text + "\n")
os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
while True:
    time.sleep(1)
'''


class PyTarget(harness.Workload):
    kind = "pytarget"


def ns_link(pid, ns):
    return os.readlink(f"/proc/{pid}/ns/{ns}")


REFUSED = {
    "timer": "process {pid}: POSIX timer 0 counts the CPU time of another process (clock -14): "
             "not supported yet",
    "timer-thread": "process {pid}: POSIX timer 0 counts the CPU time of the thread that "
                    "created it (clock -2): not supported yet",
    "lease": "process {pid} fd {fd} holds a file lease (LEASE ACTIVE READ): not supported yet",
    "netns": "process {pid} is in another net namespace ({theirs}, lazarus is in {ours}): "
             "namespaces are not supported yet",
    "pidns": "process {pid} is in another pid_for_children namespace ({theirs}, lazarus is in "
             "{ours}): namespaces are not supported yet",
    "fifo": "process {pid} fd {fd}: deleted FIFO ({path} (deleted)): not supported yet",
    "kmsg": "process {pid} fd {fd}: character device 1:11 (/dev/kmsg): not supported yet",
    "async_owner": "process {pid} fd {fd}: its signal-driven I/O owner process {owner} is not a "
                   "process of the dumped tree: not supported",
    "session": "process {pid} is in session {sid} of another process: not supported yet "
               "(start it with setsid, or dump it with --shell-job)",
    "autogroup": "process {pid}: its autogroup has nice 5: not supported yet",
    "numa": "process {pid}: NUMA memory policy bind:0 at {first_vma}: not supported yet",
    "speculation": "process {pid}: Speculation_Store_Bypass is \"{theirs}\" (lazarus has "
                   "\"{ours}\"): not supported yet",
    "mdwe": "process {pid} denies write+execute mappings (PR_SET_MDWE 0x1): not supported yet",
    "deadline": "process {pid}: thread {pid} runs under SCHED_DEADLINE: not supported yet",
    "uclamp": "process {pid}: thread {pid} has a utilization clamp (util_min 100, util_max 1024): "
              "not supported yet",
}


def posix_locks_of(pid, path):
    """(type, start, end) of every POSIX lock PID holds on PATH (/proc/locks)."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as f:
        return sorted((w[3], w[6], w[7]) for w in map(str.split, f)
                      if w[1] == "POSIX" and int(w[4]) == pid and int(w[5].split(":")[2]) == ino)


def outside_lock_refused(path):
    """Another process's attempt at a write lock on PATH fails (EAGAIN)."""
    code = ("import fcntl, os, sys\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
            "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            "except OSError:\n    sys.exit(3)\n")
    return subprocess.run([harness.PYTHON, "-c", code], timeout=60).returncode == 3


def test_posix_lock_on_mapped_file(env, mode):
    """A POSIX lock on a file its process also maps (what sqlite does with
    its -shm file; test_sqlite.py has the real thing): restore maps the file
    from a service fd whose close would drop the lock, so the restorer takes
    the lock after closing those fds. The same lock is held by the same pid
    after restore, another process cannot take it, the mapping is shared
    with the file again."""
    d = env.base / "posix_mapped"
    w = env.spawn(PyTarget, [harness.PYTHON, "-c", PYTARGET, "posix_mapped", d], d)
    path = w.ready["path"]
    locks = posix_locks_of(w.pid, path)
    assert locks == [("WRITE", "0", "EOF")], locks
    img = env.path("img")
    env.dump(w, img)
    assert outside_lock_refused(path) is False, "the lock outlived the dumped process"
    w = env.restore(img, mode, w)
    assert posix_locks_of(w.pid, path) == locks
    assert outside_lock_refused(path), "the restored lock does not hold"
    with open(f"/proc/{w.pid}/maps") as f:
        maps = [line.split() for line in f]
    assert any(m[-1] == path and m[0].startswith(w.ready["addr"][2:]) and m[1][3] == "s"
               for m in maps), maps


def test_posix_lock_taken_since_dump(env):
    """Someone else took the POSIX lock of a mapped, locked file between dump
    and restore: refused with one line naming the file, before the restorer
    runs, nothing left."""
    d = env.base / "posix_mapped"
    w = env.spawn(PyTarget, [harness.PYTHON, "-c", PYTARGET, "posix_mapped", d], d)
    img = env.path("img")
    env.dump(w, img)
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({w.ready['path']!r}, os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nprint('locked', flush=True)\n"
            "time.sleep(600)\n")
    holder = subprocess.Popen([harness.PYTHON, "-c", code], stdout=subprocess.PIPE, text=True)
    env.procs.append(holder)
    env.pids.add(holder.pid)
    assert holder.stdout.readline().strip() == "locked"
    files = harness.file_entries(img)
    fid = next(f["id"] for f in files if f.get("path") == w.ready["path"])
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc == 1 and r.errors == [
        f"{ERR}restore: file {fid}: its POSIX write lock (from 0, 0 bytes) is held by someone "
        f"else now"], r.describe()
    assert harness.proc_state(w.pid) is None


def test_posix_lock_step_fails(env, monkeypatch):
    """The restorer failing to take the lock (LAZARUS_FAULT_BLOB=lock): one
    line, the process gone, and with it the lock (another process takes it)."""
    d = env.base / "posix_mapped"
    w = env.spawn(PyTarget, [harness.PYTHON, "-c", PYTARGET, "posix_mapped", d], d)
    img = env.path("img")
    env.dump(w, img)
    monkeypatch.setenv("LAZARUS_FAULT_BLOB", "lock")
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc == 1 and len(r.errors) == 1 and "take the POSIX lock" in r.errors[0] and \
        "LAZARUS_FAULT_BLOB" in r.errors[0], r.describe()
    assert harness.proc_state(w.pid) is None
    assert outside_lock_refused(w.ready["path"]) is False


@pytest.mark.parametrize("what", list(REFUSED))
def test_dump_refused(env, what):
    """Refused with one line in the checks phase: no image written, the
    target left running, not stopped, not traced."""
    d = env.base / what
    argv = [harness.PYTHON, "-c", PYTARGET, what, d]
    if what == "netns":
        argv = ["unshare", "--net"] + argv
    w = env.spawn(PyTarget, argv, d)
    if "skip" in w.ready:
        pytest.skip(f"this kernel or machine does not allow it: {w.ready['skip']}")
    fmt = dict(w.ready)
    target = int(w.ready.get("target", w.pid))
    fmt["pid"] = target
    if what == "session":
        fmt["sid"] = w.pid
    if what == "numa":
        with open(f"/proc/{w.pid}/maps") as f:
            fmt["first_vma"] = f.readline().split("-")[0].lstrip("0")
    if what == "speculation":
        fmt["theirs"] = harness.task_status(w.pid)[w.pid]["Speculation_Store_Bypass"]
        fmt["ours"] = harness.task_status(os.getpid())[os.getpid()]["Speculation_Store_Bypass"]
    if what in ("netns", "pidns"):
        ns = "net" if what == "netns" else "pid_for_children"
        fmt["ours"] = ns_link(os.getpid(), ns)
        # A new pid namespace has no link until its first process exists.
        fmt["theirs"] = ns_link(w.pid, ns) if what == "netns" else "one with no process yet"
    img = env.path("img")
    r = env.lazarus("dump", "-t", target, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1 and r.errors == [ERR + "dump: " + REFUSED[what].format(**fmt)], \
        r.describe()
    assert not [p.name for p in img.iterdir() if p.suffix == ".img"], list(img.iterdir())
    assert harness.alive(target)
    harness.assert_not_stopped(target, what)
    if target != w.pid:
        os.kill(target, signal.SIGKILL)
    os.kill(w.pid, signal.SIGKILL)
    w.proc.wait(harness.EXIT_TIMEOUT)


def test_rlimit_above_restore_hard_limit(env, mode):
    """A hard limit restore cannot raise (no CAP_SYS_RESOURCE) fails the
    restore with one line instead of coming back lower."""
    w = spawn_state(env)
    with open(f"/proc/{w.pid}/limits") as f:
        hard = next(line.split()[4] for line in f if line.startswith("Max open files"))
    low = int(hard) // 2
    img = env.path("img")
    env.dump(w, img)
    argv = ["prlimit", f"--nofile={low}:{low}"] + \
        [str(harness.LAZARUS)] + [str(a) for a in env.restore_args(img, mode, True)]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=harness.LAZARUS_TIMEOUT)
    env.pids.add(w.pid)
    assert p.returncode == 1 and harness.error_lines(p.stderr) == [
        f"{ERR}restore: RLIMIT_NOFILE hard limit {hard} cannot be set without CAP_SYS_RESOURCE "
        f"(restore's is {low})"], p.stderr
    assert harness.proc_state(w.pid) is None
