"""Pipes and FIFOs with the data queued in them (issue 7, item 4).

lzpipes (a parent and a child; a pipe each way between them with data
queued, a 256 KiB pipe filled to its capacity and a pipe with both ends in
the parent, a FIFO by path) is dumped and restored, eager and lazy: every
queued byte comes back in order, nothing more, the capacity and flags are
the dumped ones, and the pipes carry new data after. A shell pipeline (yes
| head | python3 | sha256sum) stopped with full pipes finishes after
restore with the checksum of the whole stream. files.img carries the bytes
(checked in `show`); a byte of them changed, or the file cut, is refused
before anything runs. A pipe whose other end is outside the dumped tree is
refused by name with the tree left running.
"""
import hashlib
import os
import subprocess
import sys
import time

import pytest

import harness

ERR = harness.ERROR_PREFIX


class LzPipes(harness.Workload):
    kind = "lzpipes"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def progress_file(self):
        return "result"


def spawn_lzpipes(env, name="pipes"):
    d = env.base / name
    w = env.spawn(LzPipes, [harness.WORKLOADS / "lzpipes", "--dir", d], d)
    env.pids.add(int(w.ready["child"]))
    return w


def dump_tree(env, w, img, pids):
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)
    for pid in pids:
        harness.reap(pid)
        assert harness.proc_state(pid) is None, f"pid {pid} still taken after the dump"
    return r


def pipe_entries(img):
    return [f for f in harness.file_entries(img) if f.get("kind") in ("FD_PIPE", "FD_FIFO")]


def test_pipes_restored(env, mode):
    w = spawn_lzpipes(env)
    child = int(w.ready["child"])
    img = env.path("img")
    dump_tree(env, w, img, [w.pid, child])
    ents = pipe_entries(img)
    caps = sorted({int(f["capacity"]) for f in ents})
    assert int(w.ready["cap"]) in caps, f"no pipe of capacity {w.ready['cap']} in {ents}"
    r = w.restored()
    env.restore(img, mode, w)
    assert harness.alive(child), f"child {child} not restored"
    res = r.check_pass()
    assert int(res["child"]) == child
    assert r.check_pass()["seq"] == "2"  # refilled, checked again: the pipes work on
    r.stop()


