"""test_ws.py - working set first: `lazy-pages --record-ws` and `--prefetch-ws`.

The workload is pyws.py (test/workloads/pyws.py): a python3 dict queried by a
fixed set of keys on each SIGUSR1; it checks every value itself and writes
the key and the crc32 of its value for each, which the tests check again
against the values they know. A lazy restore under `--record-ws` must answer
right (every first access is then a fault: no fill, no fault-around) and
leave ws-<pid>.img next to the images; the next lazy restore under
`--prefetch-ws` must place those pages first and answer right too. A
damaged, cut or foreign working set, or a symlink in its place, is refused
with one line naming it and the process never runs; a daemon killed while it
records is resumed without one (the recording died with it). Nothing is
timed.
"""
import os
import signal
import zlib
from pathlib import Path

import pytest

import harness
from harness import HarnessError, Workload, wait_for
from test_lazy import Daemon, slot_of, stats

pytestmark = pytest.mark.skipif(not harness.lazy_supported(), reason="lazy restore: issue 3")

PYWS = harness.ROOT / "test" / "workloads" / "pyws.py"
MIB, KEYS = 48, 300


def value(i):
    return (b"%016x" % ((i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)) * 6


class PyWs(Workload):
    kind = "pyws"

    def parse_result(self, text):
        return {}

    def answers(self):
        """One round: SIGUSR1, its answers checked line by line."""
        path = self.dir / "answers"
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        os.kill(self.pid, signal.SIGUSR1)

        def answered():
            if path.exists():
                return True
            if not harness.alive(self.pid):
                raise HarnessError(f"pyws {self.pid} died before answering\n{self.diag()}")
            return False

        wait_for(answered, harness.CHECK_TIMEOUT, f"pyws {self.pid} to answer", self.diag)
        head, *lines = path.read_text().splitlines()
        assert head.startswith("PASS "), f"pyws {self.pid}: {head}\n{self.diag()}"
        kv = harness.parse_kv(head)
        assert int(kv["pid"]) == self.pid and len(lines) == int(kv["keys"]) == KEYS, head
        for line in lines:
            name, crc = line.split()
            assert int(crc) == zlib.crc32(value(int(name[1:]))), f"pyws {self.pid}: {line}"
        return int(kv["round"])


def dumped(env, img="img"):
    d = env.base / "ws"
    w = env.spawn(PyWs, [harness.PYTHON, PYWS, "--dir", d, "--mib", MIB, "--keys", KEYS], d)
    assert w.answers() == 1
    img = env.path(img)
    env.dump(w, img)
    return w, img


def lazy_restore(env, img, w, expect_ok=True):
    r = env.lazarus("restore", "-D", img, "--lazy-pages", "-d", log=env.log_path("restore"))
    env.pids.add(w.pid)
    if not expect_ok:
        return r
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}"
    return w.restored()


def record(env, img, w):
    """A lazy restore that records; the process answers, then exits."""
    d = Daemon(env, img, "--record-ws=0", what="lazy-pages-record")
    rw = lazy_restore(env, img, w)
    assert rw.answers() == 2
    # SIGKILL: on SIGTERM python3 would tear its dict down, touching every page.
    assert rw.signal_and_reap(signal.SIGKILL) == -signal.SIGKILL
    assert d.wait() == 0, d.describe()
    ws = img / f"ws-{w.pid}.img"
    assert ws.exists(), f"{ws}: not written\n{d.describe()}"
    assert ws.stat().st_mode & 0o777 == 0o600, oct(ws.stat().st_mode)
    st = slot_of(stats(img), w.pid)
    # Recording: every first access is a fault of one page (or a zero page
    # of a hole), nothing filled.
    assert st["pages_fill"] == 0 and 0 < st["pages_fault"] <= st["faults"], st
    # What faults placed, lazy zero pages and pages found already there.
    assert 0 < st["pages_fault"] <= st["ws_recorded_pages"] <= \
        st["pages_fault"] + st["pages_zero"] + st["pages_exist"], st
    assert st["pages_fault"] < st["pages_total"] // 2, st  # the queries' pages, not the heap
    assert "working set recorded (exited)" in d.log_text(), d.describe()
    return ws, st


