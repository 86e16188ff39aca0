"""`submit`: one multi-node job."""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection, Mapping

from jobs import runfamily, spotgang, stage, validate
from jobs.commands.common import (
    add_job_arguments,
    dry_run,
    job_specs,
    preflight,
    staged,
)
from jobs.commands.gang import submit_gang
from jobs.commands.sending import submit_all
from jobs.commands.watch import watch_jobs
from jobs.context import Context
from jobs.request import submit_request

NAME = "submit"
HELP = "submit a multi-node job; '-- CMD...' replaces the job definition's command"
TAKES_COMMAND = True


def add_arguments(parser: argparse.ArgumentParser, ignored: Collection[str] = (),
                  helps: Mapping[str, str] | None = None) -> None:
    """Register submit's flags (preflight's too: ``ignored`` and ``helps`` as in
    add_job_arguments)."""
    parser.add_argument("--job-name", type=validate.job_name, required=True, metavar="NAME",
                        help="up to 128 letters, digits, '-', '_'; starts alphanumeric")
    add_job_arguments(parser, validate.nodes,
                      f"number of nodes, 1..{validate.MAX_NODES}", ignored, helps)
    parser.add_argument("--spot", action="store_true",
                        help="a single-node job (--nodes 1) on the stack's optional Spot queue "
                        "(spot_job_queue_name / spot_job_definition_name outputs)")
    runfamily.add_arguments(parser)
    spotgang.add_arguments(parser)
    stage.add_arguments(parser.add_argument)
    parser.epilog = (
        "example:\n  python -m jobs submit --job-name heat --nodes 4 --vcpus 8 --memory 15000 \\\n"
        "      --output-path /mnt/efs/runs -- python -m solver heat --nx 4097 --ny 4097\n"
        "  python -m jobs submit --job-name heat --nodes 2 --vcpus 8 --memory 15000 \\\n"
        "      --stage-in s3://BUCKET/input/case1 --stage-out s3://BUCKET/output/\n"
        "  python -m jobs fetch JOB_ID"
    )


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Validate and preflight, then print (--dry-run) or submit, and optionally watch."""
    run_tags = runfamily.tags(args)
    spotgang.check(args)
    if args.spot_gang:
        return submit_gang(args, ctx, run_tags)
    (spec,), staging = staged(
        args, ctx, job_specs(args, ctx, [(args.job_name, args.nodes)], run_tags), args.job_name)
    preflight(ctx, args, [spec])
    if args.dry_run:
        return dry_run(ctx, [submit_request(spec)], args.image_tag, staging)
    (result,) = submit_all(ctx, [spec], args.image_tag, staging)
    if run_tags:
        checkpoints = runfamily.tag_checkpoint(ctx, result, args.output_path)
        result["family"] = runfamily.summary(result["jobId"], checkpoints, run_tags)
        ctx.err.print(f"run {result['jobId']}: continues on {args.min_nodes}..{args.nodes} "
                      f"nodes, at most {result['family']['maxGenerations']} jobs")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result["jobId"])
    if not args.wait:
        ctx.err.print(f"follow it with: python -m jobs watch {result['jobId']}")
        return 0
    return watch_jobs(ctx, [result["jobId"]], args.interval, args.max_wait, args.json)
