"""Carry a Decision out with Batch calls: SubmitJob of the continuation, CancelJob of a job it
replaces. Idempotent: a second delivery of the same event finds the job the first submitted.

The new job's name is the family's name plus its generation (`family.continuation_name`), and
its tags link it to the family; before submitting, the family's queues are searched for that
name (ListJobs' JOB_NAME filter) and a hit of the same family is returned instead. Two
deliveries handled at the same instant could both miss: the controller must run one at a
time (continuation/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from continuation.decide import CONTROLLER_MARK, Action, Decision, QueueSpec
from continuation.family import TAG_FAMILY, TAG_GANG, Family
from launcher.contract import RANKS_PER_NODE_ENV

CHECKPOINT_FLAG = "--checkpoint-dir"  # the solver's options (solver/config.py)
RESTART_FLAG = "--restart-from"
# ContainerOverrides.environment: "Environment variables cannot start with "AWS_BATCH". This
# naming convention is reserved for variables that Batch sets." (Batch API reference)
RESERVED_ENV_PREFIX = "AWS_BATCH"
# CancelJob moves SUBMITTED, PENDING and RUNNABLE jobs to FAILED; one that reached STARTING
# is not cancelled, "However, the API operation still succeeds" (Batch API reference).
CANCELLED_OR_GONE = ("FAILED",)
# An array parent is SUBMITTED, PENDING, FAILED or SUCCEEDED (Batch user guide, array_jobs.html):
# only before it ends is there anything queued to cancel.
CANCELLABLE_PARENT = ("SUBMITTED", "PENDING")


def continuation_command(family: Family, command: Sequence[str], restart: bool) -> list[str]:
    """`command` writing its checkpoints to the family's directory and, when some member
    ran, resuming from the newest valid one there.

    Every member after the first is named with --restart-from (those described and those
    the recorded command already names), so the launcher admits checkpoints
    sealed with any of their keys (launcher/jobkeys.py: one key per job id named); the last
    flag names the family's directory itself, which is the one the solver reads (argparse
    keeps the last value of a repeated option).
    """
    base = _without(list(command), (CHECKPOINT_FLAG, RESTART_FLAG))
    extra = [CHECKPOINT_FLAG, family.checkpoint_dir]
    if restart:
        # Members named by the recorded command too: Batch may no longer describe old ones.
        earlier = [*_values(command, RESTART_FLAG),
                   *(family.job_dir(m) for m in family.members if m.generation > 1)]
        for path in dict.fromkeys(p for p in earlier if p != family.checkpoint_dir):
            extra += [RESTART_FLAG, path]
        extra += [RESTART_FLAG, family.checkpoint_dir]
    return base + extra


def continuation_request(family: Family, decision: Decision,
                         queues: Sequence[QueueSpec]) -> dict[str, Any]:
    """The SubmitJob request for a CONTINUE or MOVE decision (pure; printed by dry runs)."""
    if decision.action not in (Action.CONTINUE, Action.MOVE) or decision.generation is None:
        raise ValueError(f"no job to submit for a {decision.action} decision")
    job = family.newest
    env = {k: v for k, v in job.environment().items() if not k.startswith(RESERVED_ENV_PREFIX)}
    container: dict[str, Any] = {
        "command": continuation_command(family, job.container.get("command", []),
                                        decision.restart)}
    requirements = job.container.get("resourceRequirements") or []
    if decision.action is Action.MOVE:
        spec = next(q for q in queues if q.name == decision.queue)
        env[RANKS_PER_NODE_ENV] = str(decision.ranks_per_node)
        requirements = [{"type": "VCPU", "value": str(spec.vcpus)},
                        {"type": "MEMORY", "value": str(spec.memory_mib)}]
    container["environment"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    if requirements:
        container["resourceRequirements"] = [
            {"type": r["type"], "value": r["value"]} for r in requirements
            if r.get("type") in ("VCPU", "MEMORY")]
    request: dict[str, Any] = {
        "jobName": family.continuation_name(decision.generation),
        "jobQueue": decision.queue,
        "jobDefinition": job.description["jobDefinition"],
        "propagateTags": True,
        "tags": family.tags_for(decision.generation, job),
    }
    if job.is_gang:  # a new gang: one array child per member (jobs/spotgang.gang_request)
        request["containerOverrides"] = container
        request["arrayProperties"] = {"size": decision.nodes}
        request["tags"][TAG_GANG] = str(decision.nodes)
    else:
        request["nodeOverrides"] = {"numNodes": decision.nodes, "nodePropertyOverrides": [
            {"targetNodes": "0:", "containerOverrides": container}]}
    # `parameters` carry --stage-out's location: each member's terminal-state event then
    # stages out its own OUTPUT_PATH/<job id>/ (stacks/stage_out.py), the last one the result.
    for key in ("retryStrategy", "timeout", "parameters"):
        if job.description.get(key):
            request[key] = job.description[key]
    return request


def apply(decision: Decision, family: Family, queues: Sequence[QueueSpec],
          batch: Any) -> str | None:
    """Carry `decision` out with the boto3 Batch client `batch`; the id of the family's new
    (or already submitted) job, None when there is nothing to submit now."""
    if decision.action not in (Action.CONTINUE, Action.MOVE):
        return None
    request = continuation_request(family, decision, queues)
    searched = dict.fromkeys([*(q.name for q in queues), family.newest.queue, decision.queue])
    existing = find_member(batch, family.id, request["jobName"], list(searched))
    if existing is not None:
        return existing
    if decision.cancel is not None:
        # The reason carries the original one, so the FAILED event this cancel causes leads
        # decide() to the same replacement if this call dies before submitting it.
        batch.cancel_job(jobId=decision.cancel,
                         reason=(CONTROLLER_MARK + family.newest.status_reason)[:1024])
        status = batch.describe_jobs(jobs=[decision.cancel])["jobs"][0]["status"]
        if status not in CANCELLED_OR_GONE:
            return None  # it started after all, or is still being cancelled: its event decides
    return batch.submit_job(**request)["jobId"]


def cancel_gang(decision: Decision, batch: Any) -> str | None:
    """CancelJob on the array parent of a CANCEL_GANG decision, so Batch cancels its children
    still queued; the parent's id, None when it has ended already (a second member's event, a
    redelivery), since then nothing is left to cancel."""
    if decision.action is not Action.CANCEL_GANG or decision.cancel is None:
        return None
    found = batch.describe_jobs(jobs=[decision.cancel])["jobs"]
    if not found or found[0]["status"] not in CANCELLABLE_PARENT:
        return None
    # CancelJob's reason: "This parameter has as limit of 1024 characters" (API reference).
    batch.cancel_job(jobId=decision.cancel, reason=decision.reason[:1024])
    return decision.cancel


def find_member(batch: Any, family_id: str, name: str, queues: Sequence[str]) -> str | None:
    """The id of a job of family `family_id` named `name` in any of `queues`, if one exists.

    ListJobs' JOB_NAME filter is a case-insensitive match of the name, and with a filter
    ListJobs returns jobs of every status (Batch API reference, KeyValuesPair/ListJobs).
    """
    ids: list[str] = []
    for queue in queues:
        pages = batch.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])
        ids += [s["jobId"] for page in pages for s in page["jobSummaryList"]]
    for start in range(0, len(ids), 100):  # DescribeJobs takes up to 100 ids
        for job in batch.describe_jobs(jobs=ids[start:start + 100])["jobs"]:
            if (job.get("tags") or {}).get(TAG_FAMILY) == family_id:
                return job["jobId"]
    return None


def _values(command: Sequence[str], flag: str) -> list[str]:
    """The values `command` gives `flag` (`FLAG VALUE` or `FLAG=VALUE`), in order."""
    found = [command[i + 1] for i in range(len(command) - 1) if command[i] == flag]
    return found + [w.split("=", 1)[1] for w in command if w.startswith(f"{flag}=")]


def _without(command: list[str], flags: Sequence[str]) -> list[str]:
    """`command` minus every `FLAG VALUE` and `FLAG=VALUE` of `flags`."""
    out: list[str] = []
    skip = False
    for word in command:
        if skip:
            skip = False
        elif word in flags:
            skip = True
        elif not word.startswith(tuple(f"{f}=" for f in flags)):
            out.append(word)
    return out
