"""A SubmitJob request applied to the synthesized job definition as Batch applies it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.jobdef import (
    JobDefinitionError,
    access_point_owner,
    apply_array_request,
    apply_request,
    multinode_definition,
    resource,
    spot_definition,
)
from jobs import spotgang
from jobs.request import JobSpec, submit_request

REPO = Path(__file__).resolve().parents[2]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["environment"]}


def _spec(**kw: object) -> JobSpec:
    fields = dict(name="j", queue="q", definition="d", nodes=3, vcpus=2, memory=3000,
                  output_path="/mnt/efs/runs", command=("python", "-m", "solver", "commcheck"))
    fields.update(kw)
    return JobSpec(**fields)  # type: ignore[arg-type]


def test_the_request_overrides_every_node_as_batch_does(synthesized_config: dict) -> None:
    definition = multinode_definition(synthesized_config)
    default = definition["nodeProperties"]["nodeRangeProperties"][0]["container"]
    job = apply_request(definition, submit_request(_spec(attempts=2, timeout=600)),
                        access_point_owner(synthesized_config))
    assert job.num_nodes == 3 and job.main_node == 0 and job.attempt_seconds == 600
    assert job.owner == (1000, 1000)
    for container in job.containers:
        assert container["command"] == ["python", "-m", "solver", "commcheck"]
        assert (resource(container, "VCPU"), resource(container, "MEMORY")) == (2, 3000)
        env = _env(container)
        # overridden by name, others kept from the definition
        assert env["MNP_RANKS_PER_NODE"] == "2" and env["OUTPUT_PATH"] == "/mnt/efs/runs"
        assert env["MNP_RENDEZVOUS_TIMEOUT"] == _env(default)["MNP_RENDEZVOUS_TIMEOUT"]
        assert container["user"] == default["user"]
        assert container["linuxParameters"] == default["linuxParameters"]
    assert default["command"][:4] == ["python", "-m", "solver", "heat"]  # definition untouched


def test_env_overrides_the_definitions_variables_and_the_vcpu_rank_count(
        synthesized_config: dict) -> None:
    definition = multinode_definition(synthesized_config)
    default = _env(definition["nodeProperties"]["nodeRangeProperties"][0]["container"])
    assert default["MNP_NETWORK"] == "tcp"
    spec = _spec(env={"MNP_NETWORK": "ofi-tcp", "MNP_RANKS_PER_NODE": "1"})
    for container in apply_request(definition, submit_request(spec)).containers:
        env = _env(container)
        assert env["MNP_NETWORK"] == "ofi-tcp" and env["MNP_RANKS_PER_NODE"] == "1"
        assert env["MNP_PRECHECK"] == default["MNP_PRECHECK"]  # untouched names stay


def test_a_spot_gang_request_makes_alike_children_of_the_spot_definition(
        synthesized_config: dict) -> None:
    definition = spot_definition(synthesized_config)
    # The Spot one, not the multi-node or the Fargate staging definition (stacks/scheduling.py).
    assert definition["jobDefinitionName"].endswith("-spot")
    default = definition["containerProperties"]
    spec = spotgang.gang_spec(_spec(nodes=1, single_node=True), {"MNP_GANG": "1",
                                                                  "MNP_GANG_TIMEOUT": "20"})
    job = apply_array_request(definition, spotgang.gang_request(spec, 4))
    assert job.num_nodes == 4 and job.main_node == 0
    assert job.containers[0] == job.containers[3]
    container = job.containers[0]
    assert container["command"] == ["python", "-m", "solver", "commcheck"]
    assert (resource(container, "VCPU"), resource(container, "MEMORY")) == (2, 3000)
    env = _env(container)
    assert (env["MNP_GANG"], env["MNP_GANG_TIMEOUT"], env["MNP_RANKS_PER_NODE"]) == ("1", "20", "2")
    assert env["MNP_RUN_AS"] == _env(default)["MNP_RUN_AS"]  # kept from the definition
    assert container["user"] == default["user"] and container["secrets"] == default["secrets"]


@pytest.mark.parametrize(("request_", "message"), [
    ({"containerOverrides": {}}, "arrayProperties.size None is not an array size"),
    ({"arrayProperties": {"size": 1}}, "size 1 is not an array size: 2..10000"),
    ({"arrayProperties": {"size": 2}, "nodeOverrides": {}}, "a multi-node request"),
])
def test_an_array_request_that_batch_refuses_is_refused_by_name(
        synthesized_config: dict, request_: dict, message: str) -> None:
    with pytest.raises(JobDefinitionError, match=message):
        apply_array_request(spot_definition(synthesized_config), request_)


def test_without_overrides_the_definition_runs_as_written(synthesized_config: dict) -> None:
    definition = multinode_definition(synthesized_config)
    # its retry strategy is what Batch (and run-local) applies when a request has none
    resource = next(r for r in synthesized_config["resource"]["aws_batch_job_definition"]
                    .values() if r["type"] == "multinode")
    assert definition["retryStrategy"] == {"attempts": resource["retry_strategy"]["attempts"]}
    job = apply_request(definition, {"jobName": "plain"})
    assert job.num_nodes == definition["nodeProperties"]["numNodes"]
    assert job.containers[0]["command"] == definition["nodeProperties"][
        "nodeRangeProperties"][0]["container"]["command"]


def test_requests_that_do_not_fit_are_refused(synthesized_config: dict) -> None:
    definition = multinode_definition(synthesized_config)
    with pytest.raises(JobDefinitionError, match="single-node"):
        apply_request(definition, submit_request(_spec(single_node=True, nodes=1)))
    narrow = json.loads(json.dumps(definition))
    narrow["nodeProperties"]["nodeRangeProperties"][0]["targetNodes"] = "0:1"
    with pytest.raises(JobDefinitionError, match=r"node\(s\) \[2, 3\] of 4"):
        apply_request(narrow, submit_request(_spec(nodes=4)))
    with pytest.raises(JobDefinitionError, match="0 multi-node job definitions"):
        multinode_definition({"resource": {}})
    template = {"resource": {"aws_batch_job_definition": {"d": {
        "type": "multinode", "node_properties": '{"devices": ${jsonencode(local.other)}}'}}}}
    with pytest.raises(JobDefinitionError, match="a Terraform template run-local cannot render"):
        multinode_definition(template)


@pytest.mark.parametrize(("enabled", "network"), [(True, "efa"), (False, "tcp")])
def test_an_efa_stacks_definition_renders_as_plan_would_without_devices(
        enabled: bool, network: str) -> None:
    props = ('{"numNodes": 2, "nodeRangeProperties": [{"targetNodes": "0:", "container": {'
             '"environment": [%{ if var.enable_efa }{"name": "MNP_NETWORK", "value": "efa"}, '
             '{"name": "MNP_PRECHECK", "value": "1"}%{ else }{"name": "MNP_NETWORK", '
             '"value": "tcp"}%{ endif }], "linuxParameters": {"devices": '
             '${jsonencode(local.efa_devices)}}}}]}')
    config = {"variable": {"enable_efa": {"default": enabled}},
              "resource": {"aws_batch_job_definition": {"d": {
                  "type": "multinode", "node_properties": props}}}}
    container = multinode_definition(config)["nodeProperties"]["nodeRangeProperties"][0][
        "container"]
    assert container["environment"][0] == {"name": "MNP_NETWORK", "value": network}
    assert len(container["environment"]) == (2 if enabled else 1)
    assert container["linuxParameters"]["devices"] == []


def test_run_local_without_a_synthesized_stack_says_to_synth(tmp_path: Path) -> None:
    (tmp_path / "cdktf.json").write_text("{}")
    run = subprocess.run([sys.executable, "-m", "jobs", "run-local", "--nodes", "2", "--vcpus",
                          "1", "--memory", "1024", "--", "true"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "run `make synth` first" in run.stderr, run.stderr
