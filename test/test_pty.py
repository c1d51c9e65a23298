"""Pseudo-terminal pairs inside the tree (issue 7, item 9).

A python3 parent holds a pty master, its child the slave (not a controlling
terminal), with the echo off, VMIN 3, output post-processing off, a 33x77
window and a packet mode off. Dumped and restored, eager and lazy: the pair
comes back as one (a new index), with the same termios and window size, and
a line written to the master reaches the child through the slave, whose
answer comes back. Data queued in a pair is refused by name, the tree left
running.

The controlling terminal (CTTY): the parent holds the master; its child
leads a session whose controlling terminal is the slave, and made its own
child's group the terminal's foreground group (the shape of tmux, screen,
sshd, expect). Restored, eager and lazy: the master names the same session
and foreground group (TIOCGSID, TIOCGPGRP), both processes have the slave
as their terminal (/proc/PID/stat), a line reaches the foreground reader
and ^C typed on the master is a SIGINT to the foreground group.

Refused by name: a session leader whose terminal's master is outside the
tree; crafted images (a session no process leads, a foreground group that
is not the session's, terminal fields on a slave, a slave whose index and
path disagree), before any process is created.

--shell-job: test_shell_job*.
"""
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

import harness
from test_state import crc32c, img_header_size, pb_encode, pb_fields

PTYPAIR = r'''
import fcntl, os, signal, struct, sys, termios
TIOCGPTN, TIOCSPTLCK = 0x80045430, 0x40045431
m = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
fcntl.ioctl(m, TIOCSPTLCK, struct.pack("i", 0))
n = struct.unpack("I", fcntl.ioctl(m, TIOCGPTN, b"\0" * 4))[0]
s = os.open("/dev/pts/%d" % n, os.O_RDWR | os.O_NOCTTY)
a = termios.tcgetattr(s)
a[1] &= ~termios.OPOST
a[3] &= ~termios.ECHO
a[6][termios.VMIN] = 3
termios.tcsetattr(s, termios.TCSANOW, a)
fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))
want = termios.tcgetattr(m)
signal.signal(signal.SIGUSR1, lambda *x: None)
child = os.fork()
if child == 0:
    os.close(m)
    while True:
        line = b""
        while not line.endswith(b"\n"):
            line += os.read(s, 100)
        os.write(s, b"pong:" + line)
os.close(s)


def publish(name, text):
    open(name + ".tmp", "w").write(text)
    os.rename(name + ".tmp", name)


queue = sys.argv[1:] == ["queue"]
if queue:
    os.write(m, b"typed\n")  # the child's answer stays queued for the master
publish("ready", "pid=%d child=%d\n" % (os.getpid(), child))
while True:
    signal.pause()
    fails = []
    if termios.tcgetattr(m) != want:
        fails.append("termios %s, want %s" % (termios.tcgetattr(m), want))
    ws = struct.unpack("HHHH", fcntl.ioctl(m, termios.TIOCGWINSZ, b"\0" * 8))
    if ws[:2] != (33, 77):
        fails.append("window %s" % (ws,))
    os.write(m, b"ping\n")
    got = b""
    while not got.endswith(b"\n"):
        got += os.read(m, 100)
    if got != b"pong:ping\n":
        fails.append("answer %r" % got)
    publish("result", ("FAIL pid=%d: " % os.getpid() + "; ".join(fails)) if fails
            else "PASS pid=%d" % os.getpid())
'''


class PyPty(harness.Workload):
    kind = "pypty"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())


def spawn(env, *args):
    d = env.path("pty")
    w = env.spawn(PyPty, [harness.PYTHON, "-c", PTYPAIR, *args], d)
    env.pids.add(int(w.ready["child"]))
    return w


def test_pty_pair_restored(env, mode):
    w = spawn(env)
    child = int(w.ready["child"])
    w.check_pass()  # the pair works before the dump
    img = env.path("img")
    env.dump(w, img)
    harness.reap(child)
    kinds = [f for f in harness.file_entries(img) if f["kind"] == "FD_PTY"]
    assert sorted(f["master"] for f in kinds) == [False, True], kinds
    r = env.restore(img, mode, w)
    assert harness.alive(child)
    r.check_pass()
    r.check_pass()


def test_pty_queued_input_refused(env):
    w = spawn(env, "queue")
    r = env.lazarus("dump", "-t", w.pid, "-D", env.path("img"), log=env.log_path("dump"))
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    # "typed" waits as input, or the child's answer waits for the master: either is named
    assert "pty /dev/" in r.errors[0] and "bytes queued" in r.errors[0], r.describe()
    harness.assert_not_stopped(w.pid)
    harness.assert_not_stopped(int(w.ready["child"]), "child")
    os.kill(w.pid, signal.SIGKILL)


