"""SIGKILL of the daemon during migration runs while clients write through
the mount: after each restart every acknowledged change is there, and
nothing else.

About 350 files are made through the mount (small ones, some of a few MiB,
two large ones moved alone in chunks, a few hard-link groups, some with
user xattrs) and aged.  One policy moves every file, from the tier that
holds more of them to the other: the configuration is written anew before
each restart, and the direction flips as the runs get through.  Each round
starts `dfsctl migrate --now --wait`; four client threads, each on its own
names (c<thread>-...),
overwrite (O_TRUNC), append, create (O_EXCL), rename within and across
directories, chmod, setxattr, unlink and read, each write followed by
fsync and close, most often on files the run has just switched (the name
on both tiers: the source waits for its batch) or is copying (a temp on
the target).  After a random moment the daemon is SIGKILLed; it starts
again on the same index, its start-up scan and a `dfsctl scan --wait` run,
and then the mount must list exactly the names the clients' acknowledged
operations left, with their content, mode, xattrs and inode numbers, each
name on exactly one tier, no temp file, no conflict.

Each client keeps a model of its files, changed only when an operation
returned success.  The one operation a client had in flight when the
daemon died may or may not have happened, in part (a prefix of a write):
both outcomes are accepted for it.  Every other name keeps its inode
number: dfs logs each index change of an open commit group in its redo
log before answering, and replays the log at the next start.

Environment:
  DFS_SEED          seed of the files, the operations and the kill moments
                    (default: random; printed, and named in a failure);
                    the timing of the threads is not replayed
  DFS_CHURN_ROUNDS  rounds (default 12, about 40-60 s; the old bug showed within 8)
  DFS_CHURN_SECONDS run rounds until this many seconds have passed instead
                    (scripts/soak)
"""

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

from dfstest import TestFailure, wait_for
from test_crash import _journal
from test_migrate import (OLD, TMP_PREFIX, MigMount, dfsctl_bin, dfsctl_has,
                          policy, run)

ROUNDS = int(os.environ.get("DFS_CHURN_ROUNDS", "12"))
SECONDS = float(os.environ.get("DFS_CHURN_SECONDS", "0"))
THREADS = 4
DIRS = ("d0", "d1", "d1/sub", "d2", "d3/x/y")
PER_THREAD = 86             # files per client at the start
MEDIUM = 3                  # of them of 1-6 MiB
LARGE = (16 << 20, 32 << 20)
NLARGE = 2                  # threads 0 and 1 get one each
LINK_GROUPS = 2             # per client, of 2 or 3 names
SMALL_MAX = 64 * 1024
MEDIUM_MIN, MEDIUM_MAX = 1 << 20, 6 << 20
MODES = (0o600, 0o640, 0o644, 0o664, 0o700, 0o750, 0o755)
XATTRS = ("user.a", "user.b", "user.c")
BANDWIDTH = "40M"           # a whole run lasts at least about the kill window
KILL_MAX = 4.0              # the kill comes 0..KILL_MAX s after the run starts
GRACE = 0.0                 # no acknowledged index change is lost
HOT_SWITCHED = 0.8          # of the operations: on switched files, if any
HOT_COPYING = 0.05          # on files being copied, if any
SCAN_TIMEOUT = 30.0
JOIN_TIMEOUT = 20.0
SHOW = 30
DAY = 86400

# random operations: (kind, weight for any file, weight for a hot file)
OPS = (("read", 8, 0), ("overwrite", 18, 25), ("append", 18, 20),
       ("create", 7, 0), ("rename", 16, 20), ("chmod", 10, 10),
       ("setxattr", 12, 15), ("unlink", 6, 10))


def _umask():
    u = os.umask(0o022)
    os.umask(u)
    return u


def seed_from_env():
    s = os.environ.get("DFS_SEED")
    if s:
        return int(s, 0)
    return random.SystemRandom().randrange(1 << 32)


# --- the model ----------------------------------------------------------------

