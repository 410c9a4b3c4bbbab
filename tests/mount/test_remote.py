"""A tier that is not a local file system: sshfs, through an sshd of the
test's own on 127.0.0.1 (sshtier.py), as tier 1.  sshfs takes no rename
flags, keeps st_nlink at 1, has no xattrs, keeps whole seconds, and makes
up inode numbers that change once the kernel forgets a file.

Migration to it and back keeps content, mode and inode number; dfsctl
status shows what it supports; a file keeps its inode number and its pin
across a cache drop and a remount of the tier; a hard-link group goes
down and comes back as one file; a move that fails is counted as an
error; a server that stops answering costs only its own files.
"""

import errno
import json
import os
import subprocess
import threading
import time

from dfstest import (EXIT_TIMEOUT, TestFailure, check, drop_caches, eq,
                     read_file, renameat2, RENAME_EXCHANGE, RENAME_NOREPLACE,
                     unmount, wait_for)
from sshtier import SshTier
from test_migrate import (MigMount, Problems, dfsctl_bin, mkfile, policy,
                          run, sha)

TMP_PREFIX = ".dfs-tmp."
HUNG_BOUND = 5.0        # s for a call that should not wait on a hung tier
TIER_TIMEOUT = 2.0      # s the hung tier is given

# Files under /d go down to the remote tier and come back up: named in
# each run, so that a run moves each file once.
BOTH_WAYS = (policy("down", frm="t0", to="t1", paths=["/d/*", "/g/*"]) +
             policy("up", frm="t1", to="t0", paths=["/d/*", "/g/*"]))


