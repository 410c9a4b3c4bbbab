"""Harness for the dfs mount tests: real mounts over temp dirs, always
unmounted.

    with Mount(ntiers=2, populate=fn, opts="allow_other") as m:
        m.p("a")        # path through the mount
        m.t(1, "a")     # path of the same name on tier 1

`populate(m)` runs before the daemon starts, with the tier dirs in place, so
tests can put files on the lower tiers "behind dfs's back" the way an adopted
tier holds data.  The daemon is `$DFS_BIN` (default <repo>/build/dfs).
"""

import ctypes
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# How long a daemon may take to mount, or to exit after its unmount.  A
# sanitizer build is several times slower, and its leak check at exit
# walks the whole heap: scripts/test raises DFS_TIME_SCALE for those.
TIME_SCALE = float(os.environ.get("DFS_TIME_SCALE", "1"))
MOUNT_TIMEOUT = 10.0 * TIME_SCALE
EXIT_TIMEOUT = 10.0 * TIME_SCALE

# Test users for the permission tests: not in /etc/passwd on purpose.
USER_UID = 12345
USER_GID = 12345
USER_GROUP = 23456      # a supplementary group of the test user
OTHER_GROUP = 34567     # a group the test user is not in


def dfs_bin():
    return os.environ.get("DFS_BIN", os.path.join(REPO, "build", "dfs"))


def dfsctl_bin():
    return os.environ.get("DFSCTL_BIN", os.path.join(
        os.path.dirname(dfs_bin()), "dfsctl"))


class TestFailure(AssertionError):
    pass


def check(cond, msg="check failed"):
    """assert that survives python -O"""
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what="value"):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


# --- /proc/mounts ---------------------------------------------------------

def _unescape(s):
    # /proc/mounts escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mount_entry(path):
    """The /proc/mounts line (fields) for mount point `path`, or None."""
    path = os.path.realpath(path)
    found = None
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 4 and _unescape(fields[1]) == path:
                found = fields      # the last one is on top
    return found


def dry_run(text):
    """The JSON lines of `dfsctl --json migrate --dry-run` as one dict: the
    summary (the last line), with "moves" and "left" the lists of the
    per-file objects and "left_count" the summary's count."""
    objs = [json.loads(l) for l in text.splitlines() if l.strip()]
    if not objs or "files" not in objs[-1]:
        raise TestFailure("dry run without a summary line: %r" % text[-500:])
    res = dict(objs[-1])
    res["left_count"] = res.pop("left")
    res["moves"] = [o["move"] for o in objs[:-1] if "move" in o]
    res["left"] = [o["stay"] for o in objs[:-1] if "stay" in o]
    return res


def daemon_argv(argv):
    """argv to start a daemon with: a run started in the background (a
    shell's `&`, nohup) ignores SIGINT, and so would dfs, which the
    signal tests stop with it; env puts SIGINT and SIGTERM back."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN or \
            signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        return ["env", "--default-signal=INT,TERM"] + list(argv)
    return list(argv)


def is_mounted(path):
    return mount_entry(path) is not None


def mounts_under(path):
    """Mount points at or below `path` (to refuse rmtree into a live mount)."""
    path = os.path.realpath(path)
    res = []
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 2:
                continue
            mp = _unescape(fields[1])
            if mp == path or mp.startswith(path + "/"):
                res.append(mp)
    return res


def unmount(path, busy=0.0, fuse=True):
    """fusermount3 -u, tried again for `busy` seconds while it fails (a
    mount still in use), then -uz; with fuse false, umount and umount -l
    (a kernel file system).  Returns a description of what it took."""
    if not is_mounted(path):
        return "not mounted"
    cmd, lazy = (["fusermount3", "-u"], ["fusermount3", "-uz"]) if fuse \
        else (["umount"], ["umount", "-l"])
    msg = []

    def attempt():
        r = subprocess.run(cmd + [path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        if r.returncode == 0 and not is_mounted(path):
            return True
        msg[:] = [r.stdout.decode(errors="replace").strip()]
        return False
    if wait_for(attempt, busy, 0.2, 0.2):
        return "unmounted"
    r2 = subprocess.run(lazy + [path], stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        timeout=30)
    if is_mounted(path):
        raise TestFailure("cannot unmount %s: %s / %s" % (
            path, msg[0], r2.stdout.decode(errors="replace").strip()))
    return "lazily unmounted (%s) after: %s" % (" ".join(lazy[1:]), msg[0])


def wait_for(pred, timeout, interval=0.01, most=0.1):
    """Poll pred() until true or timeout, the interval doubling up to
    `most`; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
        interval = min(interval * 2, most)


