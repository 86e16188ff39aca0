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

# docs.aws.amazon.com/batch/latest/userguide/job_env_vars.html: set in array children only.
ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
ARRAY_SIZE_ENV = "AWS_BATCH_JOB_ARRAY_SIZE"
# docs.aws.amazon.com/batch/latest/userguide/array_jobs.html: a child's id is `<parent>:<index>`.
CHILD_SEPARATOR = ":"
FILE_NAME = "main.json"
# Left by the member that gave up on an attempt, so that members started later end at once.
WITHDRAWN_NAME = "withdrawn.json"
POLL = 0.2  # seconds between looks at the file: NFS attribute caching delays it more anyway
MAX_FILE = 4096  # an address file is ~200 bytes; more is not ours
# A withdrawal's reason is cut to this many characters, so its file stays under MAX_FILE
# (a gang of 1,000 missing most members would name them all).
MAX_WHY = 1024


class GangError(Exception):
    """The gang cannot assemble: the message says which member is missing and which bound."""


class GangWithdrawn(GangError):
    """A member of this attempt already gave up: the message says which and why."""


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


def _write_sealed(path: Path, body: dict[str, object]) -> Path:
    """Write `body` atomically (a reader sees the old file or the whole new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
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


def publish(root: Path, job: str, attempt: int, ip: str, port: int,
            secret: str | None) -> Path:
    """Write the sealed address atomically (a reader sees the old file or the whole new one)."""
    body = {"job": job, "attempt": attempt, "ip": ip, "port": port,
            "mac": mac(address_key(job, attempt, secret), job, attempt, ip, port)}
    return _write_sealed(address_path(root, job, attempt), body)


def withdrawn_key(job: str, attempt: int, secret: str | None) -> bytes:
    """The key sealing an attempt's withdrawal (its own label: an address's seal must not
    pass for a withdrawal, nor the other way round)."""
    return hmac.new((secret or "").encode(), f"mnp-gang-withdrawn-v1\0{job}\0{attempt}".encode(),
                    hashlib.sha256).digest()


def withdrawn_path(root: Path, job: str, attempt: int) -> Path:
    """Where a member that gave up on attempt `attempt` of gang `job` says so."""
    return root / job / str(attempt) / WITHDRAWN_NAME


def leave_withdrawn(root: Path, job: str, attempt: int, index: int, why: str,
                    secret: str | None) -> Path:
    """Seal and write that member `index` gave up on this attempt, and why; the main node's
    address, if any, goes after it (a late member must never find the address alone)."""
    if len(why) > MAX_WHY:
        why = why[:MAX_WHY - 3] + "..."
    body = {"job": job, "attempt": attempt, "index": index, "why": why,
            "mac": mac(withdrawn_key(job, attempt, secret), job, attempt, index, why)}
    path = _write_sealed(withdrawn_path(root, job, attempt), body)
    address_path(root, job, attempt).unlink(missing_ok=True)
    return path


def _sealed_fields(text: str, fields: dict[str, type]) -> dict[str, object]:
    """A sealed file's fields, each of its type; GangError says what is wrong."""
    try:
        body = json.loads(text)
    except ValueError:
        raise GangError("not JSON") from None
    if not isinstance(body, dict) or set(body) != set(fields) \
            or not all(type(body[k]) is t for k, t in fields.items()):
        raise GangError(f"not a gang file (fields {sorted(fields)})")
    return body


def _check_seal(body: dict[str, object], job: str, attempt: int, expected: str) -> None:
    if (body["job"], body["attempt"]) != (job, attempt):
        raise GangError(f"written for job {body['job']!r} attempt {body['attempt']}, "
                        f"not job {job!r} attempt {attempt}")
    if not hmac.compare_digest(str(body["mac"]), expected):
        raise GangError("its HMAC does not verify under this stack's secret (forged or from "
                        "another stack)")


def verify_withdrawn(text: str, job: str, attempt: int, secret: str | None) -> str:
    """The withdrawal's sentence from a marker's text; GangError says why it is not valid."""
    body = _sealed_fields(text, {"job": str, "attempt": int, "index": int, "why": str,
                                 "mac": str})
    _check_seal(body, job, attempt, mac(withdrawn_key(job, attempt, secret), job, attempt,
                                        body["index"], body["why"]))
    return f"member {body['index']} withdrew this attempt of the gang: {body['why']}"


