"""Solver kernel throughput (one core) against a plain array copy measured in the same run."""

from __future__ import annotations

import math
import shutil
import statistics
import time

import numpy as np
from matplotlib.figure import Figure
from numba import njit

from bench import plot
from bench.common import (
    PYTHON,
    Options,
    Row,
    Section,
    best_median,
    crossover_ratio,
    env,
    last_json,
    mpiexec,
    run,
)

COPY_ELEMENTS = 1 << 24  # 128 MiB per array: far out of any cache
TARGET = 0.90
L3_MIB = 32  # the benchmark host's L3 (AMD EPYC, /sys/devices/system/cpu/cpu0/cache/index3/size)
TARGET_N = 4097  # 4097^2 float64 = 128 MiB per array, out of the L3 (2049^2 is not)
SIZES_2D = {True: (257, 1025, 4097), False: (129, 257, 513, 1025, 2049, 4097)}
SIZES_3D = {True: (33, 129), False: (33, 65, 129, 257)}
SOLVER_TARGET = 0.95  # the whole 1-rank solver against the kernel alone
SOLVER_STEPS = 200  # 25 sweeps of 8; the checkpointed run writes one, at step 100
SOLVER_ROUNDS = {True: 2, False: 6}  # even: kernel and solver each go first equally often
FIGURE_TITLE = "Stencil vs copy bandwidth (same run, 1 core)"


def copy_rate(reps: int) -> tuple[float, float]:
    """(best, median) float64 elements per second of ``numpy.copyto`` on 2^24 elements."""
    src = np.random.default_rng(1).random(COPY_ELEMENTS)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # first touch: page faults are not copy bandwidth
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    best, median = best_median(times)
    return COPY_ELEMENTS / best, COPY_ELEMENTS / median


@njit(cache=True)
def _line_stencil(a, b):  # pragma: no cover - compiled
    for i in range(1, a.size - 1):
        b[i] = a[i] + 0.1 * (a[i - 1] - 2.0 * a[i] + a[i + 1])


def line_rate(reps: int) -> tuple[float, float]:
    """(best, median) updates/s of a 1-D 3-point numba loop on 2^24 elements (a diagnostic:
    what a plain loop of the same traffic reaches, beside the solver's 2-D/3-D kernels)."""
    a = np.random.default_rng(2).random(COPY_ELEMENTS)
    b = np.zeros_like(a)
    _line_stencil(a, b)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        _line_stencil(a, b)
        times.append(time.perf_counter() - start)
    best, median = best_median(times)
    return (COPY_ELEMENTS - 2) / best, (COPY_ELEMENTS - 2) / median


def numpy_rate(n: int, reps: int) -> tuple[float, float]:
    """(best, median) updates/s of the same 2-D update written as numpy slicing (temporaries):
    the alternative to a numba kernel, measured for the kernel choice."""
    u = np.random.default_rng(3).random((n, n))
    out = np.zeros_like(u)
    c = u[1:-1, 1:-1]
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        out[1:-1, 1:-1] = (c + 0.1 * (u[:-2, 1:-1] - 2.0 * c + u[2:, 1:-1])
                           + 0.1 * (u[1:-1, :-2] - 2.0 * c + u[1:-1, 2:]))
        times.append(time.perf_counter() - start)
    best, median = best_median(times[1:])
    return (n - 2) ** 2 / best, (n - 2) ** 2 / median


def stencil_rate(n: int, ndim: int, reps: int, budget: float) -> tuple[float, float, int]:
    """(best, median) updates per second of solver.stencil.run_steps on an n^ndim grid, steps.

    ``n`` counts boundary points like the solver's ``--nx``; each repetition times enough
    steps for about ``budget`` updates (at least 2), after one untimed step.
    """
    from solver import stencil

    u = np.zeros((n,) * ndim)
    u[(slice(1, -1),) * ndim] = np.random.default_rng(0).random((n - 2,) * ndim)
    out = np.zeros_like(u)
    coeffs = (0.1,) * ndim
    updates = (n - 2) ** ndim
    steps = 2 * max(1, round(budget / updates / 2))  # even: the solver may fuse steps in pairs
    stencil.run_steps(u, out, coeffs, 2)  # compiled (or cache-loaded) already; faults the pages
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        stencil.run_steps(u, out, coeffs, steps)
        times.append(time.perf_counter() - start)
    best, median = best_median(times)
    return updates * steps / best, updates * steps / median, steps


def _heat(opts: Options, n: int, every: int) -> dict:
    """One ``python -m solver heat`` run on 1 rank, as a user runs it; its summary."""
    out = opts.work / "heat-1rank"
    cmd = [*mpiexec(1), PYTHON, "-m", "solver", "heat", "--nx", str(n),
           "--ny", str(n), "--steps", str(SOLVER_STEPS), "--checkpoint-every", str(every),
           "--no-png", "--output-path", str(out)]
    try:
        return last_json(run(cmd, environ=env(opts), timeout=900).stdout)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _kernel_alone(opts: Options, n: int) -> float:
    """``stencil.kernel_rate`` on the (n-2)^2 interior over the solver's step count, in a fresh
    process as the solver runs in (a fresh address space: the same chance of huge pages)."""
    code = ("from solver import stencil; "
            f"print(stencil.kernel_rate(({n - 2}, {n - 2}), {SOLVER_STEPS}, 1))")
    proc = run([PYTHON, "-c", code], environ=env(opts), timeout=900)
    return float(proc.stdout.strip().splitlines()[-1]) / 1e6


