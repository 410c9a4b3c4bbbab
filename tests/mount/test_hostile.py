"""Input a program may throw at a file system: names with newlines and
bytes that are not UTF-8, paths deeper than PATH_MAX, a file whose data
starts at 2^43 (and past what the tier takes), a directory of 100,000 entries; and dfsctl given paths
outside the mount, `..` escapes, symlinks out and overlong arguments.
Each works as on a local file system, on both tiers and across a
migration and a restart, or fails with a clear error and harms nothing.
"""

import errno
import json
import os

from dfstest import check, eq, read_file, write_file
from test_migrate import MigMount, Problems, dfsctl_bin, policy, run

DOWN = policy("down", frm="t0", to="t1")

ODD = [b"new\nline", b"tab\there", b"\xff\xfe not utf-8", b" lead", b"trail ",
       b"-dash", b"*star?", b"\\back", b"\xe2\x82\xac" * 85,    # 255 bytes
       b"x" * 255, b"\x01\x1f\x7f"]


def _ctl(m, *args):
    return run([dfsctl_bin(), "-s", m.sock] + [a if isinstance(a, str) else
                                               os.fsdecode(a) for a in args])


def test_odd_names_move_and_survive_a_restart():
    with MigMount(DOWN) as m:
        pr = Problems(m)
        top = os.fsencode(m.p("odd"))
        os.mkdir(top)
        ino = {}
        for n in ODD:
            p = os.path.join(top, n)
            write_file(p, n)
            os.mkdir(p[:-2] + b".d")
            write_file(os.path.join(p[:-2] + b".d", n), n * 2)
            ino[n] = os.stat(p).st_ino
        want = sorted(ODD + [n[:-2] + b".d" for n in ODD])
        pr.eq(sorted(os.listdir(top)), want, "listing after the creates")
        m.migrate()
        for n in ODD:
            rel = os.path.join(b"odd", n)
            pr.eq(os.path.lexists(os.path.join(os.fsencode(m.t(1)), rel)),
                  True, "%r on tier 1 after the run" % n)
            pr.eq(os.path.lexists(os.path.join(os.fsencode(m.t(0)), rel)),
                  False, "%r gone from tier 0" % n)
        m.remount()
        pr.eq(sorted(os.listdir(top)), want, "listing after the restart")
        for n in ODD:
            p = os.path.join(top, n)
            pr.eq(read_file(p), n, "content of %r" % n)
            pr.eq(read_file(os.path.join(p[:-2] + b".d", n)), n * 2,
                  "content of %r in its directory" % n)
            pr.eq(os.stat(p).st_ino, ino[n], "inode of %r" % n)
        # dfsctl takes such a name as it is
        rc, out, err = _ctl(m, "where", os.path.join(top, b"new\nline"))
        pr.eq(rc, 0, "dfsctl where of a name with a newline: %r" % err)
        pr.done()


def test_path_deeper_than_path_max():
    # 300 levels of 20 bytes: about 6,300 bytes from the mount point
    level = "l" * 19
    depth = 300
    with MigMount(DOWN) as m:
        pr = Problems(m)

        def walk(root, make=False):
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for _ in range(depth):
                    if make:
                        os.mkdir(level, dir_fd=fd)
                    nfd = os.open(level, os.O_RDONLY | os.O_DIRECTORY,
                                  dir_fd=fd)
                    os.close(fd)
                    fd = nfd
                return fd
            except BaseException:
                os.close(fd)
                raise

        fd = walk(m.mnt, make=True)
        try:
            f = os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(f, b"deep down")
            os.close(f)
        finally:
            os.close(fd)
        long_path = os.path.join(m.mnt, *([level] * depth), "bottom")
        check(len(long_path) > 4096, "the path is longer than PATH_MAX")
        try:
            os.stat(long_path)
            pr.check(False, "stat of a path over PATH_MAX succeeded")
        except OSError as e:
            pr.eq(e.errno, errno.ENAMETOOLONG, "stat of the whole path")
        # policies match whole paths: the file stays, counted as skipped
        m.migrate()
        rc, out, err = _ctl(m, "--json", "migrate", "--status")
        runs = json.loads(out).get("runs") or [{}]
        pr.eq(runs[0].get("skipped"), {"path over PATH_MAX": 1},
              "the run's skipped files")
        m.remount()
        for tier, want in ((m.t(0), True), (m.t(1), False)):
            try:
                fd = walk(tier)
            except FileNotFoundError:
                pr.check(not want, "the directories on %s" % tier)
                continue
            try:
                pr.eq(os.path.exists("/proc/self/fd/%d/bottom" % fd), want,
                      "the file on %s after the run" % tier)
            finally:
                os.close(fd)
        fd = walk(m.mnt)
        try:
            f = os.open("bottom", os.O_RDONLY, dir_fd=fd)
            pr.eq(os.read(f, 100), b"deep down", "content at the bottom")
            os.close(f)
        finally:
            os.close(fd)
        pr.done()