def test_shell_pipeline(env, mode):
    """bash -c 'yes | head -c N | python3 (waits for DIR/go) | sha256sum': dumped
    with its pipes full, it finishes after restore with the right checksum."""
    d = env.path("sh")
    n = 3_000_000
    mid = ("import os, sys, time\n"
           "open('ready.tmp', 'w').write('pid=%d\\n' % os.getppid())\n"
           "os.rename('ready.tmp', 'ready')\n"
           "while not os.path.exists('go'): time.sleep(0.02)\n"
           "while True:\n"
           "    b = os.read(0, 65536)\n"
           "    if not b: break\n"
           "    os.write(1, b)\n")
    script = f"yes 'lazarus pipeline' | head -c {n} | {harness.PYTHON} -c \"$MID\" | " \
             f"sha256sum > sum"
    with open(d / "out", "wb") as out:
        p = subprocess.Popen(["bash", "-c", script], cwd=d, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             close_fds=True, env=dict(os.environ, MID=mid))
    env.procs.append(p)
    env.pids.add(p.pid)
    harness.wait_for(lambda: (d / "ready").exists(), harness.READY_TIMEOUT, "the pipeline")
    kids = []

    def full():
        # yes and head blocked writing into full pipes, sha256sum reading an empty one
        kids[:] = [int(x) for x in open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()]
        return len(kids) == 4 and all(harness.proc_state(k) == "S" for k in kids)

    harness.wait_for(full, harness.READY_TIMEOUT, "the pipes to fill")
    time.sleep(0.2)
    img = env.path("img")
    r = env.lazarus("dump", "-t", p.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    p.wait(harness.EXIT_TIMEOUT)
    for k in kids:
        harness.reap(k)
    assert sum(len(f.get("data", "")) > 0 for f in pipe_entries(img)) >= 2, \
        "want data queued in at least two pipes at dump"
    env.pids.update(kids)
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    assert r.rc == 0 and not r.errors, r.describe()
    (d / "go").write_text("go\n")
    harness.reap(p.pid, timeout=harness.CHECK_TIMEOUT)
    want = hashlib.sha256((b"lazarus pipeline\n" * (n // 17 + 1))[:n]).hexdigest()
    got = (d / "sum").read_text().split()
    assert got and got[0] == want, f"pipeline output {got}, want {want}\n{harness.tail(d / 'out')}"


def find_pattern3(data):
    """Where lzpipes's `big` stream (pattern 3) starts in files.img."""
    pat = bytes(((i * 131 + (i >> 8) * 7 + 3 * 59 + 1) & 0xFF) for i in range(64))
    off = data.find(pat)
    assert off > 0, "the big pipe's bytes are not in files.img"
    return off


@pytest.mark.parametrize("how", ["flip", "cut"])
def test_pipe_data_damaged(env, how):
    """files.img with a byte of the queued data changed, or cut short inside
    it: refused with one line naming files.img, nothing runs."""
    w = spawn_lzpipes(env)
    child = int(w.ready["child"])
    img = env.path("img")
    dump_tree(env, w, img, [w.pid, child])
    f = img / "files.img"
    data = bytearray(f.read_bytes())
    off = find_pattern3(data) + 1000
    if how == "flip":
        data[off] ^= 0x01
    else:
        del data[off:]
    f.write_bytes(bytes(data))
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc != 0, f"restore of a damaged files.img succeeded\n{r.describe()}"
    assert len(r.errors) == 1 and "files.img" in r.errors[0], r.describe()
    assert harness.proc_state(w.pid) is None and harness.proc_state(child) is None


def test_pipe_peer_outside_refused(env):
    """A pipe whose write end only the caller holds: refused by name at
    dump, the process left running, its pipe and data untouched."""
    d = env.path("outside")
    rd, wr = os.pipe()
    code = ("import os, signal, sys\n"
            "signal.signal(signal.SIGUSR1, lambda *a: None)\n"
            "open('ready.tmp', 'w').write('pid=%d\\n' % os.getpid())\n"
            "os.rename('ready.tmp', 'ready')\n"
            "signal.pause()\n"
            "open('result', 'w').write(os.read(0, 100).decode())\n")
    p = subprocess.Popen([harness.PYTHON, "-c", code], cwd=d, stdin=rd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    os.close(rd)
    env.procs.append(p)
    env.pids.add(p.pid)
    os.write(wr, b"still here")
    harness.wait_for(lambda: (d / "ready").exists(), harness.READY_TIMEOUT, "the reader")
    img = env.path("img")
    r = env.lazarus("dump", "-t", p.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1, r.describe()
    assert len(r.errors) == 1, r.describe()
    assert f"process {p.pid} fd 0" in r.errors[0] and "outside the dumped tree" in r.errors[0], \
        r.describe()
    harness.assert_not_stopped(p.pid)
    os.kill(p.pid, 10)
    p.wait(harness.EXIT_TIMEOUT)
    os.close(wr)
    assert (d / "result").read_text() == "still here"


def test_fifo_gone_at_restore(env):
    """The FIFO removed between dump and restore: refused with one line
    naming it, before anything runs (a FIFO is not created again)."""
    w = spawn_lzpipes(env)
    child = int(w.ready["child"])
    img = env.path("img")
    dump_tree(env, w, img, [w.pid, child])
    fifo = w.dir / "fifo"
    fifo.unlink()
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"{fifo}: No such file or directory" in r.errors[0], r.describe()
    assert harness.proc_state(w.pid) is None and harness.proc_state(child) is None
    fifo.write_text("not a fifo")
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"{fifo}: a regular file, dumped as a FIFO" in r.errors[0], r.describe()
    assert harness.proc_state(w.pid) is None and harness.proc_state(child) is None


CONTROL_FIFO = r'''
import os, signal
os.mkfifo("ctl")
fd = os.open("ctl", os.O_RDONLY | os.O_NONBLOCK)  # no writer has come yet
signal.signal(signal.SIGUSR1, lambda *a: None)
open("ready.tmp", "w").write("pid=%d\n" % os.getpid())
os.rename("ready.tmp", "ready")
while True:
    signal.pause()
    try:
        got = os.read(fd, 100)
    except BlockingIOError:
        got = b"(nothing)"
    open("result.tmp", "wb").write(got)
    os.rename("result.tmp", "result")
'''


def test_control_fifo(env, mode):
    """A FIFO opened read-only and non-blocking before any writer came (a
    control FIFO): not taken for one with a writer outside the tree; after
    restore a writer that opens it by path reaches the process."""
    d = env.path("ctl")
    w = env.spawn(harness.Workload, [harness.PYTHON, "-c", CONTROL_FIFO], d)
    img = env.path("img")
    env.dump(w, img)
    env.restore(img, mode, w)
    fd = os.open(d / "ctl", os.O_WRONLY | os.O_NONBLOCK)  # ENXIO if no reader were there
    os.write(fd, b"ping")
    os.close(fd)
    os.kill(w.pid, 10)
    harness.wait_for(lambda: (d / "result").exists(), harness.CHECK_TIMEOUT, "the reader", w.diag)
    assert (d / "result").read_bytes() == b"ping"