class Content:
    """A file's bytes as a hash state: exactly (size, h), or, after a write
    the kill interrupted, (size, h) followed by any prefix of `tail`."""

    __slots__ = ("size", "h", "tail", "_hex")

    def __init__(self, size=0, h=None, tail=None):
        self.size = size
        self.h = h if h is not None else hashlib.sha256()
        self.tail = tail
        self._hex = None

    @staticmethod
    def of(data):
        return Content(len(data), hashlib.sha256(data))

    def hexdigest(self):
        if self._hex is None:
            self._hex = self.h.hexdigest()
        return self._hex

    def key(self):
        return (self.size, self.hexdigest())

    def appended(self, data, partial=False):
        if partial:
            return Content(self.size, self.h.copy(), data)
        h = self.h.copy()
        h.update(data)
        return Content(self.size + len(data), h)

    def resolve(self, size, hexd):
        """The exact content this stands for that has (size, hexd), or
        None."""
        if self.tail is None:
            return self if (size, hexd) == self.key() else None
        k = size - self.size
        if k < 0 or k > len(self.tail):
            return None
        h = self.h.copy()
        h.update(self.tail[:k])
        return Content(size, h) if h.hexdigest() == hexd else None

    def describe(self):
        if self.tail is None:
            return "%d bytes sha %s" % (self.size, self.hexdigest()[:12])
        return "%d bytes sha %s + a prefix of %d more" % (
            self.size, self.hexdigest()[:12], len(self.tail))


class File:
    """One file (inode) of a client: hard-linked names share it."""

    __slots__ = ("content", "mode", "xattrs", "ino", "names", "kind",
                 "changed", "history")

    def __init__(self, content, mode, kind):
        self.content = content
        self.mode = mode
        self.xattrs = {}
        self.ino = None             # st_ino through the mount
        self.names = set()
        self.kind = kind            # "s"mall, "m"edium, "l"arge
        self.changed = float("-inf")    # a name made or renamed (monotonic)
        self.history = set()        # earlier acknowledged contents

    def clone(self):
        f = File(self.content, self.mode, self.kind)
        f.xattrs = dict(self.xattrs)
        f.ino = self.ino
        f.names = set(self.names)
        f.changed = self.changed
        f.history = self.history    # shared: only ever added to
        return f


class Model:
    """A client's names: rel -> File; gone: names it renamed away or
    unlinked -> (the file they were, what became of the name)."""

    def __init__(self):
        self.names = {}
        self.gone = {}

    def clone(self):
        m = Model()
        copies = {}
        for rel, f in self.names.items():
            if id(f) not in copies:
                copies[id(f)] = f.clone()
            m.names[rel] = copies[id(f)]
        m.gone = dict(self.gone)
        return m

    def files(self):
        seen, res = set(), []
        for f in self.names.values():
            if id(f) not in seen:
                seen.add(id(f))
                res.append(f)
        return res


# --- what the mount and the tiers show ----------------------------------------

def _sha_size(path):
    h = hashlib.sha256()
    n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
    return n, h.hexdigest()


def _user_xattrs(path):
    return dict((k, os.getxattr(path, k, follow_symlinks=False))
                for k in os.listxattr(path, follow_symlinks=False)
                if k.startswith("user."))


def _observe(m, pr):
    """rel -> (ino, mode, size, sha, xattrs) of every file through the
    mount; the directories are checked here."""
    obs = {}
    want = set()
    for d in DIRS:
        while d:
            want.add(d)
            d = os.path.dirname(d)
    got = set()
    for d, dirs, files in os.walk(m.mnt):
        got.update(os.path.relpath(os.path.join(d, n), m.mnt) for n in dirs)
        for fn in files:
            p = os.path.join(d, fn)
            rel = os.path.relpath(p, m.mnt)
            try:
                st = os.lstat(p)
                size, hexd = _sha_size(p)
                obs[rel] = (st.st_ino, st.st_mode & 0o7777, size, hexd,
                            _user_xattrs(p))
            except OSError as e:
                pr.add("mount", "%s through the mount: %s" % (rel, e))
    if got != want:
        pr.add("dirs", "directories through the mount: %s missing, %s "
               "extra" % (sorted(want - got), sorted(got - want)))
    return obs


def _tier_names(m):
    """rel -> [(tier, backing st_ino)] of every non-directory on the
    tiers, temps included."""
    res = {}
    for t in range(m.ntiers):
        for d, dirs, files in os.walk(m.t(t)):
            for fn in files:
                p = os.path.join(d, fn)
                try:
                    ino = os.lstat(p).st_ino
                except OSError:
                    continue
                res.setdefault(os.path.relpath(p, m.t(t)), []).append(
                    (t, ino))
    return res


