"""Restore never opens or creates anything for a process with more privilege
than the process has (src/as-owner.h, lazarus.8 SECURITY).

Lazarus restores as root. What it opens and creates for a process is opened
and created with that process's dumped credentials: a file swapped for a
symlink to a root-only one after the dump is refused by name (held as an
fd, mapped MAP_SHARED, a FIFO) and the process does not come back; a daemon
that opened a root-only file as root and dropped privileges gets that very
file back, and nothing else under the same name; SO_PEERCRED of restored
unix sockets (in the tree, and reconnected with --ext-unix-sk) shows the
process's uid and gid, not 0; a TCP socket's inode is the process's; a
SysV segment's creator is the dumped one; a root process without
CAP_DAC_OVERRIDE gets no file it could not read.

The workload is pypriv.py (python3, under setpriv as nobody) and lzshm.
"""
import grp
import os
import pwd
import shutil
import socket
import stat
import struct
import threading

import pytest

import harness
from test_shm import LzShm, sysv_segments

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid
ERR = "lazarus: Error: "
SETPRIV = "/usr/bin/setpriv"
AS_NOBODY = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
PYPRIV = harness.ROOT / "test" / "workloads" / "pypriv.py"
SECRET = b"TOPSECRET-root-only-0123456789\n"


class PyPriv(harness.Workload):
    kind = "pypriv"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())


@pytest.fixture
def place(env):
    """base 0711 (a workload of nobody reaches its own dirs), pub/ a directory
    nobody cannot write, a root-only secret file and FIFO next to it."""
    os.chmod(env.base, 0o711)
    pub = env.base / "pub"
    pub.mkdir(mode=0o755)
    secret = env.base / "secret"
    secret.write_bytes(SECRET)
    os.chmod(secret, 0o600)
    os.mkfifo(env.base / "secret.fifo", 0o600)
    return pub


def spawn(env, name, args, prefix=AS_NOBODY):
    os.chmod(env.base, 0o711)  # mkdtemp's 0700 would shut out a workload of nobody
    d = env.base / name
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o777)
    # A copy nobody can read wherever the tree is (a clone under a 0700 directory).
    script = env.base / "pypriv.py"
    if not script.exists():
        shutil.copy(PYPRIV, script)
        os.chmod(script, 0o644)
    w = env.spawn(PyPriv, [*prefix, harness.PYTHON, script, "--dir", d, *args], d)
    if "child" in w.ready:
        env.pids.add(int(w.ready["child"]))
    return w


def nobody_file(path, data=b"public data of nobody, 32 bytes\n"):
    path.write_bytes(data)
    os.chown(path, NOBODY, NOGROUP)
    os.chmod(path, 0o644)
    return data


def refused(env, img, mode, w, name):
    """The restore fails with one line naming NAME; the process is not back."""
    r = env.restore(img, mode, w, expect_ok=False)
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert r.errors[0].startswith(ERR) and str(name) in r.errors[0], r.describe()
    assert harness.proc_state(w.pid) is None, "the process was restored"
    print(r.errors[0])  # shown with -s
    return r.errors[0]


# --- files: a planted symlink ---

@pytest.mark.parametrize("what", ["file", "map", "fifo"])
def test_symlink_to_secret_refused(env, place, mode, what):
    """A file of nobody replaced by a symlink to a root-only one after the
    dump: refused by name, the secret never reaches the process."""
    f = place / "f"
    if what == "fifo":
        os.mkfifo(f, 0o666)
        os.chown(f, NOBODY, NOGROUP)
    else:
        nobody_file(f)
    w = spawn(env, "w", [f"--{what}", f])
    w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    f.unlink()
    os.symlink(env.base / ("secret.fifo" if what == "fifo" else "secret"), f)
    atime = os.stat(env.base / "secret").st_atime_ns
    line = refused(env, img, mode, w, f)
    assert "symbolic link" in line, line
    assert os.stat(env.base / "secret").st_atime_ns == atime


