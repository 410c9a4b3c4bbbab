"""The migration worker on real mounts: each policy condition, first-match
order, exclusions, pins, run limits, the watermark trigger; a moved file's
identity (content, mode, owner, xattrs, ACL, times, holes, inode number);
open readers and writers during a move; clients writing, renaming and
removing files while small files move in batches; a SIGKILL at every step
of the protocol; ENOSPC on the target.

Runs are started with `dfsctl migrate --now --wait` when dfsctl has that
command, else by a short `interval` in the config; then a run is known to
be over from the daemon's "migration run (...)" log line (written by every
run that moves a file or meets an error), never from a sleep.
"""

import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import traceback

from dfstest import (EXIT_TIMEOUT, MOUNT_TIMEOUT, Mount, TestFailure,
                     _active, _active_lock, check, daemon_argv, dfs_bin,
                     dfsctl_bin, dry_run, eq, is_mounted, kill_pid, notes, read_file,
                     unmount, wait_for, write_file)

RUN_TIMEOUT = 25.0      # a run starts within ~5 s of being due
DAY = 86400
OLD = time.time() - 30 * DAY
TMP_PREFIX = ".dfs-tmp."
RUN_LINE = re.compile(r"migration run (?:\d+ )?\(")
STEPS = ("journal", "copy", "copied", "renamed", "switched", "unlinked")


def run(argv, timeout=60):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), \
        r.stderr.decode(errors="replace")


_features = None


def dfsctl_has(cmd):
    """Does dfsctl know this command (from `dfsctl -h`)?"""
    global _features
    if _features is None:
        try:
            rc, out, err = run([dfsctl_bin(), "-h"])
            text = out + err
        except OSError:
            text = ""
        _features = set(w.split()[0] for w in text.splitlines()
                        if w.startswith("  ") and w.split())
    return cmd in _features


def sha(path):
    """Of a file's content, leaving its atime alone where allowed."""
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
    except OSError:
        fd = os.open(path, os.O_RDONLY)
    with open(fd, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def backdate(path, when=None, atime=None):
    """mtime (and atime) to `when`, on the backing file (before the mount)."""
    when = OLD if when is None else when
    os.utime(path, (when if atime is None else atime, when),
             follow_symlinks=False)


def mkfile(path, data, when=None, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_file(path, data, mode)
    os.chmod(path, mode)
    if when is not False:
        backdate(path, when)


def temps(m):
    """Temp files of the migration left on any tier (relative paths)."""
    res = []
    for i in range(m.ntiers):
        for d, dirs, files in os.walk(m.t(i)):
            for f in files + dirs:
                if f.startswith(TMP_PREFIX):
                    res.append(os.path.relpath(os.path.join(d, f), m.root))
    return res


def holders(m, rel):
    return [i for i in range(m.ntiers) if os.path.lexists(m.t(i, rel))]


def tmpfs_mount(path, size):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size,
                    "tmpfs", path], check=True, stdin=subprocess.DEVNULL)