class SshMount(MigMount):
    """MigMount with tier 1 on sshfs of root/remote; remote(...) is a path
    on the server's side.  Torn down after dfs, even on failure."""

    def __init__(self, policies=BOTH_WAYS, **kw):
        self.ssh = None
        MigMount.__init__(self, policies, **kw)

    def _populate(self, m):
        self.ssh = SshTier(os.path.join(self.root, "ssh"),
                           os.path.join(self.root, "remote"), self.t(1))
        self.teardown.append(self.ssh.stop)
        self.ssh.start()
        MigMount._populate(self, m)

    def remote(self, *parts):
        return os.path.join(self.root, "remote", *parts)

    def where(self, rel):
        h = [n for n, p in (("t0", self.t(0, rel)),
                            ("remote", self.remote(rel)))
             if os.path.lexists(p)]
        return "+".join(h) if h else "none"

    def temps(self):
        res = []
        for top in (self.t(0), self.remote()):
            for d, dirs, files in os.walk(top):
                res += [os.path.join(d, f) for f in files + dirs
                        if f.startswith(TMP_PREFIX)]
        return res

    def ctl(self, *args, ok=True):
        rc, out, err = run([dfsctl_bin(), "-s", self.sock] + list(args))
        if ok and rc != 0:
            self._fail("dfsctl %s: status %d\n%s%s" % (" ".join(args), rc,
                                                       out, err))
        return out

    def move(self, *rels, ok=True):
        """One run for these files only; its record (JSON).  dfsctl
        fails for a run with errors unless ok is False."""
        self.ctl("migrate", "--now", "--wait", *[self.p(r) for r in rels],
                 ok=ok)
        return json.loads(self.ctl("--json", "migrate", "--status"))

    def wait_indexed(self, timeout=20.0):
        """Until a full scan (the one at start) has completed."""
        def indexed():
            j = json.loads(self.ctl("--json", "scan", "--status"))
            return j["indexed"] and not j["running"]
        if not wait_for(indexed, timeout):
            self._fail("no complete scan within %.0f s" % timeout)

    def stop_daemon(self):
        how = unmount(self.mnt)
        if how != "unmounted":
            self._fail("unmount: %s" % how)
        rc = self.proc.wait(timeout=EXIT_TIMEOUT)
        if rc != 0:
            self._fail("dfs exited with status %d" % rc)
        self._logf.close()
        self._logf = None
        self._was_mounted = False

    def start_without_tier(self):
        """dfs started while sshfs is not mounted: (status, output)."""
        problems = self.ssh.umount()
        if problems:
            self._fail("; ".join(problems))
        r = subprocess.run(self.argv(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        self.ssh.mount()
        return r.returncode, r.stdout.decode(errors="replace")

    def restart_with_tier_remounted(self):
        """dfs stopped, sshfs unmounted and mounted again, dfs started: the
        tier comes back with its files numbered afresh."""
        self.stop_daemon()
        problems = self.ssh.umount()
        if problems:
            self._fail("; ".join(problems))
        self.ssh.mount()
        self._start()


def last_run(status):
    runs = status.get("runs") or []
    check(runs, "no finished run: %r" % status)
    return runs[0]


def _files(m):
    mkfile(m.t(0, "d", "small"), os.urandom(3000), mode=0o640)
    mkfile(m.t(0, "d", "sub", "other"), os.urandom(100), mode=0o600)
    # a large file moves on its own, not in a batch
    mkfile(m.t(0, "d", "big"), os.urandom(3 << 20), mode=0o755)


def test_remote_migration_both_ways():
    rels = ("d/small", "d/sub/other", "d/big")
    with SshMount(populate=_files) as m:
        pr = Problems(m)
        want = {r: (os.stat(m.p(r)).st_ino, os.stat(m.p(r)).st_mode,
                    sha(m.p(r))) for r in rels}

        def same(when):
            for r in rels:
                st = os.stat(m.p(r))
                pr.eq((st.st_ino, st.st_mode, sha(m.p(r))), want[r],
                      "%s %s: inode, mode, content" % (r, when))
            pr.eq(m.temps(), [], "temp files " + when)

        run1 = last_run(m.move(*rels))
        pr.eq((run1["files"], run1["errors"]), (3, 0), "run down")
        for r in rels:
            pr.eq(m.where(r), "remote", r + " after the move down")
            if os.path.exists(m.remote(r)):
                pr.eq(os.stat(m.remote(r)).st_mode, want[r][1],
                      r + " mode on the server")
        same("on the remote tier")
        run2 = last_run(m.move(*rels))
        pr.eq((run2["files"], run2["errors"]), (3, 0), "run up")
        for r in rels:
            pr.eq(m.where(r), "t0", r + " after the move up")
        same("back on t0")
        pr.done()


def test_remote_status_shows_what_it_supports():
    with SshMount() as m:
        j = json.loads(m.ctl("--json", "status"))
        pr = Problems(m)
        t0, t1 = j["tiers"]
        pr.eq(t1["fstype"], "fuse.sshfs", "t1 fstype")
        pr.eq(t1["supports"], {
            "rename_noreplace": False, "rename_exchange": False,
            "hardlinks": True, "nlink": False, "xattrs": False,
            "stable_inodes": False, "ns_times": False}, "t1 supports")
        pr.eq(t1["stable_inodes_from"], "probe", "t1 stable_inodes_from")
        pr.eq((t0["supports"]["rename_noreplace"],
               t0["supports"]["stable_inodes"],
               t0["supports"]["nlink"]), (True, True, True), "t0 supports")
        text = m.ctl("status")
        lines = [l for l in text.splitlines() if l.startswith("t1 ") and
                 "fuse.sshfs" in l]
        pr.check(len(lines) == 1 and lines[0].split()[2:] ==
                 ["no", "no", "yes", "no", "no", "no", "unstable"],
                 "status text: a capability line for t1:\n" + text)
        pr.check(not any(f.startswith(TMP_PREFIX)
                         for f in os.listdir(m.remote())),
                 "the probe left its files")
        pr.done()


def test_remote_renames_without_rename_flags():
    def populate(m):
        mkfile(m.t(0, "d", "a"), b"a")
        mkfile(m.t(0, "d", "b"), b"b")
    with SshMount(populate=populate) as m:
        run1 = last_run(m.move("d/a", "d/b"))
        eq(run1["errors"], 0, "errors moving d/a and d/b down")
        # the tier refuses flags; dfs keeps NOREPLACE's promise itself
        try:
            renameat2(m.p("d", "a"), m.p("d", "b"), RENAME_NOREPLACE)
            raise TestFailure("NOREPLACE onto d/b replaced it")
        except OSError as e:
            eq(e.errno, errno.EEXIST, "NOREPLACE onto an existing name")
        renameat2(m.p("d", "a"), m.p("d", "c"), RENAME_NOREPLACE)
        eq((m.where("d/a"), m.where("d/c")), ("none", "remote"),
           "d/a renamed to d/c")
        try:
            renameat2(m.p("d", "b"), m.p("d", "c"), RENAME_EXCHANGE)
            raise TestFailure("EXCHANGE on a tier without it succeeded")
        except OSError as e:
            eq(e.errno, errno.EINVAL, "EXCHANGE on the remote tier")
        eq((read_file(m.p("d", "b")), read_file(m.p("d", "c"))),
           (b"b", b"a"), "contents after the refused exchange")


def pins(m):
    return [l.split()[0] for l in m.ctl("pins").splitlines() if l.strip()]


def test_remote_pin_and_inode_survive_renumbering():
    rel = "d/ops/s5"

    def populate(m):
        mkfile(m.t(0, rel), b"pinned")
    with SshMount(populate=populate) as m:
        m.move(rel)
        check(m.where(rel) == "remote", "%s on %s" % (rel, m.where(rel)))
        ino = os.stat(m.p(rel)).st_ino
        m.ctl("pin", m.p(rel))
        backing = os.stat(m.t(1, rel)).st_ino
        # the kernel forgets the file; sshfs gives it a new number
        drop_caches(2)
        if not wait_for(lambda: (drop_caches(2) or
                                 os.stat(m.t(1, rel)).st_ino != backing),
                        5.0, 0.2):
            m._fail("sshfs kept inode %d across drop_caches: the test "
                    "proves nothing" % backing)
        pr = Problems(m)
        pr.eq(os.stat(m.p(rel)).st_ino, ino, "inode after drop_caches")
        pr.eq(pins(m), [m.p(rel)], "pins after drop_caches")
        # a scan sees every file renumbered, and keeps them
        m.ctl("scan", "--wait")
        pr.eq(os.stat(m.p(rel)).st_ino, ino, "inode after a scan")
        pr.eq(pins(m), [m.p(rel)], "pins after a scan")
        r = last_run(m.move(rel))
        pr.eq((m.where(rel), r["skipped"].get("pinned")), ("remote", 1),
              "a pinned file stays")
        pr.done()

        # an outage: dfs must not take the empty mount point for the tier
        m.stop_daemon()
        rc, out = m.start_without_tier()
        pr.check(rc != 0 and "is its file system mounted?" in out,
                 "dfs started on the tier's bare mount point: status %d, "
                 "%r" % (rc, out))
        m._start()
        # a new sshfs numbers its files afresh (st_dev may come back)
        m.restart_with_tier_remounted()
        m.wait_indexed()
        pr.eq(os.stat(m.p(rel)).st_ino, ino, "inode after the remount")
        pr.eq(pins(m), [m.p(rel)], "pins after the remount")
        pr.eq(read_file(m.p(rel)), b"pinned", "content after the remount")
        r = last_run(m.move(rel))
        pr.eq((m.where(rel), r["skipped"].get("pinned")), ("remote", 1),
              "still pinned after the remount")
        pr.done()


def test_remote_hardlink_group_down_and_back():
    # down by a policy, back up by promotion: read often through dfs
    def populate(m):
        mkfile(m.t(0, "g", "h1"), b"linked" * 1000)
        os.makedirs(m.t(0, "g", "sub"))
        os.link(m.t(0, "g", "h1"), m.t(0, "g", "sub", "h2"))
    with SshMount(policy("down", frm="t0", to="t1", paths=["/g/*"]),
                  migration={"promote_after_reads": "2",
                             "promote_window": "1d"},
                  populate=populate) as m:
        pr = Problems(m)
        ino = os.stat(m.p("g", "h1")).st_ino

        def one_file(when, backing):
            a, b = os.stat(m.p("g/h1")), os.stat(m.p("g/sub/h2"))
            pr.eq((a.st_ino, b.st_ino, a.st_nlink, b.st_nlink),
                  (ino, ino, 2, 2), "mount: st_ino and st_nlink " + when)
            x, y = os.stat(backing("g/h1")), os.stat(backing("g/sub/h2"))
            pr.eq((x.st_ino == y.st_ino, x.st_nlink), (True, 2),
                  "one file with 2 names on the tier " + when)
            pr.eq(read_file(m.p("g/sub/h2")), b"linked" * 1000,
                  "content " + when)

        r = last_run(m.move())
        pr.eq((r["files"], r["errors"]), (1, 0), "run down")
        pr.eq((m.where("g/h1"), m.where("g/sub/h2")), ("remote", "remote"),
              "the group moved down")
        one_file("on the remote tier", m.remote)
        drop_caches(2)
        one_file("after drop_caches", m.remote)
        read_file(m.p("g/h1"))
        read_file(m.p("g/h1"))
        r = last_run(m.move())
        pr.eq((r["files"], r["errors"], r["skipped"]), (1, 0, {}),
              "run promoting it")
        pr.eq((m.where("g/h1"), m.where("g/sub/h2")), ("t0", "t0"),
              "the group came back up")
        one_file("back on t0", lambda rel: m.t(0, rel))
        pr.eq(m.temps(), [], "temp files")
        pr.done()


def test_remote_failed_move_is_an_error():
    # As dfs did before it probed its tiers: RENAME_NOREPLACE on sshfs
    # fails with EINVAL.  The run and dfsctl stats both count it.
    def populate(m):
        mkfile(m.t(0, "d", "old1.txt"), b"keep me")
    with SshMount(populate=populate, env={"DFS_NO_PROBE": "1"}) as m:
        r = last_run(m.move("d/old1.txt", ok=False))
        pr = Problems(m)
        pr.eq((r["files"], r["errors"]), (0, 1), "run files, errors")
        pr.check("Invalid argument" in (r.get("last_error") or ""),
                 "last error: %r" % r.get("last_error"))
        stats = json.loads(m.ctl("--json", "stats"))["tiers"]
        pr.eq([t["errors"] > 0 for t in stats], [False, True],
              "dfsctl stats errors per tier: %r" %
              [t["errors"] for t in stats])
        pr.eq(m.where("d/old1.txt"), "t0", "the file stays")
        pr.eq(read_file(m.p("d", "old1.txt")), b"keep me", "its content")
        pr.eq(m.temps(), [], "temp files")
        pr.done()


def test_stable_inodes_override():
    # A local tier declared unstable: files are known by name there, and
    # a move down and back keeps their identity all the same.
    def populate(m):
        mkfile(m.t(0, "d", "f"), b"by name")
        os.link(m.t(0, "d", "f"), m.t(0, "d", "g"))
    with MigMount(BOTH_WAYS, populate=populate,
                  tier_opts={1: "stable_inodes = no"}) as m:
        rc, out, err = run([dfsctl_bin(), "-s", m.sock, "--json", "status"])
        eq(rc, 0, "dfsctl status")
        t1 = json.loads(out)["tiers"][1]
        eq((t1["supports"]["stable_inodes"], t1["stable_inodes_from"]),
           (False, "config"), "t1 stable_inodes")
        ino = os.stat(m.p("d", "f")).st_ino
        for tier in (1, 0):
            rc, out, err = run([dfsctl_bin(), "-s", m.sock, "migrate",
                                "--now", "--wait", m.p("d", "f")])
            eq(rc, 0, "dfsctl migrate: %s%s" % (out, err))
            eq([os.path.exists(m.t(tier, "d", n)) for n in "fg"],
               [True, True], "d/f and d/g on t%d" % tier)
            a, b = os.stat(m.p("d", "f")), os.stat(m.p("d", "g"))
            eq((a.st_ino, b.st_ino, a.st_nlink), (ino, ino, 2),
               "st_ino and st_nlink on t%d" % tier)


def _tier_calls(m, t):
    """The backing-call counters of tier t, as dfsctl stats gives them."""
    s = json.loads(m.ctl("--json", "stats"))["tiers"][t]
    return {k: s[k] for k in ("lookup", "readdir", "open", "xattr")}


def test_remote_listing_costs_no_call_and_has_no_holes():
    names = ["r%02d" % i for i in range(30)] + ["l%d" % i for i in range(5)]

    def populate(m):
        for n in names:
            mkfile(m.t(1 if n[0] == "r" else 0, "d", n), n.encode())
    with SshMount(policies="", populate=populate) as m:
        m.wait_indexed()
        pr = Problems(m)
        drop_caches(2)
        before = _tier_calls(m, 1)
        pr.eq(sorted(os.listdir(m.p("d"))), sorted(names),
              "listing of a directory on both tiers")
        pr.eq(_tier_calls(m, 1), before,
              "calls to the remote tier for that listing")
        pr.eq(read_file(m.p("d", "r07")), b"r07", "a remote file's content")

        # the tier fails (its sshfs gone: every call ENOTCONN)
        m.ssh.sshfs.kill()
        m.ssh.sshfs.wait()
        drop_caches(2)
        try:
            got = sorted(os.listdir(m.p("d")))
            pr.eq(got, sorted(names), "listing with the remote tier down")
        except OSError as e:
            pr.eq(e.errno, errno.EIO, "listing with the remote tier down "
                  "fails with: %s" % e)
        pr.eq(read_file(m.p("d", "l3")), b"l3", "a tier-0 file's content "
              "with the remote tier down")
        try:
            os.stat(m.p("d", "r11"))
            pr.check(False, "stat of a remote file with its tier down "
                     "succeeded")
        except OSError as e:
            pr.check(e.errno not in (0, errno.ENOENT),
                     "stat of a remote file with its tier down: %s "
                     "(it is not gone)" % e)
        with open(m.p("d", "new"), "wb") as f:
            f.write(b"made while the remote tier is down")
        pr.eq(read_file(m.t(0, "d", "new")),
              b"made while the remote tier is down", "a new file on tier 0")


class Bounded(threading.Thread):
    """fn() in a thread of its own, so that a call on a hung mount costs
    the test a bound, not the run: result() is ("ok", value),
    ("error", errno) or None while it is still pending."""

    def __init__(self, fn):
        threading.Thread.__init__(self, daemon=True)
        self.fn = fn
        self.res = None
        self.start()

    def run(self):
        try:
            self.res = ("ok", self.fn())
        except OSError as e:
            self.res = ("error", e.errno)

    def result(self, timeout):
        self.join(timeout)
        return self.res


def _create(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return read_file(path)


def test_remote_hung_tier_costs_only_its_files():
    # The server stops answering (SIGSTOP) while a lookup of one of its
    # files is pending: the lookup fails with ETIMEDOUT after the tier's
    # timeout, and later calls to the tier at once; tier-0 names in the
    # same directory and dfsctl keep answering; all recovers once the
    # server answers again.
    def populate(m):
        mkfile(m.t(0, "d", "far"), b"far")
        mkfile(m.t(0, "d", "near"), b"near")
    with SshMount(populate=populate,
                  tier_opts={1: "timeout = %g" % TIER_TIMEOUT}) as m:
        pr = Problems(m)
        r = last_run(m.move("d/far"))
        check(m.where("d/far") == "remote" and m.where("d/near") == "t0",
              "d/far on %s, d/near on %s: %r" % (m.where("d/far"),
                                                 m.where("d/near"), r))
        m.wait_indexed()
        m.ssh.pause()
        try:
            # the kernel forgets d/far: its stat is a lookup on tier 1
            drop_caches(2)
            t = time.monotonic()
            pending = Bounded(lambda: os.stat(m.p("d", "far")).st_size)
            check(pending.result(TIER_TIMEOUT / 2) is None,
                  "stat of d/far with the server stopped: %r: the test "
                  "proves nothing" % (pending.res,))
            t_st = time.monotonic()
            st = Bounded(lambda: json.loads(m.ctl("--json", "status")))
            if st.result(HUNG_BOUND) is None or st.res[0] != "ok":
                pr.check(False, "dfsctl status with tier 1 hung: %r" %
                         (st.res,))
            else:
                pr.check(time.monotonic() - t_st < 1.0,
                         "dfsctl status took %.1f s" %
                         (time.monotonic() - t_st))
                t1 = st.res[1]["tiers"][1]
                pr.eq((t1["answering"], t1.get("not_answering_for", -1) >= 0,
                       st.res[1]["tiers"][0]["answering"]),
                      (False, True, True), "status: t1 not answering")
            pr.eq(pending.result(TIER_TIMEOUT + HUNG_BOUND),
                  ("error", errno.ETIMEDOUT), "the pending stat of d/far")
            pr.check(time.monotonic() - t >= TIER_TIMEOUT - 0.5,
                     "d/far failed after %.1f s, before the tier's "
                     "timeout" % (time.monotonic() - t))
            t = time.monotonic()
            pr.eq(Bounded(lambda: os.stat(m.p("d", "far")).st_size)
                  .result(HUNG_BOUND), ("error", errno.ETIMEDOUT),
                  "a stat of d/far once the tier is known hung")
            pr.check(time.monotonic() - t < 1.0,
                     "that stat took %.1f s" % (time.monotonic() - t))
            pr.eq(Bounded(lambda: os.statvfs(m.mnt).f_blocks > 0)
                  .result(1.0), ("error", errno.ETIMEDOUT),
                  "statfs of the mount once the tier is known hung")
            pr.eq(Bounded(lambda: os.stat(m.p("d", "near")).st_size)
                  .result(HUNG_BOUND), ("ok", 4),
                  "stat of the tier-0 name d/near")
            pr.eq(Bounded(lambda: _create(m.p("d", "new"), b"new"))
                  .result(HUNG_BOUND), ("ok", b"new"),
                  "create of d/new in the same directory")
            pr.eq(Bounded(lambda: _create(m.p("top"), b"top"))
                  .result(HUNG_BOUND), ("ok", b"top"),
                  "create of /top")
            for cmd in (["stats"], ["scan", "--status"],
                        ["migrate", "--status"], ["pins"]):
                pr.eq(Bounded(lambda c=cmd: m.ctl(*c) and "ok")
                      .result(HUNG_BOUND), ("ok", "ok"),
                      "dfsctl %s with tier 1 hung" % " ".join(cmd))
            pr.check("tier t1: lookup /d/far: no answer in %g s" %
                     TIER_TIMEOUT in m.log_text(),
                     "no log line naming the tier and the path")
        finally:
            m.ssh.resume()

        def far():
            try:
                return read_file(m.p("d", "far"))
            except OSError as e:
                return e.errno
        pr.eq(wait_for(lambda: far() == b"far", HUNG_BOUND) and far(),
              b"far", "d/far once the server answers")
        pr.eq(os.statvfs(m.mnt).f_blocks > 0, True, "statfs once it answers")
        j = json.loads(m.ctl("--json", "status"))
        pr.eq([t["answering"] for t in j["tiers"]], [True, True],
              "status: both tiers answering")
        pr.eq((m.where("d/new"), m.where("top")), ("t0", "t0"),
              "the new files")
        pr.done()
