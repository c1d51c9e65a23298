"""Mappings of deleted files (issue 7 item 2): lzdelmap maps three files
and unlinks them: one MAP_SHARED with its fd kept, one mapped MAP_SHARED
twice (fd closed), one MAP_PRIVATE with copied-on-write pages (fd closed).

The dump saves each file's content once (fddata-<id>.img of a deleted
regular file of files.img: the fd's entry, or one of its own for a file
only mapped); restore makes each file again once, unlinked, and maps every
mapping of it from that file. Eager and lazy: the process finds every page
as it left it, a write through the fd is seen in the mapping and back, the
two mappings of one file are one file, the private copies are its own, and
the files are still deleted. A file a parent and its child map is one
file again. Cut or corrupted content, a directory gone at restore, and at
dump a deleted file with another link left are refused by name.
"""
import os

import pytest

import harness

ERR = harness.ERROR_PREFIX


class LzDelmap(harness.Workload):
    kind = "lzdelmap"

    def parse_result(self, text):
        return harness.parse_kv(text.strip())


def spawn(env, name="delmap"):
    d = env.base / name
    return env.spawn(LzDelmap, [harness.WORKLOADS / "lzdelmap", "--dir", d], d)


def deleted_files(img):
    return {f["id"]: f for f in harness.file_entries(img) if f.get("deleted")}


def vmas(img, pid):
    return harness.show(img / f"mm-{pid}.img")["entries"][0]["vmas"]


def test_deleted_mappings_restored(env, mode):
    w = spawn(env)
    r = w.check_pass()
    assert r["gen"] == "1", r
    img = env.path("img")
    env.dump(w, img)

    files = deleted_files(img)
    by_path = {os.path.basename(f["path"]): f for f in files.values()}
    assert sorted(by_path) == ["private", "shared", "twice"], files
    mapped = [v for v in vmas(img, w.pid) if "deleted_file_id" in v]
    assert sorted(os.path.basename(v["path"]) for v in mapped) == \
        ["private", "shared", "twice", "twice"], mapped
    for v in mapped:
        f = files[v["deleted_file_id"]]
        assert (f["path"], f["dev"], f["ino"]) == (v["path"], v["dev"], v["ino"]), (f, v)
    # Content once per file: one fddata image for each of the three.
    assert sorted(p.name for p in img.glob("fddata-*.img")) == \
        sorted(f"fddata-{i}.img" for i in files), list(img.iterdir())
    assert not list((w.dir / "files").iterdir()), "a file came back by name"

    w = env.restore(img, mode, w)
    r = w.check_pass()
    assert (r["before"], r["gen"]) == ("1", "2"), r
    assert w.check_pass()["gen"] == "3"
    # Still deleted: nothing was created by name in the directory.
    assert not list((w.dir / "files").iterdir())
    w.stop()


def test_deleted_mappings_twice(env):
    """A restored process dumped and restored again: its files, made by the
    first restore, are deleted files too."""
    w = spawn(env)
    w.check_pass()
    for n in range(2):
        img = env.path(f"img{n}")
        env.dump(w, img)
        w = env.restore(img, "eager", w)
        assert w.check_pass()["gen"] == str(n + 2)


