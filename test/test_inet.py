"""Network sockets (Documentation/state.md, lazarus(8) SOCKETS): TCP and UDP
over IPv4 and IPv6, netlink, restore --netns, and established connections
with --tcp-established under the nftables network lock.

lzinet (test/workloads/lzinet.c) holds the sockets and, on SIGUSR1, checks
them itself: options, addresses, queued datagrams, that the route netlink
socket answers, and it accepts the connections this test made to its
listeners after the restore. Established connections: both ends inside the
tree (mode pair), or this test as the peer on the same host (mode serve),
talking on the same connection before, during and after the dump.
"""
import os
import socket
import subprocess
import uuid

import pytest

import harness

ERR = harness.ERROR_PREFIX


class LzInet(harness.Workload):
    kind = "lzinet"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())

    def progress_file(self):
        return "result"


def spawn_inet(env, mode, name="inet", packet=False):
    d = env.base / name
    return env.spawn(LzInet, [harness.WORKLOADS / "lzinet", "--dir", d, "--mode", mode,
                              "--packet", "1" if packet else "0"], d)


def dump(env, w, imgdir, *extra):
    imgdir.mkdir(parents=True, exist_ok=True)
    r = env.lazarus("dump", "-t", w.pid, "-D", imgdir, *extra, log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, f"dump failed\n{r.describe()}\n{w.diag()}"
    w.proc.wait(harness.EXIT_TIMEOUT)
    return r


def restore(env, imgdir, mode, w, *extra):
    args = env.restore_args(imgdir, mode, True) + list(extra)
    r = env.lazarus(*args, log=env.log_path("restore"))
    env.pids.add(w.pid)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}"
    assert harness.alive(w.pid), f"restored {w.kind} {w.pid} is not running\n{r.describe()}"
    return w.restored()


def refused(env, w, imgdir, *extra):
    """A dump refused: one error line; the workload runs on, untraced."""
    imgdir.mkdir(parents=True, exist_ok=True)
    r = env.lazarus("dump", "-t", w.pid, "-D", imgdir, *extra, log=env.log_path("dump"))
    assert r.rc != 0 and len(r.errors) == 1, f"dump was not refused in one line\n{r.describe()}"
    assert harness.alive(w.pid)
    harness.assert_not_stopped(w.pid, w.kind)
    return r.errors[0]


def nft_tables():
    p = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [line.split()[-1] for line in p.stdout.splitlines() if line.startswith("table inet ")]


def check_listeners(w, ports):
    """Connect to both listeners, then let lzinet accept and answer."""
    c4 = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
    c6 = socket.create_connection(("::1", ports[1]), timeout=10)
    c4.sendall(b"ping")
    c6.sendall(b"ping")
    w.check_pass()
    assert c4.recv(16) == b"pong4"
    assert c6.recv(16) == b"pong6"
    c4.close()
    c6.close()


def test_sockets_restored(env, mode):
    """Listeners v4/v6, UDP with queued datagrams, netlink, options: as they were."""
    w = spawn_inet(env, "sockets")
    ports = (int(w.ready["tcp4"]), int(w.ready["tcp6"]))
    img = env.base / "img"
    dump(env, w, img)
    r = restore(env, img, mode, w)
    c4 = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
    c6 = socket.create_connection(("::1", ports[1]), timeout=10)
    c4.sendall(b"ping")
    c6.sendall(b"ping")
    r.check_pass()
    assert c4.recv(16) == b"pong4"
    assert c6.recv(16) == b"pong6"
    c4.close()
    c6.close()
    # New connections after the check: the listeners take new clients.
    check_listeners(r, ports)


def test_port_taken_at_restore(env):
    """dump -R leaves the listener in place: restore refuses, naming the port.
    With --pidns, so that the original's pid (still in use) is no obstacle."""
    w = spawn_inet(env, "sockets")
    img = env.base / "img"
    img.mkdir()
    d = env.lazarus("dump", "-t", w.pid, "-D", img, "-R", log=env.log_path("dump"))
    assert d.rc == 0, d.describe()
    r = env.lazarus(*env.restore_args(img, "eager", True), "--pidns",
                    log=env.log_path("restore"))
    assert r.rc != 0 and len(r.errors) == 1, r.describe()
    assert f"127.0.0.1:{w.ready['tcp4']}: bind: Address already in use" in r.errors[0], r.errors[0]
    check_listeners(w, (int(w.ready["tcp4"]), int(w.ready["tcp6"])))


def test_established_refused_without_flag(env):
    w = spawn_inet(env, "pair")
    line = refused(env, w, env.base / "img")
    assert f"process {w.pid} fd " in line, line
    assert "established TCP connection 127.0.0.1:" in line and "-> 127.0.0.1:" in line, line
    assert "--tcp-established" in line, line
    w.check_pass()


