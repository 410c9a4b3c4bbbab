"""Hard links, inode numbers, deep trees, timestamps, directory link counts."""

import os
import stat
import time

from dfstest import (Mount, check, eq, read_file, tick, utimensat,
                     write_file, UTIME_NOW, UTIME_OMIT)


def _attrs(st):
    return (st.st_ino, st.st_nlink, oct(st.st_mode), st.st_uid, st.st_gid,
            st.st_ctime_ns)


def _all_agree(m, names, what):
    """stat of every name shows the same inode, link count, mode, owner and
    ctime, and the link count is the number of names."""
    sts = {n: os.stat(m.p(n)) for n in names}
    first = _attrs(sts[names[0]])
    for n in names[1:]:
        eq(_attrs(sts[n]), first,
           "%s: (ino, nlink, mode, uid, gid, ctime) of %s vs %s" % (
               what, n, names[0]))
    eq(first[1], len(names), "%s: st_nlink" % what)
    return sts[names[0]]


def test_hard_link_attributes_are_fresh_on_every_name():
    def pop(m):
        write_file(m.t(1, "f"), "tier one")
        os.mkdir(m.t(1, "sub"))
    with Mount(ntiers=2, populate=pop) as m:
        write_file(m.p("g"), "tier zero")
        for base in ("f", "g"):
            names = [base]
            _all_agree(m, names, base)          # the kernel now caches them
            for new in (base + "-l1", "sub/" + base + "-l2"):
                before = os.stat(m.p(base))
                tick()
                os.link(m.p(names[-1]), m.p(new))
                names.append(new)
                st = _all_agree(m, names, "after link %s" % new)
                check(st.st_ctime_ns > before.st_ctime_ns,
                      "ctime did not move on link %s" % new)
            before = os.stat(m.p(base))
            tick()
            os.chmod(m.p(names[1]), 0o741)
            st = _all_agree(m, names, "after chmod through %s" % names[1])
            eq(stat.S_IMODE(st.st_mode), 0o741, "mode after chmod")
            check(st.st_ctime_ns > before.st_ctime_ns,
                  "ctime did not move on chmod")
            before = st
            tick()
            os.chown(m.p(names[2]), 4242, 2424)
            st = _all_agree(m, names, "after chown through %s" % names[2])
            eq((st.st_uid, st.st_gid), (4242, 2424), "owner after chown")
            check(st.st_ctime_ns > before.st_ctime_ns,
                  "ctime did not move on chown")
            before = st
            tick()
            with open(m.p(names[2]), "ab") as f:
                f.write(b"+")
            st = _all_agree(m, names, "after write through %s" % names[2])
            eq(st.st_size, before.st_size + 1, "size after append")
            os.unlink(m.p(names[0]))
            names = names[1:]
            _all_agree(m, names, "after unlink of %s" % base)
            os.rename(m.p(names[0]), m.p(base + "-renamed"))
            names[0] = base + "-renamed"
            _all_agree(m, names, "after rename")


def test_inode_numbers_survive_renames_and_match_for_links():
    def pop(m):
        os.makedirs(m.t(1, "a", "b"))
        os.makedirs(m.t(0, "a"))
        write_file(m.t(1, "a", "b", "f"), "f")
        write_file(m.t(1, "a", "g"), "g")
        os.makedirs(m.t(1, "other"))
        os.makedirs(m.t(0, "zero"))
    with Mount(ntiers=2, populate=pop) as m:
        write_file(m.p("a", "b", "h"), "h")
        os.mkdir(m.p("a", "b", "c"))
        names = ["a", "a/b", "a/b/f", "a/g", "a/b/h", "a/b/c"]
        ino = {n: os.stat(m.p(n)).st_ino for n in names}
        check(len(set(ino.values())) == len(ino),
              "distinct objects share an st_ino: %r" % ino)
        os.rename(m.p("a", "b", "f"), m.p("other", "f"))      # file, across
        eq(os.stat(m.p("other", "f")).st_ino, ino["a/b/f"], "file across")
        os.rename(m.p("a", "g"), m.p("zero", "g2"))           # to tier-0 dir
        eq(os.stat(m.p("zero", "g2")).st_ino, ino["a/g"], "file to tier-0 dir")
        os.rename(m.p("a", "b"), m.p("zero", "b2"))           # dir, across
        eq(os.stat(m.p("zero", "b2")).st_ino, ino["a/b"], "dir across")
        eq(os.stat(m.p("zero", "b2", "h")).st_ino, ino["a/b/h"],
           "child of a moved dir")
        eq(os.stat(m.p("zero", "b2", "c")).st_ino, ino["a/b/c"],
           "subdir of a moved dir")
        os.rename(m.p("a"), m.p("a2"))                         # dir, in place
        eq(os.stat(m.p("a2")).st_ino, ino["a"], "dir renamed in place")
        os.link(m.p("other", "f"), m.p("a2", "fl"))
        eq(os.stat(m.p("a2", "fl")).st_ino, ino["a/b/f"], "hard link")
        # listing inode numbers agree with stat
        for e in os.scandir(m.p("zero", "b2")):
            eq(e.inode(), os.stat(e.path, follow_symlinks=False).st_ino,
               "readdir d_ino of %s" % e.name)


