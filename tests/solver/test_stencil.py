"""Serial tests of the update kernels and the analytic solution."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from solver import stencil


def _reference(u: np.ndarray, coeffs: tuple[float, ...]) -> np.ndarray:
    """The same per-point expression written with numpy slices (same operation order)."""
    inner = (slice(1, -1),) * u.ndim
    c = u[inner]
    out = c.copy()
    for axis, k in enumerate(coeffs):
        lo = list(inner)
        hi = list(inner)
        lo[axis] = slice(0, -2)
        hi[axis] = slice(2, None)
        out = out + k * (u[tuple(lo)] - 2.0 * c + u[tuple(hi)])
    return out


@pytest.mark.parametrize("shape", [(9, 13), (5, 7, 6)])
def test_kernel_matches_numpy_expression_bitwise(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    u = rng.random(shape)
    out = np.full(shape, -7.0)
    coeffs = (0.11, 0.07, 0.05)[: len(shape)]
    stencil.step(u, out, coeffs)
    inner = (slice(1, -1),) * len(shape)
    np.testing.assert_array_equal(out[inner], _reference(u, coeffs))
    # ghost layer of the output is never written
    mask = np.ones(shape, dtype=bool)
    mask[inner] = False
    assert np.all(out[mask] == -7.0)


def _random_field(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random interior, zero boundary layer."""
    u = np.zeros(shape)
    u[(slice(1, -1),) * len(shape)] = np.random.default_rng(seed).random(
        tuple(n - 2 for n in shape))
    return u


def _single_steps(u: np.ndarray, coeffs: tuple[float, ...], steps: int) -> np.ndarray:
    a, b = u.copy(), u.copy()
    for _ in range(steps):
        stencil.step(a, b, coeffs)
        a, b = b, a
    return a


@pytest.mark.parametrize(("shape", "steps"), [((12, 10), 4), ((12, 10), 5), ((3, 9), 3),
                                              ((12, 10), 19), ((8, 7, 9), 4), ((8, 7, 9), 7)])
def test_run_steps_fused_equals_single_steps(shape: tuple[int, ...], steps: int) -> None:
    u = _random_field(shape, 2)
    coeffs = (0.2, 0.1, 0.05)[: len(shape)]
    result = stencil.run_steps(u.copy(), u.copy(), coeffs, steps)
    np.testing.assert_array_equal(result, _single_steps(u, coeffs, steps))


def test_sweep_with_prefetch_equals_single_steps() -> None:
    shape = (1450, 1460)  # over the 16 MiB above which the 2-D sweep prefetches rows
    assert np.zeros(shape).nbytes > stencil._PREFETCH_BYTES
    u = _random_field(shape, 3)
    out = u.copy()
    depth = stencil.MAX_DEPTH[2]
    stencil.sweep(u, out, stencil.sweep_buffer(shape, depth), (0.2, 0.1), depth)
    np.testing.assert_array_equal(out, _single_steps(u, (0.2, 0.1), depth))


@pytest.mark.parametrize("shape", [(9, 13), (6, 8, 7)])
def test_sweep_never_writes_ghosts(shape: tuple[int, ...]) -> None:
    u = _random_field(shape, 4)
    out = np.full(shape, -7.0)
    depth = stencil.MAX_DEPTH[len(shape)]
    stencil.sweep(u, out, stencil.sweep_buffer(shape, depth), (0.1,) * len(shape), depth)
    inner = (slice(1, -1),) * len(shape)
    want = _single_steps(u, (0.1,) * len(shape), depth)
    np.testing.assert_array_equal(out[inner], want[inner])
    mask = np.ones(shape, dtype=bool)
    mask[inner] = False
    assert np.all(out[mask] == -7.0)


@pytest.mark.parametrize(("shape", "depth"), [((17, 19), 2), ((17, 19), 3), ((21, 23), 8),
                                              ((9, 11, 10), 2)])
