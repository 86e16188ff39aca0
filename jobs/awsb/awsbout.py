"""awsbout: a job's CloudWatch output as ParallelCluster printed it, `<time>: <line>`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from jobs import render, validate
from jobs.awsb import entry, table
from jobs.commands.logs import BATCH_DEFAULT_GROUP
from jobs.context import Context
from jobs.errors import InvalidInput

PROG = "awsbout"
# ParallelCluster's default streaming period (awsbatch-cli/src/awsbatch/awsbout.py).
STREAM_PERIOD_S = 5
# GetLogEvents returns at most 10,000 events a call (CloudWatch Logs API reference).
MAX_EVENTS = 10_000


def build_parser() -> argparse.ArgumentParser:
    """ParallelCluster's awsbout flags."""
    p = entry.parser(PROG, "Shows the output of the given job (a multi-node job's main node "
                     "unless JOB_ID names a node, <id>#<i>).")
    p.add_argument("-hd", "--head", type=validate.int_range(1, MAX_EVENTS, "--head"),
                   help="the first HEAD lines of the job output")
    p.add_argument("-t", "--tail", type=validate.int_range(1, MAX_EVENTS, "--tail"),
                   help="the last TAIL lines of the job output")
    p.add_argument("-s", "--stream", action="store_true",
                   help="keep printing new output until the job ends (with --tail: start "
                   "from the last TAIL lines)")
    p.add_argument("-sp", "--stream-period", type=validate.positive_seconds,
                   help=f"seconds between reads with --stream (default {STREAM_PERIOD_S})")
    p.add_argument("job_id", type=validate.job_id, metavar="JOB_ID", help="the job ID")
    return p


def check(args: argparse.Namespace) -> None:
    """ParallelCluster's flag conflicts."""
    if args.head and args.tail:
        raise InvalidInput("--tail and --head cannot be used together")
    if args.head and args.stream:
        raise InvalidInput("--stream and --head cannot be used together")
    if args.stream_period and not args.stream:
        raise InvalidInput("--stream-period can be used only with --stream")


def target(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """The job that has a log stream: a multi-node parent's main node, else the job."""
    if "#" in job["jobId"] or render.num_nodes(job) is None:
        return job
    main = int((job.get("nodeProperties") or {}).get("mainNode") or 0)
    nodes = ctx.api.nodes(job)
    node = nodes[main] if main < len(nodes) else None
    return node or {"jobId": f"{job['jobId']}#{main}", "status": job.get("status", "?")}


def _print(events: list[dict[str, Any]]) -> None:
    for event in events:
        text = render.printable(event["message"].rstrip("\n"), keep="\t")
        print(f"{table.when(event['timestamp'])}: {text}", flush=True)


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """GetLogEvents from the head, the tail, or all pages; --stream polls until the job ends."""
    check(args)
    job = ctx.api.job(args.job_id)
    node = target(ctx, job)
    stream = render.log_stream(node)
    if stream is None:
        print(f"No log stream found for job ({node['jobId']}) in the status "
              f"({node.get('status', '?')})")
        return 0
    group = (ctx.settings.optional("LOG_GROUP_NAME", "log_group_name") or render.log_group(job)
             or BATCH_DEFAULT_GROUP)
    token: str | None = None
    if args.head or args.tail:
        page = ctx.api.read("logs", "get_log_events", logGroupName=group, logStreamName=stream,
                            startFromHead=bool(args.head), limit=args.head or args.tail)
        _print(page.get("events", []))
        token = page.get("nextForwardToken")
        if not args.stream:
            return 0
    while True:
        for events, next_token in ctx.api.log_events(group, stream, token):
            _print(events)
            token = next_token
        if not args.stream or job.get("status") in validate.TERMINAL:
            return 0
        time.sleep(args.stream_period or STREAM_PERIOD_S)
        job = ctx.api.job(args.job_id)  # one more read after it ends keeps its last lines


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return entry.main(PROG, build_parser, execute, argv)
