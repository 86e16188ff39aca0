"""The CLI as a tool: --version, no abbreviations, the `--` hint, no MPI inside MPI, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jobs import __version__
from jobs.cli import main
from tests.jobs.moto_env import REPO
from tests.jobs.test_cancel_list_scale import submit_raw
from tests.jobs.test_logs import job_with_logs

JOB = ["--job-name", "heat", "--nodes", "2", "--vcpus", "4", "--memory", "4096"]
TAKERS = {"submit": JOB, "preflight": JOB, "scale-test": JOB[2:], "run-local": JOB[2:]}


def _no_aws():  # bad input must be refused before any client exists
    raise AssertionError("an AWS client was made")


def _bad(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run; expect exit 2 with nothing on stdout; return the last stderr line."""
    code = main(list(argv), api_factory=_no_aws)
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, ""), captured.err
    return captured.err.splitlines()[-1]


def test_version() -> None:
    run = subprocess.run([sys.executable, "-m", "jobs", "--version"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (run.returncode, run.stdout) == (0, f"python -m jobs {__version__}\n")


def test_the_installed_console_script_runs_outside_the_checkout(tmp_path) -> None:
    # `make install` installs the project editable with pyproject's package list: a package the
    # CLI imports but the list lacks is found only from the checkout (it broke `mnp` once).
    mnp = os.path.join(os.path.dirname(sys.executable), "mnp")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([mnp, "--version"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=env)
    assert (run.returncode, run.stdout) == (0, f"mnp {__version__}\n"), run.stderr


@pytest.mark.parametrize(("argv", "meant"), [
    (["submit", *JOB, "--attempt", "2"], "--attempts"),
    (["submit", *JOB, "--no-prefligt"], "--no-preflight"),
    (["run-local", *JOB[2:], "--attempt", "2"], "--first-attempt"),
    (["status", "abc", "--jsn"], "--json"),
    (["logs", "abc", "--folow"], "--follow"),
])
def test_an_abbreviated_or_misspelt_flag_is_refused_naming_the_flag_meant(
        capsys: pytest.CaptureFixture[str], argv: list[str], meant: str) -> None:
    line = _bad(capsys, *argv)
    assert "unrecognized arguments" in line and meant in line.split("did you mean")[1]


@pytest.mark.parametrize("command", sorted(TAKERS))
def test_a_job_command_without_the_separator_gets_the_hint(
        capsys: pytest.CaptureFixture[str], command: str) -> None:
    line = _bad(capsys, command, *TAKERS[command], "lmp", "-in", "in.lj")
    assert line.startswith(f"mnp {command}: error: unrecognized arguments: lmp -in in.lj")
    assert "goes after '--'" in line and line.endswith("... -- lmp -in in.lj)")


@pytest.mark.parametrize("command", sorted(TAKERS))
@pytest.mark.parametrize("starter", ["mpirun -np 16 lmp", "mpiexec -n 2 hostname",
                                     "srun hostname", "/opt/mpi/bin/mpirun.openmpi hostname"])
def test_a_job_command_that_starts_mpi_itself_is_refused(
        capsys: pytest.CaptureFixture[str], command: str, starter: str) -> None:
    line = _bad(capsys, command, *TAKERS[command], "--dry-run", "--", *starter.split())
    name = starter.split()[0].rpartition("/")[2]
    assert line == (f"mnp {command}: error: the job's command starts with {name!r}, but "
                    f"mnp-launch already runs it under mpiexec on every node: drop {name!r} "
                    "and its options and give the program itself (ranks per node come from "
                    "MNP_RANKS_PER_NODE)")


@pytest.mark.parametrize("flag", ["--dry-run", "--no-preflight", "--wait", "--interval=5",
                                  "--max-wait=60"])
def test_preflight_accepts_submit_flags_its_help_does_not_list(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path,
        flag: str) -> None:
    monkeypatch.chdir(tmp_path)  # no stack outputs here: the queue is what is missing
    assert main(["preflight", "--help"]) == 0
    listed = capsys.readouterr().out.split("show tracebacks")[0]  # usage and options, no epilog
    assert flag.partition("=")[0] not in listed
    # parsing gets past the flag: what stops it is the missing queue, not the flag
    assert "no job queue name" in _bad(capsys, "preflight", *JOB, flag)


def test_cancel_json(aws, run_main) -> None:
    job_id = submit_raw(aws, status="RUNNABLE")
    result = run_main("cancel", job_id, "--reason", "wrong grid", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"jobId": job_id, "previousStatus": "RUNNABLE",
                                      "terminated": True, "reason": "wrong grid"}


def test_cancel_json_of_a_finished_job(aws, run_main) -> None:
    job_id = submit_raw(aws, status="SUCCEEDED")
    result = run_main("cancel", job_id, "--json")
    assert json.loads(result.out) == {"jobId": job_id, "previousStatus": "SUCCEEDED",
                                      "terminated": False, "reason": None}


@pytest.mark.parametrize(("status", "code"), [("SUCCEEDED", 0), ("FAILED", 1)])
def test_watch_json(aws, run_main, status: str, code: int) -> None:
    job_id = submit_raw(aws, status=status)
    result = run_main("watch", job_id, "--json", "--interval", "0.1")
    assert result.code == code
    (line,) = result.out.splitlines()
    found = json.loads(line)
    assert (found["jobId"], found["status"]) == (job_id, status)
    assert set(found) == {"jobId", "status", "exitCode", "seconds", "statusReason"}


def test_logs_json_names_each_node_and_keeps_the_text(aws, run_main) -> None:
    job_id, _ = job_with_logs(aws)
    result = run_main("logs", job_id, "--json")
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [(r["jobId"], r["message"]) for r in rows] == [
        (f"{job_id}#{i}", f"node {i} line {n}") for i in range(2) for n in range(3)]
    assert all(isinstance(r["timestamp"], int) for r in rows)


@pytest.mark.parametrize(("line", "offered"), [
    ("mnp sub", ["submit "]),
    ("mnp submit --att", ["--attempts "]),
    ("mnp list --status RUNN", ["RUNNABLE", "RUNNING"]),
    ("mnp preflight --job-name x --dry", []),  # accepted there, but not offered
])
def test_shell_completion(tmp_path, line: str, offered: list[str]) -> None:
    pytest.importorskip("argcomplete", reason="completion is optional: argcomplete not installed")
    out = tmp_path / "completions"
    env = {**os.environ, "PYTHONPATH": str(REPO), "_ARGCOMPLETE": "1", "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    run = subprocess.run([sys.executable, "-m", "jobs"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert sorted(w for w in out.read_text().split("\v") if w) == offered


def test_a_python_without_the_dependencies_gets_one_line_naming_the_way_out() -> None:
    # -S: no site-packages, so neither boto3 nor rich, as with a system python3
    run = subprocess.run([sys.executable, "-S", "-m", "jobs", "--help"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (run.returncode, run.stdout) == (2, "")
    (line,) = run.stderr.splitlines()
    assert "has no 'boto3'" in line and ".venv/bin/mnp" in line
