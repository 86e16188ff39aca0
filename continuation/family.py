"""A run as a family of Batch jobs: how members are linked (job tags), read from DescribeJobs.

The first job of a run carries `mnp:min-nodes` (that is what makes it a run the controller
continues); each continuation carries the family's id (the first job's id), its generation,
the job it continues and the family's checkpoint directory. Everything here reads the
descriptions Batch returns (DescribeJobs, or the `detail` of an EventBridge "Batch Job State
Change" event, which has the same shape) and nothing else.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from launcher.contract import OUTPUT_PATH_ENV, RANKS_PER_NODE_ENV

TAG_FAMILY = "mnp:family"  # the first job's id; absent on the first job itself
TAG_GENERATION = "mnp:generation"  # 1 for the first job (absent there), then 2, 3, ...
TAG_PREVIOUS = "mnp:previous"  # the job this one continues or replaces
TAG_MIN_NODES = "mnp:min-nodes"  # never continue on fewer nodes than this
TAG_MAX_GENERATIONS = "mnp:max-generations"  # jobs a run may use in all
TAG_GANG = "mnp:gang"  # on a Spot gang's array job (its size): the controller may cancel it
TAG_RUNNABLE_DEADLINE = "mnp:runnable-deadline"  # seconds a capacity-stuck job may wait
TAG_CHECKPOINT = "mnp:checkpoint"  # OUTPUT_PATH/<first job id>/checkpoints, shared by all
FAMILY_TAGS = (TAG_FAMILY, TAG_GENERATION, TAG_PREVIOUS, TAG_MIN_NODES, TAG_MAX_GENERATIONS,
               TAG_RUNNABLE_DEADLINE, TAG_CHECKPOINT)

DEFAULT_MAX_GENERATIONS = 10  # bounds a run whose every continuation fails the same way
# Below the stack's own jobStateTimeLimitActions cancel (limits.runnable_cancel_after_s,
# 3600 s), so the controller moves a stuck job before the queue cancels it.
DEFAULT_RUNNABLE_DEADLINE_S = 1800
MAX_JOB_NAME = 128  # SubmitJob jobName: "up to 128 letters long" (Batch API reference)
MAX_TAG_VALUE = 256  # Batch tag values: up to 256 characters (TagResource)


class FamilyError(ValueError):
    """Descriptions that are not one well-formed family (a bug or a hand-edited tag)."""


@dataclass(frozen=True)
class Member:
    """One Batch job of a run, as its description shows it."""

    description: dict[str, Any]
    nodes_detail: tuple[dict[str, Any], ...] = ()  # descriptions of `<id>#<n>`, if fetched

    @property
    def job_id(self) -> str:
        return self.description["jobId"]

    @property
    def tags(self) -> dict[str, str]:
        return self.description.get("tags") or {}

    @property
    def generation(self) -> int:
        return _positive(self.tags, TAG_GENERATION, 1)

    @property
    def status(self) -> str:
        return self.description.get("status", "")

    @property
    def status_reason(self) -> str:
        return self.description.get("statusReason") or ""

    @property
    def queue(self) -> str:
        """The queue's name (DescribeJobs gives its ARN, SubmitJob takes either)."""
        return str(self.description.get("jobQueue", "")).rpartition("/")[2]

    @property
    def is_gang(self) -> bool:
        """A Spot gang's array parent (`submit --spot-gang`): one member per array child."""
        return "size" in (self.description.get("arrayProperties") or {})

    @property
    def num_nodes(self) -> int:
        """numNodes of a multi-node job; a gang's array size ("The size of the array job.
        This parameter is returned for parent array jobs", ArrayPropertiesDetail.size)."""
        if self.is_gang:
            return int(self.description["arrayProperties"]["size"])
        return int((self.description.get("nodeProperties") or {}).get("numNodes") or 1)

    @property
    def container(self) -> dict[str, Any]:
        """The container of node range 0 (the stack's one range, "0:"); a gang's own."""
        if self.is_gang:
            return self.description.get("container") or {}
        ranges = (self.description.get("nodeProperties") or {}).get("nodeRangeProperties")
        return (ranges[0].get("container") or {}) if ranges else {}

    def environment(self) -> dict[str, str]:
        return {e["name"]: e.get("value", "") for e in self.container.get("environment", [])}

    @property
    def ranks_per_node(self) -> int:
        """MNP_RANKS_PER_NODE (the contract), else the VCPU requirement it defaults to."""
        value = self.environment().get(RANKS_PER_NODE_ENV)
        if value is None:
            value = next((r["value"] for r in self.container.get("resourceRequirements", [])
                          if r.get("type") == "VCPU"), "1")
        return int(value)

    @property
    def exit_code(self) -> int | None:
        """The main node's exit code: an MNP job's "exit information ... is populated from the
        main node" (Batch user guide, multi-node parallel jobs); it sits in the last attempt's
        container (AttemptContainerDetail.exitCode), else in the main node's own description."""
        for source in (self._last_attempt().get("container"), self.description.get("container"),
                       *(_main_container(n) for n in self.nodes_detail)):
            if source and source.get("exitCode") is not None:
                return int(source["exitCode"])
        return None

    def _last_attempt(self) -> dict[str, Any]:
        attempts = self.description.get("attempts") or []
        return attempts[-1] if attempts else {}

    @property
    def attempt_reason(self) -> str:
        """The last attempt's statusReason (where Batch says an instance went), else the
        job's own."""
        return self._last_attempt().get("statusReason") or self.status_reason

    @property
    def attempts(self) -> int:
        return len(self.description.get("attempts") or [])

    @property
    def runnable_since_ms(self) -> int:
        """When this job last became RUNNABLE: created, or the last attempt's end (a Batch
        retry goes back to RUNNABLE). Batch records no RUNNABLE timestamp of its own."""
        stopped = self._last_attempt().get("stoppedAt") or 0
        return max(int(self.description.get("createdAt") or 0), int(stopped))

    def lost_nodes(self, pattern_prefix: str) -> int:
        """Nodes whose own description says their instance went away (statusReason starting
        with `pattern_prefix`); 0 when the node jobs were not described."""
        return sum(1 for node in self.nodes_detail
                   if _node_reason(node).startswith(pattern_prefix))


