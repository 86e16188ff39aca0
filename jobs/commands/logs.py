"""`logs`: each node's CloudWatch log stream, optionally followed."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from jobs import render, runview, validate
from jobs.context import Context
from jobs.errors import InvalidInput, NotFound

NAME = "logs"
HELP = ("print a job's log (every node, or one with --node); of a job of a run, each "
        "generation's main-node log in order; --follow until it ends")
BATCH_DEFAULT_GROUP = "/aws/batch/job"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register logs' flags."""
    parser.add_argument("job_id", type=validate.job_id, metavar="JOB_ID")
    parser.add_argument("--node", type=validate.node_index, metavar="I",
                        help="only node I (0 is the main node)")
    parser.add_argument("--generation", type=validate.int_range(1, None, "--generation"),
                        metavar="N", help="of a job of a run (submit --min-nodes): only the "
                        "job of generation N (1 is the first), every node unless --node")
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


def main_node(job: dict[str, Any]) -> int:
    """The index of a multi-node job's main node (NodeProperties.mainNode)."""
    return int((job.get("nodeProperties") or {}).get("mainNode") or 0)


def members(ctx: Context, job: dict[str, Any],
            generation: int | None) -> list[tuple[str, dict[str, Any], int | None]]:
    """(label, job, node) to print: the job itself (all nodes) when it is not part of a run;
    each generation's main node, labelled [g<n>]; or the one generation asked for."""
    family = runview.find(ctx, job)
    if family is None:
        if generation is not None:
            raise InvalidInput(f"--generation {generation}: {job['jobId']} is not part of a "
                               "run (submitted without --min-nodes)")
        return [("", job, None)]
    if generation is not None:
        chosen = [m for m in family.members if m.generation == generation]
        if not chosen:
            known = ", ".join(str(m.generation) for m in family.members)
            raise InvalidInput(f"--generation {generation}: run {family.id} has generations "
                               f"{known}")
        return [("", chosen[0].description, None)]
    return [(f"[g{m.generation}] ", m.description, main_node(m.description))
            for m in family.members]


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
    """Print the streams once, or poll them until the job is SUCCEEDED or FAILED; of a run,
    each generation in order (--follow follows the newest)."""
    job = ctx.api.job(args.job_id)
    group = (args.log_group or ctx.settings.optional("LOG_GROUP_NAME", "log_group_name")
             or render.log_group(job) or BATCH_DEFAULT_GROUP)
    chosen = members(ctx, job, args.generation)
    for index, (prefix, member, node) in enumerate(chosen):
        follow = args.follow and index == len(chosen) - 1
        print_job(ctx, args, group, member, node if args.node is None else args.node,
                  prefix, follow)
    return 0


def print_job(ctx: Context, args: argparse.Namespace, group: str, job: dict[str, Any],
              node: int | None, prefix: str, follow: bool) -> None:
    """One job's streams (``prefix`` before each node's label), polled while ``follow``."""
    tokens: dict[str, str | None] = {}
    reported: set[str] = set()
    while True:
        for node_label, target in targets(ctx, job, node):
            label = prefix + node_label
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
                if not follow or job.get("status") in validate.TERMINAL:
                    raise
                if stream not in reported:
                    ctx.err.print(render.printable(f"{label}waiting for log stream {stream}"))
                    reported.add(stream)
        if not follow or job.get("status") in validate.TERMINAL:
            return
        time.sleep(args.interval)
        # Read once more after the job ends so its last lines are not lost.
        job = ctx.api.job(job["jobId"])
