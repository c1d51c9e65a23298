"""Open file descriptions (issue 7, items 1 and 2), eager and lazy.

lzfiles (a parent and a forked child sharing every fd) is dumped and
restored and checks itself: an O_APPEND log both append to through one
description (and a dup of it), a file whose offset the child moves and the
parent sees, status flags (O_APPEND, O_NONBLOCK, O_NOATIME, O_DIRECT,
O_ASYNC with its owner and signal), a deleted file read back byte for
byte, a directory fd used with openat, an O_PATH fd. From outside, the
flock, POSIX and OFD locks it held at dump time are held again (by the
right process for POSIX). A file grown since the dump is refused, one only
written to (same size) is a warning; a corrupted deleted-file image is
refused before anything runs. A bash script whose processes all inherit
its stdout, reading a file line by line, comes back and goes on where it
was.
"""
import errno
import fcntl
import os
import signal
import struct
import subprocess

import pytest

import harness

ERR = "lazarus: Error: "
F_OFD_SETLK = 37


class LzFiles(harness.Workload):
    kind = "lzfiles"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())


def spawn(env):
    d = env.base / "files"
    w = env.spawn(LzFiles, [harness.WORKLOADS / "lzfiles", "--dir", d], d)
    child = int(w.ready["child"])
    env.pids.add(child)
    w.pids = {"pid": w.pid, "child": child}
    return w


def dump_tree(env, w, img):
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    if w.proc is not None:
        w.proc.wait(harness.EXIT_TIMEOUT)
    for pid in w.pids.values():
        harness.reap(pid)  # reparented to us (a subreaper)
        assert harness.proc_state(pid) is None
    return r


def restore(env, img, mode, w, transient=()):
    """restore -d; every process but the TRANSIENT ones (they may have ended
    since) must run."""
    env.pids.update(w.pids.values())
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    assert r.rc == 0 and not r.errors, r.describe()
    for pid in set(w.pids.values()) - set(transient):
        assert harness.alive(pid), f"{pid} not restored\n{r.describe()}"
    nw = w.restored()
    nw.pids = w.pids
    return nw, r


def flock_held(path):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def posix_held(path, start, length):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
        return False
    except OSError as e:
        assert e.errno in (errno.EAGAIN, errno.EACCES), e
        return True
    finally:
        os.close(fd)


def ofd_held(path):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, 0, 0, 0, 0))
        return False
    except OSError as e:
        assert e.errno == errno.EAGAIN, e
        return True
    finally:
        os.close(fd)


def posix_owner(path):
    """The pids of the POSIX locks /proc/locks shows on PATH."""
    ino = os.stat(path).st_ino
    out = []
    with open("/proc/locks") as f:
        for line in f:
            w = line.split()
            if w[1] == "POSIX" and int(w[5].split(":")[2]) == ino:
                out.append(int(w[4]))
    return out


def assert_locks(w):
    d = w.dir
    assert flock_held(d / "flock.lck"), "the flock is not held"
    assert posix_held(d / "posix.lck", 10, 10), "bytes 10..19 of posix.lck are not locked"
    assert not posix_held(d / "posix.lck", 0, 10), "bytes 0..9 of posix.lck are locked"
    assert posix_owner(d / "posix.lck") == [w.pid], "the POSIX lock is not the parent's"
    assert ofd_held(d / "ofd.lck"), "the OFD lock is not held"


@pytest.fixture
def lzfiles(env):
    w = spawn(env)
    w.check_pass()
    assert_locks(w)
    img = env.path("img")
    dump_tree(env, w, img)
    return w, img


def test_files_restored(env, mode, lzfiles):
    w, img = lzfiles
    files = harness.file_entries(img)
    deleted = [f for f in files if f.get("deleted")]
    assert len(deleted) == 1 and deleted[0]["path"] == str((w.dir / "deleted.bin").resolve())
    assert (img / f"fddata-{deleted[0]['id']}.img").exists()
    log = [f for f in files if f.get("path") == str((w.dir / "shared.log").resolve())]
    assert len(log) == 1, "parent's and child's fds 10 and 11: one description"

    nw, _ = restore(env, img, mode, w)
    assert_locks(nw)
    for seq in (2, 3):
        r = nw.check_pass()
        assert int(r["seq"]) == seq
    lines = (w.dir / "shared.log").read_text().split()
    assert lines == ["P1", "C1", "P2", "C2", "P3", "C3"], lines


def test_file_grown_refused(env, mode, lzfiles):
    """A file the process has open that changed size: refused, nothing runs;
    put back as it was, the same images restore."""
    w, img = lzfiles
    data = (w.dir / "data.bin").resolve()
    with open(data, "ab") as f:
        f.write(b"more")
    env.pids.update(w.pids.values())
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    assert r.rc == 1 and len(r.errors) == 1 and r.errors[0] in [
        f"{ERR}restore: {data}: changed size since the dump (4096 bytes, now 4100): "
        f"put it back as it was (process {pid}, fd 12)" for pid in w.pids.values()], \
        r.describe()
    for pid in w.pids.values():
        assert harness.proc_state(pid) is None
    os.truncate(data, 4096)
    nw, _ = restore(env, img, mode, w)
    nw.check_pass()


