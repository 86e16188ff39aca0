"""`python -m staging in SRC DEST`: every object below an S3 prefix into a new directory.

The copy goes to DEST.partial and becomes DEST by one rename after its manifest is written,
so DEST exists only when complete; a retried staging job finds it and does nothing.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import sys
from pathlib import Path
from typing import Any

from staging import manifest, s3
from staging.errors import BadData
from staging.uri import S3Location

PARTIAL = ".partial"


def _relative(where: S3Location, key: str) -> str | None:
    """The POSIX path of `key` below the prefix (None for a folder marker); BadData for a key
    that cannot be a path (empty, '.' or '..' segments: it would land outside DEST)."""
    relative = key[len(where.prefix):]
    if relative.endswith("/"):
        return None  # the console's "folder" objects: a directory, made by its files
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BadData(f"s3://{where.bucket}/{key}: the key is not a relative path below "
                      f"{where} (empty, '.' or '..' parts)")
    return posixpath.join(*parts)


def plan(listing: list[dict[str, Any]], where: S3Location) -> dict[str, str]:
    """{relative path: key} of the objects to copy; BadData when two cannot both be files."""
    paths = {}
    for obj in listing:
        relative = _relative(where, obj["Key"])
        if relative is not None:
            paths[relative] = obj["Key"]
    for relative, key in paths.items():
        parent = posixpath.dirname(relative)
        while parent:
            if parent in paths:
                raise BadData(f"s3://{where.bucket}/{paths[parent]} is an object and also a "
                              f"folder of s3://{where.bucket}/{key}: a directory cannot be both")
            parent = posixpath.dirname(parent)
    return paths


def complete(dest: Path, source: str) -> bool:
    """Whether `dest` is a finished copy of `source`; BadData when it is something else."""
    marker = dest / manifest.INPUT_MANIFEST
    if not dest.exists():
        return False
    try:
        found = manifest.Manifest.from_json(marker.read_bytes())
    except (OSError, ValueError) as err:
        raise BadData(f"{dest} exists but is not a staged copy ({err}): remove it or choose "
                      "another destination") from err
    if found.source != source:
        raise BadData(f"{dest} holds a copy of {found.source}, not {source}")
    wrong = manifest.problems(dest, found)
    if wrong:
        raise BadData(f"{dest} differs from its manifest ({'; '.join(wrong[:3])}): remove it "
                      "to stage again")
    return True


def stage_in(source: S3Location, dest: Path, job_id: str = "") -> manifest.Manifest | None:
    """Copy `source` to `dest`; None when `dest` already was a complete copy."""
    dest = Path(os.path.abspath(dest))
    if complete(dest, str(source)):
        print(f"staging: {dest} is already a complete copy of {source}: nothing to do",
              file=sys.stderr)
        return None
    partial = dest.with_name(dest.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)  # an earlier attempt's, cut short
    client = s3.client()
    paths = plan(list(s3.objects(client, source)), source)
    if not paths:
        raise BadData(f"{source}: no objects below this prefix (missing or empty)")
    try:
        partial.mkdir(parents=True)
        _download(client, source, paths, partial)
        copy = manifest.build(job_id, "STAGED", partial, source=str(source))
        (partial / manifest.INPUT_MANIFEST).write_text(copy.to_json())
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f"staging: {source} -> {dest}: {len(copy.files)} files, {copy.bytes} bytes",
          file=sys.stderr)
    return copy


def _download(client: Any, source: S3Location, paths: dict[str, str], into: Path) -> None:
    """Every object at once through the transfer manager (which writes each to a temporary
    name and renames it); the first failure cancels the rest."""
    with s3.transfers(client) as manager:
        futures = []
        for relative, key in sorted(paths.items()):
            target = into / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            futures.append((key, manager.download(source.bucket, key, str(target))))
        for key, future in futures:
            try:
                future.result()
            except Exception as err:
                raise s3.translate(err, f"s3://{source.bucket}/{key}") from err
