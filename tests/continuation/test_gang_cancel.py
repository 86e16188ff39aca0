"""The controller ends a Spot gang that could not assemble: a member's FAILED event with exit
3 leads to CancelJob on the array's parent (moto server), once however often it is told."""

from __future__ import annotations

import time
from typing import Any

from continuation.decide import GANG_MARK
from continuation.handler import handle
from launcher.contract import GANG_ENV, RENDEZVOUS_TIMEOUT
from tests.continuation.test_apply import QUEUES
from tests.continuation.test_decide import LATER
from tests.jobs.moto_env import QUEUE, Aws


def gang(aws: Aws, size: int, tags: dict[str, str] | None = None,
         env: dict[str, str] | None = None, queue: str = QUEUE) -> str:
    """An array job of `size` members with MNP_GANG=1 and `env` (as `submit --spot-gang` sends
    it), tagged `tags`, once moto's non-Docker Batch has run every child (it runs them at
    once)."""
    variables = [{"name": k, "value": v} for k, v in {GANG_ENV: "1", **(env or {})}.items()]
    definition = aws.batch.register_job_definition(
        jobDefinitionName="mnp-batch-spot", type="container", platformCapabilities=["EC2"],
        containerProperties={"image": "mnp:latest", "command": ["python", "-m", "solver", "heat"],
                             "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                      {"type": "MEMORY", "value": "1024"}]})
    parent = aws.batch.submit_job(
        jobName="heat-gang", jobQueue=queue, jobDefinition=definition["jobDefinitionArn"],
        arrayProperties={"size": size}, retryStrategy={"attempts": 1},
        containerOverrides={"environment": variables}, tags=tags or {})["jobId"]
    children = [f"{parent}:{i}" for i in range(size)]
    deadline = time.monotonic() + 30
    while {j["status"] for j in aws.batch.describe_jobs(jobs=children)["jobs"]} != {"SUCCEEDED"}:
        assert time.monotonic() < deadline, "moto did not finish the array's children"
        time.sleep(0.1)
    return parent


def as_batch(aws: Aws, job_id: str, code: int | None = None) -> None:
    """Member `job_id` described as Batch describes an array child, FAILED with `code` when
    given. moto 5.2.5 gives a child no `arrayProperties` and keeps no exit code; Batch gives
    the child's index ("returned for array job children", ArrayPropertiesDetail.index, Batch
    API reference)."""
    if code is not None:
        aws.set_status(job_id, "FAILED", "Essential container in task exited")
    job = aws.backend()._jobs[job_id]
    describe = job.describe

    def described() -> dict[str, Any]:
        found = {**describe(), "arrayProperties": {"index": int(job_id.rpartition(":")[2])}}
        if code is not None:
            found["container"] = {**found.get("container", {}), "exitCode": code}
        return found

    job.describe = described


def test_a_member_that_exited_3_cancels_its_array_once(aws: Aws) -> None:
    parent = gang(aws, 4)
    # Batch: the parent is PENDING while a child is RUNNABLE (user guide, array_jobs.html).
    aws.set_status(parent, "PENDING")
    aws.set_status(f"{parent}:3", "RUNNABLE")
    as_batch(aws, f"{parent}:1", RENDEZVOUS_TIMEOUT)
    aws.start_recording()

    first = handle(f"{parent}:1", aws.batch, QUEUES, LATER)
    assert (first["action"], first["cancelled"]) == ("cancel-gang", parent)
    cancels = [r.body for r in aws.requests() if r.operation == "canceljob"]
    assert len(cancels) == 1 and cancels[0]["jobId"] == parent
    assert cancels[0]["reason"].startswith(GANG_MARK + f"member {parent}:1 exited 3")
    # moto leaves a cancelled job's status as it was; Batch cancels the children still
    # queued and then the parent "when all child jobs are completed" (API reference,
    # CancelJob): FAILED.
    aws.set_status(parent, "FAILED", cancels[0]["reason"])

    # Member 2's own exit 3 (its event), and member 1's event delivered again: nothing left.
    as_batch(aws, f"{parent}:2", RENDEZVOUS_TIMEOUT)
    again = [handle(f"{parent}:{i}", aws.batch, QUEUES, LATER) for i in (2, 1)]
    assert [r["cancelled"] for r in again] == [None, None]
    assert len([r for r in aws.requests() if r.operation == "canceljob"]) == 1


def test_a_member_that_succeeded_cancels_nothing(aws: Aws) -> None:
    parent = gang(aws, 2)
    as_batch(aws, f"{parent}:0")
    aws.start_recording()
    record = handle(f"{parent}:0", aws.batch, QUEUES, LATER)
    assert (record["action"], record["cancelled"]) == ("none", None)
    # The member, then its parent (is it a run's member?): nothing cancelled or submitted.
    assert [r.operation for r in aws.requests()] == ["describejobs", "describejobs"]
