"""Error codes as a local filesystem gives them: each call is made on a plain
directory and on the mount with the same layout, and must fail alike.

In the mount the layout is split: the names without a prefix were placed on
tier 1 before mounting, the "m"-prefixed ones were made through the mount.
"""

import errno
import os

from dfstest import Mount, PlainDir, same_errno, write_file, check

LONG = "L" * 256
MAX = "M" * 255


def _layout(mk):
    """mk(kind, path): builds the fixture through a function that knows
    where each name goes."""
    for pfx in ("", "m"):
        mk("file", pfx + "file")
        mk("dir", pfx + "dir")
        mk("dir", pfx + "dir/inner")
        mk("dir", pfx + "full")
        mk("file", pfx + "full/x")
        mk("dir", pfx + "empty")
        mk("dir", pfx + "empty2")
        mk("symlink", pfx + "link")


def _make(root, kind, rel):
    p = os.path.join(root, rel)
    if kind == "file":
        write_file(p, "data")
    elif kind == "dir":
        os.mkdir(p)
    else:
        os.symlink("file", p)


class _Both:
    """A plain dir and a mount holding the same layout."""

    def __enter__(self):
        self.plain = PlainDir().__enter__()
        _layout(lambda k, r: _make(self.plain.root, k, r))

        def pop(m):
            _layout(lambda k, r: None if r.startswith("m") else
                    _make(m.t(1, ""), k, r))
        self.mount = Mount(ntiers=2, populate=pop)
        try:
            self.mount.__enter__()
            _layout(lambda k, r: _make(self.mount.mnt, k, r)
                    if r.startswith("m") else None)
        except BaseException:
            self.plain.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            return self.mount.__exit__(*exc)
        finally:
            self.plain.__exit__(None, None, None)

    def check(self, want, cases):
        """cases: (description, op) where op takes the root and names a
        tier-1 object as `{}` (the prefix, "" or "m")."""
        failures = []
        for what, op in cases:
            for pfx in ("", "m"):
                def run(root, op=op, pfx=pfx):
                    return op(root, pfx)
                desc = "%s [%s]" % (what, "made through the mount" if pfx
                                    else "pre-existing on tier 1")
                try:
                    same_errno(desc, run, self.plain.root, self.mount.mnt,
                               want=want)
                except AssertionError as e:
                    failures.append(str(e))
        check(not failures, "%d of %d cases differ:\n  %s" % (
            len(failures), 2 * len(cases), "\n  ".join(failures)))


def J(root, *parts):
    return os.path.join(root, *parts)


def _open(path, flags, mode=0o644):
    os.close(os.open(path, flags, mode))


def test_enoent():
    with _Both() as b:
        b.check(errno.ENOENT, [
            ("stat missing", lambda r, p: os.stat(J(r, p + "missing"))),
            ("lstat dir/missing", lambda r, p: os.lstat(J(r, p + "dir",
                                                           "missing"))),
            ("open missing", lambda r, p: _open(J(r, p + "missing"),
                                                os.O_RDONLY)),
            ("unlink missing", lambda r, p: os.unlink(J(r, p + "missing"))),
            ("rmdir missing", lambda r, p: os.rmdir(J(r, p + "missing"))),
            ("rename missing", lambda r, p: os.rename(J(r, p + "missing"),
                                                      J(r, p + "other"))),
            ("rename into missing dir", lambda r, p: os.rename(
                J(r, p + "file"), J(r, p + "nodir", "x"))),
            ("mkdir in missing dir", lambda r, p: os.mkdir(
                J(r, p + "missing", "x"))),
            ("create in missing dir", lambda r, p: _open(
                J(r, p + "missing", "x"), os.O_CREAT | os.O_WRONLY)),
            ("chmod missing", lambda r, p: os.chmod(J(r, p + "missing"),
                                                    0o600)),
            ("readlink missing", lambda r, p: os.readlink(
                J(r, p + "missing"))),
            ("link missing", lambda r, p: os.link(J(r, p + "missing"),
                                                  J(r, p + "new"))),
            ("symlink in missing dir", lambda r, p: os.symlink(
                "x", J(r, p + "missing", "x"))),
            ("getxattr missing", lambda r, p: os.getxattr(
                J(r, p + "missing"), "user.x")),
        ])


