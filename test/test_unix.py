"""Unix sockets (issue 7, item 5), eager and lazy.

lzunix (a parent and its child) holds a stream, a datagram and a seqpacket
socketpair with data queued, a listener bound to a path with two clients
waiting in its backlog, an accepted connection of a listener with an
abstract name, a socket shut for writing, a datagram socket bound to a path
with datagrams queued from a named sender, sockets whose peer closed, an accepted socket whose listener closed and
removed its file, and options (SO_RCVBUF, SO_RCVTIMEO, SO_PASSCRED,
SO_PEEK_OFF, O_NONBLOCK). After restore each process reads
every queue byte for byte (datagram and seqpacket boundaries, the senders'
names), accepts the backlog in its order and talks over it, and checks
names, shutdown and options.

A socket connected outside the tree is refused with pid and fd named, the
tree left running; with --ext-unix-sk it is reconnected to the same
listener. A python3 server and client (socketserver) keep talking across a
dump and restore. Stale or foreign files at a socket's path, and queues cut
or changed in files.img, are refused before anything runs.
"""
import os
import signal
import socket
import subprocess
import time

import pytest

import harness
from test_state import pb_encode, pb_fields, varint
from test_trust import crc32c, read_framed, write_framed

ERR = harness.ERROR_PREFIX
FILE_ENTRY_UNIX_SK = 27  # files.proto
UNIX_RQUEUE, UNIX_RQ_BYTES = 12, 13  # sk-unix.proto


class LzUnix(harness.Workload):
    kind = "lzunix"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def child(self):
        w = LzUnix(self.env, self.dir / "child", int(self.ready["child"]))
        w.ready = {"pid": str(w.pid)}
        return w


class PyUnix(harness.Workload):
    kind = "pyunix"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def progress_file(self):
        return "progress"

    def client(self):
        w = PyUnix(self.env, self.dir, int(self.ready["client"]))
        w.ready = {"pid": str(w.pid)}
        return w


def spawn_unix(env, name="unix", ext=None):
    d = env.base / name
    argv = [harness.WORKLOADS / "lzunix", "--dir", d] + (["--ext", ext] if ext else [])
    w = env.spawn(LzUnix, argv, d)
    if not ext:
        env.pids.add(int(w.ready["child"]))
    return w


def dump_tree(env, w, img, *extra):
    """Dump (the tree is killed); every pid of it is free afterwards."""
    pids = [w.pid] + ([int(w.ready["child"])] if "child" in w.ready else []) + \
        ([int(w.ready["client"])] if "client" in w.ready else [])
    r = env.lazarus("dump", "-t", w.pid, "-D", img, *extra, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)
    for pid in pids:
        harness.reap(pid)
        assert harness.proc_state(pid) is None
    return r


def restore(env, img, mode, w):
    for pid in (w.pid, int(w.ready.get("child", w.ready.get("client", w.pid)))):
        env.pids.add(pid)
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}"
    harness.assert_not_stopped(w.pid, "restored " + w.kind)
    nw = w.restored()
    nw.ready = w.ready
    return nw


def test_unix_sockets(env, mode):
    w = spawn_unix(env)
    img = env.path("img")
    dump_tree(env, w, img)
    # The dumped tree is gone, its socket files stay: restore replaces them.
    assert (w.dir / "sock").is_socket() and (w.dir / "dgram").is_socket()
    w = restore(env, img, mode, w)
    w.check_pass()  # the parent first: it accepts, and writes to c2's server end
    w.child().check_pass()
    assert os.stat(w.dir / "sock").st_mode & 0o777 == os.stat(w.dir / "dgram").st_mode & 0o777
    w.stop()


def test_unix_sockets_dump_leave_running(env):
    """dump -R: the queues are read with MSG_PEEK, nothing is taken out of them."""
    w = spawn_unix(env)
    env.dump(w, env.path("img"), leave_running=True)
    w.check_pass()
    w.child().check_pass()
    w.stop()


