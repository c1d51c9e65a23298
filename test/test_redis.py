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
import time

import pytest

from servers import REDIS, Resp, dump, restore, start_redis
from servers import REDIS_NKEYS as NKEYS
from servers import redis_load as load

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS),
                                reason="redis-server not installed (make deps)")


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
