"""The merged tree: readdir, placement, rmdir, rename, link, no EXDEV."""

import errno
import os
import stat
import time

from dfstest import (Mount, check, eq, exists, read_file, renameat2,
                     tick, tiers_holding, write_file, RENAME_EXCHANGE,
                     RENAME_NOREPLACE)


def _listing(path):
    names = os.listdir(path)
    check(len(names) == len(set(names)),
          "%s lists a name twice: %s" % (path, sorted(names)))
    return sorted(names)


def test_readdir_merges_each_name_once():
    def pop(m):
        for i in range(m.ntiers):
            os.makedirs(m.t(i, "d", "sub"))
            write_file(m.t(i, "d", "both"), "tier%d" % i)
            write_file(m.t(i, "d", "only%d" % i), "x")
            write_file(m.t(i, "top%d" % i), "x")
        os.mkdir(m.t(1, "d1only"))
        os.mkdir(m.t(m.ntiers - 1, "d", "lastonly"))
    for n in (2, 3):
        with Mount(ntiers=n, populate=pop) as m:
            want_d = sorted(["sub", "both", "lastonly"] +
                            ["only%d" % i for i in range(n)])
            eq(_listing(m.p("d")), want_d,
               "merged listing of d (%d tiers)" % n)
            want_root = sorted(["d", "d1only"] + ["top%d" % i
                                                  for i in range(n)])
            eq(_listing(m.p()), want_root, "merged root (%d tiers)" % n)
            # the same through scandir (readdirplus path), with types
            types = {e.name: e.is_dir(follow_symlinks=False)
                     for e in os.scandir(m.p("d"))}
            eq(sorted(types), want_d, "scandir of d")
            check(types["sub"] and types["lastonly"] and not types["both"],
                  "scandir types wrong: %r" % types)
            # a name created through the mount joins the listing once
            write_file(m.p("d", "new"), "n")
            eq(_listing(m.p("d")), sorted(want_d + ["new"]),
               "listing after create")


def test_content_from_the_tier_that_holds_it():
    def pop(m):
        write_file(m.t(0, "both"), "zero")
        write_file(m.t(1, "both"), "one, longer")
        write_file(m.t(1, "on1"), "tier one")
        os.makedirs(m.t(1, "a", "b"))
        write_file(m.t(1, "a", "b", "deep"), "deep on one")
        if m.ntiers > 2:
            write_file(m.t(2, "both"), "two")
            write_file(m.t(2, "on2"), "tier two")
            os.makedirs(m.t(2, "a", "b"))
            write_file(m.t(2, "a", "b", "deep2"), "deep on two")
    with Mount(ntiers=3, populate=pop) as m:
        eq(read_file(m.p("both")), b"zero",
           "name on all tiers: fastest served")
        eq(os.stat(m.p("both")).st_size, 4, "size of the served copy")
        eq(read_file(m.p("on1")), b"tier one", "tier-1 file")
        eq(read_file(m.p("on2")), b"tier two", "tier-2 file")
        eq(read_file(m.p("a", "b", "deep")), b"deep on one", "deep tier-1")
        eq(read_file(m.p("a", "b", "deep2")), b"deep on two", "deep tier-2")


