"""Placement with room: a tier short of its min_free takes no new names.

Tier 0 is a 16 MiB tmpfs with min_free = 2M; new files and directories go
to tier 1 while tier 0 is short, with their parents made there like the
originals, and to tier 0 again once it has room.  A write to an existing
file on a full tier fails with ENOSPC, and the log names the file.
"""

import errno
import json
import os
import stat

from dfstest import check, eq, read_file, wait_for, write_file
from test_migrate import (OLD, RUN_TIMEOUT, MigMount, Problems, dfsctl_bin,
                          policy, run, where)

MIN_FREE = 2 << 20
MiB = 1 << 20


def _free(m, i):
    sv = os.statvfs(m.t(i))
    return sv.f_bavail * sv.f_frsize


def _fill(m, name, limit=64 * MiB):
    """Write up to limit bytes to a new file through the mount; the error
    that stopped it (None if none) and the bytes written."""
    chunk = b"f" * MiB
    done = 0
    err = None
    fd = os.open(m.p(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        while done < limit:
            try:
                n = os.write(fd, chunk)
            except OSError as e:
                err = e.errno
                break
            done += n
    finally:
        try:
            os.close(fd)
        except OSError as e:
            err = err or e.errno
    return err, done


def _status_tier(m, i):
    rc, out, err = run([dfsctl_bin(), "-s", m.sock, "--json", "status"])
    eq((rc, err), (0, ""), "dfsctl --json status")
    return json.loads(out)["tiers"][i]


def _mode(path):
    st = os.stat(path)
    return (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def test_full_tier0_new_names_go_to_tier1():
    # the filler is excluded, so no run can make room behind the test
    with MigMount(policy("keep", action="exclude", paths=["/fill*"]),
                  tmpfs={0: "16m"}, migration={"interval": "0"},
                  tier_opts={0: "min_free = 2M"}) as m:
        os.mkdir(m.p("d0"))
        os.chmod(m.p("d0"), 0o750)
        os.chown(m.p("d0"), 1234, 5678)
        eq(where(m, "d0"), "t0", "d0 before the fill")

        err, done = _fill(m, "fill")
        pr = Problems(m)
        pr.eq(err, errno.ENOSPC, "the 64 MiB write into a 16 MiB tier 0")
        pr.check(8 * MiB <= done <= 16 * MiB,
                 "the fill stopped at %d bytes" % done)
        pr.eq(where(m, "fill"), "t0", "the filler")
        pr.check(_free(m, 0) < MIN_FREE, "tier 0 not short after the fill")
        st = _status_tier(m, 0)
        pr.eq((st.get("min_free"), st.get("room")), (MIN_FREE, False),
              "status of the full tier 0: min_free, room")
        pr.eq(_status_tier(m, 1).get("room"), True, "status: tier 1 room")
        pr.done()

        data = os.urandom(4 * MiB)
        write_file(m.p("new1"), data)
        os.makedirs(m.p("a", "b", "c"))
        write_file(m.p("a", "b", "c", "deep"), b"deep")
        write_file(m.p("d0", "in-d0"), b"in d0")
        os.symlink("new1", m.p("link1"))

        pr = Problems(m)
        pr.eq(where(m, "new1"), "t1", "a new file with tier 0 short")
        pr.eq(where(m, "a"), "t1", "mkdir -p: a")
        pr.eq(where(m, "a/b/c"), "t1", "mkdir -p: a/b/c")
        pr.eq(where(m, "a/b/c/deep"), "t1", "a file in the new dirs")
        pr.eq(where(m, "d0/in-d0"), "t1", "a new file in a tier-0 dir")
        pr.eq(where(m, "link1"), "t1", "a new symlink")
        pr.eq(where(m, "d0"), "t0+t1", "d0 made on tier 1 for its file")
        pr.eq(_mode(m.t(1, "d0")), (0o750, 1234, 5678),
              "d0 on tier 1: mode and owner of the original")
        pr.check(read_file(m.p("new1")) == data, "new1: content")
        pr.eq(read_file(m.p("a", "b", "c", "deep")), b"deep", "deep")
        pr.eq(read_file(m.p("d0", "in-d0")), b"in d0", "in-d0")
        pr.eq(sorted(os.listdir(m.p("d0"))), ["in-d0"], "listing of d0")
        pr.check("new files go to the next tier with room" in
                 m.full_log(), "no log line for tier 0 short of room")
        pr.done()

        # room again once the filler goes (its handle is released
        # asynchronously: wait, bounded, for the tmpfs to free it)
        os.unlink(m.p("fill"))
        ok = wait_for(lambda: _free(m, 0) > 4 * MIN_FREE, 10)
        check(ok, "tier 0 still short %d bytes free after the unlink" %
              _free(m, 0))
        write_file(m.p("after"), b"after")
        write_file(m.p("a", "b", "after"), b"after in a/b")
        os.mkdir(m.p("a", "b", "c", "dir-after"))
        pr = Problems(m)
        pr.eq(_status_tier(m, 0).get("room"), True,
              "status: tier 0 has room again")
        pr.eq(where(m, "after"), "t0", "a new file with room again")
        pr.eq(where(m, "a/b/after"), "t0", "a new file in a tier-1 dir")
        pr.eq(where(m, "a/b/c/dir-after"), "t0", "a new dir in a tier-1 dir")
        pr.eq(where(m, "a/b"), "t0+t1", "a/b made on tier 0")
        pr.eq(_mode(m.t(0, "a", "b")), _mode(m.t(1, "a", "b")),
              "a/b on tier 0: mode and owner of the tier-1 one")
        pr.eq(read_file(m.p("a", "b", "after")), b"after in a/b",
              "a/b/after")
        pr.check(read_file(m.p("new1")) == data, "new1 still readable")
        pr.eq(sorted(os.listdir(m.p("a", "b"))), ["after", "c"],
              "listing of a/b")
        pr.done()


def test_write_to_full_tier_fails_clearly():
    # an existing file on a full tier is not moved: its writer gets
    # ENOSPC, the log names the file, and what was written stays
    with MigMount(policy("keep", action="exclude", paths=["/*"]),
                  tmpfs={0: "16m"}, migration={"interval": "0"},
                  tier_opts={0: "min_free = 2M"}) as m:
        write_file(m.p("log"), b"")
        fd = os.open(m.p("log"), os.O_WRONLY | os.O_APPEND)
        line = b"x" * 4095 + b"\n"
        total = 0
        err = None
        try:
            while total < 32 * MiB:
                try:
                    total += os.write(fd, line)
                except OSError as e:
                    err = e.errno
                    break
        finally:
            os.close(fd)
        pr = Problems(m)
        pr.eq(err, errno.ENOSPC, "an O_APPEND writer on a full tier 0")
        pr.eq(where(m, "log"), "t0", "the appended file stays")
        got = read_file(m.p("log"))
        pr.eq(len(got), total, "size: the bytes the writes reported")
        pr.check(got == (line * (total // len(line) + 1))[:total],
                 "the appended file is not what was appended")
        write_file(m.p("next"), b"next")
        pr.eq(where(m, "next"), "t1", "the next new file")
        pr.eq(read_file(m.p("next")), b"next", "the next new file: content")
        lines = [l for l in m.full_log().splitlines()
                 if "No space left" in l]
        pr.check(lines and all("/log" in l for l in lines),
                 "the ENOSPC log lines do not name the file: %r" % lines[:3])
        pr.done()


def test_worker_makes_room_when_tier0_runs_short():
    # nothing excluded: the filler is the oldest file and goes down in a
    # room run, after which new files land on tier 0 again
    with MigMount(policy("never", to="t1", age="3650d"),
                  tmpfs={0: "16m"}, migration={"interval": "0"},
                  tier_opts={0: "min_free = 2M"}) as m:
        err, done = _fill(m, "old", limit=15 * MiB)
        os.utime(m.p("old"), (OLD, OLD))
        write_file(m.p("trigger"), b"t")
        # unwoken, the worker looks every 5 s: the create must wake it
        started = wait_for(lambda: "short of its min_free: moving" in
                           m.full_log(), 3.0)
        check(started, "no room run began within 3 s of the create")
        m.wait_runs(1, kind="watermark")
        ok = wait_for(lambda: where(m, "old") == "t1" and
                      _free(m, 0) > MIN_FREE, RUN_TIMEOUT)
        pr = Problems(m)
        pr.check(ok, "the oldest file did not leave the short tier 0 (%s, "
                 "%d bytes free)" % (where(m, "old"), _free(m, 0)))
        pr.eq(os.stat(m.p("old")).st_size, done, "old: size after the move")
        write_file(m.p("later"), b"later")
        pr.eq(where(m, "later"), "t0", "a new file once room is made")
        pr.done()


def test_min_free_changes_on_reload():
    # about 1 MiB left on tier 0: short of 2M, not of 256K, short of 50%
    with MigMount(policy("keep", action="exclude", paths=["/fill*"]),
                  tmpfs={0: "16m"}, migration={"interval": "0"},
                  tier_opts={0: "min_free = 2M"}) as m:
        err, done = _fill(m, "fill", limit=15 * MiB)
        eq(err, None, "writing 15 MiB into the 16 MiB tier 0")
        free = _free(m, 0)
        check(256 << 10 < free < MIN_FREE, "tier 0 has %d bytes free" % free)
        pr = Problems(m)
        for i, (opt, want) in enumerate((("min_free = 2M", "t1"),
                                         ("min_free = 256K", "t0"),
                                         ("min_free = 50%", "t1"))):
            if i > 0:
                m.tier_opts[0] = opt
                write_file(m.conf, m.config())
                rc, out, err = run([dfsctl_bin(), "-s", m.sock, "reload"])
                pr.eq((rc, err), (0, ""), "reload to %s" % opt)
            name = "f%d" % i
            write_file(m.p(name), name.encode())
            pr.eq(where(m, name), want, "a new file with %s" % opt)
        pr.check("tier t0 has room again" in m.full_log(),
                 "no log line for tier 0 with room again")
        pr.done()
