"""Shared memory (issue 7 items 3, 7): each object comes back as ONE object
shared by the same processes.

lzshm (a parent and its child) shares a MAP_SHARED|MAP_ANONYMOUS region, a
memfd mapping (and a private copy-on-write mapping of the same memfd), a
SysV segment (split into three VMAs in the child by mprotect) and a SysV
segment marked for deletion while attached. After a restore, eager and
lazy, each process checks its patterns and that the OTHER process's
counter, written after the restore, moves in every object (lzshm.c): two
copies would pass every content check but that one. The SysV ids and key
are the dumped ones (/proc/sysvipc/shm and the workload's own IPC_STAT).
"""
import os
import shutil
import signal

import pytest

import harness
from test_tree import restore_tree

MODES = ["eager", "lazy"]


class LzShm(harness.Workload):
    kind = "lzshm"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def child(self):
        c = LzShm(self.env, self.dir / "child", int(self.ready["child"]))
        c.ready = {"pid": str(c.pid)}
        return c

    def restored(self):
        w = type(self)(self.env, self.dir, self.pid)
        w.ready = self.ready
        return w


def sysv_segments():
    """{shmid: (key, perms, size, nattch, uid, gid)} from /proc/sysvipc/shm."""
    out = {}
    with open("/proc/sysvipc/shm") as f:
        next(f)
        for line in f:
            w = line.split()
            out[int(w[1])] = (int(w[0]), int(w[2], 8), int(w[3]), int(w[6]), int(w[7]),
                              int(w[8]))
    return out


@pytest.fixture
def segments():
    """SysV segments made by the test (by id): removed at teardown."""
    ids = set()
    yield ids
    for i in ids:
        os.system(f"ipcrm -m {i} >/dev/null 2>&1")


def spawn(env, segments, name="shm", mib=4):
    d = env.base / name
    w = env.spawn(LzShm, [harness.WORKLOADS / "lzshm", "--dir", d, "--mib", mib], d)
    segments.update({int(w.ready["shmid"])})
    harness.wait_for(lambda: (d / "child" / "ready").exists(), harness.READY_TIMEOUT,
                     "lzshm's child", w.diag)
    env.pids.add(int(w.ready["child"]))
    return w


def check_both(w):
    w.check_pass()
    w.child().check_pass()


def dump(env, w, img):
    """Dump the pair; the SysV segment outlives it (the dump kills the processes)."""
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    w.proc.wait(harness.EXIT_TIMEOUT)
    harness.reap(int(w.ready["child"]))
    return r


def remove_segment(shmid):
    """The segment the dumped pair left behind: its id and key must be free again."""
    assert os.system(f"ipcrm -m {shmid}") == 0


@pytest.mark.parametrize("detach", [True, False], ids=["d", "wait"])
@pytest.mark.parametrize("mode", MODES)
def test_shm_restored(env, segments, mode, detach):
    w = spawn(env, segments)
    check_both(w)
    key, shmid, rmid = int(w.ready["key"]), int(w.ready["shmid"]), int(w.ready["rmid"])
    before = sysv_segments()
    assert before[shmid][0] == key and before[shmid][3] == 4  # 1 + 3 VMAs in the child
    assert before[rmid][1] & 0o1000 and before[rmid][3] == 2
    img = env.path("img")
    dump(env, w, img)
    assert rmid not in sysv_segments(), "the removed segment went with its processes"
    remove_segment(shmid)

    pids = {"pid": w.pid, "child": int(w.ready["child"])}
    p, log = restore_tree(env, img, mode, detach, pids)
    after = sysv_segments()
    assert after[shmid] == before[shmid], harness.tail(log)
    assert after[rmid][1] & 0o1000 and after[rmid][2:4] == before[rmid][2:4], \
        "the removed segment is back, removed, attached twice"
    r = w.restored()
    check_both(r)
    check_both(r)  # twice: still one object after the first round of writes
    if not detach:
        os.kill(w.pid, signal.SIGTERM)
        assert p.wait(harness.EXIT_TIMEOUT) == 0, harness.tail(log)
        assert shmid not in sysv_segments()


# --- bad input and refusals ---

@pytest.fixture(scope="module")
def shm_dump(tmp_path_factory):
    """One dump of lzshm for the corruption cases; its segment removed after."""
    base = tmp_path_factory.mktemp("shmdump")
    env = harness.Env(base)
    ids = set()
    try:
        w = spawn(env, ids)
        img = env.path("img")
        dump(env, w, img)
        for i in ids:
            remove_segment(i)
        ids.clear()
        yield {"img": img, "w": w, "pids": [w.pid, int(w.ready["child"])]}
    finally:
        env.cleanup()
        for i in ids:
            os.system(f"ipcrm -m {i} >/dev/null 2>&1")


