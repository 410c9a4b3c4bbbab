"""The data path: st_blocks, statfs, xattrs, ioctl, SEEK_DATA/SEEK_HOLE,
copy_file_range, fallocate, mmap, several fds."""

import fcntl
import hashlib
import mmap
import os
import stat
import subprocess

from dfstest import (Mount, PlainDir, check, eq, ename, errno_of, fallocate,
                     read_file, tiers_holding, write_file,
                     FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE)

MiB = 1 << 20


def test_st_blocks_is_real_and_du_works():
    def pop(m):
        write_file(m.t(1, "old"), os.urandom(MiB))
    with Mount(ntiers=2, populate=pop) as m:
        data = os.urandom(MiB)
        fd = os.open(m.p("new"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        for name, tier in (("new", 0), ("old", 1)):
            st = os.stat(m.p(name))
            check(st.st_blocks * 512 >= MiB,
                  "%s: st_blocks %d * 512 < 1 MiB" % (name, st.st_blocks))
            eq(st.st_blocks, os.stat(m.t(tier, name)).st_blocks,
               "%s: st_blocks vs the backing file" % name)
        out = subprocess.run(["du", "-s", "-k", m.mnt], check=True,
                             stdout=subprocess.PIPE).stdout.decode()
        kb = int(out.split()[0])
        check(kb >= 2048, "du -s of the mount says %d KiB for 2 MiB of data"
              % kb)
        # sparse: a 1 GiB hole costs nothing
        write_file(m.p("sparse"), b"")
        os.truncate(m.p("sparse"), 1 << 30)
        st = os.stat(m.p("sparse"))
        eq(st.st_size, 1 << 30, "size of the sparse file")
        check(st.st_blocks < 64, "sparse file has %d blocks" % st.st_blocks)


def test_statfs_is_the_sum_of_the_tiers():
    for n in (2, 3):
        with Mount(ntiers=n) as m:
            sv = os.statvfs(m.mnt)
            tv = [os.statvfs(t) for t in m.tiers]
            total = sum(t.f_blocks * t.f_frsize for t in tv)
            got = sv.f_blocks * sv.f_frsize
            slack = n * max(max(t.f_frsize for t in tv), sv.f_frsize)
            check(abs(got - total) <= slack,
                  "%d tiers: statfs size %d, sum of tiers %d" % (n, got,
                                                                   total))
            # free space moves while we look: compare within 1%
            free = sum(t.f_bavail * t.f_frsize for t in tv)
            got_free = sv.f_bavail * sv.f_frsize
            check(abs(got_free - free) <= free / 100 + slack,
                  "%d tiers: statfs available %d, sum of tiers %d" % (
                      n, got_free, free))
            files = sum(t.f_files for t in tv)
            check(abs(sv.f_files - files) <= files / 100,
                  "%d tiers: statfs f_files %d, sum of tiers %d" % (
                      n, sv.f_files, files))
            check(sv.f_namemax == 255, "f_namemax %d" % sv.f_namemax)


def test_xattrs_on_both_tiers():
    def pop(m):
        write_file(m.t(1, "f1"), "x")
    with Mount(ntiers=2, populate=pop) as m:
        write_file(m.p("f0"), "x")
        os.mkdir(m.p("d0"))
        for name, tier in (("f0", 0), ("f1", 1), ("d0", 0)):
            p, b = m.p(name), m.t(tier, name)
            os.setxattr(p, "user.k", b"value of " + name.encode())
            eq(os.getxattr(b, "user.k"), b"value of " + name.encode(),
               "%s: backing xattr" % name)
            eq(os.getxattr(p, "user.k"), b"value of " + name.encode(),
               "%s: getxattr" % name)
            os.setxattr(b, "user.behind", b"b")
            check("user.k" in os.listxattr(p) and
                  "user.behind" in os.listxattr(p),
                  "%s: listxattr %r" % (name, os.listxattr(p)))
            eq(ename(errno_of(os.setxattr, p, "user.k", b"v",
                              os.XATTR_CREATE)), "EEXIST",
               "%s: XATTR_CREATE on an existing name" % name)
            eq(ename(errno_of(os.setxattr, p, "user.none", b"v",
                              os.XATTR_REPLACE)), "ENODATA",
               "%s: XATTR_REPLACE on a missing name" % name)
            eq(ename(errno_of(os.getxattr, p, "user.none")), "ENODATA",
               "%s: getxattr of a missing name" % name)
            big = os.urandom(3000)
            os.setxattr(p, "user.big", big)
            eq(os.getxattr(p, "user.big"), big, "%s: 3000-byte value" % name)
            os.removexattr(p, "user.k")
            check("user.k" not in os.listxattr(b),
                  "%s: removexattr did not reach the backing file" % name)
            check("user.k" not in os.listxattr(p),
                  "%s: still listed after removexattr" % name)
            eq(tiers_holding(m, name), [tier], "%s: tiers" % name)
        # user.* is refused on symlinks, as on ext4
        os.symlink("f0", m.p("ln"))
        with PlainDir() as plain:
            os.symlink("f", plain.p("ln"))
            want = errno_of(os.setxattr, plain.p("ln"), "user.k", b"v",
                            follow_symlinks=False)
        eq(ename(want), "EPERM", "user.* xattr on an ext4 symlink")
        eq(ename(errno_of(os.setxattr, m.p("ln"), "user.k", b"v",
                          follow_symlinks=False)), ename(want),
           "user.* xattr on a symlink")


def test_unknown_ioctl_is_enotty():
    def pop(m):
        write_file(m.t(1, "f1"), "x")
    with PlainDir() as plain:
        write_file(plain.p("f"), "x")
        with open(plain.p("f"), "rb") as f:
            want = errno_of(fcntl.ioctl, f.fileno(), 0x1234)
        eq(ename(want), "ENOTTY", "unknown ioctl on ext4 (test is wrong)")
    with Mount(ntiers=2, populate=pop) as m:
        write_file(m.p("f0"), "x")
        for name in ("f0", "f1"):
            with open(m.p(name), "rb") as f:
                eq(ename(errno_of(fcntl.ioctl, f.fileno(), 0x1234)),
                   "ENOTTY", "%s: ioctl 0x1234" % name)
                eq(ename(errno_of(fcntl.ioctl, f.fileno(), 0x80045401)),
                   "ENOTTY", "%s: ioctl 0x80045401" % name)


def _sparse(path):
    """data at [0, 8K) and [1M, 1M+4K), size 3 MiB, hole at the end"""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"a" * 8192, 0)
    os.pwrite(fd, b"b" * 4096, MiB)
    os.ftruncate(fd, 3 * MiB)
    os.fsync(fd)
    os.close(fd)


def _seek_map(path):
    offs = [0, 4096, 8191, 8192, 65536, MiB - 1, MiB, MiB + 4095, MiB + 4096,
            2 * MiB, 3 * MiB - 1, 3 * MiB, 4 * MiB]
    res = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for o in offs:
            for how in (os.SEEK_DATA, os.SEEK_HOLE):
                try:
                    res.append((o, how, os.lseek(fd, o, how)))
                except OSError as e:
                    res.append((o, how, ename(e.errno)))
    finally:
        os.close(fd)
    return res


def test_seek_data_and_hole():
    def pop(m):
        _sparse(m.t(1, "s1"))
    with Mount(ntiers=2, populate=pop) as m:
        _sparse(m.p("s0"))
        for name, tier in (("s0", 0), ("s1", 1)):
            want = _seek_map(m.t(tier, name))
            # the test is only meaningful if the backing fs reports holes
            check(any(r[1] == os.SEEK_HOLE and r[0] == 0 and r[2] == 8192
                      for r in want),
                  "backing fs reports no hole at 8K: %r" % want)
            got = _seek_map(m.p(name))
            bad = [(w, g) for w, g in zip(want, got) if w != g]
            check(not bad, "%s: (offset, whence, result) backing vs mount: %r"
                  % (name, bad))


def test_copy_file_range_between_tiers():
    src1 = os.urandom(300000)

    def pop(m):
        write_file(m.t(1, "src1"), src1)
        write_file(m.t(1, "dst1"), b"")
    with Mount(ntiers=2, populate=pop) as m:
        src0 = os.urandom(200000)
        write_file(m.p("src0"), src0)
        write_file(m.p("dst0"), b"")
        for src, dst, data, dtier in (("src1", "dst0", src1, 0),
                                      ("src0", "dst1", src0, 1),
                                      ("src0", "dst0b", src0, 0)):
            fi = os.open(m.p(src), os.O_RDONLY)
            fo = os.open(m.p(dst), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                left, off = len(data), 0
                while left:
                    n = os.copy_file_range(fi, fo, left, off, off)
                    check(n > 0, "copy_file_range returned %d" % n)
                    left -= n
                    off += n
            finally:
                os.close(fi)
                os.close(fo)
            check(read_file(m.p(dst)) == data,
                  "%s -> %s: content differs" % (src, dst))
            check(read_file(m.t(dtier, dst)) == data,
                  "%s -> %s: backing content differs" % (src, dst))
            eq(tiers_holding(m, dst), [dtier], "tiers holding %s" % dst)
        # with offsets, into the middle of a file
        fi = os.open(m.p("src1"), os.O_RDONLY)
        fo = os.open(m.p("dst1"), os.O_RDWR)
        n = os.copy_file_range(fi, fo, 1000, 5000, 100)
        os.close(fi)
        os.close(fo)
        eq(n, 1000, "copy_file_range with offsets")
        want = bytearray(src0)
        want[100:1100] = src1[5000:6000]
        check(read_file(m.p("dst1")) == bytes(want), "middle copy differs")


def _falloc_story(path):
    """The same fallocate calls on any file; returns what they showed."""
    out = []
    data = bytes(range(256)) * 4096           # 1 MiB, no zero pages
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        b0 = os.fstat(fd).st_blocks
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  256 * 1024, 256 * 1024)
        st = os.stat(path)                    # by name: not the fd's cache
        out.append(("after punch: size, blocks freed", st.st_size,
                    b0 - st.st_blocks))
        content = os.pread(fd, MiB, 0)
        out.append(("content sha1", hashlib.sha1(content).hexdigest()))
        out.append(("hole reads zero",
                    content[256 * 1024:512 * 1024] == bytes(256 * 1024)))
        b1 = st.st_blocks
        fallocate(fd, 0, 2 * MiB, MiB)        # extends
        st = os.stat(path)
        out.append(("after allocate 1 MiB at 2 MiB: size, blocks added",
                    st.st_size, st.st_blocks - b1))
        b2 = st.st_blocks
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 4 * MiB, MiB)
        st = os.stat(path)
        out.append(("after KEEP_SIZE allocate past EOF: size, blocks added",
                    st.st_size, st.st_blocks - b2))
        out.append(("tail reads zero", os.pread(fd, MiB, 2 * MiB) ==
                    bytes(MiB)))
        out.append(("punch without KEEP_SIZE",
                    ename(errno_of(fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0,
                                   4096))))
    finally:
        os.close(fd)
    return out


