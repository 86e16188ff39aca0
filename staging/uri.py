"""``s3://bucket/prefix`` as the CLI, the staging jobs and ``jobs fetch`` read it."""

from __future__ import annotations

import re
from dataclasses import dataclass

# docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (general purpose buckets)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix; the prefix is empty or ends with '/' (a folder, never a
    partial key name: ``s3://b/run1`` must not also take ``run10/``)."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, relative: str) -> str:
        """The object key of ``relative`` (a POSIX path below this prefix)."""
        return self.prefix + relative

    def child(self, name: str) -> S3Location:
        """The folder ``name`` below this one."""
        return S3Location(self.bucket, f"{self.prefix}{name.strip('/')}/")

    def within(self, other: S3Location) -> bool:
        """True when this location lies in ``other`` (same bucket, below its prefix)."""
        return self.bucket == other.bucket and self.prefix.startswith(other.prefix)


def parse(text: str) -> S3Location:
    """``s3://bucket[/prefix]`` -> S3Location; ValueError naming the value and the form."""
    if not text.startswith("s3://"):
        raise ValueError(f"{text!r} is not an S3 location: expected s3://BUCKET/PREFIX")
    bucket, _, prefix = text[len("s3://"):].partition("/")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{text!r}: {bucket!r} is not a bucket name (3-63 characters of "
                         "a-z, 0-9, '.' and '-', starting and ending with a letter or digit)")
    parts = [part for part in prefix.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError(f"{text!r}: '.' and '..' are not allowed in the prefix")
    return S3Location(bucket, "".join(f"{part}/" for part in parts))
