"""Trust and robustness of the read side: whose images restore believes, what
it opens, how much it reads, how long it waits (issue 9 items 2, 4, 7, 9, 10).

- Images of a user restore does not trust (another owner, or writable by
  group or others, or a directory above them that lets another user swap
  them) are refused before anything is read, with one line naming the file
  or directory; `--trust-images-of USER` trusts that user as well.
- A symlink, a FIFO or a device in place of any image is refused at once,
  by restore and by show (every command runs under a timeout: a hang fails).
- Crafted files with valid checksums (the inventory re-signed, as an
  attacker who can write the images would do) are refused by name when a
  size in them is out of bounds; a huge file is refused, not read.
- A restored process that hangs is given up on after the (test-only)
  LAZARUS_TEST_RESTORE_TIMEOUT, with one line, and nothing is left.
- The pages file is opened once: swapped after verification
  (LAZARUS_TEST_PAUSE=verified), it is not what the process gets.
"""
import os
import shutil
import signal
import stat
import struct
import subprocess

import pytest

import harness

NOBODY = 65534
TIMEOUT = 60  # any refusal here is immediate; a hang fails the test

# One file of each kind (the pages file is raw, the others framed).
KINDS = ["inventory.img", "pstree.img", "core-{pid}.img", "mm-{pid}.img", "pagemap-{pid}.img",
         "pages-{pid}.img", "files.img", "fdinfo-{pid}.img"]
KIND_IDS = [k.replace("{pid}", "PID") for k in KINDS]


# --- image crafting: what someone who can write the images can do ---------

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def read_framed(p):
    """(32-byte header, [payloads]) of a protobuf image."""
    data = p.read_bytes()
    hdr, off, end, out = data[:32], 32, len(data) - 16, []
    while off < end:
        n, _ = struct.unpack_from("<II", data, off)
        out.append(data[off + 8:off + 8 + n])
        off += 8 + n
    return hdr, out


def write_framed(p, hdr, payloads, lens=None):
    """A well-formed file with valid checksums; lens overrides entry lengths."""
    body = bytearray(hdr)
    for i, pl in enumerate(payloads):
        n = lens[i] if lens and i in lens else len(pl)
        body += struct.pack("<II", n, crc32c(pl)) + pl
    body += struct.pack("<III", 0xFFFFFFFF, len(payloads), crc32c(bytes(body))) + b"LZND"
    p.write_bytes(bytes(body))


def pb_varint(buf, off):
    v = shift = 0
    while True:
        b = buf[off]
        off += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, off


def pb_enc_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pb_parse(buf):
    """[[field, wiretype, value]]: int for varints, bytes otherwise."""
    out, off = [], 0
    while off < len(buf):
        key, off = pb_varint(buf, off)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, off = pb_varint(buf, off)
        elif wt == 2:
            n, off = pb_varint(buf, off)
            v, off = buf[off:off + n], off + n
        elif wt == 1:
            v, off = buf[off:off + 8], off + 8
        elif wt == 5:
            v, off = buf[off:off + 4], off + 4
        else:
            raise ValueError(f"wire type {wt}")
        out.append([f, wt, v])
    return out


def pb_encode(fields):
    out = bytearray()
    for f, wt, v in fields:
        out += pb_enc_varint(f << 3 | wt)
        if wt == 0:
            out += pb_enc_varint(v)
        elif wt == 2:
            out += pb_enc_varint(len(v)) + v
        else:
            out += v
    return bytes(out)


def pb_set(fields, f, v):
    for x in fields:
        if x[0] == f:
            x[2] = v
            return
    raise KeyError(f)


def resign(img):
    """Rewrite inventory.img so it vouches for every file as it now is: the
    checksums say nothing about who wrote the files."""
    inv = img / "inventory.img"
    hdr, (entry,) = read_framed(inv)
    fields = pb_parse(entry)
    for x in fields:
        if x[0] != 10:
            continue
        f = pb_parse(x[2])
        name = [v for n, _, v in f if n == 1][0].decode()
        data = (img / name).read_bytes()
        crc = struct.unpack_from("<I", data, 40)[0] if name.startswith("pages-") else \
            struct.unpack_from("<I", data, len(data) - 8)[0]
        pb_set(f, 2, len(data))
        pb_set(f, 3, crc)
        x[2] = pb_encode(f)
    write_framed(inv, hdr, [pb_encode(fields)])


