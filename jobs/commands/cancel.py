"""`cancel`: terminate a job in any state."""

from __future__ import annotations

import argparse
import getpass
import json

from jobs import render, validate
from jobs.commands.common import add_queue_arguments
from jobs.context import Context
from jobs.errors import InvalidInput

NAME = "cancel"
HELP = "terminate a job (queued jobs are cancelled, running ones stopped)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register cancel's flags."""
    parser.add_argument("job_id", type=validate.job_id, metavar="JOB_ID")
    parser.add_argument("--reason", help="shown as the job's status reason "
                        "(default: 'cancelled by USER with the jobs CLI')")
    add_queue_arguments(parser, definition=False)
    parser.add_argument("--any-queue", action="store_true",
                        help="also cancel a job of another queue than the stack's (or "
                        "--job-queue's); without it such a job is refused")
    parser.add_argument("--json", action="store_true",
                        help="print jobId, previousStatus, terminated and reason as JSON")


def our_queues(args: argparse.Namespace, ctx: Context) -> list[str]:
    """The queues cancel may act on: --job-queue, else the stack's queue and its Spot queue."""
    try:
        queue = ctx.settings.resolve(args.job_queue, "JOB_QUEUE_NAME", "job_queue_name",
                                     "--job-queue", validate.job_queue)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), hint="or add --any-queue to cancel a job of any "
                           "queue") from None
    spot = None if args.job_queue else ctx.settings.optional(
        "SPOT_JOB_QUEUE_NAME", "spot_job_queue_name", validate.job_queue)
    return [q for q in (queue, spot) if q]


def in_queue(job_queue: str, queue: str) -> bool:
    """Whether a job's queue (DescribeJobs gives its ARN) is `queue` (a name or an ARN)."""
    return job_queue == queue or job_queue.endswith(f":job-queue/{queue}")


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """TerminateJob, which unlike CancelJob also stops STARTING/RUNNING jobs."""
    if "#" in args.job_id:
        raise InvalidInput(f"{args.job_id} is one node of a multi-node job; cancel the whole "
                           f"job: {args.job_id.split('#')[0]}")
    reason = args.reason if args.reason is not None else (
        f"cancelled by {getpass.getuser()} with the jobs CLI")
    if not reason.strip():
        raise InvalidInput("--reason is empty; Batch requires a reason")
    if len(reason) > 1024:
        raise InvalidInput(f"--reason is {len(reason)} characters; keep it under 1024")
    queues = [] if args.any_queue else our_queues(args, ctx)
    job = ctx.api.job(args.job_id)
    found = str(job.get("jobQueue", ""))
    if queues and not any(in_queue(found, q) for q in queues):
        raise InvalidInput(
            f"{args.job_id} is a job of queue {found or '?'}, not of {' or '.join(queues)}: "
            "not cancelled", hint="add --any-queue to cancel it anyway")
    done = job.get("status") in validate.TERMINAL
    if not done:
        ctx.api.terminate(args.job_id, reason)
    if args.json:
        print(json.dumps({"jobId": args.job_id, "previousStatus": job.get("status"),
                          "terminated": not done, "reason": None if done else reason}))
    elif done:
        ctx.err.print(render.printable(f"{args.job_id} already {job['status']}; nothing to "
                                       "cancel"))
    else:
        ctx.out.print(render.printable(f"{args.job_id} terminating (was {job.get('status')}): "
                                       f"{reason}"))
    return 0