def tmpfs_umount(path):
    r = subprocess.run(["umount", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", path], stdin=subprocess.DEVNULL)
        return "tmpfs %s: needed a lazy umount: %s" % (
            path, r.stdout.decode(errors="replace").strip())
    return None


class MigMount(Mount):
    """`dfs -f -c FILE` over tiers t0..tN-1 named t0.., with the policies
    and migration settings the test gives; state (index) and the control
    socket in the temp dir.  tmpfs={i: "8m"} puts tier i on a tmpfs of
    that size; tier_opts={i: "high_watermark = 60"}; env for the daemon."""

    def __init__(self, policies="", migration=None, ntiers=2, populate=None,
                 tmpfs=None, tier_opts=None, env=None, log_level="info",
                 tick=False):
        self.user_populate = populate
        self.tmpfs = dict(tmpfs or {})
        self.tmpfs_done = []
        self.teardown = []      # after dfs stops: callables -> problems
        Mount.__init__(self, ntiers=ntiers, populate=self._populate,
                       index=False)
        if tick:
            # for full_run() without dfsctl migrate: moves only /tick-N
            # (its age keeps other files out of its candidates)
            policies = policy("tick", to="t%d" % (ntiers - 1),
                              paths=["/tick-*"], age="20d") + policies
        self.ticks = 0
        self.policies = policies
        self.migration = migration_section(**(migration or {}))
        self.tier_opts = dict(tier_opts or {})
        self.env = dict(env or {})
        self.log_level = log_level
        self.runs_seen = 0

    def _populate(self, m):
        for i, size in sorted(self.tmpfs.items()):
            tmpfs_mount(self.t(i), size)
            self.tmpfs_done.append(self.t(i))
        if self.user_populate is not None:
            self.user_populate(m)

    def config(self):
        tiers = "".join("tier t%d {\n\tpath = %s\n%s}\n" % (
            i, self.t(i), "".join("\t%s\n" % l for l in
                                  self.tier_opts.get(i, "").splitlines()))
            for i in range(self.ntiers))
        return ("mountpoint = %s\nstate_dir = %s\nsocket = %s\n"
                "log_level = %s\n%s%s%s" % (
                    self.mnt, os.path.join(self.root, "state"), self.sock,
                    self.log_level, tiers, self.policies, self.migration))

    def argv(self):
        self.conf = os.path.join(self.root, "dfs.conf")
        self.sock = os.path.join(self.root, "dfs.sock")
        write_file(self.conf, self.config())
        return [dfs_bin(), "-f", "-c", self.conf]

    def _start(self):
        # Mount._start, with the daemon's own environment
        self._logf = open(self.log, "ab")
        with _active_lock:
            if self not in _active:
                _active.append(self)
        env = dict(os.environ)
        env.pop("DFS_CRASH_AT", None)
        env.update(self.env)
        try:
            self.proc = subprocess.Popen(daemon_argv(self.argv()),
                                         stdin=subprocess.DEVNULL,
                                         stdout=self._logf,
                                         stderr=subprocess.STDOUT,
                                         cwd=self.root, env=env)
        except OSError as e:
            self._fail("cannot start %s: %s" % (dfs_bin(), e))
        wait_for(lambda: is_mounted(self.mnt) or self.proc.poll() is not None,
                 MOUNT_TIMEOUT)
        if not is_mounted(self.mnt):
            self._fail("dfs not mounted (exit status %s)" % self.proc.poll())
        self._was_mounted = True

    def full_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def runs_logged(self, kind=""):
        # "migration run (interval): ..." or "migration run 3 (request): ..."
        return len(re.findall(r"migration run (?:\d+ )?\(%s" %
                              re.escape(kind), self.full_log()))

    def wait_runs(self, n, kind="", timeout=RUN_TIMEOUT):
        """Until n runs (of that trigger) have logged their outcome."""
        if not wait_for(lambda: self.runs_logged(kind) >= n or
                        not self.alive(), timeout):
            self._fail("no migration run %d%s logged within %.0f s" % (
                n, " (%s)" % kind if kind else "", timeout))
        if not self.alive():
            self._fail("dfs died (status %s)" % self.proc.returncode)

    def migrate(self, timeout=RUN_TIMEOUT, ok=True):
        """One run: dfsctl migrate --now --wait if there is one, else the
        next interval run.  Returns dfsctl's (status, out, err) or None."""
        if dfsctl_has("migrate"):
            r = run([dfsctl_bin(), "-s", self.sock, "migrate", "--now",
                     "--wait"], timeout=timeout + 30)
            if ok and r[0] != 0:
                self._fail("dfsctl migrate --now --wait: status %d\n%s%s" %
                           (r[0], r[1], r[2]))
            self.runs_seen += 1
            return r
        self.runs_seen += 1
        self.wait_runs(self.runs_seen, timeout=timeout)
        return None

    def full_run(self, timeout=RUN_TIMEOUT):
        """A whole run that starts after this call.  Without dfsctl
        migrate: a tick file moved in a run that ended, then another moved
        in a run that began after that one ended (needs tick=True)."""
        if dfsctl_has("migrate"):
            return self.migrate(timeout)
        for _ in range(2):
            self.ticks += 1
            name = "tick-%d" % self.ticks
            fd = os.open(self.p(name), os.O_WRONLY | os.O_CREAT, 0o644)
            os.utime(fd, (OLD, OLD))
            os.close(fd)
            pat = "migrated /%s " % name

            def ended():
                log = self.full_log()
                i = log.find(pat)
                return i >= 0 and RUN_LINE.search(log, i) is not None
            if not wait_for(lambda: ended() or not self.alive(), timeout):
                self._fail("%s not moved by a run within %.0f s" % (
                    name, timeout))
        return None

    def restart_after_crash(self):
        """The daemon died (SIGKILL): detach the dead mount, start again
        on the same index without fault injection."""
        subprocess.run(["fusermount3", "-uz", self.mnt],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self._logf.close()
        self._logf = None
        self._was_mounted = False
        self.env.pop("DFS_CRASH_AT", None)
        self._start()

    def _stop_daemon(self):
        """Unmount dfs and reap it, before what lies under its tiers goes.
        Returns a list of problems; whether it died is asked before the
        unmount ends it."""
        problems = []
        died = self.proc.poll() if self.proc is not None else None
        try:
            how = unmount(self.mnt)
            if how.startswith("lazily"):
                problems.append("needed a lazy unmount: " + how)
        except Exception as e:
            problems.append(str(e))
        if self.proc is not None and self._was_mounted:
            try:
                rc = self.proc.wait(timeout=EXIT_TIMEOUT)
                if died is not None and self.aborted is None:
                    problems.append("dfs died during the test with "
                                    "status %s" % died)
                elif rc != 0 and self.aborted is None:
                    problems.append("dfs exited with status %s after "
                                    "unmount" % rc)
            except subprocess.TimeoutExpired:
                problems.append("dfs did not exit after unmount; killed")
                kill_pid(self.proc.pid)
                self.proc.wait()
            self.proc = None
        elif self.proc is not None and self.proc.poll() is None:
            kill_pid(self.proc.pid)     # never came up: it still holds them
            self.proc.wait()
        return problems

    def _cleanup(self, failing):
        problems = []
        if self.tmpfs_done or self.teardown:
            # dfs first (it holds the tiers), then what is under them
            problems += self._stop_daemon()
            for d in self.tmpfs_done:
                p = tmpfs_umount(d)
                if p:
                    problems.append(p)
            self.tmpfs_done = []
            while self.teardown:
                problems += self.teardown.pop()()
        return problems + Mount._cleanup(self, failing)


def migration_section(**kw):
    """migration { ... }: by default runs every second unless dfsctl can
    start them, no minimum residency, no verify."""
    s = {"interval": "0" if dfsctl_has("migrate") else "1s",
         "min_residency": "0"}
    s.update(kw)
    return "migration {\n%s}\n" % "".join(
        "\t%s = %s\n" % (k, v) for k, v in s.items())


def policy(name, **kw):
    lines = []
    for k, v in kw.items():
        k = "from" if k == "frm" else k
        if k == "paths":
            v = "{ %s }" % ", ".join('"%s"' % p for p in v)
        lines.append("\t%s = %s\n" % (k, v))
    return "policy %s {\n%s}\n" % (name, "".join(lines))


class Problems:
    """Collect every mismatch, fail once with all of them."""

    def __init__(self, m):
        self.m = m
        self.items = []

    def eq(self, got, want, what):
        if got != want:
            self.items.append("%s: got %r, want %r" % (what, got, want))

    def check(self, cond, what):
        if not cond:
            self.items.append(what)

    def done(self):
        if self.items:
            self.m._fail("%d problem(s):\n  %s" % (
                len(self.items), "\n  ".join(self.items)))


def where(m, rel):
    """'t0', 't1', 'none' or e.g. 't0+t1' for a relative path."""
    h = holders(m, rel)
    return "+".join("t%d" % i for i in h) if h else "none"


def listing_count(m, rel):
    d, name = os.path.split(rel)
    return os.listdir(m.p(d) if d else m.mnt).count(name)


# --- conditions, order, exclusions -------------------------------------------

COND_POLICIES = (
    policy("no-db", action="exclude", paths=["*.db"]) +
    policy("keep-order", action="exclude", paths=["/order/*.keep"]) +
    policy("order", frm="t0", to="t1", paths=["/order/*"]) +
    policy("age", frm="t0", to="t1", paths=["/age/*"], age="1d") +
    policy("size", frm="t0", to="t1", paths=["/size/*"], min_size="10K",
           max_size="20K") +
    policy("owner", frm="t0", to="t1", paths=["/owner/*"], owner="12345") +
    policy("subtree", frm="t0", to="t1", paths=["/tree/sub", "/glob/*/old"]) +
    policy("ctime", frm="t0", to="t1", paths=["/ctime/*"], age="1d",
           age_by="ctime") +
    policy("by-name", frm="t0", to="t1", paths=["*.log"])
)

# path -> (size, mtime, owner, tier it must end on)
NOW = time.time() - 60     # fresh, and not in the current second
COND_FILES = {
    # first match: an exclude before the migrate policy keeps its files
    "order/a.keep": (100, OLD, 0, 0),
    "order/a.txt": (100, OLD, 0, 1),
    # exclude rules apply to files another policy would move
    "age/x.db": (100, OLD, 0, 0),
    "age/old": (100, OLD, 0, 1),
    "age/fresh": (100, NOW, 0, 0),
    "age/two-days": (100, NOW - 2 * DAY, 0, 1),
    "age/half-day": (100, NOW - DAY / 2, 0, 0),
    # min_size and max_size are inclusive
    "size/small": (10 * 1024 - 1, OLD, 0, 0),
    "size/min": (10 * 1024, OLD, 0, 1),
    "size/mid": (15 * 1024, OLD, 0, 1),
    "size/max": (20 * 1024, OLD, 0, 1),
    "size/big": (20 * 1024 + 1, OLD, 0, 0),
    "owner/user": (100, OLD, 12345, 1),
    "owner/root": (100, OLD, 0, 0),
    "owner/other": (100, OLD, 12346, 0),
    # a pattern with a '/' covers the subtree it names, by whole components
    "tree/sub/f": (100, NOW, 0, 1),
    "tree/sub/a/b/deep": (100, NOW, 0, 1),
    "tree/subx/f": (100, NOW, 0, 0),
    "tree/other/f": (100, NOW, 0, 0),
    "glob/p1/old/f": (100, NOW, 0, 1),
    "glob/p1/new/f": (100, NOW, 0, 0),
    # age_by = ctime: an old mtime does not make the file old
    "ctime/f": (100, OLD, 0, 0),
    # a pattern without '/' matches the file name anywhere
    "name/x.log": (100, NOW, 0, 1),
    "name/deep/dir/y.log": (100, NOW, 0, 1),
    "name/x.log.txt": (100, NOW, 0, 0),
}


def _cond_populate(m):
    for rel, (size, mtime, uid, _) in COND_FILES.items():
        mkfile(m.t(0, rel), os.urandom(size), when=mtime)
        if uid:
            os.chown(m.t(0, rel), uid, uid)
            backdate(m.t(0, rel), mtime)


def test_policy_conditions_and_order():
    with MigMount(COND_POLICIES, populate=_cond_populate) as m:
        hashes = {rel: sha(m.t(0, rel)) for rel in COND_FILES}
        m.migrate()
        pr = Problems(m)
        want = dict((rel, v[3]) for rel, v in COND_FILES.items())
        for rel, tier in sorted(want.items()):
            pr.eq(where(m, rel), "t%d" % tier, rel)
        for rel in COND_FILES:
            if holders(m, rel):
                pr.eq(sha(m.t(holders(m, rel)[0], rel)), hashes[rel],
                      rel + " content")
            pr.eq(listing_count(m, rel), 1, rel + " listed")
        pr.eq(temps(m), [], "temp files")
        pr.done()


def test_age_by_atime():
    # alone: no other policy's candidates bring the file in
    def populate(m):
        # read long ago, modified a minute ago: old by atime
        mkfile(m.t(0, "unread"), b"u" * 100, when=NOW)
        os.utime(m.t(0, "unread"), (OLD, NOW))
        # read a minute ago, modified long ago: young by atime
        mkfile(m.t(0, "read"), b"r" * 100, when=OLD)
        os.utime(m.t(0, "read"), (NOW, OLD))
    with MigMount(policy("atime", to="t1", age="1d", age_by="atime"),
                  populate=populate, tick=True) as m:
        m.full_run()
        pr = Problems(m)
        pr.eq(where(m, "unread"), "t1", "unread (atime 30 days ago)")
        pr.eq(where(m, "read"), "t0", "read (atime a minute ago)")
        pr.done()


def test_no_age_policy_takes_fresh_files():
    # a policy without age takes every file it matches, however new
    with MigMount(policy("all", to="t1", paths=["/new/*"]), tick=True) as m:
        os.mkdir(m.p("new"))
        write_file(m.p("new", "f"), b"fresh")
        m.full_run()
        eq(where(m, "new/f"), "t1", "new/f")


def test_excluded_files_do_not_hide_candidates():
    # 4,200 old excluded files, older than the ones to move: a run with
    # no limits still moves every file its policies take
    def populate(m):
        os.mkdir(m.t(0, "db"))
        for i in range(4200):
            p = m.t(0, "db", "%d.db" % i)
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
            os.utime(p, (OLD - 1000, OLD - 1000))
        for i in range(10):
            mkfile(m.t(0, "mv", "f%d" % i), b"m", when=OLD)
    with MigMount(policy("no-db", action="exclude", paths=["*.db"]) +
                  policy("old", to="t1", age="1d"),
                  populate=populate) as m:
        m.migrate()
        eq([where(m, "mv/f%d" % i) for i in range(10)], ["t1"] * 10,
           "mv/f0..f9")


def test_age_backdated_through_mount():
    # `touch -d`, rsync -t and tar set old times by path after writing:
    # such a file is as old as its mtime says
    with MigMount(policy("age", to="t1", age="1d"), tick=True) as m:
        write_file(m.p("by-path"), b"p" * 1000)
        os.utime(m.p("by-path"), (OLD, OLD))
        fd = os.open(m.p("by-fd"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"f" * 1000)
        os.utime(fd, (OLD, OLD))
        os.close(fd)
        m.full_run()
        pr = Problems(m)
        pr.eq(where(m, "by-fd"), "t1", "by-fd (futimens on the handle)")
        pr.eq(where(m, "by-path"), "t1", "by-path (utimensat by path)")
        pr.done()


def test_pins():
    if not dfsctl_has("pin"):
        raise TestFailure("dfsctl has no pin command (dfsctl -h)")

    def populate(m):
        for rel in ("loose", "pinned", "dir/a", "dir/sub/b", "other/c"):
            mkfile(m.t(0, rel), rel.encode())
    with MigMount(policy("all", to="t1"), populate=populate) as m:
        for p in ("pinned", "dir"):
            rc, out, err = run([dfsctl_bin(), "-s", m.sock, "pin", m.p(p)])
            eq(rc, 0, "dfsctl pin %s (%s%s)" % (p, out, err))
        rc, out, err = run([dfsctl_bin(), "-s", m.sock, "pins"])
        eq(rc, 0, "dfsctl pins")
        listed = sorted(l.split()[0] for l in out.splitlines() if l.strip())
        eq(listed, sorted([m.p("pinned"), m.p("dir")]), "dfsctl pins")
        m.migrate()
        pr = Problems(m)
        for rel, want in (("loose", "t1"), ("other/c", "t1"),
                          ("pinned", "t0"), ("dir/a", "t0"),
                          ("dir/sub/b", "t0")):
            pr.eq(where(m, rel), want, rel)
        pr.done()
        rc, out, err = run([dfsctl_bin(), "-s", m.sock, "unpin", m.p("dir")])
        eq(rc, 0, "dfsctl unpin")
        m.migrate()
        pr.eq(where(m, "dir/sub/b"), "t1", "dir/sub/b after unpin")
        pr.eq(where(m, "pinned"), "t0", "pinned after unpinning another")
        pr.done()


def test_max_files_per_run():
    def populate(m):
        for i in range(5):
            mkfile(m.t(0, "f%d" % i), b"x" * 1000, when=OLD + i)
    with MigMount(policy("all", to="t1", age="1d"), populate=populate,
                  migration={"max_files": "2"}) as m:
        m.migrate()
        moved = [i for i in range(5) if holders(m, "f%d" % i) == [1]]
        eq(len(moved), 2, "files moved by the first run (%s)" % moved)
        eq(moved, [0, 1], "the oldest first")
        m.migrate()
        moved = [i for i in range(5) if holders(m, "f%d" % i) == [1]]
        eq(len(moved), 4, "after the second run (%s)" % moved)


def test_watermark_moves_oldest_until_below_low():
    # tier 0: 8 MiB tmpfs, 7 files of 1 MiB (87%); high 60, low 40:
    # the oldest go until usage is 40% or less; an excluded file stays
    def populate(m):
        mkfile(m.t(0, "keep.db"), b"k" * (1 << 20), when=OLD - 100)
        for i in range(6):
            mkfile(m.t(0, "f%d" % i), os.urandom(1 << 20), when=OLD + i)
    with MigMount(policy("no-db", action="exclude", paths=["*.db"]),
                  populate=populate, tmpfs={0: "8m"},
                  migration={"interval": "0"},
                  tier_opts={0: "high_watermark = 60\nlow_watermark = 40"}) \
            as m:
        m.wait_runs(1, kind="watermark")
        pr = Problems(m)
        pr.eq(where(m, "keep.db"), "t0", "excluded file")
        pr.eq([where(m, "f%d" % i) for i in range(6)],
              ["t1"] * 4 + ["t0"] * 2, "f0..f5 (oldest first)")
        sv = os.statvfs(m.t(0))
        used = 100 - sv.f_bavail * 100.0 / sv.f_blocks
        pr.check(used <= 40, "tier 0 %.1f%% used, above low_watermark" % used)
        pr.eq(temps(m), [], "temp files")
        pr.done()


def test_watermark_with_many_excluded_files():
    # 600 excluded files are the oldest on a tier over its high watermark:
    # the run moves the one file it may and ends
    def populate(m):
        for i in range(600):
            mkfile(m.t(0, "%d.db" % i), b"k" * 8192, when=OLD - 1000 + i)
        mkfile(m.t(0, "big"), os.urandom(1 << 20), when=OLD)
    with MigMount(policy("no-db", action="exclude", paths=["*.db"]),
                  populate=populate, tmpfs={0: "8m"},
                  migration={"interval": "0"},
                  tier_opts={0: "high_watermark = 50\nlow_watermark = 40"}) \
            as m:
        ok = wait_for(lambda: m.runs_logged("watermark") > 0, RUN_TIMEOUT)
        pr = Problems(m)
        pr.check(ok, "the watermark run did not end within %.0f s" %
                 RUN_TIMEOUT)
        pr.eq(where(m, "big"), "t1", "big")
        pr.done()


# --- identity after a move -----------------------------------------------------

ATIME = (1577836800, 123456789)     # 2020-01-01
MTIME = (1609459200, 987654321)     # 2021-01-01
SPARSE = 100 << 20


def _id_populate(m):
    os.makedirs(m.t(0, "id"))
    f = m.t(0, "id", "plain")
    write_file(f, os.urandom(300000))
    os.chown(f, 12345, 23456)
    os.chmod(f, 0o4750)
    os.setxattr(f, "user.a", b"1")
    os.setxattr(f, "user.big", os.urandom(3000))
    if shutil.which("setfacl"):
        subprocess.run(["setfacl", "-m", "u:12346:r", f], check=True)
    s = m.t(0, "id", "sparse")
    fd = os.open(s, os.O_WRONLY | os.O_CREAT, 0o600)
    for off in (0, SPARSE // 2, SPARSE - 4096):
        os.pwrite(fd, b"d" * 4096, off)
    os.close(fd)
    for p in (f, s):
        os.utime(p, ns=(ATIME[0] * 10**9 + ATIME[1],
                        MTIME[0] * 10**9 + MTIME[1]))


def _acl(path):
    try:
        return os.getxattr(path, "system.posix_acl_access")
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise


def _xattrs(path):
    return dict((k, os.getxattr(path, k)) for k in os.listxattr(path)
                if k.startswith("user."))


def _identity(verify):
    with MigMount(policy("id", to="t1", paths=["/id/*"]),
                  populate=_id_populate,
                  migration={"verify": verify}) as m:
        before = {}
        acl_set = _acl(m.t(0, "id", "plain")) is not None
        for name in ("plain", "sparse"):
            b = m.t(0, "id", name)
            before[name] = (os.lstat(b), sha(b), _xattrs(b), _acl(b),
                            os.lstat(m.p("id", name)))
        m.migrate()
        pr = Problems(m)
        for name in ("plain", "sparse"):
            rel = "id/" + name
            st0, h, xa, acl, mst0 = before[name]
            pr.eq(where(m, rel), "t1", rel + " tier")
            if holders(m, rel) != [1]:
                continue
            t = m.t(1, rel)
            st = os.lstat(t)
            pr.eq(oct(st.st_mode), oct(st0.st_mode), rel + " mode")
            pr.eq((st.st_uid, st.st_gid), (st0.st_uid, st0.st_gid),
                  rel + " owner")
            pr.eq(st.st_mtime_ns, st0.st_mtime_ns, rel + " mtime")
            pr.eq(st.st_atime_ns, st0.st_atime_ns, rel + " atime")
            pr.eq(st.st_size, st0.st_size, rel + " size")
            pr.eq(_xattrs(t), xa, rel + " user xattrs")
            pr.eq(_acl(t), acl, rel + " ACL")
            ms = os.lstat(m.p(rel))
            pr.eq(ms.st_ino, mst0.st_ino, rel + " st_ino through the mount")
            pr.eq((oct(ms.st_mode), ms.st_uid, ms.st_gid, ms.st_size,
                   ms.st_mtime_ns, ms.st_nlink),
                  (oct(mst0.st_mode), mst0.st_uid, mst0.st_gid,
                   mst0.st_size, mst0.st_mtime_ns, mst0.st_nlink),
                  rel + " stat through the mount")
            pr.eq(listing_count(m, rel), 1, rel + " listed")
            pr.eq(_xattrs(m.p(rel)), xa, rel + " xattrs through the mount")
            pr.eq(_acl(m.p(rel)), acl, rel + " ACL through the mount")
            if name == "sparse":
                pr.check(st.st_blocks * 512 < 1 << 20,
                         "sparse: %d blocks on the target, holes lost" %
                         st.st_blocks)
            pr.eq(sha(t), h, rel + " content on the target")
            pr.eq(sha(m.p(rel)), h, rel + " content through the mount")
        pr.check(acl_set or not shutil.which("setfacl"),
                 "setfacl left no ACL on the source (test setup)")
        pr.eq(temps(m), [], "temp files")
        pr.done()


def test_identity_after_move():
    _identity("no")


def test_identity_after_move_with_verify():
    _identity("yes")


# --- clients during a move ----------------------------------------------------

def test_reader_keeps_reading_old_bytes():
    data = os.urandom(8 << 20)

    def populate(m):
        mkfile(m.t(0, "r"), data)
    with MigMount(policy("all", to="t1", age="1d"), populate=populate) as m:
        f = open(m.p("r"), "rb", buffering=0)
        try:
            head = f.read(4096)
            m.migrate()
            eq(where(m, "r"), "t1", "r after the run")
            rest = b""
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                rest += b
        finally:
            f.close()
        eq(len(head + rest), len(data), "bytes read by the open reader")
        check(head + rest == data, "the open reader read other bytes")
        eq(read_file(m.p("r")) == data, True, "content after the move")


def test_running_run_shows_progress_and_time_left():
    """A run paced by its bandwidth limit: status shows how far it is of
    the candidates it started with, and an estimate of the time left.
    Files of 1 MiB move one at a time (smaller ones go in batches)."""
    def populate(m):
        for i in range(12):
            mkfile(m.t(0, "f%02d" % i), os.urandom(1 << 20), when=OLD + i)
    with MigMount(policy("all", to="t1", age="1d"), populate=populate,
                  migration={"bandwidth": "2M"}) as m:
        rc, out, err = run([dfsctl_bin(), "-s", m.sock, "migrate", "--now"])
        eq(rc, 0, "migrate --now: %s" % err)
        seen = {}

        def moving():
            rc, out, err = run([dfsctl_bin(), "-s", m.sock, "--json",
                                "migrate", "--status"])
            cur = json.loads(out).get("current") if rc == 0 else None
            if cur and cur["files"] >= 2 and cur["eta"] is not None:
                seen["json"] = cur
                rc, out, err = run([dfsctl_bin(), "-s", m.sock, "status"])
                seen["status"] = out
                rc, out, err = run([dfsctl_bin(), "-s", m.sock, "migrate",
                                    "--status"])
                seen["text"] = out
                return True
            return False
        check(wait_for(moving, 30), "no running run with an estimate")
        cur = seen["json"]
        eq(cur["candidates"], 12, "candidates the run started with")
        # 12 MiB at 2 MiB/s: about 6 s in all
        check(0 <= cur["eta"] <= 30, "eta %r s" % cur["eta"])
        for what in ("status", "text"):
            check(re.search(r"\(\d+ of about 12 candidates, about \d+s "
                            r"left\)", seen[what]),
                  "%s: %s" % (what, seen[what]))
        check(wait_for(lambda: len(os.listdir(m.t(1))) == 12, 60),
              "the run did not finish")


def test_writer_during_copy_aborts_the_move():
    size = 60 << 20
    orig = {n: os.urandom(1 << 20) * (size >> 20) for n in ("w1", "w2")}

    def populate(m):
        mkfile(m.t(0, "w1"), orig["w1"], when=OLD)
        mkfile(m.t(0, "w2"), orig["w2"], when=OLD + 1)
    with MigMount(policy("all", to="t1", age="1d"), populate=populate,
                  migration={"bandwidth": "20M"}) as m:
        ino = {n: os.stat(m.p(n)).st_ino for n in orig}
        marker = b"MARKER-written-during-the-copy"

        def tmp_of(n):
            return os.path.exists(m.t(1, TMP_PREFIX + str(ino[n])))

        def copying(n):
            # the temp (named by the dfs inode) exists on the target
            if not wait_for(lambda: tmp_of(n), RUN_TIMEOUT + 10):
                m._fail("no temp file of %s appeared on t1 (tiers: %s)" % (
                    n, os.listdir(m.t(1))))
        if dfsctl_has("migrate"):
            bg = subprocess.Popen([dfsctl_bin(), "-s", m.sock, "migrate",
                                   "--now", "--wait"],
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        else:
            bg = None
        try:
            # w1: opened, written and closed while the copy runs
            copying("w1")
            fd = os.open(m.p("w1"), os.O_WRONLY)
            os.pwrite(fd, marker, 4096)
            os.close(fd)
            check(wait_for(lambda: not tmp_of("w1"), 30),
                  "temp of w1 stays")
            # w2: opened for writing during the copy, written only after
            # the worker has finished with it
            copying("w2")
            fd = os.open(m.p("w2"), os.O_WRONLY)
            try:
                check(wait_for(lambda: not tmp_of("w2"), 30),
                      "temp of w2 stays")
                os.pwrite(fd, marker, 4096)
            finally:
                os.close(fd)
        finally:
            if bg is not None:
                bg.wait(timeout=60)
        pr = Problems(m)
        for n in orig:
            want = orig[n][:4096] + marker + orig[n][4096 + len(marker):]
            h = holders(m, n)
            pr.eq(len(h), 1, "%s: copies across tiers (%s)" % (n, h))
            for t in h:
                pr.check(read_file(m.t(t, n)) == want,
                         "%s on t%d: content lost the marker" % (n, t))
            pr.check(read_file(m.p(n)) == want,
                     "%s through the mount: content lost the marker" % n)
        pr.eq(temps(m), [], "temp files")
        pr.done()


CHURN_DIRS = ("a", "b", "c/deep")
CHURN_MODES = (0o600, 0o640, 0o664, 0o755, 0o700)
CHURN_THREADS = 3
CHURN_MAX_OPS = 20000       # per client thread, if the run goes on that long
# random operations (weight, most of that kind per client thread): the
# caps keep most files old enough to move however fast the clients are
CHURN_OPS = (("read", 83, None), ("chmod", 6, None), ("overwrite", 1, 120),
             ("append", 1, 120), ("rename", 8.5, 1000), ("unlink", 0.5, 40))
CHURN_AIMED = 150           # operations on files seen copied, per client
CHURN_AIM_EVERY = 8         # look for temps on t1 every this many operations


def _churn_seed():
    s = os.environ.get("DFS_SEED")
    return int(s, 0) if s else random.SystemRandom().randrange(1 << 32)


def _mount_files(m):
    """rel -> (content, permission bits) of every file through the mount."""
    res = {}
    for d, dirs, files in os.walk(m.mnt):
        for f in files:
            p = os.path.join(d, f)
            res[os.path.relpath(p, m.mnt)] = (
                read_file(p), os.lstat(p).st_mode & 0o7777)
    return res


def _tier_files(m):
    """rel -> tiers holding a file of that name, on the backing dirs."""
    res = {}
    for i in range(m.ntiers):
        for d, dirs, files in os.walk(m.t(i)):
            for f in files:
                rel = os.path.relpath(os.path.join(d, f), m.t(i))
                res.setdefault(rel, []).append(i)
    return res


def _write_all(fd, data):
    n = 0
    while n < len(data):
        n += os.write(fd, data[n:])


def _churn_client(m, rng, tid, names, model, fate, bg, out):
    try:
        _churn_ops(m, rng, tid, names, model, fate, bg, out)
    except BaseException:
        out[tid] = (0, 0, 0, ["the client thread failed:\n" +
                              traceback.format_exc()])


def _churn_ops(m, rng, tid, names, model, fate, bg, out):
    """One client: overwrite, append, rename, unlink, chmod and read its
    own files (names: rel -> st_ino through the mount) while the run goes
    on, keeping model[rel] = [content, mode, written] and fate[old name] =
    what became of a name it renamed or unlinked.  Some of the operations
    are aimed at files whose copy is on t1 (a temp named by the inode):
    files in a batch between copy and switch.  Reports in out[tid]."""
    bad = []
    ops = during = aimed = renames = 0
    done = dict((k, 0) for k, w, cap in CHURN_OPS)
    caps = dict((k, cap) for k, w, cap in CHURN_OPS)
    kinds = [k for k, w, cap in CHURN_OPS]
    weights = [w for k, w, cap in CHURN_OPS]
    order = sorted(names)
    by_ino = dict((ino, rel) for rel, ino in names.items())

    def copied():
        # this client's files with a temp on t1 now
        res = []
        for d in CHURN_DIRS:
            try:
                ents = os.listdir(m.t(1, d))
            except OSError:
                continue
            for e in ents:
                ino = e[len(TMP_PREFIX):]
                if e.startswith(TMP_PREFIX) and ino.isdigit() and \
                        int(ino) in by_ino:
                    res.append(by_ino[int(ino)])
        return res

    def drop(rel):
        by_ino.pop(names.pop(rel))
        order.remove(rel)

    while ops < CHURN_MAX_OPS and names and bg.poll() is None:
        ops += 1
        rel = op = None
        if aimed < CHURN_AIMED and ops % CHURN_AIM_EVERY == 0:
            hot = copied()
            if hot:
                aimed += 1
                rel = rng.choice(hot)
                op = rng.choice(("overwrite", "append", "rename", "unlink",
                                 "chmod"))
        if rel is None:
            rel = rng.choice(order)
            op = rng.choices(kinds, weights)[0]
            if caps[op] is not None and done[op] >= caps[op]:
                op = "read"
            done[op] += 1
        ent = model[rel]
        try:
            if op == "read":
                got = read_file(m.p(rel))
                mode = os.stat(m.p(rel)).st_mode & 0o7777
                if got != ent[0]:
                    bad.append("read %s: %d bytes (sha %s), want %d (sha %s)"
                               % (rel, len(got), hashlib.sha256(got)
                                  .hexdigest()[:12], len(ent[0]),
                                  hashlib.sha256(ent[0]).hexdigest()[:12]))
                if mode != ent[1]:
                    bad.append("stat %s: mode %o, want %o" % (
                        rel, mode, ent[1]))
            elif op in ("overwrite", "append"):
                if op == "overwrite":
                    data = rng.randbytes(rng.randint(1024, 20 * 1024))
                    flags = os.O_WRONLY | os.O_TRUNC
                else:
                    data = rng.randbytes(rng.randint(1, 4096))
                    flags = os.O_WRONLY | os.O_APPEND
                fd = os.open(m.p(rel), flags)
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
                ent[0] = data if op == "overwrite" else ent[0] + data
                ent[2] = True
            elif op == "rename":
                renames += 1
                new = "%s/r%d-%d" % (
                    os.path.dirname(rel) if rng.random() < 0.5 else
                    rng.choice(CHURN_DIRS), tid, renames)
                os.rename(m.p(rel), m.p(new))
                model[new] = model.pop(rel)
                fate[rel] = "renamed to /" + new
                ino = names[rel]
                drop(rel)
                names[new] = ino
                by_ino[ino] = new
                order.append(new)
            elif op == "unlink":
                os.unlink(m.p(rel))
                del model[rel]
                fate[rel] = "unlinked"
                drop(rel)
            else:
                mode = rng.choice(CHURN_MODES)
                os.chmod(m.p(rel), mode)
                ent[1] = mode
        except OSError as e:
            bad.append("%s %s: %s" % (op, rel, e))
            if not m.alive():
                break
        if bg.poll() is None:
            during += 1
    out[tid] = (ops, during, aimed, bad)


def test_client_churn_during_batched_moves():
    # ~1,500 small files move in batches while three clients overwrite,
    # append to, rename, unlink, chmod and read them through the mount:
    # every read sees the client's bytes; afterwards the mount lists
    # exactly the names the clients left, with their content and mode,
    # each on one tier, no temp left; files the clients did not write
    # end on t1 after a second run; the same after a remount
    if not dfsctl_has("migrate"):
        raise TestFailure("dfsctl has no migrate command (dfsctl -h)")
    seed = _churn_seed()
    # shown on every run, and with a failure of any kind, to replay it
    print("  DFS_SEED=%d" % seed, flush=True)
    notes.append("DFS_SEED=%d replays this run" % seed)
    rng = random.Random(seed)
    model = {}
    for i in range(1500):
        rel = "%s/f%04d" % (CHURN_DIRS[i % len(CHURN_DIRS)], i)
        model[rel] = [rng.randbytes(rng.randint(1024, 20 * 1024)), 0o644,
                      False]

    def populate(m):
        for rel, (data, mode, _) in model.items():
            mkfile(m.t(0, rel), data, when=OLD, mode=mode)
    with MigMount(policy("all", to="t1", age="1d"), populate=populate) as m:
        # every file known before the run starts (the clients' renames
        # are then of files the run may have decided on)
        eq(len(_mount_files(m)), len(model), "files through the mount")
        names = [{} for _ in range(CHURN_THREADS)]
        for k, rel in enumerate(sorted(model)):
            names[k % CHURN_THREADS][rel] = os.stat(m.p(rel)).st_ino
        outf = open(os.path.join(m.root, "migrate.out"), "wb")
        bg = subprocess.Popen([dfsctl_bin(), "-s", m.sock, "migrate",
                               "--now", "--wait"], stdin=subprocess.DEVNULL,
                              stdout=outf, stderr=subprocess.STDOUT)
        out = {}
        fate = {}
        threads = [threading.Thread(target=_churn_client, args=(
            m, random.Random(rng.randrange(1 << 32)), tid, names[tid],
            model, fate, bg, out)) for tid in range(CHURN_THREADS)]
        try:
            for t in threads:
                t.start()
            deadline = time.monotonic() + RUN_TIMEOUT
            for t in threads:
                t.join(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            try:
                rc = bg.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                kill_pid(bg.pid)
                rc = bg.wait()
            outf.close()
        pr = Problems(m)
        with open(os.path.join(m.root, "migrate.out"), errors="replace") \
                as f:
            said = f.read().strip()
        if rc != 0:
            # what the run counted as errors, and what the clients had
            # done to those files
            errs = re.findall(r"migrate /(\S+) from tier \S+ to \S+: (.*)",
                              m.full_log())
            pr.items.append(
                "dfsctl migrate --now --wait during the churn: status %d "
                "(%s); the errors logged, with what the clients did to the "
                "file:\n    %s" % (rc, " / ".join(said.splitlines()),
                                   "\n    ".join(
                    "/%s: %s (%s)" % (rel, err, fate.get(
                        rel, "not renamed or unlinked")) for rel, err in
                    errs[:20])))
        ops = during = aimed = 0
        for tid in range(CHURN_THREADS):
            if tid not in out:
                pr.items.append("client %d did not finish" % tid)
                continue
            o, d, a, bad = out[tid]
            ops += o
            during += d
            aimed += a
            pr.items.extend("client %d: %s" % (tid, b) for b in bad[:20])
            if len(bad) > 20:
                pr.items.append("client %d: %d more" % (tid, len(bad) - 20))
        pr.check(during > 0, "no client operation ran during the run "
                 "(%d in all)" % ops)
        moved = sum(1 for rel in model if holders(m, rel) == [1])
        pr.check(moved > 0, "the run moved no file")

        def check_all(when):
            got = _mount_files(m)
            missing = sorted(set(model) - set(got))
            extra = sorted(set(got) - set(model))
            pr.check(not missing, "%s: %d names missing through the mount: "
                     "%s" % (when, len(missing), missing[:10]))
            pr.check(not extra, "%s: %d names through the mount the clients "
                     "removed or renamed: %s" % (when, len(extra),
                                                 extra[:10]))
            wrong = sorted(rel for rel in set(model) & set(got)
                           if got[rel][0] != model[rel][0])
            pr.check(not wrong, "%s: %d files with other content: %s" % (
                when, len(wrong), ["%s (%d bytes, want %d)" % (
                    rel, len(got[rel][0]), len(model[rel][0]))
                    for rel in wrong[:10]]))
            modes = sorted(rel for rel in set(model) & set(got)
                           if got[rel][1] != model[rel][1])
            pr.check(not modes, "%s: %d files with another mode: %s" % (
                when, len(modes), ["%s %o, want %o" % (
                    rel, got[rel][1], model[rel][1]) for rel in modes[:10]]))
            tiers = _tier_files(m)
            stray = sorted(rel for rel in tiers if rel not in model and
                           not os.path.basename(rel).startswith(TMP_PREFIX))
            pr.check(not stray, "%s: %d names on the tiers not in the model:"
                     " %s" % (when, len(stray), ["%s on %s" % (
                         rel, where(m, rel)) for rel in stray[:10]]))
            twice = sorted(rel for rel in model if len(holders(m, rel)) != 1)
            pr.check(not twice, "%s: %d names not on exactly one tier: %s" %
                     (when, len(twice), ["%s on %s" % (rel, where(m, rel))
                                         for rel in twice[:10]]))
            pr.eq(temps(m), [], "%s: temp files" % when)

        check_all("after the run")
        # a second run moves what the first skipped; what the clients
        # wrote is young now and may stay
        r = m.migrate(ok=False)
        pr.eq(r[0], 0, "the second run: dfsctl migrate --now --wait status"
              " (%s)" % " / ".join((r[1] + r[2]).splitlines()))
        left = sorted(rel for rel in model if not model[rel][2] and
                      holders(m, rel) != [1])
        pr.check(not left, "after a second run: %d files the clients did "
                 "not write not on t1: %s" % (len(left), [
                     "%s on %s" % (rel, where(m, rel)) for rel in left[:10]]))
        check_all("after a second run")
        m.remount()
        check_all("after a remount")
        if pr.items:
            pr.items.insert(0, "DFS_SEED=%d: %d client operations, %d during "
                            "the run, %d on files seen copied; %d files on "
                            "t1 after the run" % (seed, ops, during, aimed,
                                                  moved))
        pr.done()


# --- crash safety -----------------------------------------------------------------

CRASH_FILES = {"d/a": 3 << 20, "d/b": 5000, "c": 100}


def _crash_populate(m):
    for rel, size in CRASH_FILES.items():
        mkfile(m.t(0, rel), os.urandom(size),
               when=(OLD if rel == "d/a" else OLD + 10) if rel != "c"
               else False)


def _crash_invariants(m, hashes, when, pr):
    for rel, h in hashes.items():
        hold = holders(m, rel)
        pr.eq(len(hold), 1, "%s: %s: tiers holding it (%s)" % (
            when, rel, where(m, rel)))
        for t in hold:
            pr.eq(sha(m.t(t, rel)), h, "%s: %s: content on t%d" % (
                when, rel, t))
        try:
            pr.eq(listing_count(m, rel), 1, "%s: %s listed" % (when, rel))
            pr.eq(sha(m.p(rel)), h, "%s: %s through the mount" % (
                when, rel))
        except OSError as e:
            pr.items.append("%s: %s through the mount: %s" % (when, rel, e))
    pr.eq(temps(m), [], "%s: temp files" % when)


def _crash_one(step, out):
    pol = policy("down", to="t1", paths=["/d/*"], age="1d")
    m = MigMount(pol, populate=_crash_populate, env={"DFS_CRASH_AT": step},
                 migration={"interval": "1s"})
    try:
        with m:
            hashes = {rel: sha(m.t(0, rel)) for rel in CRASH_FILES}
            if not wait_for(lambda: m.proc.poll() is not None,
                            RUN_TIMEOUT):
                m._fail("%s: dfs did not crash" % step)
            rc = m.proc.returncode
            log = m.full_log()
            pr = Problems(m)
            pr.eq(rc, -signal.SIGKILL, "%s: exit status" % step)
            pr.check("crash injected at %s" % step in log,
                     "%s: log names the step" % step)
            left = "tiers after the crash: t0=%s t1=%s" % (
                sorted(os.listdir(m.t(0, "d"))),
                sorted(os.listdir(m.t(1, "d"))) if os.path.isdir(
                    m.t(1, "d")) else None)
            m.restart_after_crash()
            _crash_invariants(m, hashes, "after restart", pr)
            if pr.items:
                pr.items.insert(0, left)
            # a later run finishes the job
            if not wait_for(lambda: holders(m, "d/a") == [1] and
                            holders(m, "d/b") == [1], RUN_TIMEOUT + 10):
                pr.items.append("%s: a later run did not move d/a, d/b "
                                "(%s, %s)" % (step, where(m, "d/a"),
                                              where(m, "d/b")))
            _crash_invariants(m, hashes, "after the later run", pr)
            pr.eq(where(m, "c"), "t0", "%s: c (fresh)" % step)
            pr.done()
        out[step] = None
    except BaseException as e:
        out[step] = "%s: %s" % (step, e)


def test_crash_at_every_step():
    out = {}
    threads = [threading.Thread(target=_crash_one, args=(s, out))
               for s in STEPS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [out.get(s, "%s: no result" % s) for s in STEPS
           if out.get(s, "x") is not None]
    if bad:
        raise TestFailure("%d of %d steps failed:\n\n%s" % (
            len(bad), len(STEPS), "\n\n".join(bad)))


def test_recovery_removes_stray_temps():
    # a temp file with no journal row (a crash of an older dfs, a copy by
    # hand) is removed at start; DESIGN.md: "removes stray temp files"
    def populate(m):
        mkfile(m.t(0, "a"), b"a", when=False)
        mkfile(m.t(1, "d", TMP_PREFIX + "999999"), b"junk", when=False)
        mkfile(m.t(1, TMP_PREFIX + "12"), b"junk", when=False)
    with MigMount(policy("never", to="t1", age="3650d"),
                  populate=populate) as m:
        eq(sorted(os.listdir(m.mnt)), ["a", "d"], "listing")
        eq(temps(m), [], "stray temp files after start")


# --- ENOSPC ------------------------------------------------------------------------

def test_enospc_on_target():
    big = os.urandom(8 << 20)

    def populate(m):
        mkfile(m.t(0, "big"), big, when=OLD)
        mkfile(m.t(0, "small"), b"s" * 10000, when=OLD + 10)
    with MigMount(policy("all", to="t1", age="1d"), populate=populate,
                  tmpfs={1: "4m"}) as m:
        r = m.migrate(ok=False)
        pr = Problems(m)
        pr.eq(where(m, "big"), "t0", "big")
        pr.check(read_file(m.t(0, "big")) == big, "big: source content")
        pr.check(read_file(m.p("big")) == big, "big: through the mount")
        pr.eq(where(m, "small"), "t1", "small (fits; the run goes on)")
        pr.eq(temps(m), [], "temp files")
        log = m.full_log()
        pr.check("No space left on device" in log,
                 "the log does not say No space left on device")
        pr.check(re.search(r"migration run .*: 1 files, .* 1 errors", log),
                 "the run line does not count 1 file and 1 error")
        if r is not None:
            pr.check(r[0] != 0, "dfsctl migrate --wait: status 0 after an "
                     "error")
            rc, out, err = run([dfsctl_bin(), "-s", m.sock, "status"])
            pr.check("No space left" in out,
                     "dfsctl status does not show the error:\n" + out)
        sv = os.statvfs(m.t(1))
        pr.check(sv.f_bavail * sv.f_frsize > 3 << 20,
                 "target tmpfs still full: %d bytes free" %
                 (sv.f_bavail * sv.f_frsize))
        pr.done()


# --- hard links ---------------------------------------------------------------------

def test_hardlink_group_moves_as_one():
    def populate(m):
        mkfile(m.t(0, "x", "h1"), b"linked" * 1000)
        os.makedirs(m.t(0, "y"))
        os.link(m.t(0, "x", "h1"), m.t(0, "y", "h2"))
    with MigMount(policy("all", to="t1", age="1d"), populate=populate,
                  migration={"hardlinks": "move"}) as m:
        ino = os.stat(m.p("x", "h1")).st_ino
        m.migrate()
        pr = Problems(m)
        pr.eq(where(m, "x/h1"), "t1", "x/h1")
        pr.eq(where(m, "y/h2"), "t1", "y/h2")
        if holders(m, "x/h1") == [1] and holders(m, "y/h2") == [1]:
            pr.eq(os.stat(m.t(1, "x/h1")).st_ino,
                  os.stat(m.t(1, "y/h2")).st_ino, "one inode on t1")
        a, b = os.stat(m.p("x/h1")), os.stat(m.p("y/h2"))
        pr.eq((a.st_ino, b.st_ino, a.st_nlink), (ino, ino, 2),
              "st_ino and st_nlink through the mount")
        pr.done()


def test_name_of_moved_file_is_free_at_once():
    # A moved file's source waits a moment to be removed with its batch;
    # a client who removes the file must be able to make a new one of
    # that name on the source tier at once (create, mkdir, rename onto).
    n = 1500
    data = {i: b"old %d " % i * 50 for i in range(n)}

    def populate(m):
        for i in range(n):
            mkfile(m.t(0, "d", "f%04d" % i), data[i], when=OLD + i)
    with MigMount(policy("all", to="t1", age="1d"), populate=populate) as m:
        bg = subprocess.Popen([dfsctl_bin(), "-s", m.sock, "migrate",
                               "--now", "--wait"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        done, bad, kinds = [], [], ("create", "mkdir", "rename")
        try:
            # names the worker has switched but whose source is still there
            i = 0
            while bg.poll() is None and i < n and len(done) < 30:
                rel = "d/f%04d" % i
                if holders(m, rel) != [0, 1]:
                    if holders(m, rel) == [1]:
                        i += 1      # its batch is gone already
                    continue
                kind = kinds[len(done) % 3]
                p = m.p(rel)
                try:
                    os.unlink(p)
                    if kind == "create":
                        write_file(p, b"new")
                    elif kind == "mkdir":
                        os.mkdir(p)
                    else:
                        write_file(m.p("d", "r%04d" % i), b"new")
                        os.rename(m.p("d", "r%04d" % i), p)
                except OSError as e:
                    bad.append("%s %s: %s" % (kind, rel, e))
                done.append((rel, kind))
                i += 1
        finally:
            bg.wait(timeout=RUN_TIMEOUT * 4)
        pr = Problems(m)
        pr.check(done, "the run never had a source waiting (too fast to "
                 "catch)")
        pr.eq(bad, [], "operations on freed names")
        for rel, kind in done:
            if kind == "mkdir":
                pr.check(os.path.isdir(m.p(rel)), "%s: not a directory" % rel)
            elif os.path.isfile(m.p(rel)):
                pr.eq(read_file(m.p(rel)), b"new", "%s content" % rel)
            else:
                pr.check(False, "%s: missing" % rel)
            pr.eq(holders(m, rel), [0], "%s holders" % rel)
        pr.eq(temps(m), [], "temp files")
        pr.done()


def test_waiting_source_not_found_by_name():
    # In a directory the index may lack names of (one found in place of a
    # file, behind dfs's back, after the scan), lookups ask the tiers.  A
    # moved file's source waiting for its batch must not come back there
    # once a client has renamed or unlinked the file.
    n = 1500
    with MigMount(policy("all", to="t1", age="1d"),
                  populate=lambda m: write_file(m.t(0, "p"), "")) as m:
        check(wait_for(lambda: "scan complete" in m.full_log(), 60),
              "no scan completed")
        os.unlink(m.t(0, "p"))
        for i in range(n):
            mkfile(m.t(0, "p", "f%04d" % i), b"%d " % i * 50, when=OLD + i)
        for i in range(n):
            os.lstat(m.p("p", "f%04d" % i))    # the index learns them
        bg = subprocess.Popen([dfsctl_bin(), "-s", m.sock, "migrate",
                               "--now", "--wait"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        done, bad = [], []
        try:
            i = 0
            while bg.poll() is None and i < n and len(done) < 30:
                rel = "p/f%04d" % i
                if holders(m, rel) != [0, 1]:
                    if holders(m, rel) == [1]:
                        i += 1      # its batch is gone already
                    continue
                p = m.p(rel)
                try:
                    if len(done) % 2:
                        os.unlink(p)
                    else:
                        os.rename(p, m.p("p", "r%04d" % i))
                    os.lstat(p)
                    bad.append("%s found after the %s" % (rel, (
                        "rename", "unlink")[len(done) % 2]))
                except FileNotFoundError:
                    pass
                except OSError as e:
                    bad.append("%s: %s" % (rel, e))
                done.append(rel)
                i += 1
        finally:
            bg.wait(timeout=RUN_TIMEOUT * 4)
        pr = Problems(m)
        pr.check(done, "the run never had a source waiting (too fast to "
                 "catch)")
        pr.eq(bad, [], "names of moved files after a rename or unlink")
        names = set(os.listdir(m.p("p")))
        pr.eq(sorted(names & set(os.path.basename(r) for r in done)), [],
              "old names listed")
        pr.done()


def test_switch_on_disk_without_its_rename():
    # A power loss can keep the index's switch and lose the rename of the
    # copy (the directory was not synced yet): recovery keeps the source.
    data = os.urandom(5000)

    def populate(m):
        mkfile(m.t(0, "d", "f"), data, when=OLD)
    m = MigMount(policy("all", to="t1", age="1d"), populate=populate,
                 env={"DFS_CRASH_AT": "switched"},
                 migration={"interval": "1s"})
    with m:
        ino = os.lstat(m.p("d", "f")).st_ino
        if not wait_for(lambda: m.proc.poll() is not None, RUN_TIMEOUT):
            m._fail("dfs did not crash at switched")
        check(holders(m, "d/f") == [0, 1], "after the crash: %s" %
              where(m, "d/f"))
        # what the disk may hold after a power loss: the copy unrenamed
        os.rename(m.t(1, "d", "f"), m.t(1, "d", TMP_PREFIX + str(ino)))
        m.restart_after_crash()
        pr = Problems(m)
        # (a later run may have moved it again meanwhile)
        pr.eq(len(holders(m, "d/f")), 1, "tiers holding d/f after "
              "recovery: %s" % where(m, "d/f"))
        pr.check(read_file(m.p("d", "f")) == data, "content through the "
                 "mount")
        pr.eq(temps(m), [], "temp files")
        pr.done()


def test_copy_renamed_by_a_client_as_dfs_died():
    # dfs dies after the switch, while a client's rename of the moved file
    # has reached the target tier and not yet the index.  The rename may
    # count as done or not, but the file must be there once: before, the
    # copy missing under its old name looked like a rename the disk lost,
    # the source became the file again, and the scan found the copy too.
    data = os.urandom(5000)

    def populate(m):
        mkfile(m.t(0, "d", "f"), data, when=OLD)
        os.makedirs(m.t(0, "e"))
    m = MigMount(policy("all", to="t1", age="1d"), populate=populate,
                 env={"DFS_CRASH_AT": "switched"},
                 migration={"interval": "1s"})
    with m:
        if not wait_for(lambda: m.proc.poll() is not None, RUN_TIMEOUT):
            m._fail("dfs did not crash at switched")
        check(holders(m, "d/f") == [0, 1], "after the crash: %s" %
              where(m, "d/f"))
        # the client's rename, as far as it got: on the tier holding the file
        os.makedirs(m.t(1, "e"), exist_ok=True)
        os.rename(m.t(1, "d", "f"), m.t(1, "e", "g"))
        m.restart_after_crash()
        rc, out, err = run([dfsctl_bin(), "-s", m.sock, "scan", "--wait"])
        eq(rc, 0, "scan --wait: %s" % err)
        pr = Problems(m)
        names = [r for r in ("d/f", "e/g") if os.path.lexists(m.p(r))]
        pr.eq(len(names), 1, "names of the file through the mount "
              "(d/f on %s, e/g on %s)" % (where(m, "d/f"), where(m, "e/g")))
        for r in names:
            pr.check(read_file(m.p(r)) == data, "%s: content" % r)
            pr.eq(len(holders(m, r)), 1, "%s: tiers holding it (%s)" % (
                r, where(m, r)))
        pr.eq(temps(m), [], "temp files")
        pr.done()


def test_explain_and_dry_run_agree_with_the_run():
    # a tree with every reason to move or stay; explain, the dry run and
    # the run itself must give each file the same fate
    def populate(m):
        mkfile(m.t(0, "t", "bounce"), b"b" * 100)
        mkfile(m.t(1, "t", "hot"), b"h" * 100)
    pols = (policy("back", frm="t1", to="t0", paths=["/t/bounce"]) +
            policy("keep", action="exclude", paths=["/t/keep/*"]) +
            policy("cold", frm="t0", to="t1", age="1d"))
    with MigMount(pols, populate=populate,
                  migration={"min_residency": "1h",
                             "promote_after_reads": "2",
                             "promote_window": "1d"}) as m:
        m.migrate()     # bounce goes down, and may not come back for 1h
        eq(where(m, "t/bounce"), "t1", "bounce after the first run")
        files = ["t/old", "t/new", "t/keep/old", "t/pinned", "t/link1",
                 "t/sub/link2", "t/bounce", "t/hot"]
        for rel in ("t/old", "t/new", "t/keep/old", "t/pinned",
                    "t/link1"):
            os.makedirs(os.path.dirname(m.p(rel)), exist_ok=True)
            write_file(m.p(rel), rel.encode())
            if rel != "t/new":
                os.utime(m.p(rel), (OLD, OLD))
        os.makedirs(m.p("t", "sub"))
        os.link(m.p("t", "link1"), m.p("t", "sub", "link2"))
        rc, out, err = run([dfsctl_bin(), "-s", m.sock, "pin",
                            m.p("t", "pinned")])
        eq(rc, 0, "pin: %s" % err)
        read_file(m.p("t", "hot"))
        read_file(m.p("t", "hot"))
        want = {"t/old": "t1", "t/new": "t0", "t/keep/old": "t0",
                "t/pinned": "t0", "t/link1": "t1", "t/sub/link2": "t1",
                "t/bounce": "t1", "t/hot": "t0"}
        pr = Problems(m)
        explained = {}
        for rel in files:
            rc, out, err = run([dfsctl_bin(), "-s", m.sock, "explain",
                                m.p(rel)])
            pr.eq(rc, 0, "explain %s: %s" % (rel, err))
            moves = re.search(r"moves it to (\w+)", out)
            explained[rel] = (moves.group(1) if moves and "but it stays"
                              not in out else where(m, rel))
            pr.eq(explained[rel], want[rel], "explain %s: %r" % (rel, out))
        rc, out, err = run([dfsctl_bin(), "-s", m.sock, "--json", "migrate",
                            "--dry-run"])
        pr.eq(rc, 0, "dry run: %s" % err)
        plan = dry_run(out)
        # a link group moves as one file, listed by one of its names
        planned = sorted({os.stat(x["path"]).st_ino for x in plan["moves"]})
        pr.eq(planned, sorted({os.stat(m.p(r)).st_ino for r in files
                               if explained[r] != where(m, r)}),
              "the dry run's moves against explain's (inode numbers)")
        m.migrate()
        for rel in files:
            pr.eq(where(m, rel), want[rel], "%s after the run" % rel)
            pr.eq(read_file(m.p(rel)), b"h" * 100 if rel == "t/hot" else
                  b"b" * 100 if rel == "t/bounce" else
                  b"t/link1" if rel.endswith("link2") else rel.encode(),
                  "content of %s" % rel)
        pr.done()
