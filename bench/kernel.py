"""Solver kernel throughput (one core) against a plain array copy measured in the same run."""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

from bench import plot
from bench.common import Options, Row, Section, best_median

COPY_ELEMENTS = 1 << 24  # 128 MiB per array: far out of any cache
TARGET = 0.90
TARGET_N = 4097  # 4097^2 float64 = 128 MiB per array, out of the 32 MiB L3 (2049^2 is not)
SIZES_2D = {True: (257, 1025, 4097), False: (129, 257, 513, 1025, 2049, 4097)}
SIZES_3D = {True: (33, 129), False: (33, 65, 129, 257)}


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
        f"{target['median'] / copy_median:.3f}. Sizes left of the 32 MiB line fit the L3. "
        f"Copy measured before ({before[0] / 1e6:.0f} M/s) and after ({after[0] / 1e6:.0f} M/s)"
        " the stencils; the better is the reference. Beside it, in the same run: a 1-D "
        "3-point numba loop (one read and one write per update, a plain loop's rate) and the "
        "2-D update written as numpy slicing (the alternative to a compiled kernel).")
    sec.figure = _figure(opts, results, copy_best)
    return sec


def _figure(opts: Options, results: list[dict], copy_best: float) -> str:
    fig, (ax1, ax2) = plot.figure(2, width=5.2)
    for ndim, marker in ((2, "o"), (3, "s")):
        pts = [r for r in results if r["ndim"] == ndim]
        mib = [r["mib"] for r in pts]
        ax1.plot(mib, [r["best"] / 1e6 for r in pts], marker=marker, label=f"{ndim}-D stencil")
        ax2.plot(mib, [r["best"] / copy_best for r in pts], marker=marker, label=f"{ndim}-D")
    ax1.axhline(copy_best / 1e6, color="grey", ls="--", label="numpy.copyto 2^24")
    ax2.axhline(TARGET, color="red", ls=":", label=f"target {TARGET} (2-D {TARGET_N}^2)")
    ax2.axhline(1.0, color="grey", ls="--", lw=0.8)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("working set, both arrays (MiB)")
        ax.axvline(32, color="k", lw=0.6, alpha=0.5)
        ax.legend(fontsize=8)
    ax1.set_ylabel("MLUPS / M elements per s")
    ax2.set_ylabel("stencil updates per copied element")
    ax2.set_ylim(0, max(1.2, math.ceil(max(r["best"] / copy_best for r in results) * 10) / 10))
    return plot.save(fig, opts, "kernel", "Stencil vs copy bandwidth (same run, 1 core)")
