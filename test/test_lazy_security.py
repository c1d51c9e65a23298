"""test_lazy_security.py - who restore hands a userfaultfd to, what the
lazy-pages daemon creates in WORKDIR, and which dump it serves (issue 9,
items 3, 4, 7 and 9 on the lazy-pages side).

- A listener of another uid (a small python listener run as `nobody` through
  setpriv) on WORKDIR/lazy-pages.sock: restore refuses with one line naming
  the socket and the uid, before it sends anything (the listener records
  every byte and descriptor it receives: none) and before it creates the
  process.
- A listener run by root that never answers: restore gives up with one line
  once LAZARUS_LAZY_TIMEOUT_MS has passed; the process is never created.
- A WORKDIR writable by others: restore and the daemon refuse it.
- A daemon serving dump A and a restore of dump B (same pid, a second dump
  of the same workload): refused by name on both sides, before the process
  exists; the daemon then serves a restore of A. A pages file of dump B put
  among A's is refused by the daemon by name, the process killed.
- Every file the daemon creates in WORKDIR is mode 0600; symlinks planted at
  lazy-pages-stats.json and lazy-pages.log are not followed.
- A client that connects and says nothing does not hold up a restore, and is
  closed after LAZARUS_LAZY_CONN_TIMEOUT_MS with a line saying so.
"""
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

import harness
from harness import wait_for

pytestmark = pytest.mark.skipif(not harness.lazy_supported(), reason="lazy restore: issue 3")

NOBODY = 65534
SOCK = "lazy-pages.sock"
DAEMON_FILES = ("lazy-pages.sock", "lazy-pages.lock", "lazy-pages.log", "lazy-pages-stats.json")

# A listener on WORKDIR/lazy-pages.sock that records, in a JSON file, every
# connection, byte and SCM_RIGHTS descriptor it receives, and never answers.
# argv: path SOCKET RECORD  (bind and listen itself)
#       fd N RECORD         (listen on an inherited, already bound socket)
#       [noaccept]          (backlog 0, never accept)
LISTENER = r"""
import json, os, socket, sys, time
how, arg, rec = sys.argv[1:4]
noaccept = sys.argv[4:] == ["noaccept"]
if how == "path":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(arg)
else:
    s = socket.socket(fileno=int(arg))
s.listen(0 if noaccept else 8)
log = {"uid": os.geteuid(), "connections": 0, "closed": 0, "messages": 0, "bytes": 0, "fds": 0}
def save():
    with open(rec + ".tmp", "w") as f:
        json.dump(log, f)
    os.rename(rec + ".tmp", rec)
save()
while noaccept:
    time.sleep(3600)
while True:
    c, _ = s.accept()
    log["connections"] += 1
    save()
    while True:
        msg, anc, flags, _ = c.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
        fds = [int.from_bytes(d[i:i + 4], "little") for lvl, typ, d in anc
               if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS
               for i in range(0, len(d) - len(d) % 4, 4)]
        if not msg and not fds:
            break
        log["messages"] += 1
        log["bytes"] += len(msg)
        log["fds"] += len(fds)
        save()
    c.close()
    log["closed"] += 1
    save()
"""


class Listener:
    """The fake daemon above, as root or (setpriv) as another uid."""

    def __init__(self, env, rec, how, arg, uid=0, pass_fds=(), accept=True):
        self.rec = Path(rec)
        argv = [harness.PYTHON, "-c", LISTENER, how, str(arg), str(rec)] + \
            ([] if accept else ["noaccept"])
        if uid:
            argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"] + argv
        self.err = env.logs / "listener.stderr"
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         pass_fds=pass_fds, start_new_session=True)
        env.procs.append(self.proc)
        env.pids.add(self.proc.pid)
        wait_for(lambda: self.rec.exists() or self.proc.poll() is not None,
                 harness.READY_TIMEOUT, "the fake listener to listen")
        assert self.proc.poll() is None, f"the fake listener exited\n{harness.tail(self.err)}"
        assert self.record()["uid"] == uid

    def record(self):
        return json.loads(self.rec.read_text())

    def stop(self):
        self.proc.kill()
        self.proc.wait(harness.EXIT_TIMEOUT)


