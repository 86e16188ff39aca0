"""The EFA stack's own expressions under a real terraform CLI, on made-up instance-type lookups.

The AWS provider cannot be downloaded here, so the `aws_ec2_instance_type` lookups become a
local with the same for_each keys, the launch template a `terraform_data` carrying its real
precondition, and the job definition's text an output that terraform renders.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.stacks.catalog import CATALOG, lookups_local
from tests.stacks.conftest import MNP_TEMPLATE, REPO, TERRAFORM, only, run_terraform

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    TERRAFORM is None, reason="no terraform CLI installed: install Terraform >= 1.11 to run these")]

# Every reference terraform cannot resolve without the provider (not the EFA devices local).
UNRESOLVED = re.compile(r"\$\{(?!jsonencode\(local\.efa_devices\))[^}]*\}")
# A group reference inside an expression, and the made-up id it becomes here.
GROUP_REF = re.compile(r"aws_security_group\.(\w+)\.id")


def _config(stack: dict) -> dict:
    """The stack's EFA variables, locals, launch-template check and job-definition text."""
    address, lookups = lookups_local(stack)
    locals_ = {name: value.replace(address, "local.lookups")
               for name, value in stack["locals"].items() if name.startswith("efa_")}
    template = only(stack, "aws_launch_template", MNP_TEMPLATE)
    definition = only(stack, "aws_batch_job_definition", "scheduling_job_definition")
    return {
        "variable": {name: stack["variable"][name] for name in ("enable_efa", "instance_types")},
        "locals": {**locals_, "catalog": CATALOG, "lookups": lookups},
        # terraform_data is built in: plan needs no provider download.
        "resource": {"terraform_data": {"launch_template": {
            "input": "${local.efa_network_interfaces}", "lifecycle": template["lifecycle"]}}},
        "output": {"interfaces": {"value": "${local.efa_network_interfaces}"},
                   **{f"default_{direction}": {"value": GROUP_REF.sub(
                       r'"sg-\1"', only(stack, "aws_default_security_group")[direction])}
                      for direction in ("ingress", "egress")},
                   "node_properties": {
                       "value": UNRESOLVED.sub("x", definition["node_properties"])}},
    }


