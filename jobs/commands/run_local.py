"""`run-local`: the job as Batch would run it, as containers of the image on this machine."""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
from pathlib import Path
from typing import Any

from emulator import engine
from emulator.containers import STOP_GRACE, ContainerJob, stack_secret_values
from emulator.interrupts import exit_code, stop_signals_interrupt
from emulator.jobdef import (
    JobDefinitionError,
    access_point_owner,
    apply_request,
    multinode_definition,
)
from jobs import localstaging, validate
from jobs.commands.common import add_job_arguments, dry_run, ignored_note
from jobs.context import Context
from jobs.errors import InvalidInput, JobsError
from jobs.outputs import project_root, stack_workdir, synthesized_config
from jobs.request import JobSpec, submit_request, with_tag
from launcher.contract import EFS_MOUNT_PATH, EVALUATE_ON_EXIT, STOPPED

NAME = "run-local"
HELP = ("run a multi-node job as Batch would, as one container of the image per node on this "
        "machine (no AWS); '-- CMD...' replaces the job definition's command")
TAKES_COMMAND = True


class EngineFailed(JobsError):
    """The local container engine is missing or failed."""


# submit's flags that mean nothing without AWS: accepted so a submit line runs unchanged.
IGNORED = ("--job-queue", "--job-definition", "--tag", "--no-preflight", "--wait", "--interval",
           "--max-wait")