class Daemon:
    """`lazarus lazy-pages -D IMG -W WORK` started by the test, ready."""

    def __init__(self, env, img, work, *args, extra_env=None):
        self.log = env.log_path("lazy-pages")
        self.err = env.logs / f"{self.log.stem}.stderr"
        rfd, wfd = os.pipe()
        self.argv = [str(harness.LAZARUS), "lazy-pages", "-D", str(img), "-W", str(work),
                     "--status-fd", str(wfd), "-o", str(self.log), "-v4"] + list(args)
        denv = {k: v for k, v in os.environ.items() if not k.startswith("LAZARUS_LAZY_")}
        denv.update(extra_env or {})
        try:
            with open(self.err, "w") as err:
                self.proc = subprocess.Popen(self.argv, pass_fds=[wfd], env=denv,
                                             stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                             start_new_session=True)
        finally:
            os.close(wfd)
        env.procs.append(self.proc)
        env.pids.add(self.proc.pid)
        try:
            readable, _, _ = select.select([rfd], [], [], harness.READY_TIMEOUT)
            byte = os.read(rfd, 1) if readable else b""
        finally:
            os.close(rfd)
        assert byte, f"lazy-pages did not get ready\n{self.describe()}"

    def describe(self):
        rc = self.proc.poll()
        return f"$ {' '.join(self.argv)}\n{'running' if rc is None else f'exit {rc}'}\n" \
               f"--- stderr ---\n{harness.tail(self.err)}\n--- log ---\n{harness.tail(self.log, 40)}"

    def log_text(self):
        return self.log.read_text(errors="replace")

    def wait(self):
        return self.proc.wait(harness.CHECK_TIMEOUT)


def nobody_dir(env, name):
    """A directory owned by nobody, mode 0700, reachable by nobody."""
    os.chmod(env.base, 0o711)
    d = env.base / name
    d.mkdir(mode=0o700)
    os.chown(d, NOBODY, NOBODY)
    return d


def restore_lazy(env, img, work, *extra):
    return env.lazarus("restore", "-D", img, "--lazy-pages", "-W", work, "-d", *extra,
                       log=env.log_path("restore"))


def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def refused(r, pid, why, daemons=()):
    """restore failed with exactly one error line saying why, and left
    neither the process nor a lazarus process (a daemon it started, a
    guardian) behind; daemons: the pids of daemons the test started."""
    assert r.rc == 1, r.describe()
    assert len(r.errors) == 1, f"want one error line\n{r.describe()}"
    assert why in r.errors[0], f"{why!r} not in the error\n{r.describe()}"
    assert not harness.alive(pid), f"pid {pid} was created\n{r.describe()}"

    def left():
        return [p for p in harness.my_children() if harness.alive(p) and
                comm(p) in ("lazarus", "lazarus-guard") and p not in daemons]

    # A daemon it started may be on its way out (it wrote why, then exits).
    wait_for(lambda: not left(), harness.EXIT_TIMEOUT, "no lazarus process to be left",
             lambda: f"left: {left()}\n{r.describe()}")


def dump_id(img):
    return (Path(img) / "inventory.img").read_bytes()[16:32].hex()


# ------------------------------------------------------------ the listener


def test_listener_of_another_uid_in_its_own_dir(small_dump, env):
    """The socket's directory belongs to nobody: refused before connecting."""
    work = nobody_dir(env, "work")
    lst = Listener(env, work / "rec.json", "path", work / SOCK, uid=NOBODY)
    r = restore_lazy(env, small_dump["img"], work)
    refused(r, small_dump["work"].pid, f"{work}/{SOCK}: its directory: owned by another user "
            f"(uid {NOBODY}); refusing to hand a userfaultfd to it")
    assert lst.record()["connections"] == 0, lst.record()


