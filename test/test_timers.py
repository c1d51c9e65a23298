"""POSIX timers (timer_create) come back with their ids, clocks, signals,
values and remaining times.

lztimers (test/workloads/lztimers.c) holds seven timers with sparse ids: a
periodic process-directed one counting its signals, a periodic one aimed at
its second thread (SIGEV_THREAD_ID), a one-shot armed an hour ahead, a
disarmed one, a SIGEV_NONE one it polls, one on its own CPU-time clock, and
a one-shot that expired into a signal it blocks (pending at dump); and a
SIGEV_THREAD one, which glibc runs through a helper thread of its own.
On SIGUSR1 it checks every timer_t it saved against timer_gettime,
timer_getoverrun and /proc/self/timers (ids, clocks, signals, values, the
thread targeted), and reports its counters and the time left on each
one-shot.
"""
import os
import signal
import time

import pytest

import harness
from test_state import pb_encode, pb_fields, reframe

ERR = harness.ERROR_PREFIX
SI_TIMER = -2


class LzTimers(harness.Workload):
    kind = "lztimers"

    def parse_result(self, text):
        r = harness.parse_kv(text.strip())
        for k in ("ticks", "hits", "gticks", "wrong", "fired", "far_ms", "none_ms", "cpu_ms", "pending",
                  "mono_ms", "boot_ms"):
            r[k] = int(r[k])
        return r

    def take_pending(self):
        """Take the pending expiry of the blocked timer: (si_code, si_timerid, value)."""
        os.kill(self.pid, signal.SIGUSR2)
        time.sleep(0.2)  # its own delivery first: SIGUSR1 (10) would go before SIGUSR2 (12)
        r = self.check_pass()
        assert r["taken"] != "-", r
        code, timerid, value = r["taken"].split(":")
        return int(code), int(timerid), int(value, 16)


def spawn(env, name="tm"):
    d = env.base / name
    return env.spawn(LzTimers, [harness.WORKLOADS / "lztimers", "--dir", d], d)


def ticking(w, before):
    """Checks until the periodic timers (glibc's SIGEV_THREAD one too) made
    progress past `before`."""
    deadline = time.monotonic() + 10
    while True:
        r = w.check_pass()
        if all(r[k] > before.get(k, 0) for k in ("ticks", "hits", "gticks")):
            return r
        assert time.monotonic() < deadline, f"timers stopped ticking: {before} -> {r}"
        time.sleep(0.1)


def test_timers_survive(env, mode):
    w = spawn(env)
    first = ticking(w, {"ticks": 0, "hits": 0})
    t_first = time.monotonic()
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    r = w.check_pass()
    elapsed_ms = (time.monotonic() - t_first) * 1000
    assert r["ids"] == first["ids"], (first, r)
    # The counters are the process's own memory: they go on from the dump.
    assert r["ticks"] >= first["ticks"] and r["hits"] >= first["hits"], (first, r)
    assert r["wrong"] == 0 and r["fired"] == 0, r
    # Remaining times went on from their dumped values: never re-armed from
    # the start, and no more gone than the wall time that passed (the time
    # spent dumped does not count, CLOCK_MONOTONIC timers are relative).
    for k in ("far_ms", "none_ms"):
        assert first[k] - elapsed_ms - 1000 <= r[k] <= first[k], (k, first, r, elapsed_ms)
    assert 0 < r["cpu_ms"] <= first["cpu_ms"], (first, r)
    later = ticking(w, r)
    assert later["ids"] == first["ids"] and later["far_ms"] < r["far_ms"], (r, later)
    # The expiry pending at dump is still pending, with its siginfo, once.
    assert first["pending"] == 1 and r["pending"] == 1 and later["pending"] == 1, (first, r)
    assert w.take_pending() == (SI_TIMER, int(first["ids"].split(",")[-1]), 0x9e4d)
    assert w.check_pass()["pending"] == 0
    w.stop()


def test_timers_ids_without_prctl(env, monkeypatch):
    """The way of kernels before 6.16 (no PR_TIMER_CREATE_RESTORE_IDS):
    created in id order, the gaps taken by placeholders deleted again."""
    w = spawn(env)
    first = ticking(w, {"ticks": 0, "hits": 0})
    img = env.path("img")
    env.dump(w, img)
    monkeypatch.setenv("LAZARUS_TEST_TIMERS_LINEAR", "1")
    w = env.restore(img, "eager", w)
    r = ticking(w, first)
    assert r["ids"] == first["ids"] and r["pending"] == 1, (first, r)
    w.stop()


def test_timers_dump_leave_running(env):
    """dump -R reads the timers without touching them."""
    w = spawn(env)
    first = ticking(w, {"ticks": 0, "hits": 0})
    env.dump(w, env.path("img"), leave_running=True)
    r = ticking(w, first)
    assert r["ids"] == first["ids"] and r["far_ms"] <= first["far_ms"], (first, r)
    w.stop()


