"""The seal of a checkpoint: HMAC-SHA256 under the job's key, or a plain SHA-256 without one.

Every job shares the EFS access point, so any job can rewrite another's checkpoint and
recompute a plain hash. Under the key in ``MNP_CHECKPOINT_KEY`` (one per job, given by the
launcher) a rewritten checkpoint no longer verifies, and the victim skips it. Without the key
(local runs) the plain hash still catches corruption and careless edits, and a warning says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from launcher.contract import CHECKPOINT_KEY_ENV
from launcher.files import open_regular
from solver.config import UsageError

KEYED, PLAIN = "hmac-sha256", "sha256"  # the seal is "<scheme>:<hex digest>"
_CHUNK = 8 << 20  # bytes per read while hashing (a multiple of 8: whole float64 values)


@dataclass(frozen=True)
class Keys:
    """This job's key (None: unkeyed) and the keys of jobs it may ``--restart-from``."""

    own: bytes | None = None
    sources: tuple[bytes, ...] = ()

    def for_restart(self) -> tuple[bytes | None, ...]:
        """Keys a --restart-from checkpoint may be sealed with."""
        return (self.own, *self.sources)


def keys_from_env(environ: dict[str, str] | os._Environ[str]) -> Keys:
    """``MNP_CHECKPOINT_KEY`` = KEY[,SOURCE_KEY...]; UsageError for an empty key."""
    raw = environ.get(CHECKPOINT_KEY_ENV)
    if raw is None:
        return Keys()
    parts = raw.split(",")
    if not all(parts):
        # the value is a secret: say where it is empty, never what it holds
        raise UsageError(f"{CHECKPOINT_KEY_ENV} holds an empty key (expected KEY or "
                         f"KEY,SOURCE_KEY,...; {len(parts)} comma-separated parts, "
                         f"{sum(not p for p in parts)} empty)")
    return Keys(parts[0].encode(), tuple(p.encode() for p in parts[1:]))


def _hashers(keys: tuple[bytes | None, ...]) -> list[Any]:
    return [hashlib.sha256() if k is None else hmac.new(k, digestmod=hashlib.sha256)
            for k in keys]


def _digest(meta: dict[str, Any], field_path: str, hashers: list[Any]) -> bool:
    """Feed ``meta`` (without its seal) and the field file to ``hashers``; all values finite?"""
    body = json.dumps({k: v for k, v in meta.items() if k != "seal"}, sort_keys=True).encode()
    finite = True
    with open_regular(field_path) as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        header = f.tell()
        f.seek(0)
        head = f.read(header)
        for h in hashers:
            h.update(body)
            h.update(head)
        while chunk := f.read(_CHUNK):
            for h in hashers:
                h.update(chunk)
            values = np.frombuffer(chunk, dtype="<f8", count=len(chunk) // 8)
            finite = finite and bool(np.isfinite(values).all())
    return finite


def seal(meta: dict[str, Any], field_path: str, key: bytes | None) -> tuple[str, bool]:
    """(the seal of ``meta`` and the field file under ``key``, all values finite?)."""
    (h,) = hashers = _hashers((key,))
    finite = _digest(meta, field_path, hashers)
    return f"{PLAIN if key is None else KEYED}:{h.hexdigest()}", finite


def check(meta: dict[str, Any], field_path: str, keys: tuple[bytes | None, ...]) -> bool:
    """Whether the field is all finite, if ``meta["seal"]`` verifies under one of ``keys``;
    ValueError saying why not otherwise."""
    scheme, _, digest = str(meta["seal"]).partition(":")
    if scheme not in (KEYED, PLAIN):
        raise ValueError(f"unknown seal scheme {scheme[:20]!r}")
    usable = tuple(k for k in keys if (k is None) == (scheme == PLAIN))
    if not usable and scheme == KEYED:
        raise ValueError(f"sealed with a key, and {CHECKPOINT_KEY_ENV} is not set")
    if not usable:
        raise ValueError(f"sealed without a key (plain sha256), but this run has "
                         f"{CHECKPOINT_KEY_ENV}: anyone could have written it")
    hashers = _hashers(usable)
    finite = _digest(meta, field_path, hashers)
    if not any(hmac.compare_digest(h.hexdigest(), digest) for h in hashers):
        raise ValueError("seal mismatch: field.npy or meta.json changed after it was written"
                         + (", or written by another job (not under this job's key)"
                            if scheme == KEYED else ""))
    return finite