def test_new_objects_land_on_tier0_with_parents_like_the_originals():
    t_deep = (1500000000, 123456789)
    t_er = (1600000000, 987654321)

    def pop(m):
        os.makedirs(m.t(1, "deep", "er"))
        os.chmod(m.t(1, "deep"), 0o770)
        os.chmod(m.t(1, "deep", "er"), 0o2775)
        os.chown(m.t(1, "deep"), 1234, 5678)
        os.chown(m.t(1, "deep", "er"), 4321, 8765)
        os.chmod(m.t(1, "deep", "er"), 0o2775)     # chown clears setgid
        os.utime(m.t(1, "deep", "er"), ns=(t_er[0] * 10**9 + t_er[1],) * 2)
        os.utime(m.t(1, "deep"), ns=(t_deep[0] * 10**9 + t_deep[1],) * 2)
        os.makedirs(m.t(2, "far", "away"))
        os.chmod(m.t(2, "far"), 0o751)
        os.chown(m.t(2, "far"), 1111, 2222)
        os.utime(m.t(2, "far"), ns=(t_deep[0] * 10**9,) * 2)
    with Mount(ntiers=3, populate=pop) as m:
        t_start = time.time()
        before = os.stat(m.p("deep"))
        eq(before.st_mtime_ns, t_deep[0] * 10**9 + t_deep[1],
           "mtime of tier-1 dir seen through the mount")
        write_file(m.p("deep", "er", "f"), "new")
        os.mkdir(m.p("deep", "er", "sub"))
        os.symlink("f", m.p("deep", "er", "ln"))
        os.mkfifo(m.p("deep", "er", "fifo"))
        os.mkdir(m.p("far", "away", "x"))
        for name, kind in (("f", stat.S_ISREG), ("sub", stat.S_ISDIR),
                           ("ln", stat.S_ISLNK), ("fifo", stat.S_ISFIFO)):
            eq(tiers_holding(m, "deep", "er", name), [0],
               "tiers holding new %s" % name)
            check(kind(os.lstat(m.t(0, "deep", "er", name)).st_mode),
                  "%s has the wrong type on tier 0" % name)
            check(kind(os.lstat(m.p("deep", "er", name)).st_mode),
                  "%s has the wrong type through the mount" % name)
        eq(os.readlink(m.t(0, "deep", "er", "ln")), "f", "symlink target")
        eq(read_file(m.t(0, "deep", "er", "f")), b"new", "tier-0 content")
        eq(tiers_holding(m, "far", "away", "x"), [0],
           "tiers holding far/away/x")
        # parents made on tier 0 like the originals
        for parts in (("deep",), ("deep", "er"), ("far",), ("far", "away")):
            src = os.stat(m.t(2 if parts[0] == "far" else 1, *parts))
            dst = os.stat(m.t(0, *parts))
            what = "tier-0 copy of %s" % "/".join(parts)
            eq(oct(stat.S_IMODE(dst.st_mode)), oct(stat.S_IMODE(src.st_mode)),
               what + " mode")
            eq((dst.st_uid, dst.st_gid), (src.st_uid, src.st_gid),
               what + " owner")
        check(not exists(m.t(1, "far")), "far/ created on tier 1 too")
        # deep/ itself did not change: its times are the original ones on
        # tier 0 and through the mount
        eq(os.stat(m.t(0, "deep")).st_mtime_ns, t_deep[0] * 10**9 + t_deep[1],
           "mtime of deep/ made on tier 0")
        eq(os.stat(m.t(0, "far")).st_mtime_ns, t_deep[0] * 10**9,
           "mtime of far/ made on tier 0")
        eq(os.stat(m.p("deep")).st_mtime_ns, t_deep[0] * 10**9 + t_deep[1],
           "mtime of deep/ through the mount")
        # deep/er/ got new entries: its mtime moved
        check(os.stat(m.p("deep", "er")).st_mtime >= t_start - 1,
              "mtime of deep/er/ through the mount did not move on create")


def test_operations_on_an_existing_file_go_to_its_tier():
    def pop(m):
        write_file(m.t(1, "f"), "hello world")
        os.mkdir(m.t(1, "sub"))
        write_file(m.t(1, "sub", "g"), "gee")
        write_file(m.t(2, "h"), "aitch")
    with Mount(ntiers=3, populate=pop) as m:
        with open(m.p("f"), "r+b") as f:
            f.seek(0)
            f.write(b"J")
        with open(m.p("f"), "ab") as f:
            f.write(b"!")
        eq(read_file(m.t(1, "f")), b"Jello world!", "tier-1 backing file")
        os.truncate(m.p("f"), 5)
        eq(os.stat(m.t(1, "f")).st_size, 5, "truncate reaches tier 1")
        os.chmod(m.p("f"), 0o600)
        eq(stat.S_IMODE(os.stat(m.t(1, "f")).st_mode), 0o600,
           "chmod reaches tier 1")
        os.utime(m.p("f"), ns=(10**18, 10**18))
        eq(os.stat(m.t(1, "f")).st_mtime_ns, 10**18, "utime reaches tier 1")
        os.chown(m.p("f"), 777, 888)
        eq((os.stat(m.t(1, "f")).st_uid, os.stat(m.t(1, "f")).st_gid),
           (777, 888), "chown reaches tier 1")
        with open(m.p("sub", "g"), "wb") as f:
            f.write(b"rewritten")
        eq(read_file(m.t(1, "sub", "g")), b"rewritten", "sub/g on tier 1")
        with open(m.p("h"), "r+b") as f:
            f.write(b"A")
        eq(read_file(m.t(2, "h")), b"Aitch", "tier-2 backing file")
        eq(tiers_holding(m, "f"), [1], "tiers holding f")
        eq(tiers_holding(m, "sub", "g"), [1], "tiers holding sub/g")
        eq(tiers_holding(m, "h"), [2], "tiers holding h")
        eq(read_file(m.p("f")), b"Jello", "f through the mount")


