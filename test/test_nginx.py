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
import os

import pytest

import harness
from servers import NGINX, start_nginx
from servers import nginx_check_serves as check_serves
from servers import nginx_check_shared_counters as check_shared_counters
from servers import nginx_logged as logged
from servers import nginx_workers as workers

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX),
                                reason="nginx not installed (make deps)")

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