def shm_files(img):
    return sorted(p.name for p in img.iterdir() if p.name.startswith(("shmem", "pages-shmem")))


def test_dump_writes_each_object_once(shm_dump):
    """Five objects (the sealed memfd held only as an fd is one too): shmem.img
    and one pages file each, whatever maps or holds them."""
    assert shm_files(shm_dump["img"]) == ["pages-shmem-1.img", "pages-shmem-2.img",
                                          "pages-shmem-3.img", "pages-shmem-4.img",
                                          "pages-shmem-5.img", "shmem.img"]


CORRUPT = {
    "truncate-half": lambda p: os.truncate(p, p.stat().st_size // 2),
    "truncate-1": lambda p: os.truncate(p, p.stat().st_size - 1),
    "flip-last-page": lambda p: flip(p, p.stat().st_size - 100),
    "flip-middle": lambda p: flip(p, p.stat().st_size // 2),
    "delete": lambda p: p.unlink(),
}


def flip(p, off):
    data = bytearray(p.read_bytes())
    data[off] ^= 0xFF
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("how", CORRUPT)
@pytest.mark.parametrize("name", ["shmem.img", "pages-shmem-2.img", "pages-shmem-4.img"])
@pytest.mark.parametrize("mode", MODES)
def test_bad_shmem_image(shm_dump, env, segments, mode, name, how):
    """Refused before anything is made: one line naming the file, no process,
    no SysV segment left behind (lazy too: shared memory is checked whole)."""
    img = env.base / "img"
    shutil.copytree(shm_dump["img"], img)
    CORRUPT[how](img / name)
    before = set(sysv_segments())
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    assert r.rc != 0, f"restore accepted {name} after {how}\n{r.describe()}"
    assert len(r.errors) == 1 and name in r.errors[0], r.describe()
    for pid in shm_dump["pids"]:
        assert harness.proc_state(pid) is None, r.describe()
    assert set(sysv_segments()) == before, "a SysV segment was made for nothing"
    assert not harness.my_children(), r.describe()


@pytest.mark.parametrize("what", ["id", "key"])
def test_sysv_taken_refused(shm_dump, env, segments, what):
    """The dumped segment id, or its key, is in use in this IPC namespace:
    refused by name, nothing runs, the other segment untouched."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    key = int(shm_dump["w"].ready["key"])
    shmid = int(shm_dump["w"].ready["shmid"])
    if what == "id":
        with open("/proc/sys/kernel/shm_next_id", "w") as f:
            f.write(str(shmid))
        i = libc.shmget(0, 4096, 0o1600)  # IPC_PRIVATE
        assert i == shmid
    else:
        i = libc.shmget(key, 4096, 0o1600)
        assert i >= 0
    segments.add(i)
    r = env.lazarus(*env.restore_args(shm_dump["img"], "eager", True),
                    log=env.log_path("restore"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"SysV shm {what} " in r.errors[0] and "is taken in this IPC namespace" in r.errors[0], \
        r.describe()
    for pid in shm_dump["pids"]:
        assert harness.proc_state(pid) is None, r.describe()
    assert i in sysv_segments(), "the segment in the way is left alone"


def test_sysv_attached_outside_refused(env, segments):
    """A segment attached by a process outside the tree cannot be dumped
    whole: refused by name, both processes run on untraced."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    w = spawn(env, segments, mib=1)
    shmid = int(w.ready["shmid"])
    addr = libc.shmat(shmid, None, 0o10000)  # SHM_RDONLY
    assert addr not in (None, ctypes.c_void_p(-1).value)
    try:
        r = env.lazarus("dump", "-t", w.pid, "-D", env.path("img"), log=env.log_path("dump"))
    finally:
        libc.shmdt(ctypes.c_void_p(addr))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"SysV shm {shmid} at" in r.errors[0] and "outside the tree" in r.errors[0], \
        r.describe()
    for pid in (w.pid, int(w.ready["child"])):
        harness.assert_not_stopped(pid)
    check_both(w)


# --- lazy shared memory and daemon death ---

def lazy_objects_line(log, obj):
    """The daemon's last word on object OBJ: {'fault': F, 'fill': B, 'zero': Z, 'there': T}."""
    for line in reversed(log.splitlines()):
        if f"shared memory object {obj}: every page in place (" in line:
            w = line.split("every page in place (")[1].replace(",", "").split()
            return {"fault": int(w[0]), "fill": int(w[3]), "zero": int(w[6]),
                    "there": int(w[8])}
    return None


ANON_OBJ = 4  # lzshm: rmseg 1, sysv 2, mfd 3, anon 4, sealed 5 (first seen in the parent's maps)


def lazy_shm_dump(env, segments, mib):
    w = spawn(env, segments, mib=mib)
    check_both(w)
    img = env.path("img")
    dump(env, w, img)
    remove_segment(int(w.ready["shmid"]))
    return w, img, {"pid": w.pid, "child": int(w.ready["child"])}


def test_lazy_shm_faults_served_by_object(env, segments):
    """The shared anonymous region is served lazily (the memfd, mapped private
    too, and the SysV segments are eager): with a slow fill both processes
    fault on it, each page is copied once for both (the daemon's object
    line), and each sees the other's writes."""
    from test_lazy import Daemon, SLOW_US
    w, img, pids = lazy_shm_dump(env, segments, mib=16)
    d = Daemon(env, img, delay_us=SLOW_US)
    restore_tree(env, img, "lazy", True, pids)
    r = w.restored()
    check_both(r)  # every page touched in both: faults while the fill crawls
    assert d.wait() == 0, d.describe()
    got = lazy_objects_line(d.log_text(), ANON_OBJ)
    assert got, d.describe()
    assert got["fault"] > 0, got
    data = (16 << 20) // 4096 * 15 // 16 + 1  # every 16th page was left zero
    assert got["fault"] + got["fill"] + got["there"] == data, got
    from test_lazy import stats
    objs = stats(img)["shmem_objects"]
    assert [o["id"] for o in objs] == [ANON_OBJ], objs
    assert objs[0]["state"] == "done" and objs[0]["pages_data"] == data, objs
    assert objs[0]["pages_fault"] == got["fault"] and objs[0]["faults"] > 0, objs
    check_both(r)


def test_lazy_shm_daemon_killed_then_resumed(env, segments):
    """The daemon is SIGKILLed while it fills the shared object; both
    processes then check themselves (their faults wait) until `lazy-pages
    --resume` takes over, rebuilds the object's map from the object itself
    and serves the rest: every byte right, the two still share it."""
    from test_lazy import Daemon, SLOW_US, GUARDIAN_LINGER_S
    w, img, pids = lazy_shm_dump(env, segments, mib=32)
    d = Daemon(env, img, "--guardian-timeout", GUARDIAN_LINGER_S, delay_us=SLOW_US)
    restore_tree(env, img, "lazy", True, pids)
    harness.wait_for(lambda: "shared memory object 4" in d.log_text(), harness.CHECK_TIMEOUT,
                     "the daemon to take the shared object", d.describe)
    import time
    time.sleep(0.5)  # part of it filled, most not (32 MiB at 64 KiB per 5 ms)
    d.sigkill()
    r = w.restored()
    res = Daemon(env, img, "--resume", what="resume")
    check_both(r)
    assert res.wait() == 0, res.describe()
    got = lazy_objects_line(res.log_text(), ANON_OBJ)
    assert got and got["there"] > 0 and got["fault"] + got["fill"] > 0, (got, res.describe())
    check_both(r)


def test_lazy_shm_daemon_killed_no_resume(env, segments):
    """The daemon is SIGKILLed while it fills the shared object and nobody
    resumes: the processes' faults on it wait, then the guardian poisons
    what is missing and kills both; neither ever reports wrong memory."""
    from test_lazy import Daemon, SLOW_US
    w, img, pids = lazy_shm_dump(env, segments, mib=32)
    d = Daemon(env, img, "--guardian-timeout", 2, delay_us=SLOW_US)
    gpid = d.guardian_pid()
    env.pids.add(gpid)
    restore_tree(env, img, "lazy", True, pids)
    harness.wait_for(lambda: "shared memory object 4" in d.log_text(), harness.CHECK_TIMEOUT,
                     "the daemon to take the shared object", d.describe)
    d.sigkill()
    r = w.restored()
    for x in (r, r.child()):
        for f in ("result",):
            try:
                (x.dir / f).unlink()
            except FileNotFoundError:
                pass
        os.kill(x.pid, signal.SIGUSR1)  # check: touches every page, waits in faults
    for x in (r, r.child()):
        st = harness.reap(x.pid, harness.CHECK_TIMEOUT) if x.pid == w.pid else None
        if st is None:
            harness.wait_for(lambda: harness.proc_state(x.pid) in (None, "Z"),
                             harness.CHECK_TIMEOUT, f"pid {x.pid} to be killed", d.describe)
            st = harness.reap(x.pid, harness.CHECK_TIMEOUT)
        res = x.dir / "result"
        assert not res.exists() or res.read_text().startswith("PASS"), res.read_text()
        # SIGBUS on a poisoned page; SIGSEGV when the poisoned page is where
        # the SIGBUS frame would go (a stack page not in place yet).
        assert st is None or (os.WIFSIGNALED(st) and os.WTERMSIG(st) in
                              (signal.SIGKILL, signal.SIGBUS, signal.SIGSEGV)), st
    harness.reap(gpid, harness.CHECK_TIMEOUT)
    log = d.log_text()
    assert "nobody resumed the lazy-pages daemon within 2 s" in log, d.describe()
