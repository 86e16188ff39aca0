"""The manifest written last beside a job's staged outputs: what a complete copy holds.

A reader (``jobs fetch``, a workflow) trusts a copy only once ``manifest.json`` exists, and
checks each file against its size and SHA-256. Also used for staged inputs
(``.mnp-manifest.json`` in the input directory), so an attempt can tell a complete stage-in.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT = 1
OUTPUT_MANIFEST = "manifest.json"  # s3://.../<job id>/manifest.json, written last
INPUT_MANIFEST = ".mnp-manifest.json"  # in the staged input directory, written last
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """One file, by its POSIX path relative to the copy's root."""

    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """Everything a complete copy holds, sorted by path."""

    job_id: str
    status: str
    source: str
    files: list[FileEntry] = field(default_factory=list)
    finished: str = ""
    format: int = FORMAT
    note: str = ""  # why the copy holds what it holds, when that needs saying (no outputs)

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def to_json(self) -> str:
        data = asdict(self)
        data["bytes"] = self.bytes
        return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """ValueError when the text is not a manifest of this format."""
        try:
            data: Any = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError(f"manifest format {data.get('format')!r}, expected {FORMAT}")
            files = [FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"]))
                     for f in data["files"]]
            return cls(job_id=str(data["job_id"]), status=str(data["status"]),
                       source=str(data["source"]), files=files,
                       finished=str(data.get("finished", "")),
                       note=str(data.get("note", "")))
        except (AttributeError, KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"not a manifest: {err}") from err


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan(root: Path, *, skip: tuple[str, ...] = (INPUT_MANIFEST,)) -> list[FileEntry]:
    """Every regular file below ``root`` (links are not followed), sorted by path."""
    entries = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            if relative in skip or not path.is_file() or path.is_symlink():
                continue
            entries.append(FileEntry(relative, path.stat().st_size, sha256_of(path)))
    return sorted(entries, key=lambda entry: entry.path)


def build(job_id: str, status: str, root: Path, *, source: str | None = None,
          skip: tuple[str, ...] = (INPUT_MANIFEST,)) -> Manifest:
    """The manifest of ``root`` as it is now (``source``: where the copy came from)."""
    return Manifest(job_id=job_id, status=status, source=source or str(root),
                    files=scan(root, skip=skip),
                    finished=datetime.now(UTC).isoformat(timespec="seconds"))


def problems(root: Path, manifest: Manifest) -> list[str]:
    """What differs between ``root`` and ``manifest`` (empty: the copy is complete)."""
    found = []
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            found.append(f"{entry.path}: missing")
        elif path.stat().st_size != entry.size:
            found.append(f"{entry.path}: {path.stat().st_size} bytes, expected {entry.size}")
        elif sha256_of(path) != entry.sha256:
            found.append(f"{entry.path}: SHA-256 differs")
    return found
