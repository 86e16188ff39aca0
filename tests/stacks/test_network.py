"""Security-group rules, zone choice and flow-log permissions as synthesized."""

from __future__ import annotations

from tests.stacks.conftest import only, resources

RULE_TYPES = {"aws_vpc_security_group_ingress_rule": "in",
              "aws_vpc_security_group_egress_rule": "out"}


def _group_names(stack: dict) -> dict[str, str]:
    """'${aws_security_group.<id>.id}' -> the group's short label (compute, efs, endpoints)."""
    return {f"${{aws_security_group.{key}.id}}": group["name"].split("-")[-1]
            for key, group in stack["resource"]["aws_security_group"].items()}


def _rules(stack: dict) -> set[tuple]:
    groups = _group_names(stack)
    found = set()
    for type_, direction in RULE_TYPES.items():
        for rule in resources(stack, type_):
            peer = groups.get(rule.get("referenced_security_group_id")) or rule.get("cidr_ipv4")
            found.add((groups[rule["security_group_id"]], direction, rule["ip_protocol"],
                       rule.get("from_port"), rule.get("to_port"), peer))
    return found


def test_no_group_has_inline_rules_beside_rule_resources(synthesized: dict) -> None:
    # The provider: a group with inline rules must not also have rule resources, or each
    # apply revokes what the other added (EFS mounts fail in between).
    referenced = {rule["security_group_id"] for type_ in RULE_TYPES
                  for rule in resources(synthesized, type_)}
    assert referenced == set(_group_names(synthesized))  # every group is managed by rules
    for key, group in synthesized["resource"]["aws_security_group"].items():
        assert "ingress" not in group and "egress" not in group, key
    assert "aws_security_group_rule" not in synthesized["resource"]


def test_rule_set_is_self_only_plus_efs_and_https(synthesized: dict) -> None:
    assert _rules(synthesized) == {
        ("compute", "in", "-1", None, None, "compute"),
        ("compute", "out", "-1", None, None, "compute"),
        ("compute", "out", "tcp", 2049, 2049, "efs"),
        ("compute", "out", "tcp", 443, 443, "0.0.0.0/0"),
        ("efs", "in", "tcp", 2049, 2049, "compute"),
        ("endpoints", "in", "tcp", 443, 443, "compute"),
        # Staging jobs (Fargate): S3 and the APIs over HTTPS, NFS to EFS; nothing inbound.
        ("staging", "out", "tcp", 2049, 2049, "efs"),
        ("staging", "out", "tcp", 443, 443, "0.0.0.0/0"),
        ("efs", "in", "tcp", 2049, 2049, "staging"),
        ("endpoints", "in", "tcp", 443, 443, "staging"),
    }
    for rule in resources(synthesized, "aws_vpc_security_group_ingress_rule"):
        assert not rule.get("cidr_ipv4") and not rule.get("cidr_ipv6"), rule


def test_pinned_subnet_zone_comes_from_instance_type_offerings(synthesized: dict) -> None:
    offerings = only(synthesized, "aws_ec2_instance_type_offerings", "zones_", block="data")
    assert offerings["location_type"] == "availability-zone-id"
    assert offerings["filter"] == [{"name": "instance-type", "values": "${var.instance_types}"}]
    pinned = only(synthesized, "aws_subnet", "private_subnet_0")
    assert pinned["availability_zone_id"] == "${local.placement_zone_id}"
    assert "aws_ec2_instance_type_offerings.zones_offerings" in (
        synthesized["locals"]["placement_zone_candidates"])
    # The choice is kept in a terraform_data, whose checks run before the subnet exists.
    kept = only(synthesized, "terraform_data", "placement_zone")
    assert kept["lifecycle"]["ignore_changes"] == ["input"]
    assert synthesized["locals"]["placement_zone_id"] == (
        '${var.placement_zone_id != "" ? var.placement_zone_id : '
        'terraform_data.zones_placement_zone_3390851E.input}')
    no_zone, _ = kept["lifecycle"]["precondition"]
    assert '${join(", ", var.instance_types)}' in no_zone["error_message"]
    second = only(synthesized, "aws_subnet", "private_subnet_1")
    assert second["availability_zone_id"] == "${local.second_zone_id}"
    for subnet in resources(synthesized, "aws_subnet"):
        assert "availability_zone" not in subnet  # no names[0]: names differ per account


def test_flow_log_role_has_the_documented_actions_on_its_group_only(synthesized: dict) -> None:
    group_key = next(k for k in synthesized["resource"]["aws_cloudwatch_log_group"]
                     if "flow_log" in k)
    arn = f"${{aws_cloudwatch_log_group.{group_key}.arn}}"
    (statement,) = only(synthesized, "aws_iam_policy_document", "flow_log_role_policy_doc",
                        block="data")["statement"]
    assert sorted(statement["actions"]) == sorted([
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
        "logs:DescribeLogGroups", "logs:DescribeLogStreams"])
    assert statement["resources"] == [arn, f"{arn}:*"]
