"""The index against real mounts: stale rows repaired, changes made behind
dfs's back found by `dfsctl scan`, conflicts served from the fastest tier
and never deleted, a kill -9 during namespace churn repaired at the next
start, a rename of a big directory changing one dentry row, `dfsctl where`.

(Inode numbers across a remount: test_links.py.)
"""

import json
import os
import sqlite3
import threading
import time

from dfstest import (check, eq, read_file, tiers_holding, unmount, wait_for,
                     write_file)
from test_ctl import CtlMount, dfsctl, ok


def index_db(m):
    return os.path.join(m.root, "index.db")


def scan_state(m):
    rc, out, err = dfsctl("--json", "scan", "--status", sock=m.sock)
    eq(rc, 0, "scan --status: exit status (%r)" % err)
    return json.loads(out)


def wait_scanned(m, timeout=60):
    """Until the scan dfs runs at start has completed."""
    def done():
        s = scan_state(m)
        return not s["running"] and s["state"] == "complete" and s
    s = wait_for(done, timeout, interval=0.05)
    check(s, "no completed scan after %d s: %r" % (timeout, scan_state(m)))
    return s


def dentries(m):
    """Every dentry row (parent, name, inode), read-only, beside dfs."""
    db = sqlite3.connect("file:%s?mode=ro" % index_db(m), uri=True,
                         timeout=30)
    try:
        return set(db.execute("SELECT parent, name, inode FROM dentry"))
    finally:
        db.close()


def index_has(m, parent, name):
    db = sqlite3.connect("file:%s?mode=ro" % index_db(m), uri=True,
                         timeout=30)
    try:
        return db.execute("SELECT count(*) FROM dentry WHERE parent = ? "
                          "AND name = ?", (parent, name)).fetchone()[0]
    finally:
        db.close()


def enoent(path):
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    return False


# --- stale rows ---------------------------------------------------------------

def test_stale_row_removed_behind_back():
    def pop(m):
        write_file(m.t(0, "gone"), "x")
        os.mkdir(m.t(1, "d"))
        write_file(m.t(1, "d", "gone1"), "y")
        write_file(m.t(0, "kept"), "k")
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        root = os.lstat(m.p()).st_ino
        check(index_has(m, root, "gone"), "gone is in the index")
        # never looked up through the mount, so no kernel cache hides it
        os.unlink(m.t(0, "gone"))
        os.unlink(m.t(1, "d", "gone1"))
        check(enoent(m.p("gone")), "a file removed behind dfs's back: "
              "ENOENT")
        check(enoent(m.p("d", "gone1")), "same, on tier 1 in a subdir")
        # changes reach the index file with the next group commit
        d = os.lstat(m.p("d")).st_ino
        check(wait_for(lambda: index_has(m, root, "gone") == 0, 5),
              "its row is still in the index")
        check(wait_for(lambda: index_has(m, d, "gone1") == 0, 5),
              "its row is still in the index (tier 1)")
        eq(sorted(os.listdir(m.p())), ["d", "kept"], "listing")
        eq(os.listdir(m.p("d")), [], "listing of d")
        rc, out, err = dfsctl("where", "gone", sock=m.sock)
        eq(rc, 1, "where gone: exit status")
        eq(err, "dfsctl: gone: not in the index\n", "where gone: message")
        eq(read_file(m.p("kept")), b"k", "the other file")