# How run-local uses the submit flags whose submit wording would be wrong here.
HELPS = {
    "--image-tag": "run this tag of --image (the local image) instead of its own",
    "--timeout": "per-attempt time limit in seconds; at the limit every node is stopped, as "
    f"Batch does (at least {validate.MIN_TIMEOUT_S})",
    "--attempts": f"attempts 1..{validate.MAX_ATTEMPTS}: an attempt whose exit code the retry "
    "rules retry (3, 4, 143) is followed by the next, here, as Batch would",
    "--dry-run": "print the SubmitJob request applied to the synthesized job definition, as "
    "JSON; start nothing",
    "--json": "print the job id, the last attempt and its exit code as JSON",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """submit's flags plus the image and the local stand-ins for EFS and CloudWatch."""
    parser.add_argument("--job-name", type=validate.job_name, default="local-run",
                        metavar="NAME", help="job name (default local-run)")
    add_job_arguments(parser, validate.nodes, f"number of nodes, 1..{validate.MAX_NODES}",
                      ignored=IGNORED, helps=HELPS, whole_node=False)
    parser.add_argument("--image", default=engine.IMAGE, metavar="NAME",
                        help=f"local image (default {engine.IMAGE}); --image-tag swaps its tag")
    parser.add_argument("--build", action="store_true",
                        help="build the image from image/Dockerfile first (a local base "
                        "image is made once when no registry is reachable)")
    parser.add_argument("--efs-dir", type=Path, default=Path("local-efs"), metavar="DIR",
                        help="directory mounted where the job definition mounts EFS "
                        "(default ./local-efs)")
    parser.add_argument("--log-dir", type=Path, default=Path("local-logs"), metavar="DIR",
                        help="per-node logs, named as the CloudWatch streams (default "
                        "./local-logs)")
    # Not `--attempt`: one letter from --attempts, which means the number of attempts.
    parser.add_argument("--first-attempt", type=validate.attempts, default=1, metavar="N",
                        help="number the first attempt N (AWS_BATCH_JOB_ATTEMPT), e.g. to "
                        "resume a job; attempts N up to --attempts run")
    parser.add_argument("--job-id", type=validate.job_id, metavar="ID",
                        help="job id (default: a new uuid; reuse one to share checkpoints)")
    parser.add_argument("--max-delay", type=validate.positive_seconds, default=1.0,
                        metavar="S", help="children start in random order up to S s after "
                        "the main node (default 1)")
    localstaging.add_arguments(parser)
    parser.epilog = (
        f"{ignored_note(IGNORED, 'no local meaning; a submit line runs unchanged')}"
        "\nexample:\n  python -m jobs "
        "run-local --nodes 4 --vcpus 1 --memory 2048 --output-path /mnt/efs/out \\\n"
        "      -- python -m solver heat --nx 257 --ny 257")


# The reason ECS gives when the main node's container exits on its own.
EXIT_REASON = "Essential container in task exited"


def _retried(code: int) -> bool:
    """Whether the retry rules (first match wins; no match retries) retry exit `code`."""
    for rule in EVALUATE_ON_EXIT:
        matched = (fnmatch.fnmatchcase(str(code), rule["onExitCode"]) if "onExitCode" in rule
                   else fnmatch.fnmatchcase(EXIT_REASON, rule["onReason"])
                   if "onReason" in rule else False)  # onStatusReason: host failures only
        if matched:
            return rule["action"] == "RETRY"
    return True


def _follow(job: ContainerJob) -> subprocess.Popen[bytes]:
    """Stream the main node's output to this terminal, as `logs --follow` would."""
    return subprocess.Popen(["docker", "logs", "-f", job.nodes[job.job.main_node].name])


def _attempt(ctx: Context, args: argparse.Namespace, local: Any, attempt: int,
             job_id: str | None, stack: dict[str, str], plan: localstaging.Plan | None,
             last: int) -> tuple[int, str]:
    with ContainerJob(local, args.image, efs_dir=args.efs_dir.resolve(),
                      log_dir=args.log_dir.resolve(), job_id=job_id, attempt=attempt,
                      max_delay=args.max_delay, secret_values=stack) as job:
        ctx.err.print(f"run-local: job {job.job_id} attempt {attempt}: {local.num_nodes} "
                      f"containers of {args.image} on network {job.network}")
        if plan is None:
            return _nodes(ctx, args, local, job), job.job_id
        plan.staging.attach(job)
        try:
            return _staged(ctx, args, local, job, plan, attempt, last), job.job_id
        finally:
            plan.staging.detach(job)


def _staged(ctx: Context, args: argparse.Namespace, local: Any, job: ContainerJob,
            plan: localstaging.Plan, attempt: int, last: int) -> int:
    """Stage-in (first attempt), the nodes, stage-out once the job is in a terminal state."""
    try:
        code = plan.before(ctx, job) if attempt == args.first_attempt else 0
        if code != 0:
            ctx.err.print("run-local: stage-in failed: no node starts (Batch fails a job "
                          "whose dependency failed)")
        else:
            code = _nodes(ctx, args, local, job)
            if attempt < last and _retried(code):
                return code  # not terminal: the next attempt's stage-out will run
    except KeyboardInterrupt:
        if plan.stage_out:
            ctx.err.print("run-local: stopped: stopping every node as Batch does (SIGTERM, "
                          f"SIGKILL {STOP_GRACE} s later), then the stage-out job")
            job.stop_job()
            plan.after(ctx, job, STOPPED)
        raise
    plan.after(ctx, job, code)
    return code


def _nodes(ctx: Context, args: argparse.Namespace, local: Any, job: ContainerJob) -> int:
    """Start the nodes, follow the main node, wait for it (stopping all at the time limit)."""
    job.start()
    for note in job.notes:  # the main node's container is made: its limits are known
        ctx.err.print(f"run-local: note: {note}")
    follower = _follow(job)
    try:
        code = job.wait(local.attempt_seconds or 10**9)
    except subprocess.TimeoutExpired:
        ctx.err.print(f"run-local: attempt timed out after {local.attempt_seconds}s: "
                      "stopping every node as Batch does")
        job.stop_job()
        code = job.wait(60)
    except KeyboardInterrupt:
        follower.kill()  # it would follow the main node until close() removes it
        raise
    finally:
        try:
            follower.wait(timeout=10)
        except subprocess.TimeoutExpired:
            follower.kill()
    job.write_logs()
    streams = ", ".join(job.stream_name(n.index) for n in job.nodes if n.started)
    ctx.err.print(f"run-local: node logs in {args.log_dir}: {streams}")
    return code


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Run the job; SIGTERM, SIGHUP and Ctrl-C remove its containers and network alike."""
    try:
        with stop_signals_interrupt():
            return _run(args, ctx)
    except KeyboardInterrupt as stop:  # ContainerJob.close has run: nothing of the job is left
        ctx.err.print(f"run-local: stopped by {stop or 'SIGINT'}; its containers and network "
                      "are removed")
        return exit_code(stop)


def _run(args: argparse.Namespace, ctx: Context) -> int:
    """Read the synthesized job definition, apply the request, run each attempt."""
    localstaging.check_endpoint(args)
    config = synthesized_config(project_root(), ctx.settings.stack)
    try:
        definition = multinode_definition(config)
    except JobDefinitionError as exc:
        raise InvalidInput(str(exc)) from exc
    mounts = [m["containerPath"] for m in definition["nodeProperties"]["nodeRangeProperties"][0]
              ["container"].get("mountPoints", [])]
    for flag, path in (("--input-path", args.input_path), ("--output-path", args.output_path)):
        validate.check_under_mount(flag, path, mounts[0] if mounts else EFS_MOUNT_PATH)
    plan = localstaging.plan(args, definition)
    spec = JobSpec(name=args.job_name, queue="local", definition=definition[
        "jobDefinitionName"], nodes=args.nodes, vcpus=args.vcpus, memory=args.memory,
        input_path=plan.dest if plan and plan.dest else args.input_path,
        output_path=args.output_path,
        command=tuple(args.job_command), attempts=args.attempts, timeout=args.timeout,
        env=validate.check_env(args.env))
    request = submit_request(spec)
    if args.dry_run:
        return dry_run(ctx, [request], None)
    if args.image_tag:
        args.image = with_tag(args.image, args.image_tag)
    try:
        engine.ensure_running()
        if args.build:
            engine.build_image(args.image)
        elif not engine.image_exists(args.image):
            raise InvalidInput(f"image {args.image} is not in the local engine's store",
                               hint="add --build, or docker build -f image/Dockerfile -t "
                               f"{args.image} .")
        elif engine.built_from_here(args.image) is False:
            ctx.err.print(f"run-local: note: {args.image} was built from other sources than "
                          "this checkout's: add --build to run what is here")
        if plan:
            plan.check_image()
    except engine.EngineError as exc:
        raise EngineFailed(str(exc)) from exc
    local = apply_request(definition, request, access_point_owner(config))
    # A request's retryStrategy replaces the definition's; without one Batch uses the latter.
    strategy = request.get("retryStrategy") or definition.get("retryStrategy") or {}
    last = int(strategy.get("attempts", 1))
    job_id, attempt = (args.job_id or "").split("#")[0] or None, args.first_attempt
    _, workdir = stack_workdir(project_root(), ctx.settings.stack)
    stack = stack_secret_values(workdir / "run-local-secret")
    while True:
        code, job_id = _attempt(ctx, args, local, attempt, job_id, stack, plan, last)
        if attempt >= last or not _retried(code):
            break
        ctx.err.print(f"run-local: attempt {attempt} exited {code}, which the retry rules "
                      f"retry: starting attempt {attempt + 1}")
        attempt += 1
    ctx.err.print(f"run-local: job {job_id} exited {code}")
    result = {"jobId": job_id, "attempt": attempt, "exitCode": code}
    if plan:
        result.update(plan.summary())
        if code == 0 and plan.out_code:
            ctx.err.print(f"run-local: the job succeeded but its stage-out exited "
                          f"{plan.out_code}: its outputs are not all in {args.stage_out}")
            code = plan.out_code
    if args.json:
        print(json.dumps(result))
    return code
