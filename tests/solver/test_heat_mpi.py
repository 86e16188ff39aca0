"""The heat solver: rank-count invariance, output layout, convergence, 3-D."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from solver import stencil
from solver.config import SolverConfig


def _same_results(a: dict, b: dict) -> None:
    assert a["grid"] == b["grid"] and a["steps"] == b["steps"]
    for key in ("t", "l2_error", "max_error"):
        assert b[key] == pytest.approx(a[key], rel=1e-12, abs=0), key


@pytest.mark.mpi
def test_results_do_not_depend_on_rank_count(tmp_path: Path, run_solver) -> None:
    # interior 65 x 43: divisible by none of 2, 3, 4; an odd step count ends on a single step
    fields, runs = {}, {}
    for ranks in (1, 2, 3, 4):
        run = run_solver(["heat", "--nx", "67", "--ny", "45", "--steps", "81",
                          "--output-path", str(tmp_path)],
                         ranks=ranks, env={"AWS_BATCH_JOB_ID": f"ranks{ranks}#0"})
        assert run.returncode == 0, run.stderr
        runs[ranks] = run
        fields[ranks] = np.load(tmp_path / f"ranks{ranks}" / "field.npy")
        assert run.summary["ranks"] == ranks
        assert math.prod(run.summary["dims"]) == ranks
        assert run.summary["nodes"] == 1
    for ranks in (2, 3, 4):
        np.testing.assert_array_equal(fields[ranks], fields[1])
        _same_results(runs[1].summary, runs[ranks].summary)
    assert runs[1].summary["l2_error"] < 1e-4
    _check_layout(tmp_path / "ranks4", runs[4])


def _single_steps(nx: int, ny: int, steps: int) -> np.ndarray:
    """The field after ``steps`` unfused serial steps of the default problem."""
    cfg = SolverConfig(nx=nx, ny=ny, steps=steps)
    u = np.zeros(cfg.grid)
    u[1:-1, 1:-1] = stencil.sine_product(tuple(stencil.axis_sine(n)[1:-1] for n in cfg.grid))
    nxt = u.copy()
    coeffs = stencil.coefficients(cfg.alpha, cfg.time_step, cfg.spacing)
    for _ in range(steps):
        stencil.step(u, nxt, coeffs)
        u, nxt = nxt, u
    return u


@pytest.mark.parametrize(("steps", "every"), [(13, "0"), (13, "5"), (14, "3")])
def test_fused_run_equals_single_steps(tmp_path: Path, heat_here, steps: int,
                                       every: str) -> None:
    # pairs of steps are fused; an odd leftover or a checkpoint step in between takes one
    run = heat_here(["--nx", "23", "--ny", "17", "--steps", str(steps), "--checkpoint-every",
                     every, "--no-png", "--output-path", str(tmp_path)],
                    env={"AWS_BATCH_JOB_ID": "fused"})
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "fused" / "field.npy"),
                                  _single_steps(23, 17, steps))
    if every != "0":
        saved = sorted(p.name for p in (tmp_path / "fused" / "checkpoints").iterdir())
        last = (steps - 1) // int(every) * int(every)
        assert saved[-1] == f"step-{last:010d}"  # checkpoints still land on their steps


def test_progress_lines_land_on_their_steps(tmp_path: Path, heat_here) -> None:
    # sweeps fuse up to 8 steps but end on every log step, so each line names its own step
    run = heat_here(["--nx", "23", "--ny", "17", "--steps", "25", "--log-every", "5",
                     "--no-png", "--output-path", str(tmp_path)], env={"AWS_BATCH_JOB_ID": "log"})
    assert run.returncode == 0, run.stderr
    assert [f"step {n}/25" in run.stderr for n in (5, 10, 15, 20, 25)] == [True] * 5
    np.testing.assert_array_equal(np.load(tmp_path / "log" / "field.npy"),
                                  _single_steps(23, 17, 25))


@pytest.mark.mpi
def test_thin_blocks_match_serial(tmp_path: Path, run_solver) -> None:
    # interior 5 x 7: 3 ranks get 1-layer blocks (single steps), 4 ranks 2-layer blocks (fused)
    want = _single_steps(7, 9, 11)
    for ranks in (3, 4):
        run = run_solver(["heat", "--nx", "7", "--ny", "9", "--steps", "11", "--no-png",
                          "--output-path", str(tmp_path)],
                         ranks=ranks, env={"AWS_BATCH_JOB_ID": f"thin{ranks}"})
        assert run.returncode == 0, run.stderr
        np.testing.assert_array_equal(np.load(tmp_path / f"thin{ranks}" / "field.npy"), want)


def _check_layout(job: Path, run) -> None:
    assert sorted(p.name for p in job.iterdir()) == ["field.npy", "field.png", "summary.json"]
    assert run.stdout.strip().count("\n") == 0  # exactly one line on stdout
    summary = run.summary
    assert json.loads((job / "summary.json").read_text()) == summary
    assert set(summary) >= {"ranks", "dims", "nodes", "grid", "steps", "t", "l2_error",
                            "max_error", "seconds", "mlups", "restarted_from_step"}
    assert summary["restarted_from_step"] is None
    assert summary["t"] == pytest.approx(summary["steps"] * summary["dt"], rel=1e-15)
    assert summary["mlups"] > 0 and summary["seconds"] > 0
    assert summary["output"] == str(job)
    field = np.load(job / "field.npy")
    assert field.shape == tuple(summary["grid"]) and field.dtype == np.float64
    for axis in range(field.ndim):  # zero Dirichlet boundary on every face
        assert np.all(np.take(field, [0, -1], axis=axis) == 0)
    assert (job / "field.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[solver" in run.stderr  # logs go to stderr


def test_second_order_convergence(tmp_path: Path, heat_here) -> None:
    # dt = 0.2 h^2 and a fixed end time: the error must fall ~4x per halving of h
    errors = []
    for n in (17, 33, 65):
        h = 1 / (n - 1)
        steps = round(0.025 / (0.2 * h * h))
        run = heat_here(["--nx", str(n), "--ny", str(n), "--steps", str(steps),
                         "--dt", repr(0.2 * h * h), "--no-png", "--output-path", str(tmp_path)],
                        env={"AWS_BATCH_JOB_ID": f"conv{n}"})
        assert run.returncode == 0, run.stderr
        assert run.summary["t"] == pytest.approx(0.025)
        errors.append(run.summary["max_error"])
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    assert all(3.7 < r < 4.3 for r in ratios), (errors, ratios)


@pytest.mark.mpi
def test_three_dimensional_run(tmp_path: Path, heat_here, run_solver) -> None:
    args = ["--nx", "19", "--ny", "14", "--nz", "11", "--t-end", "0.005", "--output-path",
            str(tmp_path)]
    serial = heat_here(args, env={"AWS_BATCH_JOB_ID": "cube1"})
    assert serial.returncode == 0, serial.stderr
    run = run_solver(["heat", *args], ranks=3, env={"AWS_BATCH_JOB_ID": "cube3"})
    assert run.returncode == 0, run.stderr
    assert len(run.summary["dims"]) == 3 and math.prod(run.summary["dims"]) == 3
    _same_results(serial.summary, run.summary)
    np.testing.assert_array_equal(np.load(tmp_path / "cube3" / "field.npy"),
                                  np.load(tmp_path / "cube1" / "field.npy"))
    assert run.summary["t"] == pytest.approx(0.005, rel=1e-12)
    # close to the analytic solution exp(-3 pi^2 t) prod sin(pi x)
    assert run.summary["max_error"] < 2e-3 * math.exp(-3 * math.pi**2 * 0.005)
    _check_layout(tmp_path / "cube3", run)