class Problems:
    def __init__(self):
        self.items = []     # (kind, text)

    def add(self, kind, text):
        self.items.append((kind, text))

    def kinds(self):
        c = {}
        for k, _ in self.items:
            c[k] = c.get(k, 0) + 1
        return c


def _owner(rel):
    """The client thread whose name this is, or None."""
    b = os.path.basename(rel)
    mt = re.match(r"c(\d+)-", b)
    return int(mt.group(1)) if mt else None


def _diff(model, obs, t_kill):
    """Problems of one candidate model against the observed files of its
    client; and the (size, sha) each file was found with."""
    probs = []
    for rel in sorted(set(obs) - set(model.names)):
        ino, mode, size, hexd, xa = obs[rel]
        if rel in model.gone:
            f, how = model.gone[rel]
            old = (size, hexd) in f.history or (size, hexd) == \
                f.content.key()
            probs.append(("resurrected", "%s: %s, is back (st_ino %d, %d "
                          "bytes%s)" % (
                              rel, how, ino, size,
                              ", an earlier content of that file" if old
                              else "")))
        else:
            probs.append(("extra", "%s: a name the client never made "
                          "(st_ino %d, %d bytes)" % (rel, ino, size)))
    for rel in sorted(set(model.names) - set(obs)):
        probs.append(("missing", "%s: missing through the mount" % rel))
    for rel in sorted(set(model.names) & set(obs)):
        f = model.names[rel]
        ino, mode, size, hexd, xa = obs[rel]
        if f.content.resolve(size, hexd) is None:
            stale = (size, hexd) in f.history
            probs.append(("stale" if stale else "content",
                          "%s: %d bytes sha %s, want %s%s" % (
                              rel, size, hexd[:12], f.content.describe(),
                              " (an earlier acknowledged content)" if stale
                              else "")))
        if mode != f.mode:
            probs.append(("mode", "%s: mode %o, want %o" % (rel, mode,
                                                            f.mode)))
        if xa != f.xattrs:
            probs.append(("xattr", "%s: user xattrs %r, want %r" % (
                rel, sorted((k, len(v)) for k, v in xa.items()),
                sorted((k, len(v)) for k, v in f.xattrs.items()))))
        if f.ino is not None and ino != f.ino and \
                t_kill - f.changed >= GRACE:
            probs.append(("inode", "%s: st_ino %d, was %d (last name "
                          "change %.3f s before the kill)" % (
                              rel, ino, f.ino, t_kill - f.changed)))
    for f in model.files():
        seen = set(obs[n][0] for n in f.names if n in obs)
        if len(seen) > 1:
            probs.append(("links", "hard links %s: st_ino %s through the "
                          "mount" % (sorted(f.names), sorted(
                              (n, obs[n][0]) for n in f.names
                              if n in obs))))
    return probs


def _resolve(model, obs, t_kill, stats):
    """After a candidate matched: the model as found (exact contents,
    inode numbers of new or renamed names)."""
    for f in model.files():
        rel = sorted(f.names)[0]
        ino, mode, size, hexd, xa = obs[rel]
        if f.ino is not None and ino != f.ino:
            # named less than GRACE before the kill, or in flight (< 0)
            stats["renumbered"].append(t_kill - f.changed)
        f.content = f.content.resolve(size, hexd)
        f.history.add(f.content.key())
        f.ino = ino
        f.changed = float("-inf")
    return model


# --- a client -----------------------------------------------------------------

