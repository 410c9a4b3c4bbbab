"""Randomized operation test: one file through the mount against a reference
file on local disk, compared after every step.

A seeded sequence of write (also past EOF), truncate (grow/shrink), read,
pread, O_DIRECT pread (past the page cache, into dfs), fallocate (mode 0 and KEEP_SIZE), punch hole, mmap read/write,
SEEK_DATA/SEEK_HOLE and reopen is applied to both files. After every step
the results (bytes, return values, errno) and the sizes must agree and the
touched range is compared; the whole file is compared every FULL_EVERY
steps and at the end, together with the backing file on its tier.

Environment:
  DFS_SEED            seed (default: random; printed on failure)
  DFS_RANDOM_OPS      operations per file (default 20000)
  DFS_RANDOM_SECONDS  time bound per file (default 15)
"""

import ctypes
import errno
import mmap
import os
import random
import time

from dfstest import Mount, TestFailure, tiers_holding

MAX_SIZE = 256 * 1024
MAX_IO = 64 * 1024
FULL_EVERY = 64
PAGE = mmap.ALLOCATIONGRANULARITY

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int,
                            ctypes.c_longlong, ctypes.c_longlong]
_libc.fallocate.restype = ctypes.c_int


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def seed_from_env():
    s = os.environ.get("DFS_SEED")
    if s:
        return int(s, 0)
    return random.SystemRandom().randrange(1 << 32)


def env_int(name, default):
    s = os.environ.get(name)
    return int(s) if s else default


def outcome(fn):
    """Run fn; return ("ok", value) or ("err", errno name)."""
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, str(e.errno)))
    except (ValueError, IndexError) as e:
        return ("exc", type(e).__name__)


class Side:
    """One of the two files: path, a read-write fd, a read-only fd."""

    def __init__(self, path, create):
        self.path = path
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        self.fd = os.open(path, flags, 0o644)
        self.rfd = os.open(path, os.O_RDONLY)
        self.dfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        self.mmap_dirty = False

    def reopen(self, trunc, both):
        os.close(self.fd)
        flags = os.O_RDWR | (os.O_TRUNC if trunc else 0)
        self.fd = os.open(self.path, flags)
        if both:
            os.close(self.rfd)
            self.rfd = os.open(self.path, os.O_RDONLY)
            os.close(self.dfd)
            self.dfd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
        return None

    def close(self):
        for fd in (self.fd, self.rfd, self.dfd):
            try:
                os.close(fd)
            except OSError:
                pass

    def size(self):
        return os.fstat(self.fd).st_size

    def read_range(self, off, length):
        return os.pread(self.rfd, length, off)

    def read_all(self):
        with open(self.path, "rb") as f:
            return f.read()


