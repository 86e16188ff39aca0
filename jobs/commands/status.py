"""`status`: one job with its nodes and attempts."""

from __future__ import annotations

import argparse
import json

from jobs import render, validate
from jobs.context import Context

NAME = "status"
HELP = "show a job's status, reason, attempts, exit codes and each node's state"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register status's flags."""
    parser.add_argument("job_id", type=validate.job_id, metavar="JOB_ID")
    parser.add_argument("--json", action="store_true",
                        help="print the DescribeJobs results of the job and its nodes")


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Describe the job and its node jobs; exit 0 whatever the job's state."""
    job = ctx.api.job(args.job_id)
    nodes = ctx.api.nodes(job)
    if args.json:
        print(json.dumps({"job": job, "nodes": nodes}, indent=2, default=str))
        return 0
    ctx.out.print(render.job_table(job))
    if job.get("attempts"):
        ctx.out.print(render.attempts_table(job))
    if nodes:
        ctx.out.print(render.nodes_table(nodes))
    return 0