@dataclass(frozen=True)
class Family:
    """All jobs of one run, oldest generation first."""

    members: tuple[Member, ...]
    id: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.members:
            raise FamilyError("a family needs at least one job description")
        ids = {m.tags.get(TAG_FAMILY, m.job_id) for m in self.members}
        if len(ids) != 1:
            raise FamilyError(f"descriptions of several runs: {sorted(ids)}")
        object.__setattr__(self, "id", ids.pop())
        generations = [m.generation for m in self.members]
        if len(set(generations)) != len(generations):
            raise FamilyError(f"run {self.id}: two jobs of one generation ({generations})")

    @property
    def first(self) -> Member:
        return self.members[0]

    @property
    def newest(self) -> Member:
        return self.members[-1]

    @property
    def min_nodes(self) -> int:
        return _positive(self.first.tags, TAG_MIN_NODES, self.first.num_nodes)

    @property
    def max_generations(self) -> int:
        return _positive(self.first.tags, TAG_MAX_GENERATIONS, DEFAULT_MAX_GENERATIONS)

    @property
    def runnable_deadline_s(self) -> int:
        return _positive(self.first.tags, TAG_RUNNABLE_DEADLINE, DEFAULT_RUNNABLE_DEADLINE_S)

    @property
    def output_path(self) -> str:
        path = self.first.environment().get(OUTPUT_PATH_ENV)
        if not path:
            raise FamilyError(f"run {self.id}: the first job has no {OUTPUT_PATH_ENV}, so its "
                              "checkpoints cannot be found")
        return path

    @property
    def checkpoint_dir(self) -> str:
        """Where every generation writes its checkpoints: the first job's own default
        (`OUTPUT_PATH/<job id>/checkpoints`, docs/CONTRACTS.md "Files on the shared file
        system"), so a continuation finds its predecessors' newest one in one place."""
        return self.first.tags.get(TAG_CHECKPOINT) or posixpath.join(
            self.output_path, self.id, "checkpoints")

    def job_dir(self, member: Member) -> str:
        """OUTPUT_PATH/<job id>: what `--restart-from` names for that job."""
        return posixpath.join(self.output_path, member.job_id)

    def continuation_name(self, generation: int) -> str:
        """The job name of generation `generation`: the run's name plus `-g<generation>`,
        deterministic, so a second delivery of the same event finds the job the first one
        submitted. Read from the newest member, as Batch may no longer hold the first."""
        newest = self.newest
        base = newest.description["jobName"]
        own = f"-g{newest.generation}"
        if newest.generation > 1 and base.endswith(own):
            base = base[: -len(own)]
        suffix = f"-g{generation}"
        return base[: MAX_JOB_NAME - len(suffix)] + suffix

    def tags_for(self, generation: int, previous: Member) -> dict[str, str]:
        """The tags of a new member: the first job's run settings plus the links."""
        tags = {k: v for k, v in self.first.tags.items() if k not in FAMILY_TAGS}
        tags.update({k: self.first.tags[k] for k in (
            TAG_MIN_NODES, TAG_MAX_GENERATIONS, TAG_RUNNABLE_DEADLINE) if k in self.first.tags})
        tags.update({TAG_FAMILY: self.id, TAG_GENERATION: str(generation),
                     TAG_PREVIOUS: previous.job_id, TAG_CHECKPOINT: self.checkpoint_dir})
        too_long = [k for k, v in tags.items() if len(v) > MAX_TAG_VALUE]
        if too_long:
            raise FamilyError(f"run {self.id}: tag {too_long[0]} is longer than Batch's "
                              f"{MAX_TAG_VALUE} characters")
        return tags


def family_of(descriptions: Iterable[dict[str, Any]]) -> Family:
    """The family these parent and node (`<id>#<n>`) descriptions make up."""
    parents: dict[str, dict[str, Any]] = {}
    nodes: dict[str, list[dict[str, Any]]] = {}
    for job in descriptions:
        parent, sep, _ = job["jobId"].partition("#")
        if sep:
            nodes.setdefault(parent, []).append(job)
        else:
            parents[parent] = job
    members = [Member(job, tuple(nodes.get(job_id, ()))) for job_id, job in parents.items()]
    return Family(tuple(sorted(members, key=lambda m: m.generation)))


def is_managed(description: dict[str, Any]) -> bool:
    """Whether the controller continues this job's run (its run asked for a minimum)."""
    return TAG_MIN_NODES in (description.get("tags") or {})


def _positive(tags: dict[str, str], key: str, default: int) -> int:
    raw = tags.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise FamilyError(f"tag {key}={raw!r}: expected a whole number >= 1")
    return int(raw)


def _main_container(node: dict[str, Any]) -> dict[str, Any] | None:
    if not (node.get("nodeDetails") or {}).get("isMainNode"):
        return None
    attempts = node.get("attempts") or []
    return (attempts[-1].get("container") if attempts else None) or node.get("container")


def _node_reason(node: dict[str, Any]) -> str:
    attempts = node.get("attempts") or []
    last = attempts[-1] if attempts else {}
    return last.get("statusReason") or node.get("statusReason") or ""
