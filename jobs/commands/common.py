"""Arguments and steps shared by submit and scale-test."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable, Collection, Mapping
from typing import Any

from rich.text import Text

from jobs import stage, validate, wholenode
from jobs.context import Context
from jobs.errors import InvalidInput, JobsError
from jobs.preflight import gate
from jobs.render import printable
from jobs.request import CLI_TAGS, JobSpec, submit_request
from launcher.contract import RANKS_PER_NODE_ENV

# What a registered revision's ARN can hold besides the name (partition, region, account).
LONGEST_ARN_PREFIX = "arn:aws-us-gov:batch:ap-southeast-5:000000000000:job-definition/"


# The flags of submit that a command accepts only so that a submit line runs unchanged: their
# help is hidden there and the command's epilog names them (see `ignored_note`).
SENDING_FLAGS = ("--dry-run", "--no-preflight", "--wait", "--interval", "--max-wait")


class Flags:
    """Adds flags to a parser, hiding the help of `ignored` ones and rewording others."""

    def __init__(self, parser: argparse.ArgumentParser, ignored: Collection[str] = (),
                 helps: Mapping[str, str] | None = None) -> None:
        self.parser = parser
        self.ignored = frozenset(ignored)
        self.helps = dict(helps or {})

    def add(self, flag: str, **kwargs: Any) -> None:
        """One flag; its help is the override, or hidden when the command ignores it."""
        kwargs["help"] = (argparse.SUPPRESS if flag in self.ignored
                          else self.helps.get(flag, kwargs.get("help")))
        self.parser.add_argument(flag, **kwargs)


def ignored_note(ignored: Collection[str], why: str) -> str:
    """The epilog line naming the flags a command accepts and ignores."""
    return textwrap.fill(f"{', '.join(ignored)}: accepted and ignored ({why}).", width=90)


def add_queue_arguments(parser: argparse.ArgumentParser | Flags, definition: bool = True) -> None:
    """--job-queue (and --job-definition): flag, else env, else stack output."""
    flags = parser if isinstance(parser, Flags) else Flags(parser)
    flags.add(
        "--job-queue", metavar="NAME",
        help="Batch job queue (default: $JOB_QUEUE_NAME, else the stack's job_queue_name)",
    )
    if definition:
        flags.add(
            "--job-definition", metavar="NAME",
            help="job definition name, name:revision or ARN (default: $JOB_DEFINITION_NAME, "
            "else the stack's job_definition_name)",
        )


def add_wait_arguments(parser: argparse.ArgumentParser | Flags) -> None:
    """--interval and --max-wait for anything that polls."""
    flags = parser if isinstance(parser, Flags) else Flags(parser)
    flags.add("--interval", type=validate.positive_seconds, default=10.0,
              metavar="S", help="seconds between polls (default 10)")
    flags.add("--max-wait", type=validate.positive_seconds, default=86400.0,
              metavar="S", help="stop watching after S seconds, exit 1 "
              "(default 86400; the job keeps running)")


def add_job_arguments(parser: argparse.ArgumentParser, nodes_type: Callable[[str], Any],
                      nodes_help: str, ignored: Collection[str] = (),
                      helps: Mapping[str, str] | None = None, whole_node: bool = True) -> None:
    """The resource, path, retry and tag flags of a job (``ignored``: accepted, help hidden;
    ``helps``: the command's own wording of a flag; ``whole_node``: --whole-node and
    --instance-type, with which --vcpus and --memory are not required)."""
    flags = Flags(parser, ignored, helps)
    flags.add("--nodes", type=nodes_type, required=True, metavar="N", help=nodes_help)
    either = " (or --whole-node)" if whole_node else ""
    flags.add("--vcpus", type=validate.vcpus, required=not whole_node, metavar="V",
              help=f"vCPUs per node{either}; also the MPI ranks per node (MNP_RANKS_PER_NODE) "
              "unless --env sets it")
    flags.add("--memory", type=validate.memory, required=not whole_node, metavar="MIB",
              help=f"memory per node in MiB, at least {validate.MIN_MEMORY_MIB} (Batch's "
              f"minimum){either}")
    if whole_node:
        flags.add("--whole-node", nargs="?", const="vcpus", choices=wholenode.RANKS,
                  metavar="RANKS", help="size each node as a whole instance of the compute "
                  "environment's type: its vCPUs, and its memory less what ECS keeps back; "
                  "ranks per node: every vCPU (default) or 'cores' (one per physical core)")
        flags.add("--instance-type", metavar="TYPE", help="the type --whole-node sizes for, "
                  "when the compute environment allows several")
    flags.add("--input-path", type=validate.absolute_path, metavar="DIR",
              help="input directory on the EFS mount (sets INPUT_PATH)")
    flags.add("--output-path", type=validate.absolute_path, metavar="DIR",
              help="output parent directory on the EFS mount; a run writes "
              "DIR/<job id>/ (sets OUTPUT_PATH)")
    flags.add("--image-tag", type=validate.image_tag, metavar="TAG",
              help="register a job definition revision using this image tag of the "
              "same repository, then submit against it")
    flags.add("--timeout", type=validate.timeout, metavar="S",
              help=f"per-attempt time limit in seconds (at least {validate.MIN_TIMEOUT_S})")
    flags.add("--attempts", type=validate.attempts, metavar="N",
              help=f"attempts 1..{validate.MAX_ATTEMPTS}, with the retry rules of "
              "the exit-code contract (retry 3, 4, 143 and host failures)")
    flags.add("--tag", type=validate.tag, action="append", default=[],
              metavar="KEY=VALUE", help="job tag, repeatable (propagated to tasks)")
    flags.add("--env", type=validate.env_var, action="append", default=[],
              metavar="NAME=VALUE", help="environment variable for every node, "
              "repeatable, over the job definition's (e.g. MNP_PRECHECK=0, "
              "MNP_NETWORK=ofi-tcp, MNP_RANKS_PER_NODE=16); the launcher's MNP_* "
              "values are checked before anything starts")
    add_queue_arguments(flags)
    flags.add("--dry-run", action="store_true",
              help="run the preflight checks, print them with the maximum cost, "
              "and print the SubmitJob request as JSON; send nothing")
    flags.add("--no-preflight", action="store_true",
              help="skip the preflight checks (see `preflight --help`) and their AWS reads")
    flags.add("--wait", action="store_true",
              help="watch until the job ends; exit 0 only if it SUCCEEDED")
    add_wait_arguments(flags)
    flags.add("--json", action="store_true", help="print results as JSON")


def check_sizing_flags(args: argparse.Namespace) -> None:
    """--vcpus and --memory, or --whole-node (with --instance-type at most), not a mix."""
    whole = getattr(args, "whole_node", None)
    given = [f for f, v in (("--vcpus", args.vcpus), ("--memory", args.memory)) if v is not None]
    if whole and given:
        raise InvalidInput(f"--whole-node sizes the node itself: drop {' and '.join(given)}")
    if getattr(args, "instance_type", None) and not whole:
        raise InvalidInput("--instance-type only says which type --whole-node sizes for; "
                           "add --whole-node or drop it")
    if not whole and len(given) < 2:
        missing = [f for f in ("--vcpus", "--memory") if f not in given]
        raise InvalidInput(f"the following arguments are required: {', '.join(missing)} "
                           "(or --whole-node)")


def whole_node(args: argparse.Namespace, ctx: Context, queue: str,
               pairs: list[tuple[str, str]]) -> tuple[int, int, list[tuple[str, str]]]:
    """vCPUs, memory and the --env pairs for --whole-node (the arguments' own without it)."""
    if not getattr(args, "whole_node", None):
        return args.vcpus, args.memory, pairs
    size = wholenode.read_size(ctx.api, queue, args.instance_type)
    ranks = size.ranks(args.whole_node)
    ctx.err.print(f"--whole-node: {size.instance_type}: {size.vcpus} vCPUs, {size.memory_mib} "
                  f"MiB (ECS registers that of its {size.installed_mib} MiB), {ranks} ranks "
                  f"per node ({args.whole_node})")
    if ranks != size.vcpus:
        if any(name == RANKS_PER_NODE_ENV for name, _ in pairs):
            raise InvalidInput(f"--whole-node={args.whole_node} sets {RANKS_PER_NODE_ENV} "
                               f"itself: drop --env {RANKS_PER_NODE_ENV}")
        pairs = [*pairs, (RANKS_PER_NODE_ENV, str(ranks))]
    return validate.vcpus(str(size.vcpus)), size.memory_mib, pairs


def job_specs(args: argparse.Namespace, ctx: Context, names_nodes: list[tuple[str, int]],
              extra_tags: dict[str, str] | None = None) -> list[JobSpec]:
    """Check the cross-field limits, resolve names, and build one spec per (name, nodes)."""
    check_sizing_flags(args)
    mount = ctx.settings.efs_mount()
    validate.check_under_mount("--input-path", args.input_path, mount)
    validate.check_under_mount("--output-path", args.output_path, mount)
    tags = validate.check_tags(args.tag, {**CLI_TAGS, **(extra_tags or {})})
    validate.check_env(args.env)  # before any AWS read; again below with --whole-node's ranks
    spot = getattr(args, "spot", False)
    if spot:
        queue, definition = spot_names(args, ctx, [count for _, count in names_nodes])
    else:
        queue = ctx.settings.resolve(args.job_queue, "JOB_QUEUE_NAME", "job_queue_name",
                                     "--job-queue", validate.job_queue)
        definition = ctx.settings.resolve(args.job_definition, "JOB_DEFINITION_NAME",
                                          "job_definition_name", "--job-definition",
                                          validate.job_definition)
    vcpus, memory, pairs = whole_node(args, ctx, queue, args.env)
    env = validate.check_env(pairs)
    limit = ctx.settings.max_vcpus()
    if limit is None:
        ctx.err.print(f"warning: max_vcpus unknown ({ctx.settings.outputs.source}): not "
                      "checking nodes x vCPUs")
    for _, count in names_nodes:
        validate.check_capacity(count, vcpus, limit)
    specs = [
        JobSpec(name=name, queue=queue, definition=definition, nodes=count, vcpus=vcpus,
                memory=memory, input_path=args.input_path, output_path=args.output_path,
                command=tuple(args.job_command), attempts=args.attempts, timeout=args.timeout,
                tags={**tags, **(extra_tags or {})}, env=env, single_node=spot)
        for name, count in names_nodes
    ]
    check_sizes(specs, args.image_tag)
    return specs


def check_sizes(specs: list[JobSpec], image_tag: str | None) -> None:
    """Refuse a request Batch would, as sent (with --image-tag: the new revision's ARN)."""
    for spec in specs:
        request = submit_request(spec)
        if image_tag:
            name = spec.definition.rpartition("/")[2].partition(":")[0]
            request["jobDefinition"] = f"{LONGEST_ARN_PREFIX}{name}:99999999"
        validate.check_request_size(request, f"the SubmitJob request for {spec.name}")


def staged(args: argparse.Namespace, ctx: Context, specs: list[JobSpec],
           name: str) -> tuple[list[JobSpec], stage.Staging]:
    """--stage-in/--stage-out applied to the specs (one stage-in, named ``name``, for all)."""
    staging = stage.plan(args, ctx, name, specs[0].definition)
    if staging == stage.Staging():
        return specs, staging
    specs = [stage.apply(spec, staging) for spec in specs]
    check_sizes(specs, args.image_tag)
    if staging.stage_in:
        validate.check_request_size(stage.stage_in_request(staging.stage_in, name, {}),
                                    "the stage-in SubmitJob request")
    return specs, staging


def spot_names(args: argparse.Namespace, ctx: Context, counts: list[int]) -> tuple[str, str]:
    """Queue and definition of the stack's optional single-node Spot queue."""
    if any(count != 1 for count in counts):
        raise InvalidInput(
            f"--spot runs single-node jobs but --nodes is {','.join(map(str, counts))}: "
            "multi-node jobs do not run on Spot",
            hint="use --nodes 1, or drop --spot for the multi-node queue",
        )
    names = []
    for flag, value, env, output, check in (
        ("--job-queue", args.job_queue, "SPOT_JOB_QUEUE_NAME", "spot_job_queue_name",
         validate.job_queue),
        ("--job-definition", args.job_definition, "SPOT_JOB_DEFINITION_NAME",
         "spot_job_definition_name", validate.job_definition),
    ):
        found = value or ctx.settings.optional(env, output, check)
        if not found:
            raise InvalidInput(
                f"no Spot {output.removeprefix('spot_').replace('_', ' ')}: the stack's Spot "
                f"queue is off or not deployed ({ctx.settings.outputs.source})",
                hint=f"set enable_spot_queue = true and apply, or pass {flag} / set {env}",
            )
        names.append(found)
    return names[0], names[1]


def preflight(ctx: Context, args: argparse.Namespace, specs: list[JobSpec]) -> None:
    """Refuse (exit 2) a job a check says cannot start; a dry run shows the report instead."""
    if args.no_preflight:
        return
    if not args.dry_run:
        reports = gate.run(ctx.api, specs, args.image_tag)
        gate.show(ctx.err, reports, full=False)
        gate.refuse(reports)
        return
    try:
        reports = gate.run(ctx.api, specs, args.image_tag)
    except JobsError as exc:  # e.g. no such queue: the dry run still shows the request
        ctx.err.print(Text(printable(f"preflight: not run: {exc.line()}")))
        return
    gate.show(ctx.err, reports, full=True)
    try:
        gate.refuse(reports)
    except JobsError as exc:
        ctx.err.print(Text(printable(f"dry run: submit would refuse this job: {exc}")))


def dry_run(ctx: Context, requests: list[dict[str, Any]], image_tag: str | None,
            staging: stage.Staging | None = None, stage_name: str = "") -> int:
    """Print the request(s) exactly as they would be sent (a stage-in job's first, the
    others then naming it in dependsOn)."""
    if image_tag:
        ctx.err.print(f"dry run: --image-tag {image_tag} would first register a revision of "
                      f"{requests[0]['jobDefinition']} with that tag and submit against it")
    if staging is not None and staging.stage_in is not None:
        first = stage.stage_in_request(staging.stage_in, stage_name or requests[0]["jobName"],
                                       requests[0]["tags"])
        ctx.err.print(f"dry run: the stage-in job {first['jobName']} would be submitted first "
                      "and the job after it, depending on its id")
        requests = [first, *(stage.depending_on(r, "<stage-in job id>") for r in requests)]
    body = requests[0] if len(requests) == 1 else requests
    print(json.dumps(body, indent=2, sort_keys=True))
    return 0