# --- a peer outside the tree ---

ECHO = r"""
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(8)
open(path + ".ready", "w").close()
while True:
    c, _ = s.accept()
    if os.fork() == 0:
        s.close()
        f = c.makefile("rb")
        for line in f:
            c.sendall(line)
        os._exit(0)
    c.close()
"""


@pytest.fixture
def echo(env):
    """A unix stream echo server outside the tree: its socket's path."""
    path = env.base / "echo.sock"
    p = subprocess.Popen([harness.PYTHON, "-c", ECHO, str(path)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    env.procs.append(p)
    env.pids.add(p.pid)
    harness.wait_for(lambda: os.path.exists(f"{path}.ready"), harness.READY_TIMEOUT,
                     "the echo server")
    yield path
    os.killpg(p.pid, signal.SIGKILL)


def test_unix_external_peer_refused(env, echo):
    w = spawn_unix(env, ext=echo)
    fd = next(int(n) for n in os.listdir(f"/proc/{w.pid}/fd")
              if os.readlink(f"/proc/{w.pid}/fd/{n}").startswith("socket:"))
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert r.errors[0].startswith(f"{ERR}dump: process {w.pid} fd {fd}: unix stream socket "
                                  "connected to socket:["), r.errors
    assert r.errors[0].endswith("] outside the dumped tree: not supported "
                                "(--ext-unix-sk reconnects it by name)"), r.errors
    assert not list(img.glob("*.img"))
    harness.assert_not_stopped(w.pid, "lzunix")
    w.check_pass()
    w.stop()


def test_unix_ext_unix_sk(env, echo, mode):
    w = spawn_unix(env, ext=echo)
    img = env.path("img")
    dump_tree(env, w, img, "--ext-unix-sk")
    w = restore(env, img, mode, w)
    w.check_pass()  # "ping" echoed through a new connection to the same listener
    w.check_pass()
    w.stop()


@pytest.mark.parametrize("what", ["inflight", "embryo"])
def test_unix_refused(env, what):
    """fds in flight, and data sent into a connection not accepted yet: refused
    by name, the process left running with its queues untouched."""
    d = env.base / "refuse"
    w = env.spawn(LzUnix, [harness.WORKLOADS / "lzunix", "--dir", d, "--refuse", what], d)
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    want = {
        "inflight": f"{ERR}dump: process {w.pid} fd 10: unix stream socket: file descriptors "
                    "in flight (SCM_RIGHTS queued, not yet received): not supported",
        "embryo": f"{ERR}dump: process {w.pid} fd 10: unix listening socket: the connection "
                  f"of process {w.pid} fd 11 waiting in its backlog has data queued: "
                  "not supported",
    }[what]
    assert r.errors == [want], r.describe()
    assert not list(img.glob("*.img"))
    harness.assert_not_stopped(w.pid, "lzunix")
    if what == "inflight":
        # The peek installed copies of the fd in lazarus only: none leaked here.
        assert len(os.listdir(f"/proc/{w.pid}/fd")) == 5
    w.check_pass()
    w.stop()


# --- a real program ---

def test_unix_python_socketserver(env, mode):
    d = env.base / "py"
    w = env.spawn(PyUnix, [harness.PYTHON, harness.ROOT / "test" / "workloads" / "pyunix.py",
                           "--dir", d], d)
    c = w.client()
    env.pids.add(c.pid)
    c.wait_progress(0)
    c.check_pass()
    img = env.path("img")
    dump_tree(env, w, img)
    w = restore(env, img, mode, w)
    c = w.client()
    since = c.progress()
    c.wait_progress(since)
    r = c.check_pass()
    assert int(r["n"]) > 0, r
    w.stop()


# --- at restore: the socket's path taken ---

@pytest.mark.parametrize("what", ["file", "symlink", "live"])
def test_unix_path_taken(env, what):
    w = spawn_unix(env)
    img = env.path("img")
    dump_tree(env, w, img)
    path = w.dir / "sock"
    path.unlink()
    other = None
    if what == "file":
        path.write_text("not a socket")
    elif what == "symlink":
        (w.dir / "target").write_text("keep")
        path.symlink_to(w.dir / "target")
    else:
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(str(path))
        other.listen(1)
    r = env.lazarus(*env.restore_args(img, "eager", True), log=env.log_path("restore"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    why = "is in use by a live socket" if what == "live" else \
        "is taken by something that is not a socket"
    assert f"unix socket path {path} {why} (process {w.pid}, fd " in r.errors[0], r.errors
    assert harness.proc_state(w.pid) is None
    if what == "file":
        assert path.read_text() == "not a socket"
    elif what == "symlink":
        assert path.is_symlink() and (w.dir / "target").read_text() == "keep"
    else:
        assert path.is_socket()
        other.close()


# --- bad images ---

def rewrite_unix(img, change):
    """Rewrite every unix socket entry of files.img through change(fields) ->
    fields, with valid checksums and inventory.img following, as an
    attacker would; returns how many were changed."""
    p = img / "files.img"
    hdr, payloads = read_framed(p)
    changed, out = 0, []
    for pl in payloads:
        fields = pb_fields(pl)
        new = []
        for f, wt, v in fields:
            if f == FILE_ENTRY_UNIX_SK and wt == 2:
                sub = change(pb_fields(v))
                if sub is not None:
                    v = pb_encode(sub)
                    changed += 1
            new.append((f, wt, v))
        out.append(pb_encode(new))
    write_framed(p, hdr, out)
    data = p.read_bytes()
    size, crc = len(data), crc32c(data[:-16])
    inv = img / "inventory.img"
    ihdr, ipl = read_framed(inv)
    fixed = []
    for f, wt, v in pb_fields(ipl[0]):
        if f == 10 and wt == 2 and any(x == 1 and y == b"files.img" for x, _, y in pb_fields(v)):
            v = pb_encode([(x, w_, size if x == 2 else crc if x == 3 else y)
                           for x, w_, y in pb_fields(v)])
        fixed.append((f, wt, v))
    write_framed(inv, ihdr, [pb_encode(fixed)])
    return changed


def drop_last_msg(fields):
    msgs = [i for i, (f, _, _) in enumerate(fields) if f == UNIX_RQUEUE]
    if len(msgs) < 3:
        return None
    return fields[:msgs[-1]] + fields[msgs[-1] + 1:]


def grow_rq_bytes(fields):
    if not any(f == UNIX_RQUEUE for f, _, _ in fields):
        return None
    return [(f, wt, v + 1 if f == UNIX_RQ_BYTES else v) for f, wt, v in fields]


@pytest.mark.parametrize("how", ["cut", "changed"])
def test_unix_queue_bad_image(env, how):
    w = spawn_unix(env)
    img = env.path("img")
    dump_tree(env, w, img)
    n = rewrite_unix(img, drop_last_msg if how == "cut" else grow_rq_bytes)
    assert n > 0
    r = env.lazarus(*env.restore_args(img, "eager", True), log=env.log_path("restore"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert "files.img" in r.errors[0] and "(cut or corrupted)" in r.errors[0], r.errors
    assert harness.proc_state(w.pid) is None
    # Nothing was created: the stale socket files are still the dumped tree's.
    assert (w.dir / "sock").is_socket()


def test_unix_queue_truncated_image(env):
    w = spawn_unix(env)
    img = env.path("img")
    dump_tree(env, w, img)
    p = img / "files.img"
    os.truncate(p, p.stat().st_size - 40)
    r = env.lazarus(*env.restore_args(img, "eager", True), log=env.log_path("restore"))
    assert r.rc != 0 and len(r.errors) == 1 and "files.img" in r.errors[0], r.describe()
    assert harness.proc_state(w.pid) is None
