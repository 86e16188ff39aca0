"""The data bucket, the staging role, the staging jobs and the stage-out rule, as synthesized."""

from __future__ import annotations

import json

from launcher.contract import EFS_MOUNT_PATH
from tests.stacks.conftest import only, resources

CREATED = 'var.data_bucket_name == ""'


def _ref(stack: dict, type_: str, fragment: str, attribute: str, block: str = "resource") -> str:
    """'type.id.attribute' of the one resource (or data source) whose id holds `fragment`."""
    (key,) = [k for k in stack[block][type_] if fragment in k]
    prefix = "data." if block == "data" else ""
    return f"{prefix}{type_}.{key}.{attribute}"


def _tok(stack: dict, type_: str, fragment: str, attribute: str, block: str = "resource") -> str:
    """The same reference as Terraform writes it in a value: '${...}'."""
    return f"${{{_ref(stack, type_, fragment, attribute, block)}}}"


def _statements(stack: dict, fragment: str) -> list[dict]:
    return only(stack, "aws_iam_policy_document", fragment, block="data")["statement"]


def _bucket_arn(stack: dict) -> str:
    created = _ref(stack, "aws_s3_bucket", "data_bucket", "arn").replace(".arn", "[0].arn")
    existing = _ref(stack, "aws_s3_bucket", "data_existing", "arn",
                    block="data").replace(".arn", "[0].arn")
    return f"${{{CREATED} ? {created} : {existing}}}"


def test_data_bucket_is_created_unless_one_is_named(synthesized: dict) -> None:
    bucket = only(synthesized, "aws_s3_bucket", "data_bucket")
    existing = only(synthesized, "aws_s3_bucket", "data_existing", block="data")
    assert bucket["count"] == f"${{{CREATED} ? 1 : 0}}"
    assert existing["count"] == f"${{{CREATED} ? 0 : 1}}"
    assert existing["bucket"] == "${var.data_bucket_name}"
    # bucket_prefix: at most 37 characters (provider docs, aws_s3_bucket): 31 + "-data-".
    assert bucket["bucket_prefix"] == "${substr(var.cluster_name, 0, 31)}-data-"
    assert synthesized["variable"]["data_bucket_name"]["default"] == ""


