"""`logs`: each node's CloudWatch log stream, optionally followed."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from jobs import render, validate
from jobs.context import Context
from jobs.errors import InvalidInput, NotFound

NAME = "logs"
HELP = "print a job's log (every node, or one with --node); --follow until it ends"
BATCH_DEFAULT_GROUP = "/aws/batch/job"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register logs' flags."""
    parser.add_argument("job_id", type=validate.job_id, metavar="JOB_ID")
    parser.add_argument("--node", type=validate.node_index, metavar="I",
                        help="only node I (0 is the main node)")
    parser.add_argument("--follow", action="store_true",
                        help="keep printing new lines until the job ends")
    parser.add_argument("--log-group", metavar="NAME",
                        help="default: $LOG_GROUP_NAME, else the stack's log_group_name, else "
                        "the job definition's awslogs-group, else /aws/batch/job")
    parser.add_argument("--interval", type=validate.positive_seconds, default=5.0, metavar="S",
                        help="seconds between polls with --follow (default 5)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: jobId (of the node), timestamp (ms), "
                        "message")


def targets(ctx: Context, job: dict[str, Any], node: int | None) -> list[tuple[str, dict]]:
    """(label, job) for each stream to read: the node jobs of an MNP job, else the job."""
    if "#" in job["jobId"] or render.num_nodes(job) is None:
        if node is not None and "#" not in job["jobId"]:
            raise InvalidInput(f"--node {node}: {job['jobId']} is not a multi-node job")
        return [("", job)]
    nodes = ctx.api.nodes(job)
    if node is not None:
        if node >= len(nodes):
            raise InvalidInput(f"--node {node} is out of range: job {job['jobId']} has "
                               f"{len(nodes)} nodes (0..{len(nodes) - 1})")
        return [(f"[node {node}] " if len(nodes) > 1 else "", nodes[node] or
                 {"jobId": f"{job['jobId']}#{node}", "status": "node job not created"})]
    return [
        (f"[node {i}] " if len(nodes) > 1 else "",
         n or {"jobId": f"{job['jobId']}#{i}", "status": "node job not created"})
        for i, n in enumerate(nodes)
    ]


def _drain(ctx: Context, group: str, label: str, stream: str, token: str | None,
           job_id: str | None = None) -> str | None:
    """Print every event after `token` (as JSON lines naming ``job_id`` when given); return
    the token to continue from."""
    try:
        for events, next_token in ctx.api.log_events(group, stream, token):
            token = next_token
            for event in events:
                message = event["message"].rstrip("\n")
                if job_id is not None:  # JSON escapes control characters itself
                    print(json.dumps({"jobId": job_id, "timestamp": event.get("timestamp"),
                                      "message": message}), flush=True)
                    continue
                # The job's own output: its tabs stay, its escape sequences are shown.
                print(f"{label}{render.printable(message, keep=chr(9))}", flush=True)
    except NotFound as exc:
        raise NotFound(f"log stream {stream} not found in log group {group}",
                       hint="check --log-group / LOG_GROUP_NAME / the stack's log_group_name",
                       code=exc.code) from exc
    return token


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Print the streams once, or poll them until the job is SUCCEEDED or FAILED."""
    job = ctx.api.job(args.job_id)
    group = (args.log_group or ctx.settings.optional("LOG_GROUP_NAME", "log_group_name")
             or render.log_group(job) or BATCH_DEFAULT_GROUP)
    tokens: dict[str, str | None] = {}
    reported: set[str] = set()
    while True:
        for label, target in targets(ctx, job, args.node):
            stream = render.log_stream(target)
            if stream is None:
                if target["jobId"] not in reported:
                    ctx.err.print(render.printable(
                        f"{label}no log stream yet for {target['jobId']} "
                        f"(status {target.get('status', '?')})"))
                    reported.add(target["jobId"])
                continue
            try:
                tokens[stream] = _drain(ctx, group, label, stream, tokens.get(stream),
                                        target["jobId"] if args.json else None)
            except NotFound:
                # A starting container's stream can lag its description by a few seconds.
                if not args.follow or job.get("status") in validate.TERMINAL:
                    raise
                if stream not in reported:
                    ctx.err.print(render.printable(f"{label}waiting for log stream {stream}"))
                    reported.add(stream)
        if not args.follow or job.get("status") in validate.TERMINAL:
            return 0
        time.sleep(args.interval)
        # Read once more after the job ends so its last lines are not lost.
        job = ctx.api.job(args.job_id)
