"""The control socket and dfsctl against a running mount: output forms,
exit codes, another uid refused, malformed requests leaving the daemon
serving.

The daemon gets its socket with `-o ctl=PATH`; dfsctl is $DFSCTL_BIN
(default: next to $DFS_BIN).
"""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

from dfstest import (Mount, as_user, check, dfs_bin, dry_run, eq, is_mounted,
                     kill_pid, mounts_under, read_file, rss_kib,
                     tiers_holding, unmount, write_file)

# dfs-protocol.h, version 1: host byte order, 32 bytes.
HDR = struct.Struct("=IBBHIII12s")
MAGIC = 0x43534644
VERSION = 1
TYPE_REQUEST, TYPE_REPLY = 1, 2
CMD_STATUS, CMD_RELOAD, CMD_STATS = 1, 2, 3
FLAG_JSON, FLAG_PROMETHEUS = 1, 2
ST_OK, ST_FAILED, ST_BADLENGTH, ST_TOOLONG, ST_BADHEADER, \
    ST_BADVERSION, ST_BADCOMMAND, ST_BADFLAGS, ST_DENIED = range(9)
MAX_PAYLOAD = 1024 * 1024


def dfsctl_bin():
    return os.environ.get("DFSCTL_BIN", os.path.join(
        os.path.dirname(dfs_bin()), "dfsctl"))


class CtlMount(Mount):
    """A mount with its control socket in its temp dir."""

    def argv(self):
        self.sock = os.path.join(self.root, "dfs.sock")
        a = Mount.argv(self)
        return a[:2] + ["-o", "ctl=" + self.sock] + a[2:]


