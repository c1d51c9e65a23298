"""pypriv.py - a process holding files and sockets, for test_privilege.py.

    pypriv.py --dir DIR [--file PATH] [--map PATH] [--fifo PATH] [--pair]
              [--ext PATH] [--tcp PORT] [--chr PATH] [--drop]
              [--proc] [--thread-proc] [--memfd] [--chdir PATH]

Opens what it is told (a file read-write, a file mapped MAP_SHARED
read-write with its fd closed, a FIFO O_RDWR; --pair: forks a child and
keeps a socketpair with it and a connection of the child to its listener
DIR/l.sock; --ext: a connection to a unix server outside; --tcp: a TCP
listener on 127.0.0.1:PORT; --chr: a character device O_RDWR|O_NOCTTY), then, with --drop, gives up root for good
(setgroups([]), setresgid/setresuid to nogroup/nobody), as a daemon that
opened its log as root does. --proc: holds /proc/self/stat,
/proc/<its pid>/status and /proc/thread-self/comm (read through the fds
at check: proc=ok when all three describe the process /proc/self names);
--thread-proc: a second thread holds /proc/thread-self/comm; --memfd: a
memfd with a known content (memfd=HEX, its first 16 bytes); --chdir:
its working directory (before --drop; cwd=PATH at check). Ready: DIR/ready "pid=P child=C key=fd ...".
SIGUSR1: DIR/result "PASS pid=P uid=EUID file=HEX map=HEX fifo=ok
pair=UID:GID acc=UID:GID cli=UID:GID" (the first 16 bytes of the file and
of the mapping; SO_PEERCRED uid:gid of its socketpair end, of the socket
it accepted and, from the child, of the client end). SIGTERM ends both.
"""
import argparse
import ctypes
import os
import pwd
import grp
import signal
import socket
import stat
import struct
import sys
import threading
import time


def publish(d, name, text):
    tmp = os.path.join(d, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(d, name))


def peercred(s):
    _, uid, gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                   struct.calcsize("3i")))
    return f"{uid}:{gid}"


def map_shared(path):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    fd = os.open(path, os.O_RDWR)
    addr = libc.mmap(None, 4096, 3, 1, fd, 0)  # PROT_READ|PROT_WRITE, MAP_SHARED
    os.close(fd)  # only the mapping holds it
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    return addr


def parent_proc(fds):
    """ok when the /proc fds inherited from the parent describe the parent."""
    with open("/proc/self/status") as f:
        ppid = [x.split()[1] for x in f if x.startswith("PPid:")][0]
    stat = os.pread(fds["pstat"], 4096, 0).split()[0].decode()
    return "ok" if stat == ppid else f"bad:{stat}:{ppid}"


