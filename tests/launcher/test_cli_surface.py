"""mnp-launch's command line: --version, no option abbreviations, no MPI inside MPI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from launcher import __version__
from launcher.inputs import mpi_starter
from tests.launcher.test_package import REPO

# One node of a Batch job: enough for the launcher to get past its environment checks.
NODE_ENV = {"AWS_BATCH_JOB_ID": "cli-test", "AWS_BATCH_JOB_NUM_NODES": "1",
            "AWS_BATCH_JOB_NODE_INDEX": "0", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0"}


def _launch(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **NODE_ENV, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "launcher", *argv], capture_output=True,
                          text=True, env=env, timeout=60)


def test_version_names_the_package_version() -> None:
    run = _launch("--version")
    assert (run.returncode, run.stdout) == (0, f"mnp-launch {__version__}\n")


@pytest.mark.parametrize("argv", [
    ["mpiexec", "-n", "2", "hostname"],
    ["mpirun", "-np", "16", "lmp"],
    ["--", "/usr/bin/mpirun.openmpi", "hostname"],
    ["srun", "hostname"],
    ["mpiexec.hydra", "-n", "2", "true"],
])
def test_a_command_that_starts_mpi_itself_is_refused_before_anything_starts(
        argv: list[str]) -> None:
    run = _launch(*argv)
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.splitlines()  # one line, nothing started (no launcher log lines)
    assert f"starts with {mpi_starter([a for a in argv if a != '--'])!r}" in line


@pytest.mark.parametrize("command", [["mpi4py-bench"], ["mpirun_wrapper.sh"], ["python"],
                                     ["./srun-like"], ["hydrate"]])
def test_programs_that_only_look_alike_are_not_starters(command: list[str]) -> None:
    assert mpi_starter(command) is None


def test_an_abbreviated_option_is_not_taken_for_the_long_one() -> None:
    run = _launch("--rendezvous", "5", "true")
    assert run.returncode == 2
    assert "unrecognized arguments: --rendezvous" in run.stderr
