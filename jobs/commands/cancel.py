"""`cancel`: terminate a job in any state."""

from __future__ import annotations

import argparse
import getpass

from jobs import validate
from jobs.context import Context
from jobs.errors import InvalidInput

NAME = "cancel"
HELP = "terminate a job (queued jobs are cancelled, running ones stopped)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register cancel's flags."""
    parser.add_argument("job_id", type=validate.job_id, metavar="JOB_ID")
    parser.add_argument("--reason", help="shown as the job's status reason "
                        "(default: 'cancelled by USER with the jobs CLI')")


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
    job = ctx.api.job(args.job_id)
    if job.get("status") in validate.TERMINAL:
        ctx.err.print(f"{args.job_id} already {job['status']}; nothing to cancel")
        return 0
    ctx.api.terminate(args.job_id, reason)
    ctx.out.print(f"{args.job_id} terminating (was {job.get('status')}): {reason}")
    return 0