CTTY = r"""
import fcntl, os, signal, struct, sys, termios
TIOCGPTN, TIOCSPTLCK, TIOCGSID = 0x80045430, 0x40045431, 0x5429
m = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
fcntl.ioctl(m, TIOCSPTLCK, struct.pack("i", 0))
path = "/dev/pts/%d" % struct.unpack("I", fcntl.ioctl(m, TIOCGPTN, b"\0" * 4))[0]
a = termios.tcgetattr(m)
a[1] &= ~termios.OPOST
a[3] &= ~(termios.ECHO | termios.ECHOCTL)
termios.tcsetattr(m, termios.TCSANOW, a)
fcntl.ioctl(m, termios.TIOCSWINSZ, struct.pack("HHHH", 41, 101, 0, 0))
want = termios.tcgetattr(m)
r, w = os.pipe()
leader = os.fork()
if leader == 0:  # leads a session whose terminal is the slave
    os.close(m)
    os.setsid()
    s = os.open(path, os.O_RDWR | os.O_NOCTTY)
    fcntl.ioctl(s, termios.TIOCSCTTY, 0)
    fg = os.fork()
    if fg == 0:  # the foreground group's reader
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, lambda *x: os.write(s, b"intr\n"))
        os.read(r, 1)  # the leader made our group the foreground one
        while True:
            line = b""
            while not line.endswith(b"\n"):
                line += os.read(s, 100)
            os.write(s, b"pong:" + line)
    try:
        os.setpgid(fg, fg)
    except OSError:
        pass  # it did it first
    os.tcsetpgrp(s, fg)
    os.write(w, b"g")
    while True:
        os.waitpid(fg, 0)
os.close(r)
os.close(w)
sid = 0
while True:  # the leader's child is the foreground group (wait for it)
    try:
        sid = struct.unpack("i", fcntl.ioctl(m, TIOCGSID, b"\0" * 4))[0]
        fg = struct.unpack("i", fcntl.ioctl(m, termios.TIOCGPGRP, b"\0" * 4))[0]
    except OSError:  # ENOTTY: no session has it yet
        continue
    if sid == leader and fg != leader:
        break
signal.signal(signal.SIGUSR1, lambda *x: None)


def publish(name, text):
    open(name + ".tmp", "w").write(text)
    os.rename(name + ".tmp", name)


def stat_of(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[4]), int(f[5])  # tty_nr, tpgid


def answer():
    got = b""
    while not got.endswith(b"\n"):
        got += os.read(m, 100)
    return got


publish("ready", "pid=%d leader=%d fg=%d\n" % (os.getpid(), leader, fg))
while True:
    signal.pause()
    fails = []
    if termios.tcgetattr(m) != want:
        fails.append("termios %s, want %s" % (termios.tcgetattr(m), want))
    ws = struct.unpack("HHHH", fcntl.ioctl(m, termios.TIOCGWINSZ, b"\0" * 8))
    if ws[:2] != (41, 101):
        fails.append("window %s" % (ws,))
    got = (struct.unpack("i", fcntl.ioctl(m, TIOCGSID, b"\0" * 4))[0],
           struct.unpack("i", fcntl.ioctl(m, termios.TIOCGPGRP, b"\0" * 4))[0])
    if got != (leader, fg):
        fails.append("session and foreground group %s, want %s" % (got, (leader, fg)))
    n = struct.unpack("I", fcntl.ioctl(m, TIOCGPTN, b"\0" * 4))[0]
    rdev = os.stat("/dev/pts/%d" % n).st_rdev
    for pid in (leader, fg):
        if stat_of(pid) != (rdev, fg):
            fails.append("process %d: tty_nr, tpgid %s, want %s" % (pid, stat_of(pid), (rdev, fg)))
    os.write(m, b"ping\n")
    got = answer()
    if got != b"pong:ping\n":
        fails.append("answer %r" % got)
    os.write(m, b"\x03")  # ^C: SIGINT to the foreground group
    got = answer()
    if got != b"intr\n":
        fails.append("after ^C %r" % got)
    publish("result", ("FAIL pid=%d: " % os.getpid() + "; ".join(fails)) if fails
            else "PASS pid=%d" % os.getpid())
"""


def spawn_ctty(env):
    w = env.spawn(PyPty, [harness.PYTHON, "-c", CTTY], env.path("ctty"))
    env.pids.update(int(w.ready[k]) for k in ("leader", "fg"))
    return w


