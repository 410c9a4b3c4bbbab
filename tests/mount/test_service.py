"""dfs as a service: mounts from fstab and mount(8), a mount described by a
config file, clean stops on SIGTERM and SIGINT, reload by dfsctl and by
SIGHUP, `dfs -n`, systemd readiness, the systemd unit.

fstab and `mount -t fuse.dfs` run in a private mount namespace: mount(8)
clears PATH, so mount.fuse3's shell finds `dfs` in its default path, where
the namespace puts build/dfs (a bind mount over /usr/local/sbin).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from dfstest import (EXIT_TIMEOUT, MOUNT_TIMEOUT, Mount, check, dfs_bin,
                     dfsctl_bin, eq, errno_of, is_mounted, kill_pid, mounts_under, read_file,
                     unmount, wait_for, write_file)


def run(argv, timeout=30, env=None):
    """(exit status, stdout, stderr) as text."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def dfsctl(*args):
    return run([dfsctl_bin()] + list(args))


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _uses(pid, root):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        if root.encode() in f.read():
            return True
    fds = "/proc/%d/fd" % pid
    for fd in os.listdir(fds):
        try:
            if os.readlink(os.path.join(fds, fd)).startswith(root + "/"):
                return True
        except OSError:
            pass
    return False


def daemon_pids(root):
    """Our dfs processes: those whose command line names a path under root,
    or that hold a file under root open (a tier, the index)."""
    exe = os.path.realpath(dfs_bin())
    res = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.path.realpath("/proc/%s/exe" % d) == exe and \
                    not gone(int(d)) and _uses(int(d), root):
                res.append(int(d))
        except OSError:
            pass
    return res


def config_text(root, tiers=("t0", "t1"), log_level="info", age="30d",
                extra=""):
    tier_text = "".join("tier %s {\n\tpath = %s\n}\n" % (
        "fast" if i == 0 else "slow%d" % i, os.path.join(root, t))
        for i, t in enumerate(tiers))
    return ("# written by test_service.py\n"
            "mountpoint = %s\n"
            "state_dir = %s\n"
            "socket = %s\n"
            "log_level = %s\n"
            "%s"
            "policy cold {\n\tto = slow1\n\tage = %s\n}\n%s" % (
                os.path.join(root, "mnt"), os.path.join(root, "state"),
                os.path.join(root, "dfs.sock"), log_level, tier_text, age,
                extra))


class ConfMount(Mount):
    """`dfs -f -c FILE`: everything (tiers, mount point, state, socket) from
    a config file in the temp dir."""

    def __init__(self, env=None, **kw):
        Mount.__init__(self, index=False, **kw)
        self.env = env

    def write_conf(self, **kw):
        write_file(self.conf, config_text(self.root, **kw))

    def argv(self):
        self.conf = os.path.join(self.root, "dfs.conf")
        self.sock = os.path.join(self.root, "dfs.sock")
        self.state = os.path.join(self.root, "state")
        if not os.path.exists(self.conf):
            self.write_conf()
        return [dfs_bin(), "-f"] + self.args + ["-c", self.conf]

    def _start(self):
        if self.env is None:
            return Mount._start(self)
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            return Mount._start(self)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def stopped(self, sig):
        """Send sig; dfs must unmount and exit 0 on its own."""
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._fail("dfs still running %.0f s after signal %d" % (
                EXIT_TIMEOUT, sig))
        if rc != 0:
            self._fail("dfs exited with status %d after signal %d" % (rc, sig))
        if is_mounted(self.mnt):
            self._fail("still mounted after dfs exited on signal %d" % sig)
        # reaped and checked here: the harness's clean-up has nothing left
        self.proc = None


def still_serving(m):
    rc, out, err = dfsctl("-s", m.sock, "status")
    eq(rc, 0, "dfsctl status after a refused reload (%r)" % err)
    check(m.mnt in out, "status names the mount point:\n" + out)
    name = "alive.%d" % time.monotonic_ns()
    write_file(m.p(name), "x")
    eq(read_file(m.p(name)), b"x", "mount still works")
    check(os.path.exists(m.t(0, name)), "new file on tier 0")
    os.unlink(m.p(name))


def count_in_log(m, text):
    return m.log_text().count(text)


# --- clean stops ------------------------------------------------------------