def _read_small(path: Path) -> str | None:
    """A gang file's text (None when there is none); OSError when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(MAX_FILE + 1).decode(errors="replace")
    except FileNotFoundError:
        return None


def withdrawal(root: Path, job: str, attempt: int, secret: str | None) -> str | None:
    """Why this attempt was withdrawn, or None when no marker is there; GangError for a
    marker that does not verify (a forger cannot end a gang: only the stack's secret can)."""
    path = withdrawn_path(root, job, attempt)
    try:
        text = _read_small(path)
    except OSError as e:
        raise GangError(f"unreadable: {e.strerror or e}") from None
    return None if text is None else verify_withdrawn(text, job, attempt, secret)


def withdraw(path: Path) -> None:
    """Remove a published address and its attempt's directory (the job's too, once empty)."""
    shutil.rmtree(path.parent, ignore_errors=True)
    try:
        path.parent.parent.rmdir()
    except OSError:  # another attempt's directory is still there, or already gone
        pass


def verify(text: str, job: str, attempt: int, secret: str | None) -> tuple[str, int]:
    """(ip, port) from an address file's text; GangError says why it is not this attempt's."""
    body = _sealed_fields(text, {"job": str, "attempt": int, "ip": str, "port": int,
                                 "mac": str})
    ip, port = str(body["ip"]), int(body["port"])  # type: ignore[call-overload]
    _check_seal(body, job, attempt, mac(address_key(job, attempt, secret), job, attempt,
                                        ip, port))
    try:
        socket.inet_aton(ip)
    except OSError:
        raise GangError(f"address {ip!r} is not IPv4") from None
    if not 1 <= port <= 65535:
        raise GangError(f"port {port} is out of range")
    return ip, port


def find_main(root: Path, job: str, attempt: int, secret: str | None, deadline: float,
              stop: threading.Event | None = None) -> tuple[str, int]:
    """Poll for the main node's address until `deadline` (monotonic); GangError past it,
    GangWithdrawn at once when a member has withdrawn this attempt.

    A file that does not verify is logged once and ignored: the real main node's rename
    replaces it, and a forger gains nothing but delay.
    """
    path = address_path(root, job, attempt)
    refused: dict[Path, str] = {}

    def once(where: Path, why: str) -> None:
        if refused.get(where) != why:
            log.warning("gang: ignoring %s: %s", where, why)
            refused[where] = why

    while True:
        # The marker first: the main node writes it before it removes its address.
        try:
            why = withdrawal(root, job, attempt, secret)
        except GangError as e:
            once(withdrawn_path(root, job, attempt), str(e))
        else:
            if why is not None:
                raise GangWithdrawn(why)
        try:
            text = _read_small(path)
        except OSError as e:
            text = None
            once(path, f"unreadable: {e.strerror or e}")
        if text is not None:
            try:
                return verify(text, job, attempt, secret)
            except GangError as e:
                once(path, str(e))
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


def give_up(node: BatchNode, settings: Settings, why: str) -> None:
    """Withdraw this attempt for every member that starts later (they exit at once, saying
    `why`); a failure to write is logged, since the exit code says the same."""
    try:
        path = leave_withdrawn(Path(settings.gang_dir), node.job, node.attempt, node.index, why,
                               settings.secret)
    except OSError as e:
        log.error("gang: cannot leave the withdrawn marker under %s (MNP_GANG_DIR): %s; "
                  "members that start later wait their own bound", settings.gang_dir, e)
        return
    log.info("gang: withdrew attempt %d for members that start later: %s", node.attempt, path)


def withdrawn(node: BatchNode, settings: Settings) -> bool:
    """Whether a member already gave up on this attempt (then logged: this one ends at once)."""
    try:
        why = withdrawal(Path(settings.gang_dir), node.job, node.attempt, settings.secret)
    except GangError as e:
        log.warning("gang: ignoring %s: %s",
                    withdrawn_path(Path(settings.gang_dir), node.job, node.attempt), e)
        return False
    if why is not None:
        _say_withdrawn(node, why)
    return why is not None


def _say_withdrawn(node: BatchNode, why: str) -> None:
    log.error("gang member %d of %d exits at once, without waiting: %s", node.index,
              node.num_nodes, why)


def join(node: BatchNode, settings: Settings,
         stop: threading.Event) -> tuple[BatchNode, Settings] | int:
    """A member: the node and settings to join the main node's published rendezvous with (the
    rest of the bound as its timeout), else the exit code when no address came in time or
    the attempt was withdrawn."""
    bound = settings.gang_bound
    assert bound is not None
    began = time.monotonic()
    log.info("gang member %d of %d: waiting up to %.1fs (%s) for the main node's address "
             "under %s", node.index, node.num_nodes, bound.seconds, bound.reason,
             settings.gang_dir)
    try:
        ip, port = find_main(Path(settings.gang_dir), node.job, node.attempt,
                             settings.secret, began + bound.seconds, stop)
    except GangWithdrawn as e:
        _say_withdrawn(node, str(e))
        return contract.RENDEZVOUS_TIMEOUT
    except GangError as e:
        if stop.is_set():
            return contract.STOPPED
        why = missing_line([node.main_index], bound, node.num_nodes)
        log.error("%s: %s", why, e)
        give_up(node, settings, why)
        return contract.RENDEZVOUS_TIMEOUT
    left = max(1.0, bound.seconds - (time.monotonic() - began))
    return replace(node, main_ip=ip), replace(settings, port=port, rendezvous_timeout=left)
