"""`list`: jobs in the queue."""

from __future__ import annotations

import argparse
import json

from jobs import render, validate
from jobs.commands.common import add_queue_arguments
from jobs.context import Context

NAME = "list"
HELP = "list the queue's jobs (all states unless --status)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register list's flags."""
    parser.add_argument("--status", choices=validate.JOB_STATUSES, type=str.upper,
                        metavar="STATUS",
                        help=f"only jobs in this state: {', '.join(validate.JOB_STATUSES)}")
    add_queue_arguments(parser, definition=False)
    parser.add_argument("--json", action="store_true", help="print the job summaries as JSON")


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """ListJobs per status (ListJobs without a status shows only RUNNING), newest first."""
    queue = ctx.settings.resolve(args.job_queue, "JOB_QUEUE_NAME", "job_queue_name",
                                 "--job-queue", validate.job_queue)
    statuses = [args.status] if args.status else list(validate.JOB_STATUSES)
    jobs = ctx.api.list_jobs(queue, statuses)
    jobs.sort(key=lambda j: j.get("createdAt", 0), reverse=True)
    if args.json:
        print(json.dumps(jobs, indent=2, default=str))
    elif not jobs:
        ctx.err.print(f"no jobs in {queue}" + (f" with status {args.status}" if args.status
                                               else ""))
    else:
        ctx.out.print(render.summaries_table(jobs))
    return 0
