#!/usr/bin/python3
"""pysqlite.py - Debian's sqlite (python3's sqlite3 module) holding a
database open in WAL mode, for test_sqlite.py.

    /usr/bin/python3 pysqlite.py --dir DIR [--rows N]

Opens DIR/db.sqlite with PRAGMA journal_mode=WAL and mmap_size (so sqlite
maps the database file and its -shm file, and holds POSIX locks on both,
as every WAL connection does), fills table t with N known rows in one
committed transaction, then writes DIR/ready (tmp + rename) and waits.

Commands: the test writes one line to DIR/cmd and sends SIGUSR1; the answer
(one JSON object, "pid" and "verdict" included) goes to DIR/result, tmp +
rename. Commands:
  query            count, sum(k), a sha256 over every row in key order
  insert K N       insert rows K..K+N-1 (in the open transaction if any,
                   else in one that commits)
  begin            BEGIN IMMEDIATE: holds sqlite's write lock until commit
  commit           COMMIT the open transaction
  integrity        PRAGMA integrity_check
SIGTERM exits 0 (closing the connection).
"""
import argparse
import hashlib
import json
import os
import signal
import sqlite3
import sys
import time


def row(k):
    """The value stored under key k: deterministic, so anyone can check it."""
    return hashlib.sha256(f"row {k}".encode()).hexdigest() * 3


def digest(conn):
    h = hashlib.sha256()
    n = s = 0
    for k, v in conn.execute("SELECT k, v FROM t ORDER BY k"):
        h.update(f"{k}:{v}\n".encode())
        n, s = n + 1, s + k
    return {"count": n, "sum": s, "sha256": h.hexdigest()}


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--rows", type=int, default=1000)
    a = ap.parse_args()
    d = a.dir
    # isolation_level None: BEGIN/COMMIT only when we say so.
    conn = sqlite3.connect(os.path.join(d, "db.sqlite"), isolation_level=None)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        sys.exit(f"journal_mode is {mode}, not wal")
    conn.execute("PRAGMA mmap_size=16777216")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # the WAL keeps every frame: more to lose
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, ?)", ((k, row(k)) for k in range(a.rows)))
    conn.execute("COMMIT")
    digest(conn)  # reads through the mapping

    asked = []
    signal.signal(signal.SIGUSR1, lambda *_: asked.append(1))
    signal.signal(signal.SIGTERM, lambda *_: (conn.close(), sys.exit(0)))
    write_atomic(os.path.join(d, "ready"), f"pid={os.getpid()} rows={a.rows}\n")
    served = 0
    while True:
        if not asked:
            time.sleep(0.02)
            continue
        asked.clear()
        served += 1
        with open(os.path.join(d, "cmd")) as f:
            words = f.read().split()
        ans = {"pid": os.getpid(), "served": served, "cmd": words}
        try:
            if words[0] == "query":
                ans.update(digest(conn))
            elif words[0] == "insert":
                k, n = int(words[1]), int(words[2])
                own = not conn.in_transaction
                if own:
                    conn.execute("BEGIN")
                conn.executemany("INSERT INTO t VALUES (?, ?)",
                                 ((i, row(i)) for i in range(k, k + n)))
                if own:
                    conn.execute("COMMIT")
            elif words[0] == "begin":
                conn.execute("BEGIN IMMEDIATE")
            elif words[0] == "commit":
                conn.execute("COMMIT")
            elif words[0] == "integrity":
                ans["integrity"] = conn.execute("PRAGMA integrity_check").fetchone()[0]
            else:
                raise ValueError(f"unknown command {words[0]}")
            ans["in_transaction"] = conn.in_transaction
            ans["verdict"] = "PASS"
        except Exception as e:  # the test reads what went wrong
            ans["verdict"] = "FAIL"
            ans["error"] = f"{type(e).__name__}: {e}"
        write_atomic(os.path.join(d, "result"), json.dumps(ans) + "\n")


if __name__ == "__main__":
    main()
