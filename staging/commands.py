"""The staging command lines and the stage-in destination, as everything that starts a
staging job writes them: `jobs submit`, the stack's EventBridge target, `run-local`."""

from __future__ import annotations

import posixpath
import secrets
from datetime import UTC, datetime

from launcher.contract import (
    EFS_MOUNT_PATH,
    JOB_ID_PARAMETER,
    OUTPUT_DIR_PARAMETER,
    STAGE_OUT_PARAMETER,
    STATUS_PARAMETER,
)

# Where staged inputs go when the job names no --input-path: a folder of the shared file
# system's own (jobs submit puts it under the stack's mount path, run-local under the contract's).
INPUT_DIR = "input"
DEFAULT_INPUT_PARENT = f"{EFS_MOUNT_PATH}/{INPUT_DIR}"
# The job parameters of a stage-out job, filled from the job-state event (Ref:: in Batch).
OUT_PARAMETERS = (JOB_ID_PARAMETER, STATUS_PARAMETER, OUTPUT_DIR_PARAMETER, STAGE_OUT_PARAMETER)
PROGRAM = ("python", "-m", "staging")
# A job's terminal states, the ones its stage-out runs after (a stop ends as FAILED).
TERMINAL = ("SUCCEEDED", "FAILED")


def stage_in_dest(input_parent: str | None, job_name: str, now: datetime | None = None,
                  token: str | None = None) -> str:
    """`<input path>/staged/<job name>-<UTC stamp>-<6 hex>`: new for every submission."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return posixpath.join(input_parent or DEFAULT_INPUT_PARENT, "staged",
                          f"{job_name}-{stamp}-{token or secrets.token_hex(3)}")


def in_command(source: str, dest: str) -> list[str]:
    """What a stage-in job runs."""
    return [*PROGRAM, "in", source, dest]


def out_command(job_id: str, status: str, output_dir: str, to: str) -> list[str]:
    """What a stage-out job runs (on Batch: `Ref::jobId` etc., from OUT_PARAMETERS)."""
    return [*PROGRAM, "out", "--job", job_id, "--status", status,
            "--from", output_dir, "--to", to]


def out_command_template() -> list[str]:
    """The stage-out job definition's command: Batch fills each Ref:: from the parameters."""
    return out_command(*(f"Ref::{name}" for name in OUT_PARAMETERS))
