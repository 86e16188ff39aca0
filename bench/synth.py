"""Synth cost: `make synth` against a bare import of the provider binding it loads; `make test`."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import plot
from bench.common import PYTHON, REPO, Options, Row, Section, env, judge, run

BARE = "import cdktf_cdktf_provider_aws.batch_job_definition"
# The same binding as synth loads it (stacks/bindings.py: the package without the tail of its
# __init__ that imports all 2,213 resource modules).
LEAN = "import stacks, cdktf_cdktf_provider_aws.batch_job_definition"
TARGET = 1.15
TEST_TARGET_S = 300.0


def _measure(cmd: list[str], opts: Options, cwd: Path) -> dict:
    """Wall seconds and peak RSS (MiB) of ``cmd``'s process tree, from a fresh process."""
    proc = run([PYTHON, "-m", "bench.rusage", "--", *cmd], environ=env(opts), timeout=900,
               cwd=cwd)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _synth_command(opts: Options) -> tuple[list[str], Path, str]:
    """The command timed as `make synth`, where it runs, and its label.

    QUICK mode (the smoke test) runs the target's recipe, `.venv/bin/python main.py`, in the
    scratch directory so that nothing is written into the work tree.
    """
    if opts.quick:
        cwd = opts.work / "synth"
        cwd.mkdir(parents=True, exist_ok=True)
        return [PYTHON, str(REPO / "main.py")], cwd, "python main.py (make synth's recipe)"
    return ["make", "--no-print-directory", "-C", str(REPO), "synth"], REPO, "make synth"


def _phases(opts: Options) -> dict:
    """One profile of main.py's phases (see bench.synth_phases)."""
    out = opts.work / "synth-phases"
    proc = run([PYTHON, "-m", "bench.synth_phases", str(out)], environ=env(opts), timeout=900,
               cwd=REPO)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _make_test(opts: Options) -> dict:
    """Wall time and exit code of the whole `make test` (not judged on its result here)."""
    import subprocess
    import time

    start = time.perf_counter()
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "test"],
                          env=dict(os.environ), capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=3600)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    return {"seconds": time.perf_counter() - start, "returncode": proc.returncode,
            "last_line": lines[-1].strip("= ") if lines else ""}