def test_file_written_warns(env, lzfiles):
    """Same size, another mtime: a warning; a file only written to (its
    stdout) that grew: a warning; the restore goes on."""
    w, img = lzfiles
    data = (w.dir / "data.bin").resolve()
    out = (w.dir / "out").resolve()
    st = os.stat(data)
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    size = out.stat().st_size
    with open(out, "ab") as f:
        f.write(b"a later run\n")
    nw, r = restore(env, img, "eager", w)
    log = r.log.read_text()
    assert f"Warn: restore: {data} was written since the dump (same size, another mtime)" in \
        log, r.describe()
    assert f"Warn: restore: {out} changed size since the dump ({size} bytes, now {size + 12}); "\
        "the process only writes it, from where it was" in log, r.describe()
    nw.check_pass()


@pytest.mark.parametrize("how", ["flip", "cut"])
def test_deleted_content_corrupted(env, lzfiles, how):
    """The saved content of the deleted file damaged: refused naming the
    image, before any process exists."""
    w, img = lzfiles
    (bad,) = img.glob("fddata-*.img")
    data = bytearray(bad.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x5A
    else:
        data = data[:len(data) // 2]
    bad.write_bytes(bytes(data))
    env.pids.update(w.pids.values())
    r = env.lazarus(*env.restore_args(img, "eager", True), log=env.log_path("restore"))
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert r.errors[0].startswith(f"{ERR}restore: {bad.name}: "), r.describe()
    for pid in w.pids.values():
        assert harness.proc_state(pid) is None


class Shell(harness.Workload):
    kind = "bash"


# bash with its stdout to a file, inherited by every process it starts: a
# background sleep, and a loop reading input.txt a line every 50 ms through
# fd 3 (bash's read seeks back to the end of the line it read: the offset is
# exact), each line echoed by a subshell.
SCRIPT = r"""
exec >out.txt 2>&1 </dev/null 3<input.txt
sleep 1000 &
echo "pid=$$ bg=$!" >ready.tmp; mv ready.tmp ready
while read -r l <&3; do ( echo "got $l" ); sleep 0.05; done
echo done
wait
echo waited
"""


def test_shell_script(env, mode):
    """Every line read once, in order, across the dump and restore: the
    shell's read offset and its shared stdout came back."""
    d = env.base / "sh"
    d.mkdir(parents=True)
    n = 200
    (d / "input.txt").write_text("".join(f"line{i}\n" for i in range(n)))
    w = env.spawn(Shell, ["/bin/bash", "-c", SCRIPT], d)
    bg = int(w.ready["bg"])
    env.pids.add(bg)
    harness.wait_for(lambda: (d / "out.txt").read_text().count("got") >= 20,
                     harness.READY_TIMEOUT, "bash to read 20 lines")
    # Whatever bash's children are at this moment (the sleep, a subshell
    # echoing, a sleep 0.05) are part of the tree.
    with open(f"/proc/{w.pid}/task/{w.pid}/children") as f:
        kids = [int(x) for x in f.read().split()]
    w.pids = {"pid": w.pid, **{f"k{i}": k for i, k in enumerate(kids)}}
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    w.proc.wait(harness.EXIT_TIMEOUT)
    pstree = harness.show(img / "pstree.img")["entries"]
    w.pids = {f"p{i}": e["pid"] for i, e in enumerate(pstree)}
    for pid in w.pids.values():
        harness.reap(pid)
    before = (d / "out.txt").read_text().count("got")
    assert before < n, "bash finished before the dump: make input.txt longer"
    # bash and its background sleep run on; a subshell or a sleep 0.05 may be over.
    restore(env, img, mode, w, transient=set(w.pids.values()) - {w.pid, bg})
    harness.wait_for(lambda: "done" in (d / "out.txt").read_text(),
                     harness.READY_TIMEOUT + n * 0.2, "bash to read every line")
    out = (d / "out.txt").read_text().split("\n")
    assert [l for l in out if l.startswith("got ")] == [f"got line{i}" for i in range(n)], \
        f"lines lost or repeated around the dump (line {before})"
    assert harness.alive(bg), "the background sleep"
    os.kill(bg, signal.SIGTERM)
    st = harness.reap(w.pid)  # reparented to us (-d): it exits once the sleep is reaped
    assert st is not None and os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
    assert (d / "out.txt").read_text().endswith("done\nwaited\n")


def test_store_above_nofile_refused(env, lzfiles):
    """The store of open files sits above the highest fd of the dump: under
    too low an RLIMIT_NOFILE the restore says so and creates nothing."""
    w, img = lzfiles
    env.pids.update(w.pids.values())
    argv = ["prlimit", "--nofile=40:40", str(harness.LAZARUS)] + \
        [str(a) for a in env.restore_args(img, "eager", True)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=harness.LAZARUS_TIMEOUT)
    errors = harness.error_lines(p.stderr)
    nr = len(harness.file_entries(img))
    assert p.returncode == 1 and errors == [
        f"{ERR}restore: files.img: {nr} open files above fd 20 do not fit under RLIMIT_NOFILE 40 "
        f"(raise it to {21 + nr + 64})"], p.stderr
    for pid in w.pids.values():
        assert harness.proc_state(pid) is None