def live_mount(path):
    """`path` is listed as a mount point and answers.  A dead mount left by
    a killed daemon stays listed (ENOTCONN) until a new daemon detaches it,
    so the check is statfs, which the kernel never answers from its
    cache."""
    if not is_mounted(path):
        return False
    try:
        os.statvfs(path)
    except OSError:
        return False
    return True


def wait_mounted(path, proc, timeout, interval=0.01, most=0.1):
    """Wait until `path` is a live mount or the daemon `proc` (a Popen) has
    exited; returns whether it is live."""
    wait_for(lambda: live_mount(path) or proc.poll() is not None, timeout,
             interval, most)
    return live_mount(path)


def drop_caches(what=3, strict=True):
    """Make the kernel forget cached data: what=3 the page cache (after a
    sync, so that dirty pages can go too) and the dentries and inodes,
    what=2 the dentries and inodes alone.  Needs root; strict=False goes on
    without it, the caches as they are."""
    if what & 1:
        os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("%d\n" % what)
    except OSError:
        if strict:
            raise


def pids_with_argv(argv):
    """PIDs whose command line is exactly argv (used only for a daemon we
    started ourselves without -f, whose temp-dir paths make argv unique)."""
    want = "\0".join(argv).encode() + b"\0"
    res = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if f.read() == want:
                    res.append(int(d))
        except OSError:
            pass
    return res


def kill_pid(pid, timeout=5.0):
    """SIGTERM, then SIGKILL, one pid we started."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                    _is_zombie(pid), timeout):
            return


def rss_kib(pid):
    """A process's VmRSS in KiB (0 if it has none: it has exited)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# --- a daemon that outlives a test -----------------------------------------

class DaemonError(RuntimeError):
    pass


class Daemon:
    """A FUSE daemon in the foreground for as long as its user needs it: the
    benchmarks' dfs with its control socket, and what they compare it with.
    Unlike Mount, the caller owns every path, and a failure is a
    DaemonError, not a test's.

        d = Daemon([dfs_bin(), "-f", "-c", conf], mnt, log=log, sock=sock)
        d.start()               # seconds until the mount answered
        d.ctl("--json", "stats").stdout
        d.stop()                # unmounted, exited
    """

    def __init__(self, argv, mnt, log=None, sock=None, dfsctl=None,
                 name=None):
        self.argv = list(argv)
        self.mnt = mnt
        self.log = log          # the daemon's stdout and stderr, appended
        self.sock = sock
        self.dfsctl = dfsctl or dfsctl_bin()
        self.name = name or os.path.basename(self.argv[0])
        self.proc = None
        self._logf = None
        self._was_mounted = False

    def start(self, timeout=MOUNT_TIMEOUT, interval=0.01, most=0.1):
        """Start it and wait until its mount answers and its socket (if it
        has one) is there; returns the seconds until the mount answered."""
        t = time.monotonic()
        out = subprocess.DEVNULL
        if self.log is not None:
            out = self._logf = open(self.log, "ab")
        self._was_mounted = False
        self.proc = subprocess.Popen(daemon_argv(self.argv),
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT)
        see = "; see " + self.log if self.log is not None else ""
        up = wait_mounted(self.mnt, self.proc, timeout, interval, most)
        took = time.monotonic() - t
        if not up:
            rc = self.proc.poll()
            self.stop()
            if rc is not None:
                raise DaemonError("%s exited with status %s%s" % (
                    self.name, rc, see))
            raise DaemonError("%s did not mount %s within %.0f s%s" % (
                self.name, self.mnt, timeout, see))
        self._was_mounted = True
        if self.sock is not None and not wait_for(
                lambda: os.path.exists(self.sock), timeout, interval, most):
            self.stop()
            raise DaemonError("%s made no socket %s within %.0f s%s" % (
                self.name, self.sock, timeout, see))
        return took

    def ctl(self, *args, check=False, timeout=None):
        """dfsctl -s SOCK ARGS...: the CompletedProcess, output as text."""
        return subprocess.run([self.dfsctl, "-s", self.sock] + list(args),
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, check=check, timeout=timeout)

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def stop(self, timeout=EXIT_TIMEOUT, busy=0.0):
        """Unmount (see unmount() for `busy`) and wait for the exit, killing
        it after `timeout` s; returns its exit status, None if it was not
        running.  Does nothing the second time."""
        if self.proc is None:
            return None
        try:
            unmount(self.mnt, busy)
        finally:
            if not self._was_mounted:
                kill_pid(self.proc.pid)     # never came up
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_pid(self.proc.pid)
                rc = self.proc.wait()
            self.proc = None
            if self._logf is not None:
                self._logf.close()
                self._logf = None
        return rc

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# --- the mount ------------------------------------------------------------

