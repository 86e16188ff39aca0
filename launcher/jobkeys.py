"""The checkpoint key of one job (MNP_CHECKPOINT_KEY), derived from the stack's secret.

HMAC-SHA256 of the job id under the secret: one key per job, the same for all its attempts
(a retry resumes from its own checkpoints), and no job's programs can compute another's
without the secret, which they never see (launcher.account). The solver seals with the first
key and also accepts the keys of the jobs its command names with `--restart-from`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from pathlib import PurePosixPath

RESTART_FLAG = "--restart-from"  # the solver's option naming another job's directory


def checkpoint_key(job_id: str, secret: str) -> str:
    """The key sealing the checkpoints of job `job_id` (its id without `#node`)."""
    return hmac.new(secret.encode(), f"mnp-checkpoint-v1\0{job_id}".encode(),
                    hashlib.sha256).hexdigest()


def restart_sources(cmd: Sequence[str]) -> list[str]:
    """The job ids of the directories `cmd` gives to --restart-from (DIR/<job id>, or its
    checkpoints/ folder), in order, without repeats."""
    paths = [cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i] == RESTART_FLAG]
    paths += [arg.split("=", 1)[1] for arg in cmd if arg.startswith(f"{RESTART_FLAG}=")]
    found: list[str] = []
    for path in paths:
        parts = [p for p in PurePosixPath(path).parts if p != "/"]
        if parts and parts[-1] == "checkpoints":
            parts.pop()
        if parts and parts[-1] not in found and parts[-1] not in (".", ".."):
            found.append(parts[-1])
    return found


def checkpoint_env(job_id: str, secret: str, cmd: Sequence[str]) -> str:
    """MNP_CHECKPOINT_KEY for job `job_id` running `cmd`: KEY[,SOURCE_KEY...]."""
    sources = [s for s in restart_sources(cmd) if s != job_id]
    return ",".join(checkpoint_key(j, secret) for j in [job_id, *sources])
