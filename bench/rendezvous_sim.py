"""The main node's rendezvous against N simulated, authenticated children on loopback.

`simulate(n)` starts the main node's real server (`launcher.server.Server`) in a process of
its own, so its CPU time and peak memory are its own, and the children in a few other
processes, each child a thread running the launcher's own client (`launcher.rendezvous.
Client`): the same key derivation, HMAC, messages and retries as a child node, minus what a
real child does besides (its fabric check and sshd start; it reports `ready` at once with a
fixed port and keys, and answers the peer list without writing the keys to files). All
children are made first and connect together once the server listens: the worst case of
Batch starting every node at the same moment. No MPI, no ssh.

    python -m bench.rendezvous_sim server N [--peer-list]   # one side; `simulate` runs both
    python -m bench.rendezvous_sim children FIRST COUNT [--wrong-key INDEX ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from launcher import settings
from launcher.rendezvous import SECRET_ENV, Client, RendezvousError, derive_key
from launcher.server import Server

REPO = Path(__file__).resolve().parents[1]
JOB, ATTEMPT = "bench-rendezvous-0000", 1
MAIN = "127.0.0.1"
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBench main"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostHostHostHostHostHostHostHostHostHo"
CHILD_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChildChildChildChildChildChildChildChild c"
SSH_PORT = 2222
PROCESSES = 4  # child processes: on 2 cores more only adds interpreters
# A child connects for at most this long, as MNP_RENDEZVOUS_TIMEOUT bounds a real one.
TIMEOUT = 120.0
_DEFAULTS = settings.read({})  # the launcher's own heartbeat interval and timeout


def peak_rss_mib() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that
    over exec from the parent (the benchmark, with matplotlib loaded) when it is larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: KiB too


def serve(children: int, timeout: float, peer_list: bool) -> dict:
    """Main node: admit children 1..N, hand each the peer list (Open MPI's spawn tree),
    dismiss them; what it took (monotonic clock)."""
    secret = os.environ[SECRET_ENV]
    rss_before = peak_rss_mib()
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    server = Server(key=derive_key(JOB, ATTEMPT, secret), job=JOB, attempt=ATTEMPT,
                    expected=set(range(1, children + 1)), public_key=PUB, user="bench",
                    hb_interval=_DEFAULTS.heartbeat_interval,
                    hb_timeout=_DEFAULTS.heartbeat_timeout, host=MAIN, port=0)
    server.start()
    print(json.dumps({"port": server.port}), flush=True)
    peers = server.wait_ready(timeout)
    admitted = time.monotonic()
    after = resource.getrusage(resource.RUSAGE_SELF)
    threads, rss_admitted = threading.active_count(), peak_rss_mib()
    # What Open MPI's spawn tree needs next: every child gets every child's keys and address.
    missing = server.share_peers(timeout) if peer_list else []
    shared = time.monotonic()
    end = resource.getrusage(resource.RUSAGE_SELF)
    server.finish(0, grace=30.0)
    return {"listening": began, "admitted": admitted,
            "peers": {i: [p.ip, p.slots, p.ssh_port] for i, p in sorted(peers.items())},
            "cpu_user_s": after.ru_utime - before.ru_utime,
            "cpu_sys_s": after.ru_stime - before.ru_stime,
            "rss_before_mib": rss_before, "rss_peak_mib": rss_admitted, "threads": threads,
            "peer_list": peer_list, "peer_list_s": shared - admitted,
            "peer_list_missing": missing,
            "peer_list_cpu_s": end.ru_utime + end.ru_stime - after.ru_utime - after.ru_stime,
            "peer_list_rss_peak_mib": peak_rss_mib()}


class _Retries(logging.Handler):
    """Counts the client's `retrying` warnings: connections the server dropped."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "retrying" in record.getMessage()


def _child(index: int, key: bytes, port: list[int], go: threading.Event, out: dict) -> None:
    go.wait()  # the port is known
    client = Client(key=key, job=JOB, attempt=ATTEMPT, index=index, slots=1, main_ip=MAIN,
                    port=port[0], hb_interval=_DEFAULTS.heartbeat_interval,
                    hb_timeout=_DEFAULTS.heartbeat_timeout)
    out["connect"] = time.monotonic()
    try:
        client.connect(TIMEOUT)
        out["welcomed"] = time.monotonic()
        client.ready(SSH_PORT, HOST_KEY, CHILD_PUB)
        kind, value = client.events.get(timeout=TIMEOUT)
        out["end"] = f"{kind} {value}"
    except RendezvousError as e:
        out["end"] = f"refused: {e}"
    except Exception as e:  # noqa: BLE001 - every child's end is reported, whatever it is
        out["end"] = f"failed: {type(e).__name__}: {e}"
    finally:
        client.close()


def children(first: int, count: int, wrong_key: list[int]) -> dict:
    """Children FIRST.. (and, for each WRONG_KEY index, one more holding another secret's
    key); they connect when the port arrives on stdin. Per child: times and how it ended."""
    threading.stack_size(256 * 1024)  # ~3 threads a child; the simulation's, not the server's
    retries = _Retries()
    logging.getLogger("mnp").addHandler(retries)
    key = derive_key(JOB, ATTEMPT, os.environ[SECRET_ENV])
    wrong = derive_key(JOB, ATTEMPT, secrets.token_hex(32))
    go, port = threading.Event(), [0]
    plan = [(i, key) for i in range(first, first + count)] + [(i, wrong) for i in wrong_key]
    outs: list[dict] = [{"node": i, "wrong_key": k is wrong} for i, k in plan]
    threads = [threading.Thread(target=lambda i=i, k=k, o=o: _child(i, k, port, go, o))
               for (i, k), o in zip(plan, outs, strict=True)]
    for t in threads:
        t.start()
    print("made", flush=True)
    port[0] = int(sys.stdin.readline())
    go.set()
    for t in threads:
        t.join()
    return {"children": outs, "retries": retries.count}


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """(first index, count) of each process's share of children 1..n."""
    size = -(-n // parts)
    return [(first, min(size, n + 1 - first)) for first in range(1, n + 1, size)]


class _Side:
    """One process of the simulation; its stderr goes to a file (a pipe nobody reads until
    the end would fill up and block its logger)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.rendezvous_sim", *args],
                                     cwd=REPO, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def line(self, what: str) -> str:
        """The next line of its stdout; RuntimeError with its stderr when there is none."""
        text = self.proc.stdout.readline()
        if not text:
            self.proc.wait()
            raise RuntimeError(f"{what} exited {self.proc.returncode}: {self.stderr()[-1500:]}")
        return text

    def result(self, what: str, timeout: float) -> dict:
        """The JSON it prints last, with its stderr."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        if self.proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"{what} exited {self.proc.returncode}: {self.stderr()[-1500:]}")
        return {**json.loads(out.strip().splitlines()[-1]), "stderr": self.stderr()}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def simulate(n: int, *, processes: int = PROCESSES, wrong_key: tuple[int, ...] = (),
             timeout: float = TIMEOUT, peer_list: bool = True) -> dict:
    """Admit children 1..n (plus the `wrong_key` impostors) on loopback; what it took.

    Seconds are from the server listening and from the first child's connect to the moment
    the server had every child; CPU and peak memory are the server process's alone.
    `peer_list`: then every child gets the list of all and answers (n^2 lines in all, every
    child decoding its n here on this machine's cores: minutes at 999 on 2 cores).
    """
    env = {**os.environ, SECRET_ENV: secrets.token_hex(32), "PYTHONPATH": str(REPO)}
    sides: list[_Side] = []
    try:
        for k, (first, count) in enumerate(_split(n, min(processes, n))):
            extra = [a for i in wrong_key if k == 0 for a in ("--wrong-key", str(i))]
            sides.append(_Side(["children", str(first), str(count), *extra], env))
        kids = list(sides)
        for kid in kids:
            kid.line("a child process")  # its children are made
        server = _Side(["server", str(n), "--timeout", str(timeout),
                        *(["--peer-list"] if peer_list else [])], env)
        sides.append(server)
        port = json.loads(server.line("the server"))["port"]
        for kid in kids:
            kid.proc.stdin.write(f"{port}\n")
            kid.proc.stdin.flush()
        main = server.result("the server", timeout + 60)
        results = [kid.result("a child process", 60) for kid in kids]
    finally:
        for side in sides:
            side.close()
    outs = [c for r in results for c in r["children"]]
    return {"children": n, "processes": len(kids),
            "listen_to_all_s": main["admitted"] - main["listening"],
            "first_connect_to_all_s": main["admitted"] - min(c["connect"] for c in outs),
            "cpu_s": main["cpu_user_s"] + main["cpu_sys_s"],
            **{k: main[k] for k in ("cpu_user_s", "cpu_sys_s", "rss_before_mib",
                                    "rss_peak_mib", "threads", "peer_list", "peer_list_s",
                                    "peer_list_cpu_s", "peer_list_missing",
                                    "peer_list_rss_peak_mib")},
            "peers": {int(i): p for i, p in main["peers"].items()},
            "reconnects": sum(r["retries"] for r in results),
            "ends": {("wrong-key " if c["wrong_key"] else "") + str(c["node"]): c["end"]
                     for c in outs},
            "server_refusals": [ln for ln in main["stderr"].splitlines()
                                if "rendezvous: refused" in ln]}


def _log_to_stderr() -> None:
    """The launcher's log lines on stderr, as a node writes them (their cost counts)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("mnp")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str]) -> int:
    """One side of the simulation; prints its JSON on the last line of stdout."""
    p = argparse.ArgumentParser(prog="python -m bench.rendezvous_sim")
    sub = p.add_subparsers(dest="side", required=True)
    s = sub.add_parser("server")
    s.add_argument("n", type=int)
    s.add_argument("--timeout", type=float, default=TIMEOUT)
    s.add_argument("--peer-list", action="store_true", help="then hand every child the list")
    c = sub.add_parser("children")
    c.add_argument("first", type=int)
    c.add_argument("count", type=int)
    c.add_argument("--wrong-key", type=int, action="append", default=[])
    args = p.parse_args(argv)
    _log_to_stderr()
    if args.side == "server":
        result = serve(args.n, args.timeout, args.peer_list)
    else:
        result = children(args.first, args.count, args.wrong_key)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
