"""AWS failures become one line with a hint; Stubber only for errors moto cannot produce."""

from __future__ import annotations

import json

import boto3
from botocore.stub import Stubber

from jobs.cli import main
from jobs.client import BatchJobs

# The stubbed Batch client answers SubmitJob only; preflight's reads are tested elsewhere.
SUBMIT = ["submit", "--job-name", "heat", "--nodes", "2", "--vcpus", "4", "--memory", "4096",
          "--no-preflight"]


def stubbed_batch():
    client = boto3.client("batch", region_name="us-east-1")
    return client, Stubber(client)


def test_throttling_is_one_line_with_a_hint(aws, capsys, monkeypatch):
    monkeypatch.setenv("JOBS_OUTPUTS_FILE", str(aws.outputs_file))
    client, stub = stubbed_batch()
    stub.add_client_error("describe_jobs", service_error_code="ThrottlingException",
                          service_message="Rate exceeded", http_status_code=400,
                          expected_params={"jobs": ["abc"]})
    with stub:
        code = main(["status", "abc"], api_factory=lambda: BatchJobs(batch=client))
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        "error: DescribeJobs: Rate exceeded [ThrottlingException] (hint: still throttled after "
        "botocore's retries: retry later or raise AWS_MAX_ATTEMPTS)"]
    stub.assert_no_pending_responses()


def test_access_denied_on_submit_names_the_operation(aws, capsys, monkeypatch):
    monkeypatch.setenv("JOBS_OUTPUTS_FILE", str(aws.outputs_file))
    assert main([*SUBMIT, "--dry-run"]) == 0
    request = json.loads(capsys.readouterr().out)
    client, stub = stubbed_batch()
    stub.add_client_error("submit_job", service_error_code="AccessDeniedException",
                          service_message="User is not authorized to perform batch:SubmitJob",
                          http_status_code=403, expected_params=request)
    with stub:
        code = main(SUBMIT, api_factory=lambda: BatchJobs(batch=client))
    err = capsys.readouterr().err
    assert code == 1
    assert "SubmitJob: User is not authorized to perform batch:SubmitJob [AccessDeniedException]" \
        in err
    assert "hint: check AWS_PROFILE / credentials and that the role may call SubmitJob" in err
    stub.assert_no_pending_responses()


def test_no_credentials(aws):
    env = aws.env()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key)
    result = aws.cli("status", "abc", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: no AWS credentials found (hint: set AWS_PROFILE or "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")


def test_unreachable_endpoint_respects_aws_max_attempts(aws):
    result = aws.cli("status", "abc", env=aws.env(AWS_ENDPOINT_URL="http://127.0.0.1:9",
                                                  AWS_MAX_ATTEMPTS="1"))
    assert result.returncode == 1
    assert "Could not connect to the endpoint URL" in result.stderr
    assert "hint: check the network, AWS_REGION and AWS_ENDPOINT_URL" in result.stderr
    assert "Traceback" not in result.stderr