def dfsctl(*args, sock=None):
    """Run dfsctl; returns (exit status, stdout, stderr) as text."""
    argv = [dfsctl_bin()]
    if sock is not None:
        argv += ["-s", sock]
    r = subprocess.run(argv + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def ok(m, *args):
    rc, out, err = dfsctl(*args, sock=m.sock)
    eq(rc, 0, "dfsctl %s: exit status (stderr %r)" % (" ".join(args), err))
    eq(err, "", "dfsctl %s: stderr" % " ".join(args))
    return out


def request(command, flags=0, version=VERSION, length=0, magic=MAGIC,
            type_=TYPE_REQUEST, status=0, reserved=bytes(12)):
    return HDR.pack(magic, version, type_, command, flags, status, length,
                    reserved)


def connect(m):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(m.sock)   # blocking: waits for room in the backlog
    s.settimeout(20)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            break
        buf += b
    return buf


def reply(s):
    """(status, command, text) of the next reply on s."""
    h = recv_exact(s, HDR.size)
    eq(len(h), HDR.size, "reply header length")
    magic, version, type_, command, flags, status, length, res = \
        HDR.unpack(h)
    eq(magic, MAGIC, "reply magic")
    eq(version, VERSION, "reply version")
    eq(type_, TYPE_REPLY, "reply type")
    eq(res, bytes(12), "reply reserved bytes")
    check(length <= MAX_PAYLOAD, "reply length %d" % length)
    text = recv_exact(s, length)
    eq(len(text), length, "reply payload length")
    return status, command, text.decode()


def expect_closed(s):
    try:
        eq(recv_exact(s, 1), b"", "connection closed after an error reply")
    except ConnectionResetError:
        pass    # closed with bytes of ours unread
    s.close()


def still_serving(m):
    out = ok(m, "status")
    check(m.mnt in out, "status names the mount point:\n" + out)
    name = "alive.%d" % time.monotonic_ns()
    write_file(m.p(name), "x")
    eq(read_file(m.p(name)), b"x", "mount still works")
    os.unlink(m.p(name))


# --- output forms ---------------------------------------------------------

def test_status():
    with CtlMount(ntiers=3) as m:
        st = os.stat(m.sock)
        eq(st.st_mode & 0o7777, 0o600, "socket mode")
        out = ok(m, "status")
        check(out.startswith("dfs "), "status begins with the version:\n"
              + out)
        for t in m.tiers + [m.mnt]:
            check(t in out, "%s in status:\n%s" % (t, out))

        j = json.loads(ok(m, "--json", "status"))
        check(isinstance(j["version"], str) and j["version"], "version")
        check(isinstance(j["uptime"], int) and j["uptime"] >= 0, "uptime")
        eq(j["mountpoint"], m.mnt, "mountpoint")
        check("config" in j, "config key")
        check(isinstance(j["nodes"], int) and j["nodes"] >= 1, "nodes")
        eq([t["path"] for t in j["tiers"]], m.tiers, "tier paths")
        eq(len(set(t["name"] for t in j["tiers"])), 3, "tier names")
        for t in j["tiers"]:
            check(0 <= t["used"] <= t["total"], "used <= total: %r" % t)
            check(0 <= t["percent"] <= 100, "percent: %r" % t)
        # options after the command work too
        eq(json.loads(ok(m, "status", "--json"))["mountpoint"], m.mnt,
           "status --json")


def test_stats():
    with CtlMount() as m:
        write_file(m.p("f"), b"y" * 10000)
        eq(read_file(m.p("f")), b"y" * 10000, "content")
        os.rename(m.p("f"), m.p("g"))

        out = ok(m, "stats")
        for word in ("lookup", "create", "rename", "bytes_written",
                     "errors"):
            check(word in out, "%s in stats:\n%s" % (word, out))

        j = json.loads(ok(m, "stats", "--json"))
        eq(len(j["tiers"]), 2, "tiers in stats")
        t0 = j["tiers"][0]
        eq(t0["path"], m.tiers[0], "tier 0 path")
        for k in ("lookup", "readdir", "open", "create", "unlink",
                  "rename", "setattr", "xattr", "bytes_read",
                  "bytes_written", "errors"):
            check(isinstance(t0[k], int) and t0[k] >= 0, "counter %s" % k)
        check(t0["create"] >= 1, "create counted: %r" % t0)
        check(t0["rename"] >= 1, "rename counted: %r" % t0)
        check(t0["bytes_written"] >= 10000, "bytes written: %r" % t0)

        prom = ok(m, "stats", "--prometheus")
        sample = re.compile(r'^(dfs_[a-z_]+)\{tier="((?:[^"\\]|\\.)*)"'
                            r'(?:,op="([a-z_]+)")?\} ([0-9]+)$')
        declared, seen = {}, {}
        for line in prom.splitlines():
            if line.startswith("# HELP "):
                declared.setdefault(line.split()[2], set()).add("help")
                continue
            if line.startswith("# TYPE "):
                f = line.split()
                eq(f[3:], ["counter"], "TYPE line: " + line)
                declared.setdefault(f[2], set()).add("type")
                continue
            mo = sample.match(line)
            check(mo, "not a Prometheus sample line: %r" % line)
            name = mo.group(1)
            eq(declared.get(name), {"help", "type"},
               "HELP and TYPE before %s" % name)
            check(name.endswith("_total"), "counter name " + name)
            seen[(name, mo.group(2), mo.group(3))] = int(mo.group(4))
        for t in j["tiers"]:
            check(("dfs_backing_calls_total", t["name"], "lookup") in seen,
                  "lookup sample for tier %s" % t["name"])
        check(seen[("dfs_backing_written_bytes_total", t0["name"], None)]
              >= 10000, "written bytes sample")


def test_reload_answers():
    # Whether a command-line mount can reload depends on its config; the
    # answer is either success or one line of reason, exit 1.
    with CtlMount() as m:
        rc, out, err = dfsctl("reload", sock=m.sock)
        if rc == 0:
            eq(err, "", "reload stderr")
        else:
            eq(rc, 1, "reload exit status")
            eq(out, "", "reload stdout on failure")
            check(err.startswith("dfsctl: ") and err.count("\n") == 1,
                  "one line of reason: %r" % err)
        still_serving(m)


# --- exit codes -------------------------------------------------------------

def test_exit_codes():
    with CtlMount() as m:
        for args in (["bogus"], ["st"], ["status", "extra"],
                     ["status", "--prometheus"], ["--json", "--prometheus",
                                                  "stats"],
                     ["--no-such-option", "status"], []):
            rc, out, err = dfsctl(*args, sock=m.sock)
            eq(rc, 2, "dfsctl %s: exit status" % " ".join(args))
            check("usage:" in err, "usage on stderr for %s: %r" % (args, err))
            eq(out, "", "stdout for %s" % args)

        rc, out, err = dfsctl("-h")
        eq(rc, 0, "dfsctl -h")
        check("usage:" in out, "usage on stdout for -h")

        # unique prefixes
        check(ok(m, "statu").startswith("dfs "), "statu is status")
        check("lookup" in ok(m, "stats"), "stats")

        # nothing listening: one line, exit 1
        missing = os.path.join(m.root, "missing.sock")
        rc, out, err = dfsctl("status", sock=missing)
        eq(rc, 1, "no socket: exit status")
        check(err.startswith("dfsctl: cannot connect to %s: " % missing)
              and err.count("\n") == 1, "no socket: %r" % err)

        stale = os.path.join(m.root, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()
        rc, out, err = dfsctl("status", sock=stale)
        eq(rc, 1, "stale socket: exit status")
        check(err.startswith("dfsctl: cannot connect to %s: " % stale),
              "stale socket: %r" % err)
        still_serving(m)


def test_other_uid():
    with CtlMount() as m:
        def run():
            return dfsctl("status", sock=m.sock)

        # the socket's mode keeps another uid out
        rc, out, err = as_user(run)
        eq(rc, 1, "another uid: exit status")
        eq(err, "dfsctl: cannot connect to %s: permission denied\n" % m.sock,
           "another uid: message")
        eq(out, "", "another uid: stdout")

        # and SO_PEERCRED does when the mode would not
        os.chmod(m.sock, 0o666)
        rc, out, err = as_user(run)
        eq(rc, 1, "another uid through a 0666 socket: exit status")
        check(err.startswith("dfsctl: permission denied") and
              err.count("\n") == 1, "peer refused: %r" % err)
        eq(out, "", "refused peer: stdout")
        os.chmod(m.sock, 0o600)
        still_serving(m)


# --- the daemon survives bad clients -----------------------------------------

def test_malformed_requests():
    with CtlMount() as m:
        cases = [
            ("wrong version", request(CMD_STATUS, version=9), ST_BADVERSION),
            ("huge length", request(CMD_STATUS, length=0xffffffff),
             ST_TOOLONG),
            ("length over the maximum",
             request(CMD_STATUS, length=MAX_PAYLOAD + 1), ST_TOOLONG),
            ("length wrong for the command", request(CMD_STATUS, length=3),
             ST_BADLENGTH),
            ("unknown command", request(999), ST_BADCOMMAND),
            ("command 0", request(0), ST_BADCOMMAND),
            ("reserved bytes", request(CMD_STATUS, reserved=b"\1" +
                                       bytes(11)), ST_BADHEADER),
            ("bad magic", request(CMD_STATUS, magic=0xdeadbeef),
             ST_BADHEADER),
            ("a reply as a request", request(CMD_STATUS, type_=TYPE_REPLY),
             ST_BADHEADER),
            ("flags status does not take",
             request(CMD_STATUS, flags=FLAG_PROMETHEUS), ST_BADFLAGS),
            ("unknown flag", request(CMD_STATS, flags=0x100), ST_BADFLAGS),
        ]
        for what, msg, want in cases:
            s = connect(m)
            s.sendall(msg)
            status, _, text = reply(s)
            eq(status, want, "%s: status (%r)" % (what, text))
            check(text and "\n" not in text.rstrip("\n"),
                  "%s: one line of reason: %r" % (what, text))
            expect_closed(s)

        # truncated: half a header, then the end of the stream
        s = connect(m)
        s.sendall(request(CMD_STATUS)[:10])
        s.shutdown(socket.SHUT_WR)
        status, _, text = reply(s)
        eq(status, ST_BADLENGTH, "truncated header: %r" % text)
        expect_closed(s)

        # junk that is not the protocol at all
        s = connect(m)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n\0\0\0\0\0\0")
        status, _, text = reply(s)
        check(status in (ST_TOOLONG, ST_BADHEADER), "junk: %d %r" %
              (status, text))
        expect_closed(s)

        # a connection that says nothing and goes away
        connect(m).close()

        # several good requests on one connection, then a bad one
        s = connect(m)
        for cmd, flags in ((CMD_STATUS, FLAG_JSON), (CMD_STATS, 0),
                           (CMD_STATS, FLAG_PROMETHEUS)):
            s.sendall(request(cmd, flags))
            status, command, text = reply(s)
            eq((status, command), (ST_OK, cmd), "pipelined %d" % cmd)
        json.loads(ok(m, "status", "--json"))
        s.sendall(request(CMD_STATUS, version=0))
        eq(reply(s)[0], ST_BADVERSION, "bad request after good ones")
        expect_closed(s)
        still_serving(m)


def test_slow_clients():
    with CtlMount() as m:
        # more idle and half-sent connections than the server has slots:
        # dfsctl is still answered once the idle ones time out
        idle = []
        for i in range(20):
            s = connect(m)
            if i % 2:
                s.sendall(request(CMD_STATUS)[:5])
            idle.append(s)
        t0 = time.monotonic()
        out = ok(m, "status")
        check(m.mnt in out, "status with idle clients")
        check(time.monotonic() - t0 < 20, "answered in time")
        for s in idle:
            s.close()
        still_serving(m)


# --- the socket's life ------------------------------------------------------

def test_socket_in_use():
    with CtlMount() as m:
        other = os.path.join(m.root, "other")
        dirs = [os.path.join(other, d) for d in ("t0", "t1", "mnt")]
        for d in dirs:
            os.makedirs(d)
        argv = [dfs_bin(), "-f", "-o", "ctl=" + m.sock] + dirs
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            kill_pid(p.pid)
            p.wait()
            if is_mounted(dirs[2]):
                unmount(dirs[2])
            raise AssertionError("second dfs on the same socket still "
                                 "running after 10 s")
        if is_mounted(dirs[2]):
            unmount(dirs[2])
            raise AssertionError("second dfs mounted on a socket in use")
        check(p.returncode != 0, "second dfs: exit status %d" % p.returncode)
        check(b"in use" in err, "second dfs says why: %r" % err)
        still_serving(m)


def test_stale_socket_replaced():
    def stale(m):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(m.root, "dfs.sock"))
        s.close()
    m = CtlMount(populate=stale, keep=True)
    try:
        with m:
            still_serving(m)
        # the daemon removed its socket on the way out
        check(not os.path.exists(m.sock), "socket removed at exit")
    finally:
        if m.root is not None and not mounts_under(m.root):
            shutil.rmtree(m.root, ignore_errors=True)


# --- migration: migrate, explain, pin ---------------------------------------

OLD = 1577836800    # 2020-01-01


class MigMount(Mount):
    """`dfs -f -c FILE` with tiers fast and slow and one policy, "cold":
    files not modified for a day move from fast to slow."""

    def __init__(self, **kw):
        Mount.__init__(self, index=False, **kw)

    def argv(self):
        self.conf = os.path.join(self.root, "dfs.conf")
        self.sock = os.path.join(self.root, "dfs.sock")
        state = os.path.join(self.root, "state")
        os.makedirs(state, exist_ok=True)
        write_file(self.conf, (
            "mountpoint = %s\nstate_dir = %s\nsocket = %s\n"
            "tier fast {\n\tpath = %s\n}\ntier slow {\n\tpath = %s\n}\n"
            "policy cold {\n\tfrom = fast\n\tto = slow\n\tage = 1d\n}\n") % (
                self.mnt, state, self.sock, self.tiers[0], self.tiers[1]))
        return [dfs_bin(), "-f", "-c", self.conf]


def _old_and_new(m):
    os.mkdir(m.t(0, "docs"))
    write_file(m.t(0, "docs", "old.txt"), b"old content\n" * 1000)
    os.utime(m.t(0, "docs", "old.txt"), (OLD, OLD))
    write_file(m.t(0, "docs", "new.txt"), b"new\n")


def fails(m, want, *args):
    """dfsctl exits want with one line on stderr and nothing on stdout."""
    rc, out, err = dfsctl(*args, sock=m.sock)
    eq(rc, want, "dfsctl %s: exit status (%r)" % (" ".join(args), err))
    eq(out, "", "dfsctl %s: stdout" % " ".join(args))
    return err


def test_migrate_dry_run_explain_pin():
    with MigMount(populate=_old_and_new) as m:
        ok(m, "scan", "--status", "--wait")
        old, new = m.p("docs", "old.txt"), m.p("docs", "new.txt")
        ino = os.stat(old).st_ino

        # dry run: the old file would move, by policy cold; nothing moves
        out = ok(m, "migrate", "--dry-run")
        moves = [l for l in out.splitlines() if l.endswith(old)]
        eq(len(moves), 1, "old.txt in the dry run:\n" + out)
        check(moves[0].startswith("move "), "a move: %r" % moves[0])
        check("would move 1 file," in out, "summary:\n" + out)
        check(re.search(r"\bcold\s+fast\s+->\s+slow\b", moves[0]),
              "policy and tiers: %r" % moves[0])
        check(new not in out, "new.txt would not move:\n" + out)
        j = dry_run(ok(m, "--json", "migrate", "--dry-run"))
        eq([(x["path"], x["policy"], x["from"], x["to"], x["size"])
            for x in j["moves"]], [(old, "cold", "fast", "slow", 12000)],
           "dry run moves")
        check(j["moves"][0]["age"] > 365 * 86400, "age: %r" % j["moves"][0])
        eq((j["files"], j["bytes"]), (1, 12000), "dry run totals")
        # named files: the one no policy takes is left, with the reason
        j = dry_run(ok(m, "migrate", "--dry-run", "--json", "docs/new.txt",
                          old))
        eq([x["path"] for x in j["moves"]], [old], "named: moves")
        eq([(x["path"], x["reason"]) for x in j["left"]],
           [(new, "no policy")], "named: left")
        check("below" in j["left"][0]["why"], "why: %r" % j["left"][0])
        eq(tiers_holding(m, "docs", "old.txt"), [0], "dry run moved nothing")

        # explain: which policy, what it would do, why
        out = ok(m, "explain", old)
        check(out.startswith(old + ": ") and "policy cold" in out and
              "slow" in out, "explain old.txt: %r" % out)
        out = ok(m, "explain", "docs/new.txt")
        check("stays" in out and "cold" in out, "explain new.txt: %r" % out)
        j = json.loads(ok(m, "--json", "explain", old))
        eq((j["path"], j["inode"], j["tier"], j["pinned"]),
           (old, ino, "fast", False), "explain --json")
        check("policy cold" in j["explain"], "explain text: %r" % j)

        # pinned: listed, left by a dry run and by a run, with the reason
        eq(ok(m, "pin", old), "pinned %s\n" % old, "pin")
        eq(ok(m, "pins"), old + "\n", "pins")
        j = json.loads(ok(m, "pins", "--json"))
        eq([(p["path"], p["inode"]) for p in j["pins"]], [(old, ino)],
           "pins --json")
        check("pinned" in ok(m, "explain", old), "explain says pinned")
        eq(dry_run(ok(m, "--json", "migrate", "--dry-run"))["moves"], [],
           "nothing to move while pinned")
        j = dry_run(ok(m, "--json", "migrate", "--dry-run", old))
        eq([(x["path"], x["reason"]) for x in j["left"]], [(old, "pinned")],
           "pinned file left")
        j = json.loads(ok(m, "--json", "migrate", "--now", "--wait", old))
        eq((j["state"], j["files"], j["skipped"], j["errors"]),
           ("done", 0, {"pinned": 1}, 0), "run on a pinned file")
        j = json.loads(ok(m, "--json", "migrate", "--wait"))
        eq((j["state"], j["files"]), ("done", 0), "run while pinned")
        eq(tiers_holding(m, "docs", "old.txt"), [0], "pinned file stayed")

        eq(ok(m, "unpin", "docs/old.txt"), "unpinned docs/old.txt\n", "unpin")
        eq(ok(m, "pins"), "no pinned paths\n", "no pins")
        eq(json.loads(ok(m, "--json", "pins"))["pins"], [], "no pins --json")

        # wrong uses: usage and exit 2, or one line and exit 1
        for args in (["migrate", "--now", "--dry-run"],
                     ["migrate", "--dry-run", "--wait"],
                     ["migrate", "--status", "docs"], ["explain"], ["pin"],
                     ["pins", "x"], ["where", "--now", "x"]):
            check("usage:" in fails(m, 2, *args), "usage for %s" % args)
        for args, why in ((["pin", "/elsewhere/x"], "not under the mount"),
                          (["explain", "docs/missing"], "not in the index"),
                          (["migrate", "docs"], "only files migrate"),
                          (["migrate", "--dry-run", "nothing"],
                           "not in the index")):
            err = fails(m, 1, *args)
            check(why in err and err.count("\n") == 1,
                  "%s: %r" % (args, err))
        eq(tiers_holding(m, "docs", "old.txt"), [0], "still not moved")
        still_serving(m)


def test_migrate_now_wait():
    with MigMount(populate=_old_and_new) as m:
        ok(m, "scan", "--status", "--wait")
        old = m.p("docs", "old.txt")
        before = os.stat(old)
        content = read_file(old)

        out = ok(m, "migrate", "--now", "--wait")
        check(re.search(r"^run \d+ \(request\): done in ", out),
              "outcome: %r" % out)
        check(re.search(r"^moved +1 file, ", out, re.M), "moved: %r" % out)
        check(re.search(r"^errors +0$", out, re.M), "errors: %r" % out)

        # on the slow tier's backing dir, the same file through the mount
        eq(tiers_holding(m, "docs", "old.txt"), [1], "moved to slow")
        eq(read_file(m.t(1, "docs", "old.txt")), content, "backing content")
        eq(tiers_holding(m, "docs", "new.txt"), [0], "new.txt stayed")
        after = os.stat(old)
        eq(after.st_ino, before.st_ino, "st_ino through the mount")
        eq(int(after.st_mtime), OLD, "mtime kept")
        eq(read_file(old), content, "content through the mount")
        eq(ok(m, "where", old), "%s  slow\n" % old, "where")

        # a run of nothing: --json parses, exit 0
        j = json.loads(ok(m, "migrate", "--wait", "--json"))
        eq((j["state"], j["trigger"], j["files"], j["errors"],
            j["last_error"]), ("done", "request", 0, 0, None), "empty run")
        j = json.loads(ok(m, "--json", "migrate"))
        check(isinstance(j["run"], int), "migrate --json: %r" % j)

        # status: the runs, and what each tier holds
        j = json.loads(ok(m, "--json", "status"))
        runs = j["migration"]["runs"]
        check(len(runs) >= 2, "runs in status: %r" % runs)
        moved = [r for r in runs if r["files"] == 1]
        eq(len(moved), 1, "one run moved a file: %r" % runs)
        eq((moved[0]["bytes"], moved[0]["errors"], moved[0]["trigger"]),
           (12000, 0, "request"), "the run that moved")
        eq([(t["name"], t["files"]) for t in j["tiers"]],
           [("fast", 1), ("slow", 1)], "files per tier")
        eq(j["tiers"][1]["bytes"], 12000, "bytes on slow")
        out = ok(m, "status")
        check(re.search(r"^ *RUN +STARTED +SECONDS +TRIGGER", out, re.M),
              "runs in status:\n" + out)
        check(re.search(r"^ *\d+ +\S+ \S+ +[0-9.]+ +request +1 ", out, re.M),
              "the run that moved:\n" + out)
        j = json.loads(ok(m, "migrate", "--status", "--json"))
        check(not j["running"] and len(j["runs"]) >= 2, "--status: %r" % j)
        still_serving(m)


def _many_old(m):
    os.makedirs(m.t(0, "many"))
    for i in range(60):
        d = m.t(0, "many", "d%02d" % i)
        os.mkdir(d)
        for j in range(1000):
            p = os.path.join(d, "f%d" % j)
            os.mknod(p)
            os.utime(p, (OLD, OLD))


def test_status_answers_during_a_long_dry_run():
    # 60,000 candidates: the dry run takes seconds and streams its lines;
    # commands that need not read the whole index answer meanwhile.
    with MigMount(populate=_many_old) as m:
        ok(m, "scan", "--status", "--wait")
        rss0 = rss_kib(m.proc.pid)
        t0 = time.monotonic()
        plan = subprocess.Popen(
            [dfsctl_bin(), "-s", m.sock, "--json", "migrate", "--dry-run"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        lines, first, rss = [], [], [rss0]

        def reader():
            for line in plan.stdout:
                if not first:
                    first.append(time.monotonic() - t0)
                lines.append(line)
        rt = threading.Thread(target=reader)
        rt.start()
        try:
            slowest, during = 0.0, 0
            for _ in range(20):
                t = time.monotonic()
                ok(m, "status")
                ok(m, "where", m.p("many", "d07", "f7"))
                took = time.monotonic() - t
                rss.append(rss_kib(m.proc.pid))
                if plan.poll() is not None:
                    break
                during += 1
                slowest = max(slowest, took)
            plan.wait(timeout=300)
            rt.join(timeout=60)
            err = plan.stderr.read()
        finally:
            if plan.poll() is None:
                plan.kill()
                plan.wait()
            rt.join(timeout=60)
        eq(plan.returncode, 0, "the dry run: %r" % err[-300:])
        j = dry_run(b"".join(lines).decode())
        eq((j["files"], len(j["moves"])), (60000, 60000),
           "the dry run's files and lines")
        check(first and first[0] < 2.0, "first line after %s s" % first)
        check(during > 0, "no status answered while the dry run ran")
        check(slowest < 1.0, "status and where took up to %.2f s during the "
              "dry run" % slowest)
        # (ASan keeps freed memory in quarantine: no measure there)
        if "ASAN_OPTIONS" not in os.environ:
            check(max(rss) - rss0 < 20 * 1024, "daemon RSS grew by %d KiB "
                  "during the dry run" % (max(rss) - rss0))
