"""A run (continuation/README.md) as the CLI shows it: every member of the family of a job.

Members before a job are found through `mnp:previous` (continuation/lookup.py, the
controller's own walk); members after it by their names, `<first job's name>-g<n>`
(`Family.continuation_name`), with ListJobs' JOB_NAME filter ("begins with" when the value
ends in `*`, Batch API reference KeyValuesPair) in every queue a member ran in and the stack's
job queue, keeping those whose `mnp:family` tag is the run's id.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table

from continuation.family import TAG_FAMILY, Family, FamilyError, Member, family_of, is_managed
from continuation.lookup import describe, family_descriptions
from jobs import validate
from jobs.context import Context
from jobs.errors import AwsError, translate
from jobs.render import printable

GENERATION_SUFFIX = "-g"  # Family.continuation_name: the run's name plus -g<generation>


def family_id(job: dict[str, Any]) -> str | None:
    """The run's id (its first job's) when `job` belongs to a managed run, else None."""
    tags = job.get("tags") or {}
    if TAG_FAMILY in tags:
        return tags[TAG_FAMILY]
    return job["jobId"] if is_managed(job) else None


def find(ctx: Context, job: dict[str, Any]) -> Family | None:
    """Every member of `job`'s run that Batch still describes, oldest first (None when the
    job is not part of a managed run)."""
    run_id = family_id(job)
    if run_id is None or "#" in job["jobId"]:
        return None
    try:
        found = {d["jobId"]: d for d in family_descriptions(ctx.api.batch, job)
                 if "#" not in d["jobId"]}
        stack_queue = ctx.settings.optional("JOB_QUEUE_NAME", "job_queue_name",
                                            validate.job_queue)
        searched: set[str] = set()
        while True:  # a member found may have run in a queue not searched yet (a move)
            queues = {Member(d).queue for d in found.values()} | {stack_queue} - {None, ""}
            queues -= searched
            if not queues:
                break
            searched |= queues
            base = _base_name(found, run_id)
            ids = [i for i in _named(ctx, queues, f"{base}{GENERATION_SUFFIX}*")
                   if i not in found]
            for desc in describe(ctx.api.batch, ids):
                if (desc.get("tags") or {}).get(TAG_FAMILY) == run_id:
                    found[desc["jobId"]] = desc
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc) from exc
    try:
        return family_of(found.values())
    except FamilyError as exc:
        raise AwsError(f"run {run_id}: {exc}") from exc


def _base_name(found: dict[str, dict[str, Any]], run_id: str) -> str:
    """The first job's name: its own, else a member's less its `-g<n>`."""
    if run_id in found:
        return found[run_id]["jobName"]
    member = Member(next(iter(found.values())))
    own = f"{GENERATION_SUFFIX}{member.generation}"
    name = member.description["jobName"]
    return name[: -len(own)] if name.endswith(own) else name


def _named(ctx: Context, queues: set[str], pattern: str) -> list[str]:
    """Ids of jobs whose name matches `pattern` in `queues` (every status: with a filter
    ListJobs ignores jobStatus, Batch API reference)."""
    ids: list[str] = []
    for queue in sorted(queues):
        pages = ctx.api.batch.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [pattern]}])
        ids += [s["jobId"] for page in pages for s in page["jobSummaryList"]]
    return ids


def chain(family: Family) -> list[dict[str, Any]]:
    """One row per member: what `status` prints and `status --json` carries."""
    return [{"generation": m.generation, "jobId": m.job_id, "jobName": m.description["jobName"],
             "nodes": m.num_nodes, "status": m.status, "exitCode": m.exit_code,
             "reason": m.status_reason} for m in family.members]


def summary(family: Family) -> dict[str, Any]:
    """The run's id, bounds and members (`status --json`'s `family`)."""
    return {"id": family.id, "minNodes": family.min_nodes,
            "maxGenerations": family.max_generations,
            "runnableDeadlineSeconds": family.runnable_deadline_s,
            "members": chain(family)}


def chain_table(family: Family) -> Table:
    """The run's members, one row each, titled with its bounds."""
    table = Table(title=f"run {family.id}: {family.min_nodes}+ nodes, at most "
                  f"{family.max_generations} jobs", title_justify="left")
    for name in ("generation", "job id", "nodes", "status", "exit code", "reason"):
        table.add_column(name)
    for row in chain(family):
        table.add_row(str(row["generation"]), row["jobId"], str(row["nodes"]), row["status"],
                      "-" if row["exitCode"] is None else str(row["exitCode"]),
                      printable(row["reason"] or "-"))
    return table


def successor(ctx: Context, job: dict[str, Any]) -> Member | None:
    """The member after `job` in its run, if the controller has submitted one."""
    family = find(ctx, job)
    if family is None:
        return None
    generation = Member(job).generation
    return next((m for m in family.members if m.generation > generation), None)
