"""--whole-node: vCPUs and memory from the compute environment's type, after ECS's reserve."""

from __future__ import annotations

import json

import pytest

from jobs.preflight.sizing import registered_memory
from jobs.wholenode import NodeSize, node_size, pick

SUBMIT = ["submit", "--job-name", "heat", "--nodes", "2", "--dry-run", "--no-preflight"]


def _request(result) -> dict:
    assert result.code == 0, result.err
    return json.loads(result.out)


def _resources(request: dict) -> dict[str, str]:
    override = request["nodeOverrides"]["nodePropertyOverrides"][0]["containerOverrides"]
    return {r["type"]: r["value"] for r in override["resourceRequirements"]}


def _env(request: dict) -> dict[str, str]:
    override = request["nodeOverrides"]["nodePropertyOverrides"][0]["containerOverrides"]
    return {e["name"]: e["value"] for e in override.get("environment", [])}


def test_whole_node_takes_the_types_vcpus_and_registered_memory(aws, run_main):
    request = _request(run_main(*SUBMIT, "--whole-node"))
    # c6i.2xlarge: DefaultVCpus 8, SizeInMiB 16384 (EC2 DescribeInstanceTypes)
    assert _resources(request) == {"VCPU": "8", "MEMORY": str(registered_memory(16384))}
    assert _env(request)["MNP_RANKS_PER_NODE"] == "8"  # one rank per vCPU, as with --vcpus


def test_whole_node_cores_runs_one_rank_per_physical_core(aws, run_main):
    request = _request(run_main(*SUBMIT, "--whole-node=cores"))
    assert _resources(request)["VCPU"] == "8"
    assert _env(request)["MNP_RANKS_PER_NODE"] == "4"  # DefaultCores of c6i.2xlarge


def test_instance_type_chooses_among_several(aws, run_main):
    aws.use_environment("mixed-ce", instance_types=("c6i", "m6i.4xlarge"))
    refused = run_main(*SUBMIT, "--whole-node")
    assert refused.code == 2
    assert "allows c6i, m6i.4xlarge" in refused.err and "--instance-type" in refused.err
    request = _request(run_main(*SUBMIT, "--whole-node", "--instance-type", "m6i.4xlarge"))
    assert _resources(request) == {"VCPU": "16", "MEMORY": str(registered_memory(65536))}
    request = _request(run_main(*SUBMIT, "--whole-node", "--instance-type", "c6i.4xlarge"))
    assert _resources(request)["VCPU"] == "16"  # of the allowed family c6i


@pytest.mark.parametrize(("flags", "message"), [
    (["--whole-node", "--vcpus", "4"], "--whole-node sizes the node itself: drop --vcpus"),
    (["--instance-type", "c6i.2xlarge", "--vcpus", "4", "--memory", "4096"],
     "--instance-type only says which type --whole-node sizes for"),
    (["--vcpus", "4"], "the following arguments are required: --memory (or --whole-node)"),
    (["--whole-node=cores", "--env", "MNP_RANKS_PER_NODE=2"],
     "--whole-node=cores sets MNP_RANKS_PER_NODE itself"),
    (["--whole-node", "--instance-type", "r7i.large"], "--instance-type r7i.large is not "
     "allowed in compute environment"),
    (["--whole-node=threads"], "argument --whole-node: invalid choice: 'threads'"),
])
def test_conflicting_sizing_flags_are_bad_input(aws, run_main, flags, message):
    result = run_main(*SUBMIT, *flags)
    assert result.code == 2
    assert message in result.err
    assert result.out == ""


def test_node_size_from_describe_instance_types():
    size = node_size({"InstanceType": "hpc7a.96xlarge",
                      "VCpuInfo": {"DefaultVCpus": 192, "DefaultCores": 192},
                      "MemoryInfo": {"SizeInMiB": 786432}})
    assert size == NodeSize("hpc7a.96xlarge", 192, 192, 786432)
    assert size.memory_mib == registered_memory(786432) < 786432


@pytest.mark.parametrize(("allowed", "wanted", "chosen"), [
    (["c6i.8xlarge"], None, "c6i.8xlarge"),
    (["c6i"], "c6i.8xlarge", "c6i.8xlarge"),
    (["optimal"], "m6i.large", "m6i.large"),
])
def test_pick(allowed, wanted, chosen):
    assert pick(allowed, wanted, "ce") == chosen
