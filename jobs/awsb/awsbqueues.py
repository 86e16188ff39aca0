"""awsbqueues: the stack's job queues in ParallelCluster's shapes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from jobs import validate
from jobs.awsb import entry, table
from jobs.context import Context
from jobs.errors import NotFound

PROG = "awsbqueues"
# aws-parallelcluster awsbatch-cli/src/awsbatch/awsbqueues.py: detail keys and table columns.
DETAIL_KEYS = ("jobQueueArn", "jobQueueName", "priority", "status", "statusReason")
TABLE_KEYS = ("jobQueueName", "status")


def build_parser() -> argparse.ArgumentParser:
    """ParallelCluster's awsbqueues flags."""
    p = entry.parser(PROG, "Shows the job queues of the stack (its multi-node queue and, when "
                     "deployed, its Spot queue).")
    p.add_argument("-d", "--details", action="store_true", help="show queues details")
    p.add_argument("job_queues", nargs="*", type=validate.job_queue, metavar="QUEUE",
                   help="queues to show, in detail (default: the stack's)")
    return p


def stack_queues(ctx: Context) -> list[str]:
    """The stack's multi-node queue and its optional Spot queue."""
    spot = ctx.settings.optional("SPOT_JOB_QUEUE_NAME", "spot_job_queue_name",
                                 validate.job_queue)
    return [entry.queue(ctx), *([spot] if spot else [])]


def describe(ctx: Context, names: list[str]) -> list[dict[str, Any]]:
    """DescribeJobQueues; a name Batch does not know is an error, not an empty row."""
    queues = ctx.api.read("batch", "describe_job_queues", jobQueues=names).get("jobQueues", [])
    known = {q["jobQueueName"] for q in queues} | {q["jobQueueArn"] for q in queues}
    missing = [n for n in names if n not in known]
    if missing:
        raise NotFound(f"no job queue {missing[0]} in {ctx.api.region()}",
                       hint="check the name, -c/--cluster and AWS_REGION")
    return queues


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Named queues in detail; else the stack's as a table (or in detail with -d)."""
    names = list(args.job_queues) or stack_queues(ctx)
    queues = describe(ctx, names)
    print(table.records(queues, TABLE_KEYS, DETAIL_KEYS, bool(args.details or args.job_queues)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return entry.main(PROG, build_parser, execute, argv)
