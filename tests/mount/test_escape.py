"""Symlink escapes: a symlink stored in a tier is served as a symlink and
never traversed by dfs itself.

The kernel follows symlinks on paths through the mount, and that is allowed:
`mnt/a/x` with `a -> <root>/outside` is the local file `<root>/outside/x`.
What must never happen is dfs opening, listing, creating or removing
anything beneath a symlink on a tier. To tell the two apart the tests
 - work relative to a directory fd opened through the mount with
   O_NOFOLLOW, so the kernel hands dfs a node id and follows nothing, and
 - run path-based loops as an unprivileged user while `<root>/outside` is
   root-only (0700): the kernel, following a link for that user, gets
   EACCES; only dfs (running as root) could reach the marker.
`<root>/outside` holds one file with a unique name; it must never be listed,
read, changed or joined by new files.

The race mounts with entry_timeout=0,attr_timeout=0 so that every path walk
is a fresh LOOKUP in dfs, not a kernel cache hit.

Environment: DFS_ESCAPE_SECONDS (per race test, default 8, in
four phases), DFS_ESCAPE_ITERS (per phase, default 200000).
"""

import errno
import os
import stat
import threading
import time
import uuid

from dfstest import (Mount, TestFailure, as_user, check, eq, notes,
                     renameat2, RENAME_EXCHANGE, USER_UID, USER_GID)

ODIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def env_int(name, default):
    s = os.environ.get(name)
    return int(s) if s else default


class Outside:
    """<root>/outside: the sentinel directory beside the tiers."""

    def __init__(self, root):
        self.path = os.path.join(root, "outside")
        self.marker = "marker-" + uuid.uuid4().hex
        self.content = ("MARKER " + uuid.uuid4().hex + "\n").encode()
        os.mkdir(self.path)
        with open(os.path.join(self.path, self.marker), "wb") as f:
            f.write(self.content)
        os.chmod(self.path, 0o700)
        self.snap = self.snapshot()

    def snapshot(self):
        st = os.lstat(self.path)
        mk = os.lstat(os.path.join(self.path, self.marker))
        return (sorted(os.listdir(self.path)), st.st_mode, st.st_uid,
                st.st_mtime_ns, st.st_ctime_ns, mk.st_mode, mk.st_uid,
                mk.st_size, mk.st_mtime_ns, mk.st_ctime_ns)

    def verify(self, what):
        now = self.snapshot()
        if now != self.snap:
            raise TestFailure(
                "%s: %s changed behind the symlink:\n  before %r\n  after  %r"
                % (what, self.path, self.snap, now))
        with open(os.path.join(self.path, self.marker), "rb") as f:
            eq(f.read(), self.content, "%s: marker content" % what)


def readlink_is(m, name, target):
    p = m.p(name)
    st = os.lstat(p)
    check(stat.S_ISLNK(st.st_mode),
          "lstat(%s): mode %o is not a symlink" % (name, st.st_mode))
    eq(os.readlink(p), target, "readlink(%s)" % name)
    eq(st.st_size, len(os.fsencode(target)), "lstat(%s).st_size" % name)


# --- symlinks in tiers are served as symlinks ---------------------------------

