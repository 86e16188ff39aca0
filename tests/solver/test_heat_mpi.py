"""The heat solver under mpiexec: rank-count invariance, convergence, 3-D, output layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.mpi

COMPARED = ("grid", "steps", "t", "l2_error", "max_error")


def _same_results(a: dict, b: dict) -> None:
    assert a["grid"] == b["grid"] and a["steps"] == b["steps"]
    for key in ("t", "l2_error", "max_error"):
        assert b[key] == pytest.approx(a[key], rel=1e-12, abs=0), key


def test_results_do_not_depend_on_rank_count(tmp_path: Path, run_solver) -> None:
    # interior 65 x 43: divisible by none of 2, 3, 4
    fields, summaries = {}, {}
    for ranks in (1, 2, 3, 4):
        run = run_solver(["heat", "--nx", "67", "--ny", "45", "--steps", "120",
                          "--output-path", str(tmp_path)],
                         ranks=ranks, env={"AWS_BATCH_JOB_ID": f"ranks{ranks}#0"})
        assert run.returncode == 0, run.stderr
        summaries[ranks] = run.summary
        fields[ranks] = np.load(tmp_path / f"ranks{ranks}" / "field.npy")
        assert run.summary["ranks"] == ranks
        assert math.prod(run.summary["dims"]) == ranks
        assert run.summary["nodes"] == 1
    for ranks in (2, 3, 4):
        np.testing.assert_array_equal(fields[ranks], fields[1])
        _same_results(summaries[1], summaries[ranks])
    assert fields[1].shape == (67, 45)
    assert summaries[1]["l2_error"] < 1e-4


def test_output_layout_and_summary(tmp_path: Path, run_solver) -> None:
    run = run_solver(["heat", "--nx", "33", "--ny", "21", "--steps", "10", "--output-path",
                      str(tmp_path)], ranks=2, env={"AWS_BATCH_JOB_ID": "abc-123#1"})
    assert run.returncode == 0, run.stderr
    job = tmp_path / "abc-123"
    assert sorted(p.name for p in job.iterdir()) == ["field.npy", "field.png", "summary.json"]
    assert run.stdout.strip().count("\n") == 0  # exactly one line on stdout
    summary = run.summary
    assert json.loads((job / "summary.json").read_text()) == summary
    assert set(summary) >= {"ranks", "dims", "nodes", "grid", "steps", "t", "l2_error",
                            "max_error", "seconds", "mlups", "restarted_from_step"}
    assert summary["restarted_from_step"] is None
    assert summary["t"] == pytest.approx(10 * summary["dt"], rel=1e-15)
    assert summary["mlups"] > 0
    field = np.load(job / "field.npy")
    assert field.shape == (33, 21) and field.dtype == np.float64
    assert np.all(field[0] == 0) and np.all(field[-1] == 0) and np.all(field[:, 0] == 0)
    assert (job / "field.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[solver" in run.stderr  # logs go to stderr


def test_second_order_convergence(tmp_path: Path, run_solver) -> None:
    # dt = 0.2 h^2 and a fixed end time: the error must fall ~4x per halving of h
    errors = []
    for n in (17, 33, 65):
        h = 1 / (n - 1)
        steps = round(0.025 / (0.2 * h * h))
        run = run_solver(["heat", "--nx", str(n), "--ny", str(n), "--steps", str(steps),
                          "--dt", repr(0.2 * h * h), "--no-png", "--output-path",
                          str(tmp_path)], ranks=2, env={"AWS_BATCH_JOB_ID": f"conv{n}"})
        assert run.returncode == 0, run.stderr
        assert run.summary["t"] == pytest.approx(0.025)
        errors.append(run.summary["max_error"])
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    assert all(3.7 < r < 4.3 for r in ratios), (errors, ratios)


def test_three_dimensional_run(tmp_path: Path, run_solver) -> None:
    fields = {}
    for ranks in (1, 3):
        run = run_solver(["heat", "--nx", "19", "--ny", "14", "--nz", "11", "--t-end", "0.005",
                          "--output-path", str(tmp_path)], ranks=ranks,
                         env={"AWS_BATCH_JOB_ID": f"cube{ranks}"})
        assert run.returncode == 0, run.stderr
        assert run.summary["grid"] == [19, 14, 11]
        assert len(run.summary["dims"]) == 3
        assert run.summary["t"] == pytest.approx(0.005, rel=1e-12)
        fields[ranks] = np.load(tmp_path / f"cube{ranks}" / "field.npy")
    np.testing.assert_array_equal(fields[3], fields[1])
    # still close to the analytic solution exp(-3 pi^2 t) prod sin(pi x)
    assert run.summary["max_error"] < 2e-3 * math.exp(-3 * math.pi**2 * 0.005)
    assert (tmp_path / "cube3" / "field.png").exists()
