"""`fetch`: download a job's staged outputs, verified against its manifest, resumable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from continuation.family import Member
from jobs import download, render, runview, stage, validate
from jobs.context import Context
from jobs.errors import InvalidInput, JobsError, NotFound
from staging.manifest import OUTPUT_MANIFEST, Manifest
from staging.uri import S3Location

NAME = "fetch"
HELP = ("download a job's --stage-out outputs to DIR/<job id>/, verified against its "
        "manifest; a rerun skips what is there")
DEFAULT_DIR = Path("outputs")


class NotReady(JobsError):
    """The job's outputs have no manifest yet: running, or its stage-out not finished."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register fetch's flags."""
    parser.add_argument("job_id", type=validate.job_id, metavar="JOB_ID")
    parser.add_argument("--to", type=Path, default=DEFAULT_DIR, metavar="DIR",
                        help=f"download into DIR/<job id>/ (default ./{DEFAULT_DIR})")
    parser.add_argument("--from", dest="source", type=stage.location, metavar="S3",
                        help="the stage-out location s3://BUCKET/PREFIX/ the outputs went to "
                        "(default: the job's stageOut parameter, from DescribeJobs; use this "
                        "once Batch has forgotten the job)")
    parser.add_argument("--only-this-job", action="store_true",
                        help="a job of a --min-nodes run: fetch this job's own outputs, not "
                        "those of the run's newest job (the default; its result)")
    parser.add_argument("--json", action="store_true",
                        help="print jobId, source, to, status, files, bytes, downloaded, "
                        "skipped as JSON")
    parser.epilog = ("exit 1 when the manifest is not there yet (the job is running or its "
                     "stage-out has not finished)\nor a file does not match it (named; the "
                     "good files are kept).\nexample:\n  python -m jobs fetch JOB_ID --to "
                     "results")


def _not_ready(ctx: Context, job_id: str, job: dict[str, Any] | None,
               folder: S3Location) -> NotReady:
    if job is None:  # --from: Batch may have forgotten the job, which is fine
        try:
            job = ctx.api.job(job_id)
        except NotFound:
            job = None
    missing = f"no {folder}{OUTPUT_MANIFEST}"
    status = (job or {}).get("status")
    if job is not None and status not in validate.TERMINAL:
        return NotReady(f"job {job_id} is still {status}: its outputs are copied to {folder} "
                        f"when it ends ({missing})", hint=f"python -m jobs watch {job_id}")
    ended = f"; the job ended {status}" if status else ""
    return NotReady(f"outputs not complete yet: the job's stage-out has not finished "
                    f"({missing}{ended})", hint="try again in a minute; the staging job's log "
                    "says why if it failed")


def _newest_of_run(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """The run's newest job when `job` belongs to a --min-nodes run (each member stages out
    its own folder; the newest holds the run's result), else `job` itself."""
    family = runview.find(ctx, job)
    if family is None or family.newest.job_id == job["jobId"]:
        return job
    newest = family.newest
    ctx.err.print(render.printable(
        f"job {job['jobId']} is generation {Member(job).generation} of run {family.id}: "
        f"fetching its newest job {newest.job_id} (generation {newest.generation}, "
        f"{newest.status}); --only-this-job fetches {job['jobId']}'s own"))
    return newest.description


def _manifest(ctx: Context, args: argparse.Namespace) -> tuple[str, S3Location, Manifest]:
    """Whose outputs, where they are and their manifest; NotReady while it is not there."""
    job = None
    job_id = args.job_id
    if args.source is not None:
        folder = args.source.child(job_id)
    else:
        job = ctx.api.job(job_id)
        if not args.only_this_job:
            job = _newest_of_run(ctx, job)
            job_id = job["jobId"]
        found = stage.output_folder(job)
        if found is None:
            raise InvalidInput(f"job {job_id} was submitted without --stage-out: its "
                               "outputs stay on the shared file system",
                               hint="pass --from s3://BUCKET/PREFIX/ if they were copied "
                               "to S3 another way")
        folder = found
    manifest = stage.read_manifest(ctx, folder)
    if manifest is None:
        raise _not_ready(ctx, job_id, job, folder)
    if manifest.job_id != job_id:
        raise JobsError(f"{folder}{OUTPUT_MANIFEST} is the manifest of job {manifest.job_id}, "
                        f"not of {job_id}: nothing downloaded")
    return job_id, folder, manifest


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Find the outputs, check every path, download what is missing, verify, report."""
    if "#" in args.job_id or ":" in args.job_id:
        parent = args.job_id.split("#")[0].split(":")[0]
        raise InvalidInput(f"{args.job_id} is one node or child of job {parent}, whose outputs "
                           f"are one folder: fetch {parent}")
    job_id, folder, manifest = _manifest(ctx, args)
    root = args.to / job_id
    try:
        todo, skipped = download.plan(root, manifest)
        total = sum(entry.size for entry, _ in todo)
        if ctx.err.is_terminal and todo:
            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                       TransferSpeedColumn(), TimeRemainingColumn())
            with Progress(*columns, console=ctx.err) as bar:
                task = bar.add_task(f"{len(todo)} files", total=total)
                outcome = download.download(ctx.api.s3, folder, manifest, todo,
                                            lambda n: bar.advance(task, n))
        else:
            outcome = download.download(ctx.api.s3, folder, manifest, todo)
    except OSError as exc:
        raise JobsError(f"cannot write below {root}: {exc}") from None
    result = {"jobId": job_id, "source": str(folder), "to": str(root),
              "status": manifest.status, "files": len(manifest.files), "bytes": manifest.bytes,
              "downloaded": len(outcome.downloaded), "skipped": len(skipped),
              "bytesDownloaded": outcome.bytes_downloaded}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    ctx.out.print(render.printable(
        f"{root}: {result['files']} files, {result['bytes']} bytes, all matching {folder}"
        f"{OUTPUT_MANIFEST} ({result['downloaded']} downloaded, {result['skipped']} already "
        f"there); the job ended {manifest.status}"))
    return 0