def rewrite_timer(imgdir, name, field, value):
    """Set `field` (a varint) of the first POSIX timer (task_entry field 40)
    of image `name`, keeping the framing and inventory.img's checksum valid:
    a crafted image as its owner could write it."""
    def edit(payload):
        out, done = [], False
        for f, wt, v in pb_fields(payload):
            if f == 40 and not done:
                v = pb_encode([(sf, sw, value if sf == field else sv)
                               for sf, sw, sv in pb_fields(v)])
                done = True
            out.append((f, wt, v))
        assert done, "no POSIX timer in the image"
        return pb_encode(out)

    size, crc = reframe(imgdir / name, edit)

    def fix_inventory(payload):
        out = []
        for f, wt, v in pb_fields(payload):
            if f == 10 and wt == 2:  # image_file {name 1, size 2, crc 3}
                sub = pb_fields(v)
                if any(sf == 1 and x == name.encode() for sf, _, x in sub):
                    v = pb_encode([(sf, sw, size if sf == 2 else crc if sf == 3 else x)
                                   for sf, sw, x in sub])
            out.append((f, wt, v))
        return pb_encode(out)

    reframe(imgdir / "inventory.img", fix_inventory)


# (field, raw varint, what the error says): clock is a sint32 (zigzag: 198 is 99).
BAD = {"clock": (2, 198, "clock 99, signal 36): a clock restore cannot create it on"),
       "signal": (4, 0, "clock 1, signal 0): an invalid signal")}


@pytest.mark.parametrize("what", BAD)
def test_bad_timer_refused(env, mode, what):
    """A timer entry with an invalid clock or signal fails the restore with
    one line naming the image, before any process is created."""
    w = spawn(env)
    img = env.path("img")
    env.dump(w, img)
    field, raw, tail = BAD[what]
    name = f"task-{w.pid}.img"
    rewrite_timer(img, name, field, raw)
    timer = harness.show(img / name)["entries"][0]["posix_timers"][0]
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc == 1 and r.errors == [
        f"{ERR}restore: {name}: POSIX timer {timer['id']} ({tail}"], r.describe()
    assert harness.proc_state(w.pid) is None


def test_timer_fault_fails_restore(env, mode, monkeypatch):
    """A timer the restorer cannot create fails the restore with one line;
    the process is never resumed without it."""
    w = spawn(env)
    img = env.path("img")
    env.dump(w, img)
    monkeypatch.setenv("LAZARUS_FAULT_BLOB", "timer")
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "POSIX timer" in r.errors[0] and "LAZARUS_FAULT_BLOB" in r.errors[0], r.describe()
    assert harness.proc_state(w.pid) is None


def test_pidns_clocks_go_on(env, mode):
    """restore --pidns puts the tree into a fresh time namespace too:
    CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from where they were at the
    freeze, the time spent dumped does not count; the timers tick on."""
    from test_pidns import check_copy, copies_of, restore_pidns
    w = spawn(env)
    first = ticking(w, {"ticks": 0, "hits": 0})
    t_first = time.monotonic()
    img = env.path("img")
    env.dump(w, img)
    time.sleep(2)  # dumped: these 2 s must not show in the restored clocks
    r = restore_pidns(env, img, mode)
    assert r.rc == 0 and not r.errors, r.describe()
    (outer,) = copies_of(w.pid)
    env.pids.add(outer)
    assert os.readlink(f"/proc/{outer}/ns/time") != os.readlink("/proc/self/ns/time")
    got = check_copy(w, outer)
    gap_ms = (time.monotonic() - t_first) * 1000
    for k in ("mono_ms", "boot_ms"):
        assert first[k] <= got[k] <= first[k] + gap_ms - 1500, (k, first, got, gap_ms)
    assert first["far_ms"] - gap_ms - 1000 <= got["far_ms"] <= first["far_ms"], (first, got)
    deadline = time.monotonic() + 10
    while True:
        later = check_copy(w, outer)
        if all(later[k] > got[k] for k in ("ticks", "hits", "gticks")):
            break
        assert time.monotonic() < deadline, f"timers stopped ticking: {got} -> {later}"
        time.sleep(0.1)
    assert later["mono_ms"] > got["mono_ms"] and later["pending"] == 1, (got, later)


class PyTimers(harness.Workload):
    kind = "pytimers"

    def parse_result(self, text):
        r = harness.parse_kv(text.strip())
        for k in ("alarms", "usr2", "itimer_us", "id"):
            r[k] = int(r[k])
        return r


def test_python_timers(env, mode):
    """python3 with signal.setitimer and a POSIX timer (ctypes): both tick
    on after restore, the POSIX timer with its id, clock, signal and value."""
    d = env.base / "py"
    w = env.spawn(PyTimers, [harness.PYTHON, harness.ROOT / "test/workloads/pytimers.py",
                             "--dir", d], d)
    first = w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    deadline = time.monotonic() + 10
    while True:
        r = w.check_pass()
        assert r["id"] == first["id"] == int(w.ready["id"]), (first, r)
        if r["alarms"] > first["alarms"] and r["usr2"] > first["usr2"]:
            break
        assert time.monotonic() < deadline, f"python timers stopped: {first} -> {r}"
        time.sleep(0.1)
    w.stop()
