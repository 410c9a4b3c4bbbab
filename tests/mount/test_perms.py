"""EACCES/EPERM and ownership for a non-root user on an allow_other mount,
compared with the same calls on a plain directory.

The user is uid 12345, gid 12345, with the supplementary group 23456 and not
in 34567 (dfstest.USER_*).  Objects without a prefix are on tier 1 before
mounting; "m"-prefixed ones are made through the mount by root.
"""

import errno
import os
import stat

from dfstest import (Mount, PlainDir, as_user, check, eq, ename, errno_of,
                     mount_entry, utimensat, write_file, USER_UID, USER_GID,
                     USER_GROUP, OTHER_GROUP, UTIME_NOW)

FIXTURE = [
    # name, kind, uid, gid, mode
    ("rootdir", "dir", 0, 0, 0o755),
    ("rootdir/f", "file", 0, 0, 0o644),
    ("rootfile", "file", 0, 0, 0o644),
    ("secret", "file", 0, 0, 0o600),
    ("closed", "dir", 0, 0, 0o700),
    ("userfile", "file", USER_UID, USER_GID, 0o644),
    ("userfile2", "file", USER_UID, USER_GID, 0o644),
    ("grpdir", "dir", 0, USER_GROUP, 0o770),
    ("sgid", "dir", 0, USER_GROUP, 0o2775),
    ("pub", "dir", 0, 0, 0o777),
    ("sticky", "dir", 0, 0, 0o1777),
    ("sticky/rootfile", "file", 0, 0, 0o666),
    ("suid", "file", 0, 0, 0o4777),
    ("sgidx", "file", 0, 0, 0o2777),
    ("suidown", "file", USER_UID, USER_GID, 0o4755),
]


def _make(root, pfx, names=None):
    for name, kind, uid, gid, mode in FIXTURE:
        p = os.path.join(root, pfx + name)
        if kind == "dir":
            os.mkdir(p)
        else:
            write_file(p, "data of " + name)
        os.chown(p, uid, gid)
        os.chmod(p, mode)


def _user_ops(root, pfx):
    """Runs as the test user; returns {case: errno or value}."""
    os.umask(0o022)
    J = lambda *a: os.path.join(root, *a)   # noqa: E731
    r = {}

    def t(name, fn, *a):
        r[name] = errno_of(fn, *a)

    def st(p, *attrs):
        try:
            s = os.lstat(p)
        except OSError as e:
            return ename(e.errno)
        return tuple(oct(getattr(s, a)) if a == "st_mode" else getattr(s, a)
                     for a in attrs)

    def create(p):
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o664))

    t("create in root-owned 0755 dir", create, J(pfx + "rootdir", "u"))
    t("mkdir in root-owned 0755 dir", os.mkdir, J(pfx + "rootdir", "ud"))
    t("unlink in root-owned 0755 dir", os.unlink, J(pfx + "rootdir", "f"))
    t("rename out of root-owned dir", os.rename, J(pfx + "rootdir", "f"),
      J(pfx + "pub", "stolen"))
    t("chmod root file", os.chmod, J(pfx + "rootfile"), 0o666)
    t("chown root file to self", os.chown, J(pfx + "rootfile"), USER_UID, -1)
    t("write root file", lambda: os.close(os.open(J(pfx + "rootfile"),
                                                  os.O_WRONLY)))
    t("truncate root file", os.truncate, J(pfx + "rootfile"), 0)
    t("read 0600 root file", lambda: os.close(os.open(J(pfx + "secret"),
                                                      os.O_RDONLY)))
    t("list 0700 root dir", os.listdir, J(pfx + "closed"))
    t("stat in 0700 root dir", os.stat, J(pfx + "closed", "x"))
    t("utime explicit on root file", os.utime, J(pfx + "rootfile"),
      (1, 1))
    t("utime NOW on root file", utimensat, J(pfx + "rootfile"),
      UTIME_NOW, UTIME_NOW)
    t("setxattr on root file", os.setxattr, J(pfx + "rootfile"), "user.u",
      b"v")
    t("chmod own file", os.chmod, J(pfx + "userfile"), 0o640)
    t("utime explicit on own file", os.utime, J(pfx + "userfile"), (5, 5))
    t("chown own file to supplementary group", os.chown,
      J(pfx + "userfile"), -1, USER_GROUP)
    r["gid after chown"] = st(J(pfx + "userfile"), "st_gid")
    t("chown own file to non-member group", os.chown, J(pfx + "userfile2"),
      -1, OTHER_GROUP)
    t("chown own file to root", os.chown, J(pfx + "userfile2"), 0, -1)
    r["owner of userfile2"] = st(J(pfx + "userfile2"), "st_uid", "st_gid")
    t("create via supplementary group", create, J(pfx + "grpdir", "g"))
    r["owner in grpdir"] = st(J(pfx + "grpdir", "g"), "st_uid", "st_gid")
    t("create in setgid dir", create, J(pfx + "sgid", "f"))
    r["file in setgid dir"] = st(
        J(pfx + "sgid", "f"), "st_uid", "st_gid", "st_mode")
    t("mkdir in setgid dir", os.mkdir, J(pfx + "sgid", "d"), 0o755)
    r["dir in setgid dir"] = st(
        J(pfx + "sgid", "d"), "st_uid", "st_gid", "st_mode")
    t("create in 0777 dir", create, J(pfx + "pub", "u"))
    r["file in 0777 dir"] = st(
        J(pfx + "pub", "u"), "st_uid", "st_gid", "st_mode")
    t("mkdir in 0777 dir", os.mkdir, J(pfx + "pub", "ud"), 0o775)
    r["dir in 0777 dir"] = st(
        J(pfx + "pub", "ud"), "st_uid", "st_gid", "st_mode")
    t("symlink in 0777 dir", os.symlink, "x", J(pfx + "pub", "ul"))
    r["symlink in 0777 dir"] = st(
        J(pfx + "pub", "ul"), "st_uid", "st_gid")
    t("unlink in sticky dir", os.unlink, J(pfx + "sticky", "rootfile"))
    t("rename in sticky dir", os.rename, J(pfx + "sticky", "rootfile"),
      J(pfx + "sticky", "mine"))
    t("write to sticky dir file", lambda: os.close(os.open(
        J(pfx + "sticky", "rootfile"), os.O_WRONLY)))
    t("write to world-writable setuid file", write_file, J(pfx + "suid"),
      "w")
    r["mode after write"] = st(J(pfx + "suid"), "st_mode")
    t("truncate world-writable setgid file", os.truncate, J(pfx + "sgidx"),
      1)
    r["mode after truncate"] = st(J(pfx + "sgidx"), "st_mode")
    t("chmod g+s own file, group not own", lambda: (
        os.chown(J(pfx + "userfile"), -1, USER_GROUP),
        os.chmod(J(pfx + "userfile"), 0o2755)))
    r["mode after chmod g+s"] = st(J(pfx + "userfile"), "st_mode")
    # userfile is 02755 by now
    r["access"] = tuple(os.access(J(pfx + n), a) for n in
                        ("rootfile", "secret", "userfile", "rootdir",
                         "closed", "grpdir")
                        for a in (os.R_OK, os.W_OK, os.X_OK))
    return r


