"""test_lazy.py - real lazy restores while pages are still outstanding.

The workload is lzlazyops (test/workloads/lzlazyops.c): four patterned
regions; once restored and told to go (DIR/go), it forks (the child verifies
everything), moves and grows one region with mremap, unmaps the middle of
another, drops part of a third with MADV_DONTNEED and reads the fourth from
four threads at once, verifies every result and writes its verdict. The
tests assert that verdict, and around it the daemon's exit status, log and
lazy-pages-stats.json: the operations, a daemon killed mid-fill with and
without `lazy-pages --resume`, a second daemon, garbage on the socket, the
pages image truncated under the daemon, restore without -d.

Most tests start the daemon themselves (`lazarus lazy-pages --status-fd`, a
child of pytest) with LAZARUS_LAZY_FILL_DELAY_US, so that the background fill
is slow and the pages stay outstanding while the workload or the test acts;
`restore --lazy-pages` connects to it. (The daemon that `restore
--lazy-pages` starts by itself does not read that variable.) The workload is
dumped while it waits for DIR/go; the test creates go before the restore
when the operations should run at once, after it when something must happen
first. Nothing is timed: every wait is for a sign, bounded only by a
generous timeout.
"""
import json
import os
import select
import signal
import socket
import struct
import subprocess
from pathlib import Path

import pytest

import harness
from harness import HarnessError, tail, wait_for

pytestmark = pytest.mark.skipif(not harness.lazy_supported(), reason="lazy restore: issue 3")

# A fill chunk of 64 KiB, then a pause: the fill runs at most ~64 MiB/s with
# FAST, ~13 MiB/s with SLOW. The pause also delays demand faults (the daemon
# sleeps in its loop), so SLOW goes with a smaller workload.
FILL_CHUNK_KIB = 64
FAST_US = 1000
SLOW_US = 5000
SMALL = {"mib": 8, "side_mib": 4}  # 20 MiB in the four regions
PARKED_US = 20000  # ~3 MiB/s: a fill that stays in region A for seconds
CLOCK_NANOSLEEP = 230  # x86_64 syscall number: usleep() in the fill delay

GUARDIAN_LINGER_S = 120  # --guardian-timeout when a resume is expected

# The lazy-pages protocol (Documentation/lazy-protocol.md).
MAGIC, VERSION = 0x50595A4C, 3
HELLO, PROCESS, RANGES, FINISHED, REPLY = 1, 2, 3, 4, 5
ROLE_RESTORE, ROLE_RESUME = 1, 2
HDR = struct.Struct("=IHHII")  # magic, version, type, len, seq
REPLY_BODY = struct.Struct("=iIII240s")  # status, version, pid, reserved, msg


class Daemon:
    """`lazarus lazy-pages -D IMG` started by the test, as its child (no -d),
    returned once it has written its ready byte to --status-fd."""

    def __init__(self, env, img, *args, delay_us=None, what="lazy-pages"):
        self.env, self.img = env, Path(img)
        self.log = env.log_path(what)
        self.err = env.logs / f"{self.log.stem}.stderr"
        rfd, wfd = os.pipe()
        self.argv = [str(harness.LAZARUS), "lazy-pages", "-D", str(img), "--status-fd", str(wfd),
                     "-o", str(self.log), "-v4", "--fill-chunk", str(FILL_CHUNK_KIB)] + \
            [str(a) for a in args]
        denv = {k: v for k, v in os.environ.items() if not k.startswith("LAZARUS_LAZY_")}
        if delay_us:
            denv["LAZARUS_LAZY_FILL_DELAY_US"] = str(delay_us)
        try:
            with open(self.err, "w") as err:
                self.proc = subprocess.Popen(self.argv, pass_fds=[wfd], env=denv,
                                             stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                             start_new_session=True)
        finally:
            os.close(wfd)
        env.procs.append(self.proc)
        env.pids.add(self.proc.pid)
        self.pid = self.proc.pid
        try:
            readable, _, _ = select.select([rfd], [], [], harness.READY_TIMEOUT)
            byte = os.read(rfd, 1) if readable else b""
        finally:
            os.close(rfd)
        assert byte, f"lazy-pages did not get ready\n{self.describe()}"

    def describe(self):
        rc = self.proc.poll()
        return f"$ {' '.join(self.argv)}\n{'running' if rc is None else f'exit {rc}'}\n" \
               f"--- stderr ---\n{tail(self.err)}\n--- log {self.log} (tail) ---\n" \
               f"{tail(self.log, 40)}"

    def log_text(self):
        return self.log.read_text(errors="replace")

    def running(self):
        return self.proc.poll() is None

    def wait(self):
        """Its exit status, once every page is in place or its processes gone."""
        try:
            return self.proc.wait(harness.CHECK_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"lazy-pages did not finish\n{self.describe()}")

    def sigkill(self):
        assert self.running(), f"lazy-pages exited before it could be killed\n{self.describe()}"
        os.kill(self.pid, signal.SIGKILL)
        assert self.proc.wait(harness.EXIT_TIMEOUT) == -signal.SIGKILL

    def guardian_pid(self):
        for line in self.log_text().splitlines():
            if "started the guardian (pid " in line:
                return int(line.split("started the guardian (pid ")[1].split(")")[0])
        raise AssertionError(f"no guardian in the log\n{self.describe()}")


