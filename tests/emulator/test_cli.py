"""`python -m emulator`'s command line, checked before any namespace is made (no root needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.launcher.test_package import REPO


@pytest.mark.parametrize(("args", "named"), [
    (["--node", "2", "--", "true"], "unrecognized arguments: --node"),  # not --nodes
    (["--rank", "2", "--", "true"], "unrecognized arguments: --rank"),  # not --ranks-per-node
    (["--", "mpirun", "-np", "2", "hostname"], "the job's command starts with 'mpirun'"),
    (["--", "srun", "hostname"], "the job's command starts with 'srun'"),
])
def test_usage_mistakes_are_one_error_line(args: list[str], named: str) -> None:
    run = subprocess.run([sys.executable, "-m", "emulator", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and named in errors[0], run.stderr
