"""Explicit heat-equation update kernels (numba, no MPI) and the analytic solution.

Arrays carry ``g`` ghost layers on both sides of an axis (1, or up to ``MAX_DEPTH`` where a
neighbour rank feeds fused sweeps; ``g`` may differ per axis); kernels update only the
interior ``[g0:-g0, g1:-g1, ...]`` and never touch the ghost layers. Every
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


# Software prefetch of the next rows: a sweep computes several steps per row fetched, and
# the hardware stream prefetcher alone leaves the memory fetch unoverlapped with that work.
_prefetch_read = _prefetch_intrinsic(0)
_prefetch_write = _prefetch_intrinsic(1)
_PREFETCH_BYTES = 16 << 20  # below this both arrays stay in the 32 MiB L3: prefetch only costs


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
def _step_2d(u, out, cx, cy, g0, g1):  # pragma: no cover - compiled
    n0, n1 = u.shape
    for i in range(g0, n0 - g0):
        _row_2d(u[i - 1], u[i], u[i + 1], out[i], cx, cy, g1, n1 - g1)


@njit(cache=True)
def _step_3d(u, out, cx, cy, cz, g0, g1, g2):  # pragma: no cover - compiled
    n0, n1, n2 = u.shape
    for i in range(g0, n0 - g0):
        _plane_3d(u[i - 1], u[i], u[i + 1], out[i], cx, cy, cz, g1, n1 - g1, g2, n2 - g2)


# Fused kernels (temporal blocking). Level L = 1..d of a sweep is the field after L steps;
# layer r (row in 2-D, plane in 3-D) of level L is computed as soon as level L - 1 has layers
# r - 1..r + 1, into a rolling buffer of three layers per level, and level d goes to ``out``.
# So the field is read and written once per d steps. Level L is needed on the interior
# [g, n - g) widened by d - L layers on open sides (a neighbour's ghost layers: redundant
# work) and by the fixed Dirichlet boundary layer on closed sides, which keeps u's value.
# In 2-D, ``g`` and ``h`` are the ghost layers of the rows' and of the columns' axis.


@njit(cache=True)
def _sweep_2d(u, out, bufs, cx, cy, g, h, d, opn, fetch):  # pragma: no cover - compiled
    n0, n1 = u.shape
    for rin in range(n0 + d):
        if fetch and rin + 2 < n0:
            _prefetch_row(u[rin + 2], False)
            if 0 <= rin - d + 1 < n0:
                _prefetch_row(out[rin - d + 1], True)
        for lev in range(1, d + 1):
            r = rin - lev
            e = d - lev
            lo = g - e * opn[0] if e else g
            hi = n0 - g + e * opn[1] if e else n0 - g
            fixed = e > 0 and ((r == g - 1 and not opn[0]) or (r == n0 - g and not opn[1]))
            if not (lo <= r < hi or fixed):
                continue
            dst = out[r] if e == 0 else bufs[lev - 1, r % 3]
            if fixed:
                dst[:] = u[r]
                continue
            if lev == 1:
                src_m, src_c, src_p = u[r - 1], u[r], u[r + 1]
            else:
                src = bufs[lev - 2]
                src_m, src_c, src_p = src[(r - 1) % 3], src[r % 3], src[(r + 1) % 3]
            if e == 0:
                _row_2d(src_m, src_c, src_p, dst, cx, cy, h, n1 - h)
                continue
            _row_2d(src_m, src_c, src_p, dst, cx, cy, h - e * opn[2], n1 - h + e * opn[3])
            if not opn[2]:
                dst[h - 1] = u[r, h - 1]
            if not opn[3]:
                dst[n1 - h] = u[r, n1 - h]


# The 3-D pair kernel (d = 2, one level buffered in buf[r % 3]) written out directly.


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


def _per_axis(ghost: int | tuple[int, ...], ndim: int) -> tuple[int, ...]:
    return (ghost,) * ndim if isinstance(ghost, int) else tuple(ghost)


def step(u: np.ndarray, out: np.ndarray, coeffs: tuple[float, ...],
         ghost: int | tuple[int, ...] = 1) -> None:
    """Write one explicit Euler step of ``u`` (ghosts filled) into ``out``'s interior;
    ``ghost`` layers per side, one count for every axis or one per axis."""
    g = _per_axis(ghost, u.ndim)
    if u.ndim == 2:
        _step_2d(u, out, coeffs[0], coeffs[1], *g)
    else:
        _step_3d(u, out, coeffs[0], coeffs[1], coeffs[2], *g)


MAX_DEPTH = {2: 8, 3: 2}  # steps fused per sweep: 2-D reaches copy speed at ~6 (solver/README.md)


def sweep_buffer(shape: tuple[int, ...], depth: int) -> np.ndarray:
    """The rolling buffers ``sweep`` needs for ``depth`` steps on arrays of ``shape``."""
    if len(shape) == 2:
        return np.zeros((max(depth - 1, 1), 3, shape[1]))
    return np.zeros((3, *shape[1:]))


def sweep(u: np.ndarray, out: np.ndarray, bufs: np.ndarray, coeffs: tuple[float, ...],
          depth: int, ghost: int | tuple[int, ...] = 1,
          open_sides: tuple[tuple[bool, bool], ...] | None = None) -> None:
    """Write ``depth`` explicit steps of ``u`` into ``out``'s interior in one sweep over memory.

    Bitwise equal to ``depth`` ``step`` calls. ``ghost``: layers per side, one count for
    every axis or one per axis. ``open_sides[axis]`` = (lower, upper): True where a neighbour
    rank filled the ghost layers beyond, at least ``depth`` of them (intermediate steps are
    computed there too); False where the layer next to the interior is a fixed boundary.
    ``bufs`` comes from ``sweep_buffer`` with at least this depth.
    """
    sides = open_sides or ((False, False),) * u.ndim
    g = _per_axis(ghost, u.ndim)
    if depth > MAX_DEPTH[u.ndim]:
        raise ValueError(f"sweep: at most {MAX_DEPTH[u.ndim]} steps per sweep in {u.ndim}-D")
    if any(any(s) and w < depth for s, w in zip(sides, g, strict=True)):
        raise ValueError(f"sweep: open sides need ghost width >= depth ({depth})")
    if depth == 1:
        step(u, out, coeffs, g)
    elif u.ndim == 2:
        opn = tuple(int(flag) for s in sides for flag in s)
        _sweep_2d(u, out, bufs, coeffs[0], coeffs[1], g[0], g[1], depth, opn,
                  u.nbytes > _PREFETCH_BYTES)
    else:
        lo = tuple(w - 1 if s[0] else w for s, w in zip(sides, g, strict=True))
        hi = tuple(n - w + 1 if s[1] else n - w
                   for n, s, w in zip(u.shape, sides, g, strict=True))
        _pair_3d(u, out, bufs, coeffs[0], coeffs[1], coeffs[2], g, lo, hi)


def warm_up(ndim: int) -> None:
    """Compile (or load from the numba cache) the kernels for ``ndim`` axes outside timed code."""
    depth = MAX_DEPTH[ndim]
    u = np.zeros((2 * depth + 1,) * ndim)
    out = u.copy()
    step(u, out, (0.0,) * ndim)
    sweep(u, out, sweep_buffer(u.shape, depth), (0.0,) * ndim, depth, depth,
          ((True, True),) * ndim)


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
    """Advance ``steps`` serial steps, fused ``MAX_DEPTH`` at a time (ghosts kept as they are,
    and equal in both arrays); returns the result's array."""
    depth = MAX_DEPTH[u.ndim]
    bufs = sweep_buffer(u.shape, depth)
    done = 0
    while done < steps:
        taken = min(depth, steps - done)
        sweep(u, out, bufs, coeffs, taken)
        u, out = out, u
        done += taken
    return u


def kernel_rate(shape: tuple[int, ...], steps: int = 20, repeats: int = 3) -> float:
    """Lattice updates per second of the production update path on one core (best of ``repeats``).

    For benchmarks: ``shape`` is the interior size (2 or 3 axes); the arrays get one ghost
    layer, are zero-initialised except a random interior, and the kernels are compiled (or
    loaded from the numba cache) before timing. Each repeat times ``steps`` updates, fused
    by ``run_steps`` as the solver does.
    """
    padded = tuple(n + 2 for n in shape)
    u = np.zeros(padded)
    u[(slice(1, -1),) * len(shape)] = np.random.default_rng(0).random(shape)
    out = np.zeros(padded)
    coeffs = (0.1,) * len(shape)
    run_steps(u, out, coeffs, MAX_DEPTH[len(shape)])
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run_steps(u, out, coeffs, steps)
        best = min(best, time.perf_counter() - start)
    return math.prod(shape) * steps / best
