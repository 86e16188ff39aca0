"""Input checks that run before any AWS call; each message names the value and the limit."""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import unicodedata
import urllib.parse
from collections.abc import Callable

from jobs.errors import InvalidInput
from launcher import settings
from launcher.contract import (
    CHECKPOINT_KEY_ENV,
    IMAGE_TAG_PATTERN,
    INPUT_PATH_ENV,
    MAX_VCPUS_PER_NODE,
    OUTPUT_PATH_ENV,
    RENDEZVOUS_SECRET_ENV,
)
from launcher.inputs import mpi_starter_refusal, whole_number

# Every pattern is applied with fullmatch: `$` would also match before a trailing newline.
# Batch SubmitJob: up to 128 letters, digits, hyphens, underscores; first alphanumeric.
JOB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# Docker/ECR image tag grammar.
IMAGE_TAG_RE = re.compile(IMAGE_TAG_PATTERN)
# Parent ids are UUIDs; `#i` names a node of a multi-node job, `:i` a child of an array job.
JOB_ID_RE = re.compile(r"[A-Za-z0-9-]{1,100}([#:][0-9]{1,4})?")
# Batch CreateJobQueue / RegisterJobDefinition: names of up to 128 letters, digits, '-', '_';
# a queue is named or given by ARN, a definition by name, name:revision or ARN.
_BATCH_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
_ARN = r"arn:aws[a-z-]*:batch:[a-z0-9-]+:[0-9]{12}:"
JOB_QUEUE_RE = re.compile(rf"{_BATCH_NAME}|{_ARN}job-queue/{_BATCH_NAME}")
JOB_DEFINITION_RE = re.compile(
    rf"{_BATCH_NAME}(:[1-9][0-9]{{0,8}})?|{_ARN}job-definition/{_BATCH_NAME}:[1-9][0-9]{{0,8}}")
# A name a shell and Docker's --env take; ContainerOverrides.environment: "Environment
# variables cannot start with AWS_BATCH", the names Batch sets itself.
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BATCH_ENV_PREFIX = "AWS_BATCH"
# Variables the CLI sets from its own flags, which check what they hold.
ENV_FLAGS = {INPUT_PATH_ENV: "--input-path", OUTPUT_PATH_ENV: "--output-path"}
MAX_NODES = 1000
# Batch's ResourceRequirement docs: "You must specify at least 4 MiB of memory for a job".
MIN_MEMORY_MIB = 4
# No node can offer more: the largest EC2 instance, u7in-32tb.224xlarge, has 32,768 GiB
# (EC2 instance types: memory optimized, High Memory U7in); its 896 vCPUs are the contract's.
MAX_MEMORY_MIB = 32768 * 1024
# Batch TagResource / SubmitJob tags: at most 50 per resource.
MAX_TAGS = 50
# Batch user guide, tag-restrictions: letters, numbers, spaces and + - = . _ : / @ (the
# tagging APIs' pattern ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$; Python's re has no \p classes).
TAG_PUNCTUATION = "_.:/=+-@"
TAG_CATEGORIES = ("L", "Z", "N")  # first letter of unicodedata.category
MIN_TIMEOUT_S = 60
# Batch API reference, JobTimeout.attemptDurationSeconds: an Integer, i.e. 32-bit signed.
MAX_INT32 = 2**31 - 1
# Batch user guide, service_limits: maximum job payload size for SubmitJob, 30 KiB.
MAX_SUBMIT_BYTES = 30 * 1024
MAX_ATTEMPTS = 10
JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})


def job_name(value: str, limit: int = 128, what: str = "job name") -> str:
    """A Batch job name (``limit`` lower for a prefix that gets a suffix)."""
    if len(value) > limit:
        raise argparse.ArgumentTypeError(
            f"{what} {value[:20]!r}... is {len(value)} characters; the limit is {limit}"
        )
    if not JOB_NAME_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"job name {value!r} is invalid: use letters, digits, '-' and '_', starting with "
            "a letter or digit (at most 128)"
        )
    return value


def int_range(low: int, high: int | None, what: str) -> Callable[[str], int]:
    """An integer type with inclusive bounds, named for the message."""

    def parse(value: str) -> int:
        try:
            number = whole_number(value)
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
vcpus = int_range(1, MAX_VCPUS_PER_NODE, "vCPUs per node")
memory = int_range(MIN_MEMORY_MIB, MAX_MEMORY_MIB, "memory per node (MiB)")
attempts = int_range(1, MAX_ATTEMPTS, "attempts")
timeout = int_range(MIN_TIMEOUT_S, MAX_INT32, "timeout (seconds)")
node_index = int_range(0, MAX_NODES - 1, "node index")


def positive_seconds(value: str) -> float:
    """A polling interval or wait limit in seconds (> 0)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not number > 0 or number == float("inf"):  # nan fails both; sleep(inf) overflows
        raise argparse.ArgumentTypeError(f"{value!r} must be more than 0 seconds and finite")
    return number


def absolute_path(value: str) -> str:
    """An absolute POSIX path inside the container, normalized (no `..` escapes)."""
    if not value.startswith("/"):
        raise argparse.ArgumentTypeError(
            f"path {value!r} is not absolute: give a path under the EFS mount, e.g. /mnt/efs/..."
        )
    return posixpath.normpath(value)


def _whole_value(pattern: re.Pattern[str], what: str, allowed: str) -> Callable[[str], str]:
    """An argparse type: ``pattern`` must match the whole value."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{what} {value!r} is invalid: {allowed}")
        return value

    return check


