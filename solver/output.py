"""Job id, output-path checks, summary.json and field.png (rank 0 only; no MPI here)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from launcher.inputs import whole_number
from solver.config import UsageError, shown

PNG_MAX_PIXELS = 1024  # per axis; larger fields are strided before plotting
# A job id names a directory: Batch's are UUIDs (array children add ':N'), local ones
# 'local-<time>-<pid>'. No '/', '.', blanks, and short enough for any file system's names.
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:-]{0,127}")
RESULTS = ("field.npy", "summary.json", "field.png")  # what a finished run leaves in its dir


def log(message: str) -> None:
    """One log line on stderr (stdout is reserved for the summary line)."""
    print(f"[solver {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def job_id(environ: dict[str, str] | os._Environ[str]) -> str:
    """Batch job id without the ``#node`` suffix, else a local id from time and pid."""
    batch = environ.get("AWS_BATCH_JOB_ID", "").split("#", 1)[0]
    if batch:
        if not JOB_ID.fullmatch(batch):
            raise UsageError(f"AWS_BATCH_JOB_ID {shown(batch)} cannot name a directory: "
                             "up to 128 letters, digits, '-', '_' or ':', starting with a "
                             "letter or digit")
        return batch
    return f"local-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"


def attempt(environ: dict[str, str] | os._Environ[str]) -> int:
    """AWS_BATCH_JOB_ATTEMPT (1 when unset)."""
    text = environ.get("AWS_BATCH_JOB_ATTEMPT", "") or "1"
    try:
        number = whole_number(text)
    except ValueError:
        number = 0
    if number < 1:
        raise UsageError(f"AWS_BATCH_JOB_ATTEMPT {shown(text)} is not a whole number >= 1")
    return number


def check_fresh(out_dir: str, attempt: int) -> None:
    """Refuse to overwrite a finished run's results; only a Batch retry of the job may."""
    found = [name for name in RESULTS if os.path.lexists(os.path.join(out_dir, name))]
    if found and attempt == 1:
        raise UsageError(f"output directory {out_dir} already holds the results of a run "
                         f"({', '.join(found)}): give another --output-path or job id "
                         "(only a retry, AWS_BATCH_JOB_ATTEMPT > 1, writes into it)")


def check_writable(path: str, what: str) -> None:
    """Raise UsageError unless ``path`` is, or could be created as, a writable directory."""
    probe = Path(path).absolute()
    # lexists, not exists: a symlink loop or a dangling link "does not exist" but cannot be
    # created either, and would fail mkdir only after the run had started
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        kind = " (a dangling symlink or a symlink loop)" if probe.is_symlink() else ""
        raise UsageError(f"{what} {path} is not a writable directory{kind}")


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temp name to write ``path`` under, renamed over it on success, removed on failure."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file, then rename)."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_png(field_path: Path, png_path: Path, title: str) -> None:
    """Picture of the field (mid-plane in 3-D) read back from the .npy, via matplotlib Agg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    field = np.load(field_path, mmap_mode="r")
    if field.ndim == 3:
        field = field[:, :, field.shape[2] // 2]
    stride = [max(1, -(-n // PNG_MAX_PIXELS)) for n in field.shape]
    image = np.asarray(field[:: stride[0], :: stride[1]])
    fig, ax = plt.subplots(figsize=(6, 5))
    shown = ax.imshow(image.T, origin="lower", extent=(0, 1, 0, 1), cmap="inferno")
    fig.colorbar(shown, ax=ax, label="u")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    try:
        with replacing(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