def _walk_down(top, names, mkdir):
    """Open every directory of the chain, relative to its parent; returns
    the list of fds [top, d1, d2, ...]."""
    fds = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for n in names:
            if mkdir:
                os.mkdir(n, dir_fd=fds[-1])
            fds.append(os.open(n, os.O_RDONLY | os.O_DIRECTORY,
                               dir_fd=fds[-1]))
    except BaseException:
        _close(fds)
        raise
    return fds


def _close(fds):
    """close what is still open (a failing test must not keep the mount
    busy)"""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    del fds[:]


def _remove(fds, names, file_name):
    os.unlink(file_name, dir_fd=fds[-1])
    for i in range(len(names) - 1, -1, -1):
        os.close(fds.pop())
        os.rmdir(names[i], dir_fd=fds[i])
    os.close(fds.pop())


def test_tree_deeper_than_path_max():
    depth = 20
    names = ["%02d" % i + "d" * 240 for i in range(depth)]
    check(sum(len(n) + 1 for n in names) > 4096, "tree not deep enough")
    data = os.urandom(100000)

    def pop(m):
        fds = _walk_down(m.t(1, ""), names, mkdir=True)
        try:
            fd = os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o644,
                         dir_fd=fds[-1])
            os.write(fd, b"from tier one")
            os.close(fd)
        finally:
            for fd in fds:
                os.close(fd)
    with Mount(ntiers=2, populate=pop) as m:
        fds = []
        try:
            _deep_body(m, names, data, fds)
        finally:
            _close(fds)
            os.chdir("/")


def _read_at(name, dir_fd):
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        got = b""
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                return got
            got += b
    finally:
        os.close(fd)


def _write_at(name, dir_fd, data):
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644,
                 dir_fd=dir_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _deep_body(m, names, data, fds):
    # the tier-1 tree, walked through the mount
    fds += _walk_down(m.mnt, names, mkdir=False)
    eq(_read_at("bottom", fds[-1]), b"from tier one",
       "tier-1 file at the bottom")
    # create a file there: tier 0 gets the whole chain of parents
    _write_at("new", fds[-1], data)
    check(_read_at("new", fds[-1]) == data,
          "file at the bottom reads back wrong")
    eq(os.stat("new", dir_fd=fds[-1]).st_size, len(data), "its size")
    t0 = _walk_down(m.t(0, ""), names, mkdir=False)
    try:
        check(_read_at("new", t0[-1]) == data, "new file not on tier 0")
    finally:
        _close(t0)
    # chdir steps work as well as dir_fd
    os.chdir(m.mnt)
    for n in names:
        os.chdir(n)
    eq(read_file("bottom"), b"from tier one", "read after chdir steps")
    os.chdir(m.mnt)
    os.unlink("bottom", dir_fd=fds[-1])
    _remove(fds, names, "new")
    eq(os.listdir(m.mnt), [], "mount root after removing the tree")
    eq(os.listdir(m.t(0, "")), [], "tier 0 after removing the tree")
    eq(os.listdir(m.t(1, "")), [], "tier 1 after removing the tree")
    # and a tree made entirely through the mount
    fds += _walk_down(m.mnt, names, mkdir=True)
    _write_at("f", fds[-1], b"bottom")
    eq(_read_at("f", fds[-1]), b"bottom", "read back at the bottom")
    _remove(fds, names, "f")
    eq(os.listdir(m.mnt), [], "mount root after the second tree")


def test_utime_omit_and_now():
    def pop(m):
        write_file(m.t(1, "f1"), "x")
    with Mount(ntiers=2, populate=pop) as m:
        write_file(m.p("f0"), "x")
        for name, tier in (("f0", 0), ("f1", 1)):
            p = m.p(name)
            utimensat(p, (1000000000, 111), (1100000000, 222))
            st = os.stat(p)
            eq((st.st_atime_ns, st.st_mtime_ns),
               (1000000000 * 10**9 + 111, 1100000000 * 10**9 + 222),
               "%s: explicit times" % name)
            utimensat(p, UTIME_OMIT, (1200000000, 333))
            st = os.stat(p)
            eq((st.st_atime_ns, st.st_mtime_ns),
               (1000000000 * 10**9 + 111, 1200000000 * 10**9 + 333),
               "%s: atime OMIT, mtime set" % name)
            utimensat(p, (1300000000, 444), UTIME_OMIT)
            st = os.stat(p)
            eq((st.st_atime_ns, st.st_mtime_ns),
               (1300000000 * 10**9 + 444, 1200000000 * 10**9 + 333),
               "%s: atime set, mtime OMIT" % name)
            bst = os.stat(m.t(tier, name))
            eq((bst.st_atime_ns, bst.st_mtime_ns),
               (st.st_atime_ns, st.st_mtime_ns), "%s: backing times" % name)
            ctime = st.st_ctime_ns
            tick()
            utimensat(p, UTIME_OMIT, UTIME_OMIT)
            st = os.stat(p)
            eq((st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns),
               (1300000000 * 10**9 + 444, 1200000000 * 10**9 + 333, ctime),
               "%s: both OMIT changes nothing" % name)
            t0 = time.time()
            utimensat(p, UTIME_OMIT, UTIME_NOW)
            st = os.stat(p)
            eq(st.st_atime_ns, 1300000000 * 10**9 + 444,
               "%s: atime with OMIT next to NOW" % name)
            check(abs(st.st_mtime - t0) < 5,
                  "%s: mtime NOW is %s, now is %s" % (name, st.st_mtime, t0))
            utimensat(p, UTIME_NOW, UTIME_OMIT)
            st2 = os.stat(p)
            check(abs(st2.st_atime - t0) < 5, "%s: atime NOW" % name)
            eq(st2.st_mtime_ns, st.st_mtime_ns,
               "%s: mtime with OMIT next to NOW" % name)


