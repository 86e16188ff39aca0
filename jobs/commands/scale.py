"""`scale-test`: the same run at several node counts, one job each."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from jobs import render, stage, validate
from jobs.commands.common import (
    add_job_arguments,
    dry_run,
    job_specs,
    preflight,
    staged,
)
from jobs.commands.logs import BATCH_DEFAULT_GROUP
from jobs.commands.sending import submit_all
from jobs.commands.watch import watch_jobs
from jobs.context import Context
from jobs.errors import JobsError
from jobs.request import submit_request

NAME = "scale-test"
HELP = "submit one job per node count (e.g. --nodes 2,4,8) and, with --wait, compare times"
TAKES_COMMAND = True


# the longest name a prefix gets: PREFIX-1000n
_LONGEST_SUFFIX = len(f"-{validate.MAX_NODES}n")


def job_name_prefix(value: str) -> str:
    """A prefix that stays a valid job name with any -<n>n suffix."""
    return validate.job_name(value, limit=128 - _LONGEST_SUFFIX, what="job name prefix")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register scale-test's flags."""
    parser.add_argument("--job-name", type=job_name_prefix, default="scale-test",
                        metavar="PREFIX",
                        help="name prefix; jobs are named PREFIX-<n>n (default scale-test)")
    add_job_arguments(parser, validate.node_list,
                      "comma-separated node counts, each 1..1000, e.g. 2,4,8")
    # One stage-in job for all counts: every job reads the same staged copy.
    stage.add_arguments(parser.add_argument)
    parser.epilog = (
        "example:\n  python -m jobs scale-test --nodes 2,4,8 --vcpus 8 --memory 15000 --wait \\\n"
        "      -- python -m solver heat --nx 4097 --ny 4097"
    )


def solver_summary(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary rank 0 prints last (CONTRACTS.md), from the main node's log, or {}."""
    nodes = [n for n in ctx.api.nodes(job) if n is not None]
    main = next((n for n in nodes if (n.get("nodeDetails") or {}).get("isMainNode")), None)
    stream = render.log_stream(main) if main else None
    if stream is None:
        return {}
    group = (ctx.settings.optional("LOG_GROUP_NAME", "log_group_name")
             or render.log_group(job) or BATCH_DEFAULT_GROUP)
    try:
        lines = ctx.api.last_lines(group, stream)
    except JobsError as exc:
        ctx.err.print(render.printable(f"no solver summary for {job['jobId']}: {exc.line()}"))
        return {}
    for line in reversed(lines):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return {}


def results(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per node count: Batch run time, the solver's own time and MLUP/s, and speed-up."""
    rows = []
    for entry in sorted(entries, key=lambda e: e["nodes"]):
        summary = entry.get("summary") or {}
        rows.append({"nodes": entry["nodes"], "jobId": entry["jobId"],
                     "status": entry["job"].get("status"),
                     "batchSeconds": render.seconds(entry["job"]),
                     "solverSeconds": summary.get("seconds"), "mlups": summary.get("mlups")})
    # The solver's time excludes image pulls and the rendezvous; fall back to Batch's.
    key = "solverSeconds" if all(r["solverSeconds"] for r in rows) else "batchSeconds"
    base = rows[0][key] if rows else None
    for row in rows:
        row["speedup"] = base / row[key] if base and row[key] else None
    return rows


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Validate every count first, so nothing is submitted unless all of them fit."""
    counts = list(dict.fromkeys(args.nodes))
    names = [(f"{args.job_name}-{n}n", n) for n in counts]
    specs, staging = staged(args, ctx, job_specs(args, ctx, names, extra_tags={
        "scale-test": args.job_name}), args.job_name)
    preflight(ctx, args, specs)
    if args.dry_run:
        return dry_run(ctx, [submit_request(s) for s in specs], args.image_tag, staging,
                       args.job_name)
    submitted = submit_all(ctx, specs, args.image_tag, staging, args.job_name)
    if not args.wait:
        print(json.dumps(submitted, indent=2) if args.json else
              "\n".join(f"{s['nodes']} {s['jobId']}" for s in submitted))
        return 0
    code = watch_jobs(ctx, [s["jobId"] for s in submitted], args.interval, args.max_wait)
    entries = []
    for entry in submitted:
        job = ctx.api.job(entry["jobId"])
        entries.append({**entry, "job": job, "summary": solver_summary(ctx, job)})
    rows = results(entries)
    if args.json:
        print(json.dumps(rows, indent=2))
        return code
    table = Table(title="scale test", title_justify="left")
    for column in ("nodes", "job id", "status", "batch s", "solver s", "MLUP/s", "speed-up"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["nodes"]), row["jobId"], str(row["status"]),
                      _cell(row["batchSeconds"], ".1f"), _cell(row["solverSeconds"], ".2f"),
                      _cell(row["mlups"], ".1f"),
                      "-" if row["speedup"] is None else f"{row['speedup']:.2f}x")
    ctx.out.print(table)
    return code
