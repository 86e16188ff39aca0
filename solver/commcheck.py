"""The ``commcheck`` command: ping-pong rank 0 <-> every rank, plus an allreduce check.

Prints one JSON line (rank 0). Exit 0 when every rank answered correctly, 1 when a result
was wrong, 4 (via Abort, since a silent rank cannot be waited for) when a rank did not
answer within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import mmap
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from mpi4py import MPI

from launcher import contract
from launcher.inputs import whole_number, whole_number_arg
from solver.config import UsageError, decimal_arg, shown
from solver.output import log
from solver.transport import describe, transport

_HELLO, _PING = 11, 12
VERIFY_ROUNDS = 3  # round trips whose payload is checked under the deadline (two more after timing)
SPIN_S = 0.05  # busy-poll budget per wait before yielding the core
_NAME_BYTES = 256
# Largest message: every rank holds two buffers of it and the pinging rank a check pattern.
# Decided from the options alone, so every rank refuses alike before any MPI traffic
# (10^12 failed mmap with ENOMEM, 23 digits overflowed it; osu_latency stops at 4 MiB).
MAX_SIZE = 1 << 30


class Parser(argparse.ArgumentParser):
    """Bad options raise UsageError (exit 2 on every rank, one message from rank 0)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parse_sizes(text: str) -> list[int]:
    """``--sizes``: comma-separated byte counts from 1 to MAX_SIZE."""
    try:
        sizes = [whole_number(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: not a list of integers: {text}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--sizes: byte counts must be >= 1")
    if max(sizes) > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"--sizes: byte counts must be at most {MAX_SIZE} "
                                         f"(1 GiB), got {shown(max(sizes))}")
    return sizes


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options of ``python -m solver commcheck``."""
    p = Parser(prog="python -m solver commcheck",
                description="Ping-pong latency/bandwidth rank 0 <-> each rank, allreduce check.")
    p.add_argument("--sizes", type=parse_sizes, default=[8, 1024, 65536, 1048576],
                   help="message sizes in bytes, comma separated")
    p.add_argument("--iterations", type=whole_number_arg, default=50,
                   help="round trips per size (50)")
    p.add_argument("--timeout", type=decimal_arg, default=60.0,
                   help="seconds to wait for a rank before declaring it unreachable (60)")
    args = p.parse_args(argv)
    if args.iterations < 1 or not args.timeout > 0:
        raise UsageError("--iterations and --timeout must be positive")
    return args


def wait_all(requests: list[MPI.Request], deadline: float, spin: float = SPIN_S) -> bool:
    """Poll until all requests complete (True) or the deadline passes (False)."""
    # Busy-poll first: one sleep, even sleep(0), costs ~70 us here, far more than a round
    # trip, and would be what the latency figures measure.
    spin_until = time.monotonic() + spin
    while not MPI.Request.Testall(requests):
        now = time.monotonic()
        if now > deadline:
            return False
        if now > spin_until:
            time.sleep(0.001)
    return True


def hello(comm: MPI.Comm, timeout: float) -> tuple[dict[int, str], list[int]]:
    """Rank 0 collects every rank's host name; returns (names, ranks that never answered)."""
    name = MPI.Get_processor_name().encode()[:_NAME_BYTES].ljust(_NAME_BYTES, b"\0")
    if comm.Get_rank() != 0:
        comm.Send([np.frombuffer(name, dtype=np.uint8), MPI.BYTE], 0, _HELLO)
        return {}, []
    bufs = {r: np.zeros(_NAME_BYTES, dtype=np.uint8) for r in range(1, comm.Get_size())}
    reqs = {r: comm.Irecv([b, MPI.BYTE], r, _HELLO) for r, b in bufs.items()}
    wait_all(list(reqs.values()), time.monotonic() + timeout)
    names = {0: name.rstrip(b"\0").decode()}
    missing = []
    for r, req in reqs.items():
        if req.Test():
            names[r] = bufs[r].tobytes().rstrip(b"\0").decode()
        else:
            missing.append(r)
    return names, missing


def _warmup(iterations: int) -> int:
    """Untimed round trips before the timed ones (osu_latency skips 1 in 10)."""
    return iterations // 10 + 1


def pingpong(comm: MPI.Comm, peer: int, size: int, iterations: int, timeout: float,
              space: tuple[np.ndarray, np.ndarray]) -> tuple[float, int] | None:
    """Initiating side: seconds per round trip and payload mismatches; None if ``peer`` is silent.

    ``space`` is two buffers of the largest size, reused for every size as osu_latency does.
    """
    send, recv = space[0][:size], space[1][:size]
    pattern = np.resize(np.arange(256, dtype=np.uint8), size)  # i mod 256, a byte per byte
    wrong = 0
    # Checked rounds under a deadline: a silent peer is reported instead of hanging the job.
    for it in range(VERIFY_ROUNDS):
        np.bitwise_xor(pattern, it & 0xFF, out=send)
        recv.fill(0)
        reqs = [comm.Irecv([recv, MPI.BYTE], peer, _PING),
                comm.Isend([send, MPI.BYTE], peer, _PING)]
        if not wait_all(reqs, time.monotonic() + timeout):
            return None
        wrong += int(not np.array_equal(send, recv))
    # Timed like osu_latency: blocking calls back to back, the whole loop timed once. A peer
    # that dies now makes Open MPI abort the job; a silent node is the launcher's to catch.
    np.bitwise_xor(pattern, 0x5A, out=send)
    recv.fill(0)
    send_msg, recv_msg = [send, MPI.BYTE], [recv, MPI.BYTE]  # built once, outside the timing
    for _ in range(_warmup(iterations)):  # as osu_latency's skip: caches and channels settle
        comm.Send(send_msg, peer, _PING)
        comm.Recv(recv_msg, peer, _PING)
    start = time.perf_counter()
    for _ in range(iterations):
        comm.Send(send_msg, peer, _PING)
        comm.Recv(recv_msg, peer, _PING)
    elapsed = time.perf_counter() - start
    wrong += int(not np.array_equal(send, recv))  # the echo of the first warm-up message
    recv.fill(0)
    comm.Recv(recv_msg, peer, _PING)  # the last timed message, as the peer received it
    wrong += int(not np.array_equal(send, recv))
    return elapsed / iterations, wrong


def message_buffer(size: int, fill: int) -> np.ndarray:
    """Page-aligned anonymous memory (as mpi4py's osu demos allocate), written once.

    Not numpy's allocator: from 4 MiB up it asks for transparent huge pages, which cover a
    chance part of an unaligned buffer, and Open MPI's single-copy path is faster on them: the
    same 1 MiB round trip took 64 or 104 us here depending on where the buffer landed.
    """
    buf = np.frombuffer(mmap.mmap(-1, max(size, 1)), dtype=np.uint8)
    buf.fill(fill)
    return buf


def buffers(sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Two buffers for the largest size, reused for every size as osu_latency does."""
    return message_buffer(max(sizes), 1), message_buffer(max(sizes), 2)


def echo(comm: MPI.Comm, sizes: list[int], iterations: int, peer: int = 0,
         timeout: float | None = None) -> bool:
    """The answering side of ``pingpong``: send every ping back, then the last one as received.

    With ``timeout``, each size's first message is awaited under a deadline: False when
    ``peer`` never sent it (its other messages are then never waited for).
    """
    space = buffers(sizes)
    for size in sizes:
        inbox, outbox = space[0][:size], space[1][:size]
        in_msg, out_msg = [inbox, MPI.BYTE], [outbox, MPI.BYTE]
        for it in range(VERIFY_ROUNDS):
            if it == 0 and timeout is not None:
                if not wait_all([comm.Irecv(in_msg, peer, _PING)], time.monotonic() + timeout):
                    return False
            else:
                comm.Recv(in_msg, peer, _PING)
            comm.Send(in_msg, peer, _PING)
        # Timed rounds send from a second buffer, as osu_latency does: sending back out of the
        # buffer just received into made Open MPI's single-copy (CMA) path 1.3-1.6x slower at
        # 32 KiB-1 MiB here. The initiator sends one payload throughout, so a copy of its first
        # message is a true echo; the last message goes back once more to be checked.
        comm.Recv(in_msg, peer, _PING)
        np.copyto(outbox, inbox)
        comm.Send(out_msg, peer, _PING)
        for _ in range(_warmup(iterations) - 1 + iterations):
            comm.Recv(in_msg, peer, _PING)
            comm.Send(out_msg, peer, _PING)
        comm.Send(in_msg, peer, _PING)
    return True


def _allreduce_ok(comm: MPI.Comm) -> bool:
    """Sum and max of rank-dependent integers (exact in float64) match the closed form."""
    p, r = comm.Get_size(), comm.Get_rank()
    i = np.arange(4096, dtype=np.float64)
    total, biggest = np.empty_like(i), np.empty_like(i)
    comm.Allreduce(i + r, total, op=MPI.SUM)
    comm.Allreduce(i * (r + 1), biggest, op=MPI.MAX)
    mine = np.array([int(np.array_equal(total, p * i + p * (p - 1) / 2)
                         and np.array_equal(biggest, i * p))], dtype=np.int32)
    every = np.empty(1, dtype=np.int32)
    comm.Allreduce(mine, every, op=MPI.MIN)
    return bool(every[0])


def read_options(comm: MPI.Comm, parse: Callable[[list[str]], argparse.Namespace],
                 argv: list[str]) -> argparse.Namespace | int:
    """The parsed options, or the exit code: 2 for bad ones (rank 0 says why), 0 for --help."""
    try:
        return parse(argv)
    except UsageError as exc:
        if comm.Get_rank() == 0:
            log(f"error: {exc}")
        return contract.USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


class Start(NamedTuple):
    """A check's options and who answered the roll call."""

    args: argparse.Namespace
    began: float
    names: dict[int, str]
    missing: list[int]


def start(comm: MPI.Comm, parse: Callable[[list[str]], argparse.Namespace],
          argv: list[str]) -> Start | int:
    """Options read and every rank's host name collected, or the exit code for bad options."""
    args = read_options(comm, parse, argv)
    if isinstance(args, int):
        return args
    began = time.perf_counter()
    names, missing = hello(comm, args.timeout)
    return Start(args, began, names, missing)


def run(comm: MPI.Comm, argv: list[str], environ: dict[str, str]) -> int:
    """Run the communication check on ``comm``; returns the exit code."""
    rank0 = comm.Get_rank() == 0
    started = start(comm, parse_args, argv)
    if isinstance(started, int):
        return started
    args, began, names, missing = started
    if rank0 and missing:
        return _unreachable(comm, names, missing, began)
    pairs, errors = [], []
    space = buffers(args.sizes) if rank0 and comm.Get_size() > 1 else None
    for peer in range(1, comm.Get_size()):
        if not rank0:
            if comm.Get_rank() == peer:
                echo(comm, args.sizes, args.iterations)
            continue
        entry = {"rank": peer, "host": names[peer], "latency_us": None, "bandwidth_MBps": {}}
        for size in args.sizes:
            result = pingpong(comm, peer, size, args.iterations, args.timeout, space)
            if result is None:
                return _unreachable(comm, names, [peer], began)
            roundtrip, wrong = result
            half = roundtrip / 2
            if size == min(args.sizes):
                entry["latency_us"] = float(f"{half * 1e6:.6g}")
            entry["bandwidth_MBps"][str(size)] = float(f"{size / half / 1e6:.6g}")
            if wrong:
                errors.append(f"rank {peer}: {wrong} of {VERIFY_ROUNDS + 2} checked echoes of "
                              f"{size} bytes came back different")
        pairs.append(entry)
        log(f"rank {peer} ({names[peer]}): latency {entry['latency_us']} us")
    allreduce_ok = _allreduce_ok(comm)
    transports = comm.gather(transport(environ), root=0)
    if not rank0:
        return 0
    if not allreduce_ok:
        errors.append("allreduce returned a wrong result on at least one rank")
    summary = _summary(comm, names, [], began, pairs, allreduce_ok, errors)
    summary["transport"] = transports[0]
    # Ranks on one node may differ (sm to their neighbours): list every rank's selection.
    summary["transports"] = transports
    log(f"transport: {describe(transports[0])}")
    print(json.dumps(summary), flush=True)
    return 0 if not errors else contract.APPLICATION_ERROR


def _summary(comm: MPI.Comm, names: dict[int, str], missing: list[int], began: float,
             pairs: list[dict], allreduce_ok: bool | None, errors: list[str]) -> dict:
    hosts: dict[str, list[int]] = {}
    for r, h in sorted(names.items()):
        hosts.setdefault(h, []).append(r)
    return {"command": "commcheck", "ok": not errors and not missing,
            "ranks": comm.Get_size(), "nodes": len(hosts), "hosts": hosts,
            "unreachable": missing, "allreduce_ok": allreduce_ok, "errors": errors,
            "pairs": pairs, "seconds": round(time.perf_counter() - began, 6)}


def _unreachable(comm: MPI.Comm, names: dict[int, str], missing: list[int], began: float) -> int:
    """Report silent ranks and abort: their pending messages can never complete."""
    errors = [f"rank {r} did not answer" for r in missing]
    summary = _summary(comm, names, missing, began, [], None, errors)
    log(f"error: unreachable rank(s) {missing}; aborting")
    print(json.dumps(summary), flush=True)
    sys.stderr.flush()
    comm.Abort(contract.NODE_LOST)
    return contract.NODE_LOST
