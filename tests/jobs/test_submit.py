"""submit against moto: the exact SubmitJob request, --image-tag, --wait, and AWS errors."""

from __future__ import annotations

import json

from tests.jobs.moto_env import (
    DEFINITION,
    QUEUE,
    REPOSITORY_URL,
    SPOT_DEFINITION,
    SPOT_QUEUE,
)

BASE = ["submit", "--job-name", "heat-4n", "--nodes", "4", "--vcpus", "8", "--memory", "15000"]


def test_submit_sends_one_request_with_mnp_overrides(aws):
    result = aws.cli(*BASE, "--input-path", "/mnt/efs/input", "--output-path", "/mnt/efs/runs/",
                     "--", "python", "-m", "solver", "heat", "--nx", "257")
    assert result.returncode == 0, result.stderr
    requests = aws.requests()
    assert [r.operation for r in requests] == ["submitjob"]
    body = requests[0].body
    assert body == {
        "jobName": "heat-4n",
        "jobQueue": QUEUE,
        "jobDefinition": DEFINITION,
        "nodeOverrides": {
            "numNodes": 4,
            "nodePropertyOverrides": [{
                "targetNodes": "0:",
                "containerOverrides": {
                    "resourceRequirements": [{"type": "VCPU", "value": "8"},
                                             {"type": "MEMORY", "value": "15000"}],
                    "environment": [{"name": "INPUT_PATH", "value": "/mnt/efs/input"},
                                    {"name": "MNP_RANKS_PER_NODE", "value": "8"},
                                    {"name": "OUTPUT_PATH", "value": "/mnt/efs/runs"}],
                    "command": ["python", "-m", "solver", "heat", "--nx", "257"],
                },
            }],
        },
        "propagateTags": True,
        "tags": {"submitted-by": "mnp-batch-jobs-cli"},
    }
    job_id = result.stdout.strip()
    assert aws.batch.describe_jobs(jobs=[job_id])["jobs"][0]["jobName"] == "heat-4n"
    # botocore's standard retry mode (which retries throttling) is what the CLI configured.
    assert "cfg/retry-mode#standard" in requests[0].headers["User-Agent"]


def test_retry_timeout_and_tags(aws):
    result = aws.cli(*BASE, "--attempts", "3", "--timeout", "3600", "--tag", "team=cfd",
                     "--tag", "run=7")
    assert result.returncode == 0, result.stderr
    body = aws.requests()[0].body
    assert body["retryStrategy"]["attempts"] == 3
    # A SubmitJob retryStrategy replaces the definition's, so it repeats the contract's rules.
    rules = body["retryStrategy"]["evaluateOnExit"]
    assert {"onExitCode": "143", "action": "RETRY"} in rules
    assert rules[-1] == {"onReason": "*", "action": "EXIT"}
    assert body["timeout"] == {"attemptDurationSeconds": 3600}
    assert body["tags"] == {"submitted-by": "mnp-batch-jobs-cli", "team": "cfd", "run": "7"}
    # Without `-- CMD` the job definition's command stays.
    assert "command" not in body["nodeOverrides"]["nodePropertyOverrides"][0][
        "containerOverrides"]


def test_env_reaches_every_node_and_may_set_fewer_ranks_than_vcpus(aws):
    # Hyperthreaded nodes (two vCPUs a core): one rank per physical core, the gate off.
    result = aws.cli("submit", "--job-name", "per-core", "--nodes", "2", "--vcpus", "32",
                     "--memory", "60000", "--env", "MNP_RANKS_PER_NODE=16", "--env",
                     "MNP_PRECHECK=0", "--env", "OMPI_MCA_btl_tcp_eager_limit=65536",
                     "--env", "MNP_PRECHECK=0", "--no-preflight")
    assert result.returncode == 0, result.stderr
    (override,) = aws.requests()[0].body["nodeOverrides"]["nodePropertyOverrides"]
    assert override["targetNodes"] == "0:"
    assert override["containerOverrides"]["environment"] == [
        {"name": "MNP_PRECHECK", "value": "0"}, {"name": "MNP_RANKS_PER_NODE", "value": "16"},
        {"name": "OMPI_MCA_btl_tcp_eager_limit", "value": "65536"}]


def test_env_given_twice_with_different_values_sends_nothing(aws):
    result = aws.cli(*BASE, "--env", "MNP_NETWORK=tcp", "--env", "MNP_NETWORK=ofi-tcp")
    assert result.returncode == 2
    assert "--env MNP_NETWORK is given twice with different values ('tcp' and 'ofi-tcp')" \
        in result.stderr
    assert aws.requests() == []


def test_dry_run_prints_the_request_and_calls_nothing(aws):
    dry = aws.cli(*BASE, "--attempts", "2", "--dry-run", "--", "python", "-m", "solver", "heat")
    assert dry.returncode == 0, dry.stderr
    assert aws.requests() == []
    real = aws.cli(*BASE, "--attempts", "2", "--", "python", "-m", "solver", "heat")
    assert real.returncode == 0
    assert json.loads(dry.stdout) == aws.requests()[0].body


def test_flags_beat_env_beat_outputs(aws):
    aws.batch.create_job_queue(
        jobQueueName="other-queue", state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "mnp-batch-ce"}])
    aws.start_recording()
    env = aws.env(JOB_QUEUE_NAME="other-queue", JOB_DEFINITION_NAME=f"{DEFINITION}:1")
    assert aws.cli(*BASE, env=env).returncode == 0
    assert aws.cli(*BASE, "--job-queue", QUEUE, env=env).returncode == 0
    first, second = (r.body for r in aws.requests())
    assert (first["jobQueue"], first["jobDefinition"]) == ("other-queue", f"{DEFINITION}:1")
    assert second["jobQueue"] == QUEUE