def test_stale_row_moved_behind_back():
    def pop(m):
        write_file(m.t(0, "mv"), "renamed across")
        write_file(m.t(0, "cp"), "copied across")
        os.mkdir(m.t(0, "d"))
        os.mkdir(m.t(1, "d"))
        write_file(m.t(0, "d", "f"), "deep")
    # Lookups repair what they find stale once the kernel asks again; with
    # the default minute a scan would tell it first (the test above).
    with CtlMount(populate=pop,
                  opts="entry_timeout=1,attr_timeout=1") as m:
        wait_scanned(m)
        eq(ok(m, "where", "mv", "cp", "d/f"),
           "mv  tier0\ncp  tier0\nd/f  tier0\n", "where before")
        os.lstat(m.p("d", "f"))     # the kernel holds its node now
        # the same inode (rename), a new one (copy and unlink), and one
        # the kernel holds a node for
        os.rename(m.t(0, "mv"), m.t(1, "mv"))
        write_file(m.t(1, "cp"), read_file(m.t(0, "cp")))
        os.unlink(m.t(0, "cp"))
        os.rename(m.t(0, "d", "f"), m.t(1, "d", "f"))
        time.sleep(1.1)     # past the entry and attribute timeouts
        eq(read_file(m.p("mv")), b"renamed across", "mv content")
        eq(read_file(m.p("cp")), b"copied across", "cp content")
        eq(read_file(m.p("d", "f")), b"deep", "d/f content")
        eq(ok(m, "where", "mv", "cp", "d/f"),
           "mv  tier1\ncp  tier1\nd/f  tier1\n", "where after the repair")
        eq(sorted(os.listdir(m.p())), ["cp", "d", "mv"], "listing")


def scan_joins_dir(early):
    """A directory made through the mount lives on tier 0 only; a file put
    on tier 1 behind dfs's back in the same directory (made there before
    or after the mkdir) must be served once a scan has found it, and
    looking it up must not throw its index row away."""
    with CtlMount() as m:
        wait_scanned(m)
        os.mkdir(m.p("d"))
        if early:
            os.makedirs(m.t(1, "d", "y"))
        os.mkdir(m.p("d", "y"))
        eq(os.listdir(m.p("d", "y")), [], "the new directory")
        eq(tiers_holding(m, "d", "y"), [0, 1] if early else [0],
           "tiers holding d/y")
        if not early:
            os.makedirs(m.t(1, "d", "y"))
        write_file(m.t(1, "d", "y", "f"), "data\n")
        out = ok(m, "scan", "--wait")
        check("complete" in out, "scan --wait output:\n" + out)
        eq(os.listdir(m.p("d", "y")), ["f"], "listing after the scan")
        eq(read_file(m.p("d", "y", "f")), b"data\n", "d/y/f content")
        eq(os.listdir(m.p("d", "y")), ["f"], "listing after the read")
        y = os.lstat(m.p("d", "y")).st_ino
        check(index_has(m, y, "f"), "the row of d/y/f is in the index")
        eq(ok(m, "where", "d/y", "d/y/f"), "d/y  tier0,tier1\n"
           "d/y/f  tier1\n", "where")


def test_scan_joins_dir_made_before():
    scan_joins_dir(early=True)


def test_scan_joins_dir_made_after():
    scan_joins_dir(early=False)


def test_dir_remade_behind_back():
    """dfs holds a handle on d/y on tier 1; behind its back d/y is removed
    there and made again with a new file: once a scan has found the file,
    it is served, and its row stays."""
    def pop(m):
        for t in (0, 1):
            os.makedirs(m.t(t, "d", "y"))
        write_file(m.t(1, "d", "y", "old"), "old\n")
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        eq(read_file(m.p("d", "y", "old")), b"old\n", "d/y/old")
        os.unlink(m.t(1, "d", "y", "old"))
        os.rmdir(m.t(1, "d", "y"))
        os.mkdir(m.t(1, "d", "y"))
        write_file(m.t(1, "d", "y", "f"), "data\n")
        ok(m, "scan", "--wait")
        eq(os.listdir(m.p("d", "y")), ["f"], "listing after the scan")
        eq(read_file(m.p("d", "y", "f")), b"data\n", "d/y/f content")
        y = os.lstat(m.p("d", "y")).st_ino
        check(index_has(m, y, "f"), "the row of d/y/f is in the index")
        eq(os.listdir(m.p("d", "y")), ["f"], "listing after the read")


def restart_with_new_index(m):
    """Unmount, drop the index, and start again: the first scan once more."""
    how = unmount(m.mnt)
    check(how == "unmounted", "unmount: %s" % how)
    m.proc.wait(timeout=30)
    m._logf.close()
    m._logf = None
    m._was_mounted = False
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(index_db(m) + suffix)
        except FileNotFoundError:
            pass
    m._start()


