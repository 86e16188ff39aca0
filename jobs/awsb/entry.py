"""What the six commands share: --cluster (the stack), the hidden --log-level, and running an
`execute(args, ctx)` with the jobs CLI's one-line errors and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from jobs import validate
from jobs.context import Context
from jobs.errors import EXIT_FAILURE, JobsError
from jobs.outputs import Settings
from jobs.render import printable

Execute = Callable[[argparse.Namespace, Context], int]


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with ParallelCluster's common flags (awsbatch-cli/src/awsbatch/*.py)."""
    result = argparse.ArgumentParser(prog=prog, description=description)
    result.add_argument("-c", "--cluster", metavar="STACK",
                        help="the stack to use (the jobs CLI's --stack; default: $JOBS_STACK, "
                        "else the only one)")
    # Accepted as ParallelCluster did, unused: errors are one line on stderr here.
    result.add_argument("-ll", "--log-level", help=argparse.SUPPRESS, default="ERROR")
    return result


def main(prog: str, build: Callable[[], argparse.ArgumentParser], execute: Execute,
         argv: Sequence[str] | None = None) -> int:
    """Parse, execute, and turn errors into one stderr line with the CONTRACTS.md exit codes."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build().parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return int(exc.code or 0)
    ctx = Context(Settings(None, args.cluster))
    try:
        return int(execute(args, ctx))
    except JobsError as exc:
        print(f"{prog}: error: {printable(exc.line())}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `awsbstat | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("Exiting...", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line
        print(f"{prog}: error: unexpected {type(exc).__name__}: {printable(exc)}",
              file=sys.stderr)
        return EXIT_FAILURE


def queue(ctx: Context) -> str:
    """The stack's multi-node queue (ParallelCluster's one job queue)."""
    return ctx.settings.resolve(None, "JOB_QUEUE_NAME", "job_queue_name", "JOB_QUEUE_NAME",
                                validate.job_queue)
