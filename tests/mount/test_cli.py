"""The command line: bad input is refused with a message and nothing is
mounted; without -f dfs returns once the mount is up."""

import os
import shutil
import subprocess
import tempfile

from dfstest import (Mount, check, dfs_bin, eq, ename, errno_of, is_mounted,
                     kill_pid, mount_entry, mounts_under, pids_with_argv,
                     read_file, unmount, wait_for, write_file)


class _Scratch:
    """A temp dir with t0 t1 t2, a file, a symlink to t0 and mnt; never
    mounted by the harness."""

    def __enter__(self):
        self.root = tempfile.mkdtemp(prefix="dfs-cli.")
        os.chmod(self.root, 0o755)
        for d in ("t0", "t1", "t2", "mnt", "t0/sub", "t1/sub", "t1/mnt",
                  "mnt/t1"):
            os.mkdir(self.p(d))
        write_file(self.p("afile"), "not a dir")
        os.symlink("t0", self.p("t0link"))
        return self

    def p(self, *parts):
        return os.path.join(self.root, *parts)

    def __exit__(self, *a):
        live = mounts_under(self.root)
        for mp in live:
            try:
                unmount(mp)
            except Exception:
                pass
        if not mounts_under(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        return False


def _index(s):
    """keep the index in the temp dir, not in the state directory"""
    return ["-o", "index=" + s.p("index.db")]


def _run_bad(s, args, names, foreground=True):
    """dfs with a bad command line: non-zero exit, a message on stderr that
    names one of `names` (when given), nothing mounted."""
    argv = [dfs_bin()] + (["-f"] if foreground else []) + _index(s) + args
    out = os.path.join(s.root, "out.txt")
    errf = os.path.join(s.root, "err.txt")
    with open(out, "wb") as f, open(errf, "wb") as ef:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                             stderr=ef, cwd=s.root)
        # it should exit at once; if it mounts instead, stop waiting
        wait_for(lambda: p.poll() is not None or mounts_under(s.root), 10)
    live = mounts_under(s.root)
    problems = []
    if live:
        problems.append("mounted %s" % live)
        for mp in live:
            unmount(mp)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        kill_pid(p.pid)
        p.wait()
        problems.append("still running; killed")
    err = read_file(errf).decode(errors="replace")
    if p.returncode == 0:
        problems.append("exit status 0")
    if not err.strip():
        problems.append("nothing on stderr")
    elif names and not any(n in err for n in names):
        problems.append("stderr does not name any of %s" % (names,))
    check(not problems, "dfs %s: %s\n  stderr: %s" % (
        " ".join(a.replace(s.root, "$T") for a in argv[1:]),
        "; ".join(problems), err.strip().replace(s.root, "$T")))


def test_bad_command_lines_are_refused():
    with _Scratch() as s:
        P = s.p
        cases = [
            ([], ["usage", "Usage", "argument"]),
            ([P("t0")], ["usage", "Usage", "argument"]),
            ([P("t0"), P("mnt")], ["usage", "Usage", "argument", "tier"]),
            ([P("t0"), P("nosuch"), P("mnt")], [P("nosuch")]),
            ([P("t0"), P("afile"), P("mnt")], [P("afile")]),
            ([P("t0"), P("t0"), P("mnt")], [P("t0")]),
            ([P("t0"), P("t1"), P("t0") + "/", P("mnt")], [P("t0")]),
            ([P("t0"), P("t0link"), P("mnt")], [P("t0"), P("t0link")]),
            ([P("t0"), P("t0", "sub"), P("mnt")], [P("t0")]),
            ([P("t1", "sub"), P("t1"), P("mnt")], [P("t1")]),
            ([P("t0"), P("t1"), P("t2", "..", "t1", "sub"), P("mnt")],
             [P("t1"), "sub"]),
            ([P("t0"), P("t1"), P("t1", "mnt")], [P("t1")]),
            ([P("t0"), P("mnt", "t1"), P("mnt")], [P("mnt")]),
            ([P("t0"), P("t1"), P("nosuchmnt")], [P("nosuchmnt")]),
            ([P("t0"), P("t1"), P("afile")], [P("afile")]),
        ]
        failures = []
        for args, names in cases:
            try:
                _run_bad(s, args, names)
            except AssertionError as e:
                failures.append(str(e))
        check(not failures, "%d of %d bad command lines not refused "
              "properly:\n  %s" % (len(failures), len(cases),
                                   "\n  ".join(failures)))


def test_start_up_errors_reach_the_terminal_without_f():
    with _Scratch() as s:
        P = s.p
        failures = []
        for args, names in (
                ([P("t0"), P("nosuch"), P("mnt")], [P("nosuch")]),
                ([P("t0"), P("t1"), P("t1", "mnt")], [P("t1")]),
                # only the mount itself can fail here
                ([P("t0"), P("t1"), P("nosuchmnt")], [P("nosuchmnt")]),
                (["-o", "no_such_fuse_option", P("t0"), P("t1"), P("mnt")],
                 ["no_such_fuse_option"])):
            try:
                _run_bad(s, args, names, foreground=False)
            except AssertionError as e:
                failures.append(str(e))
        check(not failures, "\n  ".join([""] + failures))