def test_lookups_during_first_scan():
    """The first scan of an empty index runs with the mount serving: names
    looked up before the scan reaches them are given inodes then, and the
    scan must keep those, or the tree splits in two (the kernel's nodes
    lead to rows no path from the root reaches) and later renames and
    unlinks miss the rows that listings are served from."""
    def pop(m):
        # a directory that keeps the scan busy while z is looked up
        os.mkdir(m.t(0, "a"))
        for i in range(10000):
            os.close(os.open(m.t(0, "a", "f%05d" % i),
                             os.O_CREAT | os.O_WRONLY, 0o644))
        os.makedirs(m.t(0, "z", "deep"))
        write_file(m.t(0, "z", "deep", "f"), "f\n")
        write_file(m.t(0, "z", "deep", "h"), "h\n")
    with CtlMount(populate=pop) as m:
        # the lookups must come while the scan is still busy with a/: on
        # a fast machine that may take a few starts over an empty index
        for attempt in range(10):
            inos = dict((rel, os.lstat(m.p(*rel.split("/"))).st_ino)
                        for rel in ("z", "z/deep", "z/deep/f", "z/deep/h"))
            running = scan_state(m)["running"]
            wait_scanned(m)
            if running:
                break
            restart_with_new_index(m)
        check(running, "the scan ended before the lookups, %d times: "
              "nothing was tested" % (attempt + 1))
        out = ok(m, "--json", "where", *sorted(inos))
        eq(dict((o["path"], o["inode"]) for o in map(
            json.loads, out.splitlines())), inos, "inodes in the index")
        os.rename(m.p("z", "deep", "f"), m.p("z", "deep", "g"))
        os.unlink(m.p("z", "deep", "h"))
        eq(os.listdir(m.p("z", "deep")), ["g"], "listing")
        rc, out, err = dfsctl("where", "z/deep/g", "z/deep/f", "z/deep/h",
                              sock=m.sock)
        eq((out, err), ("z/deep/g  tier0\n",
                        "dfsctl: z/deep/f: not in the index\n"
                        "dfsctl: z/deep/h: not in the index\n"),
           "where after the rename and the unlink")
        m.remount()
        wait_scanned(m)
        eq(os.listdir(m.p("z", "deep")), ["g"], "listing after a remount")
        eq(read_file(m.p("z", "deep", "g")), b"f\n", "z/deep/g")


def test_scan_finds_new_files():
    def pop(m):
        os.mkdir(m.t(1, "old"))
        write_file(m.t(1, "old", "a"), "a")
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        # behind dfs's back, after the scan: in a known directory, in a new
        # one, on either tier
        write_file(m.t(1, "new1"), "1")
        write_file(m.t(1, "old", "new2"), "2")
        os.makedirs(m.t(0, "nd", "deeper"))
        write_file(m.t(0, "nd", "deeper", "new3"), "3")
        # a full scan has completed, so the index answers a listing alone
        eq(sorted(os.listdir(m.p())), ["old"], "listing before the scan")

        out = ok(m, "scan", "--wait")
        check("complete" in out, "scan --wait output:\n" + out)
        eq(sorted(os.listdir(m.p())), ["nd", "new1", "old"],
           "root listing after the scan")
        eq(sorted(os.listdir(m.p("old"))), ["a", "new2"],
           "old/ listing after the scan")
        eq(read_file(m.p("new1")), b"1", "new1")
        eq(read_file(m.p("old", "new2")), b"2", "old/new2")
        eq(read_file(m.p("nd", "deeper", "new3")), b"3", "nd/deeper/new3")
        eq(ok(m, "where", "new1", "nd/deeper/new3"),
           "new1  tier1\nnd/deeper/new3  tier0\n", "where")
        s = json.loads(ok(m, "--json", "scan", "--status"))
        eq((s["state"], s["running"], s["error"]), ("complete", False, None),
           "scan status")
        check(s["files"] == 4 and s["dirs"] >= 4, "counts: %r" % s)

        # a second scan while one runs is refused; --json forms
        j = json.loads(ok(m, "--json", "scan"))
        eq(j, {"started": True}, "scan --json")
        wait_scanned(m)