def test_escape_symlinks_served():
    box = {}

    def populate(m):
        box["out"] = Outside(m.root)
        os.symlink("/etc", m.t(0, "etc"))
        os.symlink(box["out"].path, m.t(0, "a"))
        os.symlink("../../", m.t(1, "b"))
        os.makedirs(m.t(1, "sub"))
        os.symlink("/etc", m.t(1, "sub", "c"))
        os.symlink(box["out"].path, m.t(1, "sub", "o"))

    with Mount(ntiers=2, populate=populate) as m:
        out = box["out"]
        readlink_is(m, "etc", "/etc")
        readlink_is(m, "a", out.path)
        readlink_is(m, "b", "../../")
        readlink_is(m, "sub/c", "/etc")
        readlink_is(m, "sub/o", out.path)

        kinds = {e.name: e.is_symlink() for e in os.scandir(m.p())}
        for n in ("etc", "a", "b"):
            check(kinds.get(n) is True,
                  "readdir of the mount root: %s listed as %r, want a "
                  "symlink" % (n, kinds.get(n)))
        kinds = {e.name: e.is_symlink() for e in os.scandir(m.p("sub"))}
        eq(kinds, {"c": True, "o": True}, "readdir of sub")

        # O_NOFOLLOW on the link itself: ELOOP, as on any filesystem.
        for n in ("etc", "a", "b", "sub/o"):
            try:
                fd = os.open(m.p(n), os.O_RDONLY | os.O_NOFOLLOW)
                os.close(fd)
                raise TestFailure("open(%s, O_NOFOLLOW) succeeded" % n)
            except OSError as e:
                eq(errno.errorcode.get(e.errno), "ELOOP",
                   "open(%s, O_NOFOLLOW)" % n)

        # Attribute changes with NOFOLLOW apply to the link on the tier.
        os.chown(m.p("a"), 4242, 4343, follow_symlinks=False)
        st = os.lstat(m.t(0, "a"))
        eq((st.st_uid, st.st_gid), (4242, 4343), "lchown: owner of t0/a")
        os.utime(m.p("sub/o"), ns=(1000000000, 2000000000),
                 follow_symlinks=False)
        eq(os.lstat(m.t(1, "sub", "o")).st_mtime_ns, 2000000000,
           "lutimes: mtime of t1/sub/o")
        out.verify("lchown/lutimes of a link")

        # The kernel follows a through the mount: a/x is outside/x, made by
        # the kernel on the local filesystem; no tier gains anything and a
        # stays a symlink.
        before = {i: sorted(os.listdir(t)) for i, t in enumerate(m.tiers)}
        with open(m.p("a", "x"), "w") as f:
            f.write("via kernel\n")
        check(os.path.exists(os.path.join(out.path, "x")),
              "a/x through the mount did not land in outside/x")
        os.unlink(os.path.join(out.path, "x"))
        after = {i: sorted(os.listdir(t)) for i, t in enumerate(m.tiers)}
        eq(after, before, "tier contents after creating a/x")
        check(os.path.islink(m.t(0, "a")), "t0/a is no longer a symlink")
        out.snap = out.snapshot()

        # Renaming and removing a link never touches its target.
        os.rename(m.p("a"), m.p("a2"))
        readlink_is(m, "a2", out.path)
        check(os.path.islink(m.t(0, "a2")), "t0/a2 is not a symlink")
        os.rename(m.p("sub/o"), m.p("sub/o2"))
        readlink_is(m, "sub/o2", out.path)
        os.unlink(m.p("a2"))
        os.unlink(m.p("sub/o2"))
        check(not os.path.lexists(m.t(0, "a2")), "t0/a2 still there")
        out.verify("rename and unlink of links")
        check(os.path.isdir("/etc") and os.path.exists("/etc/passwd"),
              "/etc damaged?!")


# --- a symlink planted on tier 0 where dfs must create a parent ---------------

def test_escape_planted_parent():
    """A directory known to dfs lives on tier 1 only; behind dfs's back a
    symlink to outside appears at its name (or a parent's) on tier 0.
    Creating in it makes dfs build the parents on tier 0: it must not
    follow the planted link."""
    box = {}

    def populate(m):
        box["out"] = Outside(m.root)
        os.makedirs(m.t(1, "p", "q", "r"))
        os.makedirs(m.t(1, "s", "q"))
        with open(m.t(1, "p", "q", "r", "old"), "w") as f:
            f.write("old\n")
        os.makedirs(m.t(0, "s"))

    with Mount(ntiers=2, populate=populate) as m:
        out = box["out"]
        fds = {}
        try:
            fds["p"] = os.open(m.p("p"), ODIR)
            fds["pqr"] = os.open(m.p("p", "q", "r"), ODIR)
            fds["sq"] = os.open(m.p("s", "q"), ODIR)
            # planted behind dfs's back: a top-level parent and an
            # intermediate one
            os.symlink(out.path, m.t(0, "p"))
            os.symlink(out.path, m.t(0, "s", "q"))
            results = []
            for key, fd in sorted(fds.items()):
                for what, fn in creators():
                    try:
                        fn(fd)
                        results.append("%s/%s: created" % (key, what))
                    except OSError as e:
                        results.append("%s/%s: %s" % (
                            key, what, errno.errorcode.get(e.errno, e.errno)))
                    try:
                        names = os.listdir(fd)
                    except OSError:
                        names = []
                    check(out.marker not in names,
                          "listing %s through dfs shows the marker of "
                          "outside/: %r" % (key, names))
                    try:
                        os.stat(out.marker, dir_fd=fd, follow_symlinks=False)
                        raise TestFailure("%s/%s found through dfs" %
                                          (key, out.marker))
                    except FileNotFoundError:
                        pass
            notes.append("planted parent: " + "; ".join(results))
            print("planted parent: " + "; ".join(results))
            out.verify("creating beneath a planted tier-0 symlink")
            for lnk in (m.t(0, "p"), m.t(0, "s", "q")):
                check(os.path.islink(lnk), "%s no longer a symlink" % lnk)
        finally:
            for fd in fds.values():
                os.close(fd)
        for lnk in (m.t(0, "p"), m.t(0, "s", "q")):
            os.unlink(lnk)


