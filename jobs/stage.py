"""A job's data in and out: --stage-in/--stage-out checked against the stack's data locations,
the staging job that copies inputs first, the stage-out job parameters, and reading back where
a job's data went (docs/CONTRACTS.md, "Data in and out")."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.context import Context
from jobs.errors import InvalidInput, JobsError
from jobs.request import CLI_TAGS, JobSpec
from launcher.contract import OUTPUT_DIR_PARAMETER, OUTPUT_PATH_ENV, STAGE_OUT_PARAMETER
from staging import commands, uri
from staging.manifest import OUTPUT_MANIFEST, Manifest
from staging.uri import S3Location

STAGE_IN_SUFFIX = "-stage-in"
# Manifests list one line a file; a bigger one is not ours.
MAX_MANIFEST_BYTES = 256 << 20
REAPPLY = "re-apply the stack (terraform apply) to add the data bucket and staging jobs"


def location(value: str) -> S3Location:
    """argparse type: s3://BUCKET/PREFIX, the message naming the value and the form."""
    try:
        return uri.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(add: Callable[..., None]) -> None:
    """--stage-in and --stage-out (``add`` is a parser's or Flags' add)."""
    add("--stage-in", type=location, metavar="S3", help="copy every object below "
        "s3://BUCKET/PREFIX (below the stack's data_input_prefix) to the shared file system "
        "in a staging job first; the job starts after it, with INPUT_PATH set to the copy")
    add("--stage-out", type=location, metavar="S3", help="when the job ends (however it "
        "ends) copy its folder <output path>/<job id>/ to s3://BUCKET/PREFIX/<job id>/ (below "
        "the stack's data_output_prefix), manifest.json last; get it with `fetch JOB_ID`")


@dataclass(frozen=True)
class StageIn:
    """The staging job that copies ``source`` to ``dest`` before the job starts."""

    source: S3Location
    dest: str
    queue: str
    definition: str


@dataclass(frozen=True)
class Staging:
    """What --stage-in/--stage-out asked for, checked."""

    stage_in: StageIn | None = None
    stage_out: S3Location | None = None
    output_dir: str | None = None

    def parameters(self) -> dict[str, str]:
        """The job parameters stage-out reads from the job's terminal-state event."""
        if self.stage_out is None or self.output_dir is None:
            return {}
        return {STAGE_OUT_PARAMETER: str(self.stage_out), OUTPUT_DIR_PARAMETER: self.output_dir}

    def as_dict(self) -> dict[str, Any]:
        """For --json."""
        found: dict[str, Any] = {}
        if self.stage_in:
            found["stageIn"] = {"source": str(self.stage_in.source), "dest": self.stage_in.dest}
        if self.stage_out:
            found["stageOut"] = {"location": str(self.stage_out), "outputDir": self.output_dir}
        return found


def _output(ctx: Context, name: str, may_be_empty: bool = False) -> str:
    """A data-staging output of the stack; a stack without it predates data staging."""
    value = ctx.settings.outputs.get(name)
    if value is None or (value == "" and not may_be_empty):
        raise InvalidInput(f"the stack has no {name} output ({ctx.settings.outputs.source}): "
                           "it predates data staging", hint=REAPPLY)
    return str(value)


def _allowed(ctx: Context, prefix_output: str) -> S3Location:
    bucket = _output(ctx, "data_bucket")
    return uri.parse(f"s3://{bucket}/{_output(ctx, prefix_output, may_be_empty=True)}")


def _check_within(flag: str, value: S3Location, allowed: S3Location, what: str) -> None:
    if not value.within(allowed):
        raise InvalidInput(f"{flag} {value} is not below {allowed}, the stack's {what} "
                           "location: the staging jobs may read and write nothing else",
                           hint=f"use a location such as {allowed}...")


def definition_output_path(definition: dict[str, Any]) -> str | None:
    """The OUTPUT_PATH a job definition sets (a node range's or the container's)."""
    containers = [definition.get("containerProperties") or {}]
    for node_range in (definition.get("nodeProperties") or {}).get("nodeRangeProperties", []):
        containers.append(node_range.get("container") or {})
    for container in containers:
        for variable in container.get("environment") or []:
            if variable.get("name") == OUTPUT_PATH_ENV and variable.get("value"):
                return str(variable["value"])
    return None


def plan(args: argparse.Namespace, ctx: Context, name: str, definition: str) -> Staging:
    """Check the locations against the stack (exit 2 naming the value and the allowed prefix)
    and work out the staged input directory and the output parent."""
    source, target = getattr(args, "stage_in", None), getattr(args, "stage_out", None)
    if source is None and target is None:
        return Staging()
    stage_in = None
    if source is not None:
        _check_within("--stage-in", source, _allowed(ctx, "data_input_prefix"), "input")
        root = args.input_path or f"{ctx.settings.efs_mount().rstrip('/')}/{commands.INPUT_DIR}"
        stage_in = StageIn(source, commands.stage_in_dest(root, name),
                           _output(ctx, "staging_job_queue_name"),
                           _output(ctx, "staging_job_definition_name"))
    output_dir = None
    if target is not None:
        _check_within("--stage-out", target, _allowed(ctx, "data_output_prefix"), "output")
        _output(ctx, "staging_job_definition_name")  # the rule's job: absent on an old stack
        output_dir = args.output_path or definition_output_path(
            ctx.api.latest_definition(definition))
        if output_dir is None:
            raise InvalidInput(f"--stage-out needs the job's output parent: job definition "
                               f"{definition} sets no {OUTPUT_PATH_ENV}",
                               hint="pass --output-path DIR (the run writes DIR/<job id>/)")
    return Staging(stage_in, target, output_dir)


