"""`preflight`: check that a job could start, and what it can cost, without submitting it."""

from __future__ import annotations

import argparse
import json

from jobs.commands import submit
from jobs.commands.common import SENDING_FLAGS, ignored_note, job_specs, staged
from jobs.context import Context
from jobs.preflight import gate

NAME = "preflight"
HELP = "check that a job with submit's flags can start, and its maximum cost; submit nothing"
TAKES_COMMAND = True


# How preflight uses the submit flags whose submit wording would be wrong here.
HELPS = {
    "--image-tag": "check the image of this tag of the same repository (the revision submit "
    "--image-tag would register)",
    "--json": "print the report (checks, summary, cost bound) as JSON",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The same flags as submit, so a submit line can be checked by changing one word."""
    submit.add_arguments(parser, ignored=SENDING_FLAGS, helps=HELPS)
    parser.epilog = (
        f"{ignored_note(SENDING_FLAGS, 'they are about sending and watching')}\n"
        "Exit 2 when a check FAILs; 1 when no check could be decided (credentials or\n"
        "permissions missing).\n"
        "example:\n  python -m jobs preflight --job-name heat --nodes 4 --vcpus 8 --memory 15000"
    )


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Print the report (table or --json); exit 2 when a check failed."""
    # The staging locations are checked as submit would (exit 2 naming them).
    specs, _ = staged(args, ctx, job_specs(args, ctx, [(args.job_name, args.nodes)]),
                      args.job_name)
    reports = gate.run(ctx.api, specs, args.image_tag)
    if args.json:  # the whole report even when nothing was decided
        print(json.dumps(reports[0].as_dict(), indent=2))
    gate.refuse_undecided(reports)  # its error line names the reasons: no table of them
    if not args.json:
        gate.show(ctx.out, reports, full=True)
    gate.refuse(reports)
    return 0