def test_scan_tells_the_kernel_what_changed_behind_back():
    """The kernel keeps names and attributes for a minute (entry_timeout,
    attr_timeout): a scan that finds a change made on a tier directly must
    make it drop what it holds, at once."""
    def pop(m):
        write_file(m.t(0, "grown"), "a")
        write_file(m.t(1, "gone"), "g")
        write_file(m.t(0, "other"), "old")
        os.mkdir(m.t(1, "dir"))
        write_file(m.t(1, "dir", "f"), "f")
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        # the kernel now holds each of these, and that "later" is absent
        eq(os.lstat(m.p("grown")).st_size, 1, "grown: size")
        check(os.path.exists(m.p("gone")), "gone is there")
        ino = os.lstat(m.p("other")).st_ino
        eq(read_file(m.p("dir", "f")), b"f", "dir/f")
        check(enoent(m.p("later")), "later: not yet")

        write_file(m.t(0, "grown"), "abcdef")
        os.unlink(m.t(1, "gone"))
        os.unlink(m.t(0, "other"))
        write_file(m.t(1, "other"), "new!")
        os.unlink(m.t(1, "dir", "f"))
        os.rmdir(m.t(1, "dir"))
        write_file(m.t(1, "later"), "l")
        ok(m, "scan", "--wait")

        eq(os.lstat(m.p("grown")).st_size, 6, "grown: size after the scan")
        eq(read_file(m.p("grown")), b"abcdef", "grown: content")
        check(enoent(m.p("gone")), "gone: still there after the scan")
        st = os.lstat(m.p("other"))
        check(st.st_ino != ino, "other: the old file's inode number")
        eq(read_file(m.p("other")), b"new!", "other: content")
        check(enoent(m.p("dir")), "dir: still there after the scan")
        eq(read_file(m.p("later")), b"l", "later: after the scan")
        eq(sorted(os.listdir(m.p())), ["grown", "later", "other"],
           "listing")


def test_scan_busy():
    def pop(m):
        # enough directories that a scan takes a moment
        for i in range(300):
            d = m.t(1, "d%03d" % i)
            os.mkdir(d)
            for j in range(30):
                os.close(os.open(os.path.join(d, "f%d" % j),
                                 os.O_CREAT | os.O_WRONLY, 0o644))
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        busy = 0
        for _ in range(20):
            rc, out, err = dfsctl("scan", sock=m.sock)
            eq(rc, 0, "scan: %r" % err)
            eq(out, "scan started\n", "scan output")
            rc, out, err = dfsctl("scan", sock=m.sock)
            if rc == 1:
                eq(err, "dfsctl: a scan is already running\n", "busy")
                eq(out, "", "busy: stdout")
                busy += 1
                # --wait follows the running scan instead
                rc, out, err = dfsctl("scan", "--wait", sock=m.sock)
                eq(rc, 0, "scan --wait during a scan: %r" % err)
                check("complete" in out, "scan --wait output:\n" + out)
            wait_scanned(m)
        check(busy > 0, "a second scan was never refused")
        eq(wait_scanned(m)["files"], 9000, "files scanned")


# --- conflicts ----------------------------------------------------------------

def test_conflicts_served_from_fastest_never_deleted():
    def pop(m):
        write_file(m.t(0, "same"), "fast copy")
        write_file(m.t(1, "same"), "slow copy")
        for t in (0, 1):
            os.makedirs(m.t(t, "d", "e"))
            write_file(m.t(t, "d", "e", "x"), "x on %d" % t)
        write_file(m.t(1, "only1"), "1")
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        eq(read_file(m.p("same")), b"fast copy", "served from tier 0")
        eq(read_file(m.p("d", "e", "x")), b"x on 0", "deep: from tier 0")
        eq(sorted(os.listdir(m.p())), ["d", "only1", "same"],
           "each name once")

        eq(ok(m, "conflicts"),
           "%s  tier0  shadowed on tier1\n%s  tier0  shadowed on tier1\n" %
           (m.p("same"), m.p("d", "e", "x")), "conflicts")
        j = json.loads(ok(m, "--json", "conflicts"))
        eq(j["total"], 2, "total")
        eq(j["truncated"], False, "truncated")
        eq(sorted((c["path"], tuple(c["served"]), tuple(c["shadowed"]))
                  for c in j["conflicts"]),
           [(m.p("d", "e", "x"), ("tier0",), ("tier1",)),
            (m.p("same"), ("tier0",), ("tier1",))], "conflicts --json")
        st = json.loads(ok(m, "--json", "status"))
        eq(st["conflicts"], 2, "conflicts in status")
        check("conflicts    2" in ok(m, "status"), "status text")

        # writes go to the served copy; the shadowed one is untouched
        write_file(m.p("same"), "new fast")
        m.remount()
        wait_scanned(m)
        eq(read_file(m.t(1, "same")), b"slow copy", "tier 1 copy kept")
        eq(read_file(m.t(1, "d", "e", "x")), b"x on 1", "deep copy kept")
        eq(read_file(m.p("same")), b"new fast", "served copy")
        eq(json.loads(ok(m, "--json", "status"))["conflicts"], 2,
           "conflicts after a remount")