def test_listener_of_another_uid_behind_a_root_socket(small_dump, env):
    """Root's directory, a socket file root bound, but nobody listens on it
    (SO_PEERCRED says so): refused once connected, before a byte is sent."""
    work = env.path("work")
    rec = nobody_dir(env, "rec")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(str(work / SOCK))
    lst = Listener(env, rec / "rec.json", "fd", s.fileno(), uid=NOBODY, pass_fds=[s.fileno()])
    s.close()
    r = restore_lazy(env, small_dump["img"], work)
    refused(r, small_dump["work"].pid, f"{work}/{SOCK}: the listener (pid {lst.proc.pid}) runs "
            f"as uid {NOBODY}, not root or uid 0; refusing to hand a userfaultfd to it")
    wait_for(lambda: lst.record()["closed"] == 1, harness.EXIT_TIMEOUT,
             "the refused connection to close", lambda: json.dumps(lst.record()))
    rec = lst.record()
    assert (rec["connections"], rec["messages"], rec["bytes"], rec["fds"]) == (1, 0, 0, 0), rec


def test_socket_file_of_another_uid(small_dump, env):
    """A socket file owned by nobody (root listens, but anybody who owns the
    file could have replaced it), or a symlink: refused before connecting."""
    work = env.path("work")
    lst = Listener(env, work / "rec.json", "path", work / SOCK)
    os.chown(work / SOCK, NOBODY, NOBODY)
    r = restore_lazy(env, small_dump["img"], work)
    refused(r, small_dump["work"].pid, f"{work}/{SOCK}: owned by uid {NOBODY}, not root or uid "
            "0; refusing to hand a userfaultfd to it")
    lst.stop()

    other = env.path("other")
    lst = Listener(env, other / "rec.json", "path", other / SOCK)
    os.unlink(work / SOCK)
    os.symlink(other / SOCK, work / SOCK)
    r = restore_lazy(env, small_dump["img"], work)
    refused(r, small_dump["work"].pid, f"{work}/{SOCK}: is a symbolic link; refusing to hand a "
            "userfaultfd to it")
    assert lst.record()["connections"] == 0, lst.record()


def test_silent_listener_gives_up(small_dump, env, monkeypatch):
    """A root listener that takes the HELLO and never answers: restore gives
    up after LAZARUS_LAZY_TIMEOUT_MS with one line; no process is created."""
    work = env.path("work")
    lst = Listener(env, work / "rec.json", "path", work / SOCK)
    monkeypatch.setenv("LAZARUS_LAZY_TIMEOUT_MS", "1500")
    r = restore_lazy(env, small_dump["img"], work)
    refused(r, small_dump["work"].pid, f"{work}/{SOCK}: the lazy-pages daemon did not answer "
            "HELLO within 1500 ms")
    wait_for(lambda: lst.record()["closed"] == 1, harness.EXIT_TIMEOUT,
             "the connection to close", lambda: json.dumps(lst.record()))
    rec = lst.record()
    assert (rec["messages"], rec["fds"]) == (1, 0), rec  # the HELLO, no uffd


def test_full_backlog_gives_up(small_dump, env, monkeypatch):
    """A root listener that never accepts, its backlog full: restore's
    connect gives up after LAZARUS_LAZY_TIMEOUT_MS with one line."""
    work = env.path("work")
    Listener(env, work / "rec.json", "path", work / SOCK, accept=False)
    filler = []
    try:
        # Backlog 0 holds one connection; fill it (and one more in case the
        # kernel counts differently) without blocking.
        for _ in range(2):
            f = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            f.setblocking(False)
            try:
                f.connect(str(work / SOCK))
            except BlockingIOError:
                f.close()
                break
            filler.append(f)
        assert filler, "the listener took no connection at all"
        monkeypatch.setenv("LAZARUS_LAZY_TIMEOUT_MS", "1000")
        r = restore_lazy(env, small_dump["img"], work)
        refused(r, small_dump["work"].pid, f"{work}/{SOCK}: the lazy-pages daemon did not accept "
                "the connection within 1000 ms")
    finally:
        for f in filler:
            f.close()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_workdir_writable_by_others(small_dump, env, mode):
    work = env.path("work")
    os.chmod(work, mode)
    who = "its group" if mode == 0o770 else "others"
    r = restore_lazy(env, small_dump["img"], work)
    refused(r, small_dump["work"].pid, f"{work}/{SOCK}: its directory: writable by {who} "
            f"(mode {mode:04o}); refusing to hand a userfaultfd to it")
    assert not any(work.iterdir()), list(work.iterdir())

    r = env.lazarus("lazy-pages", "-D", small_dump["img"], "-W", work)
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert f"work directory {work}: writable by {who} (mode {mode:04o}); refusing to listen " \
           "there" in r.errors[0], r.describe()
    assert not any(work.iterdir()), list(work.iterdir())


