"""A run that outlives its nodes, as the controller would carry it, in containers of the image.

Each member of the run is a ContainerJob. When a member's attempt ends, this module writes the
DescribeJobs description Batch would (the shape of tests/continuation/descriptions/), asks
`continuation.decide.decide` (the code the controller's Lambda runs) what to do, and starts the
continuation it decides from `continuation.apply.continuation_request` (the SubmitJob request
the controller would send) applied to the job definition as Batch applies one. Nothing here
decides or builds a command of its own.

A **reclaim** (`Reclaim`) stands for a Spot reclaim of one node: once the main node has logged
the step, one child's container is stopped as ECS stops a task (SIGTERM, SIGKILL 30 s later:
the launcher forwards SIGTERM to its ranks, every rank checkpoints at one agreed step and the
job exits 143), and that node's capacity is gone: decide() is told the queue has one node
fewer (its `available` input) for the rest of the run.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from continuation.apply import continuation_request
from continuation.decide import Action, Decision, QueueSpec, decide
from continuation.family import family_of
from emulator.containers import STOP_GRACE, ContainerJob
from emulator.engine import docker
from emulator.jobdef import LocalJob, apply_request, resource

QUEUE = "local"  # run-local's one queue (jobs.request.JobSpec.queue)
ACCOUNT_ARN = "arn:aws:batch:local:000000000000"  # ARNs in the descriptions' shape
# The reason ECS gives when the main node's container exits on its own (as run-local uses).
EXIT_REASON = "Essential container in task exited"
STEP_LINE = re.compile(r"\bstep (\d+)/(\d+)\b")
STOP_LINE = re.compile(r"stop requested: checkpoint at step (\d+)")
RESUMED_LINE = re.compile(r"resumed from \S+ \(step (\d+)")


@dataclass(frozen=True)
class Reclaim:
    """Stop one child node's container once the member's main node has logged `after_steps`
    steps past where the member started (0, or the step it resumed from)."""

    after_steps: int


@dataclass
class Member:
    """What one member of the run did, for reports and the bench."""

    job_id: str
    nodes: int
    exit_code: int
    decision: Decision | None = None
    reclaimed_node: int | None = None
    sigterm_at: float | None = None  # epoch seconds the reclaim's SIGTERM was sent
    stop_step: int | None = None  # the agreed step its checkpoint holds
    resumed_step: int | None = None  # the step it resumed from (None: from the start)
    started_at: float = 0.0  # epoch seconds its main node's container was started
    exited_at: float = 0.0  # epoch seconds its main node's exit was seen
    first_step_at: float | None = None  # epoch seconds of its first logged step
    summary_line: str = ""
    descriptions: list[dict[str, Any]] = field(default_factory=list)  # parent, then nodes


def describe(request: Mapping[str, Any], local: LocalJob, job_id: str, codes: Mapping[int, int],
             started_ms: int, stopped_ms: int, reclaimed: int | None = None
             ) -> list[dict[str, Any]]:
    """The DescribeJobs entries of a multi-node job whose one attempt ended with node exit
    codes `codes`: the parent, then each node `<id>#<n>`, in the recorded fixtures' shape.

    The parent's exit code is the main node's ("exit information ... is populated from the
    main node", Batch user guide, multi-node parallel jobs). A reclaimed node's instance is
    gone: its reason is the one Batch gives a node whose host went away ("Host EC2 (instance
    i-...) terminated.", contract.HOST_FAILURE_REASON). nodeProperties are those the job ran
    with (the request's overrides applied): whether Batch shows them so is one of
    continuation/README.md's questions for a real account."""
    main = local.main_node
    container = dict(local.containers[main])
    code = codes[main]

    def job(jid: str, status: str, reason: str, exit_code: int | None) -> dict[str, Any]:
        ended = {"logStreamName": f"local/default/{uuid.uuid4().hex}"}
        if exit_code is not None:
            ended["exitCode"] = exit_code
        return {"jobArn": f"{ACCOUNT_ARN}:job/{jid}", "jobName": request["jobName"],
                "jobId": jid, "jobQueue": f"{ACCOUNT_ARN}:job-queue/{request['jobQueue']}",
                "status": status, "statusReason": reason,
                "attempts": [{"container": ended, "startedAt": started_ms,
                              "stoppedAt": stopped_ms, "statusReason": reason}],
                "createdAt": started_ms, "startedAt": started_ms, "stoppedAt": stopped_ms,
                "dependsOn": [], "jobDefinition": request["jobDefinition"], "parameters": {},
                "tags": dict(request.get("tags") or {}), "platformCapabilities": ["EC2"]}

    parent = job(job_id, "SUCCEEDED" if code == 0 else "FAILED", EXIT_REASON, code)
    parent.update({
        "retryStrategy": dict(request.get("retryStrategy") or {"attempts": 1}),
        "nodeProperties": {"numNodes": local.num_nodes, "mainNode": main,
                           "nodeRangeProperties": [{"targetNodes": "0:",
                                                    "container": container}]},
        "propagateTags": True, "isCancelled": False, "isTerminated": False})
    nodes = []
    for index in range(local.num_nodes):
        node_code = codes.get(index)
        reason = (f"Host EC2 (instance i-local{index:012x}) terminated." if index == reclaimed
                  else EXIT_REASON)
        node = job(f"{job_id}#{index}", "SUCCEEDED" if node_code == 0 else "FAILED", reason,
                   None if index == reclaimed else node_code)
        node.update({"container": dict(local.containers[index]),
                     "nodeDetails": {"nodeIndex": index, "isMainNode": index == main}})
        nodes.append(node)
    return [parent, *nodes]


def queue_spec(local: LocalJob, name: str = QUEUE) -> QueueSpec:
    """The one local queue, as the controller's QueueSpec (slots = ranks per node)."""
    container = local.containers[local.main_node]
    env = {e["name"]: e["value"] for e in container.get("environment", [])}
    vcpus = resource(container, "VCPU") or 1
    return QueueSpec(name, int(env.get("MNP_RANKS_PER_NODE", vcpus)), vcpus,
                     resource(container, "MEMORY") or 0)


def last_step(text: str) -> int:
    """The last step the solver logged in `text` (0 before the first)."""
    found = STEP_LINE.findall(text)
    return int(found[-1][0]) if found else 0


class ContinuedRun:
    """Run `request` on `definition` and every continuation decide() asks for.

    `make_job(local, job_id)` returns the (not yet entered) ContainerJob of one member, so the
    caller chooses image, EFS and log directories, secrets and environment. `reclaims` are
    applied in order, one per member. `on_event(text)` hears each step of the run.
    """

    def __init__(self, definition: Mapping[str, Any], request: Mapping[str, Any],
                 make_job: Callable[[LocalJob, str], ContainerJob], *,
                 owner: tuple[int, int] = (1000, 1000), reclaims: Sequence[Reclaim] = (),
                 rng: random.Random | None = None, timeout: float = 600,
                 on_event: Callable[[str], None] = lambda _: None) -> None:
        self.definition, self.request = definition, dict(request)
        self.make_job, self.owner = make_job, owner
        self.reclaims, self.rng = list(reclaims), rng or random.Random()
        self.timeout, self.say = timeout, on_event
        self.members: list[Member] = []

    def run(self) -> list[Member]:
        """Every member's record, oldest first; the last one's exit code ends the run."""
        request, lost = self.request, 0
        descriptions: list[dict[str, Any]] = []
        while True:
            local = apply_request(self.definition, request, self.owner)
            reclaim = self.reclaims[len(self.members)] if len(self.members) < len(
                self.reclaims) else None
            member = self._member(request, local, reclaim)
            self.members.append(member)
            descriptions += member.descriptions
            if member.reclaimed_node is not None:
                lost += 1
            family = family_of(descriptions)
            capacity = {QUEUE: family.first.num_nodes - lost}
            queues = [queue_spec(local)]
            decision = decide(family, queues, int(time.time() * 1000), capacity)
            member.decision = decision
            held = f" (checkpoint at step {member.stop_step})" if member.stop_step else ""
            self.say(f"job {member.job_id} ({member.nodes} nodes) exited {member.exit_code}"
                     f"{held}; "
                     f"capacity left {capacity[QUEUE]} node(s); decide: {decision.action}: "
                     f"{decision.reason}")
            if decision.action is not Action.CONTINUE:
                return self.members
            request = continuation_request(family, decision, queues)

    def _member(self, request: Mapping[str, Any], local: LocalJob,
                reclaim: Reclaim | None) -> Member:
        job_id = str(uuid.uuid4())
        with self.make_job(local, job_id) as job:
            started = int(time.time() * 1000)
            self.say(f"job {job_id} ({request['jobName']}): {local.num_nodes} nodes on "
                     f"network {job.network}")
            member = Member(job_id, local.num_nodes, -1, started_at=time.time())
            job.start()
            stopper = self._reclaim(job, reclaim, member) if reclaim else None
            member.exit_code = job.wait(self.timeout)
            member.exited_at = time.time()
            if stopper is not None:
                stopper.join(STOP_GRACE + 60)
            codes = job.wait_all(STOP_GRACE + 10)
            stopped = int(time.time() * 1000)
            self._read_log(job, member)
            if member.resumed_step is not None:
                self.say(f"job {job_id} resumed from step {member.resumed_step}")
        codes = {i: (-1 if c is None else c) for i, c in codes.items()}
        member.descriptions = describe(request, local, job_id, {**codes, local.main_node:
                                       member.exit_code}, started, stopped,
                                       member.reclaimed_node)
        return member

    def _reclaim(self, job: ContainerJob, reclaim: Reclaim,
                 member: Member) -> threading.Thread:
        """Watch the main node's log; at the step, stop one child as ECS stops a task."""
        main = job.job.main_node
        node = self.rng.choice([n.index for n in job.nodes if n.index != main])

        def watch() -> None:
            deadline = time.monotonic() + self.timeout
            while True:
                err = job.output(main)[1]
                resumed = RESUMED_LINE.search(err)
                if last_step(err) >= reclaim.after_steps + (int(resumed.group(1)) if resumed
                                                               else 0):
                    break
                if time.monotonic() > deadline or main not in job.running():
                    return
                time.sleep(0.05)
            member.reclaimed_node, member.sigterm_at = node, time.time()
            self.say(f"reclaim: node {node} of job {member.job_id} stopped {reclaim.after_steps} "
                     f"steps in (SIGTERM, SIGKILL {STOP_GRACE} s later)")
            docker("stop", "-t", str(STOP_GRACE), job.nodes[node].name, check=False,
                   timeout=STOP_GRACE + 60)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    @staticmethod
    def _read_log(job: ContainerJob, member: Member) -> None:
        lines = job.timed_lines(job.job.main_node)
        for when, text in lines:
            if (m := RESUMED_LINE.search(text)) and member.resumed_step is None:
                member.resumed_step = int(m.group(1))
            elif (m := STOP_LINE.search(text)):
                member.stop_step = int(m.group(1))
            elif STEP_LINE.search(text) and member.first_step_at is None:
                member.first_step_at = when
        out = job.output(job.job.main_node)[0].strip().splitlines()
        member.summary_line = out[-1] if out else ""


def overhead(members: Sequence[Member]) -> list[dict[str, float | int]]:
    """Per continuation: seconds from the reclaim's SIGTERM to the continuation's first
    logged step (and its parts: to the main node's exit, to the continuation's start, to its
    first step), and the steps it computed again (stop step minus the step it resumed)."""
    rows: list[dict[str, float | int]] = []
    for before, after in zip(members, members[1:], strict=False):
        if before.sigterm_at is None or after.first_step_at is None:
            continue
        rows.append({"nodes": after.nodes, "exit_code": before.exit_code,
                     "seconds": after.first_step_at - before.sigterm_at,
                     "stop": before.exited_at - before.sigterm_at,
                     "decide_and_start": after.started_at - before.exited_at,
                     "first_step": after.first_step_at - after.started_at,
                     "recomputed": (before.stop_step or 0) - (after.resumed_step or 0)})
    return rows


def field_path(efs_dir: Path, output_path: str, mount: str, job_id: str) -> Path:
    """Where job `job_id` wrote field.npy on the EFS stand-in (`output_path` under `mount`)."""
    return efs_dir / Path(output_path).relative_to(mount) / job_id / "field.npy"