def test_ctty_restored(env, mode):
    w = spawn_ctty(env)
    leader, fg = int(w.ready["leader"]), int(w.ready["fg"])
    w.check_pass()  # the terminal works before the dump
    img = env.path("img")
    env.dump(w, img)
    harness.reap(leader)
    harness.reap(fg)
    masters = [f for f in harness.file_entries(img) if f["kind"] == "FD_PTY" and f["master"]]
    assert [(f.get("ctty_of"), f.get("fg_pgrp")) for f in masters] == [(leader, fg)], masters
    r = env.restore(img, mode, w)
    assert harness.alive(leader) and harness.alive(fg)
    r.check_pass()
    r.check_pass()


OUTSIDE = r"""
import fcntl, os, sys, termios
s = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
fcntl.ioctl(s, termios.TIOCSCTTY, 0)
open("ready.tmp", "w").write("pid=%d\n" % os.getpid())
os.rename("ready.tmp", "ready")
while True:
    os.read(s, 100)
"""


def test_ctty_master_outside_refused(env):
    """A session leader whose terminal's master is not in the tree (here:
    the test's): refused by name, the process left running."""
    m, s = os.openpty()
    try:
        path = os.ttyname(s)
        w = env.spawn(PyPty, [harness.PYTHON, "-c", OUTSIDE, path], env.path("out"))
        r = env.lazarus("dump", "-t", w.pid, "-D", env.path("img"), log=env.log_path("dump"))
        assert r.rc == 1 and r.errors == [
            f"{harness.ERROR_PREFIX}dump: process {w.pid} leads a session whose controlling terminal {path} has its "
            "master outside the tree: not supported"], r.describe()
        harness.assert_not_stopped(w.pid)
    finally:
        os.close(m)
        os.close(s)


# --- crafted images -------------------------------------------------------

def reframe_all(path, edit):
    """Rewrite every message of a framed image (images/image.h) through
    edit(index, payload), keeping the framing valid; return (size, crc)."""
    data = path.read_bytes()
    hdr = img_header_size(data)
    marker, nr, _, magic = struct.unpack("<IIII", data[-16:])
    off, body = hdr, bytearray(data[:hdr])
    for i in range(nr):
        length, _ = struct.unpack_from("<II", data, off)
        payload = edit(i, data[off + 8:off + 8 + length])
        body += struct.pack("<II", len(payload), crc32c(payload)) + payload
        off += 8 + length
    tail_crc = crc32c(bytes(body))
    path.write_bytes(bytes(body) + struct.pack("<IIII", marker, nr, tail_crc, magic))
    return len(body) + 16, tail_crc


def craft(imgdir, name, edit):
    """Edit image `name` and make inventory.img list its new size and crc."""
    size, crc = reframe_all(imgdir / name, edit)

    def fix(i, payload):
        out = []
        for f, wt, v in pb_fields(payload):
            if f == 10 and wt == 2:
                sub = pb_fields(v)
                if any(sf == 1 and x == name.encode() for sf, _, x in sub):
                    v = pb_encode([(sf, sw, size if sf == 2 else crc if sf == 3 else x)
                                   for sf, sw, x in sub])
            out.append((f, wt, v))
        return pb_encode(out)

    reframe_all(imgdir / "inventory.img", fix)


def edit_pty(master, fields):
    """An edit of files.img: in the (first) pty entry that is a master (or
    a slave), set the pty_entry (file_entry field 31) varint fields."""
    done = []

    def edit(i, payload):
        out = []
        for f, wt, v in pb_fields(payload):
            if f == 31 and not done:
                sub = pb_fields(v)
                if any(sf == 2 and sv == int(master) for sf, _, sv in sub):
                    sub = [x for x in sub if x[0] not in fields]
                    sub += [(k, 0, val) for k, val in fields.items()]
                    v = pb_encode(sub)
                    done.append(i)
            out.append((f, wt, v))
        return pb_encode(out)
    return edit, done


def edit_entry(index, fields):
    """An edit of message INDEX: set its varint fields."""
    def edit(i, payload):
        if i != index:
            return payload
        return pb_encode([x for x in pb_fields(payload) if x[0] not in fields] +
                         [(k, 0, v) for k, v in fields.items()])
    return edit


@pytest.fixture
def ctty_dump(env):
    w = spawn_ctty(env)
    img = env.path("img")
    env.dump(w, img)
    harness.reap(int(w.ready["leader"]))
    harness.reap(int(w.ready["fg"]))
    return w, img


