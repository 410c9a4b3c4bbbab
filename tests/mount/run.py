#!/usr/bin/env python3
"""Run the dfs mount tests: every test_* function of every test_*.py here.

    tests/mount/run.py [-k SUBSTRING]... [-v] [-t SECONDS]

Needs root (FUSE mounts, other uids) and $DFS_BIN (default build/dfs).
Prints PASS/FAIL per test and ends with exactly one line "N passed, N failed".

A test that needs more than the per-test limit says so with an attribute of
its function, `test_x.timeout = SECONDS`; its limit is then the larger of
that and -t.
"""

import argparse
import importlib
import inspect
import os
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dfstest  # noqa: E402


def discover():
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        mod = importlib.import_module(fn[:-3])
        funcs = [(f.__code__.co_firstlineno, name, f)
                 for name, f in vars(mod).items()
                 if name.startswith("test_") and inspect.isfunction(f) and
                 f.__module__ == mod.__name__]
        for _, name, f in sorted(funcs):
            tests.append(("%s.%s" % (mod.__name__, name), f))
    return tests


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("-k", action="append", default=[],
                    help="run only tests whose name contains this")
    ap.add_argument("-t", type=float, default=60.0,
                    help="per-test time limit in seconds (default 60; "
                    "a test's own timeout attribute may raise it)")
    ap.add_argument("-v", action="store_true", help="print test durations")
    args = ap.parse_args()

    tests = discover()
    if args.k:
        tests = [t for t in tests if any(k in t[0] for k in args.k)]
    passed = failed = 0
    t_all = time.monotonic()
    for name, fn in tests:
        dfstest.notes.clear()
        timed_out = []
        limit = max(args.t, float(getattr(fn, "timeout", 0) or 0))

        def watchdog():
            timed_out.append(1)
            # a call stuck on the mount returns ENOTCONN once the daemon
            # is gone, so the test fails and its cleanup still runs
            dfstest.abort_all("test exceeded the %.0f s limit: daemon "
                              "killed" % limit)
        timer = threading.Timer(limit, watchdog)
        timer.daemon = True
        t0 = time.monotonic()
        timer.start()
        try:
            fn()
            ok, tb = True, None
        except BaseException:
            ok, tb = False, traceback.format_exc()
        finally:
            timer.cancel()
        try:
            os.chdir(HERE)
        except OSError:
            pass
        dt = time.monotonic() - t0
        extra = " (%.2fs)" % dt if args.v else ""
        if ok and not timed_out:
            passed += 1
            print("PASS %s%s" % (name, extra), flush=True)
        else:
            failed += 1
            print("FAIL %s%s" % (name, extra), flush=True)
            if timed_out:
                print("  timed out after %.0f s" % limit)
            if tb:
                print("  " + tb.rstrip().replace("\n", "\n  "))
            for n in dfstest.notes:
                print("  " + n.rstrip().replace("\n", "\n  "))
            sys.stdout.flush()
    if args.v:
        print("(%.1f s)" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