_active = []
notes = []      # extra text for the runner to print with a failure
_active_lock = threading.Lock()


def abort_all(reason):
    """Called by the runner's watchdog: kill every daemon we started, so a
    test stuck in a syscall on the mount gets ENOTCONN and cleanup runs."""
    with _active_lock:
        mounts = list(_active)
    for m in mounts:
        m.aborted = reason
        if m.proc is not None and m.proc.poll() is None:
            try:
                m.proc.kill()
            except OSError:
                pass


class Mount:
    def __init__(self, ntiers=2, populate=None, opts=None, args=(),
                 keep=False, index=True):
        check(ntiers >= 1, "ntiers")
        self.ntiers = ntiers
        self.populate = populate
        self.opts = opts
        self.args = list(args)
        self.index = index
        self.keep = keep or bool(os.environ.get("DFS_TEST_KEEP"))
        self.root = None
        self.proc = None
        self.aborted = None
        self.log = None
        self._logf = None
        self._cwd = None
        self._was_mounted = False

    # paths
    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def t(self, i, *parts):
        return os.path.join(self.tiers[i], *parts)

    def argv(self):
        a = [dfs_bin(), "-f"] + self.args
        opts = [self.opts] if self.opts else []
        if self.index:
            # keep the index in the temp dir, not in the state directory
            opts.append("index=" + os.path.join(self.root, "index.db"))
        if opts:
            a += ["-o", ",".join(opts)]
        return a + self.tiers + [self.mnt]

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                t = f.read()
        except OSError as e:
            return "(no log: %s)" % e
        if len(t) > 20000:
            t = "...\n" + t[-20000:]
        return t

    def _fail(self, msg):
        raise TestFailure("%s\n--- dfs log (%s) ---\n%s--- end of log ---" % (
            msg, self.log, self.log_text()))

    def __enter__(self):
        self._cwd = os.getcwd()
        self.root = tempfile.mkdtemp(prefix="dfs-test.")
        # traversable by the unprivileged test user
        os.chmod(self.root, 0o755)
        self.tiers = [os.path.join(self.root, "t%d" % i)
                      for i in range(self.ntiers)]
        self.mnt = os.path.join(self.root, "mnt")
        self.log = os.path.join(self.root, "dfs.log")
        try:
            for d in self.tiers + [self.mnt]:
                os.mkdir(d)
                os.chmod(d, 0o755)
            if self.populate is not None:
                self.populate(self)
            self._start()
        except BaseException:
            self._cleanup(failing=True)
            raise
        return self

    def _start(self):
        self._logf = open(self.log, "ab")
        with _active_lock:
            if self not in _active:
                _active.append(self)
        try:
            self.proc = subprocess.Popen(daemon_argv(self.argv()),
                                         stdin=subprocess.DEVNULL,
                                         stdout=self._logf,
                                         stderr=subprocess.STDOUT,
                                         cwd=self.root)
        except OSError as e:
            self._fail("cannot start %s: %s" % (dfs_bin(), e))

        live = wait_mounted(self.mnt, self.proc, MOUNT_TIMEOUT)
        if self.proc.poll() is not None and not is_mounted(self.mnt):
            self._fail("dfs exited with status %s before mounting" %
                       self.proc.returncode)
        if not live:
            self._fail("%s not mounted after %.0f s" % (self.mnt,
                                                         MOUNT_TIMEOUT))
        self._was_mounted = True
        ent = mount_entry(self.mnt)
        if not ent[2].startswith("fuse"):
            self._fail("%s mounted with type %s, not fuse" % (self.mnt,
                                                               ent[2]))

    def remount(self):
        """Unmount cleanly, then start dfs again over the same tiers and
        index (what a reboot does)."""
        how = unmount(self.mnt)
        if how != "unmounted":
            self._fail("remount: %s" % how)
        try:
            rc = self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_pid(self.proc.pid)
            self.proc.wait()
            self._fail("remount: dfs did not exit after unmount; killed")
        if rc != 0:
            self._fail("remount: dfs exited with status %d" % rc)
        self._logf.close()
        self._logf = None
        self._was_mounted = False
        self._start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __exit__(self, etype, evalue, tb):
        failing = etype is not None
        tail = self.log_text().splitlines()[-15:] if failing else []
        problems = self._cleanup(failing)
        if problems and not failing:
            raise TestFailure("; ".join(problems))
        if failing and not problems and tail:
            # the test failed with the daemon alive: its log may still tell
            notes.append("--- last lines of dfs log ---\n" + "\n".join(tail))
        return False

    def _cleanup(self, failing):
        """Unmount, reap, remove.  Returns a list of problems (strings)."""
        problems = []
        try:
            os.chdir(self._cwd or "/")
        except OSError:
            os.chdir("/")
        died = None
        if self.proc is not None and self.proc.poll() is not None:
            died = self.proc.returncode
        if self.root is not None and os.path.isdir(self.root):
            try:
                how = unmount(self.mnt)
                if how.startswith("lazily"):
                    problems.append("needed a lazy unmount: " + how)
            except Exception as e:          # keep cleaning up
                problems.append(str(e))
        if self.proc is not None and self.proc.poll() is None and \
                not self._was_mounted:
            kill_pid(self.proc.pid)     # never came up: nothing to wait for
        if self.proc is not None:
            try:
                self.proc.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append("dfs (pid %d) did not exit %.0f s after "
                                "unmount; killed" % (self.proc.pid,
                                                     EXIT_TIMEOUT))
                kill_pid(self.proc.pid)
                try:
                    self.proc.wait(timeout=EXIT_TIMEOUT)
                except subprocess.TimeoutExpired:
                    problems.append("dfs pid %d survives SIGKILL" %
                                    self.proc.pid)
            if died is not None and self.aborted is None:
                problems.append("dfs died during the test with status %s" %
                                died)
            elif self.aborted is None and self.proc.returncode not in (0,):
                problems.append("dfs exited with status %s after unmount" %
                                self.proc.returncode)
        with _active_lock:
            if self in _active:
                _active.remove(self)
        if self._logf is not None:
            self._logf.close()
            self._logf = None
        if problems or self.aborted:
            log = self.log_text() if self.log else ""
            if self.aborted:
                problems.insert(0, self.aborted)
            problems = ["\n".join(problems) +
                        "\n--- dfs log (%s) ---\n%s--- end of log ---" %
                        (self.log, log)]
            if failing:
                notes.append(problems[0])
        if self.root is not None and os.path.isdir(self.root):
            live = mounts_under(self.root)
            if live:
                problems.append("not removing %s: still mounted: %s" %
                                (self.root, live))
            elif self.keep:
                sys.stderr.write("kept %s\n" % self.root)
            else:
                shutil.rmtree(self.root, ignore_errors=True)
        return problems


