"""Four real servers restored lazily at the same time: redis-server (300,000
keys from DEBUG POPULATE), memcached (-t 4, 5,000 keys of known values),
nginx (master and two www-data workers) and PostgreSQL 15 (postmaster and
its background processes, a table of 100,000 rows) are each started,
loaded and dumped; then the four `lazarus restore --lazy-pages -d` run at
once, each starting a lazy-pages daemon of its own for its images, and as
soon as they have returned each server is checked through its own client,
the four checks running concurrently while the daemons fill memory in the
background: redis DEBUG DIGEST equal, every memcached key with its flags
and value, nginx's file byte-identical, PostgreSQL's count and checksum
over both sockets and a committed write. Then each daemon must finish
(every page in place, exit 0), and each server is checked once more.

The start/load/check helpers are those of the per-server tests (servers.py).
"""
import json
import os
import subprocess
import threading

import pytest

import harness
import servers

NEEDED = (servers.REDIS, servers.MEMCACHED, servers.NGINX, servers.POSTGRES)
REDIS_KEYS = 300_000

pytestmark = [
    pytest.mark.skipif(not all(os.path.exists(p) for p in NEEDED),
                       reason="redis-server, memcached, nginx or postgresql missing (make deps)"),
    pytest.mark.skipif(not harness.lazy_supported(), reason="lazy restore: issue 3"),
]


def restore_all_lazily(env, runs):
    """Start every `restore --lazy-pages -d` before waiting for any."""
    procs = []
    for name, img, w in runs:
        log = env.log_path(f"restore-{name}")
        argv = [str(harness.LAZARUS)] + [str(a) for a in env.restore_args(img, "lazy", True)] + \
            ["-o", str(log), "-v4"]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, close_fds=True)
        env.procs.append(p)
        env.pids.add(w.pid)
        procs.append((name, img, w, p, log))
    for name, img, w, p, log in procs:
        out, err = p.communicate(timeout=harness.LAZARUS_TIMEOUT)
        r = harness.Result(p.args, p.returncode, out, err, log)
        assert p.returncode == 0 and not r.errors, f"restore of {name} failed\n{r.describe()}"
        assert harness.alive(w.pid), f"restored {name} {w.pid} is not running\n{r.describe()}"
        w.proc = None
    daemons = {}
    for name, img, w in runs:
        lock = (img / "lazy-pages.lock").read_text().split()
        assert lock, f"{img}/lazy-pages.lock holds no pid"
        daemons[name] = int(lock[0])
        env.pids.add(daemons[name])
    assert len(set(daemons.values())) == 4, f"not one daemon per restore: {daemons}"
    return daemons


def concurrently(checks):
    """Run the checks in threads at once; re-raise the first failure."""
    errors = {}

    def run(name, fn):
        try:
            fn()
        except BaseException as e:  # noqa: B902 - reported below with its name
            errors[name] = e

    threads = [threading.Thread(target=run, args=(n, fn), name=n) for n, fn in checks.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(harness.LAZARUS_TIMEOUT)
        assert not t.is_alive(), f"the {t.name} check did not finish"
    for name, e in errors.items():
        raise AssertionError(f"{name} after the lazy restore: {e}") from e


def test_four_servers_restored_lazily_at_once(env):
    redis = servers.start_redis(env)
    digest = servers.redis_load(redis.port, REDIS_KEYS)
    mc = servers.start_memcached(env)
    items = servers.mc_dataset()
    servers.mc_load(mc.port, items)
    ngx = servers.start_nginx(env)
    servers.nginx_check_serves(ngx)
    ngx_workers = servers.nginx_workers(ngx.pid)
    pg = servers.start_postgres(env)
    pg_want = servers.pg_load(pg)
    pg_tree = sorted(servers.tree_pids(pg.pid))

    trees = {"redis": [redis.pid], "memcached": [mc.pid], "nginx": [ngx.pid] +
             [pid for pid, _ in ngx_workers], "postgres": pg_tree}
    runs = [("redis", env.base / "img-redis", redis), ("memcached", env.base / "img-mc", mc),
            ("nginx", env.base / "img-nginx", ngx), ("postgres", env.base / "img-pg", pg)]
    for name, img, w in runs:
        if w is pg:
            servers.pg_dump(env, w, img)
        else:
            servers.dump(env, w, img)

    daemons = restore_all_lazily(env, runs)

    def check_redis():
        c = servers.Resp(redis.port)
        assert c("DEBUG", "DIGEST") == digest
        assert c("DBSIZE") == REDIS_KEYS + 3
        assert c("GET", "key:123456") == "value:123456"
        assert c("SET", "after", "restore") == "OK"
        assert c("GET", "after") == "restore"
        assert c("DEL", "after") == 1
        assert c("DEBUG", "DIGEST") == digest
        c.quit()

    def check_memcached():
        c = servers.Mc(mc.port)
        servers.mc_check_all(c, items)
        c.set_many([("new", 3, b"after restore")])
        assert c.get_many(["new"]) == {"new": (3, b"after restore")}
        assert c.cmd("delete new") == "DELETED"
        assert int(c.stats()["curr_items"]) == len(items)
        c.quit()

    def check_nginx():
        assert servers.nginx_workers(ngx.pid) == ngx_workers
        servers.nginx_check_serves(ngx)

    def check_postgres():
        assert sorted(servers.tree_pids(pg.pid)) == pg_tree
        servers.pg_check(pg, pg_want)
        servers.pg_write(pg, 100_001, "lazy four")

    checks = {"redis": check_redis, "memcached": check_memcached, "nginx": check_nginx,
              "postgres": check_postgres}
    concurrently(checks)

    # Every daemon finishes its fill: each exits 0 once every page is in place.
    for name, img, w in runs:
        dpid = daemons[name]
        st = harness.reap(dpid, harness.CHECK_TIMEOUT)
        log = img / "lazy-pages.log"
        assert st is not None and os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, \
            f"{name}: lazy-pages {dpid}: wait status {st}\n{harness.tail(log)}"
        assert "every page is in place or its process gone" in log.read_text(), harness.tail(log)
        st = json.loads((img / "lazy-pages-stats.json").read_text())
        assert st["daemon_pid"] == dpid, st
        procs = st["processes"]
        # The restored tree, and children forked while pages were still
        # outstanding (a backend for a new client) with their parent named.
        served = {p["pid"] for p in procs if p["parent_pid"] is None}
        assert served == set(trees[name]), \
            f"{name}: the daemon served {sorted(served)}, the tree is {trees[name]}"
        forked = [p for p in procs if p["parent_pid"] is not None]
        assert all(p["parent_pid"] in {q["pid"] for q in procs} for p in forked), st
        assert all(p["state"] == "done" for p in procs + st["shmem_objects"]), st
        # The servers ran on memory that was still being served: some pages
        # came in through demand faults, the rest through the fill.
        faulted = sum(p["pages_fault"] for p in procs + st["shmem_objects"])
        filled = sum(p["pages_fill"] for p in procs + st["shmem_objects"])
        assert faulted > 0 and filled > 0, f"{name}: {faulted} pages faulted in, {filled} filled"

    pg_want = servers.pg_expected(servers.pg_initial_rows() + [(100_001, "lazy four")])
    concurrently({"redis": check_redis, "memcached": check_memcached, "nginx": check_nginx,
                  "postgres": lambda: servers.pg_check(pg, pg_want)})
    servers.pg_stop(pg)