def _pwrite_at(path, off):
    """pwrite of 3 bytes at off in a new file: None, or the errno."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"end", off)
        return None
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def test_data_at_huge_offsets():
    with MigMount(DOWN) as m:
        pr = Problems(m)
        # past what the tier's file system takes (ext4: 16 TiB), the
        # answer is the tier's own
        for off in (1 << 62, (1 << 63) - 2):
            native = _pwrite_at(os.path.join(m.root, "native"), off)
            pr.eq(_pwrite_at(m.p("over"), off), native,
                  "pwrite at %d: errno as on the tier itself" % off)
            os.unlink(os.path.join(m.root, "native"))
            os.unlink(m.p("over"))
        off = 1 << 43
        p = m.p("huge")
        eq(_pwrite_at(p, off), None, "pwrite at 2^43")
        with open(p, "rb") as f:
            f.seek(12345)
            eq(f.read(4), bytes(4), "a hole reads as zeros")
        st = os.stat(p)
        pr.eq(st.st_size, off + 3, "st_size")
        pr.check(st.st_blocks < 1024, "st_blocks %d: the hole takes no room" %
                 st.st_blocks)
        m.migrate()
        pr.eq(os.path.exists(m.t(1, "huge")), True, "the file on tier 1")
        st = os.stat(p)
        pr.eq(st.st_size, off + 3, "st_size after the move")
        pr.check(os.stat(m.t(1, "huge")).st_blocks < 1024,
                 "the copy keeps the hole")
        with open(p, "rb") as f:
            f.seek(off)
            pr.eq(f.read(), b"end", "the data after the move")
        pr.done()


def test_hundred_thousand_entries():
    n0, n1 = 40000, 60000

    def populate(m):
        os.makedirs(m.t(1, "big"))
        for i in range(n1):
            os.mknod(m.t(1, "big", "b%06d" % i))
    with MigMount("", populate=populate) as m:
        pr = Problems(m)
        d = m.p("big")
        for i in range(n0):
            os.mknod(os.path.join(d, "a%06d" % i))
        names = os.listdir(d)
        pr.eq(len(names), n0 + n1, "entries listed")
        pr.eq(len(set(names)), n0 + n1, "each listed once")
        pr.eq(os.stat(os.path.join(d, "b059999")).st_size, 0,
              "a tier-1 entry")
        m.remount()
        names = os.listdir(d)
        pr.eq((len(names), len(set(names))), (n0 + n1, n0 + n1),
              "entries after a restart, each once")
        pr.done()


def test_dfsctl_refuses_paths_outside_the_mount():
    with MigMount(DOWN) as m:
        pr = Problems(m)
        write_file(m.p("in"), b"inside")
        outside = os.path.join(m.root, "outside")
        write_file(outside, b"not dfs's")
        os.symlink(outside, m.p("link-out"))
        os.symlink("/etc", m.p("etc-link"))
        escape = m.mnt + "/../outside"
        cases = [
            ("a file outside the mount", ["where", outside]),
            ("a .. escape", ["where", escape]),
            ("a tier's own path", ["where", m.t(0, "in")]),
            ("a file under a symlink out", ["where", m.p("etc-link",
                                                         "passwd")]),
            ("pin outside", ["pin", outside]),
            ("pin of a .. escape", ["pin", escape]),
            ("explain outside", ["explain", "/etc/passwd"]),
            ("migrate outside", ["migrate", "--now", outside]),
            ("an overlong path", ["where", m.p("x" * 300)]),
            ("a path over PATH_MAX", ["where", m.p(*(["d" * 200] * 30))]),
            ("an empty path", ["where", ""]),
        ]
        for what, args in cases:
            rc, out, err = _ctl(m, *args)
            pr.check(rc != 0, "%s: dfsctl %s exit status 0" % (what, args))
            pr.check(err.startswith("dfsctl: ") and err.count("\n") == 1,
                     "%s: one line of error on stderr: %r" % (what, err))
        # the symlink itself is a name in the mount, and stays one
        rc, out, err = _ctl(m, "where", m.p("link-out"))
        pr.eq(rc, 0, "where of a symlink in the mount: %r" % err)
        pr.eq(read_file(outside), b"not dfs's", "the outside file")
        pr.eq(os.readlink(m.p("link-out")), outside, "the symlink")
        rc, out, err = _ctl(m, "pins")
        pr.eq((rc, out.strip()), (0, "no pinned paths"), "no pin came of it")
        rc, out, err = _ctl(m, "status")
        pr.eq(rc, 0, "status after all that: %r" % err)
        pr.eq(read_file(m.p("in")), b"inside", "a file in the mount")
        pr.done()