def _signal_stops(sig):
    with ConfMount() as m:
        write_file(m.p("f"), b"data")
        # an open file does not keep the mount up
        fd = os.open(m.p("f"), os.O_RDONLY)
        try:
            m.stopped(sig)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        eq(read_file(m.t(0, "f")), b"data", "file on tier 0")
        check(not os.path.exists(m.sock), "control socket removed")
        for junk in ("index.db-wal", "index.db-journal"):
            check(not os.path.exists(os.path.join(m.state, junk)),
                  "%s left after a clean stop" % junk)
        check("unmounted" in m.log_text(), "log says unmounted")


def test_sigterm_unmounts_cleanly():
    _signal_stops(signal.SIGTERM)


def test_sigint_unmounts_cleanly():
    _signal_stops(signal.SIGINT)


def test_restart_after_kill_9():
    # what systemd's Restart=on-failure does after a crash: the dead mount
    # (ENOTCONN) is detached and dfs mounts again
    with ConfMount() as m:
        write_file(m.p("f"), b"kept")
        m.proc.kill()
        m.proc.wait(timeout=EXIT_TIMEOUT)
        m.proc = None
        m._logf.close()
        m._start()
        # the dead mount is listed until the new dfs detaches it, and the
        # bare directory answers between the detach and the new mount
        def remounted():
            try:
                return (os.stat(m.mnt).st_dev !=
                        os.stat(os.path.dirname(m.mnt)).st_dev)
            except OSError:
                return False
        check(wait_for(remounted, MOUNT_TIMEOUT),
              "mount point answers after the restart")
        eq(read_file(m.p("f")), b"kept", "file after the restart")
        eq(len([x for x in mounts_under(m.root) if x == m.mnt]), 1,
           "one mount on the mount point")


# --- reload -------------------------------------------------------------------

def test_reload_by_dfsctl():
    with ConfMount() as m:
        base = count_in_log(m, "reloaded ")

        # a change that can be made live
        m.write_conf(log_level="debug", age="7d")
        rc, out, err = dfsctl("-c", m.conf, "reload")
        eq((rc, err), (0, ""), "valid reload: exit status and stderr")
        check(m.conf in out, "reload names the file: %r" % out)
        check(wait_for(lambda: count_in_log(m, "reloaded ") > base, 5),
              "daemon logs the reload")

        # a syntax error: refused with file:line, exit 1, old config stays
        good = read_file(m.conf)
        write_file(m.conf, good + b"log_level info\n")
        line = good.count(b"\n") + 1
        rc, out, err = dfsctl("-s", m.sock, "reload")
        eq(rc, 1, "invalid reload: exit status (%r)" % err)
        eq(out, "", "invalid reload: stdout")
        check(err.startswith("dfsctl: ") and err.count("\n") == 1,
              "one line of reason: %r" % err)
        check("%s:%d" % (m.conf, line) in err,
              "reason names %s:%d: %r" % (m.conf, line, err))
        # dfsctl -c reads the broken file itself and says so
        rc, out, err = dfsctl("-c", m.conf, "reload")
        check(rc != 0 and "%s:%d" % (m.conf, line) in err,
              "dfsctl -c with a broken file: %d %r" % (rc, err))
        still_serving(m)

        # a change that cannot be made live: the tier list
        os.mkdir(os.path.join(m.root, "t2"))
        m.write_conf(tiers=("t0", "t1", "t2"), log_level="debug", age="7d")
        rc, out, err = dfsctl("-s", m.sock, "reload")
        eq(rc, 1, "tier list change: exit status (%r)" % err)
        check("tier" in err and err.count("\n") == 1,
              "reason names the tier list: %r" % err)
        j = json.loads(dfsctl("-s", m.sock, "--json", "status")[1])
        eq([t["path"] for t in j["tiers"]], m.tiers,
           "tiers after the refused reload")
        eq(j["config"], m.conf, "config file in status")
        still_serving(m)

        # and the old, valid file still reloads
        m.write_conf(log_level="debug", age="7d")
        rc, out, err = dfsctl("-s", m.sock, "reload")
        eq((rc, err), (0, ""), "reload after the refusals")