def creators():
    def mkfile(fd):
        f = os.open("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644,
                    dir_fd=fd)
        try:
            os.write(f, b"new\n")
        finally:
            os.close(f)

    return [("file", mkfile),
            ("dir", lambda fd: os.mkdir("newdir", dir_fd=fd)),
            ("symlink", lambda fd: os.symlink("t", "newlink", dir_fd=fd)),
            ("fifo", lambda fd: os.mkfifo("newfifo", dir_fd=fd))]


# --- a directory replaced by a symlink behind dfs's back, then restored --------

def test_escape_dir_restored_after_symlink_swap():
    """The deterministic core of the race below: tier 1's directory d is
    exchanged for a symlink to outside and back. Through the mount (no
    kernel caching) d is first the directory, then the symlink (never its
    target's content), then the directory again with all its entries."""
    box = {}

    def populate(m):
        box["out"] = Outside(m.root)
        os.makedirs(m.t(1, "d", "sub"))
        with open(m.t(1, "d", "f1"), "w") as f:
            f.write("f1\n")
        with open(m.t(1, "d", "sub", "inner"), "w") as f:
            f.write("inner\n")
        os.symlink(box["out"].path, m.t(1, ".d.swap"))

    def swap(m):
        renameat2(m.t(1, "d"), m.t(1, ".d.swap"), RENAME_EXCHANGE)

    with Mount(ntiers=2, populate=populate,
               opts="entry_timeout=0,attr_timeout=0") as m:
        out = box["out"]
        eq(sorted(os.listdir(m.p("d"))), ["f1", "sub"], "d before the swap")
        swap(m)
        readlink_is(m, "d", out.path)
        swap(m)
        check(stat.S_ISDIR(os.lstat(m.p("d")).st_mode),
              "d is not a directory again after the swap back")
        eq(sorted(os.listdir(m.p("d"))), ["f1", "sub"],
           "listing of d after it was a symlink and is a directory again")
        eq(sorted(os.listdir(m.p("d", "sub"))), ["inner"],
           "listing of d/sub after the swap back")
        with open(m.p("d", "sub", "inner")) as f:
            eq(f.read(), "inner\n", "d/sub/inner after the swap back")
        out.verify("swap and restore")


# --- a directory swapped for a symlink while paths under it resolve -----------

class Swapper(threading.Thread):
    """Exchange tier k's `d` (a directory) and `.d.swap` (a symlink to
    outside) with RENAME_EXCHANGE, atomically, over and over."""

    def __init__(self, m, k):
        super().__init__(daemon=True)
        self.a = m.t(k, "d")
        self.b = m.t(k, ".d.swap")
        self.stop = threading.Event()
        self.swaps = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                renameat2(self.a, self.b, RENAME_EXCHANGE)
                self.swaps += 1
        except BaseException as e:       # reported by the test
            self.error = e

    def finish(self):
        self.stop.set()
        self.join(10)
        if os.path.islink(self.a):
            renameat2(self.a, self.b, RENAME_EXCHANGE)
        if self.error is not None:
            raise TestFailure("swapper failed: %r" % self.error)


