"""sqlite in WAL mode (issue 7 item 2): Debian's sqlite, through python3's
sqlite3 module (test/workloads/pysqlite.py), holds a database open with
PRAGMA journal_mode=WAL and mmap_size: it maps the database file and its
-shm file MAP_SHARED and holds POSIX locks on both (and keeps -wal open).

Dumped in the middle of a write transaction (BEGIN IMMEDIATE, rows inserted
and not committed), restored eager and lazy: the process holds exactly the
POSIX locks it held (/proc/locks), a writer from outside (the sqlite3 CLI)
still gets "database is locked" as before the dump, the process answers
its query with its uncommitted rows, commits, and a separate sqlite3 sees
the committed rows, writes one itself (seen by the restored process through
the shared -shm mapping) and finds the database intact (integrity_check).
A database written by someone else between dump and restore is refused.
"""
import hashlib
import json
import os
import subprocess

import pytest

import harness

ERR = harness.ERROR_PREFIX
PYSQLITE = harness.ROOT / "test" / "workloads" / "pysqlite.py"
SQLITE3 = "/usr/bin/sqlite3"
ROWS = 1000

pytestmark = pytest.mark.skipif(not os.path.exists(SQLITE3),
                                reason="sqlite3 not installed (tools/install-deps.sh)")


def row(k):
    return hashlib.sha256(f"row {k}".encode()).hexdigest() * 3


def expected(keys):
    h = hashlib.sha256()
    for k in sorted(keys):
        h.update(f"{k}:{row(k)}\n".encode())
    return {"count": len(keys), "sum": sum(keys), "sha256": h.hexdigest()}


class PySqlite(harness.Workload):
    kind = "pysqlite"

    def parse_result(self, text):
        return json.loads(text)

    def ask(self, *words):
        """Run one command in the process; its JSON answer, which must PASS."""
        (self.dir / "cmd").write_text(" ".join(str(w) for w in words) + "\n")
        r = self.check()
        assert r["verdict"] == "PASS" and r["cmd"] == [str(w) for w in words], \
            f"pysqlite {self.pid}: {words}: {r}\n{self.diag()}"
        return r

    @property
    def db(self):
        return self.dir / "db.sqlite"


def spawn(env, name="sql"):
    d = env.base / name
    return env.spawn(PySqlite, [harness.PYTHON, PYSQLITE, "--dir", d, "--rows", ROWS], d)