def test_workdir_symlink(small_dump, env):
    """A WORKDIR that is a symlink (to a good directory): both refuse it, as
    for DIR (safe-file.h)."""
    real, work = env.path("real"), env.base / "work"
    os.symlink(real, work)
    r = restore_lazy(env, small_dump["img"], work)
    refused(r, small_dump["work"].pid, f"{work}/{SOCK}: its directory: is a symbolic link; "
            "refusing to hand a userfaultfd to it")
    r = env.lazarus("lazy-pages", "-D", small_dump["img"], "-W", work)
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert f"work directory {work}: is a symbolic link; refusing to listen there" in \
        r.errors[0], r.describe()
    assert not any(real.iterdir()), list(real.iterdir())


# ------------------------------------------------------------ which dump


@pytest.fixture
def dumps_ab(env):
    """One lzwork dumped twice (-R, then for good): A and B, same pid. Only B
    can be restored as it is (A's open log file has grown since), once."""
    w = env.lzwork(name="ab", mib=2)
    w.check_pass()
    a, b = env.path("dump-a"), env.path("dump-b")
    env.dump(w, a, leave_running=True)
    w.check_pass()
    env.dump(w, b)
    assert dump_id(a) != dump_id(b)
    return w, a, b


def test_daemon_of_another_dump_refuses(env, dumps_ab):
    """A daemon serving B refuses a restore of A by name, on both sides,
    before the process exists; it then serves a restore of B."""
    w, a, b = dumps_ab
    work = env.path("work")
    d = Daemon(env, b, work)
    r = restore_lazy(env, a, work)
    why = f"{b}/inventory.img: this daemon serves dump {dump_id(b)}, not dump {dump_id(a)} " \
          "of this restore"
    refused(r, w.pid, why, daemons=[d.proc.pid])
    assert f"refused: {why}" in d.log_text(), d.describe()
    assert d.proc.poll() is None, d.describe()

    r = restore_lazy(env, b, work)
    assert r.rc == 0 and not r.errors, r.describe()
    env.pids.add(w.pid)
    w.restored().check_pass()
    harness.kill_and_reap(w.pid)
    assert d.wait() == 0, d.describe()


@pytest.mark.parametrize("swap", ["other-dump", "symlink"])
def test_daemon_refuses_pages_of_another_dump(env, dumps_ab, swap):
    """The daemon's images hold B's inventory and pagemap but A's pages file
    (or a symlink to B's): the daemon checks the file it will copy from
    against the restore's dump id, refuses it by name and kills the
    process; restore fails with that line."""
    w, a, b = dumps_ab
    served, work = env.base / "served", env.path("work")
    shutil.copytree(b, served)
    pages = f"pages-{w.pid}.img"
    os.unlink(served / pages)
    if swap == "symlink":
        os.symlink(b / pages, served / pages)
        why = f"{pages}: is a symbolic link; pid {w.pid} killed"
    else:
        shutil.copy(a / pages, served / pages)
        why = f"{pages}: belongs to another dump (dump id {dump_id(a)}, not {dump_id(b)} of " \
              f"this restore); pid {w.pid} killed"
    d = Daemon(env, served, work)
    r = restore_lazy(env, b, work)
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert why in r.errors[0], r.describe()
    env.pids.add(w.pid)
    wait_for(lambda: not harness.alive(w.pid), harness.EXIT_TIMEOUT, f"pid {w.pid} to be gone")
    assert d.wait() == 1, d.describe()
    assert why in d.log_text(), d.describe()