BAD = {
    "shell-job-not-root": ("pstree.img", lambda w: {50: 1},
                           "pstree.img: process {leader}: a shell job's fields on a process "
                           "that is not the root"),
    "no-leader": (True, lambda w: {50: 999999},
                  "files.img: file {id}: pty {index} is the controlling terminal of session "
                  "999999, which no live process of pstree.img leads"),
    "not-leader": (True, lambda w: {50: int(w.ready["fg"])},
                   "files.img: file {id}: pty {index} is the controlling terminal of session "
                   "{fg}, which no live process of pstree.img leads"),
    "fg-elsewhere": (True, lambda w: {51: w.pid},
                     "files.img: file {id}: the foreground group {pid} of pty {index} is not a "
                     "group of session {leader} in pstree.img"),
    "ctty-on-slave": (False, lambda w: {50: int(w.ready["leader"])},
                      "files.img: file {id}: a pty slave with a master's terminal fields"),
    "slave-index": (False, lambda w: {1: 4000},
                    "files.img: file {id} (pty): pty slave 4000 named {path}"),
}


@pytest.mark.parametrize("what", BAD)
def test_bad_tty_image_refused(ctty_dump, env, mode, what):
    """A crafted files.img (its owner could write it): one line naming the
    file and the problem, and no process is created."""
    w, img = ctty_dump
    master, fields, want = BAD[what]
    entry = [f for f in harness.file_entries(img)
             if f["kind"] == "FD_PTY" and f["master"] == bool(master)][0]
    if master == "pstree.img":  # the second process: the session leader
        edit = edit_entry(1, fields(w))
        done = [1]
        craft(img, master, edit)
    else:
        edit, done = edit_pty(master, fields(w))
        craft(img, "files.img", edit)
    assert done
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert r.errors[0] == harness.ERROR_PREFIX + "restore: " + want.format(
        id=entry["id"], index=entry["index"], pid=w.pid, leader=w.ready["leader"], fg=w.ready["fg"],
        path=entry.get("path")), r.describe()
    for pid in (w.pid, int(w.ready["leader"]), int(w.ready["fg"])):
        assert harness.proc_state(pid) is None, f"pid {pid} exists after a refused restore"


# --- --shell-job ------------------------------------------------------------

# A shell with job control, in miniature: runs the job in a group of its
# own, makes it the terminal's foreground group, waits for it.
MINISHELL = r"""
import os, sys, time
job = os.fork()
if job == 0:
    os.setpgid(0, 0)
    while os.tcgetpgrp(0) != os.getpid():
        time.sleep(0.01)
    os.execv(sys.argv[1], sys.argv[1:])
try:
    os.setpgid(job, job)
except OSError:
    pass  # it did it first
os.tcsetpgrp(0, job)
os.waitpid(job, 0)
"""

# The job: answers each line typed on its terminal with a count, the line in
# upper case, whether a state it built is intact, its terminal and whether
# it is in the foreground.
JOB = r"""
import hashlib, os, signal, sys
state = {i: i * i for i in range(200000)}
digest = hashlib.sha256(repr(sorted(state.items())).encode()).hexdigest()
kid = os.fork()
if kid == 0:  # in the job's group and session, on its terminal
    while True:
        signal.pause()
open("ready.tmp", "w").write("pid=%d kid=%d\n" % (os.getpid(), kid))
os.rename("ready.tmp", "ready")
n = 0
while True:
    line = b""
    while not line.endswith(b"\n"):
        line += os.read(0, 100)
    n += 1
    ok = hashlib.sha256(repr(sorted(state.items())).encode()).hexdigest() == digest
    os.write(1, ("answer %d %s state=%s tty=%s fg=%s\n" % (
        n, line.decode().strip().upper(), "ok" if ok else "BAD", os.ttyname(0),
        os.tcgetpgrp(0) == os.getpgrp())).encode())
"""


def pty_session(argv, cwd):
    """argv run as the leader of a new session on a new pty: (pid, master)."""
    pid, m = pty.fork()
    if pid == 0:
        try:
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # only the terminal
            os.chdir(cwd)
            os.execv(str(argv[0]), [str(a) for a in argv])
        finally:
            os._exit(127)
    return pid, m


def read_until(m, text, what, pid=None):
    """What the terminal of master M shows, until TEXT appears."""
    got, deadline = b"", time.monotonic() + harness.CHECK_TIMEOUT
    while text.encode() not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} on the terminal of {what}: {got!r}"
        if select.select([m], [], [], min(left, 1))[0]:
            try:
                got += os.read(m, 4096)
            except OSError:  # EIO: every slave closed
                raise AssertionError(f"terminal of {what} closed before {text!r}: {got!r}")
        elif pid and harness.proc_state(pid) is None:
            raise AssertionError(f"{what} {pid} is gone before {text!r}: {got!r}")
    return got.decode()