def solver_rounds(opts: Options, n: int) -> dict[str, list[float]]:
    """Rounds of: ``stencil.kernel_rate`` on the (n-2)^2 interior over the solver's step count,
    and the whole solver on n^2 without and with a checkpoint (MLUPS; solver seconds too).

    Kernel and solver alternate which goes first (crossover_ratio pairs the orders).
    """
    got: dict[str, list[float]] = {"kernel": [], "solver": [], "seconds": [],
                                   "checkpointed": [], "checkpointed_seconds": []}
    for r in range(SOLVER_ROUNDS[opts.quick]):
        kernel_first = r % 2 == 0
        if kernel_first:
            got["kernel"].append(_kernel_alone(opts, n))
        plain = _heat(opts, n, 0)
        if not kernel_first:
            got["kernel"].append(_kernel_alone(opts, n))
        saved = _heat(opts, n, SOLVER_STEPS // 2)
        got["solver"].append(plain["mlups"])
        got["seconds"].append(plain["seconds"])
        got["checkpointed"].append(saved["mlups"])
        got["checkpointed_seconds"].append(saved["seconds"])
    return got


def solver_rows(opts: Options, n: int) -> tuple[list[Row], dict, str]:
    """The whole 1-rank solver against the kernel alone: rows, raw data, a note."""
    got = solver_rounds(opts, n)
    rounds = len(got["kernel"])
    ratio = crossover_ratio([s / k for s, k in zip(got["solver"], got["kernel"], strict=True)])
    kernel, solver = statistics.median(got["kernel"]), statistics.median(got["solver"])
    saved = statistics.median(got["checkpointed"])
    cost = statistics.median(b - a for a, b in zip(got["seconds"], got["checkpointed_seconds"],
                                                   strict=True))
    inner = f"{n - 2}x{n - 2}"
    rows = [
        Row(f"whole solver, 1 rank, {n}x{n}, {SOLVER_STEPS} steps, --checkpoint-every 0 "
            f"(median of {rounds} rounds)", solver, "MLUPS",
            f"kernel_rate {inner} {kernel:.0f}", ratio, f">= {SOLVER_TARGET}",
            ratio >= SOLVER_TARGET),
        Row(f"same, --checkpoint-every {SOLVER_STEPS // 2} (one checkpoint, at step "
            f"{SOLVER_STEPS // 2})", saved, "MLUPS", f"kernel_rate {inner} {kernel:.0f}",
            saved / kernel, "", None),
    ]
    note = (
        f"Whole solver: `mpiexec -n 1 python -m solver heat --nx {n} --ny {n} --steps "
        f"{SOLVER_STEPS} --checkpoint-every 0 --no-png` (MLUPS from its summary: interior "
        f"updates / stepping time), against `solver.stencil.kernel_rate(({n - 2}, {n - 2}), "
        f"{SOLVER_STEPS}, 1)` (the same interior and step count, fused the same way; a fresh "
        "process each, like the solver's) in the same round; the two alternate which goes "
        "first and the ratio is bench.common.crossover_ratio of the per-round ratios. Per "
        "round (kernel / solver): "
        + ", ".join(f"{k:.0f}/{s:.0f}" for k, s in zip(got["kernel"], got["solver"],
                                                      strict=True))
        + f". A checkpoint of this grid costs {cost:.2f} s of stepping time (median "
        "difference of the two runs' seconds): `--checkpoint-every 0` keeps it out of the "
        "judged figure; the default (every 100 steps) pays it once per 100 steps.")
    return rows, got, note


def measure(opts: Options) -> Section:
    """Copy rate, then every size, then the copy rate again: the best copy is the reference."""
    from solver import stencil

    stencil.warm_up(2)
    stencil.warm_up(3)
    reps = 3 if opts.quick else 7
    budget = 3e7 if opts.quick else 2e8
    before = copy_rate(reps)
    results = []
    for ndim, sizes in ((2, SIZES_2D[opts.quick]), (3, SIZES_3D[opts.quick])):
        for n in sizes:
            best, median, steps = stencil_rate(n, ndim, reps, budget)
            results.append({"ndim": ndim, "n": n, "steps": steps, "best": best, "median": median,
                            "mib": 2 * 8 * n**ndim / 2**20})
    line = line_rate(reps)
    numpy_n = 1025 if opts.quick else TARGET_N
    sliced = numpy_rate(numpy_n, 2 if opts.quick else 3)
    after = copy_rate(reps)
    copy_best = max(before[0], after[0])
    copy_median = max(before[1], after[1])
    sec = Section("kernel", "Solver kernel vs memory copy (1 core)")
    sec.data = {"copy_best": copy_best, "copy_median": copy_median, "copy_before": before,
                "copy_after": after, "line": line, "numpy": sliced, "numpy_n": numpy_n,
                "reps": reps, "results": results}
    sec.rows.append(Row(f"numpy.copyto, 2^24 float64 (best of {reps}, twice)", copy_best / 1e6,
                        "M elements/s", "", None, "", None))
    for r in results:
        ratio = r["best"] / copy_best
        judged = r["ndim"] == 2 and r["n"] == TARGET_N
        shape = "x".join([str(r["n"])] * r["ndim"])
        sec.rows.append(Row(
            f"stencil {r['ndim']}-D {shape} ({r['mib']:.0f} MiB, best of {reps})",
            r["best"] / 1e6, "MLUPS", f"copy {copy_best / 1e6:.0f} M el/s", ratio,
            f">= {TARGET}" if judged else "", (ratio >= TARGET) if judged else None))
    sec.rows.append(Row(f"diagnostic: 1-D 3-point numba loop, 2^24 float64 (best of {reps})",
                        line[0] / 1e6, "MLUPS", f"copy {copy_best / 1e6:.0f} M el/s",
                        line[0] / copy_best, "", None))
    sec.rows.append(Row(f"alternative: the 2-D update as numpy slicing, {numpy_n}x{numpy_n}",
                        sliced[0] / 1e6, "MLUPS", f"copy {copy_best / 1e6:.0f} M el/s",
                        sliced[0] / copy_best, "", None))
    target = next(r for r in results if r["ndim"] == 2 and r["n"] == TARGET_N)
    sec.notes.append(
        f"Kernel: `solver.stencil.run_steps`, the solver's own update path on one core "
        f"(numba; see solver/stencil.py). At {TARGET_N}^2 the median-to-median ratio is "
        f"{target['median'] / copy_median:.3f}. Sizes left of the {L3_MIB} MiB line fit the L3. "
        f"Copy measured before ({before[0] / 1e6:.0f} M/s) and after ({after[0] / 1e6:.0f} M/s)"
        " the stencils; the better is the reference. Beside it, in the same run: a 1-D "
        "3-point numba loop (one read and one write per update, a plain loop's rate) and the "
        "2-D update written as numpy slicing (the alternative to a compiled kernel).")
    solver_n = 1025 if opts.quick else TARGET_N
    rows, sec.data["solver"], note = solver_rows(opts, solver_n)
    sec.rows += rows
    sec.notes.append(note)
    sec.figure = plot.save(draw(sec.data), opts, "kernel", FIGURE_TITLE)
    return sec


def draw(data: dict) -> Figure:
    """The figure from ``Section.data``: stencil rates, and each against the copy rate."""
    results, copy_best = data["results"], data["copy_best"]
    fig, (ax1, ax2) = plot.figure(2, width=5.2, height=4.4)
    for ndim, marker in ((2, "o"), (3, "s")):
        pts = [r for r in results if r["ndim"] == ndim]
        mib = [r["mib"] for r in pts]
        ax1.plot(mib, [r["best"] / 1e6 for r in pts], marker=marker, label=f"{ndim}-D stencil")
        ax2.plot(mib, [r["best"] / copy_best for r in pts], marker=marker,
                 label=f"{ndim}-D stencil")
    ax1.axhline(copy_best / 1e6, color="grey", ls="--", label="numpy.copyto, 2^24 elements")
    copy_label = "1 = the copy's rate"
    ax2.axhline(1.0, color="grey", ls="--", lw=0.8, label=copy_label)
    ax2.annotate(copy_label, (0.99, 1.0), xycoords=("axes fraction", "data"), ha="right",
                 va="bottom", fontsize=8, color="grey")
    ax2.axhline(TARGET, color="red", ls=":", label=f"target {TARGET} (2-D {TARGET_N}^2 only)")
    judged = next(r for r in results if r["ndim"] == 2 and r["n"] == TARGET_N)
    ax2.plot([judged["mib"]], [judged["best"] / copy_best], "o", ms=11, mfc="none", color="red",
             label=f"judged: 2-D {TARGET_N}^2")
    l3_label = f"L3 cache, {L3_MIB} MiB"
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("working set, both arrays (MiB)")
        # Named on the line itself: a legend entry for it would crowd the stencils' keys.
        ax.axvline(L3_MIB, color="k", lw=0.6, alpha=0.5, label=l3_label)
        ax.annotate(l3_label, (L3_MIB, 0.98), xycoords=("data", "axes fraction"),
                    xytext=(3, 0), textcoords="offset points", ha="left", va="top",
                    fontsize=8, alpha=0.7)
        plot.legend_below(ax, ncols=2, handles=[
            line for line in ax.lines if line.get_label() not in (l3_label, copy_label)])
    ax1.set_ylabel("MLUPS / M elements per s")
    ax1.set_title("rate (best of repetitions)", fontsize=10)
    ax2.set_ylabel("stencil updates per copied element")
    ax2.set_title("stencil / copy (the judged ratio)", fontsize=10)
    ax2.set_ylim(0, max(1.2, math.ceil(max(r["best"] / copy_best for r in results) * 10) / 10))
    return fig
