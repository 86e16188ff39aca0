"""Download a job's staged outputs as its manifest lists them: with boto3's transfer manager,
each file to a `.part` name first, verified against the manifest's size and SHA-256, then
renamed; a file already there with the right size and digest is skipped (so a rerun resumes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from boto3.s3.transfer import ProgressCallbackInvoker, TransferConfig, create_transfer_manager
from botocore.exceptions import BotoCoreError, ClientError

from jobs.errors import JobsError
from staging.manifest import FileEntry, Manifest, sha256_of
from staging.uri import S3Location

PART_SUFFIX = ".part"


class UnsafePath(JobsError):
    """A manifest path that would land outside the download directory."""


class Mismatch(JobsError):
    """Downloaded bytes that differ from the manifest (or could not be downloaded)."""


@dataclass
class Outcome:
    """What a fetch did, file by file (paths as in the manifest)."""

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0


def local_path(root: Path, path: str) -> Path:
    """Where a manifest path goes below ``root``; an absolute path, `..`, `.`, an empty part,
    a backslash or a NUL (which could name another place) is refused."""
    parts = path.split("/")
    if (not path or PurePosixPath(path).is_absolute() or "\\" in path or "\x00" in path
            or any(part in ("", ".", "..") for part in parts)):
        raise UnsafePath(f"the manifest lists {path!r}, which is not a plain relative path: "
                         "nothing downloaded (a manifest must not reach outside its folder)")
    return root.joinpath(*parts)


def _matches(path: Path, entry: FileEntry) -> bool:
    return path.is_file() and path.stat().st_size == entry.size and sha256_of(path) == entry.sha256


def _problem(path: Path, entry: FileEntry) -> str | None:
    size = path.stat().st_size
    if size != entry.size:
        return f"{entry.path}: {size} bytes, the manifest says {entry.size}"
    if sha256_of(path) != entry.sha256:
        return f"{entry.path}: SHA-256 differs from the manifest"
    return None


def plan(root: Path, manifest: Manifest) -> tuple[list[tuple[FileEntry, Path]], list[str]]:
    """(files to download with their local paths, paths already complete); every path is
    checked before anything is written."""
    targets = [(entry, local_path(root, entry.path)) for entry in manifest.files]
    seen: set[str] = set()
    for entry in manifest.files:
        if entry.path in seen:
            raise UnsafePath(f"the manifest lists {entry.path!r} twice: nothing downloaded")
        seen.add(entry.path)
    todo, done = [], []
    for entry, target in targets:
        if _matches(target, entry):
            done.append(entry.path)
        else:
            todo.append((entry, target))
    return todo, done


def download(s3: Any, folder: S3Location, manifest: Manifest,
             todo: list[tuple[FileEntry, Path]], progress: Callable[[int], None] | None = None,
             config: TransferConfig | None = None) -> Outcome:
    """Fetch the files of ``todo`` (from ``plan``) below ``folder``; Mismatch (after the good
    files are in place) names each file that differs or could not be read."""
    outcome = Outcome()
    subscribers = [ProgressCallbackInvoker(progress)] if progress else None
    failed: list[str] = []
    with create_transfer_manager(s3, config or TransferConfig()) as manager:
        pending = []
        for entry, target in todo:
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + PART_SUFFIX)
            future = manager.download(folder.bucket, folder.key(entry.path), str(part),
                                      subscribers=subscribers)
            pending.append((entry, target, part, future))
        for entry, target, part, future in pending:
            try:
                future.result()
            except (ClientError, BotoCoreError) as exc:
                failed.append(f"{entry.path}: {folder.key(entry.path)} could not be read: {exc}")
                continue
            problem = _problem(part, entry)
            if problem:
                part.unlink()
                failed.append(problem)
                continue
            os.replace(part, target)
            outcome.downloaded.append(entry.path)
            outcome.bytes_downloaded += entry.size
    if failed:
        raise Mismatch(f"{len(failed)} of {len(manifest.files)} files do not match the manifest "
                       f"of {folder}: {'; '.join(failed)}",
                       hint="the good files are kept; run fetch again to retry the others")
    return outcome
