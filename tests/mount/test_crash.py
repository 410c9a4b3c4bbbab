"""SIGKILL of the daemon at random moments of migration runs: nothing lost,
nothing doubled, nothing changed.

About 2,000 small files (batched moves) and 3 large ones (moved alone, in
chunks) start on t0 under a policy that moves everything to t1.  Each round
starts a run (`dfsctl migrate --now`, not waiting), waits until files are
seen arriving on t1, lets a random moment pass, SIGKILLs the daemon and
starts it again on the same index; after recovery and the start-up scan,
every file must be on exactly one tier with its content, mode and mtime,
no temp file may be left, and the mount must list exactly the original
names.  A last run moves the rest.

Environment:
  DFS_SEED   seed of the files and of the kill moments (default: random;
             printed, and named in a failure)
"""

import hashlib
import os
import random
import shutil
import sqlite3
import stat
import tempfile
import time

from dfstest import TestFailure, wait_for
from test_migrate import (OLD, TMP_PREFIX, MigMount, Problems, dfsctl_bin,
                          dfsctl_has, holders, mkfile, policy, run, sha,
                          temps, where)

NSMALL = 2000
SMALL_MAX = 64 * 1024
NBIG = 3
BIG_MIN, BIG_MAX = 4 << 20, 12 << 20
ROUNDS = 8
DIRS = ("a", "b", "b/deep/er", "c", "d/e", "d/f", "g")
MODES = (0o644, 0o600, 0o640, 0o755, 0o444, 0o700, 0o664)
DAY_NS = 86400 * 10**9
PROGRESS_TIMEOUT = 20.0     # a run starts after the start-up scan
SCAN_TIMEOUT = 20.0
MAX_DELAY = 0.1             # the random moment after progress is seen
SHOW = 40                   # problems shown in full


def seed_from_env():
    s = os.environ.get("DFS_SEED")
    if s:
        return int(s, 0)
    return random.SystemRandom().randrange(1 << 32)


def _populate_files(rng):
    """rel -> content, from the seed."""
    files = {}
    for i in range(NSMALL):
        rel = "%s/s%04d" % (rng.choice(DIRS), i)
        files[rel] = rng.randbytes(rng.randint(0, SMALL_MAX))
    for i in range(NBIG):
        rel = "%s/big%d" % (rng.choice(DIRS), i)
        files[rel] = rng.randbytes(rng.randint(BIG_MIN, BIG_MAX))
    return files


class Want:
    """What each file must stay: content hash, mode, mtime, size."""

    def __init__(self):
        self.files = {}     # rel -> (sha, st_mode, mtime_ns, size)
        self.dirs = set()


def _make(m, rng, want):
    files = _populate_files(rng)
    old_ns = int(OLD) * 10**9
    nbig = 0
    for rel, data in files.items():
        p = m.t(0, rel)
        mkfile(p, data, when=False, mode=rng.choice(MODES))
        # distinct old mtimes: runs take the oldest first, so the large
        # files come about a fifth, two fifths, three fifths of the way
        if len(data) >= BIG_MIN:
            nbig += 1
            frac = rng.uniform(0.2, 0.25) * nbig
        else:
            frac = rng.random()
        mt = old_ns - DAY_NS + int(frac * DAY_NS)
        os.utime(p, ns=(mt, mt), follow_symlinks=False)
        st = os.lstat(p)
        want.files[rel] = (hashlib.sha256(data).hexdigest(), st.st_mode,
                           st.st_mtime_ns, st.st_size)
        d = os.path.dirname(rel)
        while d:
            want.dirs.add(d)
            d = os.path.dirname(d)


def _tree(root):
    """(files, dirs) below root, relative, temp files included."""
    files, dirs = set(), set()
    for d, dn, fn in os.walk(root):
        rd = os.path.relpath(d, root)
        for n in dn:
            dirs.add(os.path.normpath(os.path.join(rd, n)))
        for n in fn:
            files.add(os.path.normpath(os.path.join(rd, n)))
    return files, dirs


def _on(m, t, want):
    return sum(1 for rel in want.files if os.path.lexists(m.t(t, rel)))


def _scans(m):
    return m.full_log().count("scan complete:")