@pytest.fixture(scope="module")
def workdir(synthesized_efa: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("efa")
    (work / "main.tf.json").write_text(json.dumps(_config(synthesized_efa)))
    proc = run_terraform(work, "init", "-input=false")
    assert proc.returncode == 0, proc.stderr
    return work


def _outputs(work: Path, types: list[str], enable: bool = True) -> dict:
    """terraform apply (of terraform_data only) with these variables, then its outputs."""
    proc = run_terraform(work, "apply", "-auto-approve", "-input=false", "-no-color",
                         "-lock=false", f"-var=instance_types={json.dumps(types)}",
                         f"-var=enable_efa={str(enable).lower()}")
    assert proc.returncode == 0, proc.stderr
    out = run_terraform(work, "output", "-json", timeout=60)
    return {name: value["value"] for name, value in json.loads(out.stdout).items()}


def _container(outputs: dict) -> dict:
    props = json.loads(outputs["node_properties"])  # rendered text is plain JSON again
    model = botocore.session.get_session().get_service_model("batch")
    report = ParamValidator().validate(props, model.shape_for("NodeProperties"))
    assert not report.has_errors(), report.generate_report()
    return props["nodeRangeProperties"][0]["container"]


def test_one_card_type_gets_one_efa_and_uverbs0(workdir: Path) -> None:
    outputs = _outputs(workdir, ["c5n.18xlarge"])
    assert outputs["interfaces"] == [{"network_card_index": 0, "device_index": 0}]
    container = _container(outputs)
    assert container["linuxParameters"]["devices"] == [
        {"hostPath": "/dev/infiniband/uverbs0", "containerPath": "/dev/infiniband/uverbs0",
         "permissions": ["READ", "WRITE", "MKNOD"]}]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert (env["MNP_NETWORK"], env["FI_PROVIDER"], env["OMPI_MCA_pml"], env["OMPI_MCA_mtl"]) == (
        "efa", "efa", "cm", "ofi")
    assert env["MNP_PRECHECK"] == "1"  # the network self-check runs before every EFA attempt
    assert len(container["environment"]) == len(env)  # one MNP_NETWORK, no tcp left over
    assert {"name": "memlock", "softLimit": -1, "hardLimit": -1} in container["ulimits"]


def test_several_cards_one_efa_each_and_the_smallest_type_decides(workdir: Path) -> None:
    outputs = _outputs(workdir, ["p5.48xlarge", "hpc7a.96xlarge"])
    assert outputs["interfaces"] == [{"network_card_index": 0, "device_index": 0},
                                     {"network_card_index": 1, "device_index": 1}]
    assert [d["hostPath"] for d in _container(outputs)["linuxParameters"]["devices"]] == [
        "/dev/infiniband/uverbs0", "/dev/infiniband/uverbs1"]
    interfaces = _outputs(workdir, ["p5.48xlarge"])["interfaces"]
    assert [i["network_card_index"] for i in interfaces] == list(range(32))
    assert [i["device_index"] for i in interfaces] == [0] + [1] * 31


def test_types_without_efa_fail_at_plan_naming_only_them(workdir: Path) -> None:
    proc = _plan(workdir, ["c6i.2xlarge", "c5n.18xlarge", "m5.large"])
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert "Resource precondition failed" in message
    assert ("enable_efa is true but instance_types [c6i.2xlarge, m5.large] do not support "
            "EFA") in message


def _plan(work: Path, types: list[str]) -> subprocess.CompletedProcess:
    return run_terraform(work, "plan", "-input=false", "-no-color", "-lock=false",
                         f"-var=instance_types={json.dumps(types)}")


def test_type_without_room_for_the_task_interface_fails_at_plan_naming_it(
        workdir: Path) -> None:
    # issue 20: card 0 holds the EFA and the node's awsvpc task interface.
    proc = _plan(workdir, ["c5n.18xlarge", "efa1.crowded"])
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert ("enable_efa is true but instance_types [efa1.crowded] have no room on network card "
            "0 for the node's task interface beside the EFA") in message
    assert _plan(workdir, ["c5n.18xlarge", "p5.48xlarge"]).returncode == 0


def test_enable_efa_false_gives_the_tcp_definition(workdir: Path) -> None:
    outputs = _outputs(workdir, ["c6i.2xlarge"], enable=False)
    assert outputs["interfaces"] == []
    container = _container(outputs)
    assert container["linuxParameters"]["devices"] == []
    env = [e for e in container["environment"] if e["name"].startswith(("MNP_NETWORK", "FI_",
                                                                       "OMPI_"))]
    assert env == [{"name": "MNP_NETWORK", "value": "tcp"}]
    assert {"name": "MNP_PRECHECK", "value": "0"} in container["environment"]


def _compute_rules(stack: dict, direction: str) -> list[dict]:
    """The compute group's rule resources in the inline form of the default group's rules."""
    group = "${aws_security_group.network_compute_sg_62EBFF7D.id}"
    out = []
    for rule in stack["resource"][f"aws_vpc_security_group_{direction}_rule"].values():
        if rule["security_group_id"] != group:
            continue
        peer = rule.get("referenced_security_group_id")
        peer_id = GROUP_REF.search(peer).group(1) if peer else None
        out.append({"description": rule["description"], "protocol": rule["ip_protocol"],
                    "from_port": rule.get("from_port", 0), "to_port": rule.get("to_port", 0),
                    "self": peer == group,
                    "security_groups": [f"sg-{peer_id}"] if peer and peer != group else [],
                    "cidr_blocks": [rule["cidr_ipv4"]] if "cidr_ipv4" in rule else [],
                    "ipv6_cidr_blocks": [], "prefix_list_ids": []})
    return sorted(out, key=json.dumps)


def test_default_group_gets_exactly_the_compute_rules_when_on(workdir: Path,
                                                              synthesized_efa: dict) -> None:
    # MNP task interfaces of an EFA environment are in the VPC's default group (Batch mnp-ce).
    outputs = _outputs(workdir, ["c5n.18xlarge"])
    for direction in ("ingress", "egress"):
        assert sorted(outputs[f"default_{direction}"], key=json.dumps) == _compute_rules(
            synthesized_efa, direction)
    off = _outputs(workdir, ["c6i.2xlarge"], enable=False)
    assert (off["default_ingress"], off["default_egress"]) == ([], [])


def test_the_tcp_example_on_an_efa_stack_stops_at_plan(workdir: Path) -> None:
    # issue 20: it said enable_efa = false, so the EFA recipe quietly planned TCP on c6i.
    proc = run_terraform(workdir, "plan", "-input=false", "-no-color", "-lock=false",
                         f"-var-file={REPO / 'terraform.tfvars.example'}")
    assert proc.returncode != 0
    assert ("enable_efa is true but instance_types [c6i.2xlarge] do not support EFA"
            in " ".join(proc.stderr.split()))
    proc = run_terraform(workdir, "plan", "-input=false", "-no-color", "-lock=false",
                         f"-var-file={REPO / 'terraform.tfvars.efa.example'}")
    assert proc.returncode == 0, proc.stderr