def test_data_bucket_is_encrypted_with_the_stack_key_and_never_public(synthesized: dict) -> None:
    key = _tok(synthesized, 'aws_kms_key', 'encryption_key', 'arn')
    (rule,) = only(synthesized, "aws_s3_bucket_server_side_encryption_configuration",
                   "data_encryption")["rule"]
    assert rule["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "aws:kms", "kms_master_key_id": key}
    block = only(synthesized, "aws_s3_bucket_public_access_block", "data_public_access")
    assert all(block[flag] is True for flag in ("block_public_acls", "block_public_policy",
                                                "ignore_public_acls", "restrict_public_buckets"))
    ownership = only(synthesized, "aws_s3_bucket_ownership_controls", "data_ownership")
    assert ownership["rule"]["object_ownership"] == "BucketOwnerEnforced"  # ACLs disabled


def test_data_bucket_refuses_requests_without_tls(synthesized: dict) -> None:
    policy = json.loads(only(synthesized, "aws_s3_bucket_policy", "data_bucket_policy")["policy"])
    (statement,) = policy["Statement"]
    arn = _tok(synthesized, 'aws_s3_bucket', 'data_bucket', 'arn').replace(
        ".arn}", "[0].arn}")
    # S3 user guide, security-best-practices: deny when aws:SecureTransport is false.
    assert statement == {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                         "Action": "s3:*", "Resource": [arn, f"{arn}/*"],
                         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_s3_gateway_endpoint_lets_the_bucket_through(synthesized: dict) -> None:
    endpoint = only(synthesized, "aws_vpc_endpoint", "s3_endpoint")
    # No policy: the default endpoint policy allows full access (VPC user guide,
    # vpc-endpoints-access.html), so the data bucket is reachable through it.
    assert endpoint["vpc_endpoint_type"] == "Gateway" and "policy" not in endpoint


def test_staging_role_reads_inputs_writes_outputs_and_nothing_else(synthesized: dict) -> None:
    arn = _bucket_arn(synthesized)
    key = _tok(synthesized, 'aws_kms_key', 'encryption_key', 'arn')
    region = _tok(synthesized, 'aws_region', 'encryption_region', 'region', 'data')
    fs = _tok(synthesized, 'aws_efs_file_system', 'file_system', 'arn')
    ap = _tok(synthesized, 'aws_efs_access_point', 'access_point', 'arn')
    got = {s["sid"]: (s["actions"], s["resources"], s.get("condition"))
           for s in _statements(synthesized, "staging_job_role_policy")}
    # Actions per the Service Authorization Reference for S3 (list_amazons3.html): ListObjectsV2
    # -> s3:ListBucket on the bucket (s3:prefix narrows it); GetObject -> s3:GetObject;
    # PutObject and multipart -> s3:PutObject, s3:AbortMultipartUpload,
    # s3:ListMultipartUploadParts on objects; DeleteObject (the old manifest) -> s3:DeleteObject.
    # SSE-KMS needs Decrypt and GenerateDataKey.
    assert got == {
        "ListDataFolders": (["s3:ListBucket"], [arn], [
            {"test": "StringLike", "variable": "s3:prefix",
             "values": ["${var.data_input_prefix}*", "${var.data_output_prefix}*"]}]),
        "ReadInputs": (["s3:GetObject"], [f"{arn}/${{var.data_input_prefix}}*"], None),
        "WriteOutputs": (["s3:PutObject", "s3:AbortMultipartUpload",
                          "s3:ListMultipartUploadParts", "s3:DeleteObject"],
                         [f"{arn}/${{var.data_output_prefix}}*"], None),
        "BucketKeyThroughS3": (["kms:Decrypt", "kms:GenerateDataKey"], [key], [
            {"test": "StringEquals", "variable": "kms:ViaService",
             "values": [f"s3.{region}.amazonaws.com"]}]),
        "SharedFileSystem": (["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                             [fs], [{"test": "StringEquals",
                                     "variable": "elasticfilesystem:AccessPointArn",
                                     "values": [ap]}]),
    }


def test_mpi_job_role_has_no_s3(synthesized: dict) -> None:
    actions = [a for s in _statements(synthesized, "iam_job_role_policy") for a in s["actions"]]
    assert actions and not [a for a in actions if a.startswith(("s3:", "kms:"))]


def test_efs_admits_the_staging_role_through_the_access_point(synthesized: dict) -> None:
    allow = next(s for s in _statements(synthesized, "file_system_policy")
                 if s.get("effect") != "Deny")
    roles = {_tok(synthesized, 'aws_iam_role', key, 'arn')
             for key in ("iam_job_role", "staging_job_role")}
    assert set(allow["principals"][0]["identifiers"]) == roles


def test_staging_runs_on_fargate_in_private_subnets_with_its_own_group(synthesized: dict) -> None:
    env = only(synthesized, "aws_batch_compute_environment", "staging")
    compute = env["compute_resources"]
    assert compute["type"] == "FARGATE" and env["type"] == "MANAGED"
    assert compute["subnets"] == [_tok(synthesized, "aws_subnet", f"private_subnet_{i}", "id")
                                  for i in range(2)]
    group = _tok(synthesized, "aws_security_group", "staging_sg", "id")
    assert compute["security_group_ids"] == [group]
    queue = only(synthesized, "aws_batch_job_queue", "staging")
    assert queue["compute_environment_order"][0]["compute_environment"] == (
        _tok(synthesized, 'aws_batch_compute_environment', 'staging', 'arn'))
    # Nothing reaches a staging job; it reaches HTTPS and the EFS mount targets only.
    ingress = [r for r in resources(synthesized, "aws_vpc_security_group_ingress_rule")
               if r["security_group_id"] == group]
    egress = sorted((r["ip_protocol"], r.get("from_port")) for r in
                    resources(synthesized, "aws_vpc_security_group_egress_rule")
                    if r["security_group_id"] == group)
    assert ingress == [] and egress == [("tcp", 443), ("tcp", 2049)]


def test_staging_definition_runs_stage_out_with_the_rules_parameters(synthesized: dict) -> None:
    definition = only(synthesized, "aws_batch_job_definition", "staging")
    container = json.loads(definition["container_properties"])
    assert definition["platform_capabilities"] == ["FARGATE"]
    assert container["image"].endswith(":${var.image_tag}")
    assert container["command"] == ["python", "-m", "staging", "out", "--job", "Ref::jobId",
                                    "--status", "Ref::status", "--from", "Ref::outputDir",
                                    "--to", "Ref::stageOut"]
    assert container["jobRoleArn"] == (
        _tok(synthesized, 'aws_iam_role', 'staging_job_role', 'arn'))
    volume = container["volumes"][0]["efsVolumeConfiguration"]
    assert volume["authorizationConfig"]["accessPointId"] == (
        _tok(synthesized, 'aws_efs_access_point', 'access_point', 'id'))
    assert container["mountPoints"][0]["containerPath"] == EFS_MOUNT_PATH
    # CONTRACTS.md: staging exits 1 for an S3 or file-system error (retried), 2 for bad data.
    assert definition["retry_strategy"] == {"attempts": 3, "evaluate_on_exit": [
        {"on_exit_code": "2", "action": "EXIT"}, {"on_exit_code": "1", "action": "RETRY"}]}
    assert definition["timeout"]["attempt_duration_seconds"] > 0
    # Every Ref:: the command reads is one the rule's input transformer fills.
    target = only(synthesized, "aws_cloudwatch_event_target", "stage_out")
    refs = {word.removeprefix("Ref::") for word in container["command"]
            if word.startswith("Ref::")}
    assert refs == set(target["input_transformer"]["input_paths"])


def test_stage_out_rule_submits_the_staging_job_with_the_event_fields(synthesized: dict) -> None:
    target = only(synthesized, "aws_cloudwatch_event_target", "stage_out")
    queue = _tok(synthesized, 'aws_batch_job_queue', 'staging', 'arn')
    definition = _tok(synthesized, 'aws_batch_job_definition', 'staging', 'arn')
    assert target["arn"] == queue and target["batch_target"]["job_definition"] == definition
    assert target["input_transformer"]["input_paths"] == {
        "jobId": "$.detail.jobId", "status": "$.detail.status",
        "stageOut": "$.detail.parameters.stageOut", "outputDir": "$.detail.parameters.outputDir"}
    # Batch substitutes the `Parameters` object for the Ref:: placeholders (batch user guide,
    # batch-cwe-target.html).
    assert json.loads(target["input_transformer"]["input_template"].replace("<", '"<').replace(
        ">", '>"')) == {"Parameters": {k: f"<{k}>" for k in ("jobId", "status", "stageOut",
                                                              "outputDir")}}
    (statement,) = _statements(synthesized, "stage_out_role_policy")
    assert (statement["actions"], statement["resources"]) == (["batch:SubmitJob"],
                                                              [queue, definition])
    trust = _statements(synthesized, "stage_out_role_trust")[0]
    assert trust["principals"] == [{"type": "Service", "identifiers": ["events.amazonaws.com"]}]
    assert target["role_arn"] == _tok(synthesized, 'aws_iam_role', 'stage_out_role', 'arn')


def test_cli_outputs_name_the_bucket_and_the_staging_jobs(synthesized: dict) -> None:
    outputs = synthesized["output"]
    assert outputs["data_input_prefix"]["value"] == "${var.data_input_prefix}"
    assert outputs["data_output_prefix"]["value"] == "${var.data_output_prefix}"
    assert outputs["staging_job_queue_name"]["value"] == (
        _tok(synthesized, 'aws_batch_job_queue', 'staging', 'name'))
    assert outputs["staging_job_definition_name"]["value"] == (
        _tok(synthesized, 'aws_batch_job_definition', 'staging', 'name'))
    assert outputs["data_bucket"]["value"] == _bucket_arn(synthesized).replace("].arn", "].id")