def _check(m, want, when, pr):
    """Every file once, intact, on the tiers and through the mount."""
    for rel, (h, mode, mtime, size) in sorted(want.files.items()):
        hold = holders(m, rel)
        pr.eq(len(hold), 1, "%s: %s: tiers holding it (%s)" % (
            when, rel, where(m, rel)))
        for t in hold:
            p = m.t(t, rel)
            st = os.lstat(p)
            pr.eq((oct(st.st_mode), st.st_mtime_ns, st.st_size),
                  (oct(mode), mtime, size),
                  "%s: %s on t%d: mode, mtime, size" % (when, rel, t))
            if stat.S_ISREG(st.st_mode):
                pr.eq(sha(p), h, "%s: %s: content on t%d" % (when, rel, t))
        try:
            st = os.lstat(m.p(rel))
            pr.eq((oct(st.st_mode), st.st_mtime_ns, st.st_size),
                  (oct(mode), mtime, size),
                  "%s: %s through the mount: mode, mtime, size" % (when, rel))
            pr.eq(sha(m.p(rel)), h, "%s: %s: content through the mount" % (
                when, rel))
        except OSError as e:
            pr.items.append("%s: %s through the mount: %s" % (when, rel, e))
    pr.eq(temps(m), [], "%s: temp files" % when)
    files, dirs = _tree(m.mnt)
    extra, missing = files - set(want.files), set(want.files) - files
    pr.check(not extra and not missing,
             "%s: names listed by the mount: %d extra %s, %d missing %s" % (
                 when, len(extra), sorted(extra)[:20], len(missing),
                 sorted(missing)[:20]))
    pr.eq(sorted(dirs), sorted(want.dirs), "%s: directories listed" % when)
    backing = set()
    for t in range(m.ntiers):
        backing |= _tree(m.t(t))[0]
    extra = backing - set(want.files)
    pr.check(not extra, "%s: other names on the tiers: %s" % (
        when, sorted(extra)[:20]))


def _journal(snap, names):
    """The journal rows in a copy of the index taken after a kill: how
    many in each state, and those of the paths in names in full."""
    dbs = [f for f in os.listdir(snap) if f.endswith(".db")]
    if not dbs:
        return "(no index in %s)" % snap
    try:
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(snap, dbs[0]),
                              uri=True)
        try:
            rows = con.execute(
                "SELECT inode, src, dst, parent, name, tmp, ino, size, "
                "mtime, state FROM journal ORDER BY inode").fetchall()
            dentry = dict(((r[0]), (r[1], r[2])) for r in con.execute(
                "SELECT inode, parent, name FROM dentry"))
        finally:
            con.close()
    except sqlite3.Error as e:
        return "(journal unreadable: %s)" % e

    def path(ino):
        parts = []
        while ino in dentry and len(parts) < 64:
            ino, name = dentry[ino]
            parts.append(name)
        return "/".join(reversed(parts))
    state = {1: "copying", 2: "switched"}
    count = {}
    shown = []
    for r in rows:
        st = state.get(r[9], str(r[9]))
        count[st] = count.get(st, 0) + 1
        rel = os.path.join(path(r[3]), r[4])
        if rel in names:
            shown.append("\n    %s: %s, inode %d t%d->t%d tmp %s, source "
                         "ino %d size %d mtime %d" % (
                             rel, st, r[0], r[1], r[2], r[5] or "-", r[6],
                             r[7], r[8]))
    return "%d row(s) (%s); of the files with problems: %s" % (
        len(rows), ", ".join("%d %s" % (v, k) for k, v in
                             sorted(count.items())),
        "".join(shown) if shown else "none")


class Round:
    def __init__(self, n):
        self.n = n
        self.info = []
        self.snap = None
        self.log_at = 0