def test_image_tag_registers_a_revision_and_submits_against_it(aws):
    result = aws.cli(*BASE, "--image-tag", "v2")
    assert result.returncode == 0, result.stderr
    requests = aws.requests()
    assert [r.operation for r in requests] == [
        "describejobdefinitions", "describeimages", "registerjobdefinition", "submitjob"]
    assert requests[0].body == {"jobDefinitionName": DEFINITION, "status": "ACTIVE"}
    assert requests[1].body["imageIds"] == [{"imageTag": "v2"}]
    registered = requests[2].body
    current = aws.batch.describe_job_definitions(
        jobDefinitionName=DEFINITION)["jobDefinitions"]
    original = next(d for d in current if d["revision"] == 1)
    expected = json.loads(json.dumps(original["nodeProperties"]))
    expected["nodeRangeProperties"][0]["container"]["image"] = f"{REPOSITORY_URL}:v2"
    assert registered["nodeProperties"] == expected
    assert registered["jobDefinitionName"] == DEFINITION
    assert registered["type"] == "multinode"
    assert registered["retryStrategy"] == original["retryStrategy"]
    assert registered["propagateTags"] is True
    assert registered["tags"] == {"project": "mnp-batch"}
    assert requests[3].body["jobDefinition"].endswith(f"job-definition/{DEFINITION}:2")
    assert "registered mnp-batch-mpi:2 (copy of revision 1)" in result.stderr


def test_image_tag_that_was_never_pushed(aws):
    # Preflight refuses this first (tests/jobs/test_preflight.py); without it, the
    # registration's own check stops it.
    result = aws.cli(*BASE, "--image-tag", "v9", "--no-preflight")
    assert result.returncode == 1
    assert f"image {REPOSITORY_URL}:v9 is not in ECR" in result.stderr
    assert "build and push that tag first" in result.stderr
    assert "Traceback" not in result.stderr
    assert [r.operation for r in aws.requests()] == ["describejobdefinitions", "describeimages"]


def test_missing_queue_is_one_line_with_a_hint(aws):
    result = aws.cli(*BASE, "--job-queue", "no-such-queue")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Job queue no-such-queue does not exist" in lines[0]
    assert "hint: check --job-queue/--job-definition" in lines[0]


def test_debug_shows_the_traceback(aws):
    result = aws.cli("--debug", *BASE, "--job-queue", "no-such-queue")
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_wait_exits_zero_on_success(aws):
    result = aws.cli(*BASE, "--wait", "--interval", "0.1")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.splitlines()[0]
    assert f"{job_id} SUCCEEDED" in result.stdout


def test_wait_exits_one_on_failure(aws, monkeypatch):
    # moto's non-Docker Batch fails every job when this is set (read by the server thread).
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    result = aws.cli(*BASE, "--wait", "--interval", "0.1")
    assert result.returncode == 1
    assert " FAILED" in result.stdout


def test_json_output(aws):
    result = aws.cli(*BASE, "--json")
    assert result.returncode == 0
    out = json.loads(result.stdout)
    assert out["jobName"] == "heat-4n" and out["nodes"] == 4 and out["jobId"]


def test_spot_submits_a_single_node_container_job(aws):
    result = aws.cli("submit", "--job-name", "sweep-1", "--nodes", "1", "--vcpus", "4",
                     "--memory", "8000", "--spot", "--", "python", "-m", "solver", "heat")
    assert result.returncode == 0, result.stderr
    body = aws.requests()[0].body
    assert (body["jobQueue"], body["jobDefinition"]) == (SPOT_QUEUE, SPOT_DEFINITION)
    assert "nodeOverrides" not in body
    assert body["containerOverrides"] == {
        "resourceRequirements": [{"type": "VCPU", "value": "4"},
                                 {"type": "MEMORY", "value": "8000"}],
        "environment": [{"name": "MNP_RANKS_PER_NODE", "value": "4"}],
        "command": ["python", "-m", "solver", "heat"],
    }


def test_spot_refuses_multi_node(aws):
    result = aws.cli("submit", "--job-name", "s", "--nodes", "2", "--vcpus", "4", "--memory",
                     "8000", "--spot")
    assert result.returncode == 2
    assert "--spot runs single-node jobs but --nodes is 2" in result.stderr
    assert aws.requests() == []


def test_spot_queue_switched_off(aws):
    aws.write_outputs(spot_job_queue_name="", spot_job_definition_name="")
    result = aws.cli("submit", "--job-name", "s", "--nodes", "1", "--vcpus", "4", "--memory",
                     "8000", "--spot")
    assert result.returncode == 2
    assert "no Spot job queue name: the stack's Spot queue is off" in result.stderr
    assert "set enable_spot_queue = true and apply" in result.stderr
    assert aws.requests() == []


def test_spot_image_tag_copies_container_properties(aws):
    result = aws.cli("submit", "--job-name", "s", "--nodes", "1", "--vcpus", "4", "--memory",
                     "8000", "--spot", "--image-tag", "v2")
    assert result.returncode == 0, result.stderr
    register = next(r.body for r in aws.requests() if r.operation == "registerjobdefinition")
    assert register["jobDefinitionName"] == SPOT_DEFINITION
    assert register["containerProperties"]["image"] == f"{REPOSITORY_URL}:v2"
    assert "nodeProperties" not in register


def test_debug_after_the_command(aws):
    result = aws.cli("status", "00000000-0000-0000-0000-000000000000", "--debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "jobs.errors.NotFound" in result.stderr