def test_no_conflicts():
    with CtlMount() as m:
        wait_scanned(m)
        eq(ok(m, "conflicts"), "no conflicts\n", "none")
        eq(json.loads(ok(m, "conflicts", "--json")),
           {"conflicts": [], "total": 0, "truncated": False}, "none, json")
        eq(json.loads(ok(m, "--json", "status"))["conflicts"], 0, "status")


# --- crash during churn -----------------------------------------------------

def tier_union(m):
    """Relative paths of everything on the tiers (dfs's temp files aside)."""
    names = set()
    for t in range(m.ntiers):
        base = m.t(t)
        for dirpath, dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, base)
            for n in dirs + files:
                if n.startswith(".dfs-tmp."):
                    continue
                names.add(os.path.normpath(os.path.join(rel, n)))
    return names


def mount_listing(m):
    """Relative paths through the mount; each directory's names once."""
    names = set()
    for dirpath, dirs, files in os.walk(m.p()):
        listed = dirs + files
        eq(len(listed), len(set(listed)), "duplicates in %s" % dirpath)
        rel = os.path.relpath(dirpath, m.p())
        for n in listed:
            names.add(os.path.normpath(os.path.join(rel, n)))
    return names


def churn(m, stop, errors):
    i = 0
    while not stop.is_set():
        d = m.p("c%d" % (i % 8))
        try:
            if i % 97 == 0:
                os.makedirs(d, exist_ok=True)
            f = os.path.join(d, "f%d" % i)
            write_file(f, "%d" % i)
            os.rename(f, os.path.join(d, "g%d" % i))
            if i % 3 == 0:
                os.unlink(os.path.join(d, "g%d" % i))
            if i % 5 == 0:
                os.rename(m.p("base", "b%d" % (i % 50)),
                          m.p("base", "b%d" % ((i + 1) % 50)))
        except FileNotFoundError:
            pass
        except OSError as e:
            errors.append(e)
            if len(errors) > 5:
                return
        i += 1


def restart_after_kill(m):
    m.proc.kill()
    m.proc.wait()
    how = unmount(m.mnt)
    check(how in ("unmounted", "not mounted") or how.startswith("lazily"),
          "unmount after kill: %s" % how)
    m._logf.close()
    m._logf = None
    m._was_mounted = False
    m._start()