def test_rmdir_removes_the_directory_from_every_tier():
    def pop(m):
        for i in range(m.ntiers):
            os.mkdir(m.t(i, "d"))
            for j in range(m.ntiers):
                os.mkdir(m.t(i, "full%d" % j))
            # full<j> holds an entry on tier j only
            write_file(m.t(i, "full%d" % i, "x"), "x")
        os.makedirs(m.t(2, "e", "inner"))
        os.makedirs(m.t(0, "e"))
    with Mount(ntiers=3, populate=pop) as m:
        os.rmdir(m.p("d"))
        eq(tiers_holding(m, "d"), [], "tiers holding d after rmdir")
        check("d" not in os.listdir(m.p()), "d still listed")
        check(not exists(m.p("d")), "d still visible")
        for i in range(m.ntiers):
            # full<i> is empty on every tier but i
            try:
                os.rmdir(m.p("full%d" % i))
                got = 0
            except OSError as e:
                got = e.errno
            eq(errno.errorcode.get(got, got), "ENOTEMPTY",
               "rmdir of a dir with an entry on tier %d only" % i)
            eq(tiers_holding(m, "full%d" % i), [0, 1, 2],
               "full%d must stay on every tier" % i)
            eq(tiers_holding(m, "full%d" % i, "x"), [i], "its entry")
        try:
            os.rmdir(m.p("e"))
            got = 0
        except OSError as e:
            got = e.errno
        eq(errno.errorcode.get(got, got), "ENOTEMPTY",
           "rmdir of a dir whose only subdir is on tier 2")
        os.rmdir(m.p("e", "inner"))
        os.rmdir(m.p("e"))
        eq(tiers_holding(m, "e"), [], "tiers holding e")
        # created through the mount, then removed
        os.mkdir(m.p("n"))
        os.rmdir(m.p("n"))
        eq(tiers_holding(m, "n"), [], "tiers holding n")


def test_directory_rename_on_every_tier():
    def pop(m):
        for i in range(m.ntiers):
            os.makedirs(m.t(i, "d", "sub"))
            write_file(m.t(i, "d", "f%d" % i), "f%d" % i)
        os.makedirs(m.t(1, "np"))
        os.makedirs(m.t(2, "d2"))
        write_file(m.t(2, "d2", "x"), "x")
        os.makedirs(m.t(0, "d2"))
    with Mount(ntiers=3, populate=pop) as m:
        os.rename(m.p("d"), m.p("e"))
        eq(tiers_holding(m, "d"), [], "tiers holding d after rename")
        eq(tiers_holding(m, "e"), [0, 1, 2], "tiers holding e")
        eq(_listing(m.p("e")), ["f0", "f1", "f2", "sub"], "listing of e")
        for i in range(3):
            eq(read_file(m.p("e", "f%d" % i)), b"f%d" % i, "e/f%d" % i)
        eq(_listing(m.p()), ["d2", "e", "np"], "root listing")
        # into a directory that exists on tier 1 only
        os.rename(m.p("e"), m.p("np", "e"))
        eq(_listing(m.p("np", "e")), ["f0", "f1", "f2", "sub"],
           "listing of np/e")
        eq(tiers_holding(m, "e"), [], "tiers holding e after 2nd rename")
        eq(tiers_holding(m, "np", "e"), [0, 1, 2], "tiers holding np/e")
        for i in range(3):
            eq(read_file(m.p("np", "e", "f%d" % i)), b"f%d" % i,
               "np/e/f%d" % i)
        # onto an existing empty directory present on other tiers
        os.unlink(m.p("d2", "x"))
        os.rename(m.p("np", "e", "sub"), m.p("d2"))
        eq(tiers_holding(m, "np", "e", "sub"), [], "sub after rename onto d2")
        check(os.path.isdir(m.p("d2")), "d2 is not a directory")
        eq(_listing(m.p("d2")), [], "d2 after rename")
        eq(_listing(m.p("np", "e")), ["f0", "f1", "f2"], "np/e after")