def race_populate(k, box):
    def populate(m):
        out = box["out"] = Outside(m.root)
        for i in range(m.ntiers):
            if i == k or i == 1:
                os.makedirs(m.t(i, "d", "sub"))
                os.chmod(m.t(i, "d"), 0o777)
                with open(m.t(i, "d", "f%d" % i), "w") as f:
                    f.write("tier %d\n" % i)
                with open(m.t(i, "d", "sub", "inner"), "w") as f:
                    f.write("inner\n")
        box["allowed"] = {"sub"} | {"f%d" % i for i in (k, 1)}
        os.symlink(out.path, m.t(k, ".d.swap"))
    return populate


def root_loop(m, out, allowed, iters, seconds, creating):
    """As root, through an O_NOFOLLOW directory fd: the kernel follows
    nothing, so anything of outside/ seen here came through dfs."""
    stats = {}

    def count(k):
        stats[k] = stats.get(k, 0) + 1

    def bad(msg):
        raise TestFailure("race (root, fd-relative), iteration %d: %s"
                          % (i, msg))

    deadline = time.monotonic() + seconds
    for i in range(iters):
        if time.monotonic() > deadline:
            break
        try:
            dfd = os.open(m.p("d"), ODIR)
        except OSError as e:
            count("open d: " + errno.errorcode.get(e.errno, str(e.errno)))
            continue
        count("open d: ok")
        try:
            try:
                names = set(os.listdir(dfd))
                count("list: ok")
                if out.marker in names:
                    bad("listing of d shows outside's marker: %r" % names)
                odd = {n for n in names
                       if n not in allowed and not n.startswith("n-")}
                if odd:
                    bad("listing of d shows unknown names %r" % odd)
            except OSError as e:
                count("list: " + errno.errorcode.get(e.errno, "?"))
            for flags in (os.O_RDONLY, os.O_WRONLY | os.O_APPEND):
                try:
                    fd = os.open(out.marker, flags, dir_fd=dfd)
                    os.close(fd)
                    bad("opened d/%s (flags %#x) through dfs"
                        % (out.marker, flags))
                except FileNotFoundError:
                    pass
                except OSError as e:
                    count("open marker: " + errno.errorcode.get(e.errno, "?"))
            try:
                os.stat(out.marker, dir_fd=dfd, follow_symlinks=False)
                bad("stat of d/%s succeeded through dfs" % out.marker)
            except OSError:
                pass
            try:
                os.unlink(out.marker, dir_fd=dfd)
                bad("unlinked d/%s through dfs" % out.marker)
            except OSError:
                pass
            name = "n-%d" % i
            try:
                if not creating:
                    raise FileExistsError(errno.EEXIST, "skipped")
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644, dir_fd=dfd)
                os.write(fd, b"x")
                os.close(fd)
                count("create: ok")
                os.unlink(name, dir_fd=dfd)
            except FileExistsError:
                pass
            except OSError as e:
                count("create: " + errno.errorcode.get(e.errno, "?"))
            try:
                if creating:
                    os.mkdir("n-dir", dir_fd=dfd)
                    os.rmdir("n-dir", dir_fd=dfd)
            except OSError as e:
                count("mkdir: " + errno.errorcode.get(e.errno, "?"))
            try:
                sfd = os.open("sub", ODIR, dir_fd=dfd)
                try:
                    sub = os.listdir(sfd)
                    if sub != ["inner"]:
                        bad("listing of d/sub: %r" % sub)
                finally:
                    os.close(sfd)
            except OSError as e:
                count("sub: " + errno.errorcode.get(e.errno, "?"))
        finally:
            os.close(dfd)
    return i + 1, stats


