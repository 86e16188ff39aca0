"""Bad input: one clear error, exit code 2, nothing left in the output path."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpi4py import MPI

from solver.heat import run


def _params(tmp_path: Path, text: str) -> str:
    d = tmp_path / "in"
    d.mkdir()
    (d / "params.json").write_text(text)
    return str(d)


CASES = [
    (lambda t: ["--nx", "-3"], "nx must be at least 3"),
    (lambda t: ["--colour", "red"], "unrecognized arguments: --colour"),
    (lambda t: ["--steps", "many"], "argument --steps: invalid int value"),
    (lambda t: ["--steps", "-1"], "steps must be >= 0"),
    (lambda t: ["--t-end", "-1"], "t_end must be a positive number"),
    (lambda t: ["--nx", "17", "--ny", "17", "--dt", "0.5"], "dt 0.5 is unstable"),
    (lambda t: ["--input-path", str(t / "missing")], "is not a readable directory"),
    (lambda t: ["--input-path", _params(t, '{"nx": 9, "shape": 1}')], "unknown option(s) shape"),
    (lambda t: ["--input-path", _params(t, "{oops")], "cannot read"),
    (lambda t: ["--restart-from", str(t)], "no valid checkpoint there"),
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
