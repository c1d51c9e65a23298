"""A real server: memcached (Debian package memcached) with 4 worker threads,
in a temporary directory on a free port of 127.0.0.1, run as the memcache
user (memcached refuses to run as root without -u). Loaded with a few
thousand keys of known values, checkpointed and restored eagerly and
lazily. Checked through memcached's own text protocol: every key stored
before the dump is returned with its value and flags, new sets and gets
work, and the item count is unchanged. With --tcp-established a client
connected before the dump keeps its connection.
"""
import os
import pwd
import shutil
import socket
import subprocess

import pytest

import harness

MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
NKEYS = 5000
USER = "memcache"

pytestmark = pytest.mark.skipif(not os.path.exists(MEMCACHED),
                                reason="memcached not installed (make deps)")


def run_as():
    try:
        return pwd.getpwnam(USER).pw_name
    except KeyError:
        return "nobody"


class Mc:
    """A minimal memcached text-protocol client: one TCP connection."""

    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("memcached closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("memcached closed the connection")
            self.buf += data
        out, rest = self.buf[:n], self.buf[n:]
        assert rest[:2] == b"\r\n", f"memcached: value of {n} bytes not ended by CRLF"
        self.buf = rest[2:]
        return out

    def set_many(self, items):
        """Pipelined sets: items is a list of (key, flags, value bytes)."""
        out = []
        for k, flags, v in items:
            out.append(b"set %s %d 0 %d\r\n%s\r\n" % (k.encode(), flags, len(v), v))
        self.s.sendall(b"".join(out))
        for k, _, _ in items:
            line = self._line()
            assert line == b"STORED", f"set {k}: {line!r}"

    def get_many(self, keys):
        """One multi-get: {key: (flags, value)} for the keys memcached has."""
        self.s.sendall(b"get " + b" ".join(k.encode() for k in keys) + b"\r\n")
        got = {}
        while True:
            line = self._line()
            if line == b"END":
                return got
            parts = line.split()
            assert parts[0] == b"VALUE" and len(parts) == 4, f"get: {line!r}"
            got[parts[1].decode()] = (int(parts[2]), self._exact(int(parts[3])))

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        return self._line().decode()

    def stats(self):
        self.s.sendall(b"stats\r\n")
        out = {}
        while True:
            line = self._line().decode()
            if line == "END":
                return out
            _, k, v = line.split(" ", 2)
            out[k] = v

    def quit(self):
        """quit and wait for memcached to close its end first, so no socket
        of memcached is left half-closed (CLOSE_WAIT) for a dump to meet."""
        self.s.sendall(b"quit\r\n")
        while self.s.recv(65536):
            pass
        self.s.close()


class Memcached(harness.Server):
    kind = "memcached"
    logs = ("out",)


def start_memcached(env):
    d = env.path("memcached")
    port = harness.free_port()
    argv = [MEMCACHED, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "4",
            "-m", "64", "-c", "256", "-u", run_as()]
    with open(d / "out", "wb") as out:
        proc = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    env.procs.append(proc)
    env.pids.add(proc.pid)
    w = Memcached(env, d, proc.pid, proc)
    w.port = port

    def up():
        if proc.poll() is not None:
            raise harness.HarnessError(f"memcached exited with {proc.returncode}\n{w.diag()}")
        try:
            c = Mc(port, timeout=2)
        except OSError:
            return False
        ok = c.cmd("version").startswith("VERSION ")
        c.quit()
        return ok

    harness.wait_for(up, harness.READY_TIMEOUT, "memcached to answer version", w.diag)
    return w


def dataset():
    """Known keys, flags and values of varied sizes (1 byte to ~3 KiB), so
    items land in several slab classes."""
    items = {}
    for i in range(NKEYS):
        v = (b"v%d:" % i) * (1 + (i * 37) % 300)
        items[f"key:{i}"] = (i % 65536, v[: 1 + (i * 131) % 3000])
    return items


def load(port, items):
    c = Mc(port)
    keys = list(items)
    for i in range(0, len(keys), 500):
        c.set_many([(k, *items[k]) for k in keys[i:i + 500]])
    assert int(c.stats()["curr_items"]) == len(items)
    c.quit()


def check_all(c, items):
    keys = list(items)
    got = {}
    for i in range(0, len(keys), 200):
        got.update(c.get_many(keys[i:i + 200]))
    missing = [k for k in keys if k not in got]
    assert not missing, f"{len(missing)} keys lost, e.g. {missing[:5]}"
    wrong = [k for k in keys if got[k] != items[k]]
    assert not wrong, f"{len(wrong)} keys with wrong flags or value, e.g. {wrong[:5]}"


def dump(env, w, imgdir, *extra):
    imgdir.mkdir(parents=True, exist_ok=True)
    r = env.lazarus("dump", "-t", w.pid, "-D", imgdir, *extra, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)


def restore(env, imgdir, mode, w, *extra):
    r = env.lazarus(*env.restore_args(imgdir, mode, True), *extra, log=env.log_path("restore"))
    env.pids.add(w.pid)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}\n{w.diag()}"
    assert harness.alive(w.pid), f"restored memcached {w.pid} is not running\n{r.describe()}"
    harness.assert_not_stopped(w.pid, "restored memcached")


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def uids(pid):
    """The real, effective, saved and fs uids of every thread of pid."""
    return {int(u) for f in harness.task_status(pid).values() for u in f["Uid"].split()}