class Client:
    def __init__(self, tid, rng, model, m, ctx):
        self.tid = tid
        self.rng = rng
        self.model = model
        self.m = m
        self.ctx = ctx
        self.serial = 0
        self.ops = 0            # acknowledged operations
        self.hot_ops = 0
        self.aimed = set()      # files (id of the File) aimed at this round
        self.pending = None     # (kind, rel, model if it happened)
        self.errors = []        # failures while the daemon was alive
        self.bad_reads = []
        self.initial = PER_THREAD
        self.umask = _umask()

    def new_name(self, kind, d=None):
        self.serial += 1
        d = d if d is not None else self.rng.choice(DIRS)
        return "%s/c%d-%s%d" % (d, self.tid, kind, self.serial)

    def _write(self, path, flags, data, mode=0o644):
        fd = os.open(path, flags, mode)
        try:
            n = 0
            while n < len(data):
                n += os.write(fd, data[n:])
            os.fsync(fd)
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise
        os.close(fd)

    def _data(self, kind):
        if kind == "s":
            return self.rng.randbytes(self.rng.randint(0, SMALL_MAX))
        return self.rng.randbytes(self.rng.randint(MEDIUM_MIN, 3 << 20))

    def choose(self):
        """(kind of operation, rel or None, aimed at a file being moved?)"""
        names = self.model.names
        rng = self.rng
        snap = self.ctx.snapshot
        aim = []
        if snap is not None:
            both, tmps = snap
            r = rng.random()
            if r < HOT_SWITCHED:
                # switched: the copy is the file, the source still there
                aim = [rel for rel in both if rel in names]
            elif r < HOT_SWITCHED + HOT_COPYING and tmps:
                # being copied: a change aborts the move
                by_ino = dict((f.ino, n) for n, f in names.items())
                aim = [by_ino[i] for i in tmps if i in by_ino]
            # one operation each: a rename or unlink would end the
            # other kinds of change on most of them
            aim = [rel for rel in aim if id(names[rel]) not in self.aimed]
        if aim:
            kinds = [k for k, w, wh in OPS if wh]
            kind = rng.choices(kinds, [wh for k, w, wh in OPS if wh])[0]
            rel = rng.choice(sorted(aim))
            self.aimed.add(id(names[rel]))
            return kind, rel, True
        kind = rng.choices([k for k, w, wh in OPS],
                           [w for k, w, wh in OPS])[0]
        if len(names) < self.initial * 0.8:
            kind = "create"
        if kind == "create" or not names:
            return "create", None, False
        return kind, rng.choice(sorted(names)), False

    def one(self):
        kind, rel, hot = self.choose()
        m, rng = self.m, self.rng
        names = self.model.names
        f = names.get(rel)
        if f is not None and f.kind == "l" and kind in ("overwrite",
                                                        "unlink"):
            kind = "append"     # the large files stay large
        effect = None
        observe = None
        if kind == "read":
            if f.kind == "l":
                return

            def io():
                with open(m.p(rel), "rb", buffering=0) as fh:
                    got = fh.read()
                hexd = hashlib.sha256(got).hexdigest()
                # (a read the kill cut short is no answer)
                if f.content.resolve(len(got), hexd) is None and \
                        not self.ctx.killed.is_set():
                    self.bad_reads.append(
                        "read %s during the round: %d bytes sha %s, want "
                        "%s" % (rel, len(got), hexd[:12],
                                f.content.describe()))
        elif kind == "overwrite":
            data = self._data(f.kind)

            def effect(md, partial):
                g = md.names[rel]
                g.history.add(g.content.key())
                g.content = Content().appended(data, partial)

            def io():
                self._write(m.p(rel), os.O_WRONLY | os.O_TRUNC, data)
        elif kind == "append":
            data = rng.randbytes(rng.randint(1, 8192))

            def effect(md, partial):
                g = md.names[rel]
                g.history.add(g.content.key())
                g.content = g.content.appended(data, partial)

            def io():
                self._write(m.p(rel), os.O_WRONLY | os.O_APPEND, data)
        elif kind == "create":
            new = self.new_name("n")
            data = self._data("s" if rng.random() < 0.9 else "m")
            mode = rng.choice(MODES) & ~self.umask
            fkind = "s" if len(data) < MEDIUM_MIN else "m"

            def effect(md, partial):
                g = File(Content().appended(data, partial), mode, fkind)
                g.names.add(new)
                g.changed = time.monotonic()
                md.names[new] = g

            def io():
                self._write(m.p(new), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                            data, mode)

            def observe():
                g = self.model.names[new]
                g.ino = os.lstat(m.p(new)).st_ino
            rel = new
        elif kind == "rename":
            same = rng.random() < 0.5
            new = self.new_name("r", os.path.dirname(rel) if same else None)

            def effect(md, partial):
                g = md.names.pop(rel)
                g.names.discard(rel)
                g.names.add(new)
                g.changed = time.monotonic()
                md.names[new] = g
                md.gone[rel] = (g, "renamed to %s by the client" % new)

            def io():
                os.rename(m.p(rel), m.p(new))
        elif kind == "unlink":
            def effect(md, partial):
                g = md.names.pop(rel)
                g.names.discard(rel)
                md.gone[rel] = (g, "unlinked by the client")

            def io():
                os.unlink(m.p(rel))
        elif kind == "chmod":
            mode = rng.choice(MODES)

            def effect(md, partial):
                md.names[rel].mode = mode

            def io():
                os.chmod(m.p(rel), mode)
        else:
            key = rng.choice(XATTRS)
            val = rng.randbytes(rng.randint(1, 200))

            def effect(md, partial):
                md.names[rel].xattrs[key] = val

            def io():
                os.setxattr(m.p(rel), key, val)
        try:
            io()
        except OSError as e:
            if effect is not None:
                # it may have happened, in part: both outcomes stand
                after = self.model.clone()
                effect(after, True)
                self.pending = (kind, rel, after)
            self._failed(kind, rel, e)
            raise
        if effect is None:
            return
        effect(self.model, False)
        self.ops += 1
        self.hot_ops += hot
        if observe is not None:
            try:
                observe()
            except OSError as e:
                # made and acknowledged; its inode number stays unknown
                self._failed("stat after create", rel, e)
                raise

    def _failed(self, kind, rel, e):
        # after the kill every call fails; before it, none may
        if not self.ctx.killed.is_set():
            self.errors.append("%s %s with the daemon alive: %s" % (
                kind, rel, e))

    def run(self):
        try:
            # until a call fails: after the kill they all do
            while not self.ctx.stop.is_set():
                self.one()
        except OSError:
            pass
        except BaseException:
            self.errors.append("client %d failed:\n%s" % (
                self.tid, traceback.format_exc()))

    def candidates(self):
        if self.pending is None:
            return [("as acknowledged", self.model)]
        kind, rel, after = self.pending
        return [("without the %s of %s in flight at the kill" % (kind, rel),
                 self.model),
                ("with the %s of %s in flight at the kill" % (kind, rel),
                 after)]


