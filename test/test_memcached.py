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

import pytest

import harness
from servers import MEMCACHED, Mc, dump, restore, start_memcached
from servers import mc_check_all as check_all
from servers import mc_dataset as dataset
from servers import mc_load as load
from servers import memcached_user as run_as

pytestmark = pytest.mark.skipif(not os.path.exists(MEMCACHED),
                                reason="memcached not installed (make deps)")


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
