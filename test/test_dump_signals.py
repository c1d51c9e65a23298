"""Signals to `lazarus dump`: a request to stop, never harm to the target.

SIGINT, SIGTERM, SIGHUP or SIGQUIT to a dump at any moment before
inventory.img is in place stops it: the target is put back (registers,
signal mask, nothing injected) and runs on untraced, what this dump wrote
is removed, and the dump exits 1 with exactly one line. After inventory.img
the dump is complete and finishes. The moments are placed with the
test-only hook LAZARUS_TEST_PAUSE=<phase> (the dump prints
"lazarus: test-pause: <phase>" on stderr and waits for a signal there), and
at random in a loop. LAZARUS_FAULT_DUMP makes putting the target back fail:
the target must then be left stopped, not run on wrong registers.
"""
import os
import random
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

import harness

PAUSE_TIMEOUT = 120  # a paused dump to reach its phase
INJECTED_MASK = "fffffffffffbfeff"  # every signal blocked (the kernel keeps KILL and STOP out)
SYS_MMAP, SYS_MUNMAP = 9, 11


def interrupted_line(sig, pid):
    return f"{harness.ERROR_PREFIX}dump: interrupted by {sig.name}; process {pid} left running"


def status(pid):
    return harness.task_status(pid)[pid]


def blocks_sigint(pid):
    st = harness.task_status(pid).get(pid)
    return st is not None and int(st["SigBlk"], 16) & (1 << (signal.SIGINT - 1))


def files_under(d):
    """{relative path: size} of every file below d."""
    d = Path(d)
    return {str(p.relative_to(d)): p.stat().st_size for p in d.rglob("*") if p.is_file()}


def temporaries(d):
    return [n for n in files_under(d) if Path(n).name.startswith(".") or n.endswith(".tmp")]


