"""Bad input: one clear error, exit code 2, nothing left in the output path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from solver import checkpoint
from solver.heat import run


def _params(tmp_path: Path, text: str) -> str:
    d = tmp_path / "in"
    d.mkdir()
    (d / "params.json").write_text(text)
    return str(d)


CASES = [
    (lambda t: ["--nx", "-3"], "nx must be at least 3"),
    (lambda t: ["--colour", "red"], "unrecognized arguments: --colour"),
    (lambda t: ["--steps", "many"], "argument --steps: 'many' is not a whole number"),
    (lambda t: ["--steps", "-1"], "steps must be >= 0"),
    (lambda t: ["--t-end", "-1"], "t_end must be a positive number"),
    (lambda t: ["--nx", "17", "--ny", "17", "--dt", "0.5"], "dt 0.5 is unstable"),
    (lambda t: ["--input-path", str(t / "missing")], "is not a readable directory"),
    (lambda t: ["--input-path", _params(t, '{"nx": 9, "shape": 1}')], "unknown option(s) shape"),
    (lambda t: ["--input-path", _params(t, "{oops")], "cannot read"),
    (lambda t: ["--restart-from", str(t)], "no valid checkpoint there"),
    # derived values that overflow: dt = inf, t = inf (they used to reach the summary line)
    (lambda t: ["--alpha", "1e-320"], "the time step works out as dt=inf"),
    (lambda t: ["--alpha", "5e-324", "--nx", "9", "--ny", "9"], "works out as dt=inf"),
    (lambda t: ["--input-path", _params(t, '{"alpha": 1e-318}')], "works out as dt=inf"),
    (lambda t: ["--t-end", "1e308", "--nx", "9", "--ny", "9", "--dt", "1e-300"],
     "final time as t=inf"),
    # ASCII digits only, as everywhere else
    (lambda t: ["--nx", "\u0668"], "argument --nx: '\u0668' is not a whole number"),
    (lambda t: ["--nx", "\uff18"], "is not a whole number (ASCII digits only)"),
    (lambda t: ["--steps", "1_000"], "argument --steps: '1_000' is not a whole number"),
    (lambda t: ["--steps", "+8"], "argument --steps: '+8' is not a whole number"),
    (lambda t: ["--nx", " 9"], "argument --nx: ' 9' is not a whole number"),
    (lambda t: ["--log-every", "1e3"], "argument --log-every: '1e3' is not a whole number"),
]


@pytest.mark.parametrize(("make_args", "fragment"), CASES)
def test_bad_heat_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args,
                        fragment: str) -> None:
    out = tmp_path / "out"
    code = run(MPI.COMM_SELF, [*make_args(tmp_path), "--output-path", str(out)], {})
    err = capsys.readouterr()
    assert code == 2
    assert err.out == ""
    lines = [line for line in err.err.splitlines() if "error:" in line]
    assert len(lines) == 1 and fragment in lines[0], err.err
    assert not out.exists()


def test_unwritable_output_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = run(MPI.COMM_SELF, ["--nx", "9", "--ny", "9", "--output-path", str(blocker / "out")], {})
    assert code == 2
    assert "is not a writable directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_environment_output_path_is_checked(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = run(MPI.COMM_SELF, ["--nx", "9", "--ny", "9"], {"OUTPUT_PATH": str(blocker)})
    assert code == 2
    assert f"output path {blocker} is not a writable directory" in capsys.readouterr().err


@pytest.mark.mpi
@pytest.mark.parametrize(("args", "fragment"), [
    (["heat", "--nx", "3", "--ny", "3"], "ranks: 2 ranks cannot split a 3x3 grid"),
    (["frobnicate"], "unknown command frobnicate"),
])
def test_bad_input_under_mpiexec(tmp_path: Path, run_solver, args: list[str],
                                 fragment: str) -> None:
    out = tmp_path / "out"
    result = run_solver([*args, "--output-path", str(out)], ranks=2)
    assert result.returncode == 2
    assert result.stdout.strip() == ""
    assert result.stderr.count(fragment) == 1, result.stderr  # said once, by rank 0
    assert not out.exists()


def _loop(tmp_path: Path) -> Path:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return loop


def _dangling(tmp_path: Path) -> Path:
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    return link


@pytest.mark.parametrize(("make_args", "fragment"), [
    (lambda t: ["--output-path", str(_loop(t))], "output path"),
    (lambda t: ["--output-path", str(_loop(t) / "sub" / "dir")], "output path"),
    (lambda t: ["--output-path", str(_dangling(t))], "output path"),
    (lambda t: ["--checkpoint-dir", str(_loop(t))], "checkpoint dir"),
    (lambda t: ["--checkpoint-dir", str(_dangling(t) / "ckpt")], "checkpoint dir"),
])
def test_symlink_loops_and_dangling_links_are_refused(tmp_path: Path, heat_here, make_args,
                                                      fragment: str) -> None:
    args = make_args(tmp_path)
    if "--output-path" not in args:
        args += ["--output-path", str(tmp_path / "out")]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = heat_here(["--nx", "9", "--ny", "9", "--no-png", *args])
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "is not a writable directory (a dangling symlink or a symlink loop)" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created


def test_params_file_symlink_loop_is_an_error(tmp_path: Path, heat_here) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "params.json").symlink_to(inp / "params.json")
    result = heat_here(["--input-path", str(inp), "--output-path", str(tmp_path / "out")])
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "params.json" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("grid", [
    ["--nx", "1000000000000"],
    ["--nx", "3000000", "--ny", "3000000"],
    ["--nx", "20000", "--ny", "20000", "--nz", "20000"],
])
def test_a_grid_that_cannot_fit_in_memory_is_refused_before_allocating(
        tmp_path: Path, heat_here, grid: list[str]) -> None:
    out = tmp_path / "out"
    result = heat_here([*grid, "--output-path", str(out)])
    assert result.returncode == 2, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "error:" in x]
    assert "does not fit in memory" in line
    need, have = [int(x.split("(")[1].split()[0]) for x in line.split(" GiB ")[1:3]]
    assert need > have > 0
    assert not out.exists()


def _strict_summary(stdout: str) -> dict:
    def refuse(name: str) -> float:
        raise AssertionError(f"non-finite number {name} in the summary line")
    return json.loads(stdout.strip().splitlines()[-1], parse_constant=refuse)


@pytest.mark.parametrize("t_end", ["1e-18", "1e-300", "5e-324", "1e-9"])
def test_t_end_below_one_time_step_is_one_shorter_step(tmp_path: Path, heat_here,
                                                       t_end: str) -> None:
    result = heat_here(["--nx", "9", "--ny", "9", "--t-end", t_end, "--no-png",
                        "--output-path", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    summary = _strict_summary(result.stdout)
    assert summary["steps"] == 1 and summary["t"] == summary["dt"] == float(t_end)


# --- checkpoints are verified before they are resumed --------------------------------------

RUN = ["--nx", "33", "--ny", "25", "--no-png"]


@pytest.fixture
def two_checkpoints(tmp_path: Path, heat_here) -> tuple[Path, np.ndarray]:
    """A job with checkpoints at steps 10 and 20, and the field of a straight 40-step run."""
    straight = heat_here([*RUN, "--steps", "40", "--checkpoint-every", "0",
                          "--output-path", str(tmp_path / "straight")],
                         env={"AWS_BATCH_JOB_ID": "straight"})
    assert straight.returncode == 0, straight.stderr
    first = heat_here([*RUN, "--steps", "25", "--checkpoint-every", "10",
                       "--output-path", str(tmp_path)], env={"AWS_BATCH_JOB_ID": "job"})
    assert first.returncode == 0, first.stderr
    return (tmp_path / "job" / "checkpoints",
            np.load(tmp_path / "straight" / "straight" / "field.npy"))


def _edit_meta(step_dir: Path, **changes: object) -> None:
    meta = json.loads((step_dir / "meta.json").read_text())
    meta.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del meta[key]
    (step_dir / "meta.json").write_text(json.dumps(meta))


def _edit_field(step_dir: Path, value: float) -> None:
    field = np.load(step_dir / "field.npy")
    field[5, 5] = value
    np.save(step_dir / "field.npy", field)


def _relabel(step_dir: Path, step: int) -> None:
    _edit_meta(step_dir, step=step)
    step_dir.rename(step_dir.with_name(f"step-{step:010d}"))


TAMPER = [
    (lambda d: _edit_field(d, np.nan), "checksum mismatch"),
    (lambda d: _edit_field(d, 1e300), "checksum mismatch"),
    (lambda d: _edit_field(d, -np.inf), "checksum mismatch"),
    (lambda d: _relabel(d, 30), "checksum mismatch"),
    (lambda d: _edit_meta(d, dt=None), "meta.json lacks dt"),
    (lambda d: _edit_meta(d, alpha=None), "meta.json lacks alpha"),
    (lambda d: _edit_meta(d, ranks=None), "meta.json lacks ranks"),
    (lambda d: _edit_meta(d, sha256=None), "meta.json lacks sha256"),
    (lambda d: _edit_meta(d, dt=float("nan")), "meta.json dt=nan is not a finite float"),
    (lambda d: _edit_meta(d, ranks="2"), "meta.json ranks='2' is not a finite int"),
    (lambda d: _edit_meta(d, format=1), "format 1, this solver reads"),
    (lambda d: (d / "meta.json").write_text("[]"), "meta.json is not a JSON object"),
    (lambda d: (d / "meta.json").write_text('{"step": 2'), "meta.json unreadable"),
]


@pytest.mark.parametrize(("tamper", "reason"), TAMPER)
def test_a_bad_checkpoint_is_skipped_for_the_previous_one(
        tmp_path: Path, heat_here, two_checkpoints, tamper, reason: str) -> None:
    ckpts, straight = two_checkpoints
    tamper(ckpts / "step-0000000020")
    result = heat_here([*RUN, "--steps", "40", "--checkpoint-every", "0",
                        "--output-path", str(tmp_path)],
                       env={"AWS_BATCH_JOB_ID": "job", "AWS_BATCH_JOB_ATTEMPT": "2"})
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if "skipped checkpoint" in line]
    assert len(skipped) == 1 and "step-00000000" in skipped[0] and reason in skipped[0], \
        result.stderr
    assert _strict_summary(result.stdout)["restarted_from_step"] == 10
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "field.npy"), straight)


@pytest.mark.parametrize("value", [1e300, 1e308, np.nan])
def test_a_field_that_ends_non_finite_prints_no_summary(tmp_path: Path, heat_here,
                                                        two_checkpoints, value: float) -> None:
    """Even a forged checkpoint (checksum recomputed) cannot put NaN or Infinity on stdout."""
    ckpts, _ = two_checkpoints
    step = ckpts / "step-0000000020"
    _edit_field(step, value)
    meta = json.loads((step / "meta.json").read_text())
    meta["sha256"], finite = checkpoint.field_digest(meta, str(step / "field.npy"))
    (step / "meta.json").write_text(json.dumps(meta))
    result = heat_here([*RUN, "--steps", "40", "--output-path", str(tmp_path)],
                       env={"AWS_BATCH_JOB_ID": "job"})
    if not finite:  # refused at restart: resumed from step 10 instead
        assert "the field holds NaN or infinite values" in result.stderr
        assert result.returncode == 0 and _strict_summary(result.stdout)
        return
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "the field is not finite at step 40" in result.stderr
    # the job's summary.json is still the first run's (25 steps)
    assert json.loads((tmp_path / "job" / "summary.json").read_text())["steps"] == 25
