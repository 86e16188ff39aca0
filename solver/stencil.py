"""Explicit heat-equation update kernels (numba, no MPI) and the analytic solution.

Arrays carry one ghost layer on every side; kernels update only the interior
``[1:-1, 1:-1(, 1:-1)]`` and never touch the ghost layer. Every point is updated
with the same floating-point expression whatever the decomposition, which is what
keeps results bitwise equal across rank counts (no fastmath, no reassociation).
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit


@njit(cache=True)
def _step_2d(u, out, cx, cy):  # pragma: no cover - compiled
    n0, n1 = u.shape
    for i in range(1, n0 - 1):
        um = u[i - 1]
        uc = u[i]
        up = u[i + 1]
        o = out[i]
        for j in range(1, n1 - 1):
            c = uc[j]
            o[j] = c + cx * (um[j] - 2.0 * c + up[j]) + cy * (uc[j - 1] - 2.0 * c + uc[j + 1])


@njit(cache=True)
def _step_3d(u, out, cx, cy, cz):  # pragma: no cover - compiled
    n0, n1, n2 = u.shape
    for i in range(1, n0 - 1):
        for j in range(1, n1 - 1):
            um = u[i - 1, j]
            up = u[i + 1, j]
            ujm = u[i, j - 1]
            ujp = u[i, j + 1]
            uc = u[i, j]
            o = out[i, j]
            for k in range(1, n2 - 1):
                c = uc[k]
                o[k] = (
                    c
                    + cx * (um[k] - 2.0 * c + up[k])
                    + cy * (ujm[k] - 2.0 * c + ujp[k])
                    + cz * (uc[k - 1] - 2.0 * c + uc[k + 1])
                )


def step(u: np.ndarray, out: np.ndarray, coeffs: tuple[float, ...]) -> None:
    """Write one explicit Euler step of ``u`` (ghosts filled) into ``out``'s interior."""
    if u.ndim == 2:
        _step_2d(u, out, coeffs[0], coeffs[1])
    else:
        _step_3d(u, out, coeffs[0], coeffs[1], coeffs[2])


def warm_up(ndim: int) -> None:
    """Compile (or load from the numba cache) the kernel for ``ndim`` axes outside timed code."""
    u = np.zeros((3,) * ndim)
    step(u, u.copy(), (0.0,) * ndim)


def coefficients(alpha: float, dt: float, spacing: tuple[float, ...]) -> tuple[float, ...]:
    """Per-axis ``alpha * dt / h**2`` factors the kernels take."""
    return tuple(alpha * dt / (h * h) for h in spacing)


def stable_dt(alpha: float, spacing: tuple[float, ...]) -> float:
    """Largest stable explicit step: ``1 / (2 alpha sum(1/h**2))``."""
    return 1.0 / (2.0 * alpha * sum(1.0 / (h * h) for h in spacing))


def axis_sine(n: int) -> np.ndarray:
    """``sin(pi x)`` at the ``n`` grid points of one axis of the unit interval.

    Computed over the whole axis and sliced per rank, because numpy's vectorised sin may
    round differently in its SIMD tail, which would make results depend on block sizes.
    """
    return np.sin(math.pi * (np.arange(n, dtype=np.float64) / (n - 1)))


def sine_product(profiles: tuple[np.ndarray, ...]) -> np.ndarray:
    """Outer product ``prod sin(pi x_i)`` of per-axis profile slices, always in axis order."""
    field = profiles[0]
    for axis in range(1, len(profiles)):
        field = np.multiply.outer(field, profiles[axis])
    return field


def decay(ndim: int, alpha: float, t: float) -> float:
    """Amplitude ``exp(-d pi^2 alpha t)`` of the analytic solution at time ``t``."""
    return math.exp(-ndim * math.pi**2 * alpha * t)


def run_steps(u: np.ndarray, out: np.ndarray, coeffs: tuple[float, ...], steps: int) -> np.ndarray:
    """Advance ``steps`` serial steps (ghosts kept as they are); returns the result's array."""
    for _ in range(steps):
        step(u, out, coeffs)
        u, out = out, u
    return u


def kernel_rate(shape: tuple[int, ...], steps: int = 20, repeats: int = 3) -> float:
    """Lattice updates per second of the kernel alone on one core (best of ``repeats``).

    For benchmarks: ``shape`` is the interior size (2 or 3 axes); the arrays get one ghost
    layer, are zero-initialised except a random interior, and the kernel is compiled (or
    loaded from the numba cache) before timing. Each repeat times ``steps`` updates.
    """
    padded = tuple(n + 2 for n in shape)
    u = np.zeros(padded)
    u[(slice(1, -1),) * len(shape)] = np.random.default_rng(0).random(shape)
    out = np.zeros(padded)
    coeffs = (0.1,) * len(shape)
    run_steps(u, out, coeffs, 1)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run_steps(u, out, coeffs, steps)
        best = min(best, time.perf_counter() - start)
    return math.prod(shape) * steps / best