def apply(spec: JobSpec, staging: Staging) -> JobSpec:
    """The job with INPUT_PATH at the staged copy and the stage-out parameters."""
    changes: dict[str, Any] = {"parameters": {**spec.parameters, **staging.parameters()}}
    if staging.stage_in is not None:
        changes["input_path"] = staging.stage_in.dest
    if staging.output_dir is not None:
        changes["output_path"] = staging.output_dir
    return dataclasses.replace(spec, **changes)


def stage_in_request(stage_in: StageIn, name: str, tags: dict[str, str]) -> dict[str, Any]:
    """SubmitJob for the staging job: a single-node job of the stack's own image."""
    return {
        "jobName": name[: 128 - len(STAGE_IN_SUFFIX)] + STAGE_IN_SUFFIX,
        "jobQueue": stage_in.queue,
        "jobDefinition": stage_in.definition,
        "containerOverrides": {
            "command": commands.in_command(str(stage_in.source), stage_in.dest)},
        "propagateTags": True,
        "tags": {**CLI_TAGS, **tags},
    }


def depending_on(request: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The job's request, started only after ``job_id`` SUCCEEDED."""
    return {**request, "dependsOn": [{"jobId": job_id}]}


def cancel_after_failure(ctx: Context, job_ids: list[str]) -> None:
    """Terminate what this invocation submitted before a later SubmitJob failed, so no half
    of the job is left (the caller then reports that failure)."""
    reason = "cancelled by the jobs CLI: submitting the rest of the job failed"
    for job_id in job_ids:
        try:
            ctx.api.terminate(job_id, reason)
            ctx.err.print(f"cancelled {job_id} (submitting the rest failed)")
        except JobsError as exc:
            ctx.err.print(f"warning: could not cancel {job_id}: {exc.line()}; cancel it with: "
                          f"python -m jobs cancel {job_id}")


# --- Reading back where a job's data went (status, fetch)

def output_folder(job: dict[str, Any]) -> S3Location | None:
    """s3://.../<job id>/ from the job's stageOut parameter, None without one."""
    value = (job.get("parameters") or {}).get(STAGE_OUT_PARAMETER)
    if not value:
        return None
    try:
        return uri.parse(str(value)).child(job["jobId"].partition("#")[0])
    except ValueError as exc:
        raise JobsError(f"job {job['jobId']} has a stageOut parameter that is not an S3 "
                        f"location: {exc}") from None


def read_manifest(ctx: Context, folder: S3Location) -> Manifest | None:
    """The manifest written last beside a job's outputs, None while it is not there."""
    raw = ctx.api.object_bytes(folder.bucket, folder.key(OUTPUT_MANIFEST), MAX_MANIFEST_BYTES)
    if raw is None:
        return None
    try:
        return Manifest.from_json(raw)
    except ValueError as exc:
        raise JobsError(f"{folder}{OUTPUT_MANIFEST} is not a manifest: {exc}") from None


def staged_input(ctx: Context, job: dict[str, Any]) -> dict[str, Any] | None:
    """The stage-in job this job depends on: its id, status, source and DEST."""
    ids = [d["jobId"] for d in job.get("dependsOn") or [] if d.get("jobId")]
    for dependency in ctx.api.describe(ids).values() if ids else ():
        command = (dependency.get("container") or {}).get("command") or []
        if tuple(command[:4]) == (*commands.PROGRAM, "in") and len(command) == 6:
            return {"jobId": dependency["jobId"], "status": dependency.get("status"),
                    "source": command[4], "dest": command[5]}
    return None


def whereabouts(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """Where a job's data came from and went: the stage-in job and its DEST, the stage-out
    folder and whether its manifest is there yet (empty without staging)."""
    found: dict[str, Any] = {}
    staged = staged_input(ctx, job)
    if staged:
        found["stageIn"] = staged
    folder = output_folder(job)
    if folder is None:
        return found
    out: dict[str, Any] = {"location": str(folder),
                           "outputDir": (job.get("parameters") or {}).get(OUTPUT_DIR_PARAMETER)}
    try:
        manifest = read_manifest(ctx, folder)
    except JobsError as exc:  # e.g. denied: the rest of status still helps
        out.update(complete=None, error=exc.line())
    else:
        out["complete"] = manifest is not None
        if manifest is not None:
            out.update(files=len(manifest.files), bytes=manifest.bytes,
                       finished=manifest.finished)
    found["stageOut"] = out
    return found
