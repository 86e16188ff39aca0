"""--help texts are part of the interface: snapshotted, changes reviewed on purpose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.jobs.moto_env import REPO

COMMANDS = ["submit", "preflight", "status", "watch", "logs", "fetch", "cancel", "list",
            "scale-test", "run-local"]


def _help(*argv: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_top_level_help(snapshot):
    assert _help(sys.executable, "-m", "jobs", "--help") == snapshot


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(snapshot, command):
    assert _help(sys.executable, "-m", "jobs", command, "--help") == snapshot


def test_script_help(snapshot):
    assert _help(str(REPO / "submit-scientific-job.sh"), "--help") == snapshot
