"""A real remote tier for the mount tests: sshd on 127.0.0.1 with its own
config, host key, user key and port in a temp dir, and sshfs of a
directory through it.

    s = SshTier(workdir, remote_dir, mountpoint)
    s.start()           # sshd, then sshfs on mountpoint
    ...
    s.pause()           # the server stops answering (SIGSTOP)
    s.resume()          # and answers again (SIGCONT)
    problems = s.stop() # sshfs unmounted, sshd and its sessions ended

stop() undoes whatever start() got to, so it is safe after a failure
half-way.  Only processes started here are ever signalled, by pid.
"""

import os
import signal
import socket
import subprocess

from dfstest import TestFailure, is_mounted, kill_pid, wait_for

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 15.0


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _children(pid):
    """Pids whose parent is pid (sshd's session processes)."""
    res = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            res.append(int(d))
    return res


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _descendants(pid):
    res, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        res += kids
        todo += kids
    return res


def fuse_start(argv, mnt, log):
    """A FUSE file system in the foreground (its pid is ours to end), its
    output to log; returns the process once mnt is mounted or it ended."""
    logf = open(log, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT)
    finally:
        logf.close()
    wait_for(lambda: is_mounted(mnt) or proc.poll() is not None,
             START_TIMEOUT)
    return proc


def fuse_stop(mnt, proc, what):
    """Unmount mnt (lazily if it must) and reap proc.  Returns a list of
    problems."""
    problems = []
    if is_mounted(mnt):
        r = subprocess.run(["fusermount3", "-u", mnt],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if r.returncode != 0:
            problems.append("%s %s: needed a lazy unmount: %s" % (
                what, mnt, r.stdout.decode(errors="replace").strip()))
            subprocess.run(["fusermount3", "-uz", mnt],
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            problems.append("%s (pid %d) did not exit; killed" % (what,
                                                                 proc.pid))
            kill_pid(proc.pid)
            proc.wait()
    return problems


class SshTier:
    def __init__(self, workdir, remote, mountpoint):
        self.dir = workdir
        self.remote = remote
        self.mnt = mountpoint
        self.port = None
        self.sshd = None
        self.sshfs = None
        self.paused = []
        self.log = os.path.join(workdir, "ssh.log")

    def path(self, name):
        return os.path.join(self.dir, name)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError as e:
            return "(no log: %s)" % e

    def _fail(self, msg):
        raise TestFailure("%s\n--- sshd/sshfs log (%s) ---\n%s" % (
            msg, self.log, self.log_text()))

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.remote, exist_ok=True)
        for key in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-f", self.path(key)], check=True,
                           stdin=subprocess.DEVNULL)
        with open(self.path("user_key.pub")) as f, \
                open(self.path("authorized_keys"), "w") as g:
            g.write(f.read())
        # sshd's privilege separation directory, as its package makes it
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for _ in range(5):
            if self._start_sshd():
                break
        else:
            self._fail("sshd did not start")
        self.mount()

    def _start_sshd(self):
        """One try on a free port (another process may take it first)."""
        self.port = _free_port()
        with open(self.path("sshd_config"), "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\n"
                    "PidFile %s\nAuthorizedKeysFile %s\n"
                    "PermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nSubsystem sftp internal-sftp\n" % (
                        self.port, self.path("host_key"),
                        self.path("sshd.pid"),
                        self.path("authorized_keys")))
        logf = open(self.log, "ab")
        try:
            self.sshd = subprocess.Popen(
                [SSHD, "-f", self.path("sshd_config"), "-D", "-e"],
                stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT)
        finally:
            logf.close()
        wait_for(lambda: _listening(self.port) or
                 self.sshd.poll() is not None, START_TIMEOUT)
        if self.sshd.poll() is None and _listening(self.port):
            return True
        self._stop_sshd()
        return False

    def mount(self):
        """sshfs in the foreground, so that its pid is ours to end."""
        opts = ",".join([
            "IdentityFile=" + self.path("user_key"),
            "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null",
            "BatchMode=yes", "LogLevel=ERROR", "port=%d" % self.port])
        self.sshfs = fuse_start(
            ["sshfs", "-f", "-F", "/dev/null", "-o", opts,
             "root@127.0.0.1:" + self.remote, self.mnt], self.mnt, self.log)
        if not is_mounted(self.mnt):
            self.umount()
            self._fail("sshfs did not mount %s" % self.mnt)

    def umount(self):
        """Unmount sshfs and reap it.  Returns a list of problems."""
        problems = fuse_stop(self.mnt, self.sshfs, "sshfs")
        self.sshfs = None
        return problems

    def _stop_sshd(self):
        if self.sshd is None:
            return []
        problems = []
        # Sessions end with their connection: give them a moment, then
        # end those left (our sshd's children only).
        kids = _children(self.sshd.pid)
        if not wait_for(lambda: all(_gone(k) for k in kids), 5.0):
            problems.append("sshd sessions outlived sshfs; ended")
        for k in kids:
            if not _gone(k):
                kill_pid(k)
        if self.sshd.poll() is None:
            kill_pid(self.sshd.pid)
        self.sshd.wait()
        self.sshd = None
        return problems

    def pause(self):
        """A server that hangs: sshd and its sessions stopped, so that
        sshfs's calls wait for answers that do not come."""
        self.paused = [self.sshd.pid] + _descendants(self.sshd.pid)
        for pid in self.paused:
            os.kill(pid, signal.SIGSTOP)

    def resume(self):
        for pid in self.paused:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.paused = []

    def stop(self):
        self.resume()
        problems = self.umount()
        problems += self._stop_sshd()
        return problems
