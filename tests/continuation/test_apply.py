"""apply() against a moto server: the continuation's SubmitJob, the CancelJob of a stuck job,
and a second delivery of the same event, which must not submit twice."""

from __future__ import annotations

import copy
from typing import Any

from continuation.apply import apply
from continuation.decide import CONTROLLER_MARK, Action, QueueSpec, decide
from continuation.family import (
    TAG_CHECKPOINT,
    TAG_FAMILY,
    TAG_GENERATION,
    TAG_PREVIOUS,
    family_of,
)
from tests.continuation.test_decide import LATER, recorded
from tests.jobs.moto_env import QUEUE, Aws

FALLBACK_QUEUE = "mnp-batch-mpi-fallback1"
QUEUES = [QueueSpec(QUEUE, slots=8, vcpus=8, memory_mib=14336),
          QueueSpec(FALLBACK_QUEUE, slots=16, vcpus=16, memory_mib=29696)]
CAPACITY = ("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity "
            "requested for instance type [c6i.2xlarge]")


def in_account(aws: Aws, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recording, its job definition replaced by one this moto account holds (moto
    resolves SubmitJob's jobDefinition against its own registrations)."""
    definition = aws.batch.register_job_definition(
        jobDefinitionName="mnp-batch-heat", type="multinode", platformCapabilities=["EC2"],
        nodeProperties=jobs[0]["nodeProperties"], propagateTags=True)["jobDefinitionArn"]
    return [{**copy.deepcopy(job), "jobDefinition": definition} for job in jobs]


def add_fallback_queue(aws: Aws) -> None:
    env = aws.create_environment("mnp-batch-fallback1-ce", "us-east-1b", ("c6i.4xlarge",))
    aws.batch.create_job_queue(jobQueueName=FALLBACK_QUEUE, state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{
                                   "order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])
    aws.start_recording()


def stuck_job(aws: Aws) -> str:
    """A job of the recorded run, RUNNABLE with a capacity reason and never started (moto's
    non-Docker Batch runs every job at once: its status and attempts are set back)."""
    template = in_account(aws, recorded("runnable_capacity"))[0]
    job_id = aws.batch.submit_job(
        jobName="heat-big", jobQueue=QUEUE, jobDefinition=template["jobDefinition"],
        tags=template["tags"])["jobId"]
    aws.set_status(job_id, "RUNNABLE", CAPACITY)
    aws.backend()._jobs[job_id].attempts = []
    return job_id


def submits(aws: Aws) -> list[dict[str, Any]]:
    return [r.body for r in aws.requests() if r.operation == "submitjob"]


def test_continuation_is_submitted_once_for_two_deliveries(aws: Aws) -> None:
    add_fallback_queue(aws)
    family = family_of(in_account(aws, recorded("node_lost_attempt3")))
    aws.start_recording()
    decision = decide(family, QUEUES, LATER)
    assert decision.action is Action.CONTINUE
    first = apply(decision, family, QUEUES, aws.batch)
    again = apply(decide(family, QUEUES, LATER), family, QUEUES, aws.batch)  # redelivered
    assert first is not None and again == first
    sent = submits(aws)
    assert len(sent) == 1
    request = sent[0]
    assert request["jobName"] == "heat-big-g2" and request["jobQueue"] == QUEUE
    assert request["nodeOverrides"]["numNodes"] == 3
    command = request["nodeOverrides"]["nodePropertyOverrides"][0]["containerOverrides"][
        "command"]
    assert command[-4:] == ["--checkpoint-dir", family.checkpoint_dir,
                            "--restart-from", family.checkpoint_dir]
    job = aws.batch.describe_jobs(jobs=[first])["jobs"][0]
    assert {k: job["tags"][k] for k in (TAG_FAMILY, TAG_GENERATION, TAG_PREVIOUS,
                                        TAG_CHECKPOINT)} == {
        TAG_FAMILY: family.id, TAG_GENERATION: "2", TAG_PREVIOUS: family.id,
        TAG_CHECKPOINT: family.checkpoint_dir}
    assert job["tags"]["mnp:min-nodes"] == "2"  # the run's settings travel with it


def test_a_stuck_job_is_cancelled_then_replaced_on_the_fallback_once(aws: Aws) -> None:
    """RUNNABLE with a capacity reason past its deadline: CancelJob first (it is still
    queued), then, on the FAILED event the cancel causes, SubmitJob to the fallback queue;
    the same FAILED event delivered twice submits once."""
    add_fallback_queue(aws)
    job_id = stuck_job(aws)
    aws.start_recording()

    def family_now() -> Any:
        return family_of(aws.batch.describe_jobs(jobs=[job_id])["jobs"])

    stuck = family_now()
    deadline = stuck.newest.runnable_since_ms + stuck.runnable_deadline_s * 1000
    decision = decide(stuck, QUEUES, deadline + 1)
    assert (decision.action, decision.cancel) == (Action.MOVE, job_id)
    # moto leaves a cancelled job's status as it was: Batch makes it FAILED, and the event
    # of that transition is what leads to the replacement.
    assert apply(decision, stuck, QUEUES, aws.batch) is None
    cancels = [r.body for r in aws.requests() if r.operation == "canceljob"]
    assert cancels == [{"jobId": job_id, "reason": CONTROLLER_MARK + CAPACITY}]
    assert submits(aws) == []

    aws.set_status(job_id, "FAILED", cancels[0]["reason"])
    cancelled = family_now()
    ids = {apply(decide(cancelled, QUEUES, deadline + 2), cancelled, QUEUES, aws.batch)
           for _ in range(2)}
    assert len(ids) == 1 and None not in ids
    sent = submits(aws)
    assert len(sent) == 1
    assert sent[0]["jobQueue"] == FALLBACK_QUEUE
    overrides = sent[0]["nodeOverrides"]
    container = overrides["nodePropertyOverrides"][0]["containerOverrides"]
    # the same 32 ranks (4 nodes x 8) on 16-slot nodes
    assert overrides["numNodes"] == 2
    assert {"name": "MNP_RANKS_PER_NODE", "value": "16"} in container["environment"]
    assert {"type": "VCPU", "value": "16"} in container["resourceRequirements"]
    assert "--restart-from" not in container["command"]  # it never ran: nothing to resume


def test_a_stuck_job_that_started_meanwhile_is_not_replaced(aws: Aws) -> None:
    """CancelJob succeeds without cancelling a job that reached STARTING (Batch API
    reference, CancelJob): then no replacement is submitted, or two jobs would run."""
    add_fallback_queue(aws)
    job_id = stuck_job(aws)
    stuck = family_of(aws.batch.describe_jobs(jobs=[job_id])["jobs"])
    decision = decide(stuck, QUEUES[:1], stuck.newest.runnable_since_ms + 3600_000)
    assert (decision.action, decision.nodes) == (Action.CONTINUE, 2)
    aws.set_status(job_id, "RUNNING")  # capacity arrived between decide and apply
    aws.start_recording()
    assert apply(decision, stuck, QUEUES, aws.batch) is None
    assert [r.operation for r in aws.requests()][-2:] == ["canceljob", "describejobs"]
    assert submits(aws) == []


def test_nothing_is_called_for_wait_none_and_give_up(aws: Aws) -> None:
    for name in ("succeeded", "exit_2", "exit_1", "terminated_by_user"):
        family = family_of(recorded(name))
        assert apply(decide(family, QUEUES, LATER), family, QUEUES, aws.batch) is None
    assert aws.requests() == []