def stat_ids(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return {"pgrp": int(fields[2]), "session": int(fields[3]), "tty_nr": int(fields[4]),
            "tpgid": int(fields[5])}


def wait_exit(pid):
    _, st = os.waitpid(pid, 0)
    return st


def test_shell_job(env, mode):
    """A job of an interactive shell (a process and its child, in the job's
    group): refused without --shell-job (one line naming pid, tty and flag;
    the job runs on), dumped with it, refused at restore without it and
    without a terminal, restored with it from another pty session: both
    join that session in the job's group, the terminal's foreground group,
    and the job answers a line typed there with its state intact."""
    d = env.path("job")
    shell, m1 = pty_session([harness.PYTHON, "-c", MINISHELL, harness.PYTHON, "-c", JOB], d)
    env.pids.add(shell)
    harness.wait_for(lambda: (d / "ready").exists(), harness.READY_TIMEOUT, "the job")
    ready = dict(w.split("=") for w in (d / "ready").read_text().split())
    job, kid = int(ready["pid"]), int(ready["kid"])
    env.pids.update((job, kid))
    tty1 = os.readlink(f"/proc/{job}/fd/0")
    os.write(m1, b"one\n")
    read_until(m1, f"answer 1 ONE state=ok tty={tty1} fg=True", "the job", job)

    img = env.path("img")
    r = env.lazarus("dump", "-t", job, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1 and r.errors == [
        f"{harness.ERROR_PREFIX}dump: process {job} has the controlling terminal {tty1} of "
        f"session {shell}, led from outside the tree: dump it with --shell-job"], r.describe()
    harness.assert_not_stopped(job)
    os.write(m1, b"two\n")
    read_until(m1, "answer 2 TWO state=ok", "the job", job)

    r = env.lazarus("dump", "--shell-job", "-t", job, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    wait_exit(shell)  # its job was killed by the dump
    os.close(m1)
    harness.wait_for(lambda: harness.proc_state(job) is None, harness.EXIT_TIMEOUT, "job's pid")
    harness.reap(kid)  # orphaned by the dump's kill: ours (a subreaper)
    root = harness.show(img / "pstree.img")["entries"][0]
    assert root["sid"] == shell and root["shell_job"] and root["shell_fg_pgrp"] == job, root

    lazy = ["--lazy-pages"] if mode == "lazy" else []
    r = env.lazarus("restore", "-D", img, *lazy, log=env.log_path("restore"))
    assert r.rc == 1 and r.errors == [
        f"{harness.ERROR_PREFIX}restore: process {job} was dumped as a shell job (its session "
        f"{shell} led from outside, its terminal outside): restore it with --shell-job"], \
        r.describe()
    r = env.lazarus("restore", "--shell-job", "-D", img, *lazy, log=env.log_path("restore"))
    assert r.rc == 1 and r.errors == [
        f"{harness.ERROR_PREFIX}restore: --shell-job: the standard input of lazarus is not "
        f"the controlling terminal of its session: process {job} has no terminal to attach "
        "to"], r.describe()
    assert harness.proc_state(job) is None

    log = env.log_path("restore")
    rst, m2 = pty_session([harness.LAZARUS, "restore", "--shell-job", "-D", img, *lazy,
                           "-o", log, "-v4"], d)
    env.pids.add(rst)
    try:
        harness.wait_for(lambda: harness.proc_state(job) not in (None, "Z"),
                         harness.LAZARUS_TIMEOUT, "the restored job", lambda: harness.tail(log))
        tty2 = os.readlink(f"/proc/{rst}/fd/0")
        os.write(m2, b"three\n")
        read_until(m2, f"answer 3 THREE state=ok tty={tty2} fg=True", "the restored job", job)
        for pid in (job, kid):
            ids = stat_ids(pid)
            assert ids == {"pgrp": job, "session": rst, "tty_nr": os.stat(tty2).st_rdev,
                           "tpgid": job}, (pid, ids)
        assert harness.proc_ppid(kid) == job
        os.write(m2, b"four\n")
        read_until(m2, "answer 4 FOUR state=ok", "the restored job", job)
    finally:
        try:
            os.kill(job, signal.SIGKILL)
        except ProcessLookupError:
            pass
    st = wait_exit(rst)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 128 + signal.SIGKILL, st
    os.close(m2)
