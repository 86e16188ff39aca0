"""`preflight`: check that a job could start, and what it can cost, without submitting it."""

from __future__ import annotations

import argparse
import json

from rich.text import Text

from jobs import spotgang, wholenode
from jobs.commands import submit
from jobs.commands.common import SENDING_FLAGS, ignored_note, job_specs, spot_names, staged
from jobs.context import Context
from jobs.preflight import fallback, gate
from jobs.preflight.facts import Reader
from jobs.preflight.gate import Report

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
        "With --spot-gang: the job as whole-node on-demand MNP, and beside it the same\n"
        "world as a Spot gang at the current Spot price, per hour.\n"
        "Exit 2 when a check FAILs; 1 when no check could be decided (credentials or\n"
        "permissions missing).\n"
        "example:\n  python -m jobs preflight --job-name heat --nodes 4 --vcpus 8 --memory 15000"
    )


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Print the report (table or --json); exit 2 when a check failed."""
    spotgang.check(args)
    if args.spot_gang:  # the same world as whole on-demand nodes, to set beside the gang
        args.whole_node = args.whole_node or "vcpus"
    # The staging locations are checked as submit would (exit 2 naming them).
    specs, _ = staged(args, ctx, job_specs(args, ctx, [(args.job_name, args.nodes)]),
                      args.job_name)
    reports = gate.run(ctx.api, specs, args.image_tag,
                       ctx.settings.optional(None, "fsx_file_system_id"))
    gang = compare(args, ctx, reports[0]) if args.spot_gang else None
    fallbacks = fallback_queues(ctx, reports[0])
    if args.json:  # the whole report even when nothing was decided
        print(json.dumps({**reports[0].as_dict(),
                          **({"spotGang": gang.as_dict()} if gang else {}),
                          **({"fallbacks": [f.as_dict() for f in fallbacks]}
                             if fallbacks else {})}, indent=2))
    gate.refuse_undecided(reports)  # its error line names the reasons: no table of them
    if not args.json:
        gate.show(ctx.out, reports, full=True)
        for line in gang.lines() if gang else []:
            ctx.out.print(line)
        for queue in fallbacks:
            ctx.out.print(Text(queue.line()))
    gate.refuse(reports)
    return 0


def fallback_queues(ctx: Context, report: Report) -> list[fallback.Fallback]:
    """The stack's fallback queues for this multi-node job (none: nothing is read)."""
    names = fallback.queue_names(ctx.settings.outputs.get(fallback.OUTPUT))
    if not names or report.spec.single_node:
        return []
    return fallback.read(Reader(ctx.api.preflight_view()), names, report.spec)


def compare(args: argparse.Namespace, ctx: Context, report: Report) -> spotgang.Comparison:
    """The on-demand report's price beside the gang's: the Spot queue's type, Spot price."""
    queue, _ = spot_names(args, ctx, [1])
    size = wholenode.read_size(ctx.api, queue, args.instance_type)
    return spotgang.Comparison(
        nodes=args.nodes, on_demand_type=report.estimate.instance_type,
        on_demand_hourly=report.estimate.hourly_usd, spot_type=size.instance_type,
        spot_hourly=spotgang.spot_price(ctx, size.instance_type),
        timeout_s=report.estimate.timeout_s)