def test_file_rename_leaves_the_name_once():
    def pop(m):
        write_file(m.t(1, "x"), "one")
        write_file(m.t(0, "y"), "zero")
        write_file(m.t(0, "p"), "p-zero")
        write_file(m.t(1, "q"), "q-one")
        write_file(m.t(2, "z"), "z-two")
        write_file(m.t(0, "w"), "w-zero")
        write_file(m.t(1, "w2"), "w2-one")
    with Mount(ntiers=3, populate=pop) as m:
        os.rename(m.p("y"), m.p("x"))     # tier 0 onto tier 1
        eq(len(tiers_holding(m, "x")), 1, "tiers holding x: %r" %
           tiers_holding(m, "x"))
        eq(tiers_holding(m, "y"), [], "tiers holding y")
        eq(read_file(m.p("x")), b"zero", "content of x")
        os.rename(m.p("q"), m.p("p"))     # tier 1 onto tier 0
        eq(len(tiers_holding(m, "p")), 1, "tiers holding p: %r" %
           tiers_holding(m, "p"))
        eq(read_file(m.p("p")), b"q-one", "content of p")
        os.rename(m.p("w"), m.p("z"))     # tier 0 onto tier 2
        os.rename(m.p("w2"), m.p("z"))    # tier 1 onto that
        eq(len(tiers_holding(m, "z")), 1, "tiers holding z: %r" %
           tiers_holding(m, "z"))
        eq(read_file(m.p("z")), b"w2-one", "content of z")
        # created through the mount onto a tier-1 name
        write_file(m.p("n"), "new")
        os.rename(m.p("n"), m.p("p"))
        eq(len(tiers_holding(m, "p")), 1, "tiers holding p after 2nd rename")
        eq(read_file(m.p("p")), b"new", "content of p after 2nd rename")
        eq(_listing(m.p()), ["p", "x", "z"], "root listing")


def test_link_happens_on_the_source_tier():
    def pop(m):
        write_file(m.t(1, "f"), "tier-one file")
        os.mkdir(m.t(0, "only0"))
        write_file(m.t(2, "g"), "tier-two file")
    with Mount(ntiers=3, populate=pop) as m:
        os.link(m.p("f"), m.p("f2"))
        eq(tiers_holding(m, "f2"), [1], "tiers holding link f2")
        a, b = os.stat(m.p("f")), os.stat(m.p("f2"))
        eq(b.st_ino, a.st_ino, "st_ino of link")
        eq((a.st_nlink, b.st_nlink), (2, 2), "st_nlink of both names")
        eq(os.stat(m.t(1, "f2")).st_ino, os.stat(m.t(1, "f")).st_ino,
           "backing inode of the link")
        eq(os.stat(m.t(1, "f")).st_nlink, 2, "backing st_nlink")
        # into a directory that only exists on tier 0
        os.link(m.p("f"), m.p("only0", "f3"))
        eq(tiers_holding(m, "only0", "f3"), [1], "tiers holding only0/f3")
        eq(os.stat(m.p("only0", "f3")).st_ino, a.st_ino, "st_ino of f3")
        eq(os.stat(m.p("f")).st_nlink, 3, "st_nlink after second link")
        eq(read_file(m.p("only0", "f3")), b"tier-one file", "content of f3")
        os.link(m.p("g"), m.p("only0", "g2"))
        eq(tiers_holding(m, "only0", "g2"), [2], "tiers holding only0/g2")
        eq(os.stat(m.p("g")).st_nlink, 2, "st_nlink of g")
        # renaming a name onto another name of the same file does nothing
        os.rename(m.p("g"), m.p("only0", "g2"))
        eq((exists(m.p("g")), exists(m.p("only0", "g2"))), (True, True),
           "both names after rename onto own hard link")
        eq(os.stat(m.p("g")).st_nlink, 2, "st_nlink of g after that")


