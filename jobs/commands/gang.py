"""`submit --spot-gang`: size, price and send the gang's array job (jobs/spotgang.py holds
the rules)."""

from __future__ import annotations

import argparse
import json

from jobs import runfamily, spotgang, wholenode
from jobs.commands.common import dry_run, job_specs
from jobs.commands.watch import watch_jobs
from jobs.context import Context


def submit_gang(args: argparse.Namespace, ctx: Context, run_tags: dict[str, str]) -> int:
    """One array job of --nodes whole Spot instances forming one MPI world; with `run_tags`
    (--min-nodes) the first member of a run the controller continues."""
    args.spot = True  # the Spot queue and its single-node definition (job_specs' --spot)
    args.whole_node = args.whole_node or "vcpus"
    (spec,) = job_specs(args, ctx, [(args.job_name, 1)], run_tags)
    size = wholenode.read_size(ctx.api, spec.queue, args.instance_type)
    price = spotgang.spot_price(ctx, size.instance_type)
    spec = spotgang.gang_spec(spec, spotgang.gang_env(args, price))
    request = spotgang.gang_request(spec, args.nodes)
    ctx.err.print(f"--spot-gang: {args.nodes} x {size.instance_type} on queue {spec.queue} at "
                  f"${price:g}/h each (current Spot price, dearest zone): "
                  f"${price * args.nodes:g}/h in all")
    if args.dry_run:
        return dry_run(ctx, [request], None)
    result = ctx.api.submit(request)
    gang = {"size": args.nodes, "instanceType": size.instance_type,
            "pricePerNodeHour": price, "queue": spec.queue}
    ctx.err.print(f"submitted {spec.name} as {result['jobId']}: a gang of {args.nodes} "
                  f"(array children {result['jobId']}:0..{args.nodes - 1})")
    out = {"jobId": result["jobId"], "jobName": result["jobName"],
           "jobArn": result.get("jobArn"), "nodes": args.nodes, "gang": gang}
    if run_tags:  # the launcher writes under the parent's id (launcher/README.md "Spot gangs")
        checkpoints = runfamily.tag_checkpoint(ctx, result, args.output_path)
        out["family"] = runfamily.summary(result["jobId"], checkpoints, run_tags)
        ctx.err.print(f"run {result['jobId']}: continues as gangs of {args.min_nodes}.."
                      f"{args.nodes}, at most {out['family']['maxGenerations']} jobs")
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(result["jobId"])
    if not args.wait:
        return 0
    return watch_jobs(ctx, [result["jobId"]], args.interval, args.max_wait, args.json)