def test_memcached_restored(env, mode):
    w = start_memcached(env)
    items = dataset()
    load(w.port, items)
    nthreads = threads(w.pid)
    assert nthreads > 4, f"memcached -t 4 runs {nthreads} threads"
    uid = pwd.getpwnam(run_as()).pw_uid
    assert uids(w.pid) == {uid}, "memcached -u did not drop to its user"
    dump(env, w, env.base / "img")
    restore(env, env.base / "img", mode, w)
    assert threads(w.pid) == nthreads
    assert uids(w.pid) == {uid}, "restored memcached threads run as another user"
    c = Mc(w.port)
    assert c.cmd("version").startswith("VERSION ")
    check_all(c, items)
    assert int(c.stats()["curr_items"]) == len(items)
    # New writes, over several connections (memcached hands each new
    # connection to a worker thread in turn: all four must work).
    others = [Mc(w.port) for _ in range(8)]
    for i, o in enumerate(others):
        o.set_many([(f"new:{i}", i, b"after restore %d" % i)])
        assert o.get_many([f"new:{i}", "key:4999"]) == \
            {f"new:{i}": (i, b"after restore %d" % i), "key:4999": items["key:4999"]}
    for o in others:
        o.quit()
    assert c.cmd("set counter 0 0 1\r\n0") == "STORED"
    for i in range(1, 9):
        assert c.cmd(f"incr counter {i}") == str(i * (i + 1) // 2)
    assert c.get_many([f"new:{i}" for i in range(8)]) == \
        {f"new:{i}": (i, b"after restore %d" % i) for i in range(8)}
    assert c.cmd("delete key:0") == "DELETED"
    assert c.get_many(["key:0"]) == {}
    assert int(c.stats()["curr_items"]) == len(items) + 8 + 1 - 1
    check_all(c, {k: v for k, v in items.items() if k != "key:0"})
    c.quit()


def test_memcached_client_connection_kept(env, mode):
    """--tcp-established: a client connected before the dump (served by one
    of the worker threads) gets the right answers on the same connection."""
    w = start_memcached(env)
    items = dataset()
    load(w.port, items)
    c = Mc(w.port)
    c.set_many([("mine", 7, b"before")])
    assert c.get_many(["mine", "key:42"]) == {"mine": (7, b"before"), "key:42": items["key:42"]}
    dump(env, w, env.base / "img", "--tcp-established")
    restore(env, env.base / "img", mode, w, "--tcp-established")
    assert c.get_many(["mine"]) == {"mine": (7, b"before")}
    c.set_many([("mine", 8, b"after")])
    assert c.get_many(["mine"]) == {"mine": (8, b"after")}
    check_all(c, items)
    assert c.cmd("delete mine") == "DELETED"
    assert int(c.stats()["curr_items"]) == len(items)
    c.quit()
