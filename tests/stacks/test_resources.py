"""Behaviour of the synthesized stack: security, capacity, scheduling, monitoring."""

from __future__ import annotations

import json

import cdktf
from cdktf_cdktf_provider_aws.batch_compute_environment import BatchComputeEnvironment
from cdktf_cdktf_provider_aws.ecr_repository import EcrRepository

from stacks.config import NodeDefaults
from tests.stacks.conftest import MNP_TEMPLATE, only, resources, synth_stack

VARIABLES = ("cluster_name", "vpc_cidr", "instance_types", "max_vcpus", "efs_throughput_mode",
             "efs_provisioned_throughput")
CLI_OUTPUTS = ("job_queue_name", "job_queue_arn", "job_definition_name", "job_definition_arn",
               "max_vcpus", "ecr_repository_url", "image_tag", "efs_file_system_id",
               "efs_access_point_id", "efs_mount_path", "log_group_name", "dashboard_url",
               "region", "spot_job_queue_name", "spot_job_definition_name")


def test_every_variable_is_typed_described_and_validated(synthesized: dict) -> None:
    declared = synthesized["variable"]
    assert set(VARIABLES) <= set(declared)
    for var_name in VARIABLES:
        spec = declared[var_name]
        assert spec["type"] and spec["description"]
        (rule,) = spec["validation"]
        assert f"var.{var_name}" in rule["condition"] and rule["error_message"]


def test_environment_changes_variable_defaults_and_region() -> None:
    stack = synth_stack({"AWS_REGION": "eu-central-1", "CLUSTER_NAME": "cfd",
                         "INSTANCE_TYPES": "c5n.18xlarge", "MAX_VCPUS": "720",
                         "EFS_THROUGHPUT_MODE": "provisioned",
                         "EFS_PROVISIONED_THROUGHPUT": "128"})
    defaults = {k: v["default"] for k, v in stack["variable"].items()}
    assert defaults["cluster_name"] == "cfd"
    assert defaults["instance_types"] == ["c5n.18xlarge"]
    assert defaults["max_vcpus"] == 720
    assert defaults["efs_throughput_mode"] == "provisioned"
    assert defaults["efs_provisioned_throughput"] == 128
    assert stack["provider"]["aws"][0]["region"] == "eu-central-1"


def test_names_derive_from_cluster_name(synthesized: dict) -> None:
    queue = only(synthesized, "aws_batch_job_queue", "scheduling_job_queue")
    assert queue["name"] == "${var.cluster_name}-mpi"


def test_efs_encrypted_and_tls_only(synthesized: dict) -> None:
    fs = only(synthesized, "aws_efs_file_system")
    assert fs["encrypted"] is True and fs["kms_key_id"].startswith("${aws_kms_key.")
    assert "var.efs_throughput_mode == \"provisioned\"" in fs["provisioned_throughput_in_mibps"]
    policy = only(synthesized, "aws_iam_policy_document", "file_system_policy", block="data")
    deny = next(s for s in policy["statement"] if s.get("effect") == "Deny")
    assert deny["condition"] == [{"test": "Bool", "variable": "aws:SecureTransport",
                                  "values": ["false"]}]
    ap = only(synthesized, "aws_efs_access_point")
    assert ap["posix_user"] == {"uid": 1000, "gid": 1000}
    assert len(resources(synthesized, "aws_efs_mount_target")) == 2


def test_job_mounts_efs_with_tls_iam_and_access_point(synthesized: dict) -> None:
    container = _node_container(synthesized)
    volume = container["volumes"][0]["efsVolumeConfiguration"]
    assert volume["transitEncryption"] == "ENABLED"
    assert volume["authorizationConfig"]["iam"] == "ENABLED"
    assert volume["authorizationConfig"]["accessPointId"].startswith("${aws_efs_access_point.")
    assert container["mountPoints"][0]["containerPath"] == "/mnt/efs"


def test_ecr_immutable_and_scanned(synthesized: dict) -> None:
    assert cdktf.Testing.to_have_resource_with_properties(
        json.dumps(synthesized), EcrRepository.TF_RESOURCE_TYPE,
        {"image_tag_mutability": "IMMUTABLE", "image_scanning_configuration":
         {"scan_on_push": True}, "force_delete": True})


