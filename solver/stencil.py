"""Explicit heat-equation update kernels (numba, no MPI) and the analytic solution.

Arrays carry ``g`` ghost layers on every side (1, or 2 for the fused two-step kernel);
kernels update only the interior ``[g:-g, ...]`` and never touch the ghost layers. Every
point is updated with the same floating-point expression whatever the decomposition and
whether steps are fused, which is what keeps results bitwise equal across rank counts
(no fastmath, no reassociation; all paths share ``_row_2d``/``_row_3d``).
"""

from __future__ import annotations

import math
import time

import numpy as np
from llvmlite import ir
from numba import njit, types, uint64
from numba.core import cgutils
from numba.extending import intrinsic


def _prefetch_intrinsic(write: int):  # noqa: ANN202 - numba intrinsic factory
    @intrinsic
    def _prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                           wraparound=False)
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [ptr, ir.Constant(i32, write), ir.Constant(i32, 3),
                              ir.Constant(i32, 1)])
            return context.get_dummy_value()
        return types.void(arr, idx), codegen
    return _prefetch


# Software prefetch of the next rows: the fused kernel computes twice per row fetched, and
# the hardware stream prefetcher alone leaves the memory fetch unoverlapped with that work.
_prefetch_read = _prefetch_intrinsic(0)
_prefetch_write = _prefetch_intrinsic(1)
_PREFETCH_BYTES = 16 << 20  # below this an array pair stays in the 32 MiB L3: prefetch only costs


@njit(cache=True)
def _prefetch_row(row, write):  # pragma: no cover - compiled
    for j in range(0, row.shape[0], 8):  # one per 64-byte line
        if write:
            _prefetch_write(row, j)
        else:
            _prefetch_read(row, j)


@njit(cache=True)
def _row_2d(um, uc, up, o, cx, cy, lo, hi):  # pragma: no cover - compiled
    # Unsigned indices: numba then emits no negative-index wraparound, which otherwise
    # stops vectorisation when lo is not a compile-time constant.
    one = uint64(1)
    for j in range(uint64(lo), uint64(hi)):
        c = uc[j]
        o[j] = c + cx * (um[j] - 2.0 * c + up[j]) + cy * (uc[j - one] - 2.0 * c + uc[j + one])


@njit(cache=True)
def _row_3d(um, up, ujm, ujp, uc, o, cx, cy, cz, lo, hi):  # pragma: no cover - compiled
    one = uint64(1)
    for j in range(uint64(lo), uint64(hi)):
        c = uc[j]
        o[j] = (c + cx * (um[j] - 2.0 * c + up[j]) + cy * (ujm[j] - 2.0 * c + ujp[j])
                + cz * (uc[j - one] - 2.0 * c + uc[j + one]))


@njit(cache=True)
def _plane_3d(pm, pc, pp, o, cx, cy, cz, lo1, hi1, lo2, hi2):  # pragma: no cover - compiled
    for j in range(lo1, hi1):
        _row_3d(pm[j], pp[j], pc[j - 1], pc[j + 1], pc[j], o[j], cx, cy, cz, lo2, hi2)


@njit(cache=True)
def _step_2d(u, out, cx, cy, g):  # pragma: no cover - compiled
    n0, n1 = u.shape
    for i in range(g, n0 - g):
        _row_2d(u[i - 1], u[i], u[i + 1], out[i], cx, cy, g, n1 - g)


@njit(cache=True)
def _step_3d(u, out, cx, cy, cz, g):  # pragma: no cover - compiled
    n0, n1, n2 = u.shape
    for i in range(g, n0 - g):
        _plane_3d(u[i - 1], u[i], u[i + 1], out[i], cx, cy, cz, g, n1 - g, g, n2 - g)


# The fused kernels: the intermediate step of layer r (row in 2-D, plane in 3-D) goes into
# buf[r % 3], then the final step of layer r - 1 is computed from the three buffered layers.
# The intermediate is needed on the interior [f, n - f) plus one layer around it; on
# [a, b) it is computed (open sides: a neighbour's ghost layer, redundant work), the rest
# of that ring is a fixed Dirichlet boundary and keeps u's value.


@njit(cache=True)
def _mid_row_2d(u, r, v, cx, cy, f1, g1, a1, b1):  # pragma: no cover - compiled
    _row_2d(u[r - 1], u[r], u[r + 1], v, cx, cy, a1, b1)
    if a1 == f1:
        v[f1 - 1] = u[r, f1 - 1]
    if b1 == g1:
        v[g1] = u[r, g1]


@njit(cache=True)
def _pair_2d(u, out, buf, cx, cy, f, a, b, fetch):  # pragma: no cover - compiled
    f0, f1 = f
    n0 = u.shape[0]
    g0 = n0 - f0
    g1 = u.shape[1] - f1
    for r in range(f0 - 1, g0 + 1):
        if fetch and r + 2 < n0:
            _prefetch_row(u[r + 2], False)
            _prefetch_row(out[r], True)
        v = buf[r % 3]
        if a[0] <= r < b[0]:
            _mid_row_2d(u, r, v, cx, cy, f1, g1, a[1], b[1])
        else:
            v[f1 - 1:g1 + 1] = u[r, f1 - 1:g1 + 1]
        if r > f0:
            i = r - 1
            _row_2d(buf[(i - 1) % 3], buf[i % 3], v, out[i], cx, cy, f1, g1)


