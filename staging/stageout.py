"""`python -m staging out`: a finished job's output directory to S3, its manifest last.

Every file keeps one key, `<prefix><job id>/<path>`, so a rerun (a retried staging job, or a
job id run again) overwrites and never duplicates; a file already there with the same size
and SHA-256 is not sent again. The SHA-256 rides on each object as user metadata
(`x-amz-meta-sha256`) rather than S3's ChecksumSHA256, which for a multipart upload is a
checksum of the parts' checksums, not of the file (README: "Checksums").
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from staging import manifest, s3
from staging.errors import BadData
from staging.uri import S3Location

SHA256_METADATA = "sha256"  # x-amz-meta-sha256: the file's SHA-256, hex
# Batch job ids: a UUID, `<uuid>#<node>` on a node, `<uuid>:<index>` in an array; ours may
# also be a local id. Never a path: no '/', no '.' or '..'.
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:#-]{0,127}")


def check_job_id(job_id: str) -> str:
    """The id as a path segment; BadData naming it otherwise."""
    if not _JOB_ID_RE.fullmatch(job_id):
        raise BadData(f"job id {job_id!r} is not a job id (letters, digits, '_.:#-', "
                      "starting with a letter or digit)")
    return job_id


def _existing(client: Any, folder: S3Location) -> dict[str, int]:
    """{key: size} of what an earlier run left in `folder`."""
    return {obj["Key"]: obj["Size"] for obj in s3.objects(client, folder)}


def _same(client: Any, bucket: str, key: str, entry: manifest.FileEntry) -> bool:
    """Whether the object at `key` already holds this file (size and SHA-256)."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if s3.error_code(err) in s3.MISSING | s3.DENIED:
            return False  # gone, or a role that may write but not read: send it again
        raise s3.translate(err, f"s3://{bucket}/{key}") from err
    return (head["ContentLength"] == entry.size
            and head.get("Metadata", {}).get(SHA256_METADATA) == entry.sha256)


def stage_out(job_id: str, status: str, output_dir: Path, to: S3Location) -> manifest.Manifest:
    """Upload `output_dir/<job id>/` below `to/<job id>/`, then its manifest."""
    root = output_dir / job_id
    folder = to.child(job_id)
    copy = manifest.build(job_id, status, root, source=str(root), skip=())
    if not root.is_dir():
        copy.note = (f"{root} does not exist: the job wrote no outputs (or wrote them "
                     "elsewhere)")
    client = s3.client()
    existing = _existing(client, folder)
    manifest_key = folder.key(manifest.OUTPUT_MANIFEST)
    if manifest_key in existing:
        # A reader trusts a copy once its manifest exists: the old one goes before any object
        # changes, and the new one comes after all of them.
        _call(client.delete_object, manifest_key, Bucket=to.bucket, Key=manifest_key)
    send = [entry for entry in copy.files
            if not (existing.get(folder.key(entry.path)) == entry.size
                    and _same(client, to.bucket, folder.key(entry.path), entry))]
    _upload(client, root, folder, send)
    _call(client.put_object, manifest_key, Bucket=to.bucket, Key=manifest_key,
          Body=copy.to_json().encode(), ContentType="application/json")
    stale = sorted(set(existing) - {folder.key(e.path) for e in copy.files} - {manifest_key})
    print(f"staging: {root} -> {folder}: {len(copy.files)} files, {copy.bytes} bytes; "
          f"{len(send)} uploaded, {len(copy.files) - len(send)} already there (same size and "
          f"SHA-256); {manifest.OUTPUT_MANIFEST} written last", file=sys.stderr)
    if stale:
        print(f"staging: {len(stale)} objects in {folder} are not in this manifest (left by "
              f"an earlier run; kept): {', '.join(stale[:5])}", file=sys.stderr)
    if copy.note:
        print(f"staging: note: {copy.note}", file=sys.stderr)
    return copy


def _call(method: Any, key: str, **kwargs: Any) -> Any:
    try:
        return method(**kwargs)
    except (ClientError, BotoCoreError) as err:
        raise s3.translate(err, f"s3://{kwargs['Bucket']}/{key}") from err


def _upload(client: Any, root: Path, folder: S3Location, entries: list[manifest.FileEntry]
            ) -> None:
    """Every file at once through the transfer manager; the first failure cancels the rest."""
    with s3.transfers(client) as manager:
        futures = [(entry, manager.upload(
            str(root / entry.path), folder.bucket, folder.key(entry.path),
            extra_args={"Metadata": {SHA256_METADATA: entry.sha256}})) for entry in entries]
        for entry, future in futures:
            try:
                future.result()
            except Exception as err:
                raise s3.translate(err, f"s3://{folder.bucket}/{folder.key(entry.path)}"
                                   ) from err

