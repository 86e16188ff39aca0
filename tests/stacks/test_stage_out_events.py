"""The stage-out rule's synthesized pattern and input transformer against Batch events.

moto 5.2.5 has no TestEventPattern (moto/events/responses.py answers it with `pass`), but its
event bus matches rules and applies input transformers on PutEvents. So the synthesized rule
goes onto moto's bus with an SQS queue standing in for the Batch target, and what arrives in
the queue is what the staging job would get as its parameters (with moto_fixes'
input_template_quotes_strings: moto pastes string values unquoted, EventBridge quotes them).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.deploy.moto_fixes import input_template_quotes_strings
from tests.stacks.conftest import only

# The example event of the Batch user guide (batch_cwe_events.html, "Job State Change
# Events"): its `detail` resembles DescribeJobs' JobDetail, parameters included.
EVENT = json.loads((Path(__file__).parent / "events" / "batch_job_state_change.json").read_text())
QUEUE_ARN = EVENT["detail"]["jobQueue"]
JOB_ID = EVENT["detail"]["jobId"]
STAGE = {"stageOut": "s3://team-data/output/run-7/", "outputDir": "/mnt/efs/output"}
REGION = "us-east-1"


def _event(**detail: object) -> dict:
    event = copy.deepcopy(EVENT)
    event["detail"].update(detail)
    return event


@pytest.fixture
def delivered(synthesized: dict, monkeypatch: pytest.MonkeyPatch):
    """Send one event through the synthesized rule; the staging parameters it yields, or None."""
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    input_template_quotes_strings(monkeypatch.setattr)
    rule = only(synthesized, "aws_cloudwatch_event_rule", "stage_out")
    target = only(synthesized, "aws_cloudwatch_event_target", "stage_out")
    queue_ref = json.loads(rule["event_pattern"])["detail"]["jobQueue"][0]
    pattern = rule["event_pattern"].replace(queue_ref, QUEUE_ARN)
    transformer = target["input_transformer"]
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        url = sqs.create_queue(QueueName="stand-in-for-batch")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        events.put_rule(Name="stage-out", EventPattern=pattern)
        events.put_targets(Rule="stage-out", Targets=[{
            "Id": "staging", "Arn": arn, "InputTransformer": {
                "InputPathsMap": transformer["input_paths"],
                "InputTemplate": transformer["input_template"]}}])

        def send(event: dict) -> dict | None:
            events.put_events(Entries=[{
                "Source": event["source"], "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]), "Resources": event["resources"]}])
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                "Messages", [])
            assert len(messages) <= 1
            return json.loads(messages[0]["Body"]) if messages else None

        yield send


def test_a_job_of_a_fallback_queue_stages_out_too(delivered) -> None:
    # A run the controller moved to a fallback queue ("<queue>_<type>", stacks/fallback.py).
    assert delivered(_event(status="SUCCEEDED", parameters=STAGE,
                            jobQueue=f"{QUEUE_ARN}_c6i-4xlarge")) == {"Parameters": {
        "jobId": JOB_ID, "status": "SUCCEEDED", **STAGE}}


@pytest.mark.parametrize("status", ["FAILED", "SUCCEEDED"])
def test_a_job_that_ends_with_stage_out_submits_staging(delivered, status: str) -> None:
    # The Batch target takes {"Parameters": {...}} (batch user guide, batch-cwe-target.html).
    assert delivered(_event(status=status, parameters=STAGE)) == {"Parameters": {
        "jobId": JOB_ID, "status": status, **STAGE}}


@pytest.mark.parametrize(("why", "detail"), [
    ("still running", {"status": "RUNNING", "parameters": STAGE}),
    ("no stageOut parameter", {"status": "FAILED", "parameters": {}}),
    ("a node of a multi-node job", {"status": "FAILED", "parameters": STAGE,
                                    "jobId": f"{JOB_ID}#1"}),
    ("another queue", {"status": "FAILED", "parameters": STAGE,
                       "jobQueue": f"{QUEUE_ARN}-other"}),
])
def test_other_events_submit_nothing(delivered, why: str, detail: dict) -> None:
    assert delivered(_event(**detail)) is None, why
