"""`run-local --stage-in/--stage-out`: the stack's staging jobs as containers beside the job.

The order is Batch's: the stage-in job runs first and the multi-node job starts only if it
succeeded (dependsOn); the stage-out job runs once the job is in a terminal state, whatever
the state (the EventBridge rule on SUCCEEDED and FAILED; a dependency that failed and a stop
both end as FAILED). Commands and the stage-in directory come from staging.commands, as
`submit` and the stack take them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from emulator import engine
from emulator.containers import ContainerJob
from emulator.stagingjobs import S3_IMAGE, LocalStaging
from jobs import stage, validate
from jobs.context import Context
from jobs.errors import InvalidInput
from launcher.contract import OUTPUT_PATH_ENV
from staging import commands

ENDPOINT_ENV = "AWS_ENDPOINT_URL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--stage-in, --stage-out (submit's own) and the emulation's own two flags."""
    stage.add_arguments(parser.add_argument)
    parser.add_argument("--s3-endpoint", type=validate.endpoint_url, metavar="URL",
                        default=os.environ.get(ENDPOINT_ENV),
                        help=f"emulation only: the S3 emulator staging uses (default "
                        f"${ENDPOINT_ENV}), e.g. http://mnp-s3:5000 for a container of "
                        f"{S3_IMAGE} named mnp-s3, which run-local connects to the job's "
                        "network for the run (run-local never stages against AWS)")
    parser.add_argument("--staging-image", default=engine.IMAGE, metavar="NAME",
                        help=f"the stack's own image, which runs staging whatever --image is "
                        f"(default {engine.IMAGE})")


@dataclass
class Plan:
    """What to stage for one run-local job, and the containers that do it."""

    staging: LocalStaging
    stage_in: str | None
    dest: str | None
    stage_out: str | None
    output_dir: str
    in_code: int | None = None
    out_code: int | None = None

    def check_image(self) -> None:
        """The staging image must be in the local store (after --build made the job's)."""
        if not engine.image_exists(self.staging.image):
            raise InvalidInput(f"staging image {self.staging.image} is not in the local "
                               "engine's store", hint="docker build -f image/Dockerfile -t "
                               f"{self.staging.image} .")

    def before(self, ctx: Context, job: ContainerJob) -> int:
        """The stage-in job (exit 0 when there is none)."""
        if not self.stage_in or not self.dest:
            return 0
        run = self.staging.run(job, commands.in_command(self.stage_in, self.dest), "stage-in")
        _report(ctx, "stage-in", run.code, run.output)
        self.in_code = run.code
        return run.code

    def after(self, ctx: Context, job: ContainerJob, code: int) -> int:
        """The stage-out job for a job that ended with `code` (its exit code, 0 if none)."""
        if not self.stage_out:
            return 0
        status = "SUCCEEDED" if code == 0 else "FAILED"
        run = self.staging.run(job, commands.out_command(job.job_id, status, self.output_dir,
                                                         self.stage_out), "stage-out")
        _report(ctx, "stage-out", run.code, run.output)
        self.out_code = run.code
        return run.code

    def summary(self) -> dict[str, Any]:
        """What --json adds: where the inputs went, where the outputs are, the exit codes."""
        found: dict[str, Any] = {}
        if self.stage_in:
            found.update(stageIn=self.stage_in, inputPath=self.dest, stageInExitCode=self.in_code)
        if self.stage_out:
            found.update(stageOut=self.stage_out, stageOutExitCode=self.out_code)
        return found


def _report(ctx: Context, what: str, code: int, output: str) -> None:
    lines = [line for line in output.splitlines() if line.startswith("staging")]
    for line in lines:
        ctx.err.print(f"run-local: {what}: {line}", markup=False, highlight=False)
    ctx.err.print(f"run-local: {what} job exited {code}")


def check_endpoint(args: argparse.Namespace) -> None:
    """Staging flags need the emulator's endpoint (InvalidInput before anything is read)."""
    if (args.stage_in or args.stage_out) and not args.s3_endpoint:
        raise InvalidInput("--stage-in/--stage-out in run-local need an S3 emulator: give "
                           f"--s3-endpoint URL (or {ENDPOINT_ENV})",
                           hint="staging/README.md, 'Locally'; submit stages on AWS")


def plan(args: argparse.Namespace, definition: dict[str, Any]) -> Plan | None:
    """The staging of this run, or None; InvalidInput when it cannot be emulated here."""
    if not (args.stage_in or args.stage_out):
        return None
    check_endpoint(args)
    output_dir = args.output_path or stage.definition_output_path(definition) or ""
    if args.stage_out and not output_dir:
        raise InvalidInput("--stage-out needs --output-path (the job definition sets no "
                           f"{OUTPUT_PATH_ENV})")
    dest = (commands.stage_in_dest(args.input_path, args.job_name) if args.stage_in
            else None)
    return Plan(LocalStaging(args.staging_image, args.s3_endpoint),
                str(args.stage_in) if args.stage_in else None, dest,
                str(args.stage_out) if args.stage_out else None, output_dir)