def test_daemonises_and_returns_once_mounted():
    with _Scratch() as s:
        argv = [dfs_bin()] + _index(s) + [s.p("t0"), s.p("t1"), s.p("mnt")]
        os.rmdir(s.p("mnt", "t1"))
        write_file(s.p("t1", "hello"), "from tier one")
        out = s.p("daemon.out")
        with open(out, "wb") as f:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=subprocess.STDOUT, cwd="/")
            try:
                rc = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_pid(p.pid)
                p.wait()
                rc = "timeout"
        mounted = is_mounted(s.p("mnt"))   # right after the return
        pids = pids_with_argv(argv)
        try:
            eq(rc, 0, "exit status of dfs without -f (output: %r)" %
               read_file(out))
            check(mounted, "dfs returned before the mount was up")
            check(mount_entry(s.p("mnt"))[2].startswith("fuse"),
                  "not a fuse mount")
            check(len(pids) == 1, "daemon processes: %r" % pids)
            eq(read_file(s.p("mnt", "hello")), b"from tier one",
               "tier-1 file through the daemon")
            write_file(s.p("mnt", "new"), "x")
            check(os.path.exists(s.p("t0", "new")), "new file not on tier 0")
        finally:
            unmount(s.p("mnt"))
            gone = wait_for(lambda: all(not os.path.exists("/proc/%d" % q)
                                        for q in pids), 10)
            for q in pids:
                if os.path.exists("/proc/%d" % q):
                    kill_pid(q)
        check(gone, "daemon %r still running 10 s after unmount" % pids)


def test_fuse_options_pass_through():
    def pop(m):
        write_file(m.t(1, "f"), "x")
    with Mount(ntiers=2, opts="ro", populate=pop) as m:
        opts = mount_entry(m.mnt)[3].split(",")
        check("ro" in opts, "-o ro: mount options are %s" % opts)
        eq(read_file(m.p("f")), b"x", "read on a ro mount")
        eq(ename(errno_of(os.mkdir, m.p("d"))), "EROFS", "mkdir on -o ro")
        eq(ename(errno_of(lambda: open(m.p("f"), "ab"))), "EROFS",
           "write on -o ro")
    with Mount(ntiers=2, args=["-d"]) as m:
        os.mkdir(m.p("d"))
        check(os.path.getsize(m.log) > 0, "-d printed nothing")


def _start_stop(s, argv):
    """dfs without -f: it must mount; then unmount and wait for it to go."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, cwd="/", timeout=15)
    pids = pids_with_argv(argv)
    mounted = is_mounted(s.p("mnt"))
    if mounted:
        unmount(s.p("mnt"))
    gone = wait_for(lambda: all(not os.path.exists("/proc/%d" % q)
                                for q in pids), 10)
    eq(p.returncode, 0, "dfs %s: exit status (output %r)" % (
        " ".join(argv[1:]), p.stdout))
    check(mounted, "not mounted")
    check(gone, "daemon %r still running 10 s after unmount" % pids)


def test_tier_on_another_file_system_is_refused():
    # A tier whose disk did not mount shows the (empty) directory below:
    # dfs must not start on it, or its scan would drop the tier's files
    # from the index and migration would fill the wrong disk.
    with _Scratch() as s:
        os.rmdir(s.p("mnt", "t1"))
        argv = [dfs_bin()] + _index(s) + [s.p("t0"), s.p("t1"), s.p("mnt")]
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                        s.p("t1")], check=True, stdin=subprocess.DEVNULL)
        try:
            write_file(s.p("t1", "hello"), "on the tier's own disk")
            _start_stop(s, argv)        # records the tiers' file systems
        finally:
            subprocess.run(["umount", s.p("t1")], stdin=subprocess.DEVNULL)
        _run_bad(s, [s.p("t0"), s.p("t1"), s.p("mnt")],
                 ["not on the file system the index knows", "-o retier"])
        # moved on purpose: -o retier records the new one
        _start_stop(s, argv[:1] + ["-o", "retier"] + argv[1:])
        _start_stop(s, argv)


def test_help_and_version():
    # GNU long options on both programs: on stdout, exit 0, nothing mounted
    dfsctl = os.path.join(os.path.dirname(dfs_bin()), "dfsctl")
    for prog in (dfs_bin(), dfsctl):
        name = os.path.basename(prog)
        for opt in ("--help", "-h"):
            r = subprocess.run([prog, opt], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=10)
            eq(r.returncode, 0, "%s %s exit status" % (name, opt))
            check(r.stdout.startswith("usage: %s" % name),
                  "%s %s: %r" % (name, opt, r.stdout[:80]))
        for opt in ("--version", "-V"):
            r = subprocess.run([prog, opt], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=10)
            eq(r.returncode, 0, "%s %s exit status" % (name, opt))
            check(r.stdout.startswith(name + " ") and
                  r.stdout.strip().split()[-1][0].isdigit(),
                  "%s %s: %r" % (name, opt, r.stdout))
        r = subprocess.run([prog, "--no-such-option"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10)
        eq(r.returncode, 2, "%s --no-such-option exit status" % name)
        check("no-such-option" in r.stderr and "usage:" in r.stderr,
              "%s --no-such-option: %r" % (name, r.stderr))