def test_kill9_during_churn():
    def pop(m):
        os.mkdir(m.t(0, "base"))
        os.mkdir(m.t(1, "base"))
        for i in range(0, 50, 2):
            write_file(m.t(0, "base", "b%d" % i), "%d" % i)
            write_file(m.t(1, "base", "b%d" % (i + 1)), "%d" % (i + 1))
        for t in (0, 1):
            for i in range(4):
                os.makedirs(m.t(t, "c%d" % i))
    with CtlMount(populate=pop) as m:
        for rnd in range(3):
            if rnd == 0:
                time.sleep(0.05)    # the start-up scan is still running
            else:
                wait_scanned(m)
            stop, errors = threading.Event(), []
            th = threading.Thread(target=churn, args=(m, stop, errors))
            th.start()
            time.sleep(1.0)
            restart_after_kill(m)
            stop.set()
            th.join(30)
            check(not th.is_alive(), "churn thread stuck")
            # before the scan completes: probes and repairs
            union = tier_union(m)
            eq(mount_listing(m), union, "round %d: mount vs tiers, before "
               "the scan" % rnd)
            wait_scanned(m)
            union = tier_union(m)
            eq(mount_listing(m), union, "round %d: mount vs tiers, after "
               "the scan" % rnd)
            inos = {}
            for rel in union:
                st = os.lstat(m.p(rel))
                check(st.st_ino not in inos, "%s and %s share st_ino %d" % (
                    rel, inos.get(st.st_ino), st.st_ino))
                inos[st.st_ino] = rel
            # every file once, with its content
            for rel in union:
                if rel.startswith("base/b"):
                    check(read_file(m.p(rel)).isdigit(), "content of " + rel)


# --- one row per rename -----------------------------------------------------

def test_rename_of_big_directory_changes_one_row():
    n_dirs, n_files = 100, 1000

    def pop(m):
        big = m.t(0, "big")
        os.mkdir(big)
        for i in range(n_dirs):
            d = os.path.join(big, "d%03d" % i)
            os.mkdir(d)
            for j in range(n_files):
                os.close(os.open(os.path.join(d, "f%d" % j),
                                 os.O_CREAT | os.O_WRONLY, 0o644))
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        before = dentries(m)
        check(len(before) >= n_dirs * n_files, "rows: %d" % len(before))
        ino = os.lstat(m.p("big")).st_ino
        t = time.monotonic()
        os.rename(m.p("big"), m.p("big2"))
        took = time.monotonic() - t
        # the rename reaches the index file with the next group commit
        after = wait_for(lambda: (lambda a: a != before and a)(dentries(m)),
                         5) or dentries(m)
        eq(before - after, {(1, "big", ino)}, "the row that went")
        eq(after - before, {(1, "big2", ino)}, "the row that came")
        check(took < 2.0, "rename took %.2f s" % took)
        eq(os.lstat(m.p("big2", "d042", "f999")).st_ino,
           next(r[2] for r in before if r[1] == "f999" and
                r[0] == os.lstat(m.p("big2", "d042")).st_ino),
           "a descendant keeps its inode")
        eq(ok(m, "where", "big2/d099/f0"), "big2/d099/f0  tier0\n", "where")


# --- where --------------------------------------------------------------------

def test_where():
    def pop(m):
        write_file(m.t(0, "a"), "a")
        write_file(m.t(1, "b"), "b")
        os.mkdir(m.t(0, "d"))
        os.mkdir(m.t(1, "d"))
        os.mkdir(m.t(1, "only1"))
        write_file(m.t(1, "only1", "x"), "x")
        write_file(m.t(0, "d", "y"), "y")
        os.symlink("a", m.t(1, "ln"))
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        eq(ok(m, "where", "a", "b", "d", "only1", "only1/x", "d/y", "ln"),
           "a  tier0\nb  tier1\nd  tier0,tier1\nonly1  tier1\n"
           "only1/x  tier1\nd/y  tier0\nln  tier1\n", "where, relative")
        # absolute, redundant slashes and dots; the root
        eq(ok(m, "where", m.p("b"), m.mnt + "//./d/../only1/x", m.mnt),
           "%s  tier1\n%s//./d/../only1/x  tier1\n%s  tier0,tier1\n" % (
               m.p("b"), m.mnt, m.mnt), "where, absolute")
        # created through the mount: tier 0
        write_file(m.p("only1", "new"), "n")
        eq(ok(m, "where", "only1", "only1/new"),
           "only1  tier0,tier1\nonly1/new  tier0\n", "made on tier 0")

        out = ok(m, "--json", "where", "a", "d")
        objs = [json.loads(line) for line in out.splitlines()]
        eq([(o["path"], o["type"], o["tiers"]) for o in objs],
           [("a", "file", ["tier0"]), ("d", "directory", ["tier0", "tier1"])],
           "where --json")
        eq(objs[0]["inode"], os.lstat(m.p("a")).st_ino, "inode")

        # errors: one line each, the others still answered, exit 1
        rc, out, err = dfsctl("where", "nope", "a", "a/x", "/elsewhere",
                              sock=m.sock)
        eq(rc, 1, "where with errors: exit status")
        eq(out, "a  tier0\n", "the good path still answered")
        eq(err.splitlines(), [
            "dfsctl: nope: not in the index",
            "dfsctl: a/x: not a directory",
            "dfsctl: /elsewhere: not under the mount point %s" % m.mnt],
           "error lines")
        rc, out, err = dfsctl("where", sock=m.sock)
        eq(rc, 2, "where without a path")
        check("usage:" in err, "usage")