@pytest.mark.parametrize("damage", ["cut", "flip"])
def test_deleted_content_damaged(env, damage):
    """fddata of a file that is only mapped, cut or with a byte flipped:
    refused with one line naming the image, before any process exists."""
    w = spawn(env)
    w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    twice = next(i for i, f in deleted_files(img).items() if f["path"].endswith("/twice"))
    victim = img / f"fddata-{twice}.img"
    data = bytearray(victim.read_bytes())
    if damage == "cut":
        data = data[:len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x40
    victim.write_bytes(bytes(data))
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc == 1 and len(r.errors) == 1 and victim.name in r.errors[0], r.describe()
    assert harness.proc_state(w.pid) is None


def test_directory_gone_at_restore(env):
    """The directory the deleted files were in is gone at restore: nowhere
    to make them again; refused with one line naming the file."""
    w = spawn(env)
    w.check_pass()
    img = env.path("img")
    env.dump(w, img)
    (w.dir / "files").rmdir()
    r = env.restore(img, "eager", w, expect_ok=False)
    assert r.rc == 1 and len(r.errors) == 1, r.describe()
    assert r.errors[0].startswith(f"{ERR}restore: deleted file {w.dir}/files/") and \
        r.errors[0].endswith(f"cannot create it again in {w.dir}/files: No such file or "
                             "directory"), r.describe()
    assert harness.proc_state(w.pid) is None


# A mapped file unlinked while another link to it is left: no name the dump
# could trust to be the same file at restore.
LINKED = r'''
import mmap, os, sys, time
d = sys.argv[1]
path, other = os.path.join(d, "mapped"), os.path.join(d, "other")
with open(path, "wb") as f:
    f.write(b"x" * 8192)
os.link(path, other)
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 8192)
os.close(fd)
os.unlink(path)
with open(os.path.join(d, "ready.tmp"), "w") as f:
    f.write(f"pid={os.getpid()} path={path}\n")
os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
while True:
    time.sleep(1)
'''


class PyLinked(harness.Workload):
    kind = "pylinked"


def test_deleted_with_other_link_refused(env):
    d = env.base / "linked"
    w = env.spawn(PyLinked, [harness.PYTHON, "-c", LINKED, d], d)
    path = w.ready["path"]
    with open(f"/proc/{w.pid}/maps") as f:
        line = next(line for line in f if line.rstrip().endswith(f"{path} (deleted)"))
    start, end = (a.lstrip("0") for a in line.split()[0].split("-"))
    img = env.path("img")
    r = env.lazarus("dump", "-t", w.pid, "-D", img, log=env.log_path("dump"))
    assert r.rc == 1 and r.errors == [
        f"{ERR}dump: process {w.pid}: mapping of deleted file {path} (deleted) (it has 1 other "
        f"links) at {start}-{end}: not supported yet"], r.describe()
    assert harness.alive(w.pid)
    harness.assert_not_stopped(w.pid, "pylinked")


# A parent maps a file MAP_SHARED, unlinks it and forks: the child has the
# same mapping of the same deleted file.
FORKED = r'''
import ctypes, mmap, os, sys, time
d = sys.argv[1]
path = os.path.join(d, "f")
with open(path, "wb") as f:
    f.write(bytes(range(256)) * 64)
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 16384)
os.close(fd)
os.unlink(path)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
child = os.fork()
if child == 0:
    while True:
        time.sleep(1)
with open(os.path.join(d, "ready.tmp"), "w") as f:
    f.write(f"pid={os.getpid()} child={child} addr={addr}\n")
os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
while True:
    time.sleep(1)
'''


def mem(pid, addr, data=None, n=0):
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as f:
        f.seek(addr)
        return f.write(data) if data is not None else f.read(n)


def maps_line(pid, addr):
    with open(f"/proc/{pid}/maps") as f:
        return next(line.split() for line in f if int(line.split("-")[0], 16) == addr)


def test_deleted_mapping_shared_by_two_processes(env, mode):
    """One deleted file mapped by a parent and its child: one entry and one
    content in the images, one file again after restore (same inode in both
    maps), a write by one seen by the other."""
    d = env.base / "forked"
    w = env.spawn(PyLinked, [harness.PYTHON, "-c", FORKED, d], d)
    child, addr = int(w.ready["child"]), int(w.ready["addr"])
    env.pids.add(child)
    img = env.path("img")
    env.dump(w, img)
    harness.reap(child)
    files = deleted_files(img)
    assert len(files) == 1 and len(list(img.glob("fddata-*.img"))) == 1, files
    w = env.restore(img, mode, w)
    a, b = maps_line(w.pid, addr), maps_line(child, addr)
    assert a[3:5] == b[3:5] and a[1][3] == "s" and a[-1] == "(deleted)", (a, b)
    assert mem(child, addr, n=512) == bytes(range(256)) * 2
    mem(w.pid, addr + 100, b"written by the parent")
    assert mem(child, addr + 100, n=21) == b"written by the parent"
