#!/usr/bin/env python3
"""Object storage as tier 1: s3fs over an S3 server of the check's own
(s3rver, from npm) on 127.0.0.1, with the remote-tier tests that apply to
it.  Not part of scripts/test (npm and s3rver are not Debian packages):
scripts/check-s3 installs what it needs and runs this.

    S3RVER=/path/to/s3rver tests/mount/s3check.py [-k SUBSTRING]...

Each test of test_remote.py named in TESTS runs with its SshMount replaced
by S3Mount: the same checks, with s3fs instead of sshfs.  Prints PASS or
FAIL per test and ends with one line "N passed, N failed".
"""

import argparse
import os
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import test_remote  # noqa: E402
from dfstest import TestFailure, is_mounted, kill_pid, wait_for  # noqa: E402
from sshtier import (_free_port, _listening, fuse_start,  # noqa: E402
                     fuse_stop)
from test_migrate import MigMount  # noqa: E402

START_TIMEOUT = 20.0
BUCKET = "tier1"
TESTS = ["test_remote_migration_both_ways",
         "test_remote_renames_without_rename_flags",
         "test_remote_pin_and_inode_survive_renumbering",
         "test_remote_failed_move_is_an_error",
         "test_remote_listing_costs_no_call_and_has_no_holes"]


class S3Tier:
    """s3rver on a free port and s3fs of its bucket on mountpoint; the
    interface of SshTier (start, mount, umount, stop; .sshfs is the s3fs
    process)."""

    def __init__(self, workdir, mountpoint):
        self.dir = workdir
        self.mnt = mountpoint
        self.port = None
        self.server = None
        self.sshfs = None
        self.log = os.path.join(workdir, "s3.log")

    def _fail(self, msg):
        try:
            with open(self.log, errors="replace") as f:
                tail = f.read()[-3000:]
        except OSError as e:
            tail = str(e)
        raise TestFailure("%s\n--- s3rver/s3fs log ---\n%s" % (msg, tail))

    def start(self):
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        pw = os.path.join(self.dir, "passwd")
        with open(pw, "w") as f:
            f.write("S3RVER:S3RVER\n")
        os.chmod(pw, 0o600)
        self.port = _free_port()
        logf = open(self.log, "ab")
        try:
            self.server = subprocess.Popen(
                [os.environ.get("S3RVER", "s3rver"), "-d",
                 os.path.join(self.dir, "data"), "-a", "127.0.0.1", "-p",
                 str(self.port), "--configure-bucket", BUCKET],
                stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT)
        finally:
            logf.close()
        if not wait_for(lambda: _listening(self.port) or
                        self.server.poll() is not None, START_TIMEOUT) or \
                self.server.poll() is not None:
            self.stop()
            self._fail("s3rver did not start")
        self.mount()

    def mount(self):
        opts = ",".join(["passwd_file=" + os.path.join(self.dir, "passwd"),
                         "url=http://127.0.0.1:%d" % self.port,
                         "use_path_request_style", "nomixupload"])
        self.sshfs = fuse_start(["s3fs", "-f", BUCKET, self.mnt, "-o", opts],
                                self.mnt, self.log)
        if not is_mounted(self.mnt):
            self.umount()
            self._fail("s3fs did not mount %s" % self.mnt)

    def umount(self):
        problems = fuse_stop(self.mnt, self.sshfs, "s3fs")
        self.sshfs = None
        return problems

    def stop(self):
        problems = self.umount()
        if self.server is not None:
            if self.server.poll() is None:
                kill_pid(self.server.pid)
            self.server.wait()
            self.server = None
        return problems


class S3Mount(test_remote.SshMount):
    """SshMount with tier 1 on s3fs; remote(...) is the path through s3fs
    (s3rver keeps objects in files of its own layout)."""

    def _populate(self, m):
        self.ssh = S3Tier(os.path.join(self.root, "s3"), self.t(1))
        self.teardown.append(self.ssh.stop)
        self.ssh.start()
        MigMount._populate(self, m)

    def remote(self, *parts):
        return self.t(1, *parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", action="append", default=[])
    args = ap.parse_args()
    test_remote.SshMount = S3Mount
    passed = failed = 0
    for name in TESTS:
        if args.k and not any(k in name for k in args.k):
            continue
        try:
            getattr(test_remote, name)()
            print("PASS s3.%s" % name, flush=True)
            passed += 1
        except Exception:
            print("FAIL s3.%s" % name, flush=True)
            print("  " + traceback.format_exc().replace("\n", "\n  "),
                  flush=True)
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
