"""Job id, output-path checks, summary.json and field.png (rank 0 only; no MPI here)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from solver.config import UsageError

PNG_MAX_PIXELS = 1024  # per axis; larger fields are strided before plotting


def log(message: str) -> None:
    """One log line on stderr (stdout is reserved for the summary line)."""
    print(f"[solver {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def job_id(environ: dict[str, str] | os._Environ[str]) -> str:
    """Batch job id without the ``#node`` suffix, else a local id from time and pid."""
    batch = environ.get("AWS_BATCH_JOB_ID", "").split("#", 1)[0].strip()
    if batch:
        if "/" in batch or batch in (".", ".."):
            raise UsageError(f"AWS_BATCH_JOB_ID {batch!r} cannot be used in a path")
        return batch
    return f"local-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"


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


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


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
    tmp = png_path.with_name(png_path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