def set_pages_nr(p, nr):
    """A pages header that says nr pages, with a valid header checksum."""
    data = bytearray(p.read_bytes())
    struct.pack_into("<Q", data, 16, nr)
    struct.pack_into("<I", data, 40, crc32c(bytes(data[:40])))
    p.write_bytes(bytes(data))


# --- helpers ---------------------------------------------------------------

@pytest.fixture
def img(small_dump, env):
    """A private copy of the session's dump."""
    d = env.base / "img"
    shutil.copytree(small_dump["img"], d)
    return d


def name_of(kind, small_dump):
    return kind.format(pid=small_dump["work"].pid)


def reap_daemon():
    """A lazy-pages daemon (and its guardian) leave by themselves once the
    process they serve is gone; as subreaper we reap them."""
    for child in harness.my_children():
        harness.reap(child, TIMEOUT)


def refused(env, small_dump, img, mode, *extra, why, name=None):
    """restore fails at once with one error line containing why (and name),
    leaving nothing behind."""
    pid = small_dump["work"].pid
    assert harness.proc_state(pid) is None, f"pid {pid} is taken before the restore"
    args = env.restore_args(img, mode, True) + list(extra)
    r = env.lazarus(*args, log=env.log_path("restore"), timeout=TIMEOUT)
    assert r.rc != 0, f"restore accepted it\n{r.describe()}"
    assert len(r.errors) == 1, f"want exactly one error line\n{r.describe()}"
    assert why in r.errors[0], f"want {why!r}\n{r.describe()}"
    if name:
        assert name in r.errors[0], f"error does not name {name}\n{r.describe()}"
    assert harness.proc_state(pid) is None, f"restore left pid {pid} behind\n{r.describe()}"
    assert not harness.my_children(), f"restore left processes behind\n{r.describe()}"
    return r


def restores(env, small_dump, img, mode, *extra):
    """restore -d works and the process has its dumped state."""
    w0 = small_dump["work"]
    # The session's dump is shared with other modules, some of which restore
    # it: its files must be as the dump left them before this restore too.
    harness.rewind_files(img, small_dump["env"].base)
    args = env.restore_args(img, mode, True) + list(extra)
    r = env.lazarus(*args, log=env.log_path("restore"), timeout=harness.LAZARUS_TIMEOUT)
    env.pids.add(w0.pid)
    assert r.rc == 0 and not r.errors, f"restore failed\n{r.describe()}"
    w = w0.restored()
    res = w.check_pass()
    assert res["prev"] == small_dump["dump_ctr"], res
    harness.kill_and_reap(w.pid)
    harness.rewind_files(img, small_dump["env"].base)
    reap_daemon()


def show_refused(path, why):
    p = subprocess.run([str(harness.LAZARUS), "show", str(path)], capture_output=True,
                       text=True, timeout=TIMEOUT)
    errs = harness.error_lines(p.stderr)
    assert p.returncode != 0, f"show accepted {path}\n{p.stdout[:500]}"
    assert len(errs) == 1 and why in errs[0] and path.name in errs[0], p.stderr
    assert not p.stdout, p.stdout[:500]


# --- item 2: whose images ------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_image_of_another_user_refused(small_dump, env, img, mode, kind):
    """One image owned by nobody: refused by name before anything is read
    (inventory.img is corrupted too, and it is not what the error is about),
    then trusted with --trust-images-of nobody."""
    name = name_of(kind, small_dump)
    os.chown(img / name, NOBODY, NOBODY)
    inv = (img / "inventory.img").read_bytes()
    if name != "inventory.img":
        (img / "inventory.img").write_bytes(inv[:-1] + bytes([inv[-1] ^ 0xFF]))
    refused(env, small_dump, img, mode, why="owned by uid 65534, whose images restore does "
            "not trust", name=name)
    (img / "inventory.img").write_bytes(inv)
    restores(env, small_dump, img, mode, "--trust-images-of", "nobody")