def test_ctime_moves_on_link_chmod_and_rename():
    def pop(m):
        write_file(m.t(1, "f1"), "x")
    with Mount(ntiers=2, populate=pop) as m:
        write_file(m.p("f0"), "x")
        for name in ("f0", "f1"):
            c = os.stat(m.p(name)).st_ctime_ns
            tick()
            os.link(m.p(name), m.p(name + ".l"))
            c2 = os.stat(m.p(name)).st_ctime_ns
            check(c2 > c, "%s: ctime did not move on link" % name)
            tick()
            os.chmod(m.p(name), 0o600)
            c3 = os.stat(m.p(name)).st_ctime_ns
            check(c3 > c2, "%s: ctime did not move on chmod" % name)
            tick()
            os.rename(m.p(name), m.p(name + ".r"))
            c4 = os.stat(m.p(name + ".r")).st_ctime_ns
            check(c4 > c3, "%s: ctime did not move on rename" % name)
            tick()
            os.truncate(m.p(name + ".r"), 0)
            st = os.stat(m.p(name + ".r"))
            check(st.st_ctime_ns > c4 and st.st_mtime_ns > c4,
                  "%s: ctime/mtime did not move on truncate" % name)


def test_directory_nlink_counts_subdirectories():
    def pop(m):
        for n in ("a", "b"):
            os.makedirs(m.t(0, "m", n))
        for n in ("b", "c", "d"):
            os.makedirs(m.t(1, "m", n))
        write_file(m.t(1, "m", "file"), "x")
        os.symlink("c", m.t(1, "m", "ln"))
        os.makedirs(m.t(2, "m", "e"))
        os.makedirs(m.t(2, "m", "a"))
        os.makedirs(m.t(1, "p", "x"))
        os.makedirs(m.t(1, "p", "y"))
        os.makedirs(m.t(2, "q"))
    with Mount(ntiers=3, populate=pop) as m:
        eq(os.stat(m.p("m")).st_nlink, 2 + 5, "merged m/ (a b c d e)")
        eq(os.stat(m.p("p")).st_nlink, 2 + 2, "tier-1 p/")
        eq(os.stat(m.p("q")).st_nlink, 2, "empty tier-2 q/")
        eq(os.stat(m.p()).st_nlink, 2 + 3, "root (m p q)")
        eq(os.stat(m.p("m", "b")).st_nlink, 2, "m/b")
        os.mkdir(m.p("m", "new"))
        eq(os.stat(m.p("m")).st_nlink, 2 + 6, "m/ after mkdir")
        os.rmdir(m.p("m", "c"))
        eq(os.stat(m.p("m")).st_nlink, 2 + 5, "m/ after rmdir of c")
        os.rename(m.p("m", "d"), m.p("p", "d"))
        eq(os.stat(m.p("m")).st_nlink, 2 + 4, "m/ after moving d out")
        eq(os.stat(m.p("p")).st_nlink, 2 + 3, "p/ after moving d in")
        os.mkdir(m.p("n"))
        for i in range(3):
            os.mkdir(m.p("n", "s%d" % i))
        write_file(m.p("n", "f"), "x")
        eq(os.stat(m.p("n")).st_nlink, 2 + 3, "dir made through the mount")
        eq(os.stat(m.p()).st_nlink, 2 + 4, "root after mkdir n")


def test_inode_numbers_survive_a_remount():
    def pop(m):
        os.makedirs(m.t(1, "d", "e"))
        write_file(m.t(1, "d", "f1"), "1")
        write_file(m.t(2, "g2"), "2")
    with Mount(ntiers=3, populate=pop) as m:
        write_file(m.p("d", "f0"), "0")
        os.mkdir(m.p("n"))
        os.link(m.p("d", "f1"), m.p("n", "l1"))
        names = ["d", "d/e", "d/f1", "d/f0", "g2", "n", "n/l1"]
        before = {n: os.stat(m.p(n)).st_ino for n in names}
        os.rename(m.p("d", "f0"), m.p("n", "f0"))
        os.rename(m.p("d", "e"), m.p("n", "e"))
        moved = {"d/f0": "n/f0", "d/e": "n/e"}
        m.remount()
        after = {n: os.stat(m.p(moved.get(n, n))).st_ino for n in names}
        eq(after, before, "st_ino before and after a remount")
