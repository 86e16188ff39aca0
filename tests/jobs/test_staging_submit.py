"""submit/scale-test --stage-in/--stage-out against moto: the staging job first, the job
depending on it, the stage-out parameters, and every refusal before anything is sent."""

from __future__ import annotations

import json
import re

import pytest

from tests.jobs.moto_env import (
    DATA_BUCKET,
    DEFINITION,
    QUEUE,
    STAGING_DEFINITION,
    STAGING_QUEUE,
)

BASE = ["submit", "--job-name", "heat-2n", "--nodes", "2", "--vcpus", "8", "--memory", "15000",
        "--no-preflight"]
SRC = f"s3://{DATA_BUCKET}/input/case 1/"
OUT = f"s3://{DATA_BUCKET}/output/runs"
# docs/CONTRACTS.md, "Data in and out": DEST = <input path>/staged/<job name>-<UTC stamp>-<6 hex>
DEST_RE = r"/mnt/efs/data/staged/heat-2n-\d{8}T\d{6}Z-[0-9a-f]{6}"


def _env(body: dict) -> dict[str, str]:
    (override,) = body["nodeOverrides"]["nodePropertyOverrides"]
    return {e["name"]: e["value"] for e in override["containerOverrides"]["environment"]}


def test_stage_in_and_out_submit_two_jobs(aws):
    result = aws.cli(*BASE, "--input-path", "/mnt/efs/data", "--output-path", "/mnt/efs/runs",
                     "--stage-in", SRC, "--stage-out", OUT, "--json")
    assert result.returncode == 0, result.stderr
    first, second = aws.requests()
    assert (first.operation, second.operation) == ("submitjob", "submitjob")
    command = first.body["containerOverrides"]["command"]
    assert command[:5] == ["python", "-m", "staging", "in", SRC]
    dest = command[5]
    assert re.fullmatch(DEST_RE, dest)
    assert (first.body["jobQueue"], first.body["jobDefinition"]) == (STAGING_QUEUE,
                                                                     STAGING_DEFINITION)
    assert first.body["jobName"] == "heat-2n-stage-in"
    out = json.loads(result.stdout)
    stage_id = out["stageIn"]["jobId"]
    assert aws.batch.describe_jobs(jobs=[stage_id])["jobs"][0]["jobName"] == "heat-2n-stage-in"
    assert out["stageIn"] == {"jobId": stage_id, "source": SRC, "dest": dest}
    assert (second.body["jobQueue"], second.body["jobDefinition"]) == (QUEUE, DEFINITION)
    assert second.body["dependsOn"] == [{"jobId": stage_id}]
    assert _env(second.body)["INPUT_PATH"] == dest
    assert _env(second.body)["OUTPUT_PATH"] == "/mnt/efs/runs"
    # The stage-out prefix is a folder: the contract's stageOut ends with '/'.
    assert second.body["parameters"] == {"stageOut": f"{OUT}/", "outputDir": "/mnt/efs/runs"}
    assert out["stageOut"] == {"location": f"{OUT}/", "outputDir": "/mnt/efs/runs"}
    job = aws.batch.describe_jobs(jobs=[out["jobId"]])["jobs"][0]
    assert job["dependsOn"] == [{"jobId": stage_id}]
    assert job["parameters"]["stageOut"] == f"{OUT}/"


def test_stage_out_alone_takes_the_definition_output_path(aws):
    # The stack's definition sets OUTPUT_PATH=<mount>/output (stacks/scheduling.py).
    aws.register_definition(environment=[{"name": "OUTPUT_PATH", "value": "/mnt/efs/output"}])
    result = aws.cli(*BASE, "--stage-out", f"s3://{DATA_BUCKET}/output/")
    assert result.returncode == 0, result.stderr
    ops = aws.requests()
    assert [r.operation for r in ops] == ["describejobdefinitions", "submitjob"]
    assert ops[1].body["parameters"] == {"stageOut": f"s3://{DATA_BUCKET}/output/",
                                         "outputDir": "/mnt/efs/output"}
    assert "dependsOn" not in ops[1].body
    assert _env(ops[1].body)["OUTPUT_PATH"] == "/mnt/efs/output"


def test_stage_out_without_any_output_path_is_refused(aws):
    result = aws.cli(*BASE, "--stage-out", OUT)
    assert result.returncode == 2
    assert f"--stage-out needs the job's output parent: job definition {DEFINITION} sets no " \
        "OUTPUT_PATH" in result.stderr and "pass --output-path DIR" in result.stderr
    assert [r.operation for r in aws.requests()] == ["describejobdefinitions"]


