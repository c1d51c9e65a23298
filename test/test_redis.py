"""A real server: redis-server (Debian package redis-server) in a temporary
directory on a free port, loaded with 100,000 keys plus a few of each type,
checkpointed and restored eagerly and lazily. Checked through redis's own
protocol: DEBUG DIGEST (a hash of the whole dataset) equal after restore,
new clients and writes accepted, and with --tcp-established a client
connected before the dump gets the right answers on the same connection.

redis also listens on a unix socket in its directory, which takes new
clients after the restore too.
"""
import os
import shutil
import socket
import subprocess
import time

import pytest

import harness

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
NKEYS = 100_000

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS),
                                reason="redis-server not installed (make deps)")


class Resp:
    """A minimal RESP2 client: one connection, one command at a time."""

    def __init__(self, port, timeout=30, unix=None):
        if unix:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(str(unix))
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise AssertionError(f"redis error: {rest.decode()}")
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise AssertionError(f"redis: unexpected reply {line!r}")

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self._reply()

    def close(self):
        self.s.close()

    def quit(self):
        """QUIT and wait for redis to close its end: closing ours first would
        leave redis's socket half-closed (CLOSE_WAIT) for a moment, which a
        dump at that moment refuses."""
        assert self("QUIT") == "OK"
        while self.s.recv(65536):
            pass
        self.s.close()


class Redis(harness.Server):
    kind = "redis-server"
    logs = ("redis.log",)


def start_redis(env):
    d = env.path("redis")
    port = harness.free_port()
    argv = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
            "--save", "", "--appendonly", "no", "--logfile", str(d / "redis.log"),
            "--enable-debug-command", "local", "--unixsocket", str(d / "redis.sock"),
            "--unixsocketperm", "700"]
    proc = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    env.procs.append(proc)
    env.pids.add(proc.pid)
    w = Redis(env, d, proc.pid, proc)
    w.port = port
    w.sock = d / "redis.sock"

    def up():
        if proc.poll() is not None:
            raise harness.HarnessError(f"redis-server exited with {proc.returncode}\n{w.diag()}")
        try:
            c = Resp(port, timeout=2)
        except OSError:
            return False
        ok = c("PING") == "PONG"
        c.quit()
        return ok

    harness.wait_for(up, harness.READY_TIMEOUT, "redis-server to answer PING", w.diag)
    return w


def load(port):
    c = Resp(port)
    assert c("DEBUG", "POPULATE", NKEYS) == "OK"
    c("SET", "greeting", "hello")
    c("HSET", "h", "f1", "v1", "f2", "v2")
    c("RPUSH", "l", "a", "b", "c")
    assert c("DBSIZE") == NKEYS + 3
    digest = c("DEBUG", "DIGEST")
    c.quit()
    return digest


def dump(env, w, imgdir, *extra):
    imgdir.mkdir(parents=True, exist_ok=True)
    r = env.lazarus("dump", "-t", w.pid, "-D", imgdir, *extra, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)


def restore(env, imgdir, mode, w, *extra):
    r = env.lazarus(*env.restore_args(imgdir, mode, True), *extra, log=env.log_path("restore"))
    env.pids.add(w.pid)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}\n{w.diag()}"
    assert harness.alive(w.pid), f"restored redis {w.pid} is not running\n{r.describe()}"


def check_after(port, digest, sock):
    """Same dataset, then new clients (TCP and the unix socket) and writes."""
    u = Resp(None, unix=sock)
    assert u("DEBUG", "DIGEST") == digest
    assert u("SET", "over-unix", "yes") == "OK"
    assert u("DEL", "over-unix") == 1
    u.close()
    c = Resp(port)
    assert c("DEBUG", "DIGEST") == digest
    assert c("DBSIZE") == NKEYS + 3
    assert c("GET", "key:12345") == "value:12345"
    assert c("HGET", "h", "f2") == "v2"
    assert c("LRANGE", "l", 0, -1) == ["a", "b", "c"]
    assert c("SET", "after", "restore") == "OK"
    others = [Resp(port) for _ in range(4)]
    for i, o in enumerate(others):
        assert o("INCRBY", "counter", i + 1) > 0
        o.close()
    assert c("GET", "counter") == "10"
    assert c("GET", "after") == "restore"
    assert c("DEBUG", "DIGEST") != digest
    c.close()


def test_redis_restored(env, mode):
    w = start_redis(env)
    digest = load(w.port)
    img = env.base / "img"
    t0 = time.monotonic()
    dump(env, w, img)
    restore(env, img, mode, w)
    c = Resp(w.port)
    assert c("PING") == "PONG", f"first reply {time.monotonic() - t0:.3f}s after the dump began"
    c.close()
    check_after(w.port, digest, w.sock)


def test_redis_client_connection_kept(env, mode):
    """--tcp-established: the client's connection of before the dump answers
    its next commands after the restore."""
    w = start_redis(env)
    digest = load(w.port)
    c = Resp(w.port)
    assert c("SET", "mine", "before") == "OK"
    assert c("CLIENT", "SETNAME", "keeper") == "OK"
    img = env.base / "img"
    dump(env, w, img, "--tcp-established")
    restore(env, img, mode, w, "--tcp-established")
    assert c("GET", "mine") == "before"
    assert c("CLIENT", "GETNAME") == "keeper"
    assert c("SET", "mine", "after") == "OK"
    assert c("GET", "mine") == "after"
    assert c("DEL", "mine") == 1
    assert c("DEBUG", "DIGEST") == digest
    c.close()
    check_after(w.port, digest, w.sock)