def test_packet_socket_refused(env):
    w = spawn_inet(env, "packet")
    line = refused(env, w, env.base / "img")
    assert f"process {w.pid} fd 3: packet socket (SOCK_DGRAM" in line, line
    w.check_pass()


@pytest.fixture
def netns():
    name = f"lzt-{uuid.uuid4().hex[:10]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=30)
    yield name
    subprocess.run(["ip", "netns", "del", name], timeout=30)


CLIENT = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
for n in (41, 99):
    c.sendall(b"%d\\n" % n)
    print(c.recv(16).decode().strip())
"""


def test_netns(env, mode, netns):
    """restore --netns: the listener is there (and not here), the process in it."""
    w = spawn_inet(env, "serve")
    port = w.ready["port"]
    img = env.base / "img"
    dump(env, w, img)
    r = restore(env, img, mode, w, "--netns", f"/run/netns/{netns}")
    assert os.stat(f"/proc/{r.pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino
    p = subprocess.run(["ip", "netns", "exec", netns, harness.PYTHON, "-c", CLIENT, port],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.split() == ["42", "100"], p.stderr + r.diag()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    r.check_pass()


def test_netns_bad_path(env):
    w = env.lzwork(mib=4)
    img = env.base / "img"
    env.dump(w, img)
    r = env.lazarus(*env.restore_args(img, "eager", True), "--netns", "/proc/self/ns/pid",
                    log=env.log_path("restore"))
    assert r.rc != 0 and r.errors == [f"{ERR}restore: --netns /proc/self/ns/pid: not a network "
                                      "namespace"], r.describe()


def test_tcp_established_in_tree(env, mode):
    """Both ends in the tree, data queued both ways: read and talk on after restore."""
    w = spawn_inet(env, "pair")
    img = env.base / "img"
    before = set(nft_tables())
    dump(env, w, img, "--tcp-established")
    locks = set(nft_tables()) - before
    assert len(locks) == 1 and locks.pop().startswith("lazarus_")
    r = env.lazarus(*env.restore_args(img, mode, True), log=env.log_path("restore"))
    assert r.rc != 0 and len(r.errors) == 1 and "--tcp-established" in r.errors[0], r.describe()
    assert "established TCP connection 127.0.0.1:" in r.errors[0], r.errors[0]
    r = restore(env, img, mode, w, "--tcp-established")
    assert set(nft_tables()) == before
    r.check_pass()


def test_tcp_established_peer_outside(env, mode):
    """This test is the peer: it talks before the dump, while the tree is gone
    (the network lock holds its packets: no RST), and after the restore."""
    w = spawn_inet(env, "serve")
    c = socket.create_connection(("127.0.0.1", int(w.ready["port"])), timeout=30)
    c.sendall(b"1\n")
    assert c.recv(16) == b"2\n"
    img = env.base / "img"
    dump(env, w, img, "--tcp-established")
    c.sendall(b"5\n")  # dropped by the lock, retransmitted after the restore
    r = restore(env, img, mode, w, "--tcp-established")
    got = b""
    while not got.endswith(b"\n"):
        data = c.recv(16)
        assert data, "connection closed by the restored server"
        got += data
    assert got == b"6\n"
    c.sendall(b"99\n")
    assert c.recv(16) == b"100\n"
    r.check_pass()
    c.close()


def test_tcp_established_dump_refused_releases_lock(env):
    """A dump that fails after connections were locked (a packet socket
    follows them): the lock goes, repair mode is left, the tree talks on."""
    w = spawn_inet(env, "pair", packet=True)
    before = set(nft_tables())
    line = refused(env, w, env.base / "img", "--tcp-established")
    assert "packet socket (SOCK_DGRAM" in line, line
    assert set(nft_tables()) == before
    w.check_pass()


def test_tcp_established_leave_running(env):
    """dump -R --tcp-established: the connection goes on with the original."""
    w = spawn_inet(env, "serve")
    c = socket.create_connection(("127.0.0.1", int(w.ready["port"])), timeout=30)
    c.sendall(b"1\n")
    assert c.recv(16) == b"2\n"
    before = set(nft_tables())
    img = env.base / "img"
    img.mkdir()
    r = env.lazarus("dump", "-t", w.pid, "-D", img, "-R", "--tcp-established",
                    log=env.log_path("dump"))
    assert r.rc == 0 and not r.errors, r.describe()
    assert set(nft_tables()) == before
    c.sendall(b"7\n")
    assert c.recv(16) == b"8\n"
    w.check_pass()