class PausedDump:
    """`lazarus dump` run with LAZARUS_TEST_PAUSE=phase, stopped at its marker."""

    def __init__(self, env, w, img, phase, *args, extra_env=None, preexec_fn=None):
        self.w, self.phase, self.log = w, phase, env.log_path("dump")
        self.argv = [str(harness.LAZARUS), "dump", "-t", str(w.pid), "-D", str(img),
                     "-o", str(self.log), "-v4"] + [str(a) for a in args]
        e = dict(os.environ, LAZARUS_TEST_PAUSE=phase, **(extra_env or {}))
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=e, close_fds=True,
                                  preexec_fn=preexec_fn)
        env.procs.append(self.p)
        self.err = b""
        self._wait_marker()

    def describe(self):
        return harness.Result(self.argv, self.p.returncode, "", self.err.decode(errors="replace"),
                              self.log).describe()

    def _wait_marker(self):
        marker = f"lazarus: test-pause: {self.phase}\n".encode()
        fd = self.p.stderr.fileno()
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while marker not in self.err:
            left = deadline - time.monotonic()
            if left <= 0:
                raise harness.HarnessError(f"no pause marker in {PAUSE_TIMEOUT}s\n"
                                           f"{self.describe()}")
            ready, _, _ = select.select([fd], [], [], left)
            chunk = os.read(fd, 65536) if ready else b""
            if ready and not chunk:
                self.p.wait(harness.LAZARUS_TIMEOUT)
                raise harness.HarnessError(f"dump ended before its pause\n{self.describe()}")
            self.err += chunk

    def signal(self, sig):
        """Send sig; return (exit code, error lines) once the dump has exited."""
        self.p.send_signal(sig)
        return self.finish()

    def finish(self):
        try:
            _, rest = self.p.communicate(timeout=harness.LAZARUS_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise harness.HarnessError(f"dump did not exit\n{self.describe()}")
        self.err += rest
        return self.p.returncode, harness.error_lines(self.err.decode(errors="replace"))


def assert_unharmed(w, before, why):
    """Running, untraced, not stopped, and its own self-check passes, moving on."""
    harness.assert_not_stopped(w.pid, w.kind)
    st = status(w.pid)
    assert st["SigBlk"] == before["SigBlk"], f"{why}: signal mask not put back: {st['SigBlk']}"
    r = w.check_pass()
    assert r["ctr"] > before["ctr"], f"{why}: counters did not move on"
    return r


def evidence(phase, d, w):
    """What must be true while the dump waits at phase: the pause sits where it claims."""
    st = status(w.pid)
    assert st["TracerPid"] == str(d.p.pid), f"{phase}: not traced by the dump: {st}"
    assert st["State"].startswith("t"), f"{phase}: not frozen: {st['State']}"
    if phase == "inject":
        nr = int(Path(f"/proc/{w.pid}/syscall").read_text().split()[0])
        assert st["SigBlk"] == INJECTED_MASK and nr == SYS_MMAP, \
            f"inject: no syscall injected (mask {st['SigBlk']}, syscall {nr})"


# (phase, signal, lzwork MiB, extra dump args)
PHASES = [
    ("seized", signal.SIGINT, 16, []),
    ("seized", signal.SIGQUIT, 16, ["-R"]),
    ("inject", signal.SIGINT, 16, []),
    ("inject", signal.SIGTERM, 16, ["-R"]),
    ("inject", signal.SIGHUP, 16, []),
    ("memory", signal.SIGINT, 256, ["--progress"]),
    ("memory", signal.SIGTERM, 256, ["--progress", "-R"]),
    ("images", signal.SIGHUP, 16, []),
    ("images", signal.SIGINT, 16, ["-R"]),
]


@pytest.mark.parametrize("phase,sig,mib,args", PHASES,
                         ids=[f"{p}-{s.name}{'-R' if '-R' in a else ''}" for p, s, _, a in PHASES])
def test_signal_stops_dump(env, phase, sig, mib, args):
    """A stop signal at each phase: one line, exit 1, the target unharmed and
    untraced, nothing of this dump left in DIR."""
    w = env.lzwork(mib=mib)
    before = w.check_pass()
    before["SigBlk"] = status(w.pid)["SigBlk"]
    img = env.path("img")
    d = PausedDump(env, w, img, phase, *args)
    evidence(phase, d, w)
    if phase == "memory":
        assert sum(files_under(img).values()) >= 16 << 20, \
            f"memory: paused before any page data was written: {files_under(img)}"
    if phase == "images":
        assert files_under(img) and not (img / "inventory.img").exists(), files_under(img)

    rc, errors = d.signal(sig)
    assert rc == 1 and errors == [interrupted_line(sig, w.pid)], d.describe()
    assert_unharmed(w, before, f"{phase} {sig.name}")
    assert files_under(img) == {}, f"the interrupted dump left files: {files_under(img)}"
    w.stop()


# With a complete checkpoint in DIR first: a new dump writes into a staging
# directory and commits only when complete, so every phase leaves it whole.
@pytest.mark.parametrize("phase", ["seized", "inject", "memory", "images"])
def test_previous_checkpoint_survives(env, mode, phase):
    """A dump into DIR interrupted by SIGINT leaves the complete checkpoint that
    was there byte for byte, and it still restores."""
    w = env.lzwork(mib=64)
    before = w.check_pass()
    before["SigBlk"] = status(w.pid)["SigBlk"]
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    old = harness.tree_digest(img)
    d = PausedDump(env, w, img, phase, "-R", "--progress")
    rc, errors = d.signal(signal.SIGINT)
    assert rc == 1 and errors == [interrupted_line(signal.SIGINT, w.pid)], d.describe()
    assert_unharmed(w, before, phase)
    assert temporaries(img) == [], temporaries(img)
    assert harness.tree_digest(img) == old, "the previous checkpoint changed"

    harness.kill_and_reap(w.pid)
    harness.rewind_files(img, env.base)
    w = env.restore(img, mode, w)
    after = w.check_pass()
    assert after["prev"] == before["ctr"] and after["ctr"] > before["ctr"]
    w.stop()


@pytest.mark.parametrize("leave_running", [False, True], ids=["kill", "R"])
def test_signal_after_inventory_finishes(env, mode, leave_running):
    """Once inventory.img is in place the dump is complete: a SIGINT then does
    not stop it. It finishes (kills the process, or lets it run on with -R),
    exits 0, says so in its log, and the images restore."""
    w = env.lzwork(mib=16)
    before = w.check_pass()
    before["SigBlk"] = status(w.pid)["SigBlk"]
    img = env.path("img")
    d = PausedDump(env, w, img, "inventory", *(["-R"] if leave_running else []))
    evidence("inventory", d, w)
    rc, errors = d.signal(signal.SIGINT)
    assert rc == 0 and errors == [], d.describe()
    fate = "left running" if leave_running else "killed"
    assert (f"Warn: dump: SIGINT arrived after the dump was complete: finished it, "
            f"process {w.pid} {fate}") in d.log.read_text(), d.describe()
    if leave_running:
        assert_unharmed(w, before, "after inventory")
        harness.kill_and_reap(w.pid)
        harness.rewind_files(img, env.base)
    else:
        assert w.proc.wait(harness.EXIT_TIMEOUT) == -signal.SIGKILL
    w = env.restore(img, mode, w)
    after = w.check_pass()
    assert after["prev"] == before["ctr"]
    w.stop()


class LzVfork(harness.Workload):
    kind = "lzvfork"


def test_signal_while_waiting_for_freeze(env):
    """A vfork parent cannot stop until its child is gone; the dump waits for
    it (here up to 300 s) and a SIGTERM meanwhile stops that wait at once."""
    d = env.base / "vfork"
    w = env.spawn(LzVfork, [harness.WORKLOADS / "lzvfork", "--dir", d], d)
    img = env.path("img")
    log = env.log_path("dump")
    p = subprocess.Popen([str(harness.LAZARUS), "dump", "-t", str(w.pid), "-D", str(img),
                          "--freeze-timeout", "300", "-o", str(log), "-v4"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, close_fds=True)
    env.procs.append(p)
    # Traced but not stopped: the dump is in its wait for the freeze.
    harness.wait_for(lambda: status(w.pid)["TracerPid"] == str(p.pid), PAUSE_TIMEOUT,
                     "the dump to seize the vfork parent")
    assert harness.proc_state(w.pid) == "D"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)  # not 300 s: the wait was given up
    assert p.returncode == 1 and harness.error_lines(err) == \
        [interrupted_line(signal.SIGTERM, w.pid)], err
    assert status(w.pid)["TracerPid"] == "0"
    assert files_under(img) == {}
    os.kill(int(w.ready["child"]), signal.SIGKILL)
    assert w.proc.wait(harness.EXIT_TIMEOUT) == 0
    assert (d / "resumed").exists()


def test_ignored_signal_is_not_a_stop(env):
    """A dump started with SIGHUP ignored (nohup) does not stop on SIGHUP; the
    SIGTERM that follows stops it, and the line names SIGTERM."""
    w = env.lzwork(mib=16)
    before = w.check_pass()
    before["SigBlk"] = status(w.pid)["SigBlk"]
    img = env.path("img")
    d = PausedDump(env, w, img, "seized", "-R",
                   preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    d.p.send_signal(signal.SIGHUP)
    rc, errors = d.signal(signal.SIGTERM)
    assert rc == 1 and errors == [interrupted_line(signal.SIGTERM, w.pid)], d.describe()
    assert_unharmed(w, before, "nohup")
    w.stop()


def test_closed_stderr_does_not_kill_dump(env):
    """--progress into a pipe nobody reads any more: SIGPIPE is ignored during
    the dump, which completes (exit 0) and leaves the process running."""
    w = env.lzwork(mib=64)
    before = w.check_pass()
    before["SigBlk"] = status(w.pid)["SigBlk"]
    img = env.path("img")
    rd, wr = os.pipe()
    os.close(rd)
    try:
        p = subprocess.run([str(harness.LAZARUS), "dump", "-t", str(w.pid), "-D", str(img), "-R",
                            "--progress", "-o", str(env.log_path("dump")), "-v4"],
                           stdin=subprocess.DEVNULL, stdout=wr, stderr=wr,
                           timeout=harness.LAZARUS_TIMEOUT)
    finally:
        os.close(wr)
    assert p.returncode == 0, f"dump with a closed stderr exited {p.returncode}"
    assert (img / "inventory.img").exists()
    assert_unharmed(w, before, "closed stderr")
    w.stop()


def test_sigint_at_random_moments(env):
    """SIGINT at a random moment of each of 20 dumps -R of a running process:
    every dump either completes (exit 0) or stops with exactly the one line
    (exit 1); after each, the process runs untraced and passes its check, and
    DIR holds no temporary file and, after a completed dump, a complete one."""
    seed = int(os.environ.get("LAZARUS_TEST_SEED", time.time_ns() % 1000000))
    rnd = random.Random(seed)
    w = env.lzwork(mib=128)
    before = w.check_pass()
    before["SigBlk"] = status(w.pid)["SigBlk"]
    # How long one dump takes here: delays are drawn from twice that, so some
    # signals land after the inventory or after lz_dump returned. Every dump
    # that completes measures it again (the shortest counts), so one slow
    # first dump cannot push all the delays past the end.
    t0 = time.monotonic()
    env.dump(w, env.path("timing"), leave_running=True)
    span = time.monotonic() - t0
    img = env.path("img")
    outcomes = []
    for i in range(20):
        delay = rnd.uniform(0, 2 * span)
        why = f"iteration {i}, seed {seed}, delay {delay:.3f}s of {span:.3f}s"
        log = env.log_path("dump")
        t0 = time.monotonic()
        p = subprocess.Popen([str(harness.LAZARUS), "dump", "-t", str(w.pid), "-D", str(img),
                              "-R", "-o", str(log), "-v4"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             close_fds=True)
        env.procs.append(p)
        # From its first instructions `lazarus dump` blocks SIGINT (see cli.c);
        # before that the signal would only end an exec that touched nothing.
        harness.wait_for(lambda: p.poll() is not None or blocks_sigint(p.pid),
                         PAUSE_TIMEOUT, "lazarus to block SIGINT")
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=harness.LAZARUS_TIMEOUT)
        if p.returncode == 0:
            span = min(span, time.monotonic() - t0)
        errors = harness.error_lines(err)
        assert (p.returncode, errors) in [(0, []), (1, [interrupted_line(signal.SIGINT, w.pid)])], \
            f"{why}: exit {p.returncode}\n{err}\n{harness.tail(log)}"
        outcomes.append((p.returncode, round(delay, 3)))
        before = assert_unharmed(w, before, why) | {"SigBlk": before["SigBlk"]}
        assert temporaries(img) == [], f"{why}: {temporaries(img)}"
        if p.returncode == 0:
            files = harness.image_files(img)
            assert all((img / f).exists() for f in files), f"{why}: incomplete: {files}"
    assert 1 in [rc for rc, _ in outcomes], \
        f"seed {seed}: no dump of 20 was interrupted ({span:.3f}s a dump): {outcomes}"
    w.stop()


@pytest.mark.parametrize("phase", ["seized", "inject", "memory"])
def test_sigkill_of_dump(env, phase):
    """SIGKILL cannot be caught: the kernel ends the ptrace link. A process
    frozen between steps runs on unharmed; one with a syscall injected is
    killed with lazarus (PTRACE_O_EXITKILL), never run on injected registers
    (it used to die of SIGSEGV). No inventory.img is left."""
    w = env.lzwork(mib=64)
    before = w.check_pass()
    before["SigBlk"] = status(w.pid)["SigBlk"]
    img = env.path("img")
    d = PausedDump(env, w, img, phase, "-R", "--progress")
    evidence(phase, d, w)
    rc, errors = d.signal(signal.SIGKILL)
    assert rc == -signal.SIGKILL and errors == [], d.describe()
    assert not (img / "inventory.img").exists()
    if phase == "inject":
        assert w.proc.wait(harness.EXIT_TIMEOUT) == -signal.SIGKILL, \
            f"the target died of {-w.proc.returncode}, not of SIGKILL with lazarus"
    else:
        harness.wait_for(lambda: status(w.pid)["TracerPid"] == "0", harness.EXIT_TIMEOUT,
                         "the kernel to detach the target")
        assert_unharmed(w, before, f"SIGKILL at {phase}")
        w.stop()


@pytest.mark.parametrize("fault", ["regs", "sigmask"])
def test_failed_put_back_leaves_target_stopped(env, monkeypatch, fault):
    """If the registers (or the signal mask) cannot be put back after syscall
    injection (LAZARUS_FAULT_DUMP), the target must not run on: the dump says so
    loudly and leaves it stopped (SIGSTOP), untraced, exactly where injection
    left it."""
    w = env.lzwork(mib=16)
    w.check_pass()
    img = env.path("img")
    monkeypatch.setenv("LAZARUS_FAULT_DUMP", fault)
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-R", log=env.log_path("dump"))
    call, what, harm = {"regs": ("PTRACE_SETREGS", "registers", "on wrong registers"),
                        "sigmask": ("PTRACE_SETSIGMASK", "signal mask",
                                    "with every signal blocked")}[fault]
    prefix = f"{harness.ERROR_PREFIX}ptrace: process {w.pid}: "
    assert r.rc == 1 and r.errors == [
        f"{prefix}{call}: Input/output error (injected by LAZARUS_FAULT_DUMP={fault})",
        f"{prefix}could not put back its {what} after syscall injection: left it stopped "
        f"(SIGSTOP), untraced, rather than let it run {harm}",
    ], r.describe()
    harness.wait_for(lambda: status(w.pid)["State"].startswith("T"), harness.EXIT_TIMEOUT,
                     "the target to be in a group stop")
    st = status(w.pid)
    assert st["TracerPid"] == "0" and st["SigBlk"] == INJECTED_MASK, st
    if fault == "regs":
        # Stopped right after the last injected syscall (the scratch munmap),
        # at our syscall instruction: it did not run on with those registers.
        nr = int(Path(f"/proc/{w.pid}/syscall").read_text().split()[0])
        assert nr == SYS_MUNMAP, f"stopped in syscall {nr}, not in the injected munmap"
    assert files_under(img) == {}
    assert w.signal_and_reap(signal.SIGKILL) == -signal.SIGKILL
