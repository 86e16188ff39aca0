"""`scale-test`: the same run at several node counts, one job each."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jobs import render, validate
from jobs.commands.common import add_job_arguments, dry_run, job_specs, submit_all
from jobs.commands.watch import watch_jobs
from jobs.context import Context
from jobs.request import submit_request

NAME = "scale-test"
HELP = "submit one job per node count (e.g. --nodes 2,4,8) and, with --wait, compare times"
TAKES_COMMAND = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register scale-test's flags."""
    parser.add_argument("--job-name", type=validate.job_name, default="scale-test",
                        metavar="PREFIX",
                        help="name prefix; jobs are named PREFIX-<n>n (default scale-test)")
    add_job_arguments(parser, validate.node_list,
                      "comma-separated node counts, each 1..1000, e.g. 2,4,8")
    parser.epilog = (
        "example:\n  python -m jobs scale-test --nodes 2,4,8 --vcpus 8 --memory 15000 --wait \\\n"
        "      -- python -m solver heat --nx 4097 --ny 4097"
    )


def results_table(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per node count: status, run time, and speed-up against the smallest count."""
    rows = []
    base = next((r for r in sorted(jobs, key=lambda j: j["nodes"])
                 if render.seconds(r["job"]) ), None)
    for entry in sorted(jobs, key=lambda j: j["nodes"]):
        took = render.seconds(entry["job"])
        speedup = None
        if took and base is not None:
            speedup = render.seconds(base["job"]) / took
        rows.append({"nodes": entry["nodes"], "jobId": entry["jobId"],
                     "status": entry["job"].get("status"), "seconds": took,
                     "speedup": speedup})
    return rows


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Validate every count first, so nothing is submitted unless all of them fit."""
    counts = list(dict.fromkeys(args.nodes))
    names = [(f"{args.job_name}-{n}n", n) for n in counts]
    for name, _ in names:
        validate.job_name(name)
    specs = job_specs(args, ctx, names, extra_tags={"scale-test": args.job_name})
    if args.dry_run:
        return dry_run(ctx, [submit_request(s) for s in specs], args.image_tag)
    submitted = submit_all(ctx, specs, args.image_tag)
    if not args.wait:
        print(json.dumps(submitted, indent=2) if args.json else
              "\n".join(f"{s['nodes']} {s['jobId']}" for s in submitted))
        return 0
    code = watch_jobs(ctx, [s["jobId"] for s in submitted], args.interval, args.max_wait)
    jobs = [{**s, "job": ctx.api.job(s["jobId"])} for s in submitted]
    rows = results_table(jobs)
    if args.json:
        print(json.dumps(rows, indent=2))
        return code
    from rich.table import Table

    table = Table(title="scale test")
    for column in ("nodes", "job id", "status", "seconds", "speed-up"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["nodes"]), row["jobId"], str(row["status"]),
                      "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
                      "-" if row["speedup"] is None else f"{row['speedup']:.2f}x")
    ctx.out.print(table)
    return code