class Ctx:
    """What the round's threads share."""

    def __init__(self):
        self.killed = threading.Event()     # set just before the SIGKILL
        self.stop = threading.Event()
        self.snapshot = None                # (names on both tiers, temps)
        self.t_kill = None


def _watch(m, ctx):
    """Which names are on both tiers (switched, the source waiting for its
    batch) and which inodes have a temp (being copied), every few ms."""
    while not ctx.stop.is_set():
        seen = [set(), set()]
        tmps = set()
        for d in DIRS:
            for t in range(2):
                try:
                    ents = os.listdir(m.t(t, d))
                except OSError:
                    continue
                for e in ents:
                    if e.startswith(TMP_PREFIX):
                        i = e[len(TMP_PREFIX):]
                        if i.isdigit():
                            tmps.add(int(i))
                    else:
                        seen[t].add(d + "/" + e)
        ctx.snapshot = (frozenset(seen[0] & seen[1]), frozenset(tmps))
        ctx.stop.wait(0.003)        # pacing the poll, not waiting for it


# --- the test -------------------------------------------------------------------

def _populate(m, rng, models):
    """The files, made through the mount and aged."""
    for d in DIRS:
        os.makedirs(m.p(d), exist_ok=True)
    big = 0
    for tid in range(THREADS):
        md = models[tid]
        kinds = ["m"] * MEDIUM + ["s"] * (PER_THREAD - MEDIUM)
        if big < NLARGE:
            kinds[0] = "l"
            big += 1
        for i, kind in enumerate(kinds):
            rel = "%s/c%d-f%03d" % (rng.choice(DIRS), tid, i)
            if kind == "s":
                data = rng.randbytes(rng.randint(0, SMALL_MAX))
            elif kind == "m":
                data = rng.randbytes(rng.randint(MEDIUM_MIN, MEDIUM_MAX))
            else:
                data = rng.randbytes(rng.randint(*LARGE))
            mode = rng.choice(MODES)
            fd = os.open(m.p(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         mode)
            with open(fd, "wb") as fh:
                fh.write(data)
            os.chmod(m.p(rel), mode)
            f = File(Content.of(data), mode, kind)
            if rng.random() < 0.3:
                for k in rng.sample(XATTRS, rng.randint(1, 2)):
                    v = rng.randbytes(rng.randint(1, 100))
                    os.setxattr(m.p(rel), k, v)
                    f.xattrs[k] = v
            f.names.add(rel)
            f.ino = os.lstat(m.p(rel)).st_ino
            f.history.add(f.content.key())
            md.names[rel] = f
        small = sorted(r for r, f in md.names.items() if f.kind == "s")
        for g in range(LINK_GROUPS):
            f = md.names[small[g]]
            for k in range(rng.randint(1, 2)):
                rel = "%s/c%d-h%d-%d" % (rng.choice(DIRS), tid, g, k)
                os.link(m.p(small[g]), m.p(rel))
                f.names.add(rel)
                md.names[rel] = f
    _age(m, rng, models)


def _age(m, rng, models):
    """Every file about 30 days old, in a random order of age."""
    for md in models:
        for f in md.files():
            t = OLD + rng.uniform(-DAY, DAY)
            os.utime(m.p(sorted(f.names)[0]), (t, t))


def _policy(src):
    return policy("churn", frm="t%d" % src, to="t%d" % (1 - src))


def _direction(src):
    return "t%d -> t%d" % (src, 1 - src)


def _scans(m):
    return m.full_log().count("scan complete:")


def _conflicts(m, pr):
    rc, out, err = run([dfsctl_bin(), "-s", m.sock, "conflicts", "--json"])
    if rc != 0:
        pr.add("conflicts", "dfsctl conflicts: status %d %s%s" % (
            rc, out, err))
        return
    try:
        j = json.loads(out)
    except ValueError:
        pr.add("conflicts", "dfsctl conflicts --json: %r" % out[:200])
        return
    if j.get("total", 0) or j.get("conflicts"):
        pr.add("conflicts", "dfsctl conflicts: %d: %s" % (
            j.get("total", 0), ["%s served from %s, shadowed on %s" % (
                c.get("path"), c.get("served"), c.get("shadowed"))
                for c in j.get("conflicts", [])[:10]]))


def _check(m, clients, ctx, pr, stats):
    """The whole tree against the models; the models as found, for the
    next round."""
    obs = _observe(m, pr)
    mine = [dict() for _ in clients]
    for rel, o in obs.items():
        tid = _owner(rel)
        if tid is None or tid >= len(clients):
            pr.add("extra", "%s: a name no client made" % rel)
        else:
            mine[tid][rel] = o
    for c in clients:
        best = None
        for what, cand in c.candidates():
            probs = _diff(cand, mine[c.tid], ctx.t_kill)
            if not probs:
                c.model = _resolve(cand, mine[c.tid], ctx.t_kill, stats)
                best = None
                break
            if best is None or len(probs) < len(best[1]):
                best = (what, probs)
        if best is not None:
            for kind, text in best[1]:
                pr.add(kind, "client %d (%s): %s" % (c.tid, best[0], text))
        for e in c.errors:
            pr.add("client", "client %d: %s" % (c.tid, e))
        for e in c.bad_reads:
            pr.add("read", "client %d: %s" % (c.tid, e))
    tiers = _tier_names(m)
    for rel, where in sorted(tiers.items()):
        if os.path.basename(rel).startswith(TMP_PREFIX):
            pr.add("temp", "%s: temp file left on t%s" % (
                rel, "+t".join(str(t) for t, _ in where)))
        elif len(where) != 1:
            pr.add("doubled", "%s: on %s" % (rel, "+".join(
                "t%d" % t for t, _ in where)))
        elif rel not in obs:
            pr.add("hidden", "%s: on t%d but not through the mount" % (
                rel, where[0][0]))
    for rel in sorted(set(obs) - set(tiers)):
        pr.add("tiers", "%s: through the mount, on no tier" % rel)
    for c in clients:
        for f in c.model.files():
            held = set(tiers[n][0] for n in f.names if n in tiers and
                       len(tiers[n]) == 1)
            if len(held) > 1:
                pr.add("links", "hard links %s: backing files %s" % (
                    sorted(f.names), sorted(held)))
    _conflicts(m, pr)


def _fail(m, seed, rnd, info, pr, since, snapdir):
    """Fail the test with the round's findings and what the log says
    recovery did to the names involved."""
    items = pr.items
    kinds = pr.kinds()
    log = m.full_log()[since:]
    paths = set()
    for _, text in items:
        paths.update(re.findall(r"[\w/.-]*c\d+-[\w-]+", text))
    names = set(os.path.basename(p) for p in paths)
    rec = [l for l in log.splitlines() if "recovered" in l]
    rec_names = [l for l in rec if any("(%s)" % n in l for n in names)]
    lines = ["DFS_SEED=%d: round %d: %d finding(s) (%s)" % (
        seed, rnd, len(items), ", ".join("%s %d" % kv for kv in
                                         sorted(kinds.items())))]
    lines += info
    lines.append("journal at the kill: " + _journal(snapdir, paths))
    lines.append("the restart recovered %d move(s); of the names found "
                 "wrong:\n    %s" % (len(rec), "\n    ".join(
                     rec_names[:20]) or "none"))
    lines += ["[%s] %s" % kv for kv in items[:SHOW]]
    if len(items) > SHOW:
        lines.append("... %d more" % (len(items) - SHOW))
    print("churn: FAILED, replay with DFS_SEED=%d (round %d; %s)" % (
        seed, rnd, ", ".join("%s %d" % kv for kv in sorted(kinds.items()))),
        flush=True)
    m._fail("\n  ".join(lines))


def _round(m, rnd, src, rng, clients, seed, stats):
    """One round moving files from tier src; returns the source tier of
    the next round."""
    ctx = Ctx()
    for c in clients:
        c.ctx = ctx
        c.pending = None
        c.errors = []
        c.bad_reads = []
        c.ops = c.hot_ops = 0
        c.aimed = set()
    since = len(m.full_log())
    outf = open(os.path.join(m.root, "migrate-%d.out" % rnd), "wb")
    bg = subprocess.Popen([dfsctl_bin(), "-s", m.sock, "migrate", "--now",
                           "--wait"], stdin=subprocess.DEVNULL, stdout=outf,
                          stderr=subprocess.STDOUT)
    watcher = threading.Thread(target=_watch, args=(m, ctx), daemon=True)
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    delay = rng.uniform(0, KILL_MAX)
    try:
        watcher.start()
        for t in threads:
            t.start()
        time.sleep(delay)       # the random moment of the kill
        if not m.alive():
            m._fail("round %d: dfs died before the kill (status %s)" % (
                rnd, m.proc.returncode))
        snap = ctx.snapshot
        ctx.killed.set()
        ctx.t_kill = time.monotonic()
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait()
        for t in threads:
            t.join(JOIN_TIMEOUT)
        if any(t.is_alive() for t in threads):
            m._fail("round %d: a client still runs %.0f s after the kill" %
                    (rnd, JOIN_TIMEOUT))
        try:
            bg.wait(timeout=JOIN_TIMEOUT)
        except subprocess.TimeoutExpired:
            bg.kill()
            bg.wait()
    finally:
        # on the way out of a failure too: no client left on the mount
        ctx.killed.set()
        ctx.stop.set()
        for t in threads:
            if t.ident is not None:
                t.join(JOIN_TIMEOUT)
        if watcher.ident is not None:
            watcher.join(JOIN_TIMEOUT)
        if bg.poll() is None:
            bg.kill()
            bg.wait()
        outf.close()
    with open(os.path.join(m.root, "migrate-%d.out" % rnd),
              errors="replace") as fh:
        said = fh.read()
    done = re.search(r"done in ([\d.]+) s", said)
    moved = re.search(r"moved +(\d+) files", said)
    run_end = ("the run had ended (%s s, %s files)" % (
        done.group(1), moved.group(1) if moved else "?") if done else
        "the run still going")
    ops = sum(c.ops for c in clients)
    hot = sum(c.hot_ops for c in clients)
    unknown = sum(1 for c in clients if c.pending is not None)
    stats["ops"] += ops
    stats["kills"] += 1
    both = len(snap[0] - set(DIRS)) if snap else 0
    held = _tier_names(m)
    on = [sum(1 for rel, w in held.items() if [t for t, _ in w] == [t])
          for t in range(2)]
    # the next round moves from the tier holding more of the files
    nxt = 0 if on[0] >= on[1] else 1
    info = ["round %d (%s): killed %.2f s after the run began, %s; %d client "
            "operations (%d on files being moved), %d in flight; %d names "
            "on both tiers just before; at the kill %d names only on t0, "
            "%d only on t1, %d on both" % (
                rnd, _direction(src), delay, run_end, ops, hot, unknown,
                both,
                on[0], on[1], len(held) - on[0] - on[1])]
    # the index as the kill left it, for the report of a failure
    snapdir = os.path.join(m.root, "index-at-kill-%d" % rnd)
    os.makedirs(snapdir)
    state = os.path.join(m.root, "state")
    for fn in os.listdir(state):
        if fn.startswith("index"):
            shutil.copy2(os.path.join(state, fn), snapdir)
    scans = _scans(m)
    m.policies = _policy(nxt)
    log_at = len(m.full_log())
    m.restart_after_crash()
    if not wait_for(lambda: _scans(m) > scans or not m.alive(),
                    SCAN_TIMEOUT):
        m._fail("round %d: no scan completed %.0f s after the restart" % (
            rnd, SCAN_TIMEOUT))
    if not m.alive():
        m._fail("round %d: dfs died after the restart (status %s)" % (
            rnd, m.proc.returncode))
    pr = Problems()
    rc, out, err = run([dfsctl_bin(), "-s", m.sock, "scan", "--wait"],
                       timeout=SCAN_TIMEOUT + 30)
    if rc != 0:
        pr.add("scan", "dfsctl scan --wait: status %d: %s%s" % (rc, out, err))
    recovered = m.full_log()[log_at:].count("recovered the move")
    stats["recovered"] += recovered
    _check(m, clients, ctx, pr, stats)
    stats["verified"] += sum(len(c.model.names) for c in clients)
    stats["findings"] += len(pr.items)
    for k, n in pr.kinds().items():
        stats["kinds"][k] = stats["kinds"].get(k, 0) + n
    if pr.items:
        _fail(m, seed, rnd, info, pr, since, snapdir)
    print("  " + info[0] + "; %d recovered; ok" % recovered, flush=True)
    return nxt


def test_clients_write_through_kills_during_migration():
    if not dfsctl_has("migrate"):
        raise TestFailure("dfsctl has no migrate command (dfsctl -h)")
    seed = seed_from_env()
    print("seed %d: replay with DFS_SEED=%d" % (seed, seed), flush=True)
    rng = random.Random(seed)
    models = [Model() for _ in range(THREADS)]
    stats = dict(ops=0, kills=0, recovered=0, findings=0, renumbered=[],
                 kinds={}, verified=0)
    rounds = 0
    t0 = time.monotonic()
    try:
        src = 0
        with MigMount(_policy(src), migration={"bandwidth": BANDWIDTH}) as m:
            if not wait_for(lambda: _scans(m) > 0 or not m.alive(),
                            SCAN_TIMEOUT):
                m._fail("no start-up scan completed")
            _populate(m, rng, models)
            clients = [Client(tid, random.Random(rng.randrange(1 << 32)),
                              models[tid], m, None)
                       for tid in range(THREADS)]
            rnd = 0
            while (time.monotonic() - t0 < SECONDS if SECONDS > 0 else
                   rnd < ROUNDS):
                src = _round(m, rnd, src, rng, clients, seed, stats)
                rnd += 1
                rounds += 1
                _age(m, rng, [c.model for c in clients])
    finally:
        ages = [a for a in stats["renumbered"] if a >= 0]
        print("churn: seed %d: %d rounds passed, %d client operations, %d "
              "kills, %d moves recovered, %d files verified, %d findings%s; "
              "new inode numbers "
              "(allowed) for %d names made or renamed in flight at a kill "
              "and %d made or renamed %s before it; %.1f s" % (
                  seed, rounds, stats["ops"], stats["kills"],
                  stats["recovered"], stats["verified"], stats["findings"],
                  " (%s)" % ", ".join(
                      "%s %d" % kv for kv in sorted(stats["kinds"].items()))
                  if stats["kinds"] else "",
                  len(stats["renumbered"]) - len(ages), len(ages),
                  "at most %.1f ms" % (max(ages) * 1000) if ages else
                  "less than %.0f ms" % (GRACE * 1000),
                  time.monotonic() - t0), flush=True)


test_clients_write_through_kills_during_migration.timeout = (
    SECONDS + 180 if SECONDS > 0 else max(120, 30 + 12 * ROUNDS))