def test_no_exdev_between_tiers():
    def pop(m):
        write_file(m.t(1, "f1"), "on one")
        write_file(m.t(0, "f0"), "on zero")
        os.mkdir(m.t(0, "d0"))
        os.mkdir(m.t(1, "d1"))
        os.makedirs(m.t(1, "dir1", "in"))
        write_file(m.t(1, "dir1", "in", "x"), "x")
        os.mkdir(m.t(2, "d2"))
        write_file(m.t(2, "f2"), "on two")
    with Mount(ntiers=3, populate=pop) as m:
        moves = [("f1", "d0/f1", b"on one"),       # tier-1 file, tier-0 dir
                 ("f0", "d1/f0", b"on zero"),      # tier-0 file, tier-1 dir
                 ("f2", "d0/f2", b"on two"),
                 ("d0/f1", "d2/f1", b"on one")]
        for src, dst, data in moves:
            try:
                os.rename(m.p(src), m.p(dst))
            except OSError as e:
                raise AssertionError("rename %s -> %s: %s" % (src, dst, e))
            eq(read_file(m.p(dst)), data, "content of %s" % dst)
            check(not exists(m.p(src)), "%s still exists" % src)
            eq(len(tiers_holding(m, *dst.split("/"))), 1,
               "tiers holding %s" % dst)
        # a directory tree of tier 1 into a tier-0 directory
        os.rename(m.p("dir1"), m.p("d0", "dir1"))
        eq(read_file(m.p("d0", "dir1", "in", "x")), b"x", "moved tree")
        # a hard link across
        os.link(m.p("d1", "f0"), m.p("d2", "l0"))
        eq(os.stat(m.p("d2", "l0")).st_ino, os.stat(m.p("d1", "f0")).st_ino,
           "st_ino of the link")
        # created through the mount
        os.mkdir(m.p("new"))
        os.rename(m.p("d2", "f1"), m.p("new", "f1"))
        eq(read_file(m.p("new", "f1")), b"on one", "new/f1")


def test_renameat2_noreplace_and_exchange():
    def pop(m):
        write_file(m.t(1, "a1"), "a1 on one")
        write_file(m.t(1, "b1"), "b1 on one")
        write_file(m.t(0, "c0"), "c0 on zero")
        write_file(m.t(1, "d1"), "d1 on one")
    with Mount(ntiers=2, populate=pop) as m:
        def err(old, new, flags):
            try:
                renameat2(m.p(old), m.p(new), flags)
                return 0
            except OSError as e:
                return e.errno
        write_file(m.p("n0"), "n0 new")
        write_file(m.p("n1"), "n1 new")
        # NOREPLACE onto an existing name, same tier and other tier
        for old, new in (("n0", "n1"), ("n0", "a1"), ("a1", "c0"),
                         ("a1", "b1")):
            eq(errno.errorcode.get(err(old, new, RENAME_NOREPLACE)),
               "EEXIST", "RENAME_NOREPLACE %s -> %s" % (old, new))
        eq(read_file(m.p("a1")), b"a1 on one", "a1 untouched")
        eq(read_file(m.p("n1")), b"n1 new", "n1 untouched")
        eq(err("a1", "fresh", RENAME_NOREPLACE), 0, "NOREPLACE to a new name")
        eq(read_file(m.p("fresh")), b"a1 on one", "fresh")
        check(not exists(m.p("a1")), "a1 still there")
        # EXCHANGE on one tier: tier 0 (created) and tier 1 (pre-existing)
        eq(err("n0", "n1", RENAME_EXCHANGE), 0, "EXCHANGE two tier-0 files")
        eq((read_file(m.p("n0")), read_file(m.p("n1"))),
           (b"n1 new", b"n0 new"), "contents after exchange")
        eq(err("fresh", "b1", RENAME_EXCHANGE), 0, "EXCHANGE two tier-1 files")
        eq((read_file(m.p("fresh")), read_file(m.p("b1"))),
           (b"b1 on one", b"a1 on one"), "contents after exchange")
        eq(err("fresh", "nosuch", RENAME_EXCHANGE), errno.ENOENT,
           "EXCHANGE with a missing name")
        # EXCHANGE across tiers: done, or EINVAL, never EXDEV
        e = err("c0", "d1", RENAME_EXCHANGE)
        check(e in (0, errno.EINVAL),
              "EXCHANGE across tiers gives %s (want success or EINVAL)" %
              errno.errorcode.get(e, e))
        if e == 0:
            eq((read_file(m.p("c0")), read_file(m.p("d1"))),
               (b"d1 on one", b"c0 on zero"), "contents after exchange")
        else:
            eq((read_file(m.p("c0")), read_file(m.p("d1"))),
               (b"c0 on zero", b"d1 on one"), "contents after EINVAL")
        for n in ("c0", "d1", "n0", "n1", "b1", "fresh"):
            eq(len(tiers_holding(m, n)), 1, "tiers holding %s" % n)
        # directories, and a directory with a file, on one tier
        os.mkdir(m.p("D"))
        write_file(m.p("D", "inside"), "i")
        os.mkdir(m.p("E"))
        eq(err("D", "E", RENAME_EXCHANGE), 0, "EXCHANGE two directories")
        eq((os.listdir(m.p("D")), os.listdir(m.p("E"))), ([], ["inside"]),
           "directory contents after exchange")
        eq(err("E", "n0", RENAME_EXCHANGE), 0, "EXCHANGE a dir and a file")
        check(os.path.isdir(m.p("n0")) and os.path.isfile(m.p("E")),
              "types after exchanging a dir and a file")
        eq(read_file(m.p("E")), b"n1 new", "file after dir/file exchange")
        eq(os.listdir(m.p("n0")), ["inside"], "dir after dir/file exchange")
        e = err("n0", "d1", RENAME_EXCHANGE)
        check(e in (0, errno.EINVAL),
              "EXCHANGE of a tier-0 dir and a tier-1 file gives %s" %
              errno.errorcode.get(e, e))


