"""Serial tests of the update kernels and the analytic solution."""

from __future__ import annotations

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


def test_run_steps_equals_repeated_step() -> None:
    rng = np.random.default_rng(2)
    u = np.zeros((12, 10))
    u[1:-1, 1:-1] = rng.random((10, 8))
    a, b = u.copy(), np.zeros_like(u)
    for _ in range(5):
        stencil.step(a, b, (0.2, 0.1))
        a, b = b, a
    result = stencil.run_steps(u.copy(), np.zeros_like(u), (0.2, 0.1), 5)
    np.testing.assert_array_equal(result, a)


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
