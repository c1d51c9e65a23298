"""servers.py - the real servers from Debian that scenarios checkpoint:
redis-server, memcached and nginx. For each: how to start it
in a test's directory on a free port (start_*), load it with known data, and
check it through its own protocol after a restore. test_redis.py,
test_memcached.py and test_nginx.py use them.

Every server is started in a session of its own (start_new_session), as
the root of the tree that is dumped.
"""
import http.client
import os
import pwd
import shutil
import socket
import subprocess

import harness

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CURL = shutil.which("curl")

REDIS_NKEYS = 100_000
MC_NKEYS = 5000
MEMCACHED_USER = "memcache"


def dump(env, w, imgdir, *extra):
    """Dump server w's tree into imgdir (the tree is killed): exit 0, no error,
    our Popen of its root reaped, and every other process of the tree gone."""
    imgdir.mkdir(parents=True, exist_ok=True)
    tree = tree_pids(w.pid)
    r = env.lazarus("dump", "-t", w.pid, "-D", imgdir, *extra, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)
    for pid in tree:
        if pid != w.pid:
            harness.reap(pid)
    return r


def restore(env, imgdir, mode, w, *extra):
    """restore -d of w's tree; its root must be running, untraced."""
    r = env.lazarus(*env.restore_args(imgdir, mode, True), *extra, log=env.log_path("restore"))
    env.pids.add(w.pid)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}\n{w.diag()}"
    assert harness.alive(w.pid), f"restored {w.kind} {w.pid} is not running\n{r.describe()}"
    harness.assert_not_stopped(w.pid, f"restored {w.kind}")
    w.proc = None  # the restored root is our child as a subreaper, not a Popen
    return r


