"""Spot gangs: the children of one Batch array job form one MPI world.

Batch gives array children only their index and the array's size (no main node address), so
the main node (index 0) publishes where its rendezvous listens in a file on the shared file
system, one per job and attempt, sealed with an HMAC under the stack's secret. Children wait
for a file that verifies, then join the ordinary rendezvous. Every member waits at most one
bound: MNP_GANG_TIMEOUT, or sooner the time at which the gang's cost reaches MNP_GANG_COST_CAP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from launcher import contract
from launcher.rendezvous import RendezvousError, log, mac

if TYPE_CHECKING:
    from launcher.node import BatchNode, Settings

GANG_ENV = "MNP_GANG"
# docs.aws.amazon.com/batch/latest/userguide/job_env_vars.html: set in array children only.
ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
ARRAY_SIZE_ENV = "AWS_BATCH_JOB_ARRAY_SIZE"
# docs.aws.amazon.com/batch/latest/userguide/array_jobs.html: a child's id is `<parent>:<index>`.
CHILD_SEPARATOR = ":"
FILE_NAME = "main.json"
POLL = 0.2  # seconds between looks at the file: NFS attribute caching delays it more anyway
MAX_FILE = 4096  # an address file is ~200 bytes; more is not ours


class GangError(Exception):
    """The gang cannot assemble: the message says which member is missing and which bound."""


def address_key(job: str, attempt: int, secret: str | None) -> bytes:
    """The key sealing the main node's address of one job and attempt (not the rendezvous key:
    a file under EFS must not help anyone with the rendezvous)."""
    return hmac.new((secret or "").encode(), f"mnp-gang-address-v1\0{job}\0{attempt}".encode(),
                    hashlib.sha256).digest()


def address_path(root: Path, job: str, attempt: int) -> Path:
    """Where attempt `attempt` of gang `job` publishes its main node's address."""
    return root / job / str(attempt) / FILE_NAME


def own_address() -> str:
    """This node's address as others reach it: what its host name resolves to.

    Batch's EC2 hosts and the emulator's nodes resolve their own names to their private
    address; a loopback answer would lure every child to itself.
    """
    ip = socket.gethostbyname(socket.gethostname())
    if ip.startswith("127."):
        raise GangError(f"this node's host name {socket.gethostname()!r} resolves to {ip}, "
                        "which no other member can reach")
    return ip


def publish(root: Path, job: str, attempt: int, ip: str, port: int,
            secret: str | None) -> Path:
    """Write the sealed address atomically (a reader sees the old file or the whole new one)."""
    path = address_path(root, job, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"job": job, "attempt": attempt, "ip": ip, "port": port,
            "mac": mac(address_key(job, attempt, secret), job, attempt, ip, port)}
    fd, tmp = tempfile.mkstemp(prefix=".main-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # rename(2) is atomic on one file system, NFSv4 (EFS) included
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def withdraw(path: Path) -> None:
    """Remove a published address and its attempt's directory (the job's too, once empty)."""
    shutil.rmtree(path.parent, ignore_errors=True)
    try:
        path.parent.parent.rmdir()
    except OSError:  # another attempt's directory is still there, or already gone
        pass


def verify(text: str, job: str, attempt: int, secret: str | None) -> tuple[str, int]:
    """(ip, port) from an address file's text; GangError says why it is not this attempt's."""
    try:
        body = json.loads(text)
    except ValueError:
        raise GangError("not JSON") from None
    fields = {"job": str, "attempt": int, "ip": str, "port": int, "mac": str}
    if not isinstance(body, dict) or set(body) != set(fields) \
            or not all(type(body[k]) is t for k, t in fields.items()):
        raise GangError(f"not an address file (fields {sorted(fields)})")
    if (body["job"], body["attempt"]) != (job, attempt):
        raise GangError(f"written for job {body['job']!r} attempt {body['attempt']}, "
                        f"not job {job!r} attempt {attempt}")
    expected = mac(address_key(job, attempt, secret), job, attempt, body["ip"], body["port"])
    if not hmac.compare_digest(body["mac"], expected):
        raise GangError("its HMAC does not verify under this stack's secret (forged or from "
                        "another stack)")
    try:
        socket.inet_aton(body["ip"])
    except OSError:
        raise GangError(f"address {body['ip']!r} is not IPv4") from None
    if not 1 <= body["port"] <= 65535:
        raise GangError(f"port {body['port']} is out of range")
    return body["ip"], body["port"]


def find_main(root: Path, job: str, attempt: int, secret: str | None, deadline: float,
              stop: threading.Event | None = None) -> tuple[str, int]:
    """Poll for the main node's address until `deadline` (monotonic); GangError past it.

    A file that does not verify is logged once and ignored: the real main node's rename
    replaces it, and a forger gains nothing but delay.
    """
    path = address_path(root, job, attempt)
    refused: str | None = None
    while True:
        try:
            with open(path, "rb") as f:
                text = f.read(MAX_FILE + 1).decode(errors="replace")
        except FileNotFoundError:
            text = None
        except OSError as e:
            text, why = None, f"unreadable: {e.strerror or e}"
            if why != refused:
                log.warning("gang: %s: %s; still waiting", path, why)
                refused = why
        if text is not None:
            try:
                return verify(text, job, attempt, secret)
            except GangError as e:
                if str(e) != refused:
                    log.warning("gang: ignoring %s: %s", path, e)
                    refused = str(e)
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            raise GangError(f"the main node (index 0) published no valid address in {path}")
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))