def stats(img):
    path = Path(img) / "lazy-pages-stats.json"
    assert path.exists(), f"{path}: missing"
    return json.loads(path.read_text())


def slot_of(st, pid):
    found = [p for p in st["processes"] if p["pid"] == pid]
    assert len(found) == 1, f"stats: {len(found)} entries for pid {pid}: {st['processes']}"
    return found[0]


def rss_anon_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status: no RssAnon")


def wait_fill_progress(w, d, kib=1024):
    """Wait until the background fill has visibly placed memory (the restored
    process's anonymous RSS grew by kib) while the daemon still runs."""
    base = rss_anon_kib(w.pid)

    def grown():
        assert d.running(), f"lazy-pages exited early\n{d.describe()}"
        return rss_anon_kib(w.pid) >= base + kib

    wait_for(grown, harness.CHECK_TIMEOUT, "the background fill to make progress", d.describe)


def dumped_ops(env, go, **kw):
    """lzlazyops checked, dumped (pid free again), its old verdict removed;
    go: create DIR/go now, so that it runs its operations once restored."""
    w = env.lzlazyops(**kw)
    before = w.check_pass()
    assert before["ops"] == "0" and before["done"] == "0"
    img = env.path("img")
    env.dump(w, img)
    w.forget_result()
    if go:
        w.go()
    return w, img


def assert_ops_pass(r, outstanding=True):
    """The verdict of the operations (PASS already checked); outstanding: the
    fill is slow enough that the fork must have found memory not in place
    yet, i.e. the operations ran on a process with pages outstanding.
    Returns the ids of the threads that read region A."""
    assert r["child"] == "0", r["line"]
    if outstanding:
        assert int(r["missing_fork"]) > 0, r["line"]
    tids = [int(t) for t in r["tids"].split(",")]
    assert len(tids) == int(r["threads"]), r["line"]
    return tids


def assert_killed(w, what):
    """w must die by a signal, without a verdict other than PASS."""
    st = harness.reap(w.pid, harness.CHECK_TIMEOUT)
    assert st is not None, f"{what}: pid {w.pid} was reaped by someone else"
    r = w.read_result()
    assert r is None or r["verdict"] == "PASS", f"{what}: the workload ran on wrong memory: " \
                                                f"{r['line']}"
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) in (signal.SIGKILL, signal.SIGBUS), \
        f"{what}: pid {w.pid} ended with wait status {st:#x}, want a kill\n{w.diag()}"


# --------------------------------------------------------------- operations

