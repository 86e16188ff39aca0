"""handle() on the moto server: an event's job id in, the run described afresh (members
through mnp:previous), one continuation out however often the event comes."""

from __future__ import annotations

import json

import pytest

from continuation.handler import (
    QUEUES_ENV,
    SPOT_QUEUE_ENV,
    handle,
    lambda_handler,
    queues_from_env,
    sweep,
)
from continuation.lookup import family_descriptions
from launcher.contract import NODE_LOST
from tests.continuation.test_apply import (
    QUEUES,
    add_fallback_queue,
    in_account,
    stuck_job,
    submits,
)
from tests.continuation.test_decide import LATER, recorded
from tests.jobs.moto_env import QUEUE, REGION, SPOT_QUEUE, Aws


def failed_first_job(aws: Aws) -> str:
    """The recorded run's first job in moto, ended by node loss (exit 4)."""
    template = in_account(aws, recorded("node_lost_attempt3"))[0]
    job_id = aws.batch.submit_job(jobName="heat-big", jobQueue=QUEUE,
                                  jobDefinition=template["jobDefinition"],
                                  tags=template["tags"])["jobId"]
    aws.set_status(job_id, "FAILED", "Essential container in task exited")
    # where Batch reports an attempt's exit (AttemptContainerDetail.exitCode); moto's own
    # multi-node description leaves it out
    aws.backend()._jobs[job_id].attempts[-1]["container"]["exitCode"] = NODE_LOST
    return job_id


def test_an_event_repeated_submits_one_continuation_and_the_chain_is_found(aws: Aws) -> None:
    add_fallback_queue(aws)
    first = failed_first_job(aws)
    aws.start_recording()
    records = [handle(first, aws.batch, QUEUES, LATER) for _ in range(2)]
    assert [r["action"] for r in records] == ["continue", "continue"]
    assert records[0]["submitted"] == records[1]["submitted"] is not None
    assert len(submits(aws)) == 1
    # the node jobs were asked for, to count lost nodes (moto holds none: one assumed lost)
    asked = [r.body["jobs"] for r in aws.requests() if r.operation == "describejobs"]
    assert [f"{first}#{n}" for n in range(4)] in asked
    assert records[0]["nodes"] == 3
    second = records[0]["submitted"]
    chain = family_descriptions(aws.batch, aws.batch.describe_jobs(jobs=[second])["jobs"][0])
    assert [j["jobId"] for j in chain] == [second, first]
    # the continuation's own events: moto finished it at once, so the run is over
    assert handle(second, aws.batch, QUEUES, LATER)["action"] == "none"


def test_jobs_of_runs_without_a_minimum_are_ignored(aws: Aws) -> None:
    job_id = aws.batch.submit_job(jobName="plain", jobQueue=QUEUE,
                                  jobDefinition="mnp-batch-mpi")["jobId"]
    aws.start_recording()
    assert handle(f"{job_id}#1", aws.batch, QUEUES, LATER)["action"] == "ignored"
    assert submits(aws) == []


def test_queues_come_from_the_environment() -> None:
    value = json.dumps([{"name": q.name, "slots": q.slots, "vcpus": q.vcpus,
                         "memory_mib": q.memory_mib} for q in QUEUES])
    assert queues_from_env({QUEUES_ENV: value}) == QUEUES


@pytest.mark.parametrize("value, fragment", [
    (None, "is not set"), ("[{\"name\": \"q\"}]", "'slots'"), ("{", "not a JSON list")])
def test_bad_queue_settings_are_named(value: str | None, fragment: str) -> None:
    with pytest.raises(ValueError, match=QUEUES_ENV) as caught:
        queues_from_env({} if value is None else {QUEUES_ENV: value})
    assert fragment in str(caught.value)


def test_the_sweep_moves_a_stuck_job_and_continues_a_missed_failure_once(aws: Aws) -> None:
    """No events at all: the sweep finds the FAILED first job (its event lost) and the
    capacity-stuck one past its deadline; a second sweep submits nothing new."""
    add_fallback_queue(aws)
    first = failed_first_job(aws)
    stuck = stuck_job(aws)
    aws.batch.submit_job(jobName="plain", jobQueue=QUEUE, jobDefinition="mnp-batch-mpi")
    created = aws.batch.describe_jobs(jobs=[stuck])["jobs"][0]["createdAt"]
    now = created + 31 * 60_000  # past the recording's 1800 s deadline
    aws.start_recording()
    records = {r["jobId"]: r for r in sweep(aws.batch, QUEUES, now)}
    assert set(records) == {first, stuck}  # the unmanaged job is left alone
    assert records[first]["action"] == "continue" and records[first]["submitted"]
    assert (records[stuck]["action"], records[stuck]["cancel"]) == ("move", stuck)
    again = {r["jobId"]: r for r in sweep(aws.batch, QUEUES, now + 60_000)}
    assert again[first]["submitted"] == records[first]["submitted"]
    assert len(submits(aws)) == 1


def test_the_sweep_leaves_failures_older_than_its_window(aws: Aws) -> None:
    failed_first_job(aws)
    aws.start_recording()
    assert sweep(aws.batch, QUEUES[:1], LATER + 365 * 86400_000) == []
    assert submits(aws) == []


def test_the_lambda_entry_point_takes_both_event_kinds(aws: Aws, monkeypatch,
                                                       capsys) -> None:
    """A "Batch Job State Change" event (its detail is the job's description) decides for
    that job; a schedule rule's "Scheduled Event" sweeps. Both log one JSON line a record."""
    add_fallback_queue(aws)
    first = failed_first_job(aws)
    aws.start_recording()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)  # boto3 reads it (AWS SDKs' setting)
    # the Lambda runtime sets it (besides AWS_REGION, which this botocore does not read)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv(QUEUES_ENV, json.dumps([
        {"name": q.name, "slots": q.slots, "vcpus": q.vcpus, "memory_mib": q.memory_mib}
        for q in QUEUES]))
    detail = aws.batch.describe_jobs(jobs=[first])["jobs"][0]
    change = {"version": "0", "detail-type": "Batch Job State Change", "source": "aws.batch",
              "resources": [detail["jobArn"]], "detail": detail}
    [record] = lambda_handler(change, None)
    assert record["action"] == "continue" and record["submitted"]
    scheduled = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
                 "detail": {}}
    monkeypatch.setenv(SPOT_QUEUE_ENV, SPOT_QUEUE)  # as the stack sets it
    swept = lambda_handler(scheduled, None)
    listed = {(r.body.get("jobQueue"), r.body.get("jobStatus")) for r in aws.requests()
              if r.operation == "listjobs"}
    assert (SPOT_QUEUE, "FAILED") in listed and (SPOT_QUEUE, "RUNNABLE") not in listed
    assert [r["submitted"] for r in swept if r["jobId"] == first] == [record["submitted"]]
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(logged) == 1 + len(swept)
    assert len(submits(aws)) == 1