def test_dump_dir_of_another_user(small_dump, env, img, mode):
    """A whole dump written by nobody (directory and files): refused by the
    directory's name; --trust-images-of 65534 (a uid) restores it."""
    for p in [img] + list(img.iterdir()):
        os.chown(p, NOBODY, NOBODY)
    refused(env, small_dump, img, mode, why=f"images directory {img}: owned by uid 65534")
    # Trusting nobody's images does not make nobody's directory a safe place
    # for root's lazy-pages socket and logs: those go to a work dir of ours.
    work = ["-W", str(env.path("work"))] if mode == "lazy" else []
    restores(env, small_dump, img, mode, "--trust-images-of", str(NOBODY), *work)


def test_dump_by_nobody_through_setpriv(small_dump, env):
    """Files nobody itself wrote (setpriv, its own umask) into a directory it
    owns: refused; trusted with --trust-images-of."""
    img = env.base / "img"
    img.mkdir()
    os.chown(img, NOBODY, NOBODY)
    os.chmod(env.base, 0o755)
    src = small_dump["img"]
    for p in src.iterdir():
        if p.name.endswith(".img"):
            data = p.read_bytes()
            subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                            "--clear-groups", "sh", "-c", 'umask 077; cat > "$0"',
                            str(img / p.name)], input=data, check=True, timeout=TIMEOUT)
    assert (img / "pstree.img").stat().st_uid == NOBODY
    refused(env, small_dump, img, "eager", why="owned by uid 65534")
    restores(env, small_dump, img, "eager", "--trust-images-of", "nobody")


@pytest.mark.parametrize("kind", ["inventory.img", "core-{pid}.img", "pages-{pid}.img"],
                         ids=["inventory", "core", "pages"])
def test_image_writable_by_others_refused(small_dump, env, img, kind):
    """An image anyone can write is not trusted, whoever owns it, and
    --trust-images-of does not change that."""
    name = name_of(kind, small_dump)
    os.chmod(img / name, 0o666)
    refused(env, small_dump, img, "eager", why="writable by group or others (mode 0666)",
            name=name)
    refused(env, small_dump, img, "eager", "--trust-images-of", "nobody",
            why="writable by group or others", name=name)
    os.chmod(img / name, 0o620)
    refused(env, small_dump, img, "eager", why="writable by group or others (mode 0620)",
            name=name)


def test_images_dir_writable_by_others_refused(small_dump, env, img):
    os.chmod(img, 0o777)
    refused(env, small_dump, img, "eager", why=f"images directory {img}: writable by group "
            "or others (mode 0777)")
    os.chmod(img, 0o1777)  # sticky or not: anyone may add files to it
    refused(env, small_dump, img, "eager", why="writable by group or others (mode 1777)")


def test_parent_dir_lets_others_swap(small_dump, env, mode):
    """A directory above the images that others may write to (not sticky)
    lets them swap the images directory: refused, naming it. Sticky (like
    /tmp, which every test here is under) is fine."""
    top = env.base / "shared"
    img = top / "dumps" / "img"
    shutil.copytree(small_dump["img"], img)
    os.chmod(top, 0o777)
    refused(env, small_dump, img, mode, why=f"{top} (above the images directory): writable "
            "by group or others and not sticky (mode 0777)")
    os.chmod(top, 0o1777)
    restores(env, small_dump, img, mode)
    os.chmod(top, 0o755)
    os.chown(top, NOBODY, NOBODY)
    refused(env, small_dump, img, mode, why=f"{top} (above the images directory): owned by "
            "uid 65534")
    restores(env, small_dump, img, mode, "--trust-images-of", "nobody")


def test_trust_images_of_bad_user(small_dump, env, img):
    r = env.lazarus("restore", "-D", img, "--trust-images-of", "no-such-user-here",
                    timeout=TIMEOUT)
    assert r.rc == 2 and "--trust-images-of: no such user: 'no-such-user-here'" in r.err, \
        r.describe()


# --- items 4 and 9: no symlink, FIFO or device; no hang ----------------------

def make_symlink(p):
    real = p.with_name(p.name + ".real")
    p.rename(real)
    p.symlink_to(real.name)


