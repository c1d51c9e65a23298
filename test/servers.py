"""servers.py - the real servers from Debian that scenarios checkpoint:
redis-server, memcached, nginx and PostgreSQL 15. For each: how to start it
in a test's directory on a free port (start_*), load it with known data, and
check it through its own protocol after a restore. test_redis.py,
test_memcached.py, test_nginx.py, test_postgres.py and test_servers_lazy.py
(all four restored lazily at once) use them.

Every server is started in a session of its own (start_new_session), as
the root of the tree that is dumped.
"""
import hashlib
import http.client
import os
import pwd
import shutil
import socket
import struct
import subprocess
import time

import harness

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CURL = shutil.which("curl")
PGBIN = "/usr/lib/postgresql/15/bin"
POSTGRES = f"{PGBIN}/postgres"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"

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

class CrlfConn:
    """Line and length-delimited reads over one socket (self.s) of a
    CRLF-framed text protocol (redis RESP, memcached): NAME says who closed."""
    NAME = "server"

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError(f"{self.NAME} closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        """N bytes of data, then the CRLF that must end them."""
        while len(self.buf) < n + 2:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError(f"{self.NAME} closed the connection")
            self.buf += data
        out, rest = self.buf[:n], self.buf[n:]
        assert rest[:2] == b"\r\n", f"{self.NAME}: value of {n} bytes not ended by CRLF"
        self.buf = rest[2:]
        return out

    def close_after(self):
        """Wait for the server to close its end, then close ours: closing
        ours first would leave the server's socket half-closed (CLOSE_WAIT)
        for a moment, which a dump at that moment refuses."""
        while self.s.recv(65536):
            pass
        self.s.close()


class Resp(CrlfConn):
    """A minimal RESP2 client: one connection, one command at a time."""
    NAME = "redis"

    def __init__(self, port, timeout=30, unix=None):
        if unix:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(str(unix))
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

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
        """QUIT, then close once redis has closed (close_after)."""
        assert self("QUIT") == "OK"
        self.close_after()


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


class Mc(CrlfConn):
    """A minimal memcached text-protocol client: one TCP connection."""
    NAME = "memcached"

    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

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
        """quit, then close once memcached has closed (close_after)."""
        self.s.sendall(b"quit\r\n")
        self.close_after()


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


# --- PostgreSQL 15 ---
#
# A cluster of our own: initdb as the postgres user in the test's directory,
# the postmaster started directly (setpriv execs it: the pid we start is the
# postmaster, the root of its tree), listening on a free TCP port of
# 127.0.0.1 and a unix socket, its log collector (a syslogger child fed
# through a pipe) writing into the directory. The Debian cluster service is
# neither needed nor touched.

PG_NROWS = 100_000
PG_TABLE_SQL = (f"CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v "
                f"FROM generate_series(1, {PG_NROWS}) g; "
                "ALTER TABLE t ADD PRIMARY KEY (id)")
PG_SUM_SQL = "SELECT count(*), md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t"


def pg_expected(rows):
    """The (count, md5) PG_SUM_SQL gives for rows [(id, v)], computed here."""
    s = ",".join(f"{i}:{v}" for i, v in sorted(rows))
    return str(len(rows)), hashlib.md5(s.encode()).hexdigest()


def pg_initial_rows():
    return [(g, hashlib.md5(str(g).encode()).hexdigest()) for g in range(1, PG_NROWS + 1)]


class PgError(AssertionError):
    pass


class PgConn:
    """A minimal PostgreSQL frontend (protocol 3.0, trust authentication,
    simple queries) over TCP: one connection that a test can keep open
    across a dump and restore."""

    def __init__(self, port, user="postgres", db="postgres", timeout=60):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        body = struct.pack("!i", 196608)
        for k, v in (("user", user), ("database", db), ("application_name", "lztest")):
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self.s.sendall(struct.pack("!i", len(body) + 4) + body)
        self.params = {}
        self.backend_pid = None
        while True:
            t, m = self._msg()
            if t == b"R":
                code = struct.unpack("!i", m[:4])[0]
                if code != 0:
                    raise PgError(f"authentication {code} asked: the test cluster uses trust")
            elif t == b"S":
                k, v = m.rstrip(b"\0").split(b"\0")
                self.params[k.decode()] = v.decode()
            elif t == b"K":
                self.backend_pid = struct.unpack("!i", m[:4])[0]
            elif t == b"E":
                raise PgError(f"startup: {self._err(m)}")
            elif t == b"Z":
                return

    def _recv(self, n):
        while len(self.buf) < n:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("postgres closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _msg(self):
        t = self._recv(1)
        n = struct.unpack("!i", self._recv(4))[0]
        return t, self._recv(n - 4)

    @staticmethod
    def _err(m):
        fields = {}
        for f in m.split(b"\0"):
            if f:
                fields[chr(f[0])] = f[1:].decode(errors="replace")
        return f"{fields.get('S', '?')} {fields.get('C', '?')}: {fields.get('M', '?')}"

    def query(self, sql):
        """Rows (lists of str or None) of the last statement of sql."""
        b = sql.encode() + b"\0"
        self.s.sendall(b"Q" + struct.pack("!i", len(b) + 4) + b)
        rows, err = [], None
        while True:
            t, m = self._msg()
            if t == b"T":
                rows = []
            elif t == b"D":
                n = struct.unpack("!h", m[:2])[0]
                off, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", m[off:off + 4])[0]
                    off += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(m[off:off + ln].decode())
                        off += ln
                rows.append(row)
            elif t == b"E":
                err = self._err(m)
            elif t == b"Z":
                if err:
                    raise PgError(f"{sql}: {err}")
                return rows

    def close(self):
        """Terminate, and wait for the backend to close its end first (no
        socket of the server left half-closed for a dump to meet)."""
        self.s.sendall(b"X" + struct.pack("!i", 4))
        try:
            while self.s.recv(65536):
                pass
        except OSError:
            pass
        self.s.close()


class Postgres(harness.Server):
    kind = "postgres"
    logs = ("log/postgresql.log", "out")


def pg_user():
    return pwd.getpwnam("postgres")


def as_postgres(argv):
    """argv run as the postgres user (setpriv execs: no process in between)."""
    return [SETPRIV, "--reuid", "postgres", "--regid", "postgres", "--init-groups",
            "--reset-env"] + [str(a) for a in argv]


def pg_start_postmaster(env, w):
    argv = as_postgres([POSTGRES, "-D", w.data, "-k", w.sockdir, "-p", w.port,
                        "-c", "listen_addresses=127.0.0.1",
                        "-c", "logging_collector=on", "-c", f"log_directory={w.dir / 'log'}",
                        "-c", "log_filename=postgresql.log",
                        "-c", "log_connections=on", "-c", "log_checkpoints=on",
                        "-c", "shared_buffers=32MB",
                        "-c", "dynamic_shared_memory_type=posix"])
    proc = popen_server(env, argv, w.dir, w.dir / "out")
    w.pid, w.proc = proc.pid, proc

    def up():
        if proc.poll() is not None:
            raise harness.HarnessError(f"postgres exited with {proc.returncode}\n{w.diag()}")
        try:
            c = PgConn(w.port, timeout=5)
        except (OSError, PgError):
            return False
        ok = c.query("SELECT 1") == [["1"]]
        c.close()
        return ok

    harness.wait_for(up, harness.READY_TIMEOUT, "postgres to answer SELECT 1", w.diag)
    w.segments |= {(i, k) for i, k in pg_sysv_segments(w.pid)}
    return w


def start_postgres(env, sockdir_owner=None):
    """initdb in the test's directory, then the postmaster (pg_start_postmaster).
    sockdir_owner (a pwd entry): the unix socket's directory is that user's,
    mode 0755, instead of sticky and world-writable."""
    d = env.path("postgres")
    pw = pg_user()
    # mkdtemp makes the test directory 0700: postgres must reach its own below.
    os.chmod(env.base, 0o711)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    os.chmod(d, 0o711)
    data = d / "data"
    # The socket directory is sticky and world-writable, as /tmp (PostgreSQL's
    # compiled-in default) is: a restore binds the socket again in a directory
    # that a user other than the one restoring may write only if it is sticky.
    sockdir = d / "sock"
    sockdir.mkdir()
    if sockdir_owner is None:
        os.chmod(sockdir, 0o1777)
    else:
        os.chown(sockdir, sockdir_owner.pw_uid, sockdir_owner.pw_gid)
        os.chmod(sockdir, 0o755)
    (d / "log").mkdir()
    os.chown(d / "log", pw.pw_uid, pw.pw_gid)
    p = subprocess.run(as_postgres([f"{PGBIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                                    "-E", "UTF8", "--locale=C", "--no-sync"]),
                       cwd=d, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"initdb: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    w = Postgres(env, d, None)
    w.data, w.sockdir, w.port = data, sockdir, harness.free_port()
    w.segments, w.started = set(), time.time() - 1
    env.at_cleanup(lambda: pg_forget(w))
    return pg_start_postmaster(env, w)


def pg_load(w):
    c = PgConn(w.port)
    c.query(PG_TABLE_SQL)
    got = tuple(c.query(PG_SUM_SQL)[0])
    c.close()
    want = pg_expected(pg_initial_rows())
    assert got == want, f"loaded table: {got}, computed {want}"
    return want


def psql(w, sql, host=None):
    """psql -At over the unix socket (host=None) or TCP: its output lines."""
    p = subprocess.run(as_postgres([f"{PGBIN}/psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                                    "-h", host or w.sockdir, "-p", w.port, "-U", "postgres",
                                    "-d", "postgres", "-F", "|", "-c", sql]),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"psql {sql!r}: exit {p.returncode}\n{p.stderr}\n{w.diag()}"
    return p.stdout.splitlines()


def pg_sysv_rows():
    with open("/proc/sysvipc/shm") as f:
        head = f.readline().split()
        return [dict(zip(head, line.split())) for line in f]


def pg_sysv_segments(pid):
    """(id, key) of the SysV segments that process pid created."""
    return [(int(r["shmid"]), int(r["key"])) for r in pg_sysv_rows() if int(r["cpid"]) == pid]


def pg_sysv_ids(pid):
    return [i for i, _ in pg_sysv_segments(pid)]


def pg_dsm_mapped():
    """Every /dev/shm/PostgreSQL.* file that some process maps."""
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/maps") as f:
                for line in f:
                    i = line.find("/dev/shm/PostgreSQL.")
                    if i >= 0:
                        out.add(line[i:].split()[0])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def pg_forget(w):
    """At cleanup, once every process is gone: what a postmaster that was
    killed rather than shut down leaves behind, its SysV segment (the same
    id and key, attached by nobody) and the dynamic shared memory files its
    processes made (PostgreSQL's own, made since it started, mapped by no
    process: a dying backend may have created one the postmaster never
    mapped)."""
    rows = {int(r["shmid"]): r for r in pg_sysv_rows()}
    for shmid, key in w.segments:
        r = rows.get(shmid)
        if r and int(r["key"]) == key and int(r["nattch"]) == 0:
            subprocess.run(["ipcrm", "-m", str(shmid)], timeout=60)
    uid, mapped = pg_user().pw_uid, pg_dsm_mapped()
    for name in os.listdir("/dev/shm"):
        path = f"/dev/shm/{name}"
        if not name.startswith("PostgreSQL.") or path in mapped:
            continue
        try:
            st = os.lstat(path)
            if st.st_uid == uid and st.st_mtime >= w.started:
                os.unlink(path)
        except FileNotFoundError:
            pass


def pg_drop_orphan_segments(w, ids):
    """A postmaster killed by the dump leaves its SysV segment behind (it is
    removed only at a clean shutdown), unattached: the restore makes it again
    with its dumped id and contents, so the orphan goes first, as it would be
    absent on another machine. Only a segment nobody is attached to."""
    for row in pg_sysv_rows():
        if int(row["shmid"]) in ids:
            assert int(row["nattch"]) == 0, f"SysV segment {row} still attached after the dump"
            subprocess.run(["ipcrm", "-m", row["shmid"]], check=True, timeout=60)


def pg_dump(env, w, imgdir, *extra):
    ids = pg_sysv_ids(w.pid)
    assert ids, "the postmaster made no SysV segment"
    r = dump(env, w, imgdir, *extra)
    pg_drop_orphan_segments(w, ids)
    return r


def pg_check(w, want):
    """The table's count and checksum over the unix socket (psql) and TCP
    (psql, and our own client); returns nothing, asserts."""
    for host in (None, "127.0.0.1"):
        got = tuple(psql(w, PG_SUM_SQL, host)[0].split("|"))
        assert got == want, f"checksum over {host or 'the unix socket'}: {got}, want {want}"
    c = PgConn(w.port)
    assert tuple(c.query(PG_SUM_SQL)[0]) == want
    c.close()


def pg_write(w, key, value):
    """INSERT a row in a committed transaction over a new connection, read it
    back over another one; the new backends are the restored postmaster's
    children."""
    c = PgConn(w.port)
    assert c.backend_pid in children(w.pid), \
        f"backend {c.backend_pid} is not a child of the postmaster {w.pid}"
    c.query(f"BEGIN; INSERT INTO t VALUES ({key}, '{value}'); COMMIT")
    c.close()
    assert psql(w, f"SELECT v FROM t WHERE id = {key}") == [value]


def pg_stop(w):
    """pg_ctl stop -m fast: the postmaster must exit 0 after a shutdown
    checkpoint (log line "database system is shut down")."""
    p = subprocess.run(as_postgres([f"{PGBIN}/pg_ctl", "-D", w.data, "stop", "-m", "fast",
                                    "-t", "120"]), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"pg_ctl stop: exit {p.returncode}\n{p.stdout}{p.stderr}\n{w.diag()}"
    if w.proc is not None:
        rc = w.proc.wait(harness.EXIT_TIMEOUT)
    else:
        st = harness.reap(w.pid)
        assert st is not None, f"postgres {w.pid} was reaped by someone else"
        rc = os.waitstatus_to_exitcode(st)
    assert rc == 0, f"postmaster exited with {rc}\n{w.diag()}"
    log = (w.dir / "log" / "postgresql.log").read_text(errors="replace")
    assert log.rstrip().endswith("database system is shut down"), \
        f"postgres did not shut down cleanly\n{w.diag()}"
