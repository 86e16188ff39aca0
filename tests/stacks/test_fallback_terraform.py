"""Fallback capacity under a real terraform CLI, on made-up lookups and offerings: the controller's
queue list, the zone each fallback takes, and the plan-time checks."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from continuation.decide import QueueSpec
from continuation.handler import QUEUES_ENV, queues_from_env
from jobs.preflight.sizing import registered_memory
from stacks.config import NodeDefaults
from stacks.fallback import SPECS_LOCAL, SUBNETS_LOCAL
from tests.stacks.catalog import CATALOG, lookups_local
from tests.stacks.conftest import TERRAFORM, only, run_terraform

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    TERRAFORM is None, reason="no terraform CLI installed: install Terraform >= 1.11 to run these")]

PINNED, SECOND = "use1-az1", "use1-az2"
# (type, zone id) offerings: m5.large in both zones, c6i.2xlarge only in the pinned one,
# c5n.18xlarge only in the second; hpc7a.96xlarge nowhere.
OFFERINGS = {"locations": [PINNED, SECOND, PINNED, SECOND],
             "instance_types": ["m5.large", "m5.large", "c6i.2xlarge", "c5n.18xlarge"]}


def _swap(text: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():
        text = re.sub(old, new, text)
    return text


def _config(stack: dict) -> dict:
    """The fallback locals, the controller's queue list as an output, and the fallback
    environment's preconditions on a terraform_data per type; AWS answers made up."""
    address, lookups = lookups_local(stack, "fallback_instance_types")
    queue = only(stack, "aws_batch_job_queue", "fallback_job_queue")
    swaps = {
        re.escape(address): "local.lookups",
        r"data\.aws_ec2_instance_type_offerings\.fallback_offerings_\w+\[0\]": "local.offerings",
        r"aws_batch_job_queue\.fallback_job_queue_\w+": "local.queues",
        r"aws_subnet\.network_private_subnet_0_\w+\.id": '"pinned-subnet"',
        r"aws_subnet\.network_private_subnet_1_\w+\.id": '"second-subnet"',
        r"aws_batch_job_queue\.scheduling_job_queue_\w+\.name": '"primary"',
    }
    function = only(stack, "aws_lambda_function", "continuation_function")
    environment = only(stack, "aws_batch_compute_environment", "fallback_compute_environment")
    name = queue["name"].replace("each.key", "t")
    return {
        "variable": {v: stack["variable"][v] for v in
                     ("fallback_instance_types", "cluster_name", "max_vcpus")},
        "locals": {
            "catalog": CATALOG, "lookups": lookups, "offerings": OFFERINGS,
            "placement_zone_id": PINNED, "second_zone_id": SECOND,
            "queues": f"${{{{for t in var.fallback_instance_types : t => {{name = \"{name}\"}}}}}}",
            **{n: _swap(stack["locals"][n], swaps) for n in (SPECS_LOCAL, SUBNETS_LOCAL)}},
        "output": {
            "queues": {"value": _swap(function["environment"]["variables"][QUEUES_ENV], swaps)},
            "subnets": {"value": f"${{local.{SUBNETS_LOCAL}}}"}},
        # terraform_data is built in: plan needs no provider download.
        "resource": {"terraform_data": {"environment": {
            "for_each": environment["for_each"], "input": "${each.key}",
            "lifecycle": {"precondition": json.loads(_swap(json.dumps(
                environment["lifecycle"]["precondition"]), swaps))}}}},
    }


@pytest.fixture(scope="module")
def workdir(synthesized: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fallback")
    (work / "main.tf.json").write_text(json.dumps(_config(synthesized)))
    proc = run_terraform(work, "init", "-input=false")
    assert proc.returncode == 0, proc.stderr
    return work


def _apply(work: Path, types: list[str], max_vcpus: int = 512) -> subprocess.CompletedProcess:
    return run_terraform(work, "apply", "-auto-approve", "-input=false", "-no-color",
                         "-lock=false", f"-var=fallback_instance_types={json.dumps(types)}",
                         f"-var=max_vcpus={max_vcpus}", "-var=cluster_name=hpc")


def _output(work: Path, output: str) -> object:
    proc = run_terraform(work, "output", "-json", output)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_controller_queues_are_the_primary_then_each_fallback_in_order(workdir: Path) -> None:
    types = ["c5n.18xlarge", "m5.large"]
    proc = _apply(workdir, types)
    assert proc.returncode == 0, proc.stderr
    parsed = queues_from_env({QUEUES_ENV: _output(workdir, "queues")})
    node = NodeDefaults()
    # A whole node of each type: its vCPUs as ranks and vCPUs, its memory after ECS's share as
    # --whole-node sizes it (the one rule in jobs/preflight/sizing.py).
    assert parsed == [QueueSpec("primary", node.vcpus, node.vcpus, node.memory_mib),
                      *(QueueSpec(f"hpc-mpi_{t.replace('.', '-')}", CATALOG[t]["default_vcpus"],
                                  CATALOG[t]["default_vcpus"],
                                  registered_memory(CATALOG[t]["memory_size"])) for t in types)]


def test_no_fallbacks_leave_the_primary_alone(workdir: Path) -> None:
    proc = _apply(workdir, [])
    assert proc.returncode == 0, proc.stderr
    assert [q.name for q in queues_from_env({QUEUES_ENV: _output(workdir, "queues")})] == [
        "primary"]


def test_a_fallback_takes_the_second_zone_when_it_offers_the_type(workdir: Path) -> None:
    proc = _apply(workdir, ["m5.large", "c6i.2xlarge", "c5n.18xlarge"])
    assert proc.returncode == 0, proc.stderr
    assert _output(workdir, "subnets") == {"m5.large": "second-subnet",
                                           "c6i.2xlarge": "pinned-subnet",
                                           "c5n.18xlarge": "second-subnet"}


def test_a_type_neither_zone_offers_is_refused_by_name(workdir: Path) -> None:
    proc = _apply(workdir, ["m5.large", "hpc7a.96xlarge"], max_vcpus=1024)
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert (f"fallback_instance_types: hpc7a.96xlarge is offered in neither of the stack's "
            f"zones ({PINNED}, {SECOND})") in message


def test_max_vcpus_must_hold_two_nodes_of_each_fallback(workdir: Path) -> None:
    # Batch never exceeds maxvCpus by more than one instance: 100 < 2 x 72.
    proc = _apply(workdir, ["c5n.18xlarge"], max_vcpus=100)
    assert proc.returncode != 0
    assert "max_vcpus = 100 holds fewer than 2 nodes of c5n.18xlarge" in " ".join(
        proc.stderr.split())