def test_reload_by_sighup():
    with ConfMount() as m:
        base = count_in_log(m, "reloaded ")
        m.write_conf(age="1d")
        m.proc.send_signal(signal.SIGHUP)
        check(wait_for(lambda: count_in_log(m, "reloaded ") > base, 10),
              "SIGHUP reloads: log says so")

        write_file(m.conf, read_file(m.conf) + b"bogus_key = 1\n")
        m.proc.send_signal(signal.SIGHUP)
        check(wait_for(lambda: "reload refused" in m.log_text(), 10),
              "invalid config on SIGHUP: refused in the log")
        refusal = [ln for ln in m.log_text().splitlines()
                   if "reload refused" in ln][-1]
        check(re.search(re.escape(m.conf) + r":\d+", refusal),
              "refusal names file:line: %r" % refusal)
        check(m.alive(), "dfs survives a refused SIGHUP reload")
        still_serving(m)


# --- the config file ------------------------------------------------------------

def test_check_config():
    root = tempfile.mkdtemp(prefix="dfs-svc.")
    try:
        for d in ("t0", "t1", "mnt"):
            os.mkdir(os.path.join(root, d))
        good = os.path.join(root, "good.conf")
        write_file(good, config_text(root))
        rc, out, err = run([dfs_bin(), "-n", "-c", good])
        eq((rc, out, err), (0, "%s: ok\n" % good, ""), "dfs -n -c good")

        bad = os.path.join(root, "bad.conf")
        text = config_text(root).replace("age = 30d", "age = 30 days")
        write_file(bad, text)
        line = text.split("\n").index("\tage = 30 days") + 1
        rc, out, err = run([dfs_bin(), "-n", "-c", bad])
        eq(rc, 2, "dfs -n -c bad: exit status (%r)" % err)
        eq(out, "", "dfs -n -c bad: stdout")
        check("%s:%d" % (bad, line) in err, "file:line in %r" % err)

        write_file(bad, "tier fast {\n\tpath = %s\n" % root)
        rc, out, err = run([dfs_bin(), "-n", "-c", bad])
        eq(rc, 2, "unterminated section: exit status (%r)" % err)
        check(bad + ":" in err, "file named in %r" % err)
        check(not mounts_under(root), "nothing mounted")
    finally:
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


def test_config_mount_daemonised():
    root = tempfile.mkdtemp(prefix="dfs-svc.")
    os.chmod(root, 0o755)
    conf = os.path.join(root, "dfs.conf")
    mnt = os.path.join(root, "mnt")
    pids = []
    try:
        for d in ("t0", "t1", "mnt"):
            os.mkdir(os.path.join(root, d))
        write_file(os.path.join(root, "t1", "old"), b"from tier 1")
        write_file(conf, config_text(root))
        # a relative config path: the daemon must still reload it after
        # its chdir("/")
        p = subprocess.run([dfs_bin(), "-c", "dfs.conf"], cwd=root,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=MOUNT_TIMEOUT)
        pids = daemon_pids(root)
        eq(p.returncode, 0, "dfs -c: exit status (%r)" % p.stderr)
        check(is_mounted(mnt), "mounted when dfs -c returns")
        eq(len(pids), 1, "one daemon: %r" % pids)
        eq(read_file(os.path.join(mnt, "old")), b"from tier 1", "tier 1 file")

        rc, out, err = dfsctl("-c", conf, "status")
        eq(rc, 0, "dfsctl -c status (%r)" % err)
        check(mnt in out and conf in out, "status:\n" + out)
        rc, out, err = dfsctl("-c", conf, "reload")
        eq((rc, err), (0, ""), "reload of a relative config path")

        os.kill(pids[0], signal.SIGTERM)
        check(wait_for(lambda: gone(pids[0]), EXIT_TIMEOUT),
              "daemon gone after SIGTERM")
        check(not is_mounted(mnt), "unmounted after SIGTERM")
        check(not os.path.exists(os.path.join(root, "dfs.sock")),
              "socket removed")
    finally:
        for pid in pids:
            kill_pid(pid)
        if is_mounted(mnt):
            unmount(mnt)
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


