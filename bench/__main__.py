"""``python -m bench [--quick] [--out DIR] [--only PART,...]``: run benchmarks, write the report.

`make bench` runs this. Writes DIR/BENCHMARKS.md and DIR/docs/bench/{*.png,results.json};
DIR is the repository (full run) or .bench-out/ (QUICK) unless given. Prints the summary.
Timings are printed, never asserted: the exit code is 1 only when a benchmark failed to run.
`python -m bench.replot` redraws the figures from a stored results.json without measuring.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    REPO,
    BenchError,
    Options,
    Section,
    cpu_ticks,
    load_average,
    machine,
    steal_share,
)

PARTS = {"synth": "Synth cost", "kernel": "Solver kernel vs memory copy (1 core)",
         "scaling": "Scaling on one 2-core host", "comm": "MPI communication",
         "start": "Job start in the real image", "launch": "Launch at scale (emulated nodes)",
         "rendezvous": "Rendezvous at Batch's scale (simulated children)",
         "continuation": "Continuation after a reclaim (containers of the image)",
         "deploy": "Apply round trip (AWS emulator)"}
# Minutes of real terraform, or of three container jobs in turn: too long for the QUICK
# smoke run (and the continuation's figures include 0 steps recomputed, which the smoke
# test's "every figure is positive" would refuse).
FULL_ONLY = ("deploy", "continuation")


def _parts(text: str) -> list[str]:
    parts = [p for p in text.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"--only: choose from {','.join(PARTS)}")
    return parts


def _memory_dir() -> Path | None:
    """/dev/shm when writable: solver outputs written there start no disk writeback, whose
    kernel threads would otherwise take CPU time from later timed runs."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes, one repetition, no `make test` timing (the smoke test)")
    p.add_argument("--no-make-test", dest="make_test", action="store_false",
                   help="full run without timing `make test`")
    p.add_argument("--out", type=Path, help="where BENCHMARKS.md goes (plots in OUT/docs/bench)")
    p.add_argument("--scratch", type=Path, default=_memory_dir(),
                   help="parent of the run's scratch directory (default: /dev/shm where "
                        "writable, else the system temp dir)")
    p.add_argument("--only", type=_parts, help="comma-separated parts (default: all; QUICK "
                   f"leaves out {', '.join(FULL_ONLY)} unless named)")
    args = p.parse_args(argv)
    if args.only is None:
        args.only = [p for p in PARTS if not (args.quick and p in FULL_ONLY)]
    return args


def _run_part(key: str, opts: Options) -> Section:
    import importlib

    module = importlib.import_module(f"bench.{key}")
    return module.measure(opts)


def main(argv: list[str]) -> int:
    """Run the chosen parts in order; a failing part is reported and the others still run."""
    args = parse_args(argv)
    out = (args.out or (REPO / ".bench-out" if args.quick else REPO)).resolve()
    plots = out / "docs" / "bench"
    plots.mkdir(parents=True, exist_ok=True)
    if args.scratch:
        args.scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=args.scratch))
    # numba reads this at import. Kernels are compiled before anything is timed, so a cache
    # the caller already points at (the test session's) only saves the compile; else a
    # private one, compiled once in this run.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(work / "numba-cache"))
    opts = Options(args.quick, out, plots, work, Path(os.environ["NUMBA_CACHE_DIR"]),
                   make_test=args.make_test and not args.quick)
    began = time.perf_counter()
    sections: list[Section] = []
    failed = False
    try:
        info = machine()
        for key in args.only:
            print(f"bench: {key} ...", file=sys.stderr, flush=True)
            start, load, ticks = time.perf_counter(), load_average(), cpu_ticks()
            try:
                sec = _run_part(key, opts)
            except BenchError as exc:
                failed = True
                sec = Section(key, PARTS[key], skipped=f"failed: {exc}")
                print(f"bench: {key} FAILED: {exc}", file=sys.stderr, flush=True)
            sec.data["seconds"] = time.perf_counter() - start
            sec.data["steal"] = steal_share(ticks, cpu_ticks())
            sec.notes.append(f"This part took {sec.data['seconds']:.0f} s; load average "
                             f"(1/5/15 min) when it started: {load}; CPU time stolen by the "
                             f"hypervisor for other guests meanwhile: {sec.data['steal']}.")
            print(f"bench: {key} took {sec.data['seconds']:.1f} s", file=sys.stderr, flush=True)
            sections.append(sec)
        info["load_end"] = load_average()
        from bench import report

        path = report.write(opts, info, sections, time.perf_counter() - began)
        print("\n".join(report.table(sections)))
        print(f"bench: wrote {path} and {plots}/", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
