"""The compliance switch as synthesized: off by default, every part counted, nothing public."""

from __future__ import annotations

import json

import pytest

from stacks.compliance import MANAGED_RULES, TCP_ONLY_RULES
from stacks.config import ConfigError, StackSettings
from tests.stacks.conftest import only, resources

ON = "${var.enable_compliance ? 1 : 0}"
RECORDER_ON = '${var.enable_compliance && var.config_recorder == "create" ? 1 : 0}'
KEY_ARN = "${aws_kms_key.encryption_key_EEB70057.arn}"
# Every resource type of the switch and the count it carries.
COUNTED = {"aws_s3_bucket": ON, "aws_s3_bucket_public_access_block": ON,
           "aws_s3_bucket_ownership_controls": ON, "aws_s3_bucket_versioning": ON,
           "aws_s3_bucket_server_side_encryption_configuration": ON,
           "aws_s3_bucket_lifecycle_configuration": ON, "aws_s3_bucket_policy": ON,
           "aws_cloudtrail": ON, "aws_config_config_rule": ON,
           "aws_config_configuration_recorder": RECORDER_ON,
           "aws_config_delivery_channel": RECORDER_ON,
           "aws_config_configuration_recorder_status": RECORDER_ON}


def _rules(stack: dict) -> set[str]:
    return {r["source"]["source_identifier"] for r in resources(stack, "aws_config_config_rule")}


@pytest.mark.parametrize(("raw", "expected"), [({}, False), ({"ENABLE_COMPLIANCE": "1"}, True),
                                               ({"ENABLE_COMPLIANCE": "off"}, False)])
def test_enable_compliance_env_sets_the_default(raw: dict[str, str], expected: bool) -> None:
    settings = StackSettings.from_env({**raw, "AWS_REGION": "us-east-1"})
    assert settings.enable_compliance is expected


def test_bad_enable_compliance_is_named() -> None:
    with pytest.raises(ConfigError, match="ENABLE_COMPLIANCE='maybe' is not allowed"):
        StackSettings.from_env({"ENABLE_COMPLIANCE": "maybe", "AWS_REGION": "us-east-1"})


def test_switch_is_off_by_default_and_counts_every_part(synthesized: dict) -> None:
    variables = synthesized["variable"]
    assert (variables["enable_compliance"]["type"], variables["enable_compliance"]["default"]) == (
        "bool", False)
    assert variables["config_recorder"]["default"] == "create"
    for type_, count in COUNTED.items():
        found = [r for key, r in synthesized["resource"][type_].items()
                 if key.startswith("compliance_")]
        assert found and all(r["count"] == count for r in found), type_
    config_roles = [r for r in resources(synthesized, "aws_iam_role")
                    if "config.amazonaws.com" in r["assume_role_policy"]]
    assert [r["count"] for r in config_roles] == [RECORDER_ON]


def test_trail_is_validated_encrypted_and_covers_every_region(synthesized: dict) -> None:
    trail = only(synthesized, "aws_cloudtrail")
    assert trail["enable_log_file_validation"] is True
    assert trail["is_multi_region_trail"] is True and trail["include_global_service_events"]
    assert trail["kms_key_id"] == KEY_ARN
    key_policy = json.loads(only(synthesized, "aws_kms_key")["policy"])
    sids = {s["Sid"]: s for s in key_policy["Statement"]}
    assert sids["CloudTrailEncryptLogs"]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}


def test_bucket_is_encrypted_private_and_tls_only(synthesized: dict) -> None:
    block = only(synthesized, "aws_s3_bucket_public_access_block", "compliance")
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy",
                                          "ignore_public_acls", "restrict_public_buckets"))
    (rule,) = only(synthesized, "aws_s3_bucket_server_side_encryption_configuration",
                    "compliance")["rule"]
    assert rule["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "aws:kms", "kms_master_key_id": KEY_ARN}
    ownership = only(synthesized, "aws_s3_bucket_ownership_controls", "compliance")["rule"]
    assert ownership["object_ownership"] == "BucketOwnerEnforced"  # no ACLs at all
    policy = json.loads(only(synthesized, "aws_s3_bucket_policy", "compliance")["policy"])
    (deny,) = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert all(s["Principal"] != "*" for s in policy["Statement"] if s["Effect"] == "Allow")


def test_managed_rules_follow_what_the_stack_deploys(synthesized: dict,
                                                     synthesized_efa: dict) -> None:
    assert _rules(synthesized) == set(MANAGED_RULES) | set(TCP_ONLY_RULES)
    # On an EFA stack the default group carries the task interfaces' rules by design.
    assert _rules(synthesized_efa) == set(MANAGED_RULES)
    for rule in resources(synthesized, "aws_config_config_rule"):
        assert rule["source"]["owner"] == "AWS"
        assert rule["name"].startswith("${var.cluster_name}-")