def chown_tree(path, uid):
    os.chown(path, uid, uid)
    for p in Path(path).iterdir():
        os.chown(p, uid, uid)


def test_daemon_trusts_images_as_restore_does(env, dumps_ab):
    """A root daemon serves only images restore would trust: a directory of
    nobody's is refused at start with one line, unless --trust-images-of
    nobody says otherwise (then it serves a restore of the same dump)."""
    w, _, b = dumps_ab
    served, work = env.base / "served", env.path("work")
    shutil.copytree(b, served)
    chown_tree(served, NOBODY)
    r = env.lazarus("lazy-pages", "-D", served, "-W", work)
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert f"images directory {served}: owned by uid {NOBODY}, whose images restore does not " \
           "trust" in r.errors[0] and r.errors[0].endswith("; refusing to serve it"), r.describe()

    d = Daemon(env, served, work, "--trust-images-of", "nobody")
    r = restore_lazy(env, b, work)
    assert r.rc == 0 and not r.errors, r.describe()
    env.pids.add(w.pid)
    w.restored().check_pass()
    harness.kill_and_reap(w.pid)
    assert d.wait() == 0, d.describe()


def test_daemon_refuses_untrusted_pages_file(env, dumps_ab):
    """Root's images directory, but the pages file belongs to nobody: the
    daemon refuses it by name when the process is handed over (the file it
    would copy from), the process is killed, restore says why."""
    w, _, b = dumps_ab
    served, work = env.base / "served", env.path("work")
    shutil.copytree(b, served)
    pages = f"pages-{w.pid}.img"
    os.chown(served / pages, NOBODY, NOBODY)
    d = Daemon(env, served, work)
    r = restore_lazy(env, b, work)
    why = f"{pages}: owned by uid {NOBODY}, whose images restore does not trust"
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert why in r.errors[0] and f"pid {w.pid} killed" in r.errors[0], r.describe()
    env.pids.add(w.pid)
    wait_for(lambda: not harness.alive(w.pid), harness.EXIT_TIMEOUT, f"pid {w.pid} to be gone")
    assert d.wait() == 1, d.describe()
    assert why in d.log_text(), d.describe()


# ------------------------------------------------------------ WORKDIR files


def test_workdir_files_are_private(env, dumps_ab):
    """`lazy-pages -d` (logging to WORKDIR/lazy-pages.log) and a restore:
    every file in WORKDIR (socket, lock, log, both statistics) is 0600,
    whatever the umask."""
    w, _, b = dumps_ab
    work = env.path("work")
    old = os.umask(0)
    try:
        r = env.lazarus("lazy-pages", "-D", b, "-W", work, "-d")
    finally:
        os.umask(old)
    assert r.rc == 0 and not r.errors, r.describe()
    modes = {n: stat.S_IMODE(os.lstat(work / n).st_mode) for n in DAEMON_FILES[:3]}
    assert stat.S_ISSOCK(os.lstat(work / SOCK).st_mode)
    r = restore_lazy(env, b, work)
    assert r.rc == 0 and not r.errors, r.describe()
    env.pids.add(w.pid)
    w.restored().check_pass()
    harness.kill_and_reap(w.pid)
    wait_for(lambda: (work / "lazy-pages-stats.json").exists() and not (work / SOCK).exists(),
             harness.CHECK_TIMEOUT, "the daemon to write its statistics and leave")
    for n in DAEMON_FILES[1:]:
        modes[n] = stat.S_IMODE(os.lstat(work / n).st_mode)
    # Every file there: the daemon's, and restore's stats-restore.json.
    for p in work.iterdir():
        modes[p.name] = stat.S_IMODE(os.lstat(p).st_mode)
    assert "stats-restore.json" in modes, modes
    assert all(m == 0o600 for m in modes.values()), {n: oct(m) for n, m in modes.items()}


