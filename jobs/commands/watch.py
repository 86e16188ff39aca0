"""`watch`: poll until the job ends; the exit code says whether it SUCCEEDED."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from jobs import render, runview, validate
from jobs.commands.common import add_wait_arguments
from jobs.context import Context

NAME = "watch"
HELP = ("follow a job until SUCCEEDED (exit 0) or FAILED (exit 1); a job of a run is followed "
        "through its continuations")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register watch's flags."""
    parser.add_argument("job_id", type=validate.job_id, metavar="JOB_ID")
    add_wait_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the outcome as one JSON line (jobId, status, exitCode, "
                        "seconds, statusReason); progress still goes to stderr")


def outcome(job: dict) -> dict:
    """A finished job's outcome as --json prints it."""
    return {"jobId": job.get("jobId"), "status": job.get("status"),
            "exitCode": render.exit_code(job), "seconds": render.seconds(job),
            "statusReason": job.get("statusReason")}


def watch_jobs(ctx: Context, job_ids: list[str], interval: float, max_wait: float,
               as_json: bool = False, since: float | None = None) -> int:
    """Poll until every job is SUCCEEDED or FAILED, printing each change; 0 if all SUCCEEDED
    (``as_json``: each outcome as a JSON line on stdout; ``since``: the monotonic time
    ``max_wait`` counts from, default now)."""
    deadline = (time.monotonic() if since is None else since) + max_wait
    last: dict[str, str] = {}
    final: dict[str, str] = {}
    while True:
        for job_id in [j for j in job_ids if j not in final]:
            job = ctx.api.job(job_id)
            line = render.progress_line(job, ctx.api.nodes(job))
            if last.get(job_id) != line:
                stamp = datetime.now(UTC).strftime("%H:%M:%S")
                ctx.err.print(f"{stamp} {line}")
                last[job_id] = line
            if job.get("status") in validate.TERMINAL:
                final[job_id] = job["status"]
                if as_json:
                    print(json.dumps(outcome(job)), flush=True)
                    continue
                code = render.exit_code(job)
                took = render.seconds(job)
                ctx.out.print(render.printable(
                    f"{job_id} {job['status']}"
                    + (f" exit code {code}" if code is not None else "")
                    + (f" after {took:.0f} s" if took is not None else "")
                    + (f": {job['statusReason']}" if job.get("statusReason") else "")
                ))
        if len(final) == len(job_ids):
            return 0 if all(s == "SUCCEEDED" for s in final.values()) else 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            waiting = ", ".join(j for j in job_ids if j not in final)
            ctx.err.print(
                f"gave up after {max_wait:g} s; still not finished: {waiting} (jobs keep "
                "running; cancel with: python -m jobs cancel JOB_ID)"
            )
            return 1
        time.sleep(min(interval, remaining))


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Watch one job; when it fails and belongs to a run (submit --min-nodes), go on with the
    continuation the controller submitted, if it has one a poll interval later."""
    started = time.monotonic()
    deadline = started + args.max_wait
    job_id = args.job_id
    while True:
        code = watch_jobs(ctx, [job_id], args.interval, args.max_wait, args.json, started)
        job = ctx.api.job(job_id)
        if (code == 0 or job.get("status") not in validate.TERMINAL
                or runview.family_id(job) is None):
            return code
        following = runview.successor(ctx, job)
        if following is None and time.monotonic() + args.interval < deadline:
            time.sleep(args.interval)  # the controller reacts to the FAILED event in seconds
            following = runview.successor(ctx, job)
        if following is None:
            return code
        ctx.err.print(f"{job_id} continued as {following.job_id} (generation "
                      f"{following.generation}, {following.num_nodes} nodes)")
        job_id = following.job_id