# --- a plain directory with the same layout, for errno comparisons ----------

class PlainDir:
    """A temp dir on local disk, to run the same calls as on the mount."""

    def __enter__(self):
        self.root = tempfile.mkdtemp(prefix="dfs-plain.")
        os.chmod(self.root, 0o755)
        return self

    def p(self, *parts):
        return os.path.join(self.root, *parts)

    def __exit__(self, *a):
        shutil.rmtree(self.root, ignore_errors=True)
        return False


def errno_of(fn, *args, **kw):
    """0 if fn succeeds, else the errno of the OSError it raises."""
    try:
        fn(*args, **kw)
        return 0
    except OSError as e:
        return e.errno


def ename(n):
    return "OK" if n == 0 else errno.errorcode.get(n, str(n))


def same_errno(what, op, plain_root, mnt_root, want=None):
    """Run op(root) on the plain dir and on the mount; the errnos must be
    equal (and equal to `want` when given, so the plain half is checked too).
    """
    a = errno_of(op, plain_root)
    b = errno_of(op, mnt_root)
    if want is not None and a != want:
        raise TestFailure("%s: plain directory gives %s, test expects %s "
                          "(the test is wrong)" % (what, ename(a),
                                                   ename(want)))
    if a != b:
        raise TestFailure("%s: plain directory gives %s, dfs gives %s" % (
            what, ename(a), ename(b)))


