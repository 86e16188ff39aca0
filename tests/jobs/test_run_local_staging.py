"""run-local's staging flags, refused before anything is read or started (exit 2, one line
naming the value): the staging itself runs in tests/emulator/test_staging.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BASE = ["run-local", "--nodes", "2", "--vcpus", "1", "--memory", "1024"]


@pytest.mark.parametrize(("args", "named"), [
    (["--stage-in", "/mnt/efs/input"], "'/mnt/efs/input' is not an S3 location"),
    (["--stage-out", "s3://My_Bucket/out"], "'My_Bucket' is not a bucket name"),
    (["--stage-in", "s3://data/a/../b"], "'.' and '..' are not allowed in the prefix"),
    (["--stage-in", "s3://data/in", "--s3-endpoint", "mnp-s3:5000"],
     "'mnp-s3:5000' is not an endpoint URL"),
    (["--stage-out", "s3://data/out"], "--stage-in/--stage-out in run-local need an S3 "
     "emulator: give --s3-endpoint URL (or AWS_ENDPOINT_URL)"),
])
def test_bad_staging_flags_exit_2_naming_the_value(args: list[str], named: str,
                                                   tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "jobs", *BASE, *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert named in " ".join(run.stderr.split()), run.stderr
