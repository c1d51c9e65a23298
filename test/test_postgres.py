"""A real server: PostgreSQL 15 (Debian package postgresql) in a cluster of
the test's own (initdb as the postgres user in a temporary directory; the
Debian cluster service is not used), the postmaster started directly with
its background processes (checkpointer, background writer, walwriter,
autovacuum launcher, logical replication launcher) and a log collector fed
through a pipe. Its shared memory is the three kinds PostgreSQL 15 uses: a
small SysV segment (the interlock), an anonymous MAP_SHARED main area
inherited by every child, and POSIX shared memory under /dev/shm for
dynamic shared memory (dynamic_shared_memory_type=posix, Debian's default).

Loaded with a table of 100,000 rows whose count and md5 of all rows are
computed here, the whole tree is checkpointed and restored eager and lazy.
Checked through PostgreSQL's own clients: psql over the unix socket and over
TCP and a small wire-protocol client give the same count and checksum, an
INSERT commits and is read back over a new connection whose backend is a
child of the restored postmaster, `pg_ctl stop -m fast` shuts the restored
server down cleanly (shutdown checkpoint) and a fresh postmaster on the same
data directory sees the committed row (the WAL and data files the restored
processes wrote are right). With --tcp-established a client connected
before the dump (its backend inside a transaction-free session with a
temporary table) continues on the same connection.

As an attacker with the server's uid would: a relation file the postmaster
holds open replaced by a symlink to a root-only file makes the restore
refuse (files are opened as their owner, src/as-owner.h); the socket
directory owned by postgres is used again (the socket is bound as its owner).
"""
import os
import signal
import subprocess

import pytest

import harness

import servers
from servers import PgConn

pytestmark = pytest.mark.skipif(not os.path.exists(servers.POSTGRES),
                                reason="postgresql 15 not installed (make deps)")


def restart_and_check(env, w, want, key, value):
    """Stop the restored server, start a new postmaster on the same data
    directory and find the committed row and the whole table."""
    servers.pg_stop(w)
    servers.pg_start_postmaster(env, w)
    assert servers.psql(w, f"SELECT v FROM t WHERE id = {key}") == [value]
    servers.pg_check(w, want)
    servers.pg_stop(w)


def test_postgres_restored(env, mode):
    w = servers.start_postgres(env)
    want = servers.pg_load(w)
    tree = servers.tree_pids(w.pid)
    assert len(tree) >= 6, f"postmaster tree {tree}: background processes missing\n{w.diag()}"
    img = env.base / "img"
    servers.pg_dump(env, w, img)
    servers.restore(env, img, mode, w)
    assert sorted(servers.tree_pids(w.pid)) == sorted(tree), \
        "the restored tree differs from the dumped one"
    servers.pg_check(w, want)
    servers.pg_write(w, PG_KEY, "after restore")
    rows = servers.pg_initial_rows() + [(PG_KEY, "after restore")]
    want2 = servers.pg_expected(rows)
    servers.pg_check(w, want2)
    restart_and_check(env, w, want2, PG_KEY, "after restore")


PG_KEY = 100_001


def test_postgres_client_connection_kept(env, mode):
    """--tcp-established: a session opened before the dump, with a temporary
    table of its own (backend-local state), answers on the same connection
    after the restore and commits a write there."""
    w = servers.start_postgres(env)
    want = servers.pg_load(w)
    c = PgConn(w.port)
    c.query("CREATE TEMP TABLE mine AS SELECT 42 AS x")
    c.query("SET application_name = 'keeper'")
    backend = c.backend_pid
    img = env.base / "img"
    servers.pg_dump(env, w, img, "--tcp-established")
    servers.restore(env, img, mode, w, "--tcp-established")
    assert backend in servers.children(w.pid)
    assert c.query("SELECT x FROM mine") == [["42"]]
    assert c.query("SHOW application_name") == [["keeper"]]
    assert c.query("SELECT pg_backend_pid()") == [[str(backend)]]
    assert tuple(c.query(servers.PG_SUM_SQL)[0]) == want
    c.query(f"INSERT INTO t VALUES ({PG_KEY}, 'kept connection')")
    c.close()
    want2 = servers.pg_expected(servers.pg_initial_rows() + [(PG_KEY, "kept connection")])
    servers.pg_check(w, want2)
    restart_and_check(env, w, want2, PG_KEY, "kept connection")


def test_postgres_children_notice_postmaster_death(env, mode):
    """Every child of the restored postmaster notices its death: they watch
    a pipe whose write end only the postmaster holds (and get
    PR_SET_PDEATHSIG): a write end restored into any other process, or a
    pipe no longer shared, would leave them running."""
    w = servers.start_postgres(env)
    servers.pg_load(w)
    img = env.base / "img"
    servers.pg_dump(env, w, img)
    servers.restore(env, img, mode, w)
    kids = servers.children(w.pid)
    assert len(kids) >= 5, f"restored postmaster's children: {kids}"
    c = PgConn(w.port)  # and a backend forked after the restore
    assert c.backend_pid in servers.children(w.pid)
    os.kill(w.pid, signal.SIGKILL)
    for pid in kids + [c.backend_pid, w.pid]:
        harness.reap(pid)
    c.s.close()


def test_postgres_socket_dir_owned_by_postgres(env):
    """The unix socket in a directory that the postgres user owns (as
    Debian's /var/run/postgresql is): a restore run by root binds it there
    again, as the postgres user (lazarus itself never binds by path in a
    directory another user controls)."""
    w = servers.start_postgres(env, sockdir_owner=servers.pg_user())
    want = servers.pg_load(w)
    img = env.base / "img"
    servers.pg_dump(env, w, img)
    r = env.lazarus(*env.restore_args(img, "eager", True), log=env.log_path("restore"))
    env.pids.add(w.pid)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}"
    w.proc = None
    servers.pg_check(w, want)
    servers.pg_stop(w)


def test_postgres_planted_symlink_in_data_dir(env):
    """An attacker with the server's uid (who owns the data directory)
    replaces a relation file the postmaster holds open read-write by a
    symlink to a root-only file of the same size. The restore, run by root,
    must not hand the server a descriptor of that file: it refuses, one
    error line naming the path, and nothing is left running."""
    w = servers.start_postgres(env)
    servers.pg_load(w)
    img = env.base / "img"
    servers.pg_dump(env, w, img)
    held = [f for f in harness.file_entries(img) if f.get("kind") == "FD_REG"
            and f["path"].startswith(str(w.data) + "/") and f["flags"] & os.O_ACCMODE == os.O_RDWR]
    assert held, "the postmaster's tree holds no data file read-write"
    victim = held[0]["path"]
    secret = env.base / "secret"
    secret.write_bytes(b"s" * int(held[0]["size"]))
    os.chmod(secret, 0o600)
    pw = servers.pg_user()
    p = subprocess.run(servers.as_postgres(["sh", "-c", 'rm -f "$1" && ln -s "$2" "$1"', "sh",
                                            victim, secret]), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and os.path.islink(victim), f"planting the link: {p.stderr}"
    assert os.lstat(victim).st_uid == pw.pw_uid
    r = env.lazarus(*env.restore_args(img, "eager", True), log=env.log_path("restore"))
    env.pids.add(w.pid)
    assert r.rc != 0 and len(r.errors) == 1 and victim in r.errors[0], \
        f"restore did not refuse the planted link\n{r.describe()}"
    assert not harness.alive(w.pid), "a refused restore left the postmaster running"