@dataclass(frozen=True)
class Bound:
    """How long a member waits for the gang, and which limit set it (for the message)."""

    seconds: float
    reason: str


def wait_bound(timeout: float, size: int, cost_cap: float | None,
               price_per_node_hour: float | None) -> Bound:
    """The gang wait: `timeout`, or less when `size` nodes billed at the price reach the cap.

    Every member is counted as billed from the start of the wait: an upper bound on what the
    waiting costs, since members that have not started yet are not billed.
    """
    by_time = Bound(timeout, f"MNP_GANG_TIMEOUT={timeout:g}s")
    if cost_cap is None or not price_per_node_hour:
        return by_time
    seconds = cost_cap / (size * price_per_node_hour) * 3600.0
    if seconds >= timeout:
        return by_time
    return Bound(seconds, f"the cost cap: {size} members at ${price_per_node_hour:g}/h each "
                 f"reach MNP_GANG_COST_CAP=${cost_cap:g} after {seconds:.1f}s")


def missing_line(missing: list[int], bound: Bound, size: int) -> str:
    """The one line every member ends a failed assembly with."""
    return (f"gang of {size} did not assemble within {bound.seconds:.1f}s ({bound.reason}): "
            f"index(es) {', '.join(map(str, missing))} never arrived; exiting so the gang "
            "cancels itself")


def announce(node: BatchNode, settings: Settings, port: int) -> Path:
    """The main node: seal and publish where the members find its rendezvous on `port`."""
    try:
        ip = own_address()
        path = publish(Path(settings.gang_dir), node.job, node.attempt, ip, port,
                       settings.secret)
    except (GangError, OSError) as e:
        raise RendezvousError(f"gang: cannot publish the main node's address under "
                              f"{settings.gang_dir} (MNP_GANG_DIR): {e}") from None
    log.info("gang: published %s:%d in %s", ip, port, path)
    return path


def join(node: BatchNode, settings: Settings,
         stop: threading.Event) -> tuple[BatchNode, Settings] | int:
    """A member: the node and settings to join the main node's published rendezvous with (the
    rest of the bound as its timeout), else the exit code when no address came in time."""
    bound = settings.gang_bound
    assert bound is not None
    began = time.monotonic()
    log.info("gang member %d of %d: waiting up to %.1fs (%s) for the main node's address "
             "under %s", node.index, node.num_nodes, bound.seconds, bound.reason,
             settings.gang_dir)
    try:
        ip, port = find_main(Path(settings.gang_dir), node.job, node.attempt,
                             settings.secret, began + bound.seconds, stop)
    except GangError as e:
        if stop.is_set():
            return contract.STOPPED
        log.error("%s: %s", missing_line([node.main_index], bound, node.num_nodes), e)
        return contract.RENDEZVOUS_TIMEOUT
    left = max(1.0, bound.seconds - (time.monotonic() - began))
    return replace(node, main_ip=ip), replace(settings, port=port, rendezvous_timeout=left)