def test_fallocate_and_punch_hole_like_a_plain_dir():
    def pop(m):
        write_file(m.t(1, "f1"), "x")
    with PlainDir() as plain:
        want = _falloc_story(plain.p("f"))
    check(want[0][2] == 512, "plain punch frees %r sectors" % (want[0],))
    with Mount(ntiers=2, populate=pop) as m:
        for name, tier in (("f0", 0), ("f1", 1)):
            got = _falloc_story(m.p(name))
            bad = [(w, g) for w, g in zip(want, got) if w != g]
            check(not bad, "%s: plain dir vs mount: %r" % (name, bad))
            eq(tiers_holding(m, name), [tier], "tiers holding %s" % name)


def test_mmap_write_and_shared_fds():
    def pop(m):
        write_file(m.t(1, "f1"), bytes(64 * 1024))
    with Mount(ntiers=2, populate=pop) as m:
        write_file(m.p("f0"), bytes(64 * 1024))
        for name, tier in (("f0", 0), ("f1", 1)):
            pattern = (name.encode() * 32768)[:64 * 1024]
            with open(m.p(name), "r+b") as f:
                mm = mmap.mmap(f.fileno(), 64 * 1024)
                mm[:] = pattern
                mm.flush()
                mm.close()
            check(read_file(m.p(name)) == pattern,
                  "%s: mmap write not read back after reopen" % name)
            check(read_file(m.t(tier, name)) == pattern,
                  "%s: mmap write not in the backing file" % name)
            # a reader mapping sees a writer's write()
            with open(m.p(name), "rb") as r:
                mr = mmap.mmap(r.fileno(), 64 * 1024, prot=mmap.PROT_READ)
                fd = os.open(m.p(name), os.O_WRONLY)
                os.pwrite(fd, b"WRITER", 100)
                eq(mr[100:106], b"WRITER", "%s: mapping after pwrite" % name)
                mr.close()
                os.close(fd)
        # two fds: a reader sees what a writer wrote, before any close
        w = os.open(m.p("two"), os.O_WRONLY | os.O_CREAT, 0o644)
        r = os.open(m.p("two"), os.O_RDONLY)
        os.write(w, b"first")
        eq(os.pread(r, 100, 0), b"first", "reader after first write")
        os.pwrite(w, b"SECOND", 2)
        eq(os.pread(r, 100, 0), b"fiSECOND", "reader after overwrite")
        os.ftruncate(w, 4)
        eq(os.pread(r, 100, 0), b"fiSE", "reader after truncate")
        eq(os.fstat(r).st_size, 4, "fstat of the reader after truncate")
        os.close(w)
        os.close(r)
        # tier-1 file opened twice
        w = os.open(m.p("f1"), os.O_WRONLY | os.O_APPEND)
        r = os.open(m.p("f1"), os.O_RDONLY)
        os.write(w, b"tail")
        eq(os.pread(r, 4, 64 * 1024), b"tail", "tier-1 reader sees append")
        os.close(w)
        os.close(r)
        eq(tiers_holding(m, "f1"), [1], "tiers holding f1")