def test_mnp_compute_environment_is_on_demand_single_az(synthesized: dict) -> None:
    assert cdktf.Testing.to_have_resource_with_properties(
        json.dumps(synthesized), BatchComputeEnvironment.TF_RESOURCE_TYPE,
        {"compute_resources": {"type": "EC2", "min_vcpus": 0, "max_vcpus": "${var.max_vcpus}"}})
    ce = only(synthesized, "aws_batch_compute_environment", "compute_compute_environment")
    resources_ = ce["compute_resources"]
    assert resources_["type"] not in ("SPOT", "FARGATE", "FARGATE_SPOT")
    assert len(resources_["subnets"]) == 1
    assert resources_["subnets"][0] == "${aws_subnet.network_private_subnet_0_D39C5390.id}"
    assert resources_["placement_group"].startswith("${aws_placement_group.")
    assert ce["type"] == "MANAGED"


def test_spot_queue_is_off_by_default_and_single_node(synthesized: dict) -> None:
    spot_ce = only(synthesized, "aws_batch_compute_environment", "spot")
    assert spot_ce["count"] == "${var.enable_spot_queue ? 1 : 0}"
    assert spot_ce["compute_resources"]["type"] == "SPOT"
    assert synthesized["variable"]["enable_spot_queue"]["default"] is False
    definition = only(synthesized, "aws_batch_job_definition", "spot")
    assert definition["type"] == "container"
    assert definition["count"] == spot_ce["count"]
    # Single-node runs have no rendezvous, but seal their checkpoints under a key from it.
    assert [s["name"] for s in json.loads(definition["container_properties"])["secrets"]] == [
        "MNP_RENDEZVOUS_SECRET"]


def test_each_ec2_environment_has_its_own_launch_template(synthesized: dict) -> None:
    # The EC2 environments; the staging one is Fargate (no instances, no template). Spot
    # instances' user data differs (tests/stacks/test_spot.py), so they cannot share one.
    template_ids = {ce["compute_resources"]["type"]:
                    ce["compute_resources"]["launch_template"]["launch_template_id"]
                    for ce in resources(synthesized, "aws_batch_compute_environment")
                    if ce["compute_resources"]["type"] != "FARGATE"}
    assert template_ids == {
        "EC2": "${aws_launch_template.compute_launch_template_49E47A7C.id}",
        "SPOT": "${aws_launch_template.compute_spot_launch_template_6EEA818E[0].id}"}


def test_launch_template_requires_imdsv2_and_encrypts_root(synthesized: dict) -> None:
    template = only(synthesized, "aws_launch_template", MNP_TEMPLATE)
    assert template["metadata_options"]["http_tokens"] == "required"
    ebs = template["block_device_mappings"][0]["ebs"]
    assert ebs["encrypted"] == "true" and ebs["volume_type"] == "gp3"


def test_job_definition_is_multinode_with_open_range(synthesized: dict) -> None:
    definition = only(synthesized, "aws_batch_job_definition", "scheduling_job_definition")
    props = json.loads(definition["node_properties"])
    assert definition["type"] == "multinode" and props["mainNode"] == 0
    (node_range,) = props["nodeRangeProperties"]
    assert node_range["targetNodes"] == "0:"
    env = {e["name"]: e["value"] for e in node_range["container"]["environment"]}
    requirements = {r["type"]: r["value"] for r in node_range["container"]["resourceRequirements"]}
    assert env["MNP_RANKS_PER_NODE"] == requirements["VCPU"] == str(NodeDefaults().vcpus)
    assert env["MNP_RENDEZVOUS_TIMEOUT"] == "600"
    assert node_range["container"]["command"][:4] == ["python", "-m", "solver", "heat"]
    assert node_range["container"]["logConfiguration"]["logDriver"] == "awslogs"


