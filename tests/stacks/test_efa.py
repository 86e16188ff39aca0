"""The EFA switch as synthesized: what ENABLE_EFA=1 adds; without it nothing EFA is left."""

from __future__ import annotations

import json

import pytest

from stacks.config import ConfigError, StackSettings
from tests.stacks.conftest import MNP_TEMPLATE, only, resources

GROUP = "${aws_security_group.network_compute_sg_62EBFF7D.id}"
DEFAULT_GROUP = "${aws_default_security_group.network_default_sg_929C0F94.id}"
EFS_GROUP = "${aws_security_group.network_efs_sg_FD841704.id}"
ENDPOINT_GROUP = "${aws_security_group.network_endpoint_sg_D586E475.id}"
EFA_LOCALS = ("efa_interface_count", "efa_network_interfaces", "efa_devices",
              "efa_unsupported_types", "efa_crowded_types")


def _environments(stack: dict) -> dict[str, list[dict]]:
    """Each job definition's environment list, from the JSON text (EFA off only)."""
    out = {}
    for key, definition in stack["resource"]["aws_batch_job_definition"].items():
        text = definition.get("node_properties") or definition["container_properties"]
        props = json.loads(text)
        container = (props["nodeRangeProperties"][0]["container"] if "nodeRangeProperties" in props
                     else props)
        out[key] = container["environment"]
    return out


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("Yes", True), ("on", True),
    ("0", False), ("false", False), ("NO", False), ("off", False)])
def test_enable_efa_env_sets_the_default(raw: str, expected: bool) -> None:
    settings = StackSettings.from_env({"ENABLE_EFA": raw, "AWS_REGION": "us-east-1"})
    assert settings.enable_efa is expected