def _restart_with(m, change):
    """Stop dfs cleanly, change the tiers with it down, start it again."""
    eq(unmount(m.mnt), "unmounted", "unmount")
    eq(m.proc.wait(timeout=30), 0, "dfs exit status")
    m._logf.close()
    m._logf = None
    m._was_mounted = False
    change()
    m._start()


def test_restart_serves_the_index_at_once_and_finds_what_changed():
    def pop(m):
        # enough files that the start-up scan takes a moment
        for i in range(60):
            d = m.t(1, "big", "d%02d" % i)
            os.makedirs(d)
            for j in range(1000):
                os.mknod(os.path.join(d, "f%d" % j))
        for rel, t in (("c/keep", 1), ("c/gone", 1), ("c/ren", 1),
                       ("c/size", 0), ("d/sub/x", 1)):
            os.makedirs(os.path.dirname(m.t(t, rel)), exist_ok=True)
            write_file(m.t(t, rel), rel)
    with CtlMount(populate=pop) as m:
        wait_scanned(m)
        ino = os.stat(m.p("c", "keep")).st_ino

        def change():
            write_file(m.t(1, "c", "added"), "added")
            os.unlink(m.t(1, "c", "gone"))
            os.rename(m.t(1, "c", "ren"), m.t(1, "c", "ren2"))
            write_file(m.t(0, "c", "size"), "a longer content")
            os.utime(m.t(0, "c", "size"), (1000000000, 1000000000))
            os.rename(m.t(1, "d", "sub"), m.t(1, "d", "sub2"))
            os.makedirs(m.t(0, "newdir"))
            write_file(m.t(0, "newdir", "f"), "new")
        _restart_with(m, change)
        # served from the index while the scan runs: a miss probes nothing
        s = scan_state(m)
        check(s["indexed"], "the index serves at once: %r" % s)
        check("whole at the last stop" in m.log_text(), "log says so")
        check(enoent(m.p("big", "d07", "nothere")), "a miss")
        eq(os.stat(m.p("c", "keep")).st_ino, ino, "inode of c/keep")

        wait_scanned(m)
        eq(sorted(os.listdir(m.p("c"))), ["added", "keep", "ren2", "size"],
           "c/ after the scan")
        eq(read_file(m.p("c", "added")), b"added", "added while down")
        check(enoent(m.p("c", "gone")), "removed while down")
        check(enoent(m.p("c", "ren")), "renamed away while down")
        eq(read_file(m.p("c", "ren2")), b"c/ren", "renamed to while down")
        st = os.stat(m.p("c", "size"))
        eq((st.st_size, int(st.st_mtime)), (16, 1000000000),
           "size and mtime changed while down")
        eq(sorted(os.listdir(m.p("d"))), ["sub2"], "d/ after the scan")
        eq(read_file(m.p("d", "sub2", "x")), b"d/sub/x", "renamed directory")
        eq(read_file(m.p("newdir", "f")), b"new", "a new directory")
        eq(len(os.listdir(m.p("big", "d59"))), 1000, "big/d59")

        # after a kill -9 the index is not trusted: full scan, probes
        m.proc.kill()
        m.proc.wait(timeout=30)
        m.proc = None
        m._logf.close()
        m._logf = None
        before = m.log_text().count("whole at the last stop")
        m._start()
        wait_scanned(m)
        eq(m.log_text().count("whole at the last stop"), before,
           "no trust after a kill -9")
        eq(os.stat(m.p("c", "keep")).st_ino, ino, "inode of c/keep")
