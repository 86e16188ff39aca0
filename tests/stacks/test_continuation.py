"""The continuation controller's resources, its permissions, its rules and its package."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from subprocess import Popen

import pytest
from moto.events.models import EventPattern

from continuation.handler import QUEUES_ENV, SPOT_QUEUE_ENV
from launcher.contract import STUCK_RUNNABLE_REASONS
from stacks.bundle import REPO, base64_sha256, build_zip, closure
from stacks.config import ControllerDefaults, NodeDefaults, PlatformLimits
from tests.stacks.conftest import batch_event, only

COUNT = "${var.enable_continuation ? 1 : 0}"
QUEUE = "aws_batch_job_queue.scheduling_job_queue"
# The interpreter of the function's runtime when this machine has it (pyenv's versions under
# PYENV_ROOT, by default ~/.pyenv), else ours.
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"), "versions")
RUNTIME_PYTHON = next((str(p) for p in sorted(PYENV_VERSIONS.glob(
    f"{ControllerDefaults().runtime.removeprefix('python')}*/bin/python3"))), sys.executable)


def _mine(stack: dict, type_: str) -> dict[str, dict]:
    return {key: res for key, res in stack["resource"].get(type_, {}).items()
            if key.startswith("continuation_")}


def _policy(stack: dict) -> list[dict]:
    return json.loads(only(stack, "aws_iam_role_policy", "continuation_role_policy")["policy"])[
        "Statement"]


def test_every_controller_resource_is_counted_by_the_switch(synthesized: dict) -> None:
    kinds = {type_: len(_mine(synthesized, type_)) for type_ in synthesized["resource"]}
    assert {k: n for k, n in kinds.items() if n} == {
        "aws_sqs_queue": 1, "aws_sqs_queue_policy": 1, "aws_cloudwatch_log_group": 1,
        "aws_iam_role": 1, "aws_iam_role_policy": 1, "aws_lambda_function": 1,
        "aws_cloudwatch_event_rule": 2, "aws_cloudwatch_event_target": 2,
        "aws_lambda_permission": 2, "aws_cloudwatch_metric_alarm": 2}
    for type_ in kinds:
        for res in _mine(synthesized, type_).values():
            assert res["count"] == COUNT
    switch = synthesized["variable"]["enable_continuation"]
    # On by default: idle it costs two alarms; runs are continued only when they ask for it
    # (the mnp:min-nodes tag, continuation/README.md).
    assert switch["type"] == "bool" and switch["default"] is True


def test_function_runs_the_handler_once_at_a_time(synthesized: dict) -> None:
    function = only(synthesized, "aws_lambda_function", "continuation_function")
    controller = ControllerDefaults()
    # continuation/README.md: the entry point, and reserved concurrency 1 serializes decisions.
    assert function["handler"] == "continuation.handler.lambda_handler"
    assert function["reserved_concurrent_executions"] == 1
    # A supported runtime (docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html).
    assert function["runtime"] == controller.runtime == "python3.13"
    assert function["function_name"] == "${var.cluster_name}-continuation"
    queue = only(synthesized, "aws_sqs_queue", "continuation_dead_letter_queue")
    assert function["dead_letter_config"]["target_arn"].startswith(
        "${aws_sqs_queue.continuation_dead_letter_queue_")
    assert queue["kms_master_key_id"] == function["kms_key_arn"] == (
        "${aws_kms_key.encryption_key_EEB70057.arn}")
    # The code is the synthesized package; its hash is read at plan, so a new package is a
    # change and the same package is none.
    assert function["filename"].endswith("/continuation.zip")
    assert function["source_code_hash"] == f'${{filebase64sha256("{function["filename"]}")}}'
    log_group = only(synthesized, "aws_cloudwatch_log_group", "continuation_log_group")
    # Lambda writes to /aws/lambda/<function name> (Lambda developer guide, monitoring-
    # cloudwatchlogs); made by the stack with its retention, before the function.
    assert log_group["name"] == "/aws/lambda/${var.cluster_name}-continuation"
    assert log_group["retention_in_days"] == PlatformLimits().log_retention_days
    assert function["depends_on"] == [
        f"aws_cloudwatch_log_group.{next(iter(_mine(synthesized, 'aws_cloudwatch_log_group')))}"]


def _batch_calls() -> set[str]:
    """The Batch API operations continuation/ calls, as IAM actions."""
    text = "\n".join(p.read_text() for p in (REPO / "continuation").glob("*.py"))
    snake = set(re.findall(r"batch\.(\w+)\(", text)) - {"get_paginator"}
    snake |= set(re.findall(r'get_paginator\("(\w+)"\)', text))
    return {"batch:" + "".join(part.title() for part in op.split("_")) for op in snake}


def test_policy_grants_exactly_the_controllers_calls(synthesized: dict) -> None:
    statements = {s["Sid"]: s for s in _policy(synthesized)}
    batch_actions = {a for s in statements.values()
                     for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
                     if a.startswith("batch:")}
    # SubmitJob with tags is also authorized as TagResource on the new job (Service
    # Authorization Reference, list_awsbatch: SubmitJob's dependent action).
    assert batch_actions == _batch_calls() | {"batch:TagResource"} == {
        "batch:DescribeJobs", "batch:ListJobs", "batch:SubmitJob", "batch:CancelJob",
        "batch:TagResource"}
    # No resource-level permissions for DescribeJobs and ListJobs: "*" is the only form
    # (docs.aws.amazon.com/batch/latest/userguide/batch-supported-iam-actions-resources.html).
    assert statements["ReadJobs"]["Resource"] == "*"
    account = ("arn:${data.aws_partition.encryption_partition_10E92BF8.partition}:batch:"
               "${data.aws_region.encryption_region_B5523878.region}:"
               "${data.aws_caller_identity.encryption_caller_4EBFD3EB.account_id}")
    # SubmitJob: the job queue, its fallbacks (named after it: stacks/fallback.py) and the job
    # definition (any revision), the stack's own; and the Spot pair, where a run of Spot
    # gangs continues (continuation/README.md, "Spot gangs"), the main pair again when off.
    main_definition = "aws_batch_job_definition.scheduling_job_definition_4926FD22.name"
    assert statements["SubmitContinuations"]["Resource"] == [
        f"${{{QUEUE}_CEA41084.arn}}", f"${{{QUEUE}_CEA41084.arn}}_*",
        f"{account}:job-definition/${{{main_definition}}}:*",
        SPOT_OR_MAIN,
        f"{account}:job-definition/${{var.enable_spot_queue ? aws_batch_job_definition."
        f"scheduling_spot_job_definition_28B121DA[0].name : {main_definition}}}:*"]
    assert statements["TagContinuations"]["Resource"] == f"{account}:job/*"
    assert statements["TagContinuations"]["Condition"] == {
        "StringEquals": {"batch:CreateAction": "SubmitJob"}}
    assert statements["CancelManagedJobs"]["Resource"] == f"{account}:job/*"
    assert statements["CancelManagedJobs"]["Condition"] == {
        "Null": {"aws:ResourceTag/mnp:min-nodes": "false"}}
    # A Spot gang's array only (jobs/spotgang.py tags it): continuation/README.md, "Spot gangs".
    assert statements["CancelGangs"]["Resource"] == f"{account}:job/*"
    assert statements["CancelGangs"]["Condition"] == {
        "Null": {"aws:ResourceTag/mnp:gang": "false"}}
    assert statements["Logs"]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statements["Logs"]["Resource"].endswith(".arn}:*")
    assert statements["DeadLetters"] == {
        "Sid": "DeadLetters", "Effect": "Allow", "Action": "sqs:SendMessage",
        "Resource": "${aws_sqs_queue.continuation_dead_letter_queue_B3572D24[0].arn}"}
    assert statements["StackKey"]["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert set(statements) == {"ReadJobs", "SubmitContinuations", "TagContinuations",
                               "CancelManagedJobs", "CancelGangs", "Logs", "DeadLetters",
                               "StackKey"}


SPOT_OR_MAIN = ("${var.enable_spot_queue ? "
                "aws_batch_job_queue.scheduling_spot_job_queue_3D9454E5[0].arn : "
                f"{QUEUE}_CEA41084.arn}}")


@pytest.mark.parametrize(("status", "queue", "matched"), [
    ("FAILED", "mpi", True),
    ("RUNNABLE", "mpi", True),
    ("SUCCEEDED", "mpi", False),
    ("RUNNING", "mpi", False),
    ("FAILED", "spot", True),  # a gang member's exit 3 (continuation/README.md, Spot gangs)
    ("FAILED", "other", False),
    ("RUNNABLE", "fallback", True),  # a run moved to a fallback queue (stacks/fallback.py)
    ("FAILED", "longer", False),  # a queue whose name merely starts with ours
    ("FAILED", "cluster", False),  # the queue of a stack named "<ours>-x"
])
def test_state_rule_matches_failed_and_runnable_jobs_of_the_queues(
        synthesized: dict, status: str, queue: str, matched: bool) -> None:
    rule = only(synthesized, "aws_cloudwatch_event_rule", "continuation_state_rule")
    ours = "arn:aws:batch:us-east-1:123456789012:job-queue/mnp-hpc-mpi"
    # The Spot queue's ARN when enable_spot_queue, as Terraform renders it at plan.
    assert SPOT_OR_MAIN in rule["event_pattern"]
    pattern = rule["event_pattern"].replace(SPOT_OR_MAIN, ours.replace("mpi", "spot")).replace(
        f"${{{QUEUE}_CEA41084.arn}}", ours)
    arn = {"fallback": f"{ours}_c6i-4xlarge", "longer": f"{ours}2",
           "cluster": f"{ours}-x-mpi"}.get(queue, ours.replace("mpi", queue))
    event = batch_event(status, arn, STUCK_RUNNABLE_REASONS[0])
    assert EventPattern.load(pattern).matches_event(event) is matched


def test_both_rules_invoke_the_function_with_a_dead_letter_queue(synthesized: dict) -> None:
    sweep = only(synthesized, "aws_cloudwatch_event_rule", "continuation_sweep_rule")
    assert sweep["schedule_expression"] == "rate(5 minutes)"  # continuation/README.md
    targets = list(_mine(synthesized, "aws_cloudwatch_event_target").values())
    permissions = list(_mine(synthesized, "aws_lambda_permission").values())
    rules = sorted(_mine(synthesized, "aws_cloudwatch_event_rule"))
    assert sorted(t["rule"] for t in targets) == [
        f"${{aws_cloudwatch_event_rule.{r}[0].name}}" for r in rules]
    assert sorted(p["source_arn"] for p in permissions) == [
        f"${{aws_cloudwatch_event_rule.{r}[0].arn}}" for r in rules]
    for target in targets:
        assert target["arn"].startswith("${aws_lambda_function.continuation_function_")
        assert target["dead_letter_config"]["arn"].startswith(
            "${aws_sqs_queue.continuation_dead_letter_queue_")
    assert {p["principal"] for p in permissions} == {"events.amazonaws.com"}
    # The queue takes EventBridge's undeliverable events from these two rules only
    # (EventBridge user guide, eb-rule-dlq: a resource policy allowing sqs:SendMessage).
    policy = json.loads(only(synthesized, "aws_sqs_queue_policy", "continuation")["policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        f"${{aws_cloudwatch_event_rule.{r}[0].arn}}" for r in rules]


def test_alarms_on_dead_letters_and_errors_go_to_the_alarm_topic(synthesized: dict) -> None:
    alarms = {a["metric_name"]: a
              for a in _mine(synthesized, "aws_cloudwatch_metric_alarm").values()}
    assert set(alarms) == {"ApproximateNumberOfMessagesVisible", "Errors"}
    assert alarms["ApproximateNumberOfMessagesVisible"]["namespace"] == "AWS/SQS"
    assert alarms["Errors"]["namespace"] == "AWS/Lambda"
    topic = next(iter(k for k in synthesized["resource"]["aws_sns_topic"]))
    for alarm in alarms.values():
        assert alarm["alarm_actions"] == [f"${{aws_sns_topic.{topic}.arn}}"]
        assert alarm["threshold"] == 0 and alarm["comparison_operator"] == "GreaterThanThreshold"


def test_queue_time_limits_use_the_contracts_stuck_reasons(synthesized: dict) -> None:
    queue = only(synthesized, "aws_batch_job_queue", "scheduling_job_queue")
    reasons = [a["reason"] for a in queue["job_state_time_limit_action"]]
    assert reasons == list(STUCK_RUNNABLE_REASONS)


# --- The package

def test_package_holds_the_handler_and_the_project_modules_it_imports() -> None:
    names = [p.relative_to(REPO).as_posix() for p in closure("continuation")]
    assert names == ["continuation/__init__.py", "continuation/apply.py",
                     "continuation/decide.py", "continuation/family.py",
                     "continuation/handler.py", "continuation/lookup.py",
                     "launcher/__init__.py", "launcher/contract.py"]


def test_package_is_deterministic_and_synth_writes_it(
        entry_point: tuple[Path, Popen[str]]) -> None:
    first, second = build_zip(closure("continuation")), build_zip(closure("continuation"))
    assert first == second
    out, proc = entry_point
    # wait, not communicate: test_config may have read its output already (it is short)
    assert proc.wait(timeout=300) == 0
    (written,) = (out / "cdktf.out" / "stacks" / "mnp-batch" / "assets").glob("*/*/*.zip")
    # The synthesized stack's package is byte for byte a fresh build: a second synth (or a
    # synth on another checkout of the same commit) gives Terraform the same hash.
    assert base64_sha256(written.read_bytes()) == base64_sha256(first)
    with zipfile.ZipFile(written) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


# Run in a fresh interpreter without site-packages (-I -S): every project module must come
# from the zip. boto3 is the runtime's (Lambda's Python runtimes include it); a stub stands in,
# and the sweep of an empty queue runs through the real entry point.
IMPORT_FROM_ZIP = """
import json, os, sys, types
sys.path.insert(0, sys.argv[1])
class Pages:
    def paginate(self, **kw): return [{"jobSummaryList": []}]