def test_ops_while_outstanding(env):
    """fork, mremap (move + grow), munmap, MADV_DONTNEED and four threads
    faulting at once, right after a lazy restore; then the fill completes,
    the daemon exits 0 and the process verifies everything once more."""
    w, img = dumped_ops(env, go=True, mib=64)
    d = Daemon(env, img, delay_us=FAST_US)
    w = env.restore(img, "lazy", w)
    r = w.ops_pass()
    tids = assert_ops_pass(r)

    assert d.wait() == 0, d.describe()
    log = d.log_text()
    for sign in (f"pid {w.pid} forked", f"pid {w.pid}: remap ", f"pid {w.pid}: unmap [",
                 f"pid {w.pid}: remove [", "every page is in place or its process gone"):
        assert sign in log, f"not in the daemon log: {sign!r}\n{d.describe()}"
    st = stats(img)
    assert st["daemon_pid"] == d.pid and st["resumes"] == 0
    parent = slot_of(st, w.pid)
    assert parent["state"] == "done", parent
    assert parent["pages_fault"] > 0, parent
    faulted = {int(t) for t, n in parent["faults_per_thread"].items() if n > 0}
    assert len(faulted & set(tids)) >= 2, \
        f"faults from {sorted(faulted)}, want several of the workload's threads {tids}"
    children = [p for p in st["processes"] if p["parent_pid"] == w.pid]
    assert len(children) == 1 and children[0]["state"] in ("done", "gone"), st["processes"]
    assert children[0]["pages_fault"] > 0, children[0]

    # Every page in place: nothing is missing any more and all still verifies.
    after = w.check_pass()
    assert after["done"] == "1" and after["missing"] == "0", after["line"]
    w.stop()


def test_ops_grown_tail_crosses_window(env):
    """As above, but the region that mremap grows ends one page past a 2 MiB
    boundary: the fault-around window of its last (zero) page reaches past
    the end of the VMA, which the daemon must clip, not die on."""
    w, img = dumped_ops(env, go=True, tail_offset=1, **SMALL)
    Daemon(env, img, delay_us=FAST_US)
    w = env.restore(img, "lazy", w)
    assert_ops_pass(w.ops_pass())
    w.stop()


