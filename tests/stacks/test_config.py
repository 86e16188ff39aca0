"""Synth-time settings: environment variables set defaults; bad values are refused clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from subprocess import Popen

import pytest

from stacks.config import ConfigError, PlatformConfig, RemoteState, StackSettings
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


def test_environment_without_settings_keeps_documented_defaults() -> None:
    assert StackSettings.from_env({"AWS_REGION": "us-east-1"}) == StackSettings()


@pytest.mark.parametrize(("env", "config", "region", "source"), [
    ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}, "", "eu-west-1",
     "AWS_REGION"),
    ({"AWS_DEFAULT_REGION": "us-west-2"}, "[default]\nregion = ap-south-1\n", "us-west-2",
     "AWS_DEFAULT_REGION"),
    ({}, "[default]\nregion = ap-south-1\n", "ap-south-1", "profile 'default' in {path}"),
    ({"AWS_PROFILE": "hpc"}, "[default]\nregion = ap-south-1\n[profile hpc]\n"
     "region = eu-central-1\n", "eu-central-1", "profile 'hpc' in {path}"),
    ({"AWS_DEFAULT_PROFILE": "hpc"}, "[profile hpc]\nregion = sa-east-1\n", "sa-east-1",
     "profile 'hpc' in {path}"),
])
def test_region_is_taken_where_the_aws_sdk_looks(tmp_path: Path, env: dict[str, str],
                                                 config: str, region: str, source: str) -> None:
    # issue 20: synth used us-east-1 when AWS_REGION was unset, the jobs CLI the profile's region
    path = tmp_path / "config"
    path.write_text(config)
    settings = StackSettings.from_env({**env, "AWS_CONFIG_FILE": str(path)})
    assert (settings.region, settings.region_source) == (region, source.format(path=path))


@pytest.mark.parametrize(("env", "config", "fragment"), [
    ({}, None, "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or a region in the "
               "profile 'default' of {path}"),
    ({"AWS_PROFILE": "hpc"}, "[default]\nregion = ap-south-1\n",
     "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or a region in the profile 'hpc'"),
    ({}, "[default]\nregion = mars\n",
     "region of profile 'default' in {path}='mars' is not allowed: 'mars' is not an AWS region"),
    ({"AWS_DEFAULT_REGION": ""}, None, "AWS_DEFAULT_REGION='' is not allowed"),
])
def test_no_or_bad_region_is_refused(tmp_path: Path, env: dict[str, str], config: str | None,
                                     fragment: str) -> None:
    path = tmp_path / "config"
    if config is not None:
        path.write_text(config)
    with pytest.raises(ConfigError) as err:
        StackSettings.from_env({**env, "AWS_CONFIG_FILE": str(path)})
    assert fragment.format(path=path) in str(err.value)


@pytest.mark.parametrize(("env", "fragment"), [
    ({"CLUSTER_NAME": "My_Cluster"}, "CLUSTER_NAME='My_Cluster' is not allowed: 1-32 lowercase"),
    ({"CLUSTER_NAME": "x" * 33}, "1-32 lowercase letters"),
    ({"CLUSTER_NAME": ""}, "CLUSTER_NAME=''"),
    ({"INSTANCE_TYPES": ""}, "INSTANCE_TYPES is empty"),
    ({"INSTANCE_TYPES": "c6i.2xlarge,huge"}, "INSTANCE_TYPES='huge' is not allowed"),
    ({"MAX_VCPUS": "0"}, "MAX_VCPUS=0 is not allowed: a whole number from 1 to 896000"),
    ({"MAX_VCPUS": "lots"}, "MAX_VCPUS='lots' is not allowed"),
    # issue 16: what AWS refuses later, or what overflowed, is refused at synth
    ({"MAX_VCPUS": "99999999999999999999999999"}, "is not allowed: a whole number from 1 to"),
    ({"MAX_VCPUS": "896001"}, "MAX_VCPUS=896001 is not allowed"),
    ({"MAX_VCPUS": "inf"}, "MAX_VCPUS='inf' is not allowed"),
    ({"MAX_VCPUS": "1e400"}, "MAX_VCPUS='1e400' is not allowed"),
    ({"MAX_VCPUS": "\u0668"}, "MAX_VCPUS='\u0668' is not allowed"),
    ({"MAX_VCPUS": "\uff18"}, "MAX_VCPUS='\uff18' is not allowed"),
    ({"MAX_VCPUS": "1_000"}, "MAX_VCPUS='1_000' is not allowed"),
    ({"MAX_VCPUS": "+8"}, "MAX_VCPUS='+8' is not allowed"),
    ({"MAX_VCPUS": " 64"}, "MAX_VCPUS=' 64' is not allowed"),
    ({"EFS_PROVISIONED_THROUGHPUT": "\u0661\u0660"}, "EFS_PROVISIONED_THROUGHPUT='"),
    ({"CLUSTER_NAME": "-abc"}, "CLUSTER_NAME='-abc' is not allowed: 1-32 lowercase letters, "
                               "digits or hyphens, starting and ending with a letter or digit"),
    ({"CLUSTER_NAME": "-"}, "CLUSTER_NAME='-' is not allowed"),
    ({"CLUSTER_NAME": "abc-"}, "CLUSTER_NAME='abc-' is not allowed"),
    ({"CLUSTER_NAME": "mnp\n"}, "CLUSTER_NAME='mnp\\n' is not allowed"),
    ({"CLUSTER_NAME": "Mnp"}, "CLUSTER_NAME='Mnp' is not allowed"),
    # issue 20: security group names may not start with sg-; plan used to be the first to say so
    ({"CLUSTER_NAME": "sg-team"}, "CLUSTER_NAME='sg-team' is not allowed: 1-32 lowercase "
                                  "letters, digits or hyphens, starting and ending with a letter "
                                  "or digit, not starting with 'sg-'"),
    ({"AWS_REGION": ""}, "AWS_REGION='' is not allowed: '' is not an AWS region known to"),
    ({"AWS_REGION": "xx-fake-9"}, "AWS_REGION='xx-fake-9' is not allowed: 'xx-fake-9' is not "
                                  "an AWS region known to botocore"),
    ({"AWS_REGION": "us-fake-1"}, "AWS_REGION='us-fake-1' is not allowed"),
    ({"AWS_REGION": "us-east-1\n"}, "is not allowed"),
    ({"AWS_REGION": "aws-global"}, "AWS_REGION='aws-global' is not allowed"),
    ({"EFS_THROUGHPUT_MODE": "max"},
     "EFS_THROUGHPUT_MODE='max' is not allowed: one of bursting, provisioned, elastic"),
    ({"EFS_PROVISIONED_THROUGHPUT": "5000"},
     "EFS_PROVISIONED_THROUGHPUT=5000 is not allowed: a whole number of MiB/s from 1 to 3414"),
    ({"EFS_PROVISIONED_THROUGHPUT": "1.5"}, "EFS_PROVISIONED_THROUGHPUT='1.5' is not allowed"),
    ({"AWS_REGION": "mars"}, "AWS_REGION='mars' is not allowed: 'mars' is not an AWS region"),
])
def test_bad_environment_value_is_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        StackSettings.from_env(env)
    assert fragment in str(err.value)


@pytest.mark.parametrize(("bad", "line"), [
    ({"MAX_VCPUS": "-4"}, "error: MAX_VCPUS=-4 is not allowed: a whole number from 1 to 896000"),
    ({"ENABLE_EFA": "maybe"},
     "error: ENABLE_EFA='maybe' is not allowed: true or false (also 1/0, yes/no, on/off)"),
])
def test_synth_refuses_bad_env_before_writing(tmp_path: Path, bad: dict[str, str],
                                              line: str) -> None:
    env = {**os.environ, "AWS_REGION": "us-east-1", **bad, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "main.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [line]
    assert list(tmp_path.iterdir()) == []


def test_synth_entry_point_writes_the_stack(entry_point: tuple[Path, Popen[str]]) -> None:
    cwd, proc = entry_point
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    stack = json.loads((cwd / "cdktf.out/stacks/mnp-batch/cdk.tf.json").read_text())
    assert stack["variable"]["cluster_name"]["default"] == ENTRY_POINT_ENV["CLUSTER_NAME"]
    assert stack["variable"]["instance_types"]["default"] == [ENTRY_POINT_ENV["INSTANCE_TYPES"]]
    assert "aws_batch_job_definition" in stack["resource"]
    # One line says which region synth took, and from where (the provider gets it).
    assert out.splitlines()[0] == "region eu-north-1 (from AWS_DEFAULT_REGION)"
    assert stack["provider"]["aws"] == [{"region": "eu-north-1"}]
    # issue 20: an older Terraform met parser errors; now one version line (a file of its own:
    # checkov's parser stops on required_version in cdk.tf.json).
    versions = json.loads((cwd / "cdktf.out/stacks/mnp-batch/versions.tf.json").read_text())
    assert versions == {"terraform": {"required_version": ">= 1.11"}}
    assert "required_version" not in stack["terraform"]


def test_state_bucket_switches_on_s3_state_with_defaults() -> None:
    config = PlatformConfig.from_env({"STATE_BUCKET": "acme-tfstate", "CLUSTER_NAME": "cfd",
                                      "AWS_REGION": "eu-west-1"})
    assert config.state == RemoteState(bucket="acme-tfstate",
                                       key="mnp-batch/cfd/terraform.tfstate", region="eu-west-1")
    assert PlatformConfig.from_env({"AWS_REGION": "eu-west-1"}).state is None


def test_state_key_and_region_are_taken_as_given() -> None:
    state = PlatformConfig.from_env({"STATE_BUCKET": "acme.tf-state", "STATE_KEY": "hpc/a.tfstate",
                                     "STATE_REGION": "us-west-2", "AWS_REGION": "eu-west-1"}).state
    assert (state.key, state.region) == ("hpc/a.tfstate", "us-west-2")


@pytest.mark.parametrize(("env", "fragment"), [
    ({"STATE_KEY": "x.tfstate"},
     "STATE_KEY='x.tfstate' is set but STATE_BUCKET is not: set STATE_BUCKET for state in S3, "
     "or unset STATE_KEY for local state"),
    ({"STATE_REGION": "eu-west-1", "STATE_KEY": "k"}, "unset STATE_KEY and STATE_REGION"),
    ({"STATE_BUCKET": "Bad_Bucket"}, "STATE_BUCKET='Bad_Bucket' is not allowed: an S3 bucket"),
    ({"STATE_BUCKET": "ab"}, "STATE_BUCKET='ab' is not allowed"),
    ({"STATE_BUCKET": "a..b"}, "STATE_BUCKET='a..b' is not allowed"),
    ({"STATE_BUCKET": "xn--bucket"}, "STATE_BUCKET='xn--bucket' is not allowed"),
    ({"STATE_BUCKET": "192.168.1.1"}, "STATE_BUCKET='192.168.1.1' is not allowed: an S3 bucket "
     "name, 3-63 lowercase letters, digits, dots or hyphens, not an IP address"),
    ({"STATE_BUCKET": "bucket-s3alias"}, "STATE_BUCKET='bucket-s3alias' is not allowed"),
    ({"STATE_BUCKET": "sthree-x"}, "not starting xn--/sthree-/amzn-s3-demo-"),
    ({"STATE_BUCKET": "b--x-s3"}, "nor ending -s3alias/--ol-s3/.mrap/--x-s3/--table-s3"),
    ({"STATE_BUCKET": "acme", "STATE_KEY": "/abs"}, "STATE_KEY='/abs' is not allowed"),
    ({"STATE_BUCKET": "acme", "STATE_REGION": "moon"},
     "STATE_REGION='moon' is not allowed: 'moon' is not an AWS region known to botocore"),
])
def test_bad_or_half_given_state_setting_is_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        PlatformConfig.from_env({"AWS_REGION": "us-east-1", **env})
    assert fragment in str(err.value)


def test_synth_refuses_half_given_state_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATE_")}
    env.update({"STATE_KEY": "a.tfstate", "AWS_REGION": "us-east-1", "PYTHONPATH": str(REPO)})
    proc = subprocess.run([sys.executable, str(REPO / "main.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: STATE_KEY='a.tfstate' is set but STATE_BUCKET is not")
    assert list(tmp_path.iterdir()) == []