def test_symlink_in_directory_refused(env, place, mode):
    """A symlink anywhere in the path, not only the last component."""
    sub = place / "sub"
    sub.mkdir()
    os.chown(sub, NOBODY, NOGROUP)
    f = sub / "f"
    nobody_file(f)
    w = spawn(env, "w", ["--file", f])
    img = env.path("img")
    env.dump(w, img)
    shutil.rmtree(sub)
    hidden = env.base / "hidden"
    hidden.mkdir(mode=0o700)
    (hidden / "f").write_bytes(SECRET)
    os.chmod(hidden / "f", 0o600)
    os.symlink(hidden, sub)
    line = refused(env, img, mode, w, f)
    assert "symbolic link" in line, line


def test_nobody_file_restored(env, place, mode):
    """The same files untouched: restored, the process reads its data."""
    f, m = place / "f", place / "m"
    data = nobody_file(f)
    mdata = nobody_file(m, b"m" * 4096)
    os.mkfifo(place / "q", 0o666)
    os.chown(place / "q", NOBODY, NOGROUP)
    w = spawn(env, "w", ["--file", f, "--map", m, "--fifo", place / "q"])
    before = w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    r = w.check_pass()
    assert r["file"] == data[:16].hex() == before["file"]
    assert r["map"] == mdata[:16].hex() and r["fifo"] == "ok"
    w.stop()


# --- files: a daemon that opened as root and dropped privileges ---

def root_file(path, data):
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return data


def test_dropped_privileges_restored(env, place, mode):
    """Opened as root, then setresuid(nobody): nobody may not open it, but
    it is the very file the process had open: restored, read through its fd."""
    log = place / "log"
    data = root_file(log, b"root's log, opened before the drop\n")
    w = spawn(env, "w", ["--file", log, "--drop"], prefix=[])
    assert w.check_pass()["uid"] == str(NOBODY)
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    r = w.check_pass()
    assert r["file"] == data[:16].hex() and r["uid"] == str(NOBODY)
    w.stop()


@pytest.mark.parametrize("how", ["rename", "unlink"])
def test_dropped_privileges_replaced_refused(env, place, mode, how):
    """The same name, another root-only file of the same size: refused, with
    the file and the process named. unlink: the new file may get the old
    inode number (ext4 reuses it at once): its birth time tells them apart."""
    log = place / "log"
    data = root_file(log, b"root's log, opened before the drop\n")
    w = spawn(env, "w", ["--file", log, "--drop"], prefix=[])
    img = env.path("img")
    env.dump(w, img)
    if how == "rename":
        os.rename(log, place / "log.old")  # kept: its inode number is not reused
    else:
        log.unlink()
    root_file(log, SECRET[:len(data)].ljust(len(data), b"!"))
    line = refused(env, img, mode, w, log)
    assert f"process {w.pid}" in line and "not the file it had open" in line, line


@pytest.mark.parametrize("how", ["rename", "unlink"])
def test_dropped_privileges_mapped_replaced_refused(env, place, mode, how):
    """A root-only file mapped MAP_SHARED read-write before the drop: the
    same file comes back (dev, ino and birth time of mm.img); another
    root-only file of the same name is refused, even with the old inode
    number (unlink: ext4 gives it to the next file at once)."""
    log = place / "log"
    data = root_file(log, b"root's map, mapped before the drop\n")
    w = spawn(env, "w", ["--map", log, "--drop"], prefix=[])
    assert w.check_pass()["map"] == data[:16].hex()
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    assert w.check_pass()["map"] == data[:16].hex()
    img2 = env.path("img2")
    env.dump(w, img2)
    ino = log.stat().st_ino
    if how == "rename":
        os.rename(log, place / "log.old")
    else:
        log.unlink()
    root_file(log, SECRET[:len(data)].ljust(len(data), b"!"))
    print("inode reused:", log.stat().st_ino == ino)  # shown with -s
    line = refused(env, img2, mode, w, log)
    assert f"process {w.pid}" in line and "not the file it had open" in line, line


# --- character devices ---

def test_dropped_privileges_chr_restored(env, place, mode):
    """A /dev/null node of root's only (0600, in a directory of the test),
    opened as root before the drop: nobody may not open it, but it is the
    same device (1:3): restored, and it still answers as /dev/null."""
    node = place / "null"
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    w = spawn(env, "w", ["--chr", node, "--drop"], prefix=[])
    assert w.check_pass()["chr"] == "1:3:ok"
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    r = w.check_pass()
    assert r["chr"] == "1:3:ok" and r["uid"] == str(NOBODY), r
    w.stop()