@njit(cache=True)
def _mid_plane_3d(u, r, v, cx, cy, cz, f, a, b):  # pragma: no cover - compiled
    f1, f2 = f[1], f[2]
    g1 = u.shape[1] - f1
    g2 = u.shape[2] - f2
    _plane_3d(u[r - 1], u[r], u[r + 1], v, cx, cy, cz, a[1], b[1], a[2], b[2])
    for j in range(f1 - 1, g1 + 1):
        if a[1] <= j < b[1]:
            if a[2] == f2:
                v[j, f2 - 1] = u[r, j, f2 - 1]
            if b[2] == g2:
                v[j, g2] = u[r, j, g2]
        else:
            v[j, f2 - 1:g2 + 1] = u[r, j, f2 - 1:g2 + 1]


@njit(cache=True)
def _pair_3d(u, out, buf, cx, cy, cz, f, a, b):  # pragma: no cover - compiled
    f0, f1, f2 = f
    g0 = u.shape[0] - f0
    g1 = u.shape[1] - f1
    g2 = u.shape[2] - f2
    for r in range(f0 - 1, g0 + 1):
        v = buf[r % 3]
        if a[0] <= r < b[0]:
            _mid_plane_3d(u, r, v, cx, cy, cz, f, a, b)
        else:
            v[f1 - 1:g1 + 1, f2 - 1:g2 + 1] = u[r, f1 - 1:g1 + 1, f2 - 1:g2 + 1]
        if r > f0:
            i = r - 1
            _plane_3d(buf[(i - 1) % 3], buf[i % 3], v, out[i], cx, cy, cz, f1, g1, f2, g2)


def step(u: np.ndarray, out: np.ndarray, coeffs: tuple[float, ...], ghost: int = 1) -> None:
    """Write one explicit Euler step of ``u`` (ghosts filled) into ``out``'s interior."""
    if u.ndim == 2:
        _step_2d(u, out, coeffs[0], coeffs[1], ghost)
    else:
        _step_3d(u, out, coeffs[0], coeffs[1], coeffs[2], ghost)


def pair_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """The rolling buffer ``step_pair`` needs for arrays of ``shape`` (three rows or planes)."""
    return np.zeros((3, *shape[1:]))


def step_pair(u: np.ndarray, out: np.ndarray, buf: np.ndarray, coeffs: tuple[float, ...],
              ghost: int = 1, open_sides: tuple[tuple[bool, bool], ...] | None = None) -> None:
    """Write two explicit steps of ``u`` into ``out``'s interior in one sweep over memory.

    Bitwise equal to two ``step`` calls. ``open_sides[axis]`` = (lower, upper): True where a
    neighbour rank holds the ``ghost`` >= 2 layers beyond (the intermediate step is computed
    there too); False where the layer next to the interior is a fixed boundary.
    """
    shape = u.shape
    sides = open_sides or ((False, False),) * u.ndim
    if any(any(s) for s in sides) and ghost < 2:
        raise ValueError("step_pair: open sides need ghost width >= 2")
    first = (ghost,) * u.ndim
    lo = tuple(ghost - 1 if s[0] else ghost for s in sides)
    hi = tuple(n - ghost + 1 if s[1] else n - ghost for n, s in zip(shape, sides, strict=True))
    if u.ndim == 2:
        _pair_2d(u, out, buf, coeffs[0], coeffs[1], first, lo, hi, u.nbytes > _PREFETCH_BYTES)
    else:
        _pair_3d(u, out, buf, coeffs[0], coeffs[1], coeffs[2], first, lo, hi)


def warm_up(ndim: int) -> None:
    """Compile (or load from the numba cache) the kernels for ``ndim`` axes outside timed code."""
    u = np.zeros((5,) * ndim)
    out = u.copy()
    step(u, out, (0.0,) * ndim)
    step_pair(u, out, pair_buffer(u.shape), (0.0,) * ndim, 2, ((True, True),) * ndim)


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
    """Advance ``steps`` serial steps, fused in pairs (ghosts kept as they are, and equal in
    both arrays); returns the result's array."""
    buf = pair_buffer(u.shape)
    for _ in range(steps // 2):
        step_pair(u, out, buf, coeffs)
        u, out = out, u
    if steps % 2:
        step(u, out, coeffs)
        u, out = out, u
    return u


def kernel_rate(shape: tuple[int, ...], steps: int = 20, repeats: int = 3) -> float:
    """Lattice updates per second of the production update path on one core (best of ``repeats``).

    For benchmarks: ``shape`` is the interior size (2 or 3 axes); the arrays get one ghost
    layer, are zero-initialised except a random interior, and the kernels are compiled (or
    loaded from the numba cache) before timing. Each repeat times ``steps`` updates, fused
    in pairs by ``run_steps`` as the solver does.
    """
    padded = tuple(n + 2 for n in shape)
    u = np.zeros(padded)
    u[(slice(1, -1),) * len(shape)] = np.random.default_rng(0).random(shape)
    out = np.zeros(padded)
    coeffs = (0.1,) * len(shape)
    run_steps(u, out, coeffs, 2)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run_steps(u, out, coeffs, steps)
        best = min(best, time.perf_counter() - start)
    return math.prod(shape) * steps / best
