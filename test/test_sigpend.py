"""Signals pending (queued, blocked) at dump time are pending again after the
restore: the same signals, with the same siginfo, in the same queue (the
thread's or the process's), in the same order.

lzsigpend (test/workloads/lzsigpend.c) queues them to itself and, on
SIGUSR1, takes them one by one with sigtimedwait() and writes what it got.
A twin that is never dumped says what an undisturbed process gets.
"""
import signal

import harness

RT1, RT2 = signal.SIGRTMIN + 1, signal.SIGRTMIN + 2
SI_USER, SI_QUEUE = 0, -1  # glibc reports raise()'s SI_TKILL as SI_USER
# (signal, si_code, value) in the order the kernel hands them out: the
# thread's queue first, lowest signal first, queued order within one signal.
EXPECTED = [(signal.SIGUSR2, SI_USER, 0), (RT2, SI_QUEUE, 201),
            (RT1, SI_QUEUE, 101), (RT1, SI_QUEUE, 102), (RT1, SI_QUEUE, 103)]
ERR_TOO_MANY = "lazarus: Error: dump: process {} has more than 256 pending signals: " \
               "not supported yet"


class LzSigPend(harness.Workload):
    kind = "lzsigpend"

    def parse_result(self, text):
        r = harness.parse_kv(text.strip())
        r["got"] = [tuple(int(x) for x in e.split(":")) for e in r["got"].split(",") if e]
        assert len(r["got"]) == int(r["n"]), r["line"][:300]
        return r

    def restored(self):
        return type(self)(self.env, self.dir, self.pid)

    def signals(self):
        """Take every pending signal: [(sig, code, value)], after checking
        that each was sent by the process itself."""
        got = self.check()["got"]
        assert all(sender == self.pid for *_, sender in got), got
        return [tuple(g[:3]) for g in got]


def spawn(env, name, extra=0):
    d = env.base / name
    return env.spawn(LzSigPend, [harness.WORKLOADS / "lzsigpend", "--dir", d,
                                 "--extra", extra], d)


def pending_masks(pid):
    """SigPnd (the thread's queue), ShdPnd (the process's) and SigBlk."""
    st = harness.task_status(pid)[pid]
    return {k: st[k] for k in ("SigPnd", "ShdPnd", "SigBlk")}


def test_pending_signals_survive(env, mode):
    twin = spawn(env, "twin")
    w = spawn(env, "sp")
    before = pending_masks(w.pid)
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    assert pending_masks(w.pid) == before
    got = w.signals()
    assert got == EXPECTED, got
    assert got == twin.signals()
    assert w.signals() == []  # taken: nothing comes twice
    w.stop()
    twin.stop()


def test_pending_signals_dump_leave_running(env, mode):
    """dump -R reads the queues without taking anything out of them."""
    w = spawn(env, "sp")
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    assert w.signals() == EXPECTED
    w.stop()
    w = env.restore(img, mode, w)
    assert w.signals() == EXPECTED
    w.stop()


def test_too_many_pending_signals(env):
    """More than 256 pending: the dump is refused with one line, writes no
    images, and the process runs on with all of them still queued."""
    w = spawn(env, "sp", extra=300)
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc != 0 and r.errors == [ERR_TOO_MANY.format(w.pid)], r.describe()
    assert not list(img.iterdir()), list(img.iterdir())
    assert harness.alive(w.pid)
    harness.assert_not_stopped(w.pid, w.kind)
    got = w.signals()
    assert got[:5] == EXPECTED and len(got) == 305, got[:8]
    assert [v for _, _, v in got[5:]] == list(range(1000, 1300))
    w.stop()


def test_requeue_fails(env, mode, monkeypatch):
    """A signal the restorer cannot queue again fails the restore with one
    line: it is never silently dropped."""
    w = spawn(env, "sp")
    img = env.path("img")
    env.dump(w, img)
    monkeypatch.setenv("LAZARUS_FAULT_BLOB", "sigqueue")
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "re-queue pending signal" in r.errors[0] and "LAZARUS_FAULT_BLOB" in r.errors[0], \
        r.describe()
    assert harness.proc_state(w.pid) is None
