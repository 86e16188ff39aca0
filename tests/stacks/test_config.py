"""Synth-time settings: environment variables set defaults; bad values are refused clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from subprocess import Popen

import pytest

from stacks.config import ConfigError, StackSettings
from tests.stacks.conftest import ENTRY_POINT_ENV

REPO = Path(__file__).resolve().parents[2]


def test_environment_sets_every_default() -> None:
    settings = StackSettings.from_env({
        "AWS_REGION": "eu-west-1", "CLUSTER_NAME": "cfd-team",
        "INSTANCE_TYPES": "c5n.18xlarge, hpc6a.48xlarge",
        "EFS_THROUGHPUT_MODE": "provisioned", "EFS_PROVISIONED_THROUGHPUT": "256",
        "MAX_VCPUS": "1024"})
    assert settings == StackSettings(
        region="eu-west-1", cluster_name="cfd-team", vpc_cidr=StackSettings().vpc_cidr,
        instance_types=("c5n.18xlarge", "hpc6a.48xlarge"), max_vcpus=1024,
        efs_throughput_mode="provisioned", efs_provisioned_throughput=256)


def test_empty_environment_keeps_documented_defaults() -> None:
    assert StackSettings.from_env({}) == StackSettings()


@pytest.mark.parametrize(("env", "fragment"), [
    ({"CLUSTER_NAME": "My_Cluster"}, "CLUSTER_NAME='My_Cluster' is not allowed: 1-32 lowercase"),
    ({"CLUSTER_NAME": "x" * 33}, "1-32 lowercase letters"),
    ({"CLUSTER_NAME": ""}, "CLUSTER_NAME=''"),
    ({"INSTANCE_TYPES": ""}, "INSTANCE_TYPES is empty"),
    ({"INSTANCE_TYPES": "c6i.2xlarge,huge"}, "INSTANCE_TYPES='huge' is not allowed"),
    ({"MAX_VCPUS": "0"}, "MAX_VCPUS=0 is not allowed: a whole number greater than 0"),
    ({"MAX_VCPUS": "lots"}, "MAX_VCPUS='lots' is not allowed"),
    ({"EFS_THROUGHPUT_MODE": "max"},
     "EFS_THROUGHPUT_MODE='max' is not allowed: one of bursting, provisioned, elastic"),
    ({"EFS_PROVISIONED_THROUGHPUT": "5000"},
     "EFS_PROVISIONED_THROUGHPUT=5000 is not allowed: a whole number of MiB/s from 1 to 3414"),
    ({"EFS_PROVISIONED_THROUGHPUT": "1.5"}, "EFS_PROVISIONED_THROUGHPUT='1.5' is not allowed"),
    ({"AWS_REGION": "mars"}, "AWS_REGION='mars' is not allowed: an AWS region"),
])
def test_bad_environment_value_is_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        StackSettings.from_env(env)
    assert fragment in str(err.value)


def test_synth_refuses_bad_env_before_writing(tmp_path: Path) -> None:
    env = {**os.environ, "MAX_VCPUS": "-4", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "main.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: MAX_VCPUS=-4 is not allowed: a whole number greater than 0"]
    assert list(tmp_path.iterdir()) == []


def test_synth_entry_point_writes_the_stack(entry_point: tuple[Path, Popen[str]]) -> None:
    cwd, proc = entry_point
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    stack = json.loads((cwd / "cdktf.out/stacks/mnp-batch/cdk.tf.json").read_text())
    assert stack["variable"]["cluster_name"]["default"] == ENTRY_POINT_ENV["CLUSTER_NAME"]
    assert stack["variable"]["instance_types"]["default"] == [ENTRY_POINT_ENV["INSTANCE_TYPES"]]
    assert "aws_batch_job_definition" in stack["resource"]