def test_restore_waits_then_sigterm(env):
    """restore --lazy-pages without -d and without a daemon: it starts one,
    stays the parent of the process, and exits with its status (SIGTERM: 0);
    the daemon it started finishes and exits 0."""
    w, img = dumped_ops(env, go=True, **SMALL)
    p = env.restore_bg(img, "lazy", w)
    w = w.restored()
    assert_ops_pass(w.ops_pass(restorer=p), outstanding=False)  # its daemon fills at full speed
    assert p.poll() is None, "restore exited while its process runs"
    w.check_pass()
    os.kill(w.pid, signal.SIGTERM)
    try:
        rc = p.wait(harness.EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError("restore did not exit after its process got SIGTERM")
    p.stderr_file.seek(0)
    err = p.stderr_file.read()
    assert rc == 0, f"restore exited {rc}\n{err}\n{tail(p.log)}"
    assert not harness.error_lines(err), err
    assert harness.proc_state(w.pid) is None

    # The daemon restore started is a grandchild, reparented to us.
    lock = (img / "lazy-pages.lock").read_text().split()
    assert lock, "lazy-pages.lock holds no pid"
    dpid = int(lock[0])
    env.pids.add(dpid)
    st = harness.reap(dpid, harness.CHECK_TIMEOUT)
    log = img / "lazy-pages.log"
    assert st is not None and os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, \
        f"lazy-pages {dpid}: wait status {st}\n{tail(log)}"
    assert stats(img)["daemon_pid"] == dpid
    assert "every page is in place or its process gone" in log.read_text()


# ------------------------------------------------------------ daemon death

def test_daemon_killed_then_resumed(env):
    """The daemon is SIGKILLed mid-fill; the process then runs its operations
    (they wait in their faults and the fork) until `lazy-pages --resume`
    takes over from the guardian and serves everything to the end."""
    w, img = dumped_ops(env, go=False, **SMALL)
    d = Daemon(env, img, "--guardian-timeout", GUARDIAN_LINGER_S, delay_us=SLOW_US)
    w = env.restore(img, "lazy", w)
    wait_fill_progress(w, d)
    d.sigkill()
    w.go()

    r = Daemon(env, img, "--resume", what="resume")
    assert_ops_pass(w.ops_pass(), outstanding=False)  # the resumed daemon fills at full speed
    assert r.wait() == 0, r.describe()
    assert "resumed: took over 1 processes from the guardian" in r.log_text(), r.describe()
    # The guardian logs into the first daemon's log file.
    glog = d.log_text()
    assert "guardian: the daemon died with 1 processes still served" in glog, d.describe()
    assert "guardian: handed 1 processes over to the resumed daemon" in glog, d.describe()
    st = stats(img)
    assert st["daemon_pid"] == r.pid and st["resumes"] == 1, st
    parent = slot_of(st, w.pid)
    assert parent["state"] == "done" and parent["pages_fill"] > 0, parent

    after = w.check_pass()
    assert after["done"] == "1" and after["missing"] == "0", after["line"]
    w.stop()


def test_daemon_killed_no_resume(env):
    """The daemon is SIGKILLed mid-fill and nobody resumes: after its timeout
    the guardian poisons what is missing and kills the process, which never
    reports a wrong checksum."""
    w, img = dumped_ops(env, go=False, **SMALL)
    d = Daemon(env, img, "--guardian-timeout", 2, delay_us=SLOW_US)
    gpid = d.guardian_pid()
    env.pids.add(gpid)
    w = env.restore(img, "lazy", w)
    wait_fill_progress(w, d)
    d.sigkill()
    w.go()

    assert_killed(w, "no resume")
    harness.reap(gpid, harness.CHECK_TIMEOUT)
    log = d.log_text()
    assert f"guardian: pid {w.pid}: nobody resumed the lazy-pages daemon within 2 s" in log, \
        d.describe()
    assert "poisoned them and killed it" in log, d.describe()


def test_guardian_leaves_when_its_processes_exit(env):
    """The daemon dies mid-fill and then the process it served exits too:
    the guardian has nothing left to protect and goes at once, instead of
    waiting out its (here 600 s) timeout for a --resume that is pointless."""
    w, img = dumped_ops(env, go=False, **SMALL)
    d = Daemon(env, img, "--guardian-timeout", 600, delay_us=SLOW_US)
    gpid = d.guardian_pid()
    env.pids.add(gpid)
    w = env.restore(img, "lazy", w)
    wait_fill_progress(w, d)
    d.sigkill()
    harness.kill_and_reap(w.pid)

    harness.reap(gpid, harness.CHECK_TIMEOUT)  # far below the 600 s timeout
    log = d.log_text()
    assert "guardian: every process it guarded has exited" in log, d.describe()
    assert "poisoned" not in log, d.describe()


def test_daemon_of_other_images_refuses(env):
    """restore -W points at a daemon serving a directory without a dump: the
    daemon refuses the restore at HELLO (no inventory.img to say which dump
    it serves), the restore fails with one error line saying so before it
    creates the process, and the daemon goes on waiting for a restore of its
    own dump."""
    w, img = dumped_ops(env, go=False, **SMALL)
    other = env.path("other")
    d = Daemon(env, other)
    r = env.lazarus("restore", "-D", img, "--lazy-pages", "-W", other, "-d",
                    log=env.log_path("restore"))
    assert r.rc == 1, r.describe()
    assert len(r.errors) == 1, r.describe()
    assert f"{other}/inventory.img: No such file or directory" in r.errors[0], r.describe()
    assert r.errors[0].count("lazy-pages daemon") <= 1, r.describe()
    assert not harness.alive(w.pid), f"pid {w.pid} was created"
    assert d.running(), d.describe()
    assert f"refused: {other}/inventory.img: No such file or directory" in d.log_text(), \
        d.describe()


# --------------------------------------------------------------- bad peers

def test_second_daemon_refused(env):
    """A second `lazarus lazy-pages` on the work directory of a serving one
    exits non-zero with one error line; the first serves on."""
    w, img = dumped_ops(env, go=False, **SMALL)
    d = Daemon(env, img, delay_us=SLOW_US)
    w = env.restore(img, "lazy", w)
    for extra in ([], ["-d"]):
        r = env.lazarus("lazy-pages", "-D", img, *extra, timeout=harness.CHECK_TIMEOUT)
        assert r.rc != 0, r.describe()
        assert r.err.strip().splitlines() == r.errors and len(r.errors) == 1, r.describe()
        assert f"another lazy-pages daemon (pid {d.pid})" in r.errors[0], r.describe()
        assert str(img / "lazy-pages.sock") in r.errors[0], r.describe()
    assert d.running(), f"the first daemon stopped\n{d.describe()}"

    w.go()
    assert_ops_pass(w.ops_pass())
    w.stop()
    assert d.wait() == 0, d.describe()


def frame(typ, payload=b"", seq=1, magic=MAGIC, version=VERSION, length=None):
    return HDR.pack(magic, version, typ, len(payload) if length is None else length, seq) + payload


def dump_id(img):
    """The dump id of the images in img: bytes 16-31 of inventory.img's header."""
    return (Path(img) / "inventory.img").read_bytes()[16:32]


def hello(role=ROLE_RESTORE, dump=bytes(16)):
    return frame(HELLO, struct.pack("=IIQ16s", role, 0, 0, dump))


def process_msg(pid, img_id, start, length):
    body = struct.pack("=iIQQIIII", pid, img_id, 0, 0, 1, 1, 0, 0)
    return frame(PROCESS, body + struct.pack("=QQ", start, length), seq=2)


def exchange(path, msgs, fds=()):
    """Connect, send msgs (fds with the last one), return the daemon's
    answers: (status, msg) per REPLY, None when it hung up; until a refusal
    or one answer per message."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(harness.CHECK_TIMEOUT)
    answers = []
    try:
        s.connect(str(path))
        for i, m in enumerate(msgs):
            last = i == len(msgs) - 1
            if last and fds:
                socket.send_fds(s, [m], list(fds))
            else:
                s.send(m)
        while len(answers) < len(msgs):
            data = s.recv(65536)
            if not data:
                answers.append(None)
                break
            magic, version, typ, length, _ = HDR.unpack_from(data)
            assert (magic, version, typ, length) == (MAGIC, VERSION, REPLY, REPLY_BODY.size), data
            status, _, _, _, msg = REPLY_BODY.unpack_from(data, HDR.size)
            answers.append((status, msg.split(b"\0")[0].decode()))
            if status < 0:
                break
    except (ConnectionResetError, BrokenPipeError):
        answers.append(None)
    finally:
        s.close()
    return answers


def test_garbage_on_socket(env):
    """Peers that send garbage, break the protocol or stay silent while the
    daemon serves a restored process: each is refused on its own, and the
    process runs its operations and passes."""
    w, img = dumped_ops(env, go=False, **SMALL)
    d = Daemon(env, img, delay_us=SLOW_US)
    w = env.restore(img, "lazy", w)
    sock = img / "lazy-pages.sock"
    ours = dump_id(img)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    silent.connect(str(sock))
    rp, wp = os.pipe()
    try:
        cases = {
            "text": [b"hello, daemon, here is some text"],
            "short": [b"\x4c\x5a"],
            "magic": [frame(HELLO, bytes(16), magic=0xDEADBEEF)],
            "version": [frame(HELLO, bytes(32), version=1)],
            "length": [frame(HELLO, bytes(8), length=16)],
            "type": [frame(77)],
            "oversized": [frame(HELLO, bytes(70000))],
            "no-hello": [process_msg(w.pid, w.pid, 0x10000, 4096)],
            "ranges-first": [hello(dump=ours), frame(RANGES, bytes(16), seq=2)],
            "hello-twice": [hello(dump=ours), hello(dump=ours)],
            "other-dump": [hello(dump=bytes(16))],
            "resume-live": [hello(ROLE_RESUME)],
        }
        for name, msgs in cases.items():
            answers = exchange(sock, msgs)
            assert answers and (answers[-1] is None or answers[-1][0] < 0), \
                f"{name}: not refused: {answers}\n{d.describe()}"
            assert all(a[0] == 0 for a in answers[:-1]), f"{name}: {answers}"
        # A restore that hands nothing over is no threat either.
        assert exchange(sock, [hello(dump=ours), frame(FINISHED, seq=2)]) == [
            (0, f"lazy-pages daemon pid {d.pid} ready"), (0, "0 processes will be filled")]
        # A pipe passed off as its userfaultfd, for the pid being served.
        answers = exchange(sock, [hello(dump=ours), process_msg(w.pid, w.pid, 0x10000, 4096)],
                           fds=[rp])
        assert answers[0][0] == 0 and answers[-1][0] < 0, answers
        assert "not an initialised userfaultfd" in answers[-1][1], answers
        # Too many descriptors on one message.
        answers = exchange(sock, [hello()], fds=[rp, rp, rp, rp, rp])
        assert answers[-1] is None or answers[-1][0] < 0, answers
        assert d.running(), f"the daemon stopped\n{d.describe()}"
        assert "connection refused" in d.log_text(), d.describe()

        w.go()
        assert_ops_pass(w.ops_pass())
    finally:
        silent.close()
        os.close(rp)
        os.close(wp)
    w.stop()
    assert d.wait() == 0, d.describe()


def kill_lines(d, pid):
    return [line for line in d.log_text().splitlines()
            if f"pid {pid}: " in line and "killing it" in line]


def test_pages_truncated_while_outstanding(env):
    """The pages image is cut to half its size while most pages are still
    outstanding: when the fill reaches the cut, the process is killed, never
    run on zeros, and the daemon's log names the file."""
    w, img = dumped_ops(env, go=False, **SMALL)
    d = Daemon(env, img, delay_us=SLOW_US)
    w = env.restore(img, "lazy", w)
    # Once the process has been round its wait loop and answered a signal,
    # it faults no more while it waits; the fill works upwards from the
    # lowest address, so the first block the daemon reads past the cut is
    # one it has not checked yet.
    w.touch([])
    pages = img / f"pages-{w.pid}.img"
    os.truncate(pages, pages.stat().st_size // 2)

    assert_killed(w, "truncated pages image")
    assert d.wait() == 1, d.describe()
    kills = kill_lines(d, w.pid)
    assert len(kills) == 1, f"want one kill of pid {w.pid}\n{d.describe()}"
    assert f"pages-{w.pid}.img" in kills[0] and "truncated" in kills[0], kills[0]


def first_of_block(img, pid, lo, hi):
    """An address in [lo, hi) whose page starts a block of the pages file
    and is followed by a page of the same block."""
    entries = harness.show(Path(img) / f"pagemap-{pid}.img")["entries"]
    block = entries[0]["block_pages"]
    for e in entries[1:]:
        if "data_page" not in e or not lo <= e["vaddr"] < hi:
            continue
        for i in range(e["nr_pages"] - 1):
            if (e["data_page"] + i) % block == 0:
                return e["vaddr"] + i * 4096
    raise AssertionError(f"pagemap-{pid}.img: no block starts in [{lo:#x}, {hi:#x})")


def stop_between_chunks(d):
    """SIGSTOP the daemon where it waits between two fill chunks (in the
    fill delay's sleep), not in the middle of one."""
    for _ in range(100):
        os.kill(d.pid, signal.SIGSTOP)
        wait_for(lambda: harness.proc_state(d.pid) == "T", harness.EXIT_TIMEOUT,
                 "lazy-pages to stop", d.describe)
        with open(f"/proc/{d.pid}/syscall") as f:
            if f.read().split()[0] == str(CLOCK_NANOSLEEP):
                return
        os.kill(d.pid, signal.SIGCONT)
    raise AssertionError(f"lazy-pages never stopped in its fill delay\n{d.describe()}")


def wchan(pid):
    with open(f"/proc/{pid}/wchan") as f:
        return f.read().strip()


def test_pages_truncated_checked_block(env):
    """The process reads a page (its block of the pages file is checked),
    the file is cut, then it reads the next page of that block: it is killed
    and the daemon's log names the file."""
    w, img = dumped_ops(env, go=False, **SMALL)
    d = Daemon(env, img, "--fault-around", 4, delay_us=PARKED_US)
    w = env.restore(img, "lazy", w)
    lo = int(w.ready["d"], 16)
    x = first_of_block(img, w.pid, lo, lo + SMALL["side_mib"] * 2**20)
    # The fill is parked far below region D; the second touch runs the same
    # code as the first, so its only fault is the page asked for.
    w.touch([x])
    stop_between_chunks(d)
    pages = img / f"pages-{w.pid}.img"
    os.truncate(pages, 4096)
    w.touch([x + 4096], wait=False)
    wait_for(lambda: wchan(w.pid) == "handle_userfault", harness.CHECK_TIMEOUT,
             f"pid {w.pid} to fault on {x + 4096:#x}", w.diag)
    os.kill(d.pid, signal.SIGCONT)

    assert_killed(w, "cut after its block was checked")
    assert d.wait() == 1, d.describe()
    kills = kill_lines(d, w.pid)
    assert len(kills) == 1, f"want one kill of pid {w.pid}\n{d.describe()}"
    assert f"pages-{w.pid}.img" in kills[0], f"the kill does not name the file: {kills[0]}"