def cli(db, sql, timeout_ms=0):
    """The sqlite3 command line on DB, no busy wait: (rc, stdout, stderr)."""
    p = subprocess.run([SQLITE3, "-cmd", f".timeout {timeout_ms}", str(db), sql],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def assert_outside_writer_busy(db):
    rc, out, err = cli(db, f"INSERT INTO t VALUES (-1, '{row(-1)}');")
    assert rc != 0 and "database is locked" in err, (rc, out, err)


def posix_locks(pid, files):
    """The POSIX locks PID holds on FILES: sorted (name, type, start, end)."""
    inos = {os.stat(f).st_ino: f.name for f in files}
    out = []
    with open("/proc/locks") as f:
        for line in f:
            w = line.split()
            if w[1] != "POSIX" or int(w[4]) != pid:
                continue
            ino = int(w[5].split(":")[2])
            if ino in inos:
                out.append((inos[ino], w[3], w[6], w[7]))
    return sorted(out)


def shared_maps(pid):
    """Paths PID maps MAP_SHARED ('s' in /proc/PID/maps)."""
    out = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            w = line.split()
            if len(w) >= 6 and w[1][3] == "s":
                out.add(w[5])
    return out


def test_wal_restored(env, mode):
    w = spawn(env)
    keys = set(range(ROWS))
    assert {k: w.ask("query")[k] for k in ("count", "sum", "sha256")} == expected(keys)
    files = [w.db, w.dir / "db.sqlite-wal", w.dir / "db.sqlite-shm"]
    assert all(f.exists() for f in files), list(w.dir.iterdir())
    assert str(w.dir / "db.sqlite-shm") in shared_maps(w.pid), shared_maps(w.pid)
    # A write transaction left open across the dump: its rows are not committed.
    assert w.ask("begin")["in_transaction"]
    w.ask("insert", ROWS, 5)
    locks = posix_locks(w.pid, files)
    assert {n for n, *_ in locks} == {"db.sqlite", "db.sqlite-shm"}, locks
    assert_outside_writer_busy(w.db)

    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)

    assert posix_locks(w.pid, files) == locks, "the restored process holds other locks"
    assert str(w.dir / "db.sqlite-shm") in shared_maps(w.pid)
    assert_outside_writer_busy(w.db)
    rc, out, err = cli(w.db, "SELECT count(*) FROM t;")
    assert (rc, out) == (0, str(ROWS)), (rc, out, err)  # the open transaction is not seen
    r = w.ask("query")
    keys |= set(range(ROWS, ROWS + 5))
    assert r["in_transaction"] and {k: r[k] for k in ("count", "sum", "sha256")} == \
        expected(keys), r
    assert not w.ask("commit")["in_transaction"]
    w.ask("insert", ROWS + 5, 3)  # one more transaction of its own, committed
    keys |= set(range(ROWS + 5, ROWS + 8))

    # A separate sqlite3 sees every committed row, writes one, finds the db intact.
    rc, out, err = cli(w.db, "SELECT count(*), sum(k) FROM t;", timeout_ms=10000)
    assert (rc, out) == (0, f"{len(keys)}|{sum(keys)}"), (rc, out, err)
    rc, out, err = cli(w.db, f"INSERT INTO t VALUES ({ROWS + 100}, '{row(ROWS + 100)}');",
                       timeout_ms=10000)
    assert rc == 0, (rc, out, err)
    keys.add(ROWS + 100)
    rc, out, err = cli(w.db, "PRAGMA integrity_check;", timeout_ms=10000)
    assert (rc, out) == (0, "ok"), (rc, out, err)
    # The restored process sees that row through its -shm mapping and the WAL.
    r = w.ask("query")
    assert {k: r[k] for k in ("count", "sum", "sha256")} == expected(keys), r
    assert w.ask("integrity")["integrity"] == "ok"
    # The locks it holds now are its own (an idle connection: the db's shared lock).
    assert posix_locks(w.pid, files), "no lock held after restore"
    w.stop()
    rc, out, err = cli(w.db, "PRAGMA integrity_check; SELECT count(*) FROM t;")
    assert (rc, out) == (0, f"ok\n{len(keys)}"), (rc, out, err)


@pytest.mark.parametrize("writer", ["exited", "running"])
def test_written_between_dump_and_restore(env, writer):
    """Another sqlite3 writes the database after the dump. Exited: closing
    the last connection it checkpointed and removed -wal and -shm; running
    (still holding the database open): the -wal the dumped process held
    open for reading and writing grew. Both refused by the rule for changed
    files (a missing one; one open for reading that changed size), with one
    line naming the file, nothing left running."""
    w = spawn(env)
    w.ask("insert", ROWS, 2)
    img = env.path("img")
    env.dump(w, img)
    insert = f"INSERT INTO t VALUES (-5, '{row(-5)}');"
    if writer == "exited":
        rc, out, err = cli(w.db, insert, timeout_ms=10000)
        assert rc == 0, (rc, out, err)
        want = f"{ERR}restore: {w.dir}/db.sqlite-shm: No such file or directory (mapped at 0x"
    else:
        p = subprocess.Popen([SQLITE3, str(w.db)], stdin=subprocess.PIPE, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env.procs.append(p)
        env.pids.add(p.pid)
        # A busy timeout: the dumped process may still be dying (its locks held).
        p.stdin.write(".timeout 10000\n" + insert + "\n")
        p.stdin.flush()
        harness.wait_for(lambda: cli(w.db, "SELECT count(*) FROM t WHERE k = -5;",
                                     10000)[1] == "1", 60, "the outside write")
        want = f"{ERR}restore: {w.dir}/db.sqlite-wal"
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc == 1 and len(r.errors) == 1 and r.errors[0].startswith(want), r.describe()
    assert harness.proc_state(w.pid) is None