# --- syscalls Python does not expose ---------------------------------------

libc = ctypes.CDLL(None, use_errno=True)

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2

libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                           ctypes.c_char_p, ctypes.c_uint]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                           ctypes.c_int64]


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p,
                           ctypes.POINTER(Timespec), ctypes.c_int]


def _raise(what, path=None):
    e = ctypes.get_errno()
    raise OSError(e, "%s: %s" % (what, os.strerror(e)), path)


def renameat2(old, new, flags):
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD,
                      os.fsencode(new), flags) != 0:
        _raise("renameat2", old)


def utimensat(path, atime, mtime, follow=True):
    """atime/mtime: (sec, nsec) or UTIME_NOW / UTIME_OMIT."""
    def ts(v):
        if isinstance(v, tuple):
            return Timespec(v[0], v[1])
        return Timespec(0, v)
    times = (Timespec * 2)(ts(atime), ts(mtime))
    flags = 0 if follow else 0x100      # AT_SYMLINK_NOFOLLOW
    if libc.utimensat(AT_FDCWD, os.fsencode(path), times, flags) != 0:
        _raise("utimensat", path)


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        _raise("fallocate")


# --- running code as another user ------------------------------------------

def as_user(fn, uid=USER_UID, gid=USER_GID, groups=(USER_GROUP,),
            timeout=30.0):
    """Run fn() in a forked child with the given credentials; returns what
    fn returned (must be picklable).  An exception in the child is re-raised
    here as TestFailure with the child's traceback."""
    import pickle
    import traceback
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            try:
                os.setgroups(list(groups))
                os.setgid(gid)
                os.setuid(uid)
                res = ("ok", fn())
            except BaseException:
                res = ("exc", traceback.format_exc())
            data = pickle.dumps(res)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        while True:
            b = f.read(65536)
            if not b:
                break
            chunks.append(b)
    deadline = time.monotonic() + timeout
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid:
            break
        if time.monotonic() > deadline:
            kill_pid(pid)
            os.waitpid(pid, 0)
            raise TestFailure("child as uid %d timed out" % uid)
        time.sleep(0.01)
    if not chunks:
        raise TestFailure("child as uid %d died, status %d" % (uid, status))
    kind, val = pickle.loads(b"".join(chunks))
    if kind == "exc":
        raise TestFailure("in child as uid %d:\n%s" % (uid, val))
    return val


# --- small file helpers -----------------------------------------------------

def write_file(path, data, mode=0o644):
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        n = 0
        while n < len(data):
            n += os.write(fd, data[n:])
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def exists(path):
    return os.path.lexists(path)


def tiers_holding(m, *parts):
    """Indexes of the tiers whose backing dir holds the name."""
    return [i for i in range(m.ntiers) if os.path.lexists(m.t(i, *parts))]


def tick():
    """Let the (coarse, jiffy-granular) file-system clock move on, so that a
    timestamp change can be observed.  Not synchronisation."""
    time.sleep(0.02)
