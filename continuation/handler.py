"""The controller's entry point: one EventBridge "Batch Job State Change" event (or one job of
the periodic sweep) in, one decision carried out, one JSON line logged.

The event is only a pointer: the job is described afresh, since a delayed or repeated event
may be stale, and decisions depend on Batch's state alone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import boto3

from continuation.apply import apply, cancel_gang
from continuation.decide import (
    ARRAY_CHILD_SEPARATOR,
    Action,
    QueueSpec,
    decide,
    gang_decision,
    gang_run_decision,
)
from continuation.family import family_of, is_managed
from continuation.lookup import describe, family_descriptions, gang_children

QUEUES_ENV = "MNP_CONTINUATION_QUEUES"  # JSON list of QueueSpec fields, failover order
# The queue Spot gangs run on (the multi-node queue's name when the stack has no Spot queue):
# not a failover choice, only where the sweep also looks for gangs whose events were lost.
SPOT_QUEUE_ENV = "MNP_SPOT_QUEUE"
QUEUE_FIELDS = ("name", "slots", "vcpus", "memory_mib")
SCHEDULED = "Scheduled Event"  # detail-type of an EventBridge schedule rule's events


# The sweep looks back as far as Lambda keeps an undelivered event ("up to 6 hours", Lambda
# asynchronous invocation): an event lost after that is the alarm's to report.
SWEEP_WINDOW_S = 6 * 3600


def handle(job_id: str, batch: Any, queues: Sequence[QueueSpec],
           now_ms: int) -> dict[str, Any]:
    """Decide for the run of `job_id` and carry it out; what was done, as a record."""
    found = describe(batch, [job_id.partition("#")[0]])
    gang = gang_decision(found[0]) if found else None
    if gang is not None and gang.action is Action.NONE:
        # A member of a gang that is a run's: its array parent is the run's member.
        parent = describe(batch, [job_id.partition(ARRAY_CHILD_SEPARATOR)[0]])
        if parent and is_managed(parent[0]):
            return {**_handle(parent[0], batch, queues, now_ms), "jobId": job_id}
    if gang is not None:  # a Spot gang's member: not a run's job, but its array may need ending
        return {"jobId": job_id, **asdict(gang), "action": str(gang.action),
                "cancelled": cancel_gang(gang, batch)}
    if not found or not is_managed(found[0]):
        return {"jobId": job_id, "action": "ignored",
                "reason": "not a job of a run the controller continues"}
    return _handle(found[0], batch, queues, now_ms)


def sweep(batch: Any, queues: Sequence[QueueSpec], now_ms: int,
          window_s: int = SWEEP_WINDOW_S, gang_queues: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Decide for every managed job RUNNABLE now or FAILED within `window_s`: the clock for
    RUNNABLE deadlines and the net for events that never arrived. On `gang_queues`, FAILED
    ones only: an array parent is FAILED once its children have ended and one of them failed
    (Batch user guide, "Array jobs"), which is when a run of Spot gangs is decided."""
    listed = [(queue.name, status) for queue in queues for status in ("RUNNABLE", "FAILED")]
    listed += [(queue, "FAILED") for queue in gang_queues]
    ids: dict[str, None] = {}
    for queue_name, status in dict.fromkeys(listed):
        pages = batch.get_paginator("list_jobs").paginate(jobQueue=queue_name, jobStatus=status)
        for summary in (s for page in pages for s in page["jobSummaryList"]):
            ended = summary.get("stoppedAt") or summary.get("createdAt") or 0
            if status == "RUNNABLE" or ended >= now_ms - window_s * 1000:
                ids[summary["jobId"]] = None
    jobs = [j for j in describe(batch, list(ids)) if is_managed(j)]
    return [_handle(job, batch, queues, now_ms) for job in jobs]


def _handle(job: dict[str, Any], batch: Any, queues: Sequence[QueueSpec],
            now_ms: int) -> dict[str, Any]:
    family = family_of(family_descriptions(batch, job))
    if family.newest.is_gang:
        decision = gang_run_decision(family, gang_children(batch, family.newest))
    else:
        decision = decide(family, queues, now_ms)
    submitted = apply(decision, family, queues, batch)
    record = {"jobId": job["jobId"], "family": family.id, **asdict(decision),
              "submitted": submitted}
    record["action"] = str(decision.action)
    return record


def queues_from_env(environ: dict[str, str] | os._Environ[str]) -> list[QueueSpec]:
    """The stack's queues in failover order, from MNP_CONTINUATION_QUEUES."""
    raw = environ.get(QUEUES_ENV)
    if not raw:
        raise ValueError(f"{QUEUES_ENV} is not set (a JSON list of {{{', '.join(QUEUE_FIELDS)}}})")
    try:
        items = json.loads(raw)
        return [QueueSpec(str(q["name"]), *(int(q[k]) for k in QUEUE_FIELDS[1:])) for q in items]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{QUEUES_ENV} is not a JSON list of objects with "
                         f"{', '.join(QUEUE_FIELDS)}: {exc}") from None


def lambda_handler(event: dict[str, Any], context: Any) -> list[dict[str, Any]]:
    """AWS Lambda entry point: a "Batch Job State Change" event decides for its job, the
    schedule's "Scheduled Event" sweeps. One function for both, so its reserved concurrency
    of 1 serializes every decision (apply's duplicate check relies on it)."""
    batch, queues, now = boto3.client("batch"), queues_from_env(os.environ), \
        int(time.time() * 1000)
    if event.get("detail-type") == SCHEDULED:
        spot = os.environ.get(SPOT_QUEUE_ENV, "")
        records = sweep(batch, queues, now, gang_queues=[spot] if spot else [])
    else:
        records = [handle(event["detail"]["jobId"], batch, queues, now)]
    for record in records:
        print(json.dumps(record, default=str))  # one line per decision in the function's log
    return records