image_tag = _whole_value(IMAGE_TAG_RE, "image tag", "up to 128 of letters, digits, '_', '.', "
                         "'-', not starting with '.' or '-'")
job_id = _whole_value(JOB_ID_RE, "job id", "expected a Batch job id such as '3f2a...-...' or "
                      "'<id>#<node>'")
job_queue = _whole_value(JOB_QUEUE_RE, "job queue", "a queue name (up to 128 letters, digits, "
                         "'-', '_', starting with a letter or digit) or its ARN")
job_definition = _whole_value(JOB_DEFINITION_RE, "job definition", "NAME, NAME:REVISION or an "
                              "ARN (names are up to 128 letters, digits, '-', '_', starting "
                              "with a letter or digit)")


def job_command(command: list[str]) -> list[str]:
    """The job's command after `--`: a program to run, not an empty word."""
    if not command:
        raise argparse.ArgumentTypeError(
            "nothing after '--': give the job's command or drop the '--'")
    if not command[0].strip():
        raise argparse.ArgumentTypeError(
            f"the job's command starts with {command[0]!r}: the first word after '--' must "
            "name a program")
    if any("\0" in word for word in command):
        raise argparse.ArgumentTypeError("the job's command contains a NUL character")
    refusal = mpi_starter_refusal(command)
    if refusal:  # the launcher would refuse it too, but only once nodes are paid for
        raise argparse.ArgumentTypeError(refusal)
    return command


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
    for what, text in (("key", key), ("value", val)):
        bad = [ch for ch in text if ch not in TAG_PUNCTUATION
               and not unicodedata.category(ch).startswith(TAG_CATEGORIES)]
        if bad:
            raise argparse.ArgumentTypeError(
                f"tag {what} {text!r} has {bad[0]!r}: Batch allows letters, digits, spaces "
                f"and {' '.join(TAG_PUNCTUATION)}")
    return key, val


def env_var(value: str) -> tuple[str, str]:
    """A NAME=VALUE for every node's container."""
    name, sep, val = value.partition("=")
    if not sep or not ENV_NAME_RE.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"--env {value!r} is not NAME=VALUE with a NAME of letters, digits and '_' that "
            "does not start with a digit")
    if name.startswith(BATCH_ENV_PREFIX):
        raise argparse.ArgumentTypeError(
            f"--env {name}: names starting with {BATCH_ENV_PREFIX} are Batch's own")
    return name, val


def check_env(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The --env values as one map, the launcher's MNP_* among them read by the launcher's own
    parser, so a value it would refuse on the nodes is refused before anything is allocated."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        if name in ENV_FLAGS:
            raise InvalidInput(f"--env {name}: set it with {ENV_FLAGS[name]}, which checks it "
                               "is under the EFS mount")
        if name == RENDEZVOUS_SECRET_ENV:
            raise InvalidInput(f"--env {name}: every node reads it from the stack's Secrets "
                               "Manager secret (the job definition's secrets), never a submit")
        if name == CHECKPOINT_KEY_ENV:
            raise InvalidInput(f"--env {name}: the launcher derives each job's own from the "
                               "stack's secret, never a submit")
        if merged.get(name, value) != value:
            raise InvalidInput(f"--env {name} is given twice with different values "
                               f"({merged[name]!r} and {value!r})")
        merged[name] = value
    try:
        # As a multi-node job's nodes read them; only a node can tell if a directory exists.
        settings.read(merged, num_nodes=2, here=False)
    except settings.SettingError as e:  # names the variable, its value and what is allowed
        raise InvalidInput(f"--env: {e}", hint="the launcher's variables: launcher/README.md "
                           "or mnp-launch --help") from None
    return merged


def check_request_size(request: dict, what: str = "the SubmitJob request") -> None:
    """Refuse a request larger than Batch accepts (the command and --env values make most of
    it), before anything is registered or sent."""
    size = len(json.dumps(request, separators=(",", ":")).encode())
    if size > MAX_SUBMIT_BYTES:
        raise InvalidInput(
            f"{what} would be {size} bytes; Batch accepts at most {MAX_SUBMIT_BYTES} (30 KiB)",
            hint="shorten the command after '--' and the --env values, or pass large inputs "
            "as files under --input-path")


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


def check_tags(tags: list[tuple[str, str]], reserved: dict[str, str]) -> dict[str, str]:
    """The --tag values as one map: a key twice with different values, a key the CLI sets
    itself, or more than Batch's 50 tags per job in all is refused."""
    merged: dict[str, str] = {}
    for key, value in tags:
        if key in reserved:
            raise InvalidInput(
                f"--tag {key}={value}: the CLI sets the tag {key}={reserved[key]} itself",
                hint="use another key")
        if merged.get(key, value) != value:
            raise InvalidInput(f"--tag {key} is given twice with different values "
                               f"({merged[key]!r} and {value!r})")
        merged[key] = value
    if len(merged) + len(reserved) > MAX_TAGS:
        raise InvalidInput(
            f"{len(merged)} distinct --tag keys plus {len(reserved)} added by the CLI "
            f"({', '.join(sorted(reserved))}) exceed Batch's limit of {MAX_TAGS} tags per job"
        )
    return merged


def endpoint_url(value: str) -> str:
    """An http(s) URL with a host: where an S3 emulator answers."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not an endpoint URL: expected "
                                         "http://HOST:PORT (e.g. http://mnp-s3:5000)")
    return value
