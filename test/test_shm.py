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
