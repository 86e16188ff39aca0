"""Bad input: one clear error, exit code 2, nothing left in the output path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mpi4py import MPI

from solver.heat import run
from tests.solver.runs import strict_summary


def _params(tmp_path: Path, text: str) -> str:
    d = tmp_path / "in"
    d.mkdir()
    (d / "params.json").write_text(text)
    return str(d)


def _params_link(tmp_path: Path, target: str) -> str:
    d = tmp_path / "in"
    d.mkdir()
    (d / "params.json").symlink_to(target)
    return str(d)


def _params_fifo(tmp_path: Path) -> str:
    d = tmp_path / "in"
    d.mkdir()
    os.mkfifo(d / "params.json")
    return str(d)


HUGE = "1" + "0" * 400  # int() takes it; float() of it overflows

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
    # and ASCII decimals for floats (float() takes these)
    (lambda t: ["--alpha", "\u0661"], "argument --alpha: '\u0661' is not a number (ASCII"),
    (lambda t: ["--alpha", "1_0"], "argument --alpha: '1_0' is not a number (ASCII"),
    (lambda t: ["--dt", " 0.1"], "argument --dt: ' 0.1' is not a number (ASCII"),
    (lambda t: ["--t-end", "\uff11"], "argument --t-end: '\uff11' is not a number (ASCII"),
    (lambda t: ["--alpha", "1e999"], "argument --alpha: '1e999' is not a finite number"),
    # numbers too large to be counts, or to be floats (they crashed with OverflowError)
    (lambda t: ["--nx", HUGE], "nx 10000000000000000000... (401 characters) is out of range"),
    (lambda t: ["--steps", HUGE], "steps 10000000000000000000... (401 characters) is out of"),
    (lambda t: ["--input-path", _params(t, f'{{"ny": {HUGE}}}')], "ny 1000000"),
    (lambda t: ["--input-path", _params(t, f'{{"alpha": {HUGE}}}')],
     "alpha 10000000000000000000... (401 characters) is too large for a floating-point number"),
    (lambda t: ["--input-path", _params(t, f'{{"t_end": -{HUGE}}}')], "t_end -1000000"),
    # params.json that is not a small regular file (MemoryError, a hang, RecursionError)
    (lambda t: ["--input-path", _params_link(t, "/dev/zero")],
     "params.json is not a regular file (a character device)"),
    (lambda t: ["--input-path", _params_fifo(t)], "params.json is not a regular file (a FIFO)"),
    (lambda t: ["--input-path", _params(t, "[" * 200_000)], "nested too deeply to parse"),
    (lambda t: ["--input-path", _params(t, '{"checkpoint_dir": "a\\u0000b"}')],
     "checkpoint_dir 'a\\x00b' holds a NUL character"),
    (lambda t: ["--input-path", _params(t, " " * (1 << 21))], "is larger than 1048576 bytes"),
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


@pytest.mark.parametrize(("env", "fragment"), [
    ({"AWS_BATCH_JOB_ID": "a/../../b"}, "AWS_BATCH_JOB_ID 'a/../../b' cannot name a directory"),
    ({"AWS_BATCH_JOB_ID": "x" * 300}, "AWS_BATCH_JOB_ID 'xxxxxxxxxxxxxxxxxxx... (302 char"),
    ({"AWS_BATCH_JOB_ID": "my job"}, "AWS_BATCH_JOB_ID 'my job' cannot name a directory"),
    ({"AWS_BATCH_JOB_ID": " job#1"}, "AWS_BATCH_JOB_ID ' job' cannot name a directory"),
    ({"AWS_BATCH_JOB_ID": ".."}, "AWS_BATCH_JOB_ID '..' cannot name a directory"),
    ({"AWS_BATCH_JOB_ID": "-rf"}, "AWS_BATCH_JOB_ID '-rf' cannot name a directory"),
    ({"AWS_BATCH_JOB_ATTEMPT": "two"}, "AWS_BATCH_JOB_ATTEMPT 'two' is not a whole number"),
    ({"AWS_BATCH_JOB_ATTEMPT": "0"}, "AWS_BATCH_JOB_ATTEMPT '0' is not a whole number >= 1"),
])
def test_bad_batch_environment(tmp_path: Path, heat_here, env: dict[str, str],
                               fragment: str) -> None:
    out = tmp_path / "out"
    result = heat_here(["--nx", "9", "--ny", "9", "--output-path", str(out)], env=env)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert not out.exists()


def test_a_second_run_into_a_finished_job_directory_is_refused(tmp_path: Path,
                                                               heat_here) -> None:
    args = ["--nx", "9", "--ny", "9", "--steps", "10", "--output-path", str(tmp_path)]
    first = heat_here(args, env={"AWS_BATCH_JOB_ID": "job"})
    assert first.returncode == 0, first.stderr
    job = tmp_path / "job"
    before = {p.name: p.read_bytes() for p in job.iterdir() if p.is_file()}
    assert set(before) == {"field.npy", "summary.json", "field.png"}
    again = heat_here([*args, "--steps", "20", "--alpha", "0.5"],
                      env={"AWS_BATCH_JOB_ID": "job"})
    assert again.returncode == 2
    errors = [line for line in again.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, again.stderr
    assert f"output directory {job} already holds the results of a run (field.npy, " \
        "summary.json, field.png)" in errors[0]
    assert {p.name: p.read_bytes() for p in job.iterdir() if p.is_file()} == before
    # a Batch retry of the job is the one writer allowed back in
    retry = heat_here(args, env={"AWS_BATCH_JOB_ID": "job", "AWS_BATCH_JOB_ATTEMPT": "2"})
    assert retry.returncode == 0, retry.stderr


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


@pytest.mark.parametrize("t_end", ["1e-18", "1e-300", "5e-324", "1e-9"])
def test_t_end_below_one_time_step_is_one_shorter_step(tmp_path: Path, heat_here,
                                                       t_end: str) -> None:
    result = heat_here(["--nx", "9", "--ny", "9", "--t-end", t_end, "--no-png",
                        "--output-path", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    summary = strict_summary(result.stdout)
    assert summary["steps"] == 1 and summary["t"] == summary["dt"] == float(t_end)