def test_stage_in_default_input_root_is_on_the_mount(aws):
    result = aws.cli(*BASE, "--stage-in", SRC, "--json")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(DEST_RE.replace("/data/", "/input/"),
                        json.loads(result.stdout)["stageIn"]["dest"])


@pytest.mark.parametrize(("flags", "message"), [
    (["--stage-in", f"s3://{DATA_BUCKET}/output/x"],
     f"--stage-in s3://{DATA_BUCKET}/output/x/ is not below s3://{DATA_BUCKET}/input/, the "
     "stack's input location"),
    (["--stage-in", "s3://someone-elses-bucket/input/"],
     f"is not below s3://{DATA_BUCKET}/input/"),
    # A partial folder name is not below the prefix: input2/ is not input/.
    (["--stage-in", f"s3://{DATA_BUCKET}/input2/a"], f"is not below s3://{DATA_BUCKET}/input/"),
    (["--stage-out", f"s3://{DATA_BUCKET}/input/", "--output-path", "/mnt/efs/o"],
     f"--stage-out s3://{DATA_BUCKET}/input/ is not below s3://{DATA_BUCKET}/output/, the "
     "stack's output location"),
    (["--stage-in", "/mnt/efs/input"],
     "argument --stage-in: '/mnt/efs/input' is not an S3 location: expected s3://BUCKET/PREFIX"),
    (["--stage-out", "s3://Bad_Bucket/x"], "'Bad_Bucket' is not a bucket name"),
    (["--stage-in", f"s3://{DATA_BUCKET}/input/../output/"],
     "'.' and '..' are not allowed in the prefix"),
])
def test_bad_locations_send_nothing(aws, flags, message):
    result = aws.cli(*BASE, *flags)
    assert result.returncode == 2
    assert message in result.stderr
    assert aws.requests() == []


def test_a_stack_without_data_staging_is_named(aws):
    aws.write_outputs(without=("data_bucket", "data_input_prefix", "data_output_prefix",
                               "staging_job_queue_name", "staging_job_definition_name"))
    result = aws.cli(*BASE, "--stage-in", SRC)
    assert result.returncode == 2
    assert "the stack has no data_bucket output" in result.stderr
    assert "it predates data staging" in result.stderr
    assert "re-apply the stack" in result.stderr
    assert aws.requests() == []


def test_failed_second_submit_cancels_the_staging_job(aws):
    result = aws.cli(*BASE, "--stage-in", SRC, "--job-queue", "no-such-queue")
    assert result.returncode == 1
    ops = aws.requests()
    assert [r.operation for r in ops] == ["submitjob", "submitjob", "terminatejob"]
    stage_id = re.search(r"submitted heat-2n-stage-in as (\S+):", result.stderr).group(1)
    assert ops[2].body["jobId"] == stage_id
    assert f"cancelled {stage_id}" in result.stderr
    assert "Job queue no-such-queue does not exist" in result.stderr


def test_dry_run_shows_both_requests_and_sends_nothing(aws):
    result = aws.cli(*BASE, "--stage-in", SRC, "--stage-out", OUT, "--output-path",
                     "/mnt/efs/runs", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert aws.requests() == []
    first, second = json.loads(result.stdout)
    assert first["containerOverrides"]["command"][:5] == ["python", "-m", "staging", "in", SRC]
    assert second["dependsOn"] == [{"jobId": "<stage-in job id>"}]
    assert _env(second)["INPUT_PATH"] == first["containerOverrides"]["command"][5]


def test_scale_test_shares_one_stage_in(aws):
    result = aws.cli("scale-test", "--job-name", "sc", "--nodes", "1,2", "--vcpus", "8",
                     "--memory", "15000", "--no-preflight", "--stage-in", SRC, "--stage-out",
                     OUT, "--output-path", "/mnt/efs/runs", "--json")
    assert result.returncode == 0, result.stderr
    first, *jobs = aws.requests()
    assert first.body["jobName"] == "sc-stage-in" and len(jobs) == 2
    dest = first.body["containerOverrides"]["command"][5]
    stage_id = json.loads(result.stdout)[0]["stageIn"]["jobId"]
    for job in jobs:
        assert job.body["dependsOn"] == [{"jobId": stage_id}]
        assert _env(job.body)["INPUT_PATH"] == dest
        assert job.body["parameters"]["stageOut"] == f"{OUT}/"


def test_preflight_checks_the_locations_too(aws):
    result = aws.cli("preflight", *BASE[1:-1], "--stage-in", "s3://other-bucket/input/")
    assert result.returncode == 2
    assert "is not below" in result.stderr