def test_open_handles_keep_their_file():
    """An open file stays usable after its name is unlinked or replaced,
    as on a local filesystem."""
    def pop(m):
        write_file(m.t(1, "f1"), "tier one")
        write_file(m.t(1, "r1"), "old content")
    with Mount(ntiers=2, populate=pop) as m:
        write_file(m.p("f0"), "tier zero")
        failures = []
        for name in ("f0", "f1"):
            fd = os.open(m.p(name), os.O_RDWR)
            try:
                os.unlink(m.p(name))
                for what, fn, want in (
                        ("fstat st_nlink", lambda: os.fstat(fd).st_nlink, 0),
                        ("fstat st_size", lambda: os.fstat(fd).st_size, 9
                         if name == "f0" else 8),
                        ("pwrite", lambda: os.pwrite(fd, b"X", 0), 1),
                        ("pread", lambda: os.pread(fd, 3, 0), b"Xie"),
                        ("ftruncate", lambda: os.ftruncate(fd, 2), None),
                        ("fstat after ftruncate",
                         lambda: os.fstat(fd).st_size, 2),
                        ("fchmod", lambda: os.fchmod(fd, 0o600), None),
                        ("fstat after fchmod",
                         lambda: stat.S_IMODE(os.fstat(fd).st_mode), 0o600)):
                    try:
                        got = fn()
                    except OSError as e:
                        got = "error " + ename(e.errno)
                    if got != want:
                        failures.append("%s: %s after unlink: got %r, want "
                                        "%r" % (name, what, got, want))
            finally:
                os.close(fd)
            if os.path.lexists(m.p(name)):
                failures.append("%s came back" % name)
            if tiers_holding(m, name):
                failures.append("%s: still on tiers %r after close" % (
                    name, tiers_holding(m, name)))
        check(not failures, "\n  ".join([""] + failures))
        fd = os.open(m.p("r1"), os.O_RDONLY)
        try:
            write_file(m.p("new"), "new content")
            os.rename(m.p("new"), m.p("r1"))
            eq(os.pread(fd, 100, 0), b"old content",
               "reader of a replaced file")
        finally:
            os.close(fd)
        eq(read_file(m.p("r1")), b"new content", "the new r1")
