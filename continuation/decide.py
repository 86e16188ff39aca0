"""What to do next with a run: a pure function of its jobs' Batch descriptions.

`decide(family, queues, now_ms)` reads only what DescribeJobs returns (status, statusReason,
exit codes, attempts, tags) plus the clock for a RUNNABLE job's deadline, and returns one
Decision. It calls no AWS API: `continuation.apply` carries the decision out. The exit codes
and their meanings are the contract's (launcher/contract.py); the Batch strings are cited
where they are matched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from continuation.family import Family, Member
from launcher.contract import (
    EXIT_MEANINGS,
    GANG_ENV,
    HOST_FAILURE_REASON,
    NODE_LOST,
    RENDEZVOUS_TIMEOUT,
    STOPPED,
    STUCK_RUNNABLE_REASONS,
    USAGE,
)

ACTIVE = ("SUBMITTED", "PENDING", "STARTING", "RUNNING")  # Batch runs or schedules it itself
# JobDetail.statusReason (Batch API reference): a queue reason no job change can fix.
SERVICE_ROLE_REASON = "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS"
CAPACITY_REASON, MAX_RESOURCE_REASON, REQUIREMENT_REASON = STUCK_RUNNABLE_REASONS
SHRINKABLE = (CAPACITY_REASON, MAX_RESOURCE_REASON)  # fewer nodes may fit; another type may too
# "statusReason message after the job is canceled by jobStateTimeLimitActions: Canceled by
# JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY" (Batch
# user guide, "Jobs stuck in RUNNABLE due to capacity").
QUEUE_CANCEL_PREFIX = "Canceled by JobStateTimeLimit action due to reason: "
# Batch's statusReason when attemptDurationSeconds ran out (not in AWS's pages; as recorded
# by Batch users, e.g. GenePattern's AWSBatchJobRunner: "awsStatusReason: Job attempt
# duration exceeded timeout, containerExitCode: 137"). The container got SIGTERM, then
# SIGKILL 30 s later (user guide, "Job timeouts"): a checkpoint was written (143) or the
# last periodic one stands (137).
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
# The reason the controller gives CancelJob when it replaces a stuck job; the original reason
# follows it, so a replacement lost between cancel and submit can be redone from it.
CONTROLLER_MARK = "mnp-continuation replaced this job: "
HOST_LOST = HOST_FAILURE_REASON.rstrip("*")
# The reason given CancelJob on a gang's array parent (its children's statusReason then says
# who cancelled them and why).
GANG_MARK = "mnp-continuation cancelled the gang: "
# "the array index for the child job is appended to the end of the parent ID, such as
# example_job_ID:0" (Batch user guide, array_jobs.html).
ARRAY_CHILD_SEPARATOR = ":"
# SubmitJob arrayProperties.size: "between 2 and 10,000" (Batch API reference, ArrayProperties).
MIN_GANG_SIZE = 2


class Action(StrEnum):
    NONE = "none"  # nothing to do: the job runs, waits its turn, or the run is over
    WAIT = "wait"  # stuck RUNNABLE, before its deadline: look again at `wake_at_ms`
    CONTINUE = "continue"  # a new job from the family's checkpoints, on `nodes` nodes
    MOVE = "move"  # the same work on the next fallback queue (same total ranks)
    GIVE_UP = "give-up"  # the run ends; `reason` says why
    CANCEL_GANG = "cancel-gang"  # CancelJob on `cancel`, a Spot gang's array parent


@dataclass(frozen=True)
class QueueSpec:
    """A queue the run may use, in failover order (the first is the run's own)."""

    name: str
    slots: int  # MPI ranks one node of its instance type takes (MNP_RANKS_PER_NODE)
    vcpus: int  # the VCPU requirement of a whole node of that type
    memory_mib: int  # the MEMORY requirement of a whole node of that type


@dataclass(frozen=True)
class Decision:
    """One step for the controller to take (continuation.apply carries it out)."""

    action: Action
    reason: str
    nodes: int | None = None
    queue: str | None = None  # CONTINUE/MOVE: where the new job goes
    ranks_per_node: int | None = None  # MOVE: recomputed for the fallback's type
    generation: int | None = None  # CONTINUE/MOVE: the new job's generation
    cancel: str | None = None  # a RUNNABLE job to cancel before its replacement is submitted
    restart: bool = False  # the new job resumes from checkpoints (some member ever started)
    wake_at_ms: int | None = None  # WAIT: when its deadline passes
    details: Mapping[str, object] = field(default_factory=dict)


def decide(family: Family, queues: Sequence[QueueSpec], now_ms: int,
           available: Mapping[str, int] | None = None) -> Decision:
    """The next step for `family`; `available` (queue name -> nodes) is an optional capacity
    hint (a later capacity check may supply it), which caps a continuation's node count."""
    job = family.newest
    status = job.status
    if status in ACTIVE:
        return Decision(Action.NONE, f"{job.job_id} is {status}")
    if status == "SUCCEEDED":
        return Decision(Action.NONE, f"the run succeeded ({job.job_id})")
    if status == "RUNNABLE":
        return _runnable(family, job, queues, now_ms, available or {})
    if status != "FAILED":
        return Decision(Action.NONE, f"{job.job_id} has an unknown status {status!r}")
    return _failed(family, job, queues, available or {})


def gang_decision(job: Mapping[str, Any]) -> Decision | None:
    """For an array child of a Spot gang (`MNP_GANG=1` in its container's environment): cancel
    the array's parent when the member FAILED with exit 3, the gang not having assembled, so
    that its members still queued never start; None for any job that is not a gang member.

    CancelJob on an array parent "attempts to cancel all child jobs" (Batch API reference,
    CancelJob); members that started already end on their own (launcher/README.md, "A gang
    that gives up cancels itself").
    """
    if "index" not in (job.get("arrayProperties") or {}):  # only a child has an index
        return None
    container = job.get("container") or {}
    env = {e.get("name"): e.get("value") for e in container.get("environment") or []}
    if env.get(GANG_ENV) != "1":
        return None
    job_id = str(job.get("jobId", ""))
    parent = job_id.partition(ARRAY_CHILD_SEPARATOR)[0]
    # ContainerDetail.exitCode, else the last attempt's (AttemptContainerDetail.exitCode).
    last = (job.get("attempts") or [{}])[-1]
    code = container.get("exitCode", (last.get("container") or {}).get("exitCode"))
    if job.get("status") != "FAILED" or code != RENDEZVOUS_TIMEOUT:
        return Decision(Action.NONE, f"gang member {job_id} is {job.get('status')} "
                        f"(exit {code}): nothing to cancel")
    return Decision(Action.CANCEL_GANG, f"{GANG_MARK}member {job_id} exited {code}, the gang "
                    "did not assemble within its bound; members still queued must not start",
                    cancel=parent)


def gang_run_decision(family: Family, children: Sequence[Mapping[str, Any]],
                      available: Mapping[str, int] | None = None) -> Decision:
    """The next step for a run whose newest member is a Spot gang (an array parent), from its
    children's descriptions (`<parent>:<index>`); pure, like `decide`.

    Only once every child has ended: the last child's event decides, and an earlier one's
    decides nothing, so one attempt of a gang leads to one decision (apply's look-before-submit
    by the continuation's name covers two children ending at once). Who was lost:
    1. children whose (last attempt's) statusReason is "Host EC2 ..." (the instance went before
       the container ended), else
    2. children that exited 143 (STOPPED: the Spot watcher's SIGTERM, launcher/README.md "A
       Spot interruption on ECS") while another exited 4 (NODE_LOST: it saw them go), else
    3. one, when children exited 4 and none is identified, as for a multi-node job; and
       none when every child exited 143 (a stop that reached every member: a timeout, or an
       agreed checkpoint whose exit the whole world shares), which continues on the same size.
    Which of these a real reclaim produces is for a real account to show (continuation/README.md).
    """
    job = family.newest
    kids = [Member(dict(c)) for c in children]
    if waiting := [k.job_id for k in kids if k.status not in ("SUCCEEDED", "FAILED")]:
        return Decision(Action.NONE, f"gang {job.job_id}: {len(waiting)} member(s) not ended "
                        f"yet ({waiting[0]}, ...); the last one's event decides")
    failed = [k for k in kids if k.status == "FAILED"]
    if not failed:
        return Decision(Action.NONE, f"gang {job.job_id}: no member failed")
    if any(k.exit_code == RENDEZVOUS_TIMEOUT or k.status_reason.startswith(GANG_MARK)
           for k in failed):
        return Decision(Action.GIVE_UP, f"gang {job.job_id} did not assemble (exit "
                        f"{RENDEZVOUS_TIMEOUT}) and was cancelled; a new gang would wait alike")
    if stopped := [k for k in failed if k.description.get("isCancelled")
                   or k.description.get("isTerminated")]:
        return Decision(Action.GIVE_UP, f"{stopped[0].job_id} was stopped by CancelJob/"
                        f"TerminateJob: {stopped[0].status_reason or 'no reason given'} (a "
                        "user's stop ends the run)")
    host = [k for k in failed if k.attempt_reason.startswith(HOST_LOST)]
    codes = [k.exit_code for k in failed if k not in host]
    if odd := [k for k in failed if k not in host and k.exit_code not in (NODE_LOST, STOPPED)
               and not k.attempt_reason.startswith(TIMEOUT_REASON)]:
        return Decision(Action.GIVE_UP, f"{odd[0].job_id} exit {odd[0].exit_code}: "
                        f"{odd[0].status_reason or 'no reason given'} (not a lost or stopped "
                        "member: a new gang would fail the same way)")
    if host:
        lost, why = len(host), f"{len(host)} member instance(s) went away"
    elif STOPPED in codes and NODE_LOST in codes:
        lost = codes.count(STOPPED)
        why = f"{lost} member(s) stopped (exit {STOPPED}), the others lost them (exit {NODE_LOST})"
    elif NODE_LOST in codes:
        lost, why = 1, f"members exited {NODE_LOST}: {EXIT_MEANINGS[NODE_LOST]}"
    else:
        lost, why = 0, f"every failed member stopped (exit {STOPPED} or a timeout)"
    decision = _continue(family, job, job.num_nodes - lost, available or {}, why)
    if decision.action is not Action.CONTINUE:
        return decision
    if decision.nodes is not None and decision.nodes < MIN_GANG_SIZE:
        return Decision(Action.GIVE_UP, f"{job.job_id}: {why}; a gang needs at least "
                        f"{MIN_GANG_SIZE} members (ArrayProperties.size)")
    # An array parent has no attempts of its own: its children's say whether it ran.
    return dataclasses.replace(
        decision, restart=decision.restart or any(k.attempts for k in kids))


def _runnable(family: Family, job: Member, queues: Sequence[QueueSpec], now_ms: int,
              available: Mapping[str, int]) -> Decision:
    # "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested
    # for instance type [...]" (user guide): the code before " - " is the reason.
    reason = job.status_reason.partition(" - ")[0].strip()
    if reason == SERVICE_ROLE_REASON:
        return Decision(Action.GIVE_UP, f"{job.job_id} cannot start: {job.status_reason} "
                        "(the service role needs fixing; another job would wait the same)")
    if reason not in STUCK_RUNNABLE_REASONS:
        return Decision(Action.NONE, f"{job.job_id} is RUNNABLE, waiting its turn")
    deadline = job.runnable_since_ms + family.runnable_deadline_s * 1000
    if now_ms < deadline:
        return Decision(Action.WAIT, f"{job.job_id} is stuck ({reason}) until its deadline",
                        wake_at_ms=deadline)
    return _stuck(family, job, reason, queues, available, cancel=job.job_id)


def _failed(family: Family, job: Member, queues: Sequence[QueueSpec],
            available: Mapping[str, int]) -> Decision:
    reason = job.status_reason
    for prefix in (QUEUE_CANCEL_PREFIX, CONTROLLER_MARK):
        if reason.startswith(prefix):  # never ran: the queue or we gave up waiting on it
            stuck = reason[len(prefix):].partition(" - ")[0].strip()
            return _stuck(family, job, stuck, queues, available, cancel=None)
    if reason.startswith(TIMEOUT_REASON):
        return _continue(family, job, job.num_nodes, available, "its attempt timed out")
    if reason.startswith(HOST_LOST):
        lost = max(1, job.lost_nodes(HOST_LOST))
        return _continue(family, job, job.num_nodes - lost, available,
                         f"{lost} instance(s) went away ({reason})")
    if job.description.get("isCancelled") or job.description.get("isTerminated"):
        return Decision(Action.GIVE_UP, f"{job.job_id} was stopped by CancelJob/TerminateJob: "
                        f"{reason or 'no reason given'} (a user's stop ends the run)")
    code = job.exit_code
    if code is None:
        return Decision(Action.GIVE_UP, f"{job.job_id} failed without an exit code: "
                        f"{reason or 'no reason given'}")
    if code == USAGE:
        return Decision(Action.GIVE_UP, f"{job.job_id} exit {code}: {EXIT_MEANINGS[USAGE]}")
    if code in (NODE_LOST, RENDEZVOUS_TIMEOUT):
        lost = max(1, job.lost_nodes(HOST_LOST))
        return _continue(family, job, job.num_nodes - lost, available,
                         f"exit {code} after {job.attempts} attempt(s): {EXIT_MEANINGS[code]}")
    if code == STOPPED:
        return _continue(family, job, job.num_nodes, available,
                         f"exit {code}: {EXIT_MEANINGS[STOPPED]}")
    return Decision(Action.GIVE_UP, f"{job.job_id} exit {code}: application error "
                    f"({EXIT_MEANINGS['other']})")


def _stuck(family: Family, job: Member, reason: str, queues: Sequence[QueueSpec],
           available: Mapping[str, int], *, cancel: str | None) -> Decision:
    """A job that never started and never will where it is: next queue, else fewer nodes."""
    if (limit := _at_limit(family)) is not None:
        return limit
    names = [q.name for q in queues]
    here = names.index(job.queue) if job.queue in names else -1
    if reason in (*SHRINKABLE, REQUIREMENT_REASON) and here + 1 < len(queues):
        target = queues[here + 1]
        total = job.num_nodes * job.ranks_per_node
        nodes = nodes_for(total, target.slots)
        return Decision(Action.MOVE, f"{job.job_id} stuck ({reason}): moving to {target.name}",
                        nodes=nodes, queue=target.name, ranks_per_node=total // nodes,
                        generation=family.newest.generation + 1, cancel=cancel,
                        restart=_ever_started(family), details={"total_ranks": total})
    if reason not in SHRINKABLE:
        return Decision(Action.GIVE_UP, f"{job.job_id} stuck ({reason}) and no fallback queue "
                        "is left")
    # No hint: halve, so a 1,000-node job reaches its minimum in a few deadlines, not hundreds.
    wanted = min(available.get(job.queue, job.num_nodes // 2), job.num_nodes - 1)
    decision = _continue(family, job, wanted, {}, f"stuck ({reason}) on the last queue")
    return _replace(decision, cancel)


def _continue(family: Family, job: Member, nodes: int, available: Mapping[str, int],
              why: str) -> Decision:
    if (limit := _at_limit(family)) is not None:
        return limit
    nodes = min(nodes, available.get(job.queue, nodes))
    if nodes < family.min_nodes:
        return Decision(Action.GIVE_UP, f"{job.job_id}: {why}; {nodes} node(s) left, fewer "
                        f"than the run's minimum of {family.min_nodes}")
    return Decision(Action.CONTINUE, f"{job.job_id}: {why}; continuing on {nodes} node(s)",
                    nodes=nodes, queue=job.queue, generation=family.newest.generation + 1,
                    restart=_ever_started(family))


def _replace(decision: Decision, cancel: str | None) -> Decision:
    if decision.action is not Action.CONTINUE:
        return decision
    return Decision(**{**decision.__dict__, "cancel": cancel})


def _at_limit(family: Family) -> Decision | None:
    if family.newest.generation >= family.max_generations:
        return Decision(Action.GIVE_UP, f"run {family.id} used all {family.max_generations} "
                        "jobs it may (mnp:max-generations)")
    return None


def _ever_started(family: Family) -> bool:
    """Whether any member ran (it has attempts: "A list of job attempts", JobDetail), so
    checkpoints may exist; a run none of whose jobs ever ran must not ask to restart."""
    return any(m.attempts for m in family.members)


def nodes_for(total: int, slots: int) -> int:
    """Fewest nodes of `slots` ranks each that hold exactly `total` ranks, evenly."""
    nodes = math.ceil(total / slots)
    while total % nodes:
        nodes += 1
    return nodes