def test_record_then_prefetch(env):
    w, img = dumped(env)
    ws, rec = record(env, img, w)

    d = Daemon(env, img, "--prefetch-ws", what="lazy-pages-prefetch")
    rw = lazy_restore(env, img, w)
    assert rw.answers() == 2
    assert d.wait() == 0, d.describe()
    st = slot_of(stats(img), w.pid)
    assert st["state"] == "done" and st["time_to_prefetch_done_ns"] is not None, st
    assert 0 < st["pages_prefetch"] <= rec["ws_recorded_pages"], st
    assert st["pages_prefetch"] + st["pages_fault"] + st["pages_fill"] + st["pages_zero"] + \
        st["pages_exist"] >= st["pages_total"], st
    assert "working set in place" in d.log_text(), d.describe()
    assert rw.answers() == 3  # all of it in place now
    rw.stop()

    # The working set changes nothing for an eager restore of the same images.
    ew = env.restore(img, "eager", w)
    assert ew.answers() == 2
    ew.stop()


def refused(env, img, w, d, name, words, by_restore=False):
    """A lazy restore that must fail with one line naming name, the process gone
    (by_restore: restore itself refuses the file before it connects)."""
    r = lazy_restore(env, img, w, expect_ok=False)
    assert r.rc != 0, r.describe()
    assert len(r.errors) == 1 and name in r.errors[0] and words in r.errors[0], r.describe()
    assert not harness.alive(w.pid) or harness.proc_state(w.pid) == "Z", \
        f"pid {w.pid} runs after a refused working set\n{r.describe()}"
    harness.reap(w.pid)
    if by_restore:
        assert "lazy pages from pagemap" not in d.log_text(), d.describe()
        d.sigkill()
        return
    assert d.wait() != 0, d.describe()
    assert words in d.log_text(), d.describe()


@pytest.mark.parametrize("damage", ["flip", "cut", "symlink", "junk"])
def test_bad_ws_refused(env, damage):
    w, img = dumped(env)
    ws, _ = record(env, img, w)
    name = ws.name
    data = bytearray(ws.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
        ws.write_bytes(bytes(data))
        words = "checksum"
    elif damage == "cut":
        ws.write_bytes(bytes(data[:len(data) // 2]))
        words = name
    elif damage == "symlink":
        real = env.base / "elsewhere.img"
        real.write_bytes(bytes(data))
        ws.unlink()
        ws.symlink_to(real)
        words = "symbolic link"
    else:  # a header, then junk
        words = name
        data = data[:40]
        ws.write_bytes(bytes(data) + b"\xff" * 64)
    d = Daemon(env, img, "--prefetch-ws", what="lazy-pages-prefetch")
    # restore's own check of the files in the images directory refuses a symlink
    refused(env, img, w, d, name, words, by_restore=damage == "symlink")


def test_foreign_ws_refused(env):
    """The working set of another dump (same pid, same names) is refused by name."""
    w, img_a = dumped(env, "img-a")
    _, img_b = None, env.path("img-b")
    # A second dump of the same state: restore A eagerly, dump it again into B.
    ew = env.restore(img_a, "eager", w)
    env.dump(ew, img_b)
    ws_b, _ = record(env, img_b, w)
    os.replace(ws_b, img_a / ws_b.name)
    d = Daemon(env, img_a, "--prefetch-ws", what="lazy-pages-prefetch")
    refused(env, img_a, w, d, ws_b.name, "belongs to another dump")


def test_record_then_daemon_killed_and_resumed(env):
    """--resume takes the processes over as they are: a recording in progress
    died with its daemon, so the resumed one fills as usual and writes no
    working set (never half of one)."""
    w, img = dumped(env)
    d = Daemon(env, img, "--record-ws=0", "--guardian-timeout", 120, what="lazy-pages-record")
    rw = lazy_restore(env, img, w)
    assert rw.answers() == 2  # recorded so far, not written yet
    d.sigkill()
    r = Daemon(env, img, "--resume", what="lazy-pages-resume")
    assert r.wait() == 0, r.describe()
    assert rw.answers() == 3
    assert not list(Path(img).glob("ws-*.img")), "a working set was written after --resume"
    st = slot_of(stats(img), w.pid)
    assert st["state"] == "done" and st["pages_fill"] > 0, st
    rw.stop()


def test_record_and_prefetch_exclusive(env):
    img = env.path("img")
    r = env.lazarus("lazy-pages", "-D", img, "--record-ws", "--prefetch-ws")
    assert r.rc != 0 and len(r.errors) == 1 and "--record-ws" in r.errors[0], r.describe()