def user_loop(mnt, marker, content, allowed, iters, seconds, creating):
    """As an unprivileged user, by path: the kernel may follow d to
    outside/ but gets EACCES there; any sight of the marker is dfs's."""
    violations = []
    stats = {}

    def count(k):
        stats[k] = stats.get(k, 0) + 1

    d = os.path.join(mnt, "d")
    deadline = time.monotonic() + seconds
    pid = os.getpid()
    i = 0
    for i in range(iters):
        if time.monotonic() > deadline or len(violations) > 5:
            break
        try:
            names = os.listdir(d)
            count("list: ok")
            if marker in names:
                violations.append("iteration %d: listing of mnt/d shows "
                                  "outside's marker: %r" % (i, names))
            odd = [n for n in names if n not in allowed and
                   not n.startswith(("u-", "n-"))]
            if odd:
                violations.append("iteration %d: listing of mnt/d shows "
                                  "unknown names %r" % (i, odd))
        except OSError as e:
            count("list: " + errno.errorcode.get(e.errno, "?"))
        try:
            with open(os.path.join(d, marker), "rb") as f:
                data = f.read()
            violations.append("iteration %d: read mnt/d/%s: %r"
                              % (i, marker, data))
        except OSError:
            pass
        try:
            os.lstat(os.path.join(d, marker))
            violations.append("iteration %d: lstat of mnt/d/%s succeeded"
                              % (i, marker))
        except OSError:
            pass
        p = os.path.join(d, "u-%d-%d" % (pid, i))
        try:
            if not creating:
                raise FileExistsError(errno.EEXIST, "skipped")
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            count("create: ok")
            os.unlink(p)
        except FileExistsError:
            pass
        except OSError as e:
            count("create: " + errno.errorcode.get(e.errno, "?"))
        try:
            with open(os.path.join(d, "sub", "inner"), "rb") as f:
                if f.read() == content:
                    violations.append("iteration %d: d/sub/inner has the "
                                      "marker's content" % i)
        except OSError:
            pass
    return i + 1, stats, violations


def race(k):
    box = {}
    iters = env_int("DFS_ESCAPE_ITERS", 200000)
    seconds = env_int("DFS_ESCAPE_SECONDS", 8)
    with Mount(ntiers=2, populate=race_populate(k, box),
               opts="allow_other,entry_timeout=0,attr_timeout=0") as m:
        out = box["out"]
        # Is outside really closed to the test user, and the mount open to
        # it? (else the user loop proves nothing)
        mnt0 = m.mnt
        def probe():
            try:
                os.listdir(out.path)
                return "readable"
            except PermissionError:
                return "denied"
        eq(as_user(probe), "denied", "outside/ as the test user")
        eq(as_user(lambda: sorted(os.listdir(os.path.join(mnt0, "d",
                                                          "sub")))),
           ["inner"], "mnt/d/sub as the test user")

        # Read-only phases first: a create makes d on tier 0 (parents are
        # made there), after which d no longer lives on tier k alone.
        sw = Swapper(m, k)
        sw.start()
        summary = []
        viol = []
        try:
            for creating in (False, True):
                n, st = root_loop(m, out, box["allowed"], iters,
                                  seconds / 4, creating)
                summary.append("root fd-relative%s: %d iterations %s" % (
                    " +create" if creating else "", n, sorted(st.items())))
                mnt, marker, content = m.mnt, out.marker, out.content
                allowed = box["allowed"]
                n, st, v = as_user(
                    lambda: user_loop(mnt, marker, content, allowed, iters,
                                      seconds / 4, creating),
                    timeout=seconds + 30)
                summary.append("uid %d by path%s: %d iterations %s" % (
                    USER_UID, " +create" if creating else "", n,
                    sorted(st.items())))
                viol += v
                if not st.get("list: ok"):
                    viol.append("the user never listed mnt/d as a directory"
                                " (%s): the loop proved nothing" %
                                sorted(st.items()))
        finally:
            sw.finish()
        if viol:
            raise TestFailure("race (user %d, by path) on tier %d:\n  %s"
                              % (USER_UID, k, "\n  ".join(viol)))
        out.verify("race on tier %d" % k)
        eq(sorted(os.listdir(m.t(k, "d", "sub"))), ["inner"],
           "t%d/d/sub" % k)
        print("escape race on tier %d: %d swaps\n  %s"
              % (k, sw.swaps, "\n  ".join(summary)))


def test_escape_race_tier1():
    race(1)


def test_escape_race_tier0():
    race(0)