def test_eexist():
    with _Both() as b:
        b.check(errno.EEXIST, [
            ("mkdir onto file", lambda r, p: os.mkdir(J(r, p + "file"))),
            ("mkdir onto dir", lambda r, p: os.mkdir(J(r, p + "dir"))),
            ("mkdir onto symlink", lambda r, p: os.mkdir(J(r, p + "link"))),
            ("O_CREAT|O_EXCL file", lambda r, p: _open(
                J(r, p + "file"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)),
            ("O_CREAT|O_EXCL dir", lambda r, p: _open(
                J(r, p + "dir"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)),
            ("symlink onto file", lambda r, p: os.symlink(
                "x", J(r, p + "file"))),
            ("symlink onto dir", lambda r, p: os.symlink(
                "x", J(r, p + "dir"))),
            ("link onto file", lambda r, p: os.link(
                J(r, p + "full", "x"), J(r, p + "file"))),
            ("link onto other tier", lambda r, p: os.link(
                J(r, ("m" if not p else "") + "file"), J(r, p + "file"))),
            ("mkfifo onto file", lambda r, p: os.mkfifo(J(r, p + "file"))),
            ("mknod onto dir", lambda r, p: os.mknod(J(r, p + "dir"))),
        ])


def test_enotempty():
    with _Both() as b:
        b.check(errno.ENOTEMPTY, [
            ("rmdir full", lambda r, p: os.rmdir(J(r, p + "full"))),
            ("rmdir dir with subdir", lambda r, p: os.rmdir(J(r, p + "dir"))),
            ("rename empty onto full", lambda r, p: os.rename(
                J(r, p + "empty"), J(r, p + "full"))),
            ("rename empty onto other tier's full", lambda r, p: os.rename(
                J(r, p + "empty"), J(r, ("m" if not p else "") + "full"))),
        ])


def test_eisdir():
    with _Both() as b:
        b.check(errno.EISDIR, [
            ("open dir O_WRONLY", lambda r, p: _open(J(r, p + "dir"),
                                                     os.O_WRONLY)),
            ("open dir O_RDWR", lambda r, p: _open(J(r, p + "dir"),
                                                   os.O_RDWR)),
            ("O_CREAT on dir", lambda r, p: _open(
                J(r, p + "dir"), os.O_CREAT | os.O_WRONLY)),
            ("unlink dir", lambda r, p: os.unlink(J(r, p + "dir"))),
            ("rename file onto dir", lambda r, p: os.rename(
                J(r, p + "file"), J(r, p + "empty"))),
            ("rename file onto other tier's dir", lambda r, p: os.rename(
                J(r, p + "file"), J(r, ("m" if not p else "") + "empty2"))),
            ("truncate dir", lambda r, p: os.truncate(J(r, p + "dir"), 0)),
        ])


def test_enotdir():
    with _Both() as b:
        b.check(errno.ENOTDIR, [
            ("stat file/x", lambda r, p: os.stat(J(r, p + "file", "x"))),
            ("open file/x", lambda r, p: _open(J(r, p + "file", "x"),
                                               os.O_RDONLY)),
            ("create file/x", lambda r, p: _open(J(r, p + "file", "x"),
                                                 os.O_CREAT | os.O_WRONLY)),
            ("mkdir file/x", lambda r, p: os.mkdir(J(r, p + "file", "x"))),
            ("rmdir file", lambda r, p: os.rmdir(J(r, p + "file"))),
            ("rmdir symlink", lambda r, p: os.rmdir(J(r, p + "link"))),
            ("rename dir onto file", lambda r, p: os.rename(
                J(r, p + "empty"), J(r, p + "file"))),
            ("rename dir onto other tier's file", lambda r, p: os.rename(
                J(r, p + "empty2"), J(r, ("m" if not p else "") + "file"))),
            ("open file O_DIRECTORY", lambda r, p: _open(
                J(r, p + "file"), os.O_RDONLY | os.O_DIRECTORY)),
            ("listdir file", lambda r, p: os.listdir(J(r, p + "file"))),
            ("link to file/x", lambda r, p: os.link(
                J(r, p + "full", "x"), J(r, p + "file", "x"))),
        ])


def test_enametoolong():
    with _Both() as b:
        b.check(errno.ENAMETOOLONG, [
            ("stat (lookup)", lambda r, p: os.stat(J(r, p + "dir", LONG))),
            ("lstat in root", lambda r, p: os.lstat(J(r, LONG))),
            ("open", lambda r, p: _open(J(r, p + "dir", LONG), os.O_RDONLY)),
            ("create", lambda r, p: _open(J(r, p + "dir", LONG),
                                          os.O_CREAT | os.O_WRONLY)),
            ("mkdir", lambda r, p: os.mkdir(J(r, p + "dir", LONG))),
            ("rename target", lambda r, p: os.rename(J(r, p + "file"),
                                                     J(r, p + "dir", LONG))),
            ("rename source", lambda r, p: os.rename(J(r, p + "dir", LONG),
                                                     J(r, p + "x"))),
            ("symlink", lambda r, p: os.symlink("x", J(r, p + "dir", LONG))),
            ("link", lambda r, p: os.link(J(r, p + "file"),
                                          J(r, p + "dir", LONG))),
            ("mkfifo", lambda r, p: os.mkfifo(J(r, p + "dir", LONG))),
            ("unlink", lambda r, p: os.unlink(J(r, p + "dir", LONG))),
            ("rmdir", lambda r, p: os.rmdir(J(r, p + "dir", LONG))),
        ])
        # NAME_MAX itself is fine, on both
        b.check(0, [
            ("create 255", lambda r, p: _open(J(r, p + "dir", MAX),
                                              os.O_CREAT | os.O_WRONLY)),
            ("stat 255", lambda r, p: os.stat(J(r, p + "dir", MAX))),
            ("rename to 255", lambda r, p: os.rename(
                J(r, p + "dir", MAX), J(r, p + "empty", MAX))),
            ("mkdir 255", lambda r, p: os.mkdir(J(r, p + "dir", MAX))),
        ])


def test_einval_rename_into_itself():
    with _Both() as b:
        b.check(errno.EINVAL, [
            ("rename dir into its subdir", lambda r, p: os.rename(
                J(r, p + "dir"), J(r, p + "dir", "inner", "x"))),
        ])