class Batch:
    def get_paginator(self, name): return Pages()
    def describe_jobs(self, jobs): return {"jobs": []}
sys.modules["boto3"] = types.SimpleNamespace(client=lambda service: Batch())
import continuation.handler as handler
print(json.dumps({
    "records": handler.lambda_handler({"detail-type": "Scheduled Event"}, None),
    "files": sorted(m.__file__ for n, m in list(sys.modules.items())
                    if n.split(".")[0] in ("continuation", "launcher"))}))
"""


def test_handler_imports_and_sweeps_from_the_zip_alone(synthesized: dict,
                                                        tmp_path: Path) -> None:
    package = tmp_path / "continuation.zip"
    package.write_bytes(build_zip(closure("continuation")))
    function = only(synthesized, "aws_lambda_function", "continuation_function")
    variables = function["environment"]["variables"]
    assert set(variables) == {QUEUES_ENV, SPOT_QUEUE_ENV}
    # The sweep's queue for gangs: the Spot queue, or the multi-node one (never empty).
    assert "aws_batch_job_queue.scheduling_spot_job_queue" in variables[SPOT_QUEUE_ENV]
    # What Terraform renders with no fallbacks (test_fallback_terraform.py renders it).
    node = NodeDefaults()
    env = {QUEUES_ENV: json.dumps([{"name": "mnp-hpc-mpi", "slots": node.vcpus,
                                    "vcpus": node.vcpus, "memory_mib": node.memory_mib}])}
    proc = subprocess.run([RUNTIME_PYTHON, "-I", "-S", "-c", IMPORT_FROM_ZIP, str(package)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["records"] == []
    assert result["files"] and all(f.startswith(str(package)) for f in result["files"])