def test_big_merged_directory_lists_each_name_once():
    """Enough entries that readdir needs many calls: offsets must work
    across the merge, and removing while listing (rm -r) must not skip
    or fail."""
    import shutil

    def pop(m):
        for i, (lo, hi) in enumerate(((0, 1500), (1000, 2500), (2000, 3000))):
            os.makedirs(m.t(i, "big", "sub"))
            for k in range(lo, hi):
                open(m.t(i, "big", "n%04d-%s" % (k, "x" * 40)), "w").close()
            write_file(m.t(i, "big", "sub", "f%d" % i), "x")
            os.makedirs(m.t(i, "tree", "sub", "deeper"))
            for k in range(700):
                open(m.t(i, "tree", "t%d-%04d" % (i, k)), "w").close()
            write_file(m.t(i, "tree", "sub", "deeper", "g%d" % i), "x")
    with Mount(ntiers=3, populate=pop) as m:
        want = sorted(["n%04d-%s" % (k, "x" * 40) for k in range(3000)] +
                      ["sub"])
        eq(_listing(m.p("big")), want, "listing of a 3001-entry merged dir")
        got = sorted(e.name for e in os.scandir(m.p("big")))
        eq(got, want, "scandir of the merged dir")
        ino = {}
        for e in os.scandir(m.p("big")):
            ino[e.inode()] = e.name
        eq(len(ino), len(want), "distinct d_ino in the listing")
        for k in range(3000, 3100):
            write_file(m.p("big", "new%d" % k), "")
        eq(len(_listing(m.p("big"))), 3101, "entries after 100 creates")
        # rm -r of a merged tree without conflicts (a name on two tiers is
        # a conflict, which dfs keeps on the slower tier)
        eq(len(_listing(m.p("tree"))), 3 * 700 + 1, "listing of tree/")
        shutil.rmtree(m.p("tree"))
        check(not exists(m.p("tree")), "tree/ still there after rm -r")
        eq(tiers_holding(m, "tree"), [], "tiers holding tree/ after rm -r")