def make_fifo(p):
    p.unlink()
    os.mkfifo(p, 0o600)


def make_dev_zero(p):
    p.unlink()
    os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 5))


NONREGULAR = {"symlink": (make_symlink, "is a symbolic link"),
              "fifo": (make_fifo, "is a FIFO, not a regular file"),
              "dev-zero": (make_dev_zero, "is a character device, not a regular file")}


@pytest.mark.parametrize("how", NONREGULAR)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_nonregular_image_refused(small_dump, env, img, mode, kind, how):
    """Restore and show refuse it at once, by name, without reading it."""
    name = name_of(kind, small_dump)
    make, why = NONREGULAR[how]
    make(img / name)
    refused(env, small_dump, img, mode, why=why, name=name)
    show_refused(img / name, why)


def test_show_dev_zero_and_fifo(env):
    fifo = env.base / "pstree.img"
    os.mkfifo(fifo, 0o600)
    show_refused(fifo, "is a FIFO")
    link = env.base / "core-1.img"
    link.symlink_to("/dev/zero")
    show_refused(link, "is a symbolic link")


# --- item 10: crafted sizes --------------------------------------------------

def test_crafted_entry_length(small_dump, env, img, mode):
    """An entry length past the end of the file, the file and the inventory
    re-signed: refused by name, by restore and by show."""
    p = img / "pstree.img"
    hdr, payloads = read_framed(p)
    write_framed(p, hdr, payloads, lens={0: 1 << 20})
    resign(img)
    refused(env, small_dump, img, mode, why="pstree.img: entry runs past the end")
    show_refused(p, "entry runs past the end")


def test_crafted_duplicate_fd(small_dump, env, img, mode):
    """One fd listed twice (checked in linear time), re-signed: refused by name."""
    pid = small_dump["work"].pid
    p = img / f"fdinfo-{pid}.img"
    hdr, payloads = read_framed(p)
    fd = [v for f, _, v in pb_parse(payloads[0]) if f == 1][0]
    write_framed(p, hdr, payloads + [payloads[0]])
    resign(img)
    refused(env, small_dump, img, mode, why=f"fdinfo-{pid}.img: fd {fd} listed twice")


@pytest.mark.parametrize("kind", ["inventory.img", "pstree.img", "mm-{pid}.img"],
                         ids=["inventory", "pstree", "mm"])
def test_huge_image_refused(small_dump, env, img, kind):
    """A 1 GiB image (sparse) is refused by its size, not read into memory."""
    name = name_of(kind, small_dump)
    p = img / name
    os.truncate(p, (1 << 30) + 1)
    if name != "inventory.img":
        resign(img)
    why = f"1073741825 bytes, more than a {name.split('-')[0].split('.')[0]} image may hold"
    refused(env, small_dump, img, "eager", why=why, name=name)
    show_refused(p, why)


def test_crafted_pages_count(small_dump, env, img, mode):
    """A pages header with a page count whose byte size overflows 64 bits to
    exactly the file's size, header checksum and inventory re-signed: show
    does not call the file complete, restore refuses it by name."""
    pid = small_dump["work"].pid
    p = img / f"pages-{pid}.img"
    size = p.stat().st_size
    nr = (size - 4096) // 4096 + (1 << 52)  # 4096 + nr * 4096 == size (mod 2**64)
    set_pages_nr(p, nr)
    resign(img)
    out = harness.show(p)
    assert out["nr_pages"] == nr and out["file_size"] == size
    assert out["complete"] is False, out
    refused(env, small_dump, img, mode, why=f"header says pid {pid}, {nr} pages",
            name=p.name)


# --- item 9: a restored process that never answers ---------------------------