EXPECT = {
    "create in root-owned 0755 dir": errno.EACCES,
    "mkdir in root-owned 0755 dir": errno.EACCES,
    "unlink in root-owned 0755 dir": errno.EACCES,
    "rename out of root-owned dir": errno.EACCES,
    "chmod root file": errno.EPERM,
    "chown root file to self": errno.EPERM,
    "write root file": errno.EACCES,
    "truncate root file": errno.EACCES,
    "read 0600 root file": errno.EACCES,
    "list 0700 root dir": errno.EACCES,
    "stat in 0700 root dir": errno.EACCES,
    "utime explicit on root file": errno.EPERM,
    "utime NOW on root file": errno.EACCES,
    "setxattr on root file": errno.EACCES,
    "chmod own file": 0,
    "utime explicit on own file": 0,
    "chown own file to supplementary group": 0,
    "gid after chown": (USER_GROUP,),
    "chown own file to non-member group": errno.EPERM,
    "chown own file to root": errno.EPERM,
    "owner of userfile2": (USER_UID, USER_GID),
    "create via supplementary group": 0,
    "owner in grpdir": (USER_UID, USER_GID),
    "create in setgid dir": 0,
    "file in setgid dir": (USER_UID, USER_GROUP, oct(stat.S_IFREG | 0o644)),
    "mkdir in setgid dir": 0,
    "dir in setgid dir": (USER_UID, USER_GROUP,
                          oct(stat.S_IFDIR | stat.S_ISGID | 0o755)),
    "create in 0777 dir": 0,
    "file in 0777 dir": (USER_UID, USER_GID, oct(stat.S_IFREG | 0o644)),
    "mkdir in 0777 dir": 0,
    "dir in 0777 dir": (USER_UID, USER_GID, oct(stat.S_IFDIR | 0o755)),
    "symlink in 0777 dir": (USER_UID, USER_GID),
    "unlink in sticky dir": errno.EPERM,
    "rename in sticky dir": errno.EPERM,
    "write to sticky dir file": 0,
    "write to world-writable setuid file": 0,
    "mode after write": (oct(stat.S_IFREG | 0o777),),
    "truncate world-writable setgid file": 0,
    "mode after truncate": (oct(stat.S_IFREG | 0o777),),
    "chmod g+s own file, group not own": 0,
    "mode after chmod g+s": (oct(stat.S_IFREG | 0o2755),),
    "access": (True, False, False, False, False, False,
               True, True, True, True, False, True,
               False, False, False, True, True, True),
}


