"""A run of Spot gangs through the controller against the moto server: a reclaimed member's
gang is continued as one new, smaller array job, once however many children report."""

from __future__ import annotations

from continuation.apply import CHECKPOINT_FLAG, RESTART_FLAG
from continuation.handler import handle, sweep
from launcher.contract import NODE_LOST, STOPPED
from tests.continuation.test_apply import QUEUES, add_fallback_queue, submits
from tests.continuation.test_decide import LATER
from tests.continuation.test_gang_cancel import as_batch, gang
from tests.jobs.moto_env import QUEUE, SPOT_QUEUE, Aws

RUN_TAGS = {"mnp:min-nodes": "2", "mnp:max-generations": "5", "mnp:gang": "3"}


def test_a_reclaimed_gang_continues_once_as_a_smaller_array(aws: Aws) -> None:
    add_fallback_queue(aws)  # the controller searches every queue of the stack
    parent = gang(aws, 3, RUN_TAGS, {"OUTPUT_PATH": "/mnt/efs/runs"})
    checkpoints = f"/mnt/efs/runs/{parent}/checkpoints"
    aws.batch.tag_resource(resourceArn=aws.batch.describe_jobs(jobs=[parent])["jobs"][0]
                           ["jobArn"], tags={"mnp:checkpoint": checkpoints})
    # Member 1 got the Spot watcher's SIGTERM (143), member 0 lost it (4); member 2 still
    # runs. moto keeps neither exit codes nor a child's index: as_batch adds them.
    as_batch(aws, f"{parent}:1", STOPPED)
    as_batch(aws, f"{parent}:0", NODE_LOST)
    aws.set_status(f"{parent}:2", "RUNNING")
    aws.start_recording()

    early = handle(f"{parent}:1", aws.batch, QUEUES, LATER)
    assert early["action"] == "none" and early["submitted"] is None
    assert submits(aws) == []

    as_batch(aws, f"{parent}:2", NODE_LOST)
    last = handle(f"{parent}:2", aws.batch, QUEUES, LATER)
    assert (last["action"], last["family"], last["nodes"]) == ("continue", parent, 2)
    (request,) = submits(aws)
    assert request["arrayProperties"] == {"size": 2}
    assert (request["jobName"], request["jobQueue"]) == ("heat-gang-g2", QUEUE)
    container = request["containerOverrides"]
    # moto gives the children attempts, so the run resumes from its checkpoints.
    assert container["command"][-4:] == [CHECKPOINT_FLAG, checkpoints, RESTART_FLAG,
                                         checkpoints]
    # Batch's own variables (moto lists AWS_BATCH_JOB_ID in the description) stay out:
    # "Environment variables cannot start with AWS_BATCH" (ContainerOverrides).
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env == {"MNP_GANG": "1", "OUTPUT_PATH": "/mnt/efs/runs"}
    assert {k: request["tags"][k] for k in ("mnp:gang", "mnp:family", "mnp:generation")} == {
        "mnp:gang": "2", "mnp:family": parent, "mnp:generation": "2"}

    # Every other child's event, and a redelivery: the same continuation, not a second one.
    again = [handle(f"{parent}:{i}", aws.batch, QUEUES, LATER) for i in (0, 1, 2)]
    assert {r["submitted"] for r in again} == {last["submitted"]}
    assert len(submits(aws)) == 1
    described = aws.batch.describe_jobs(jobs=[last["submitted"]])["jobs"][0]
    assert described["arrayProperties"]["size"] == 2


def test_the_sweep_continues_a_gang_on_the_spot_queue_whose_events_were_lost(aws: Aws) -> None:
    """No event reached the controller: the 5-minute sweep finds the gang's FAILED array
    parent on the Spot queue and continues the run, once however often it sweeps."""
    add_fallback_queue(aws)  # QUEUES names it
    parent = gang(aws, 3, RUN_TAGS, {"OUTPUT_PATH": "/mnt/efs/runs"}, queue=SPOT_QUEUE)
    as_batch(aws, f"{parent}:1", STOPPED)
    as_batch(aws, f"{parent}:0", NODE_LOST)
    as_batch(aws, f"{parent}:2", NODE_LOST)
    # Batch: "If any child job fails, the parent array job status is FAILED" once every child
    # has ended (user guide, "Array jobs"); moto leaves the parent as it was.
    aws.set_status(parent, "FAILED")
    now = aws.batch.describe_jobs(jobs=[parent])["jobs"][0]["createdAt"] + 60_000
    aws.start_recording()
    assert sweep(aws.batch, QUEUES, now) == []  # the failover queues alone hold no gang

    [record] = sweep(aws.batch, QUEUES, now, gang_queues=[SPOT_QUEUE])
    assert (record["jobId"], record["action"], record["nodes"]) == (parent, "continue", 2)
    (request,) = submits(aws)
    assert (request["arrayProperties"], request["jobQueue"]) == ({"size": 2}, SPOT_QUEUE)
    [again] = sweep(aws.batch, QUEUES, now + 300_000, gang_queues=[SPOT_QUEUE, SPOT_QUEUE])
    assert again["submitted"] == record["submitted"] and len(submits(aws)) == 1
