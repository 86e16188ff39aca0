"""The launcher's own network check: every pair of nodes over plain TCP (standard library only).

For images without this project's solver (bring-your-own images), the gate runs it under the
job's mpiexec, one rank per node: it proves that mpiexec starts a rank on every node and that
every pair of nodes connects and carries data, through the interface the ranks use (each rank
listens on the address its connection to rank 0 leaves from, the one MPI is restricted to).
It does not exercise MPI's own fabric.

Rank 0 (on the main node) coordinates: every rank reports to it, then it runs the pairs in
round-robin rounds (disjoint pairs at once), the lower rank of each pair timing a TCP
ping-pong with the other's echo server. Rank 0 prints the netcheck JSON line the gate judges;
a rank that never reports, or a pair that cannot connect, is named ("unreachable_pairs") and
the check exits 4 (node lost).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from launcher import contract

COMMAND = "netcheck"  # the gate reads lines of this command, whichever check printed them
LABEL = "launcher TCP pair check"
SIZES = (8, 1 << 20)  # latency, and bandwidth at a size past every eager limit
REPEATS = 7  # timed round trips per size; the fastest counts (a busy host's hiccups drop out)
# Where each MPI says which rank a process is: Open MPI, PMIx (Open MPI 5), Hydra (MPICH).
RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")
HEADER = struct.Struct("!Q")
PATTERN = bytes(range(251))  # a prime length: no message is a repeat of a shorter one


def rounds(n: int) -> list[list[tuple[int, int]]]:
    """The circle method: every pair of ``range(n)`` once, each rank in <= 1 pair per round."""
    ring: list[int | None] = [*range(n), *([None] if n % 2 else [])]
    m = len(ring)
    schedule = []
    for _ in range(m - 1):
        pairs = [(ring[i], ring[m - 1 - i]) for i in range(m // 2)]
        schedule.append([(min(a, b), max(a, b)) for a, b in pairs
                         if a is not None and b is not None])
        ring = [ring[0], ring[-1], *ring[1:-1]]
    return schedule


def own_rank(env: Mapping[str, str]) -> int | None:
    """This process's rank as its MPI's launcher set it (None outside mpiexec)."""
    for name in RANK_VARS:
        if env.get(name, "").isdigit():
            return int(env[name])
    return None


def _read_exact(sock: socket.socket, view: memoryview) -> bool:
    """Fill `view` from `sock`; False when the peer closed first."""
    while view:
        got = sock.recv_into(view)
        if not got:
            return False
        view = view[got:]
    return True


def _echo_one(conn: socket.socket) -> None:
    """Send back every message (8-byte length, then the bytes) until the peer closes."""
    head = bytearray(HEADER.size)
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while _read_exact(conn, memoryview(head)):
            body = bytearray(HEADER.unpack(head)[0])
            if not _read_exact(conn, memoryview(body)):
                return
            conn.sendall(head + body)


def serve_echo(listener: socket.socket) -> None:
    """Accept echo connections forever (a daemon thread; the process exit ends it)."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_echo_one, args=(conn,), daemon=True).start()


def connect(address: tuple[str, int], deadline: float) -> socket.socket:
    """A connection to `address`, retried until `deadline` (the peer may start later)."""
    while True:
        try:
            return socket.create_connection(address, timeout=max(0.1, deadline - time.monotonic()))
        except OSError as e:
            if time.monotonic() + 0.2 >= deadline:
                raise OSError(f"cannot connect to {address[0]}:{address[1]}: "
                              f"{e.strerror or e}") from None
            time.sleep(0.2)