def test_relative_paths_daemonised():
    # the daemon works from "/": relative tiers, mount point and socket
    # given at start must still be unmounted and removed at the end
    root = tempfile.mkdtemp(prefix="dfs-svc.")
    os.chmod(root, 0o755)
    mnt = os.path.join(root, "mnt")
    pids = []
    try:
        for d in ("t0", "t1", "mnt"):
            os.mkdir(os.path.join(root, d))
        p = subprocess.run([dfs_bin(), "-o", "index=i.db,ctl=s.sock", "t0",
                            "t1", "mnt"], cwd=root, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=MOUNT_TIMEOUT)
        pids = daemon_pids(root)
        eq(p.returncode, 0, "dfs: exit status (%r)" % p.stderr)
        eq(len(pids), 1, "one daemon: %r" % pids)
        rc, out, err = dfsctl("-s", os.path.join(root, "s.sock"), "status")
        check(rc == 0 and mnt in out, "status names %s: %r" % (mnt, out))
        os.kill(pids[0], signal.SIGTERM)
        check(wait_for(lambda: gone(pids[0]), EXIT_TIMEOUT),
              "daemon gone after SIGTERM")
        check(not is_mounted(mnt), "unmounted after SIGTERM")
        check(not os.path.exists(os.path.join(root, "s.sock")),
              "socket removed")
    finally:
        for pid in pids:
            kill_pid(pid)
        if is_mounted(mnt):
            unmount(mnt)
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


# --- systemd --------------------------------------------------------------------

def _notify_socket(root, abstract):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "@dfs-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        s.bind("\0" + name[1:])
    else:
        name = os.path.join(root, "notify.sock")
        s.bind(name)
    s.settimeout(MOUNT_TIMEOUT)
    return s, name


def _check_notify(abstract):
    root = tempfile.mkdtemp(prefix="dfs-notify.")
    try:
        s, name = _notify_socket(root, abstract)
        m = ConfMount(env={"NOTIFY_SOCKET": name})
        with m:
            msg = s.recv(4096).decode()
            check(is_mounted(m.mnt), "mounted when READY=1 arrives")
            eq(msg.split("\n")[0], "READY=1", "notify message")
            m.stopped(signal.SIGTERM)
            eq(s.recv(4096).decode().split("\n")[0], "STOPPING=1",
               "notify message when stopping")
        s.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_notify_ready():
    _check_notify(False)


def test_notify_ready_abstract_socket():
    _check_notify(True)


def _unit(name):
    return os.path.join(os.path.dirname(dfs_bin()), "etc", name)


def test_systemd_unit_runs():
    """Do what systemd does with dfs@.service: ExecStart with %i, wait for
    READY=1, ExecReload, then SIGTERM to the main process."""
    path = _unit("dfs@.service")
    if not os.path.exists(path):
        return      # an installed dfs: the unit is not next to it
    keys = {}
    with open(path) as f:
        for ln in f:
            if "=" in ln and not ln.startswith("#"):
                k, v = ln.rstrip("\n").split("=", 1)
                keys[k] = v
    eq(keys.get("Type"), "notify", "Type")
    start = keys["ExecStart"].split()
    eq([os.path.basename(start[0])] + start[1:3], ["dfs", "-f", "-c"],
       "ExecStart")
    check(start[3].endswith("/dfs/%i.conf"), "config path " + start[3])
    reload_ = keys["ExecReload"].split()
    eq(os.path.basename(reload_[0]), "dfsctl", "ExecReload")

    root = tempfile.mkdtemp(prefix="dfs-unit.")
    try:
        etc = os.path.join(root, "etc", "dfs")
        os.makedirs(etc)

        def local(argv):
            argv = [a.replace(start[3].rsplit("/dfs/", 1)[0],
                              os.path.join(root, "etc"))
                    .replace("%i", "test") for a in argv]
            return [os.path.join(os.path.dirname(dfs_bin()),
                                 os.path.basename(argv[0]))] + argv[1:]
        s, name = _notify_socket(root, False)

        class UnitMount(ConfMount):
            def argv(self):
                ConfMount.argv(self)
                self.conf = os.path.join(etc, "test.conf")
                self.write_conf()
                return local(start)
        with UnitMount(env={"NOTIFY_SOCKET": name}) as m:
            eq(s.recv(4096).decode().split("\n")[0], "READY=1", "READY=1")
            m.write_conf(age="1d")
            rc, out, err = run(local(reload_))
            eq((rc, err), (0, ""), "ExecReload")
            write_file(m.conf, read_file(m.conf) + b"}\n")
            rc, out, err = run(local(reload_))
            check(rc != 0 and m.conf in err, "ExecReload of a broken "
                  "file fails with the reason: %d %r" % (rc, err))
            still_serving(m)
            m.stopped(signal.SIGTERM)
        s.close()
    finally:
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


