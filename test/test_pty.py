"""Pseudo-terminal pairs inside the tree (issue 7, item 9, in part).

A python3 parent holds a pty master, its child the slave (neither a
controlling terminal: --shell-job is not supported yet), with the echo off,
VMIN 3, output post-processing off, a 33x77 window and a packet mode off.
Dumped and restored, eager and lazy: the pair comes back as one (a new
index), with the same termios and window size, and a line written to the
master reaches the child through the slave, whose answer comes back.
Data queued in a pair is refused by name, the tree left running.
"""
import os
import signal

import harness

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