def test_directory_attributes_kept_in_step_on_all_tiers():
    def pop(m):
        for i in range(m.ntiers):
            os.makedirs(m.t(i, "d"))
        write_file(m.t(1, "d", "f1"), "x")
    with Mount(ntiers=3, populate=pop) as m:
        os.chmod(m.p("d"), 0o710)
        os.chown(m.p("d"), 1234, 4321)
        os.utime(m.p("d"), ns=(1400000000 * 10**9 + 5, 1500000000 * 10**9 + 7))
        st = os.stat(m.p("d"))
        eq((oct(st.st_mode), st.st_uid, st.st_gid, st.st_atime_ns,
            st.st_mtime_ns),
           (oct(stat.S_IFDIR | 0o710), 1234, 4321,
            1400000000 * 10**9 + 5, 1500000000 * 10**9 + 7),
           "merged directory through the mount")
        for i in range(m.ntiers):
            bst = os.stat(m.t(i, "d"))
            eq((oct(bst.st_mode), bst.st_uid, bst.st_gid, bst.st_mtime_ns),
               (oct(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns),
               "copy of d on tier %d (mode, owner, mtime)" % i)
        # a change inside moves the mtime seen through the mount, whichever
        # tier the entry is on
        for op, what in ((lambda: os.unlink(m.p("d", "f1")), "unlink of a "
                          "tier-1 file"),
                         (lambda: write_file(m.p("d", "n"), "n"), "create"),
                         (lambda: os.rename(m.p("d", "n"), m.p("d", "n2")),
                          "rename inside")):
            before = os.stat(m.p("d")).st_mtime_ns
            tick()
            op()
            check(os.stat(m.p("d")).st_mtime_ns > before,
                  "mtime of d did not move on %s" % what)


def test_odd_names_and_device_nodes():
    names = [b"with space", b"new\nline", b"\xff\xfe latin1 \xe9", b"-",
             b"..." , b"x" * 255, "\u00e9t\u00e9".encode()]

    def pop(m):
        for n in names:
            write_file(os.path.join(os.fsencode(m.t(1, "")), n), n)
    with Mount(ntiers=2, populate=pop) as m:
        root = os.fsencode(m.mnt)
        eq(sorted(os.listdir(root)), sorted(names), "odd names from tier 1")
        for n in names:
            eq(read_file(os.path.join(root, n)), n, "content of %r" % n)
            os.rename(os.path.join(root, n), os.path.join(root, n + b".r"
                      if len(n) < 255 else n[:-1]))
        os.mknod(m.p("null"), stat.S_IFCHR | 0o600, os.makedev(1, 3))
        os.mknod(m.p("blk"), stat.S_IFBLK | 0o600, os.makedev(7, 200))
        for n, kind, dev in (("null", stat.S_ISCHR, os.makedev(1, 3)),
                             ("blk", stat.S_ISBLK, os.makedev(7, 200))):
            for p in (m.p(n), m.t(0, n)):
                st = os.lstat(p)
                check(kind(st.st_mode), "%s: wrong type %o" % (p, st.st_mode))
                eq(st.st_rdev, dev, "%s: st_rdev" % p)
        # (opening them is refused: FUSE mounts are nodev by default)


def test_concurrent_creates_in_tier1_directories():
    """Several clients creating in directories that exist only on tier 1:
    dfs makes the same tier-0 parents from several threads at once."""
    import threading
    ndirs, nthreads = 30, 8

    def pop(m):
        for i in range(ndirs):
            os.makedirs(m.t(1, "p%d" % i, "q", "r"))
            os.chmod(m.t(1, "p%d" % i), 0o750)
    with Mount(ntiers=2, populate=pop) as m:
        errors = []
        start = threading.Barrier(nthreads)

        def work(k):
            try:
                start.wait()
                for i in range(ndirs):
                    sub = ("q", "r") if (i + k) % 2 else ("q",)
                    write_file(m.p("p%d" % i, *sub, "f%d" % k), "k%d" % k)
                    os.mkdir(m.p("p%d" % i, "q", "d%d" % k))
            except Exception as e:      # noqa: BLE001 - reported below
                errors.append("thread %d: %r" % (k, e))
        threads = [threading.Thread(target=work, args=(k,))
                   for k in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        check(not any(t.is_alive() for t in threads), "threads hang")
        check(not errors, "\n  ".join([""] + errors[:10]))
        for i in range(ndirs):
            eq(oct(os.stat(m.t(0, "p%d" % i)).st_mode & 0o7777), oct(0o750),
               "mode of p%d made on tier 0" % i)
            for k in range(nthreads):
                sub = ("q", "r") if (i + k) % 2 else ("q",)
                eq(read_file(m.p("p%d" % i, *sub, "f%d" % k)),
                   b"k%d" % k, "p%d/.../f%d" % (i, k))
                eq(tiers_holding(m, "p%d" % i, *sub, "f%d" % k), [0],
                   "tiers holding p%d/.../f%d" % (i, k))
            eq(len(_listing(m.p("p%d" % i, "q"))), 1 + 2 * nthreads -
               nthreads // 2, "entries of p%d/q" % i)
