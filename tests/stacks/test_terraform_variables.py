"""The synthesized variable blocks under a real terraform CLI (no AWS provider needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from main import VERSIONS_FILE
from stacks.config import TERRAFORM_REQUIRED_VERSION
from stacks.variables import EFA_NOT_SYNTHESIZED
from tests.stacks.conftest import REPO, TERRAFORM, run_terraform

EXAMPLES = (REPO / "terraform.tfvars.example", REPO / "terraform.tfvars.efa.example")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    TERRAFORM is None, reason="no terraform CLI installed: install Terraform >= 1.11 to run these")]


@pytest.fixture(scope="module")
def workdir(synthesized: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the variables: terraform init and plan then need no provider download."""
    work = tmp_path_factory.mktemp("tfvars")
    (work / "variables.tf.json").write_text(json.dumps({"variable": synthesized["variable"]}))
    # main.py's version file too: the Terraform the tests run must satisfy it.
    (work / VERSIONS_FILE).write_text(json.dumps(
        {"terraform": {"required_version": TERRAFORM_REQUIRED_VERSION}}))
    run_terraform(work, "init", "-input=false", "-backend=false")
    return work


def _plan(work: Path, *args: str) -> subprocess.CompletedProcess:
    return run_terraform(work, "plan", "-input=false", "-lock=false", "-no-color",
                      f"-var-file={REPO / 'terraform.tfvars.example'}", *args)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_tfvars_lists_every_variable(example: Path, synthesized: dict) -> None:
    text = f"\n{example.read_text()}"
    for var_name in synthesized["variable"]:
        # enable_efa may be left to the stack's default (a comment then shows it).
        assert f"\n{var_name} " in text or f"\n# {var_name} " in text, (
            f"{var_name} missing from {example.name}")


def test_example_tfvars_passes(workdir: Path) -> None:
    proc = _plan(workdir)
    assert proc.returncode == 0, proc.stderr
    assert "No changes" in proc.stdout


def test_efa_example_on_a_tcp_stack_says_to_synthesize_for_efa(workdir: Path) -> None:
    proc = run_terraform(workdir, "plan", "-input=false", "-lock=false", "-no-color",
                         f"-var-file={EXAMPLES[1]}")
    assert proc.returncode != 0
    assert EFA_NOT_SYNTHESIZED.split(":")[0] in " ".join(proc.stderr.split())


def test_good_fallback_list_passes(workdir: Path) -> None:
    proc = _plan(workdir, '-var=fallback_instance_types=["c6i.4xlarge","c5.2xlarge"]')
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("assignment", [
    "data_bucket_name=my-team-data", "data_bucket_name=data.example.org",
    "data_input_prefix=projects/cfd/in/", "data_output_prefix=results_2026/(v1)/"])
def test_good_data_values_pass(workdir: Path, assignment: str) -> None:
    proc = _plan(workdir, f"-var={assignment}")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("assignment", "message"), [
    ('cluster_name=Bad_Name', "cluster_name must be 1-32 lowercase letters"),
    ('cluster_name=-abc', "starting and ending with a letter or digit"),
    ('cluster_name=-', "starting and ending with a letter or digit"),
    ('cluster_name=abc-', "starting and ending with a letter or digit"),
    ('cluster_name=' + 'x' * 33, "cluster_name must be 1-32 lowercase letters"),
    ('cluster_name=sg-team', "not starting with 'sg-'"),
    ('placement_zone_id=us-east-1a', 'placement_zone_id must be "" or an availability zone id'),
    ('vpc_cidr=10.0.0.0/8', "vpc_cidr must be an IPv4 network address"),
    ('vpc_cidr=10.0.0.1/16', "vpc_cidr must be an IPv4 network address"),
    ('vpc_cidr=not-a-cidr', "vpc_cidr must be an IPv4 network address"),
    ('instance_types=[]', "instance_types must be a non-empty list"),
    ('instance_types=["bogus"]', "instance_types must be a non-empty list"),
    ('fallback_instance_types=["c6i.4xlarge","C5.Large"]',
     'fallback_instance_types must list distinct EC2 instance types such as ["c6i.4xlarge"] '
     "(pattern ^[a-z][a-z0-9-]*\\.[a-z0-9-]+$); not allowed: [C5.Large]."),
    ('fallback_instance_types=["c6i.4xlarge","c5.2xlarge","c6i.4xlarge"]',
     "fallback_instance_types must list distinct EC2 instance types such as "
     '["c6i.4xlarge"] (pattern ^[a-z][a-z0-9-]*\\.[a-z0-9-]+$); not allowed: [c6i.4xlarge].'),
    ('max_vcpus=0', "max_vcpus must be a whole number from 1 to 896000"),
    ('max_vcpus=2.5', "max_vcpus must be a whole number from 1 to 896000"),
    ('max_vcpus=1e26', "max_vcpus must be a whole number from 1 to 896000"),
    ('max_vcpus=896001', "max_vcpus must be a whole number from 1 to 896000"),
    ('efs_throughput_mode=turbo', "efs_throughput_mode must be one of"),
    ('efs_provisioned_throughput=4000', "efs_provisioned_throughput must be from 1 to 3414"),
    ('image_tag=-bad', "image_tag must be 1-128 letters"),
    ('config_recorder=mine', 'config_recorder must be one of "create", "existing"'),
    ('alarm_email=nobody', "alarm_email must be empty or an email address"),
    ('data_bucket_name=My_Bucket', 'data_bucket_name must be "" (create one) or an S3 bucket'),
    ('data_bucket_name=my..bucket', 'data_bucket_name must be "" (create one) or an S3 bucket'),
    ('data_input_prefix=input', "data_input_prefix must be one or more folders"),
    ('data_input_prefix=/input/', "data_input_prefix must be one or more folders"),
    ('data_input_prefix=in//put/', "data_input_prefix must be one or more folders"),
    ('data_output_prefix=out*/', "data_output_prefix must be one or more folders"),
    ('data_output_prefix=', "data_output_prefix must be one or more folders"),
    ('enable_efa=true', "enable_efa = true needs a stack synthesized for EFA: run ENABLE_EFA=1 "
                        "make synth"),
])
def test_bad_value_fails_with_its_own_message(workdir: Path, assignment: str,
                                              message: str) -> None:
    proc = _plan(workdir, f"-var={assignment}")
    assert proc.returncode != 0
    assert message in " ".join(proc.stderr.split())
