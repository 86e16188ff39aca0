"""awsbstat: the queue's jobs, or given jobs, in ParallelCluster's table and detail shapes."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from typing import Any

from jobs import render, validate
from jobs.awsb import entry, table
from jobs.context import Context
from jobs.errors import InvalidInput, NotFound

PROG = "awsbstat"
# aws-parallelcluster awsbatch-cli/src/awsbatch/awsbstat.py: default statuses, table columns,
# detail keys (its s3FolderUrl is left out: no S3 staging here).
ACTIVE = "SUBMITTED,PENDING,RUNNABLE,STARTING,RUNNING"
TABLE_KEYS = ("jobId", "jobName", "status", "startedAt", "stoppedAt", "exitCode")
DETAIL_KEYS = ("jobId", "jobName", "createdAt", "startedAt", "stoppedAt", "status",
               "statusReason", "jobDefinition", "jobQueue", "command", "exitCode", "reason",
               "vcpus", "memory[MB]", "nodes", "logStream", "log")


def build_parser() -> argparse.ArgumentParser:
    """ParallelCluster's awsbstat flags."""
    p = entry.parser(PROG, "Shows the jobs submitted in the stack's job queue.")
    p.add_argument("-s", "--status", default=ACTIVE,
                   help=f"comma-separated statuses, default the active ones; accepted: "
                   f"{', '.join(validate.JOB_STATUSES)}, ALL")
    p.add_argument("-e", "--expand-children", action="store_true",
                   help="a row for each node job <id>#i of multi-node jobs")
    p.add_argument("-d", "--details", action="store_true", help="show jobs details")
    p.add_argument("job_ids", nargs="*", type=validate.job_id, metavar="JOB_ID",
                   help="jobs to show (one job: in detail)")
    return p


def statuses(value: str) -> list[str]:
    """The -s list, ALL expanded, in Batch's order."""
    wanted = {s.strip().upper() for s in value.split(",") if s.strip()}
    unknown = sorted(wanted - {*validate.JOB_STATUSES, "ALL"})
    if unknown or not wanted:
        raise InvalidInput(f"--status {value!r}: {', '.join(unknown) or 'empty'} is not a "
                           f"status; accepted: {', '.join(validate.JOB_STATUSES)}, ALL")
    return [s for s in validate.JOB_STATUSES if s in wanted or "ALL" in wanted]


def _container(job: dict[str, Any]) -> dict[str, Any]:
    ranges = (job.get("nodeProperties") or {}).get("nodeRangeProperties") or []
    return job.get("container") or (ranges[0].get("container") if ranges else None) or {}


def _resource(container: dict[str, Any], kind: str) -> str:
    for item in container.get("resourceRequirements") or []:
        if item.get("type") == kind:
            return str(item.get("value"))
    return table.MISSING


def _shown_id(job: dict[str, Any]) -> str:
    """ParallelCluster marks a multi-node parent `<id> *<nodes>`."""
    count = render.num_nodes(job)
    return f"{job['jobId']} *{count}" if count and "#" not in job["jobId"] else job["jobId"]


def _log_url(region: str, stream: str | None, group: str) -> str:
    if not stream:
        return table.MISSING
    domain = "amazonaws-us-gov" if region.startswith("us-gov") else "aws"
    return (f"https://console.{domain}.amazon.com/cloudwatch/home?region={region}"
            f"#logEventViewer:group={group};stream={stream}")


def row(job: dict[str, Any], region: str, group: str) -> dict[str, object]:
    """Every key of ParallelCluster's awsbstat for one job (summary or description)."""
    container = _container(job)
    code = render.exit_code(job)
    stream = render.log_stream(job)
    command = container.get("command")
    return {
        "jobId": _shown_id(job), "jobName": job.get("jobName", ""),
        "createdAt": table.when(job.get("createdAt")),
        "startedAt": table.when(job.get("startedAt")),
        "stoppedAt": table.when(job.get("stoppedAt")),
        "status": job.get("status", "UNKNOWN"),
        "statusReason": job.get("statusReason") or table.MISSING,
        "jobDefinition": str(job.get("jobDefinition", table.MISSING)).rpartition("/")[2],
        "jobQueue": str(job.get("jobQueue", table.MISSING)).rpartition("/")[2],
        "command": shlex.join(command) if command else table.MISSING,
        "exitCode": table.MISSING if code is None else code,
        "reason": container.get("reason") or table.MISSING,
        "vcpus": _resource(container, "VCPU"), "memory[MB]": _resource(container, "MEMORY"),
        "nodes": render.num_nodes(job) or 1,
        "logStream": stream or table.MISSING, "log": _log_url(region, stream, group),
    }


def _with_children(ctx: Context, jobs: list[dict[str, Any]], expand: bool) -> list[dict]:
    if not expand:
        return jobs
    found = []
    for job in jobs:
        found.append(job)
        found.extend(n for n in ctx.api.nodes(job) if n)
    return found


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """ListJobs per status (or DescribeJobs for ids), then a table or details."""
    wanted = statuses(args.status)
    group = ctx.settings.optional("LOG_GROUP_NAME", "log_group_name") or "/aws/batch/job"
    if args.job_ids:
        described = ctx.api.describe(list(args.job_ids))
        missing = [i for i in args.job_ids if i not in described]
        if missing:
            raise NotFound(f"no job {missing[0]} in {ctx.api.region()}",
                               hint="check the id and AWS_REGION")
        # As ParallelCluster: given ids show their node jobs too.
        jobs = _with_children(ctx, [described[i] for i in args.job_ids], True)
        show_details = args.details or len(jobs) == 1
    else:
        summaries = ctx.api.list_jobs(entry.queue(ctx), wanted)
        order = {s: i for i, s in enumerate(validate.JOB_STATUSES)}
        summaries.sort(key=lambda j: (order.get(j.get("status", ""), 99),
                                      j.get("startedAt") or 0, j["jobId"]))
        jobs = summaries
        if args.details or args.expand_children:
            described = ctx.api.describe([j["jobId"] for j in summaries])
            jobs = [described.get(j["jobId"], j) for j in summaries]
        jobs = _with_children(ctx, jobs, args.expand_children)
        show_details = args.details
    region = ctx.api.region()
    rows = [row(job, region, render.log_group(job) or group) for job in jobs]
    print(table.records(rows, TABLE_KEYS, DETAIL_KEYS, show_details))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return entry.main(PROG, build_parser, execute, argv)