def children(pid):
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def tree_pids(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def popen_server(env, argv, d, out=None):
    """Start a server as the root of a session of its own, stdout/stderr to out."""
    if out is None:
        stdout = subprocess.DEVNULL
    else:
        stdout = open(out, "ab")
    try:
        proc = subprocess.Popen([str(a) for a in argv], cwd=d, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    finally:
        if out is not None:
            stdout.close()
    env.procs.append(proc)
    env.pids.add(proc.pid)
    return proc


# --- redis ---

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


def redis_load(port, nkeys=REDIS_NKEYS):
    c = Resp(port)
    assert c("DEBUG", "POPULATE", nkeys) == "OK"
    c("SET", "greeting", "hello")
    c("HSET", "h", "f1", "v1", "f2", "v2")
    c("RPUSH", "l", "a", "b", "c")
    assert c("DBSIZE") == nkeys + 3
    digest = c("DEBUG", "DIGEST")
    c.quit()
    return digest

# --- memcached ---

def memcached_user():
    try:
        return pwd.getpwnam(MEMCACHED_USER).pw_name
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
            "-m", "64", "-c", "256", "-u", memcached_user()]
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


def mc_dataset():
    """Known keys, flags and values of varied sizes (1 byte to ~3 KiB), so
    items land in several slab classes."""
    items = {}
    for i in range(MC_NKEYS):
        v = (b"v%d:" % i) * (1 + (i * 37) % 300)
        items[f"key:{i}"] = (i % 65536, v[: 1 + (i * 131) % 3000])
    return items


def mc_load(port, items):
    c = Mc(port)
    keys = list(items)
    for i in range(0, len(keys), 500):
        c.set_many([(k, *items[k]) for k in keys[i:i + 500]])
    assert int(c.stats()["curr_items"]) == len(items)
    c.quit()


def mc_check_all(c, items):
    keys = list(items)
    got = {}
    for i in range(0, len(keys), 200):
        got.update(c.get_many(keys[i:i + 200]))
    missing = [k for k in keys if k not in got]
    assert not missing, f"{len(missing)} keys lost, e.g. {missing[:5]}"
    wrong = [k for k in keys if got[k] != items[k]]
    assert not wrong, f"{len(wrong)} keys with wrong flags or value, e.g. {wrong[:5]}"


# --- nginx ---

NGINX_CONF = """\
user {user};
worker_processes 2;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {d}/www;
        location / {{ }}
        location = /status {{ stub_status; access_log off; }}
    }}
}}
"""


def nginx_user():
    try:
        return pwd.getpwnam("www-data")
    except KeyError:
        return pwd.getpwnam("nobody")


class Nginx(harness.Server):
    kind = "nginx"
    logs = ("error.log", "out")


def nginx_workers(pid):
    """The master's children: [(pid, uid)]."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            for c in f.read().split():
                with open(f"/proc/{c}/status") as s:
                    uid = next(int(l.split()[1]) for l in s if l.startswith("Uid:"))
                out.append((int(c), uid))
    return sorted(out)


def http_fetch(port, path):
    """(status, body bytes) of GET path: curl when installed, else http.client."""
    url = f"http://127.0.0.1:{port}{path}"
    if CURL:
        p = subprocess.run([CURL, "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}",
                            url], capture_output=True, timeout=60)
        assert p.returncode == 0, f"curl {url}: rc {p.returncode} {p.stderr.decode()}"
        body, _, code = p.stdout.rpartition(b"\n")
        return int(code), body
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def start_nginx(env):
    d = env.path("nginx")
    # mkdtemp makes the test directory 0700: the workers (www-data) must
    # reach their document root under it.
    os.chmod(env.base, 0o711)
    os.chmod(d, 0o711)
    (d / "tmp").mkdir()
    www = d / "www"
    www.mkdir()
    os.chmod(www, 0o755)
    page = os.urandom(200_000) + b"\nend of the known page\n"
    (www / "page.bin").write_bytes(page)
    os.chmod(www / "page.bin", 0o644)
    port = harness.free_port()
    user = nginx_user()
    (d / "nginx.conf").write_text(NGINX_CONF.format(user=user.pw_name, d=d, port=port))
    argv = [NGINX, "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")]
    with open(d / "out", "wb") as out:
        proc = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    env.procs.append(proc)
    env.pids.add(proc.pid)
    w = Nginx(env, d, proc.pid, proc)
    w.port, w.page, w.uid = port, page, user.pw_uid
    w.pages = 0  # how many times /page.bin was served (200) to us

    def up():
        if proc.poll() is not None:
            raise harness.HarnessError(f"nginx exited with {proc.returncode}\n{w.diag()}")
        if len(nginx_workers(proc.pid)) != 2:
            return False
        try:
            ok = http_fetch(port, "/page.bin")[0] == 200
        except (AssertionError, OSError):
            return False
        w.pages += ok
        return ok

    harness.wait_for(up, harness.READY_TIMEOUT, "nginx to serve /page.bin", w.diag)
    return w


def nginx_check_serves(w):
    for _ in range(4):  # a few requests, so both workers are likely to answer some
        code, body = http_fetch(w.port, "/page.bin")
        assert code == 200, f"GET /page.bin: {code}\n{w.diag()}"
        w.pages += 1
        assert body == w.page, f"GET /page.bin: {len(body)} bytes differ from the " \
                               f"{len(w.page)} served before"
        code, _ = http_fetch(w.port, "/no-such-page")
        assert code == 404, f"GET /no-such-page: {code}, not 404"


def nginx_requests(w):
    """nginx's total request count from stub_status. The counters live in the
    zone the master mapped shared before forking: whichever worker answers,
    the count goes up by one per request only if the zone is still one
    object shared by both."""
    code, body = http_fetch(w.port, "/status")
    assert code == 200, f"GET /status: {code}"
    lines = body.decode().splitlines()
    assert lines[1].split() == ["server", "accepts", "handled", "requests"], body
    return int(lines[2].split()[2])


def nginx_check_shared_counters(w, since):
    seen = [nginx_requests(w) for _ in range(16)]
    assert seen[0] > since and all(b == a + 1 for a, b in zip(seen, seen[1:])), \
        f"stub_status requests went {since} then {seen}: the workers no longer share their zone"
    return seen[-1]


def nginx_logged(w):
    """Wait until the access log has a line for every /page.bin served:
    a worker writes it just after the response's last bytes, so it may lag
    behind the client by a moment."""
    def all_there():
        with open(w.dir / "access.log", "rb") as f:
            return f.read().count(b'"GET /page.bin HTTP/1.1" 200') == w.pages
    harness.wait_for(all_there, harness.READY_TIMEOUT,
                     f"{w.pages} lines of /page.bin in access.log", w.diag)

