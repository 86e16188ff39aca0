"""`status`: one job with its nodes and attempts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jobs import render, runview, stage, validate
from jobs.context import Context
from staging.manifest import OUTPUT_MANIFEST

NAME = "status"
HELP = ("show a job's status, reason, attempts, exit codes, each node's state, and where its "
        "staged inputs and outputs are")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register status's flags."""
    parser.add_argument("job_id", type=validate.job_id, metavar="JOB_ID")
    parser.add_argument("--json", action="store_true",
                        help="print the DescribeJobs results of the job and its nodes, and "
                        "its data (stageIn: job, source, dest; stageOut: location, complete) and, "
                        "for a job of a run (submit --min-nodes), the run's family: id, bounds "
                        "and members (generation, jobId, nodes, status, exitCode, reason)")


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Describe the job and its node jobs; exit 0 whatever the job's state."""
    job = ctx.api.job(args.job_id)
    nodes = ctx.api.nodes(job)
    data = stage.whereabouts(ctx, job)
    family = runview.find(ctx, job)
    if args.json:
        extra = {"family": runview.summary(family)} if family else {}
        print(json.dumps({"job": job, "nodes": nodes, "data": data, **extra}, indent=2,
                         default=str, ensure_ascii=False))
        return 0
    ctx.out.print(render.job_table(job))
    for line in data_lines(job["jobId"], data):
        ctx.out.print(render.printable(line))
    if job.get("attempts"):
        ctx.out.print(render.attempts_table(job))
    if nodes:
        ctx.out.print(render.nodes_table(nodes))
    if family:
        ctx.out.print(runview.chain_table(family))
    return 0


def data_lines(job_id: str, data: dict[str, Any]) -> list[str]:
    """Where the staged inputs and the outputs are, one line each."""
    lines = []
    if "stageIn" in data:
        found = data["stageIn"]
        lines.append(f"inputs      {found['source']} -> {found['dest']} (stage-in job "
                     f"{found['jobId']} {found['status']})")
    if "stageOut" in data:
        out = data["stageOut"]
        if out["complete"]:
            state = (f"complete: {out['files']} files, {out['bytes']} bytes; get them with "
                     f"python -m jobs fetch {job_id.partition('#')[0]}")
        elif out["complete"] is None:
            state = f"unknown: {out['error']}"
        else:
            state = f"not complete yet: no {OUTPUT_MANIFEST}, which stage-out writes last"
        lines.append(f"outputs     {out['location']} ({state})")
    return lines