def pingpong(address: tuple[str, int], sizes: Sequence[int], repeats: int,
             timeout: float) -> dict:
    """One pair from the lower rank's side: one-way seconds per size (fastest round trip / 2)."""
    deadline = time.monotonic() + timeout
    entry: dict = {"seconds": {}, "bandwidth_MBps": {}, "wrong_echoes": 0}
    with connect(address, deadline) as sock:
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for size in sizes:
            message = HEADER.pack(size) + (PATTERN * (size // len(PATTERN) + 1))[:size]
            back = bytearray(len(message))
            best = float("inf")
            for i in range(repeats + 1):  # the first warms the connection up, untimed
                began = time.perf_counter()
                sock.sendall(message)
                if not _read_exact(sock, memoryview(back)):
                    raise OSError(f"{address[0]}:{address[1]} closed the connection mid-echo")
                if i:
                    best = min(best, time.perf_counter() - began)
                entry["wrong_echoes"] += back != message
            half = best / 2
            entry["seconds"][str(size)] = float(f"{half:.6g}")
            entry["bandwidth_MBps"][str(size)] = float(f"{size / half / 1e6:.6g}")
    entry["latency_us"] = float(f"{entry['seconds'][str(min(sizes))] * 1e6:.6g}")
    return entry


class _Line:
    """Newline-delimited JSON over a socket, with a deadline per read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rwb")

    def send(self, obj: Mapping) -> None:
        self.file.write(json.dumps(obj).encode() + b"\n")
        self.file.flush()

    def read(self, timeout: float | None) -> dict | None:
        """The next object; None when the peer closed or stayed silent past `timeout`."""
        self.sock.settimeout(timeout)
        try:
            raw = self.file.readline()
        except OSError:
            return None
        return json.loads(raw) if raw else None


def _listen(ip: str, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, port))
    sock.listen(128)
    return sock


def _echo_server(ip: str) -> tuple[str, int]:
    listener = _listen(ip)
    threading.Thread(target=serve_echo, args=(listener,), daemon=True).start()
    return listener.getsockname()[:2]


def _result(line: dict) -> None:
    print(json.dumps({"command": COMMAND, "check": LABEL, **line}), flush=True)


def _gather(listener: socket.socket, n: int, deadline: float) -> dict[int, tuple[_Line, dict]]:
    """Every other rank's hello (rank, host, echo address) until all came or `deadline`."""
    peers: dict[int, tuple[_Line, dict]] = {}
    while len(peers) < n - 1 and time.monotonic() < deadline:
        listener.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        line = _Line(conn)
        hello = line.read(max(0.05, deadline - time.monotonic()))
        if hello and isinstance(hello.get("rank"), int) and 0 < hello["rank"] < n:
            peers[hello["rank"]] = (line, hello)
        else:
            conn.close()
    return peers


def coordinate(main: tuple[str, int], n: int, timeout: float) -> int:
    """Rank 0: gather the ranks, run every pair in rounds, print the JSON line; the exit code."""
    began = time.perf_counter()
    listener = _listen(*main)
    own = {"rank": 0, "host": socket.gethostname(), "echo": _echo_server(main[0])}
    peers = _gather(listener, n, time.monotonic() + timeout)
    hellos = {0: own, **{r: h for r, (_, h) in peers.items()}}
    hosts = [hellos[r]["host"] if r in hellos else "?" for r in range(n)]
    missing = [r for r in range(1, n) if r not in peers]
    unreachable: list[list[int]] = [[0, r] for r in missing]
    errors = [f"rank {r} did not report to rank 0 ({main[0]}:{main[1]}) within {timeout:g}s"
              for r in missing]
    measured: list[dict] = []
    if not missing:
        for schedule in rounds(n):
            outcomes = list(_run_round(schedule, peers, hellos, timeout))
            for (a, b), outcome in zip(schedule, outcomes, strict=True):
                if "error" in outcome:
                    unreachable.append([a, b])
                    errors.append(f"rank {a} ({hosts[a]}) -> rank {b} ({hosts[b]}): "
                                  f"{outcome['error']}")
                else:
                    measured.append({"ranks": [a, b], "hosts": [hosts[a], hosts[b]], **outcome})
            if unreachable:
                break
    for line, _ in peers.values():
        try:
            line.send({"bye": True})
        except OSError:
            pass
    if unreachable:
        _result({"ok": False, "hosts": hosts, "unreachable_pairs": unreachable,
                 "errors": errors})
        return contract.NODE_LOST
    wrong = [f"ranks {p['ranks'][0]}-{p['ranks'][1]}: {p['wrong_echoes']} echoes came back "
             "different" for p in measured if p["wrong_echoes"]]
    _result({"ok": not wrong, "ranks": n, "hosts": hosts, "sizes": list(SIZES),
             "repeats": REPEATS, "pairs": sorted(measured, key=lambda p: p["ranks"]),
             "unreachable_pairs": [], "errors": wrong,
             "transports": [{"transport": f"TCP sockets ({LABEL})",
                             "address": hellos[r]["echo"][0]} for r in range(n)],
             "seconds": round(time.perf_counter() - began, 6)})
    return contract.APPLICATION_ERROR if wrong else contract.OK


def _run_round(schedule: Sequence[tuple[int, int]], peers: Mapping[int, tuple[_Line, dict]],
               hellos: Mapping[int, dict], timeout: float) -> Iterator[dict]:
    """Each pair's figures or {"error": why}, in `schedule`'s order (pairs run at once)."""
    def one(pair: tuple[int, int]) -> dict:
        a, b = pair
        target = tuple(hellos[b]["echo"])
        if a == 0:
            try:
                return pingpong(target, SIZES, REPEATS, timeout)
            except OSError as e:
                return {"error": str(e)}
        line = peers[a][0]
        try:
            line.send({"ping": b, "at": target})
        except OSError as e:
            return {"error": f"rank {a} lost its connection to rank 0: {e}"}
        # Longer than the pair's own deadline, so that rank a reports a silent b itself.
        answer = line.read(3 * timeout)
        return answer if answer is not None else {"error": f"rank {a} did not answer rank 0"}

    with ThreadPoolExecutor(max_workers=max(1, len(schedule))) as pool:
        yield from pool.map(one, schedule)


def follow(rank: int, main: tuple[str, int], timeout: float) -> int:
    """Any other rank: report to rank 0 with an echo server, time the pairs it is given."""
    try:
        sock = connect(main, time.monotonic() + timeout)
    except OSError as e:
        print(f"{LABEL}: rank {rank}: {e}", file=sys.stderr, flush=True)
        return contract.NODE_LOST
    line = _Line(sock)
    # Listen where the connection to rank 0 leaves from: the interface MPI is held to.
    echo = _echo_server(sock.getsockname()[0])
    line.send({"rank": rank, "host": socket.gethostname(), "echo": echo})
    while True:
        order = line.read(None)
        if order is None:
            print(f"{LABEL}: rank {rank}: rank 0 went away", file=sys.stderr, flush=True)
            return contract.NODE_LOST
        if order.get("bye"):
            return contract.OK
        try:
            answer = pingpong(tuple(order["at"]), SIZES, REPEATS, timeout)
        except OSError as e:
            answer = {"error": str(e)}
        line.send(answer)


def parse_address(text: str) -> tuple[str, int]:
    """ADDRESS:PORT as a socket address (argparse's type: bad text is a usage error)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not ADDRESS:PORT")
    return host, int(port)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    """`python -m launcher.pairs --main IP:PORT --nodes N [--timeout S]`, one rank per node."""
    p = argparse.ArgumentParser(prog="python -m launcher.pairs", description=__doc__.split(
        "\n")[0])
    p.add_argument("--main", type=parse_address, required=True, help="rank 0's ADDRESS:PORT")
    p.add_argument("--nodes", type=int, required=True, help="ranks (one per node)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for a peer (10)")
    args = p.parse_args(argv)
    rank = own_rank(env)
    if rank is None or not 0 <= rank < args.nodes:
        print(f"{LABEL}: no rank in {', '.join(RANK_VARS)} below --nodes {args.nodes}: "
              "run it under mpiexec", file=sys.stderr)
        return contract.USAGE
    if rank == 0:
        return coordinate(args.main, args.nodes, args.timeout)
    return follow(rank, args.main, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