@pytest.mark.parametrize("detach", [True, False], ids=["detached", "waiting"])
def test_hanging_child_given_up(small_dump, env, img, mode, detach, monkeypatch):
    """The restored process hangs silently before its restorer
    (LAZARUS_TEST_PAUSE=child): restore gives up after the test bound with one
    line, and the process (and the -d helper) are gone."""
    pid = small_dump["work"].pid
    monkeypatch.setenv("LAZARUS_TEST_PAUSE", "child")
    monkeypatch.setenv("LAZARUS_TEST_RESTORE_TIMEOUT", "1")
    env.pids.add(pid)
    r = env.lazarus(*env.restore_args(img, mode, detach), log=env.log_path("restore"),
                    timeout=TIMEOUT)
    assert r.rc != 0, r.describe()
    assert len(r.errors) == 1, r.describe()
    assert f"process {pid}: no report on the status pipe and no progress for 1 s" in \
        r.errors[0], r.describe()
    assert harness.proc_state(pid) is None, f"pid {pid} left behind\n{r.describe()}"
    reap_daemon()  # lazy: it leaves once the process it guarded is gone


@pytest.mark.parametrize("step", ["fill", "mm", "finish"])
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "waiting"])
def test_failure_after_clone_leaves_nothing(small_dump, env, img, mode, detach, step,
                                            monkeypatch):
    """The restore fails after the process was created (LAZARUS_FAULT_BLOB:
    in the blob before and after the -d helper is released, or while the
    restorer is taken out): one line, and no process is left, helper and
    lazy-pages daemon included."""
    pid = small_dump["work"].pid
    monkeypatch.setenv("LAZARUS_FAULT_BLOB", step)
    env.pids.add(pid)
    r = env.lazarus(*env.restore_args(img, mode, detach), log=env.log_path("restore"),
                    timeout=TIMEOUT)
    assert r.rc != 0, r.describe()
    assert len(r.errors) == 1 and "LAZARUS_FAULT_BLOB" in r.errors[0], r.describe()
    harness.wait_for(lambda: harness.proc_state(pid) in (None, "Z"), TIMEOUT,
                     f"pid {pid} to be gone", r.describe)
    reap_daemon()
    assert harness.proc_state(pid) is None, f"pid {pid} left behind\n{r.describe()}"


# --- item 7: check-then-use ---------------------------------------------------

def test_pages_swapped_after_verification(small_dump, env, img, mode):
    """Restore stops right after verifying (LAZARUS_TEST_PAUSE=verified); the
    pages file is then replaced by one with other data (same header). The
    process must get the verified data: the restore reads the file it
    verified, never the name again. Lazy: the daemon serves from its own
    checked reads; the process must never run on the swapped data (it may be
    killed for it)."""
    w0 = small_dump["work"]
    pages = img / f"pages-{w0.pid}.img"
    log = env.log_path("restore")
    argv = [str(harness.LAZARUS)] + [str(a) for a in env.restore_args(img, mode, True)] + \
        ["-o", str(log), "-v4"]
    p = subprocess.Popen(argv, env={**os.environ, "LAZARUS_TEST_PAUSE": "verified"},
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    env.procs.append(p)
    env.pids.update({p.pid, w0.pid})
    harness.wait_for(lambda: harness.proc_state(p.pid) == "T" or p.poll() is not None,
                     TIMEOUT, "restore to stop after verification")
    assert p.poll() is None, f"restore exited: {p.communicate()}"
    data = bytearray(pages.read_bytes())
    for i in range(4096, len(data)):
        data[i] ^= 0x5A
    swapped = pages.with_name(".swap")
    swapped.write_bytes(bytes(data))
    os.chmod(swapped, 0o600)
    swapped.rename(pages)
    os.kill(p.pid, signal.SIGCONT)
    out, err = p.communicate(timeout=harness.LAZARUS_TIMEOUT)
    desc = f"exit {p.returncode}\n{err}\n{harness.tail(log, 40)}"
    if mode == "eager":
        assert p.returncode == 0 and not harness.error_lines(err), desc
        w = w0.restored()
        r = w.check_pass()
        assert r["prev"] == small_dump["dump_ctr"], r
        harness.kill_and_reap(w.pid)
    elif p.returncode == 0 and harness.alive(w0.pid):
        w = w0.restored()
        try:
            r = w.check()
        except harness.HarnessError:
            r = None  # killed by the daemon before it could answer: fine
        assert r is None or r["verdict"] == "PASS", f"ran on swapped data: {r}\n{desc}"
    harness.rewind_files(img, small_dump["env"].base)