def measure(opts: Options) -> Section:
    """Interleaved runs of synth and the bare import; best wall time, median peak RSS."""
    synth_cmd, cwd, label = _synth_command(opts)
    bare_cmd = [PYTHON, "-c", BARE]
    reps = 1 if opts.quick else 3
    synth, bare = _runs(opts, reps, synth_cmd, bare_cmd, cwd)
    sec = Section("synth", "Synth cost")
    s_wall, b_wall = min(r["seconds"] for r in synth), min(r["seconds"] for r in bare)
    s_rss = sorted(r["max_rss_mib"] for r in synth)[len(synth) // 2]
    b_rss = sorted(r["max_rss_mib"] for r in bare)[len(bare) // 2]
    wall_ratio, rss_ratio = s_wall / b_wall, s_rss / b_rss
    sec.rows += [
        Row(f"{label}: wall time (best of {reps})", s_wall, "s",
            f"bare import {b_wall:.2f} s", wall_ratio, f"<= {TARGET}",
            judge(wall_ratio, "<=", TARGET)),
        Row(f"{label}: peak RSS (median of {reps})", s_rss, "MiB",
            f"bare import {b_rss:.0f} MiB", rss_ratio, f"<= {TARGET}",
            judge(rss_ratio, "<=", TARGET)),
    ]
    sec.data = {"synth_command": label, "bare_command": f"python -c {BARE!r}",
                "synth": synth, "bare": bare}
    sec.notes.append(f"Bare import: `python -c \"{BARE}\"` with make's environment; "
                     "peak RSS is the largest single process of the tree (the jsii node "
                     "runtime or python), from `getrusage(RUSAGE_CHILDREN)` in a fresh process "
                     "that is also the subreaper of the node runtime main.py leaves behind.")
    if not opts.quick:
        _teardown(sec, opts, cwd, s_wall, b_wall)
    if opts.make_test:
        test = _make_test(opts)
        sec.data["make_test"] = test
        ok = "passed" if test["returncode"] == 0 else f"exit {test['returncode']}"
        sec.rows.append(Row(f"make test: wall time ({ok}: {test['last_line'][:60]})",
                            test["seconds"], "s", "", None, f"<= {TEST_TARGET_S:.0f} s",
                            test["seconds"] <= TEST_TARGET_S))
    if opts.quick:
        sec.notes.append("QUICK mode ran the two commands once, side by side (one core each), "
                         "so the smoke test costs one load of the bindings' time, not two.")
    if not opts.make_test:
        why = "QUICK mode (`make test` runs this smoke test)" if opts.quick else "--no-make-test"
        sec.notes.append(f"`make test` was not timed: {why}.")
    sec.figure = _figure(opts, label, s_wall, b_wall, s_rss, b_rss)
    return sec


def _runs(opts: Options, reps: int, synth_cmd: list[str], bare_cmd: list[str],
          cwd: Path) -> tuple[list[dict], list[dict]]:
    """Measured runs of synth and of the bare import."""
    synth: list[dict] = []
    bare: list[dict] = []  # a cold first run (page cache, __pycache__) loses the best-of
    if opts.quick:  # the smoke test: side by side, one core each, to keep `make test` short
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(_measure, cmd, opts, cwd) for cmd in (bare_cmd, synth_cmd)]
            bare.append(futures[0].result())
            synth.append(futures[1].result())
        return synth, bare
    for i in range(reps):  # alternate the order so drift in machine load hits both alike
        pair = [(bare, bare_cmd), (synth, synth_cmd)]
        for store, cmd in pair if i % 2 == 0 else reversed(pair):
            store.append(_measure(cmd, opts, cwd))
    return synth, bare


def _teardown(sec: Section, opts: Options, cwd: Path, s_wall: float, b_wall: float) -> None:
    """Where synth's time goes, and what the jsii runtime's teardown costs."""
    phases = _phases(opts)
    sec.data["phases"] = phases
    quick_exit = _measure([PYTHON, "-c", f"{BARE}; import os; os._exit(0)"], opts, cwd)
    sec.data["bare_os_exit"] = quick_exit
    lean = _measure([PYTHON, "-c", f"{LEAN}; import os; os._exit(0)"], opts, cwd)
    sec.data["lean_os_exit"] = lean
    sec.rows.append(Row("synth against the binding as synth loads it (stacks/bindings.py)",
                        s_wall, "s", f"lean import + os._exit {lean['seconds']:.2f} s"
                        " (one run)", s_wall / lean["seconds"], "", None))
    sec.rows.append(Row("synth against a bare import that also ends in os._exit(0)",
                        s_wall, "s", f"bare import + os._exit {quick_exit['seconds']:.2f} s"
                        " (one run)", s_wall / quick_exit["seconds"], "", None))
    sec.notes.append(
        f"A bare import that exits normally runs the jsii runtime's teardown: "
        f"{b_wall - quick_exit['seconds']:.1f} s here ({b_wall:.2f} s against "
        f"{quick_exit['seconds']:.2f} s with `os._exit(0)`); main.py skips it the same way.")
    sec.notes.append("Where synth's time goes (one profiled run of "
                     "`python -m bench.synth_phases`): "
                     + ", ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in phases.items())
                     + ". The provider import (the jsii runtime reading the AWS provider assembly, "
                     "as stacks/bindings.py loads it) is the lean import's cost; the rest is "
                     "the stack.")


def _figure(opts: Options, label: str, s_wall: float, b_wall: float, s_rss: float,
            b_rss: float) -> str:
    fig, (ax1, ax2) = plot.figure(2, width=4.5)
    names = ["bare import", label.split(" (")[0]]
    plot.annotate_bars(ax1, ax1.bar(names, [b_wall, s_wall], color=["grey", "tab:blue"]), "{:.2f}")
    ax1.set_ylabel("wall time (s)")
    ax1.set_title(f"ratio {s_wall / b_wall:.2f}x (target <= {TARGET})")
    plot.annotate_bars(ax2, ax2.bar(names, [b_rss, s_rss], color=["grey", "tab:blue"]), "{:.0f}")
    ax2.set_ylabel("peak RSS (MiB)")
    ax2.set_title(f"ratio {s_rss / b_rss:.2f}x (target <= {TARGET})")
    return plot.save(fig, opts, "synth", "Synth vs bare provider import (same run)")
