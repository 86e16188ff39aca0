"""``python -m bench.rusage -- CMD...``: wall time and peak RSS of CMD's process tree as JSON.

Runs in a fresh process so that ``RUSAGE_CHILDREN`` covers CMD and its descendants only
(the largest single process's peak, as ``/usr/bin/time -v`` reports it). It is their
subreaper: a descendant its parent never waits for (the jsii node runtime, after main.py's
``os._exit``) is waited for here, so its peak counts too; the wall time ends with CMD.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36  # prctl(2), <linux/prctl.h>
ORPHAN_WAIT_S = 60.0


def _adopt_orphans() -> None:
    """Become the subreaper of CMD's tree (Linux; elsewhere orphans go uncounted)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _orphans() -> list[int]:
    """This process's remaining children, from /proc."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue
        if entry.isdigit() and int(fields[1]) == me:
            found.append(int(entry))
    return found


def _reap_orphans() -> None:
    """Wait for adopted descendants; kill what is still there after ORPHAN_WAIT_S."""
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if time.monotonic() > deadline:
            for orphan in _orphans():
                os.kill(orphan, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    """Run the command after ``--``; print one JSON line; exit with the command's code."""
    cmd = argv[1:] if argv[:1] == ["--"] else argv
    if not cmd:
        print("usage: python -m bench.rusage -- CMD...", file=sys.stderr)
        return 2
    _adopt_orphans()
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    _reap_orphans()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode(errors="replace")[-3000:])
    print(json.dumps({"seconds": seconds, "max_rss_mib": peak_kib / 1024,
                      "returncode": proc.returncode}))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
