"""Fetch a run's descriptions from Batch: a member, its predecessors through `mnp:previous`,
and the node jobs of a member whose exit says nodes were lost."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from continuation.decide import HOST_LOST
from continuation.family import DEFAULT_MAX_GENERATIONS, TAG_PREVIOUS, Member
from launcher.contract import NODE_LOST, RENDEZVOUS_TIMEOUT

DESCRIBE_LIMIT = 100  # DescribeJobs: "A list of up to 100 job IDs" (Batch API reference)
# Walk back at most this many members; a longer chain is read from the newest's tags alone.
MAX_LOOKBACK = 10 * DEFAULT_MAX_GENERATIONS


def describe(batch: Any, ids: Sequence[str]) -> list[dict[str, Any]]:
    """DescribeJobs for any number of ids, in chunks Batch accepts; unknown ids are absent."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), DESCRIBE_LIMIT):
        found += batch.describe_jobs(jobs=list(ids[start:start + DESCRIBE_LIMIT]))["jobs"]
    return found


def family_descriptions(batch: Any, job: dict[str, Any]) -> list[dict[str, Any]]:
    """`job`, the members before it that Batch still describes, and `job`'s node jobs when
    they can say how many nodes were lost."""
    jobs = [job]
    previous = (job.get("tags") or {}).get(TAG_PREVIOUS)
    seen = {job["jobId"]}
    while previous and previous not in seen and len(jobs) < MAX_LOOKBACK:
        found = describe(batch, [previous])
        if not found:  # Batch no longer holds it: the newer members' tags carry the run
            break
        jobs.append(found[0])
        seen.add(previous)
        previous = (found[0].get("tags") or {}).get(TAG_PREVIOUS)
    member = Member(job)
    if member.status == "FAILED" and (member.exit_code in (NODE_LOST, RENDEZVOUS_TIMEOUT)
                                      or member.status_reason.startswith(HOST_LOST)):
        # "If you need the details for child nodes, describe each child node" (user guide,
        # multi-node parallel jobs): <id>#0 ... <id>#N-1.
        jobs += describe(batch, [f"{job['jobId']}#{n}" for n in range(member.num_nodes)])
    return jobs


def gang_children(batch: Any, parent: Member) -> list[dict[str, Any]]:
    """The children of a Spot gang's array parent: "the array index for the child job is
    appended to the end of the parent ID, such as example_job_ID:0" (user guide,
    array_jobs.html)."""
    return describe(batch, [f"{parent.job_id}:{i}" for i in range(parent.num_nodes)])