def child(d, pair_end, lpath, fds):
    flag = {"check": False}
    signal.signal(signal.SIGUSR1, lambda *_: flag.update(check=True))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(lpath)
    publish(d, "child-ready", f"pid={os.getpid()}\n")
    while True:
        if flag["check"]:
            flag["check"] = False
            extra = f" proc={parent_proc(fds)}" if "pstat" in fds else ""
            publish(d, "child-result", f"cli={peercred(c)} pair={peercred(pair_end)}{extra}\n")
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--file")
    ap.add_argument("--map")
    ap.add_argument("--fifo")
    ap.add_argument("--pair", action="store_true")
    ap.add_argument("--ext")
    ap.add_argument("--tcp", type=int)
    ap.add_argument("--chr")
    ap.add_argument("--drop", action="store_true")
    ap.add_argument("--proc", action="store_true")
    ap.add_argument("--thread-proc", action="store_true")
    ap.add_argument("--memfd", action="store_true")
    ap.add_argument("--chdir")
    a = ap.parse_args()
    d = a.dir
    keep, ready = {}, {"pid": os.getpid()}
    if a.file:
        keep["file"] = os.open(a.file, os.O_RDWR)
        ready["file_fd"] = keep["file"]
    addr = map_shared(a.map) if a.map else None
    if a.fifo:
        keep["fifo"] = os.open(a.fifo, os.O_RDWR | os.O_NONBLOCK)
        ready["fifo_fd"] = keep["fifo"]
    if a.proc:
        keep["pstat"] = os.open("/proc/self/stat", os.O_RDONLY)
        keep["pstatus"] = os.open(f"/proc/{os.getpid()}/status", os.O_RDONLY)
        keep["pcomm"] = os.open("/proc/thread-self/comm", os.O_RDONLY)
        ready["proc_fds"] = f"{keep['pstat']},{keep['pstatus']},{keep['pcomm']}"
    kid = None
    if a.pair:
        p0, p1 = socket.socketpair()
        lpath = f"\0pypriv-{os.getpid()}"  # abstract: no directory rule in the way
        lsk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsk.bind(lpath)
        lsk.listen(4)
        kid = os.fork()
        if kid == 0:
            p0.close()
            lsk.close()
            child(d, p1, lpath, keep)
        p1.close()
        acc, _ = lsk.accept()
        keep["pair"], keep["acc"], keep["lsk"] = p0, acc, lsk
        ready["child"] = kid
        while not os.path.exists(os.path.join(d, "child-ready")):
            time.sleep(0.01)
    if a.ext:
        e = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        e.connect(a.ext)
        keep["ext"] = e
        ready["ext_fd"] = e.fileno()
    if a.tcp:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", a.tcp))
        t.listen(4)
        keep["tcp"] = t
        ready["tcp_fd"] = t.fileno()
    if a.thread_proc:
        got = []
        threading.Thread(target=lambda: (got.append(os.open("/proc/thread-self/comm",
                                                           os.O_RDONLY)),
                                         time.sleep(1e6)), daemon=True).start()
        while not got:
            time.sleep(0.01)
        ready["thread_fd"] = got[0]
    if a.memfd:
        keep["memfd"] = os.memfd_create("pypriv")
        os.write(keep["memfd"], b"memfd of pypriv, 32 bytes......\n")
        ready["memfd_fd"] = keep["memfd"]
    if a.chr:
        keep["chr"] = os.open(a.chr, os.O_RDWR | os.O_NOCTTY)
        ready["chr_fd"] = keep["chr"]
    if a.chdir:
        os.chdir(a.chdir)
    if a.drop:
        nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        os.setgroups([])
        os.setresgid(nogroup, nogroup, nogroup)
        os.setresuid(nobody, nobody, nobody)
    flag = {"check": False}
    signal.signal(signal.SIGUSR1, lambda *_: flag.update(check=True))

    def term(*_):
        if kid:
            os.kill(kid, signal.SIGTERM)
        sys.exit(0)

    signal.signal(signal.SIGTERM, term)
    publish(d, "ready", " ".join(f"{k}={v}" for k, v in ready.items()) + "\n")
    while True:
        if flag["check"]:
            flag["check"] = False
            verdict = "PASS"
            out = {"pid": os.getpid(), "uid": os.geteuid()}
            try:
                if "file" in keep:
                    out["file"] = os.pread(keep["file"], 16, 0).hex()
                if "chr" in keep:
                    st = os.fstat(keep["chr"])
                    out["chr"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
                    if os.major(st.st_rdev) == 1:  # a memory device: /dev/null's answers
                        ok = os.write(keep["chr"], b"x") == 1 and os.read(keep["chr"], 1) == b""
                        out["chr"] += ":ok" if ok else ":bad"
                if "pstat" in keep:
                    me = os.readlink("/proc/self")
                    st = os.pread(keep["pstat"], 4096, 0).split()[0].decode()
                    sts = dict(x.split(":\t", 1) for x in
                               os.pread(keep["pstatus"], 8192, 0).decode().splitlines()
                               if ":\t" in x)
                    with open("/proc/thread-self/comm") as f:
                        comm = f.read()
                    ok = st == me and sts["Pid"] == me and \
                        os.pread(keep["pcomm"], 64, 0).decode() == comm
                    out["proc"] = "ok" if ok else f"bad:{st}:{sts['Pid']}:{me}"
                if a.chdir:
                    out["cwd"] = os.getcwd()
                if "memfd" in keep:
                    out["memfd"] = os.pread(keep["memfd"], 16, 0).hex()
                if addr:
                    out["map"] = ctypes.string_at(addr, 16).hex()
                if "fifo" in keep:
                    fd = keep["fifo"]
                    os.write(fd, b"ping")
                    ok = stat.S_ISFIFO(os.fstat(fd).st_mode) and os.read(fd, 4) == b"ping"
                    out["fifo"] = "ok" if ok else "bad"
                if "pair" in keep:
                    out["pair"], out["acc"] = peercred(keep["pair"]), peercred(keep["acc"])
                    res = os.path.join(d, "child-result")
                    if os.path.exists(res):
                        os.unlink(res)
                    os.kill(kid, signal.SIGUSR1)
                    for _ in range(2000):
                        if os.path.exists(res):
                            break
                        time.sleep(0.01)
                    with open(res) as f:
                        w = dict(x.split("=") for x in f.read().split())
                    out["cli"], out["kidpair"] = w["cli"], w["pair"]
                    if "proc" in w:
                        out["kidproc"] = w["proc"]
            except Exception as ex:  # noqa: BLE001 - reported to the test
                verdict = "FAIL"
                out["error"] = repr(ex).replace(" ", "_")
            publish(d, "result", verdict + " " + " ".join(f"{k}={v}" for k, v in out.items()) +
                    "\n")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
