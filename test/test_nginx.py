"""A real server: nginx (Debian package nginx-light) with a master and two
workers, the workers running as an unprivileged user (www-data, as Debian's
nginx does by default; nobody if it is missing), in a temporary directory
on a free port of 127.0.0.1: config, pid file, logs and temp paths all
there. nginx runs with `daemon off;` so the master stays the child we
started (a daemonizing master would be reparented and its pid read from a
file; nothing about the tree it checkpoints differs).

The master's whole tree is checkpointed and restored eagerly and lazily.
Checked through HTTP: a static file of known bytes is served byte-identical
(by curl when installed, else python's http.client), a missing path still
answers 404, and both workers come back as the unprivileged user.

nginx's master maps a shared anonymous zone (accept mutex and connection
counters, ngx_event_module_init) before forking the workers, so this also
covers shared anonymous memory inherited across a tree: stub_status's
request count must go up by exactly one per request whichever worker
answers. `listen ... reuseport` gives each worker a socket of its own in
one SO_REUSEPORT group, so the kernel spreads connections over both
workers (with one shared listener, EPOLLEXCLUSIVE keeps waking the same
worker and a zone that became private per process would go unseen).
"""
import http.client
import os
import pwd
import shutil
import subprocess

import pytest

import harness

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CURL = shutil.which("curl")

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX),
                                reason="nginx not installed (make deps)")

CONF = """\
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


def run_as():
    try:
        return pwd.getpwnam("www-data")
    except KeyError:
        return pwd.getpwnam("nobody")


class Nginx(harness.Server):
    kind = "nginx"
    logs = ("error.log", "out")


def workers(pid):
    """The master's children: [(pid, uid)]."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            for c in f.read().split():
                with open(f"/proc/{c}/status") as s:
                    uid = next(int(l.split()[1]) for l in s if l.startswith("Uid:"))
                out.append((int(c), uid))
    return sorted(out)


def fetch(port, path):
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
    user = run_as()
    (d / "nginx.conf").write_text(CONF.format(user=user.pw_name, d=d, port=port))
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
        if len(workers(proc.pid)) != 2:
            return False
        try:
            ok = fetch(port, "/page.bin")[0] == 200
        except (AssertionError, OSError):
            return False
        w.pages += ok
        return ok

    harness.wait_for(up, harness.READY_TIMEOUT, "nginx to serve /page.bin", w.diag)
    return w


def check_serves(w):
    for _ in range(4):  # a few requests, so both workers are likely to answer some
        code, body = fetch(w.port, "/page.bin")
        assert code == 200, f"GET /page.bin: {code}\n{w.diag()}"
        w.pages += 1
        assert body == w.page, f"GET /page.bin: {len(body)} bytes differ from the " \
                               f"{len(w.page)} served before"
        code, _ = fetch(w.port, "/no-such-page")
        assert code == 404, f"GET /no-such-page: {code}, not 404"


def requests(w):
    """nginx's total request count from stub_status. The counters live in the
    zone the master mapped shared before forking: whichever worker answers,
    the count goes up by one per request only if the zone is still one
    object shared by both."""
    code, body = fetch(w.port, "/status")
    assert code == 200, f"GET /status: {code}"
    lines = body.decode().splitlines()
    assert lines[1].split() == ["server", "accepts", "handled", "requests"], body
    return int(lines[2].split()[2])


def check_shared_counters(w, since):
    seen = [requests(w) for _ in range(16)]
    assert seen[0] > since and all(b == a + 1 for a, b in zip(seen, seen[1:])), \
        f"stub_status requests went {since} then {seen}: the workers no longer share their zone"
    return seen[-1]


def logged(w):
    """Wait until the access log has a line for every /page.bin served:
    a worker writes it just after the response's last bytes, so it may lag
    behind the client by a moment."""
    def all_there():
        with open(w.dir / "access.log", "rb") as f:
            return f.read().count(b'"GET /page.bin HTTP/1.1" 200') == w.pages
    harness.wait_for(all_there, harness.READY_TIMEOUT,
                     f"{w.pages} lines of /page.bin in access.log", w.diag)


def test_nginx_restored(env, mode):
    w = start_nginx(env)
    check_serves(w)
    before = workers(w.pid)
    logged(w)
    nreq = check_shared_counters(w, 0)
    assert [uid for _, uid in before] == [w.uid, w.uid], f"workers {before}"
    assert harness.task_status(w.pid)[w.pid]["Uid"].split()[0] == "0"
    img = env.base / "img"
    img.mkdir()
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)
    for pid, _ in before:
        harness.reap(pid)
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    env.pids.add(w.pid)
    env.pids.update(pid for pid, _ in before)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}\n{w.diag()}"
    assert harness.alive(w.pid), f"restored nginx {w.pid} is not running\n{r.describe()}"
    harness.assert_not_stopped(w.pid, "restored nginx master")
    assert workers(w.pid) == before, "the workers came back with other pids or users"
    check_serves(w)
    check_shared_counters(w, nreq)
    logged(w)  # the restored workers log to the same access.log, after the old lines
