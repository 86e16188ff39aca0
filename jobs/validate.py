"""Input checks that run before any AWS call; each message names the value and the limit."""

from __future__ import annotations

import argparse
import posixpath
import re
from collections.abc import Callable

from jobs.errors import InvalidInput

# Batch SubmitJob: up to 128 letters, digits, hyphens, underscores; first alphanumeric.
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# Docker/ECR image tag grammar.
IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Parent ids are UUIDs; `#i` names a node of a multi-node job, `:i` a child of an array job.
JOB_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,100}([#:][0-9]{1,4})?$")
MAX_NODES = 1000
# Batch's ResourceRequirement docs: "You must specify at least 4 MiB of memory for a job".
MIN_MEMORY_MIB = 4
MIN_TIMEOUT_S = 60
MAX_ATTEMPTS = 10
JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})


def job_name(value: str) -> str:
    """A Batch job name."""
    if len(value) > 128:
        raise argparse.ArgumentTypeError(
            f"job name {value[:20]!r}... is {len(value)} characters; the limit is 128"
        )
    if not JOB_NAME_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"job name {value!r} is invalid: use letters, digits, '-' and '_', starting with "
            "a letter or digit (at most 128)"
        )
    return value


def int_range(low: int, high: int | None, what: str) -> Callable[[str], int]:
    """An integer type with inclusive bounds, named for the message."""

    def parse(value: str) -> int:
        try:
            number = int(value, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} {value!r} is not a whole number"
            ) from None
        if number < low or (high is not None and number > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{what} {number} is out of range: must be {limit}")
        return number

    return parse


nodes = int_range(1, MAX_NODES, "node count")
vcpus = int_range(1, None, "vCPUs per node")
memory = int_range(MIN_MEMORY_MIB, None, "memory per node (MiB)")
attempts = int_range(1, MAX_ATTEMPTS, "attempts")
timeout = int_range(MIN_TIMEOUT_S, None, "timeout (seconds)")
node_index = int_range(0, MAX_NODES - 1, "node index")


def positive_seconds(value: str) -> float:
    """A polling interval or wait limit in seconds (> 0)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be more than 0 seconds")
    return number


def absolute_path(value: str) -> str:
    """An absolute POSIX path inside the container, normalized (no `..` escapes)."""
    if not value.startswith("/"):
        raise argparse.ArgumentTypeError(
            f"path {value!r} is not absolute: give a path under the EFS mount, e.g. /mnt/efs/..."
        )
    return posixpath.normpath(value)


def image_tag(value: str) -> str:
    """A container image tag."""
    if not IMAGE_TAG_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"image tag {value!r} is invalid: up to 128 of letters, digits, '_', '.', '-', "
            "not starting with '.' or '-'"
        )
    return value


def job_id(value: str) -> str:
    """A Batch job id, optionally with `#node`."""
    if not JOB_ID_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"job id {value!r} is invalid: expected a Batch job id such as "
            "'3f2a...-...' or '<id>#<node>'"
        )
    return value


def tag(value: str) -> tuple[str, str]:
    """A KEY=VALUE tag within Batch's limits."""
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"tag {value!r} is not KEY=VALUE")
    if len(key) > 128 or len(val) > 256:
        raise argparse.ArgumentTypeError(
            f"tag {key[:20]!r}: keys are limited to 128 and values to 256 characters"
        )
    if key.lower().startswith("aws:"):
        raise argparse.ArgumentTypeError(f"tag key {key!r}: the 'aws:' prefix is reserved")
    return key, val


def node_list(value: str) -> list[int]:
    """A comma-separated list of node counts such as 2,4,8."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"node list {value!r} is empty; e.g. --nodes 2,4,8")
    return [nodes(p) for p in parts]


def check_capacity(node_count: int, vcpus_per_node: int, max_vcpus: int | None) -> None:
    """Nodes x vCPUs must fit the compute environment, or the job stays RUNNABLE forever."""
    if max_vcpus is not None and node_count * vcpus_per_node > max_vcpus:
        raise InvalidInput(
            f"--nodes {node_count} x --vcpus {vcpus_per_node} = {node_count * vcpus_per_node} "
            f"vCPUs exceeds the compute environment's max_vcpus {max_vcpus}; the job would never "
            "start",
            hint="use fewer nodes or vCPUs, or raise max_vcpus in the stack",
        )


def check_under_mount(flag: str, path: str | None, mount: str) -> None:
    """Input and output directories must be on the shared file system all nodes see."""
    if path is None:
        return
    mount = posixpath.normpath(mount)
    if path != mount and not path.startswith(mount.rstrip("/") + "/"):
        raise InvalidInput(
            f"{flag} {path} is not under the EFS mount {mount}: other nodes could not see it",
            hint=f"use a path such as {mount}/...",
        )


def check_tags(tags: list[tuple[str, str]], reserved: int) -> None:
    """Batch allows 50 tags per job."""
    if len(tags) + reserved > 50:
        raise InvalidInput(
            f"{len(tags)} --tag values plus {reserved} added by the CLI exceed Batch's limit of 50"
        )