def _show(v):
    return ename(v) if isinstance(v, int) and v < 200 else repr(v)


def test_permissions_as_non_root_user():
    with PlainDir() as plain:
        _make(plain.root, "")
        want = as_user(lambda: _user_ops(plain.root, ""))
        bad = ["%s: plain dir gives %s, test expects %s" %
               (k, _show(want.get(k)), _show(v))
               for k, v in EXPECT.items() if want.get(k) != v]
        check(not bad, "the test is wrong about ext4:\n  " + "\n  ".join(bad))

    with Mount(ntiers=2, opts="allow_other",
               populate=lambda m: _make(m.t(1, ""), "")) as m:
        opts = mount_entry(m.mnt)[3].split(",")
        check("allow_other" in opts, "allow_other not in mount options %s"
              % opts)
        check("default_permissions" in opts,
              "-o allow_other does not imply default_permissions: %s" % opts)
        _make(m.mnt, "m")
        failures = []
        for pfx in ("", "m"):
            got = as_user(lambda: _user_ops(m.mnt, pfx))
            where = "made through the mount" if pfx else "on tier 1"
            for k, v in want.items():
                if got.get(k) != v:
                    failures.append("%s (%s): plain dir gives %s, dfs gives "
                                    "%s" % (k, where, _show(v),
                                            _show(got.get(k))))
            # what the user made is the user's on the backing tier too
            for name, owner in (("pub/u", (USER_UID, USER_GID)),
                                ("pub/ud", (USER_UID, USER_GID)),
                                ("pub/ul", (USER_UID, USER_GID)),
                                ("sgid/f", (USER_UID, USER_GROUP)),
                                ("sgid/d", (USER_UID, USER_GROUP))):
                p = m.t(0, pfx + name)
                try:
                    st = os.lstat(p)
                except OSError as e:
                    failures.append("%s (%s): not on tier 0: %s" % (
                        name, where, e))
                    continue
                if (st.st_uid, st.st_gid) != owner:
                    failures.append("%s (%s): backing owner %d:%d, want "
                                    "%d:%d" % ((name, where, st.st_uid,
                                                st.st_gid) + owner))
            st = os.stat(m.t(0, pfx + "sgid", "d")) \
                if os.path.isdir(m.t(0, pfx + "sgid", "d")) else None
            if st is not None and not st.st_mode & stat.S_ISGID:
                failures.append("sgid/d (%s): backing dir lacks setgid: %o"
                                % (where, st.st_mode))
        check(not failures, "\n  ".join([""] + failures))


def test_allow_other_lets_other_users_in():
    """Without allow_other a FUSE mount is the mounter's alone; with it, the
    test user reads a world-readable tier-1 file."""
    def pop(m):
        write_file(m.t(1, "hello"), "hi")
        os.chmod(m.t(1, "hello"), 0o644)
    with Mount(ntiers=2, opts="allow_other", populate=pop) as m:
        got = as_user(lambda: open(os.path.join(m.mnt, "hello")).read())
        eq(got, "hi", "read as another user")
    with Mount(ntiers=2, populate=pop) as m:
        got = as_user(lambda: errno_of(os.stat, os.path.join(m.mnt, "hello")))
        eq(ename(got), "EACCES", "without allow_other, other users")


def test_root_chown_clears_setuid_like_ext4():
    def run(root, pfx):
        p = os.path.join(root, pfx + "s")
        write_file(p, "x")
        os.chmod(p, 0o6755)
        os.chown(p, 1000, 1000)
        a = oct(os.stat(p).st_mode)
        os.chmod(p, 0o6755)
        write_file(os.path.join(root, pfx + "s"), "y")   # root writes
        return a, oct(os.stat(p).st_mode)
    with PlainDir() as plain:
        want = run(plain.root, "")
    eq(want, (oct(stat.S_IFREG | 0o755), oct(stat.S_IFREG | 0o6755)),
       "the test is wrong about ext4")

    def pop(m):
        write_file(m.t(1, "s"), "x")
    with Mount(ntiers=2, populate=pop) as m:
        eq(run(m.mnt, ""), want, "tier-1 file: mode after chown, after "
           "root's write")
        eq(run(m.mnt, "m"), want, "tier-0 file: mode after chown, after "
           "root's write")