def test_systemd_units_verify():
    tool = shutil.which("systemd-analyze")
    if tool is None or not os.path.exists(_unit("dfs.service")):
        return
    root = tempfile.mkdtemp(prefix="dfs-unit.")
    try:
        for unit, inst in (("dfs.service", "dfs.service"),
                           ("dfs@.service", "dfs@test.service")):
            text = read_file(_unit(unit)).decode()
            # the installed paths do not exist yet: point them at the build
            text = re.sub(r"ExecStart=\S*/dfs ", "ExecStart=%s " % dfs_bin(),
                          text)
            text = re.sub(r"ExecReload=\S*/dfsctl ",
                          "ExecReload=%s " % dfsctl_bin(), text)
            write_file(os.path.join(root, inst), text)
            rc, out, err = run([tool, "verify", "--man=no",
                                os.path.join(root, inst)])
            eq((rc, err), (0, ""), "systemd-analyze verify %s" % unit)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- fstab and mount(8) ------------------------------------------------------------

def _in_namespace(root, script):
    """Run `script` (sh) in a private mount namespace whose /usr/local/sbin
    holds build/dfs; returns (exit status, output)."""
    bindir = os.path.join(root, "bin")
    os.mkdir(bindir)
    os.symlink(os.path.realpath(dfs_bin()), os.path.join(bindir, "dfs"))
    full = "set -e\nmount --bind %s /usr/local/sbin\n%s" % (bindir, script)
    try:
        rc, out, err = run(["unshare", "--mount", "--propagation", "private",
                            "sh", "-c", full], timeout=60)
    finally:
        # a daemon left behind keeps the namespace and its mount alive
        for pid in daemon_pids(root):
            kill_pid(pid)
    return rc, out + err


def _namespace_mount(how):
    root = tempfile.mkdtemp(prefix="dfs-fstab.")
    os.chmod(root, 0o755)
    try:
        for d in ("t0", "t1", "mnt"):
            os.mkdir(os.path.join(root, d))
        write_file(os.path.join(root, "t1", "old"), b"from tier 1")
        t0, t1, mnt = (os.path.join(root, d) for d in ("t0", "t1", "mnt"))
        sock = os.path.join(root, "dfs.sock")
        # what fstab lines carry: mount(8) and mount.fuse3 keep some of it
        opts = ("allow_other,noatime,nofail,_netdev,relatime,"
                "x-systemd.automount,x-systemd.mount-timeout=30,"
                "comment=dfs,index=%s,ctl=%s" % (
                    os.path.join(root, "index.db"), sock))
        if how == "fstab":
            fstab = os.path.join(root, "fstab")
            write_file(fstab, "# test\n%s:%s  %s  fuse.dfs  %s  0 0\n" % (
                t0, t1, mnt, opts))
            cmd = "mount --fstab %s %s" % (fstab, mnt)
        elif how == "fstab-config":
            conf = os.path.join(root, "dfs.conf")
            write_file(conf, config_text(root))
            fstab = os.path.join(root, "fstab")
            write_file(fstab, "%s  %s  fuse.dfs  defaults,nofail  0 0\n" %
                       (conf, mnt))
            cmd = "mount --fstab %s %s" % (fstab, mnt)
        else:
            cmd = "mount -t fuse.dfs %s:%s %s -o %s" % (t0, t1, mnt, opts)
        script = """
%(cmd)s
grep -q " %(mnt)s fuse.dfs " /proc/self/mounts
cat %(mnt)s/old; echo
echo new > %(mnt)s/new
cat %(t0)s/new
%(dfsctl)s -s %(sock)s status | grep -c "mount point  %(mnt)s"
umount %(mnt)s
if grep -q " %(mnt)s " /proc/self/mounts; then echo "still mounted"; fi
echo done
""" % dict(cmd=cmd, mnt=mnt, t0=t0, sock=sock, dfsctl=dfsctl_bin())
        rc, out = _in_namespace(root, script)
        eq(rc, 0, "%s: script failed:\n%s" % (how, out))
        eq(out, "from tier 1\nnew\n1\ndone\n", "%s: output" % how)
        check(wait_for(lambda: not daemon_pids(root), EXIT_TIMEOUT),
              "%s: daemon gone after umount" % how)
        check(not os.path.exists(sock), "%s: socket removed at exit" % how)
    finally:
        for pid in daemon_pids(root):
            kill_pid(pid)
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


def test_mount_from_fstab():
    _namespace_mount("fstab")


def test_mount_from_fstab_with_config():
    _namespace_mount("fstab-config")


def test_mount_t_fuse_dfs():
    _namespace_mount("mount-t")


if __name__ == "__main__":
    sys.exit("run through tests/mount/run.py -k service")