def test_foreign_terminal_refused(env, place, mode):
    """A terminal outside the tree (a pty slave of root's, 0620), opened as
    root before the drop: pty numbers are reused, /dev/pts/N may be another
    user's terminal at restore, and nobody may not open it: refused with one
    line naming it."""
    master, slave = os.openpty()
    env.at_cleanup(lambda: (os.close(master), os.close(slave)))
    path = os.ttyname(slave)
    os.chmod(path, 0o620)
    w = spawn(env, "w", ["--chr", path, "--drop"], prefix=[])
    assert int(w.check_pass()["chr"].split(":")[0]) in range(136, 144)
    img = env.path("img")
    env.dump(w, img)
    line = refused(env, img, mode, w, path)
    assert "terminal" in line and f"process {w.pid}" in line, line


def test_root_without_dac_override_refused(env, place, mode):
    """uid 0 without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH held a file of
    another user it could read; replaced by one it could not read: refused."""
    f = place / "f"
    data = nobody_file(f)
    os.chown(f, 1000, 1000)
    os.chmod(f, 0o666)  # it opens it read-write
    drop = [SETPRIV, "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    w = spawn(env, "w", ["--file", f], prefix=drop)
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    w.stop()
    # Untouched: it could open it itself.
    w2 = env.restore(img, mode, w)
    assert w2.check_pass()["file"] == data[:16].hex()
    w2.stop()
    os.rename(f, place / "f.old")  # kept: its inode number is not reused
    f.write_bytes(SECRET[:len(data)].ljust(len(data), b"!"))
    os.chown(f, 1000, 1000)
    os.chmod(f, 0o600)
    line = refused(env, img, mode, w, f)
    assert f"process {w.pid}" in line, line


# --- sockets ---

def test_peercred_in_tree(env, mode):
    """A socketpair and a listener's connection between two processes of
    nobody: every end's SO_PEERCRED says nobody after the restore, not root."""
    w = spawn(env, "w", ["--pair"])
    want = f"{NOBODY}:{NOGROUP}"
    before = w.check_pass()
    assert before["pair"] == before["acc"] == before["cli"] == before["kidpair"] == want
    img = env.path("img")
    env.dump(w, img)
    harness.reap(int(w.ready["child"]))
    w = env.restore(img, mode, w)
    r = w.check_pass()
    assert (r["pair"], r["acc"], r["cli"], r["kidpair"]) == (want,) * 4, r
    w.stop()


class PeerServer:
    """A unix stream server outside the tree: records SO_PEERCRED of every
    connection it accepts."""

    def __init__(self, path):
        self.sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sk.bind(str(path))
        os.chmod(path, 0o777)
        self.sk.listen(8)
        self.creds, self.conns = [], []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:
            try:
                c, _ = self.sk.accept()
            except OSError:
                return
            _, uid, gid = struct.unpack("3i", c.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            self.conns.append(c)
            self.creds.append((uid, gid))

    def close(self):
        self.sk.shutdown(socket.SHUT_RDWR)
        self.sk.close()
        for c in self.conns:
            c.close()


def test_peercred_ext_unix_sk(env, mode):
    """--ext-unix-sk: the reconnect runs as the process: the outside server
    sees nobody, not root, as its peer."""
    os.chmod(env.base, 0o711)
    sd = env.path("srv")
    os.chmod(sd, 0o755)
    srv = PeerServer(sd / "s.sock")
    try:
        w = spawn(env, "w", ["--ext", sd / "s.sock"])
        harness.wait_for(lambda: len(srv.creds) == 1, harness.CHECK_TIMEOUT, "the connection")
        assert srv.creds[0] == (NOBODY, NOGROUP)
        img = env.path("img")
        env.lazarus("dump", "-t", w.pid, "-D", img, "--ext-unix-sk", log=env.log_path("dump"))
        w.proc.wait(harness.EXIT_TIMEOUT)
        w = env.restore(img, mode, w)
        harness.wait_for(lambda: len(srv.creds) == 2, harness.CHECK_TIMEOUT, "the reconnect")
        assert srv.creds[1] == (NOBODY, NOGROUP), srv.creds
        w.check_pass()
        w.stop()
    finally:
        srv.close()


def proc_net_tcp_uid(port):
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            w = line.split()
            if int(w[1].split(":")[1], 16) == port and w[3] == "0A":  # LISTEN
                return int(w[7])
    return None


def test_inet_socket_owner(env, mode):
    """A TCP listener of nobody: its socket inode (fstat, /proc/net/tcp's uid,
    what nftables `meta skuid` sees) is nobody's after the restore."""
    port = harness.free_port()
    w = spawn(env, "w", ["--tcp", port])
    fd = int(w.ready["tcp_fd"])
    assert os.stat(f"/proc/{w.pid}/fd/{fd}").st_uid == NOBODY
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    assert os.stat(f"/proc/{w.pid}/fd/{fd}").st_uid == NOBODY
    assert proc_net_tcp_uid(port) == NOBODY
    w.check_pass()
    w.stop()


# --- SysV ---

def sysv_creators():
    """{shmid: (cuid, cgid)} from /proc/sysvipc/shm."""
    out = {}
    with open("/proc/sysvipc/shm") as f:
        next(f)
        for line in f:
            w = line.split()
            out[int(w[1])] = (int(w[9]), int(w[10]))
    return out


def test_sysv_creator_nobody(env, mode):
    """A segment created by nobody: cuid/cgid are nobody's after the restore
    (IPC_SET cannot change them: shmget runs as the creator)."""
    os.chmod(env.base, 0o711)
    d = env.base / "shm"
    d.mkdir()
    os.chmod(d, 0o777)
    (d / "child").mkdir()
    os.chmod(d / "child", 0o777)
    w = env.spawn(LzShm, [*AS_NOBODY, harness.WORKLOADS / "lzshm", "--dir", d, "--mib", 4], d)
    shmid, child = int(w.ready["shmid"]), int(w.ready["child"])
    env.pids.add(child)
    try:
        harness.wait_for(lambda: (d / "child" / "ready").exists(), harness.READY_TIMEOUT,
                         "lzshm's child", w.diag)
        assert sysv_creators()[shmid] == (NOBODY, NOGROUP)
        before = sysv_segments()[shmid]
        img = env.path("img")
        r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
        assert r.rc == 0 and not r.errors, r.describe()
        w.proc.wait(harness.EXIT_TIMEOUT)
        harness.reap(child)
        assert os.system(f"ipcrm -m {shmid}") == 0
        w = env.restore(img, mode, w)
        assert sysv_creators()[shmid] == (NOBODY, NOGROUP)
        assert sysv_segments()[shmid] == before
        w.check_pass()
        w.child().check_pass()
    finally:
        os.system(f"ipcrm -m {shmid} >/dev/null 2>&1")


# --- /proc files of the process itself ---

@pytest.mark.parametrize("kid", [False, True], ids=["alone", "kid"])
def test_proc_self_files(env, mode, kid):
    """A process of nobody holding /proc/self/stat, /proc/<pid>/status and
    /proc/thread-self/comm (redis-server keeps /proc/<pid>/stat): after the
    restore the fds describe the restored process, opened as nobody. kid:
    a child forked after the opens holds them too; its fds describe its
    restored parent."""
    w = spawn(env, "w", ["--proc"] + (["--pair"] if kid else []))
    r = w.check_pass()
    assert r["proc"] == "ok" and r.get("kidproc", "ok") == "ok", r
    img = env.path("img")
    env.dump(w, img)
    if kid:
        harness.reap(int(w.ready["child"]))
    w = env.restore(img, mode, w)
    r = w.check_pass()
    assert r["proc"] == "ok" and r.get("kidproc", "ok") == "ok", r
    assert ("kidproc" in r) == kid, r
    for pid in [w.pid] + ([int(w.ready["child"])] if kid else []):
        for fd in w.ready["proc_fds"].split(","):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            assert link.startswith(f"/proc/{w.pid}/"), link
    w.stop()


def test_proc_self_files_pidns(env, mode):
    """The same, restored beside the running original with --pidns: the
    fds are the copy's /proc entries (under its outside pid), not the
    original's at the dumped pid."""
    from test_pidns import check_copy, copies_of, restore_pidns
    w = spawn(env, "w", ["--proc"])
    img = env.path("img")
    env.dump(w, img, leave_running=True)
    r = restore_pidns(env, img, mode, work=env.path("work"))
    assert r.rc == 0 and not r.errors, r.describe()
    (outer,) = copies_of(w.pid)
    env.pids.add(outer)
    res = check_copy(w, outer)
    assert res["proc"] == "ok", res
    for fd in w.ready["proc_fds"].split(","):
        link = os.readlink(f"/proc/{outer}/fd/{fd}")
        assert link.startswith(f"/proc/{outer}/"), link
    assert w.check_pass()["proc"] == "ok"  # the original runs on


def test_proc_of_thread_refused_at_dump(env):
    """/proc/thread-self of a second thread (its own task/<tid>/ directory):
    refused at dump by name (pid, fd, path); the process runs on."""
    w = spawn(env, "w", ["--thread-proc"])
    fd = w.ready["thread_fd"]
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    line = r.errors[0]
    assert f"process {w.pid} fd {fd}: /proc/{w.pid}/task/" in line and "thread" in line, line
    w.check_pass()
    w.stop()


def test_proc_of_other_process_refused_at_dump(env):
    """A process holding /proc/<another pid>/comm: refused at dump, one line
    naming pid, fd and path."""
    f = f"/proc/{os.getpid()}/comm"
    w = spawn(env, "w", ["--file", f], prefix=[])
    fd = w.ready["file_fd"]
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"process {w.pid} fd {fd}: {f}: a /proc file of process {os.getpid()}" in \
        r.errors[0], r.errors[0]
    w.stop()


# --- working and root directory ---

def test_cwd_symlink_refused(env, place, mode):
    """The working directory of a process of nobody, a directory it may
    enter: a component of its path replaced by a symlink to a root-only
    directory after the dump. Refused by name, the process is not back."""
    sub = place / "sub"
    (sub / "d").mkdir(parents=True)
    os.chmod(sub, 0o755)
    os.chmod(sub / "d", 0o755)
    w = spawn(env, "w", ["--chdir", sub / "d"])
    assert w.check_pass()["cwd"] == str(sub / "d")
    img = env.path("img")
    env.dump(w, img)
    hidden = env.base / "hidden"
    (hidden / "d").mkdir(parents=True)
    os.chmod(hidden, 0o700)
    shutil.rmtree(sub)
    os.symlink(hidden, sub)
    line = refused(env, img, mode, w, sub / "d")
    assert "working directory" in line and "symbolic link" in line and str(w.pid) in line, line


def test_cwd_root_only_dir_kept_only_if_same(env, mode):
    """A daemon that changed into a root-only directory as root and dropped
    privileges since: it gets that very directory back; another directory
    of the same name is refused (it may not enter it)."""
    os.chmod(env.base, 0o711)
    priv = env.base / "priv"
    priv.mkdir(mode=0o700)
    w = spawn(env, "w", ["--chdir", priv, "--drop"], prefix=[])
    assert w.check_pass()["cwd"] == str(priv)
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    r = w.check_pass()
    assert r["cwd"] == str(priv) and r["uid"] == str(NOBODY), r
    img2 = env.path("img2")
    env.dump(w, img2)
    priv.rename(env.base / "priv.old")
    priv.mkdir(mode=0o700)
    line = refused(env, img2, mode, w, priv)
    assert "working directory" in line and f"process {w.pid}" in line, line


# --- memfd ---

def test_memfd_owner(env, mode):
    """A memfd of nobody: its inode is nobody's after the restore (made by
    memfd_create as the process), its content as it was."""
    w = spawn(env, "w", ["--memfd"])
    fd = int(w.ready["memfd_fd"])
    st = os.stat(f"/proc/{w.pid}/fd/{fd}")
    assert (st.st_uid, st.st_gid) == (NOBODY, NOGROUP)
    data = w.check_pass()["memfd"]
    img = env.path("img")
    env.dump(w, img)
    w = env.restore(img, mode, w)
    st = os.stat(f"/proc/{w.pid}/fd/{fd}")
    assert (st.st_uid, st.st_gid) == (NOBODY, NOGROUP)
    assert w.check_pass()["memfd"] == data
    w.stop()
