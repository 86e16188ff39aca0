"""awsbkill: cancel or terminate jobs, with ParallelCluster's messages."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from jobs import validate
from jobs.awsb import entry
from jobs.commands.cancel import in_queue, our_queues
from jobs.context import Context
from jobs.errors import InvalidInput, NotFound

PROG = "awsbkill"
DEFAULT_REASON = "Terminated by the user"  # ParallelCluster's (awsbatch-cli/.../awsbkill.py)
QUEUED = ("SUBMITTED", "PENDING", "RUNNABLE")  # TerminateJob cancels these, stops the others


def build_parser() -> argparse.ArgumentParser:
    """ParallelCluster's awsbkill flags."""
    p = entry.parser(PROG, "Cancels/terminates jobs submitted in the stack's queue.")
    p.add_argument("-r", "--reason", default=DEFAULT_REASON,
                   help=f"shown as the jobs' status reason (default {DEFAULT_REASON!r})")
    p.add_argument("job_ids", nargs="+", type=validate.job_id, metavar="JOB_ID",
                   help="the jobs to cancel/terminate")
    return p


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Check every id first (nothing is terminated if one is wrong), then TerminateJob each."""
    if not args.reason.strip() or len(args.reason) > 1024:
        raise InvalidInput("--reason must be 1 to 1024 characters and not blank")
    nodes = [i for i in args.job_ids if "#" in i]
    if nodes:
        raise InvalidInput(f"{nodes[0]} is one node of a multi-node job; kill the whole job: "
                           f"{nodes[0].split('#')[0]}")
    queues = our_queues(argparse.Namespace(job_queue=None), ctx)
    found = ctx.api.describe(list(args.job_ids))
    for job_id in args.job_ids:
        if job_id not in found:
            raise NotFound(f"Job ({job_id}) not found: nothing was terminated",
                               hint="check the ids and AWS_REGION")
        queue = str(found[job_id].get("jobQueue", ""))
        if not any(in_queue(queue, q) for q in queues):
            raise InvalidInput(f"Job ({job_id}) is a job of queue {queue or '?'}, not of "
                               f"{' or '.join(queues)}: nothing was terminated",
                               hint="use `python -m jobs cancel --any-queue` for it")
    for job_id in dict.fromkeys(args.job_ids):
        status = found[job_id].get("status", "?")
        if status in validate.TERMINAL:
            print(f"Job ({job_id}) is already in ({status}) status.")
            continue
        ctx.api.terminate(job_id, args.reason)
        action = "cancellation" if status in QUEUED else "termination"
        print(f"Your job {action} request for job ({job_id}) in status ({status}) has been "
              "submitted.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return entry.main(PROG, build_parser, execute, argv)