def _kill_round(m, want, rng, rnd, keep_dir, rounds_left):
    before = _on(m, 1, want)
    left = len(want.files) - before
    # about an even share of what is left for each round and the last run
    share = max(1, left // (rounds_left + 1))
    on_t0 = sorted((v[2], rel) for rel, v in want.files.items()
                   if holders(m, rel) == [0])
    big = None
    for i, (mt, rel) in enumerate(on_t0):
        if want.files[rel][3] >= BIG_MIN:
            # the next large file, if this round's share reaches it
            if i <= share and rng.random() < 0.7:
                big = rel
            break
    if big is not None:
        big_tmp = m.t(1, os.path.dirname(big), "%s%d" % (
            TMP_PREFIX, os.lstat(m.p(big)).st_ino))
    rc, out, err = run([dfsctl_bin(), "-s", m.sock, "migrate", "--now"])
    if rc != 0:
        m._fail("round %d: dfsctl migrate --now: status %d\n%s%s" % (
            rnd.n, rc, out, err))
    if big is not None:
        # its temp appears on t1 (or it has moved already): polled often,
        # as the copy of a few MiB takes a few tens of ms
        deadline = time.monotonic() + PROGRESS_TIMEOUT
        while not (os.path.lexists(big_tmp) or holders(m, big) != [0] or
                   not m.alive()):
            if time.monotonic() > deadline:
                m._fail("round %d: the copy of %s did not start within "
                        "%.0f s" % (rnd.n, big, PROGRESS_TIMEOUT))
            time.sleep(0.001)
        how = "%s's temp %s" % (big, "seen" if os.path.lexists(big_tmp)
                                else "missed")
        delay = rng.uniform(0, 0.015)
    elif left > 0:
        # some progress first, a random amount of it, then a random moment
        goal = before + rng.randint(1, max(1, share // 2))
        if not wait_for(lambda: _on(m, 1, want) >= goal or not m.alive(),
                        PROGRESS_TIMEOUT):
            m._fail("round %d: fewer than %d files on t1 after %.0f s "
                    "(%d)" % (rnd.n, goal, PROGRESS_TIMEOUT,
                              _on(m, 1, want)))
        how = "%d files on t1" % (goal - before)
        delay = rng.uniform(0, MAX_DELAY)
    else:
        how = "nothing left to move"
        delay = rng.uniform(0, MAX_DELAY)
    if not m.alive():
        m._fail("round %d: dfs died (status %s)" % (
            rnd.n, m.proc.returncode))
    time.sleep(delay)       # choosing the moment, not waiting for anything
    m.proc.kill()
    m.proc.wait()
    t0, t1 = _on(m, 0, want), _on(m, 1, want)
    tmp = temps(m)
    if big is not None:
        how += ", at the kill on %s%s" % (where(m, big), " + its temp (%d "
                                          "bytes)" % os.lstat(big_tmp).st_size
                                          if os.path.lexists(big_tmp) else "")
    rnd.info.append("round %d: killed %.3f s after %s (%d on t1 before "
                    "the run); at the kill: %d on t0, %d on t1, %d temps "
                    "%s" % (rnd.n, delay, how, before, t0, t1, len(tmp),
                            sorted(tmp)[:4] + (["..."] if len(tmp) > 4
                                               else [])))
    # the index as the kill left it, for the report of a failure
    rnd.snap = os.path.join(keep_dir, "index-round%d" % rnd.n)
    os.makedirs(rnd.snap)
    state = os.path.join(m.root, "state")
    for f in os.listdir(state):
        if f.startswith("index"):
            shutil.copy2(os.path.join(state, f), rnd.snap)
    rnd.log_at = len(m.full_log())
    scans = _scans(m)
    m.restart_after_crash()
    if not wait_for(lambda: _scans(m) > scans or not m.alive(),
                    SCAN_TIMEOUT):
        m._fail("round %d: no scan completed %.0f s after the restart" % (
            rnd.n, SCAN_TIMEOUT))
    if not m.alive():
        m._fail("round %d: dfs died after the restart (status %s)" % (
            rnd.n, m.proc.returncode))


def _report(m, want, pr, seed, rnd, keep_dir):
    """Fail with the round's story: seed, kill moment, journal, recovery."""
    if not pr.items:
        return
    items = pr.items
    log = m.full_log()
    shutil.copy2(m.log, os.path.join(keep_dir, "dfs.log"))
    since = log[rnd.log_at:] if rnd is not None else log
    names = set(rel for rel in want.files
                if any(rel + ":" in i or rel + " " in i for i in items))
    bases = set("(%s)" % os.path.basename(rel) for rel in names)
    recovered = [l for l in since.splitlines() if "recovered" in l]
    lines = [l for l in since.splitlines()
             if ("recovered" in l and any(b in l for b in bases)) or
             "stray" in l or "error" in l.lower() or "warn" in l.lower()]
    head = ["DFS_SEED=%d; %d problem(s); log and index copies kept in %s" % (
        seed, len(items), keep_dir)]
    if rnd is not None:
        head += rnd.info
        head.append("journal at the kill: " + _journal(rnd.snap, names))
        head.append("the restart recovered %d move(s); its log lines on "
                    "the files with problems, strays, errors, warnings:"
                    "\n    %s" % (len(recovered),
                                  "\n    ".join(lines[:60]) or "none"))
    shown = items[:SHOW] + (["... %d more" % (len(items) - SHOW)]
                            if len(items) > SHOW else [])
    pr.items = head + shown
    pr.done()


def test_kill_at_random_moments_during_migration():
    if not dfsctl_has("migrate"):
        raise TestFailure("dfsctl has no migrate command (dfsctl -h)")
    seed = seed_from_env()
    print("crash test: DFS_SEED=%d" % seed, flush=True)
    rng = random.Random(seed)
    want = Want()
    keep_dir = tempfile.mkdtemp(prefix="dfs-crash.")
    failed = True
    try:
        with MigMount(policy("all", to="t1"),
                      populate=lambda m: _make(m, rng, want)) as m:
            try:
                for n in range(ROUNDS):
                    rnd = Round(n)
                    _kill_round(m, want, rng, rnd, keep_dir, ROUNDS - n)
                    pr = Problems(m)
                    _check(m, want, "round %d, after the restart" % n, pr)
                    _report(m, want, pr, seed, rnd, keep_dir)
                    print("  " + rnd.info[-1], flush=True)
                m.migrate()
                pr = Problems(m)
                for rel in sorted(want.files):
                    pr.eq(where(m, rel), "t1", "after the last run: %s" %
                          rel)
                _check(m, want, "after the last run", pr)
                _report(m, want, pr, seed, None, keep_dir)
            except BaseException:
                # the whole log, before the mount's cleanup removes it
                shutil.copy2(m.log, os.path.join(keep_dir, "dfs.log"))
                print("crash test failed: DFS_SEED=%d; log and index "
                      "copies in %s" % (seed, keep_dir), flush=True)
                raise
        failed = False
    finally:
        if not failed:
            shutil.rmtree(keep_dir, ignore_errors=True)