@pytest.mark.parametrize("raw", ["maybe", "", "2", "enabled"])
def test_bad_enable_efa_is_named(raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        StackSettings.from_env({"ENABLE_EFA": raw, "AWS_REGION": "us-east-1"})
    assert str(err.value) == (f"ENABLE_EFA={raw!r} is not allowed: true or false "
                              "(also 1/0, yes/no, on/off)")


def _ec2_environments(stack: dict) -> list[dict]:
    """The multi-node and Spot environments (the staging one is Fargate: no EFA, own group)."""
    return [ce for ce in resources(stack, "aws_batch_compute_environment")
            if ce["compute_resources"]["type"] != "FARGATE"]


def test_efa_off_leaves_nothing_efa_and_sets_tcp(synthesized: dict) -> None:
    assert not set(EFA_LOCALS) & set(synthesized["locals"])
    template = only(synthesized, "aws_launch_template", MNP_TEMPLATE)
    assert "dynamic" not in template and "network_interfaces" not in template
    assert "lifecycle" not in template
    for ce in _ec2_environments(synthesized):
        assert ce["compute_resources"]["security_group_ids"] == [GROUP]
    # Task interfaces use the environment's group: the VPC's default group stays empty.
    assert set(only(synthesized, "aws_default_security_group")) == {"vpc_id", "tags"}
    assert not [r for r in resources(synthesized, "aws_vpc_security_group_ingress_rule")
                if r.get("referenced_security_group_id") == DEFAULT_GROUP]
    for key, env in _environments(synthesized).items():
        by_name = {e["name"]: e["value"] for e in env}
        assert by_name["MNP_NETWORK"] == "tcp", key
        assert not {"FI_PROVIDER", "OMPI_MCA_pml", "OMPI_MCA_mtl"} & set(by_name), key
        # The network self-check is off on TCP; single-node jobs (Spot, staging) have nothing
        # to check.
        single = "spot" in key or "staging" in key
        assert by_name.get("MNP_PRECHECK") == (None if single else "0"), key
    definition = only(synthesized, "aws_batch_job_definition", "scheduling_job_definition")
    container = json.loads(definition["node_properties"])["nodeRangeProperties"][0]["container"]
    assert "devices" not in container["linuxParameters"]


def test_efa_off_stack_refuses_enable_efa_true(synthesized: dict) -> None:
    variable = synthesized["variable"]["enable_efa"]
    assert variable["type"] == "bool" and variable["default"] is False
    (rule,) = variable["validation"]
    assert rule["condition"] == "${!var.enable_efa}"
    assert "ENABLE_EFA=1 make synth" in rule["error_message"]


def test_efa_on_defaults_the_variable_true_without_a_guard(synthesized_efa: dict) -> None:
    variable = synthesized_efa["variable"]["enable_efa"]
    assert variable["default"] is True and "validation" not in variable


@pytest.mark.parametrize("stack_fixture", ["synthesized", "synthesized_efa"])
def test_every_instance_type_is_looked_up(stack_fixture: str,
                                          request: pytest.FixtureRequest) -> None:
    # Both stacks: the max_vcpus check needs each type's vCPUs.
    stack = request.getfixturevalue(stack_fixture)
    lookup = only(stack, "aws_ec2_instance_type", "instance_types_", block="data")
    assert lookup["for_each"] == "${toset(var.instance_types)}"
    assert lookup["instance_type"] == "${each.key}"
    assert "default_vcpus" in stack["locals"]["instance_vcpus"]


def test_efa_locals_follow_the_switch(synthesized_efa: dict) -> None:
    locals_ = synthesized_efa["locals"]
    assert set(EFA_LOCALS) <= set(locals_)
    for attribute in ("efa_maximum_interfaces", "maximum_network_cards"):
        assert attribute in locals_["efa_interface_count"]
    assert locals_["efa_interface_count"].startswith("${var.enable_efa ? ")
    assert "efa_supported" in locals_["efa_unsupported_types"]
    assert "network_cards" in locals_["efa_crowded_types"]


def test_launch_template_gets_efa_interfaces_with_the_group(synthesized_efa: dict) -> None:
    template = only(synthesized_efa, "aws_launch_template", MNP_TEMPLATE)
    block = template["dynamic"]["network_interfaces"]
    assert block["for_each"] == "${local.efa_network_interfaces}"
    assert block["content"] == {
        "network_card_index": "${network_interfaces.value.network_card_index}",
        "device_index": "${network_interfaces.value.device_index}",
        "interface_type": "efa", "security_groups": [GROUP], "delete_on_termination": "true"}
    lacking, crowded = template["lifecycle"]["precondition"]
    assert lacking["condition"] == "${length(local.efa_unsupported_types) == 0}"
    assert '${join(", ", local.efa_unsupported_types)}' in lacking["error_message"]
    assert crowded["condition"] == "${length(local.efa_crowded_types) == 0}"
    assert '${join(", ", local.efa_crowded_types)}' in crowded["error_message"]
    # Everything else of the template is as without EFA.
    assert template["user_data"] and template["metadata_options"]["http_tokens"] == "required"


def test_task_interfaces_get_the_compute_rules_through_the_default_group(
        synthesized_efa: dict) -> None:
    # Batch refuses environment groups beside launch-template interfaces, so they go...
    for ce in _ec2_environments(synthesized_efa):
        assert ce["compute_resources"]["security_group_ids"] == (
            f"${{var.enable_efa ? null : [{GROUP[2:-1]}]}}")
    # ...and then "If you don't specify a security group, the default security group for the
    # VPC is used" for the interfaces Batch attaches to MNP tasks (batch/latest/userguide/
    # mnp-ce.html): that group carries the compute rules (inline: the provider's
    # aws_default_security_group takes no rule resources) and EFS and the endpoints admit it.
    default = only(synthesized_efa, "aws_default_security_group")
    for direction in ("ingress", "egress"):
        assert default[direction].startswith("${var.enable_efa ? [{")
        assert default[direction].endswith("] : []}")
    admitted = {(r["security_group_id"], r["ip_protocol"], r["from_port"], r["to_port"])
                for r in resources(synthesized_efa, "aws_vpc_security_group_ingress_rule")
                if r.get("referenced_security_group_id") == DEFAULT_GROUP
                and r["count"] == "${var.enable_efa ? 1 : 0}"}
    assert admitted == {(EFS_GROUP, "tcp", 2049, 2049), (ENDPOINT_GROUP, "tcp", 443, 443)}
    # No rule resource points at the default group itself (it would be revoked each apply).
    for kind in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"):
        assert all(r["security_group_id"] != DEFAULT_GROUP for r in resources(synthesized_efa,
                                                                             kind))


def test_self_referencing_egress_is_there_for_efa(synthesized_efa: dict) -> None:
    egress = [r for r in resources(synthesized_efa, "aws_vpc_security_group_egress_rule")
              if r["security_group_id"] == GROUP and r.get("referenced_security_group_id") == GROUP]
    assert len(egress) == 1
    assert egress[0]["ip_protocol"] == "-1" and "from_port" not in egress[0]
    assert "aws_security_group_rule" not in synthesized_efa["resource"]


def test_multinode_definition_carries_devices_and_fabric_choice(synthesized_efa: dict) -> None:
    text = only(synthesized_efa, "aws_batch_job_definition",
                "scheduling_job_definition")["node_properties"]
    assert '"devices": ${jsonencode(local.efa_devices)}' in text
    assert ('%{ if var.enable_efa }{"name": "MNP_NETWORK", "value": "efa"}, '
            '{"name": "FI_PROVIDER", "value": "efa"}') in text
    assert ('{"name": "OMPI_MCA_mtl_ofi_provider_include", "value": "efa"}, '
            '{"name": "MNP_PRECHECK", "value": "1"}%{ else }') in text
    assert ('%{ else }{"name": "MNP_NETWORK", "value": "tcp"}, '
            '{"name": "MNP_PRECHECK", "value": "0"}%{ endif }') in text
    assert '{"name": "memlock", "softLimit": -1, "hardLimit": -1}' in text


def test_single_node_spot_definition_stays_tcp(synthesized_efa: dict) -> None:
    props = json.loads(only(synthesized_efa, "aws_batch_job_definition", "spot")
                       ["container_properties"])
    assert {"name": "MNP_NETWORK", "value": "tcp"} in props["environment"]
    assert "devices" not in props["linuxParameters"]