def test_retry_rules_follow_the_exit_code_contract(synthesized: dict) -> None:
    strategy = only(synthesized, "aws_batch_job_definition",
                    "scheduling_job_definition")["retry_strategy"]
    rules = strategy["evaluate_on_exit"]
    assert 1 <= strategy["attempts"] <= 10 and len(rules) <= 5
    retried = {r.get("on_exit_code") for r in rules if r["action"] == "RETRY"} - {None}
    assert retried == {"3", "4", "143"}
    assert rules[0] == {"action": "RETRY", "on_status_reason": "Host EC2*"}
    assert rules[-1] == {"action": "EXIT", "on_reason": "*"}


def test_queues_cancel_jobs_stuck_runnable(synthesized: dict) -> None:
    queues = resources(synthesized, "aws_batch_job_queue")
    assert len(queues) == 4  # multi-node, Spot, staging, fallback (one per fallback type)
    for queue in queues:
        actions = queue["job_state_time_limit_action"]
        assert {a["reason"] for a in actions} == {
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"}
        for action in actions:
            assert action["state"] == "RUNNABLE" and action["action"] == "CANCEL"
            assert 600 <= action["max_time_seconds"] <= 86400


def test_alarms_use_the_queue_dimension(synthesized: dict) -> None:
    # The queue's alarms (the continuation controller's watch its function and DLQ).
    alarms = {a["metric_name"]: a for key, a in
              synthesized["resource"]["aws_cloudwatch_metric_alarm"].items()
              if key.startswith("monitoring_")}
    assert set(alarms) == {"JobsMovedToFailed", "JobAttemptRunnableToStartingDuration"}
    for alarm in alarms.values():
        assert alarm["namespace"] == "AWS/Batch"
        assert set(alarm["dimensions"]) == {"JobQueueName"}
    assert alarms["JobsMovedToFailed"]["threshold"] == 0
    assert alarms["JobsMovedToFailed"]["comparison_operator"] == "GreaterThanThreshold"


def test_dashboard_shows_only_real_batch_metrics(synthesized: dict) -> None:
    body = json.loads(only(synthesized, "aws_cloudwatch_dashboard")["dashboard_body"])
    lines = [m for w in body["widgets"] if w["type"] == "metric"
             for m in w["properties"]["metrics"]]
    assert lines and all(m[0] == "AWS/Batch" and m[2] == "JobQueueName" for m in lines)
    assert "JobsMovedToFailed" in {m[1] for m in lines}


def test_failed_jobs_notify_an_encrypted_topic(synthesized: dict) -> None:
    rule = only(synthesized, "aws_cloudwatch_event_rule", "job_failed")
    pattern = json.loads(rule["event_pattern"])
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert pattern["detail"]["status"] == ["FAILED"]
    assert only(synthesized, "aws_sns_topic")["kms_master_key_id"]
    subscription = only(synthesized, "aws_sns_topic_subscription")
    assert subscription["count"] == '${var.alarm_email == "" ? 0 : 1}'


def test_logs_are_encrypted_and_retained(synthesized: dict) -> None:
    for group in resources(synthesized, "aws_cloudwatch_log_group"):
        assert group["kms_key_id"].startswith("${aws_kms_key.")
        assert group["retention_in_days"] >= 365


def test_role_policies_name_resources(synthesized: dict) -> None:
    for doc in synthesized["data"]["aws_iam_policy_document"].values():
        for statement in doc["statement"]:
            if statement.get("effect") == "Deny":
                continue
            assert "*" not in statement.get("actions", [])
            if statement.get("resources") == ["*"]:
                assert statement["actions"] == ["ecr:GetAuthorizationToken"]


def test_cli_outputs_have_fixed_names(synthesized: dict) -> None:
    outputs = synthesized["output"]
    assert set(CLI_OUTPUTS) <= set(outputs)
    assert all(outputs[name]["description"] for name in CLI_OUTPUTS)
    assert outputs["efs_mount_path"]["value"] == "/mnt/efs"


def _node_container(stack: dict) -> dict:
    definition = only(stack, "aws_batch_job_definition", "scheduling_job_definition")
    return json.loads(definition["node_properties"])["nodeRangeProperties"][0]["container"]