def test_planted_symlinks_not_followed(env, dumps_ab):
    """Symlinks at lazy-pages.log and lazy-pages-stats.json: the log is
    refused by name (by `lazy-pages -d` and by the daemon a restore starts),
    the statistics replace the link; neither target is touched."""
    w, _, b = dumps_ab
    work = env.path("work")
    target = env.path("elsewhere")
    for n in ("log", "stats"):
        (target / n).write_text("precious\n")
    os.symlink(target / "log", work / "lazy-pages.log")
    os.symlink(target / "stats", work / "lazy-pages-stats.json")

    r = env.lazarus("lazy-pages", "-D", b, "-W", work, "-d")
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert "lazy-pages: log file lazy-pages.log: is a symbolic link" in r.errors[0], r.describe()
    r = restore_lazy(env, b, work)
    refused(r, w.pid, f"{work}/{SOCK}: the lazy-pages daemon it started failed: its log "
            f"{work}/lazy-pages.log: is a symbolic link")

    os.unlink(work / "lazy-pages.log")
    d = Daemon(env, b, work)
    r = restore_lazy(env, b, work)
    assert r.rc == 0 and not r.errors, r.describe()
    env.pids.add(w.pid)
    w.restored().check_pass()
    harness.kill_and_reap(w.pid)
    assert d.wait() == 0, d.describe()
    st = work / "lazy-pages-stats.json"
    assert not st.is_symlink() and stat.S_IMODE(st.stat().st_mode) == 0o600
    assert json.loads(st.read_text())["processes"][0]["pid"] == w.pid
    assert all((target / n).read_text() == "precious\n" for n in ("log", "stats"))


# ------------------------------------------------------------ silent clients


def test_silent_client_does_not_block(env, dumps_ab):
    """A client that connects and sends nothing, and one that announces two
    ranges and sends one: a restore goes through meanwhile, and the daemon
    closes each after LAZARUS_LAZY_CONN_TIMEOUT_MS with a line saying why."""
    w, _, b = dumps_ab
    work = env.path("work")
    d = Daemon(env, b, work, extra_env={"LAZARUS_LAZY_CONN_TIMEOUT_MS": "1000"})
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    silent.connect(str(work / SOCK))
    partial = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    partial.connect(str(work / SOCK))
    hdr = lambda typ, n, seq: (0x50595A4C).to_bytes(4, "little") + (3).to_bytes(2, "little") + \
        typ.to_bytes(2, "little") + n.to_bytes(4, "little") + seq.to_bytes(4, "little")
    hello = (1).to_bytes(4, "little") + bytes(8 + 4) + bytes.fromhex(dump_id(b))
    partial.send(hdr(1, len(hello), 1) + hello)
    assert partial.recv(4096)[16:20] == bytes(4)  # REPLY status 0
    rp, wp = os.pipe()
    try:
        proc = (os.getpid()).to_bytes(4, "little") + (w.pid).to_bytes(4, "little") + \
            bytes(16) + (2).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(8)
        socket.send_fds(partial, [hdr(2, len(proc) + 16, 2) + proc +
                                  (0x10000).to_bytes(8, "little") + (4096).to_bytes(8, "little")],
                        [rp])
        r = restore_lazy(env, b, work)
        assert r.rc == 0 and not r.errors, r.describe()
        env.pids.add(w.pid)
        w.restored().check_pass()
        wait_for(lambda: "sent no HELLO within 1000 ms; connection closed" in d.log_text() and
                 "did not send the rest of its PROCESS (RANGES) within 1000 ms" in d.log_text(),
                 harness.CHECK_TIMEOUT, "the daemon to close the silent clients", d.describe)
        assert partial.recv(4096) == b""
        assert silent.recv(4096) == b""
    finally:
        silent.close()
        partial.close()
        os.close(rp)
        os.close(wp)
    harness.kill_and_reap(w.pid)
    assert d.wait() == 0, d.describe()