def test_sweep_on_ghost_blocks_matches_the_global_steps(shape: tuple[int, ...],
                                                        depth: int) -> None:
    # cut the global field into blocks with `depth` ghost layers (as ranks hold them); open
    # sides compute intermediate steps in the ghost layers too, closed ones keep the boundary
    ndim = len(shape)
    coeffs = (0.11, 0.07, 0.05)[:ndim]
    field = _random_field(shape, 5)
    want = _single_steps(field, coeffs, depth)
    g = depth
    padded = np.pad(field, g - 1, constant_values=np.nan)  # outside the grid: never read
    cuts = [[(0, g), (g, n - 2 - 2 * g), (0, n - 2), (n - 2 - g - 1, g + 1)] for n in shape]
    for block in itertools.product(*cuts):
        u = padded[tuple(slice(o, o + c + 2 * g) for o, c in block)].copy()
        out = np.full_like(u, -7.0)
        sides = tuple((o > 0, o + c < n - 2) for (o, c), n in zip(block, shape, strict=True))
        stencil.sweep(u, out, stencil.sweep_buffer(u.shape, depth), coeffs, depth, g, sides)
        got = out[(slice(g, -g),) * ndim]
        np.testing.assert_array_equal(got, want[tuple(slice(o + 1, o + 1 + c) for o, c in block)])


def test_sweep_refuses_open_sides_thinner_than_its_depth() -> None:
    u = np.zeros((9, 9))
    with pytest.raises(ValueError, match=r"ghost width >= depth \(3\)"):
        stencil.sweep(u, u.copy(), stencil.sweep_buffer(u.shape, 3), (0.1, 0.1), 3, 2,
                      ((True, False), (False, False)))
    with pytest.raises(ValueError, match="at most 2 steps per sweep in 3-D"):
        stencil.sweep(np.zeros((9, 9, 9)), np.zeros((9, 9, 9)), np.zeros((3, 9, 9)),
                      (0.1,) * 3, 3)


def test_single_step_with_two_ghost_layers_updates_the_inner_block() -> None:
    u = _random_field((10, 9), 6)
    out = np.full_like(u, -7.0)
    stencil.step(u, out, (0.2, 0.1), ghost=2)
    np.testing.assert_array_equal(out[2:-2, 2:-2], _reference(u[1:-1, 1:-1], (0.2, 0.1)))
    assert np.all(out[:2] == -7.0) and np.all(out[:, -2:] == -7.0)


def test_stable_dt_and_coefficients() -> None:
    h = (0.1, 0.05)
    dt = stencil.stable_dt(2.0, h)
    assert dt == pytest.approx(1 / (2 * 2.0 * (100 + 400)))
    cx, cy = stencil.coefficients(2.0, dt, h)
    assert cx + cy == pytest.approx(0.5)  # the explicit scheme's stability edge


def test_sine_mode_is_a_discrete_eigenfunction() -> None:
    n = 33
    profile = stencil.axis_sine(n)
    assert profile[0] == 0.0 and abs(profile[-1]) < 1e-15
    u = np.zeros((n, n))
    u[1:-1, 1:-1] = stencil.sine_product((profile[1:-1], profile[1:-1]))
    out = np.zeros_like(u)
    k = 0.2
    stencil.step(u, out, (k, k))
    h = 1 / (n - 1)
    factor = 1 - 2 * k * 4 * math.sin(math.pi * h / 2) ** 2  # one Euler step of the mode
    np.testing.assert_allclose(out[1:-1, 1:-1], factor * u[1:-1, 1:-1], rtol=1e-12, atol=1e-15)


def test_decay_matches_continuous_solution() -> None:
    assert stencil.decay(2, 1.0, 0.0) == 1.0
    assert stencil.decay(3, 0.5, 0.1) == pytest.approx(math.exp(-3 * math.pi**2 * 0.05))


def test_kernel_rate_reports_updates_per_second() -> None:
    rate = stencil.kernel_rate((64, 64), steps=5, repeats=2)
    assert 1e6 < rate < 1e11
