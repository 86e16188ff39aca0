"""The max_vcpus check under a real terraform CLI, on made-up instance-type lookups."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.stacks.catalog import CATALOG, lookups_local
from tests.stacks.conftest import REPO, TERRAFORM, only, run_terraform

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    TERRAFORM is None, reason="no terraform CLI installed: install Terraform >= 1.11 to run these")]

CAPACITY_LOCALS = ("instance_vcpus", "largest_instance_type")


def _config(stack: dict) -> dict:
    """The capacity locals and the multi-node environment's precondition on a terraform_data."""
    address, lookups = lookups_local(stack)
    locals_ = {name: stack["locals"][name].replace(address, "local.lookups")
               for name in CAPACITY_LOCALS}
    environment = only(stack, "aws_batch_compute_environment", "compute_compute_environment")
    return {
        "variable": {name: stack["variable"][name] for name in ("instance_types", "max_vcpus")},
        "locals": {**locals_, "catalog": CATALOG, "lookups": lookups},
        # terraform_data is built in: plan needs no provider download.
        "resource": {"terraform_data": {"environment": {
            "input": "${var.max_vcpus}",
            "lifecycle": {"precondition": environment["lifecycle"]["precondition"]}}}},
    }


@pytest.fixture(scope="module")
def workdir(synthesized: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("capacity")
    (work / "main.tf.json").write_text(json.dumps(_config(synthesized)))
    proc = run_terraform(work, "init", "-input=false")
    assert proc.returncode == 0, proc.stderr
    return work


def _plan(work: Path, types: list[str], max_vcpus: int) -> subprocess.CompletedProcess:
    return run_terraform(work, "plan", "-input=false", "-no-color", "-lock=false",
                         f"-var=instance_types={json.dumps(types)}", f"-var=max_vcpus={max_vcpus}")


@pytest.mark.parametrize(("types", "max_vcpus", "ok"), [
    (["c6i.2xlarge"], 64, True),  # the example: 8 nodes of 8 vCPUs
    (["c6i.2xlarge"], 16, True),  # exactly two nodes
    (["c6i.2xlarge"], 15, False),
    (["c5n.18xlarge"], 144, True),
    (["c5n.18xlarge", "c6i.2xlarge"], 143, False),  # the largest type decides
    (["m5.large", "hpc7a.96xlarge"], 384, True),
])
def test_max_vcpus_must_hold_two_nodes_of_the_largest_type(workdir: Path, types: list[str],
                                                           max_vcpus: int, ok: bool) -> None:
    proc = _plan(workdir, types, max_vcpus)
    assert (proc.returncode == 0) is ok, proc.stderr


def test_the_efa_recipe_with_the_tcp_example_max_vcpus_fails_naming_the_fix(
        workdir: Path) -> None:
    # issue 20: 64 with c5n.18xlarge (72 vCPUs) left a 2-node job RUNNABLE until cancelled.
    proc = _plan(workdir, ["c5n.18xlarge"], 64)
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert ("max_vcpus = 64 holds fewer than 2 nodes of c5n.18xlarge (72 vCPUs each): Batch "
            "never exceeds max_vcpus by more than one instance") in message
    assert "Set max_vcpus to at least 144" in message


@pytest.mark.parametrize("example", ["terraform.tfvars.example", "terraform.tfvars.efa.example"])
def test_both_examples_hold_two_nodes(workdir: Path, example: str) -> None:
    proc = run_terraform(workdir, "plan", "-input=false", "-no-color", "-lock=false",
                         f"-var-file={REPO / example}")
    assert proc.returncode == 0, proc.stderr
