"""``python -m bench.rusage -- CMD...``: wall time and peak RSS of CMD's process tree as JSON.

Runs in a fresh process so that ``RUSAGE_CHILDREN`` covers CMD and its descendants only
(the largest single process's peak, as ``/usr/bin/time -v`` reports it).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    """Run the command after ``--``; print one JSON line; exit with the command's code."""
    cmd = argv[1:] if argv[:1] == ["--"] else argv
    if not cmd:
        print("usage: python -m bench.rusage -- CMD...", file=sys.stderr)
        return 2
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode(errors="replace")[-3000:])
    print(json.dumps({"seconds": seconds, "max_rss_mib": peak_kib / 1024,
                      "returncode": proc.returncode}))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