class RandomRun:
    def __init__(self, mnt_path, ref_path, backing_path, seed, label,
                 create=False):
        self.rng = random.Random(seed)
        self.seed = seed
        self.label = label
        self.backing = backing_path
        self.m = Side(mnt_path, create)
        self.r = Side(ref_path, create)
        self.history = []
        self.step = 0

    # -- failure reporting -------------------------------------------------

    def fail(self, what):
        hist = "\n    ".join(self.history[-12:])
        raise TestFailure(
            "random test %s failed: DFS_SEED=%d step %d\n"
            "  op: %s\n  %s\n  last ops:\n    %s"
            % (self.label, self.seed, self.step,
               self.history[-1] if self.history else "-", what, hist))

    def same(self, what, a, b):
        if a != b:
            self.fail("%s differs: mount %r, reference %r"
                      % (what, short(a), short(b)))

    def same_bytes(self, what, off, a, b):
        if a == b:
            return
        n = min(len(a), len(b))
        i = next((k for k in range(n) if a[k] != b[k]), n)
        self.fail("%s differs: mount %d bytes, reference %d bytes, "
                  "first difference at file offset %d (mount %r, ref %r)"
                  % (what, len(a), len(b), off + i,
                     a[i:i + 16], b[i:i + 16]))

    # -- helpers -------------------------------------------------------------

    def both(self, fn):
        """Apply fn(side) to both files; results must agree."""
        a = outcome(lambda: fn(self.m))
        b = outcome(lambda: fn(self.r))
        self.same("result", a, b)
        return b

    def check_range(self, off, length):
        if length <= 0:
            return
        a = self.m.read_range(off, length)
        b = self.r.read_range(off, length)
        self.same_bytes("content of [%d, +%d)" % (off, length), off, a, b)

    def check_size(self):
        self.same("size (fstat)", self.m.size(), self.r.size())

    def check_full(self, backing=False):
        self.check_size()
        a = self.m.read_all()
        b = self.r.read_all()
        self.same_bytes("whole file (fresh open)", 0, a, b)
        self.same("size (stat)", os.stat(self.m.path).st_size,
                  os.stat(self.r.path).st_size)
        if backing:
            os.fsync(self.m.fd)
            self.m.mmap_dirty = False
            with open(self.backing, "rb") as f:
                c = f.read()
            self.same_bytes("backing file %s" % self.backing, 0, c, b)

    def rand_data(self, n):
        # Random bytes with runs of zeros now and then, so zero-filled
        # ranges written as data are told apart from holes.
        if self.rng.random() < 0.1:
            return bytes(n)
        return self.rng.randbytes(n)

    def rand_off(self, size):
        # Mostly inside the file or just past it, sometimes anywhere.
        r = self.rng.random()
        if r < 0.6 and size > 0:
            return self.rng.randrange(0, size)
        if r < 0.8:
            return min(MAX_SIZE - 1, size + self.rng.randrange(0, 8192))
        return self.rng.randrange(0, MAX_SIZE)

    def rand_len(self, off):
        room = MAX_SIZE - off
        r = self.rng.random()
        if r < 0.05:
            n = 0
        elif r < 0.5:
            n = self.rng.randrange(1, 512)
        elif r < 0.8:
            n = self.rng.randrange(1, 8192)
        else:
            n = self.rng.randrange(1, MAX_IO)
        return min(n, room)

    # -- operations --------------------------------------------------------

    def op_write(self, size):
        off = self.rand_off(size)
        n = self.rand_len(off)
        data = self.rand_data(n)
        self.history.append("pwrite(off=%d, len=%d)" % (off, n))
        self.both(lambda s: os.pwrite(s.fd, data, off))
        return off, n

    def op_append(self, size):
        n = self.rand_len(size) if size < MAX_SIZE else 0
        data = self.rand_data(n)
        self.history.append("append(len=%d) at size %d" % (n, size))

        def f(s):
            fd = os.open(s.path, os.O_WRONLY | os.O_APPEND)
            try:
                return os.write(fd, data)
            finally:
                os.close(fd)
        self.both(f)
        return size, n

    def op_truncate(self, size):
        r = self.rng.random()
        if r < 0.4:
            new = self.rng.randrange(0, size + 1) if size else 0
        elif r < 0.8:
            new = self.rng.randrange(size, MAX_SIZE + 1)
        else:
            new = self.rng.choice([0, size, PAGE, PAGE - 1, PAGE + 1,
                                   MAX_SIZE])
        by_path = self.rng.random() < 0.3
        self.history.append("%struncate(%d) from %d"
                            % ("" if by_path else "f", new, size))
        if by_path:
            self.both(lambda s: os.truncate(s.path, new))
        else:
            self.both(lambda s: os.ftruncate(s.fd, new))
        lo = min(new, size)
        return max(0, lo - 512), abs(new - size) + 1024

    def op_read(self, size):
        off = self.rand_off(size + 1)
        n = self.rand_len(off) + self.rng.choice([0, 0, 4096])
        use_rfd = self.rng.random() < 0.5
        self.history.append("pread(%s, off=%d, len=%d)"
                            % ("ro" if use_rfd else "rw", off, n))
        a = outcome(lambda: os.pread(self.m.rfd if use_rfd else self.m.fd,
                                     n, off))
        b = outcome(lambda: os.pread(self.r.rfd if use_rfd else self.r.fd,
                                     n, off))
        if a[0] == "ok" and b[0] == "ok":
            self.same_bytes("pread result", off, a[1], b[1])
        else:
            self.same("pread result", a, b)
        return None

    def op_direct_read(self, size):
        # O_DIRECT reads bypass the page cache, so this is where dfs's own
        # read path (holes, EOF, short reads) is compared. Page-aligned
        # offset, length and buffer, as ext4 wants for O_DIRECT. Through
        # FUSE, dirty mmap pages are not written back before a direct
        # read (ext4 does that), so sync them first.
        if self.m.mmap_dirty:
            os.fsync(self.m.fd)
            self.m.mmap_dirty = False
        off = self.rand_off(size + 1) // PAGE * PAGE
        n = max(1, self.rand_len(off) // PAGE + self.rng.choice([0, 1])) * PAGE
        self.history.append("O_DIRECT pread(off=%d, len=%d)" % (off, n))

        def f(s):
            buf = mmap.mmap(-1, n)
            try:
                got = os.preadv(s.dfd, [buf], off)
                return buf[:got]
            finally:
                buf.close()
        a = outcome(lambda: f(self.m))
        b = outcome(lambda: f(self.r))
        if a[0] == "ok" and b[0] == "ok":
            self.same_bytes("O_DIRECT read result", off, a[1], b[1])
        else:
            self.same("O_DIRECT read result", a, b)
        return None

    def op_seq_read(self, size):
        off = self.rand_off(size + 1)
        n = self.rand_len(off)
        self.history.append("lseek(%d)+read(%d)" % (off, n))

        def f(s):
            os.lseek(s.rfd, off, os.SEEK_SET)
            return os.read(s.rfd, n)
        a = outcome(lambda: f(self.m))
        b = outcome(lambda: f(self.r))
        if a[0] == "ok" and b[0] == "ok":
            self.same_bytes("read result", off, a[1], b[1])
        else:
            self.same("read result", a, b)
        return None

    def op_fallocate(self, size, mode):
        off = self.rand_off(size)
        n = self.rand_len(off)
        names = {0: "0", FALLOC_FL_KEEP_SIZE: "KEEP_SIZE",
                 FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
                 "PUNCH_HOLE|KEEP_SIZE"}
        self.history.append("fallocate(%s, off=%d, len=%d)"
                            % (names[mode], off, n))
        self.both(lambda s: fallocate(s.fd, mode, off, n))
        return off, n

    def mmap_range(self, size):
        if size == 0:
            return None
        moff = self.rng.randrange(0, (size - 1) // PAGE + 1) * PAGE
        mlen = self.rng.randrange(1, min(size - moff, MAX_IO) + 1)
        return moff, mlen

    def op_mmap_read(self, size):
        rng = self.mmap_range(size)
        if rng is None:
            return None
        moff, mlen = rng
        a0 = self.rng.randrange(0, mlen)
        a1 = self.rng.randrange(a0, mlen + 1)
        self.history.append("mmap(off=%d, len=%d) read [%d, %d)"
                            % (moff, mlen, moff + a0, moff + a1))

        def f(s):
            with mmap.mmap(s.fd, mlen, mmap.MAP_SHARED, mmap.PROT_READ,
                           offset=moff) as mm:
                return mm[a0:a1]
        a = outcome(lambda: f(self.m))
        b = outcome(lambda: f(self.r))
        if a[0] == "ok" and b[0] == "ok":
            self.same_bytes("mmap read", moff + a0, a[1], b[1])
        else:
            self.same("mmap read", a, b)
        return None

    def op_mmap_write(self, size):
        rng = self.mmap_range(size)
        if rng is None:
            return None
        moff, mlen = rng
        a0 = self.rng.randrange(0, mlen)
        a1 = self.rng.randrange(a0, mlen + 1)
        data = self.rand_data(a1 - a0)
        sync = self.rng.random() < 0.7
        self.history.append("mmap(off=%d, len=%d) write [%d, %d)%s"
                            % (moff, mlen, moff + a0, moff + a1,
                               " msync" if sync else ""))

        def f(s):
            with mmap.mmap(s.fd, mlen, mmap.MAP_SHARED,
                           mmap.PROT_READ | mmap.PROT_WRITE,
                           offset=moff) as mm:
                mm[a0:a1] = data
                if sync:
                    mm.flush()
            if not sync:
                s.mmap_dirty = True
            return None
        self.both(f)
        return moff + a0, a1 - a0

    def op_seek(self, size):
        # Holes may be reported anywhere a filesystem likes, but what
        # SEEK_HOLE/SEEK_DATA call a hole must read as zeros. Dirty mmap
        # pages reach the backing file only on writeback, and the kernel
        # does not write back before FUSE_LSEEK, so sync them first.
        if self.m.mmap_dirty:
            os.fsync(self.m.fd)
            self.m.mmap_dirty = False
        off = self.rand_off(size + 1)
        whence = self.rng.choice([os.SEEK_DATA, os.SEEK_HOLE])
        self.history.append("lseek(%d, %s) size %d"
                            % (off, "SEEK_DATA" if whence == os.SEEK_DATA
                               else "SEEK_HOLE", size))
        a = outcome(lambda: os.lseek(self.m.fd, off, whence))
        if off >= size:
            self.same("lseek past EOF", a, ("err", "ENXIO"))
            return None
        if whence == os.SEEK_DATA and a == ("err", "ENXIO"):
            # No data from off on: the rest of the file is a hole.
            a = ("ok", size)
        if a[0] != "ok":
            self.fail("lseek failed: %r" % (a,))
        pos = a[1]
        if pos < off or pos > size:
            self.fail("lseek returned %d, outside [%d, %d]" % (pos, off, size))
        if whence == os.SEEK_DATA:
            hole = (off, pos)
        elif pos == size:
            return None
        else:
            nxt = outcome(lambda: os.lseek(self.m.fd, pos, os.SEEK_DATA))
            if nxt == ("err", "ENXIO"):
                hole = (pos, size)
            elif nxt[0] == "ok" and pos <= nxt[1] <= size:
                hole = (pos, nxt[1])
            else:
                self.fail("SEEK_DATA from hole at %d gave %r" % (pos, nxt))
        if hole[1] > hole[0]:
            b = self.r.read_range(hole[0], hole[1] - hole[0])
            if b.count(0) != len(b):
                self.fail("[%d, %d) reported as a hole but holds data"
                          % hole)
        return None

    def op_reopen(self, size):
        trunc = self.rng.random() < 0.05
        both = self.rng.random() < 0.5
        self.history.append("reopen(%s%s)" % ("O_TRUNC" if trunc else "rw",
                                              ", ro too" if both else ""))
        self.both(lambda s: s.reopen(trunc, both))
        return (0, size) if trunc else None

    # -- the run -------------------------------------------------------------

    def run(self, nops, seconds):
        ops = [
            (14, self.op_write),
            (3, self.op_append),
            (8, self.op_truncate),
            (10, self.op_read),
            (4, self.op_seq_read),
            (4, self.op_direct_read),
            (5, lambda s: self.op_fallocate(s, 0)),
            (5, lambda s: self.op_fallocate(s, FALLOC_FL_KEEP_SIZE)),
            (7, lambda s: self.op_fallocate(
                s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)),
            (5, self.op_mmap_read),
            (7, self.op_mmap_write),
            (4, self.op_seek),
            (2, self.op_reopen),
        ]
        weights = [w for w, _ in ops]
        funcs = [f for _, f in ops]
        deadline = time.monotonic() + seconds
        done = 0
        try:
            self.check_full(backing=True)
            for self.step in range(1, nops + 1):
                size = self.r.size()
                f = self.rng.choices(funcs, weights)[0]
                touched = f(size)
                self.check_size()
                if touched is not None:
                    off, n = touched
                    self.check_range(max(0, off - 64), n + 128)
                if self.step % FULL_EVERY == 0:
                    self.check_full(backing=self.step % (4 * FULL_EVERY) == 0)
                done = self.step
                if time.monotonic() > deadline:
                    break
            self.history.append("final check")
            self.check_full(backing=True)
        finally:
            self.m.close()
            self.r.close()
        return done


def short(v):
    if isinstance(v, (bytes, bytearray)) and len(v) > 32:
        return "%r...(%d bytes)" % (bytes(v[:32]), len(v))
    if isinstance(v, tuple):
        return tuple(short(x) for x in v)
    return v


def initial_content(rng):
    """Content for a file placed on a tier before mounting: data, a hole,
    more data."""
    a = rng.randbytes(rng.randrange(1, 40000))
    hole = rng.randrange(0, 70000)
    b = rng.randbytes(rng.randrange(0, 30000))
    return a, hole, b


def place(path, parts):
    a, hole, b = parts
    with open(path, "wb") as f:
        f.write(a)
        f.seek(hole, os.SEEK_CUR)
        f.write(b)
        f.truncate(len(a) + hole + len(b))


def run_case(tier_index, label):
    seed = seed_from_env()
    nops = env_int("DFS_RANDOM_OPS", 20000)
    seconds = env_int("DFS_RANDOM_SECONDS", 15)
    name = "random-%s.bin" % label
    parts = initial_content(random.Random(seed ^ 0x5EED))

    def populate(m):
        os.mkdir(os.path.join(m.root, "ref"))
        if tier_index > 0:
            # Placed on the lower tier before mounting, as adopted data.
            place(m.t(tier_index, name), parts)
            place(os.path.join(m.root, "ref", name), parts)

    with Mount(ntiers=2, populate=populate) as m:
        ref = os.path.join(m.root, "ref", name)
        # For tier 0 the file is created through the mount.
        run = RandomRun(m.p(name), ref, m.t(tier_index, name), seed,
                        label, create=(tier_index == 0))
        t0 = time.monotonic()
        done = run.run(nops, seconds)
        dt = time.monotonic() - t0
        held = tiers_holding(m, name)
        if held != [tier_index]:
            raise TestFailure("random test %s (DFS_SEED=%d): after the run "
                              "the file is on tiers %r, expected [%d]"
                              % (label, seed, held, tier_index))
        print("random %s: %d operations in %.1f s, DFS_SEED=%d"
              % (label, done, dt, seed))


def test_random_tier0():
    run_case(0, "tier0")


def test_random_tier1():
    run_case(1, "tier1")
