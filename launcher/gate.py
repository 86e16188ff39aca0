"""The network self-check gate (MNP_PRECHECK=1): prove every node pair before the user's run.

On the main node, after the rendezvous, the launcher runs a check across the same nodes, one
rank each, with the same mpiexec and settings as the user's command: MNP_PRECHECK_COMMAND when
set, else `python -m solver netcheck` (an MPI ping-pong) when the image has this project's
solver, else the launcher's own TCP pair check (`launcher.pairs`, standard library only, so any
image with an MPI can run it); the log and `network.json` say which ran. This module decides
from the check's JSON line whether the attempt goes on, writes `network.json` beside the run's
other output and logs a summary; an unreachable or far-too-slow node fails the attempt with
the node-lost code, which Batch retries elsewhere.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from launcher import contract, pairs, procs, settings
from launcher.rendezvous import log

PRECHECK_ENV = contract.PRECHECK_ENV
COMMAND_ENV = "MNP_PRECHECK_COMMAND"
TIMEOUT_ENV = "MNP_PRECHECK_TIMEOUT"
DEFAULT_COMMAND = ("python", "-m", "solver", "netcheck")
# The launcher's own Python runs its pair check: the same path on every node of one image.
PAIR_COMMAND = (sys.executable, "-m", "launcher.pairs")
SOLVER_CHECK = "solver netcheck (MPI ping-pong)"
REPORT_NAME = "network.json"
# A node is slow when every one of its pairs takes longer, at one message size, than
# max(FACTOR x reference, reference + FLOOR_S), the reference being the median of the pairs
# that do not touch it. Leaving the node out keeps a slow node from dragging the reference
# towards itself (in 3 nodes two of the three pairs touch it, and would be the median), and
# "every one of its pairs" singles out the node the slow pairs share rather than any node
# with one slow partner. Healthy pairs of one job (one placement group, one instance type)
# differ by far less than 3x; the 1 ms floor keeps scheduling jitter on microsecond
# latencies from failing a healthy job, and is still more than any in-AZ round trip.
FACTOR = 3.0
FLOOR_S = 1e-3
# The settings that decide MPI's transport, as the launcher passes them (env or --mca).
TRANSPORT_KEYS = ("pml", "mtl", "btl", "mtl_ofi_provider_include", "btl_tcp_if_include")


class GateError(ValueError):
    """MNP_PRECHECK or its companions are wrong."""


@dataclass(frozen=True)
class NodeRef:
    """A node as the gate names it: Batch node index and rendezvous address (rank order)."""

    index: int
    ip: str

    def name(self, host: str | None = None) -> str:
        return f"node {self.index} ({self.ip}{', ' + host if host else ''})"


@dataclass
class Verdict:
    """What the gate concluded: the exit code (0 goes on), one line, the per-rank findings."""

    code: int
    line: str
    slow: dict[int, str] = field(default_factory=dict)


def outliers(pairs: Sequence[Mapping], sizes: Sequence[int]) -> dict[int, str]:
    """Ranks every pair of which is far slower than the pairs without them (see FACTOR)."""
    ranks = sorted({r for p in pairs for r in p["ranks"]})
    found: dict[int, str] = {}
    for rank in ranks:
        own = [p for p in pairs if rank in p["ranks"]]
        others = [p for p in pairs if rank not in p["ranks"]]
        if not others:  # two nodes: a slow pair cannot be pinned on either of them
            continue
        for size in sizes:
            ref = statistics.median(p["seconds"][str(size)] for p in others)
            limit = max(FACTOR * ref, ref + FLOOR_S)
            times = [p["seconds"][str(size)] for p in own]
            if min(times) > limit:
                found[rank] = (f"all {len(own)} of its pairs took {min(times) * 1e3:.3g}-"
                               f"{max(times) * 1e3:.3g} ms per {size} B message, over the "
                               f"limit {limit * 1e3:.3g} ms (median of the other pairs "
                               f"{ref * 1e3:.3g} ms)")
                break
    return found


def silent_ranks(unreachable_pairs: Sequence[Sequence[int]]) -> list[int]:
    """The ranks reported silent most often ([noticing rank, silent rank] pairs)."""
    counts: dict[int, int] = {}
    for _, silent in unreachable_pairs:
        counts[silent] = counts.get(silent, 0) + 1
    top = max(counts.values(), default=0)
    return sorted(r for r, n in counts.items() if n == top and top)


def _named(ranks: Sequence[int], nodes: Sequence[NodeRef], hosts: Sequence[str]) -> str:
    return ", ".join(nodes[r].name(hosts[r] if r < len(hosts) else None) if r < len(nodes)
                     else f"rank {r}" for r in ranks)


def judge(rc: int, reports: Sequence[Mapping], nodes: Sequence[NodeRef],
          expired: float | None) -> Verdict:
    """The gate's decision from the check's exit code and its JSON lines."""
    failed = [r for r in reports if "pairs" not in r and r.get("ok") is False]
    summary = next((r for r in reports if "pairs" in r), None)
    hosts = next((r["hosts"] for r in reports if r.get("hosts")), [])
    if failed:
        silent = silent_ranks([p for r in failed for p in r.get("unreachable_pairs", [])])
        why = "; ".join(e for r in failed for e in r.get("errors", []))
        who = _named(silent, nodes, hosts) if silent else "a node (not named by the check)"
        return Verdict(contract.NODE_LOST, f"network check: {who} unreachable ({why})")
    if expired is not None:
        return Verdict(contract.NODE_LOST, f"network check: no result within {expired:g}s "
                       f"({TIMEOUT_ENV}): a node is unreachable or far too slow")
    if summary is None and rc == contract.NODE_LOST:
        # netcheck aborts with 4 when a rank is silent; its line can die with the abort.
        return Verdict(contract.NODE_LOST, "network check: a node did not answer (the check "
                       "exited 4 before its report reached the main node)")
    if summary is None:
        return Verdict(contract.APPLICATION_ERROR, f"network check exited {rc} without its "
                       f"JSON line (see above): fix {COMMAND_ENV} or set {PRECHECK_ENV}=0")
    bad = [r for p in summary["pairs"] if p.get("wrong_echoes") for r in p["ranks"]]
    slow = outliers(summary["pairs"], summary["sizes"])
    slow.update({r: "its messages came back corrupted" for r in bad
                 if bad.count(r) == max(bad.count(x) for x in bad)})
    if slow:
        return Verdict(contract.NODE_LOST, "network check: " + "; ".join(
            f"{_named([r], nodes, hosts)} is unusable: {why}" for r, why in sorted(slow.items())),
            slow)
    if rc != 0:
        return Verdict(contract.APPLICATION_ERROR, f"network check exited {rc}: "
                       f"{'; '.join(summary.get('errors') or ['see above'])}")
    return Verdict(contract.OK, f"network check passed: {len(summary['pairs'])} pairs of "
                   f"{len(nodes)} nodes in {summary.get('seconds', 0):.2f}s")


def requested(env: Mapping[str, str]) -> bool:
    """MNP_PRECHECK: 1 on, 0 or unset off; GateError names any other value."""
    try:
        return bool(settings.value(env, PRECHECK_ENV))
    except settings.SettingError as e:
        raise GateError(str(e)) from None


@dataclass(frozen=True)
class Check:
    """The check to run, its deadline and which it is (None from `configured` = off)."""

    command: tuple[str, ...]
    timeout: float
    which: str = COMMAND_ENV

    @classmethod
    def configured(cls, env: Mapping[str, str]) -> Check | None:
        """MNP_PRECHECK (0/unset off, 1 on) and the check chosen; GateError names bad values."""
        if not requested(env):
            return None
        try:
            custom = settings.value(env, COMMAND_ENV)
            timeout = settings.value(env, TIMEOUT_ENV)
        except settings.SettingError as e:
            raise GateError(str(e)) from None
        if custom is not None:
            return cls(custom, timeout)
        missing = _solver_missing(env)
        if missing is None:
            return cls(DEFAULT_COMMAND, timeout, SOLVER_CHECK)
        return cls(PAIR_COMMAND, timeout, f"{pairs.LABEL} (no solver in this image: {missing})")

    def command_for(self, nodes: Sequence[NodeRef]) -> list[str]:
        """The command each rank runs; the pair check learns rank 0's address and port."""
        if self.command != PAIR_COMMAND:
            return list(self.command)
        # A quarter of the gate's deadline per wait, so that the check names a silent node
        # itself before the gate gives up on it.
        return [*self.command, "--main", f"{nodes[0].ip}:{free_port(nodes[0].ip)}",
                "--nodes", str(len(nodes)), "--timeout", f"{self.timeout / 4:g}"]

    def run(self, argv: Sequence[str], env: Mapping[str, str],
            supervise: Callable[[subprocess.Popen[bytes]], tuple[int, str | None]],
            nodes: Sequence[NodeRef], job: str) -> int:
        """Run the check (`argv` = mpiexec + command), judge it, report; returns the code.

        A node found slow is measured once more, and the attempt fails only when the second
        run names the same nodes: a retry costs a whole new allocation, a hiccup on a busy
        host passes, and a slow link stays slow.
        """
        log.info("network check: %s: %s across %d nodes, one rank each", self.which,
                 shlex.join(self.command), len(nodes))
        first: Verdict | None = None
        for _ in range(2):
            outcome = self._once(argv, env, supervise, nodes)
            if isinstance(outcome, int):
                return outcome
            verdict, reports = outcome
            _log_pairs(reports, nodes)
            if first is not None and verdict.slow and set(verdict.slow) != set(first.slow):
                # Each run blamed another node: noise, not a node to take out of the job.
                log.warning("%s; the first run named other nodes: going on", verdict.line)
                verdict = Verdict(contract.OK, f"network check passed: no node slow in both "
                                  f"runs ({first.line}; then {verdict.line})")
            if first is not None or not verdict.slow:
                break
            first = verdict
            log.warning("%s; measuring again to tell a slow node from a passing hiccup",
                        verdict.line)
        if first is not None and verdict.code == contract.OK:
            verdict.line += f" (on the second run; the first found: {first.line})"
        write_report(env, job, reports, nodes, verdict, self.which)
        (log.info if verdict.code == contract.OK else log.error)("%s", verdict.line)
        return verdict.code

    def _once(self, argv: Sequence[str], env: Mapping[str, str],
              supervise: Callable[[subprocess.Popen[bytes]], tuple[int, str | None]],
              nodes: Sequence[NodeRef]) -> tuple[Verdict, list[dict]] | int:
        """One run of the check: its verdict and JSON lines, or the code when it never ran."""
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, start_new_session=True,
                                    env=dict(env))
        except OSError as e:
            log.error("cannot start the network check: %s", e)
            return contract.USAGE
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.extend(proc.stdout or ()), daemon=True)
        reader.start()
        expired = threading.Event()
        timer = threading.Timer(self.timeout, lambda: (expired.set(), procs.kill_tree(proc.pid)))
        timer.start()
        try:
            rc, lost = supervise(proc)
        finally:
            timer.cancel()
        reader.join(5)
        if lost is not None:  # supervise has logged which node went away
            return contract.NODE_LOST
        reports = _reports(out)
        return judge(rc, reports, nodes, self.timeout if expired.is_set() else None), reports


# Found without importing: importing mpi4py's MPI would start an MPI singleton here.
_FIND_CHECK = ("import importlib.util as u\n"
               "for name in ('solver.netcheck', 'mpi4py', 'numpy'):\n"
               "    if u.find_spec(name) is None:\n"
               "        raise SystemExit(f'No module named {name!r}')\n")


def _solver_missing(env: Mapping[str, str]) -> str | None:
    """Why the ranks' Python cannot run `solver netcheck` (None: it can)."""
    try:
        proc = subprocess.run([DEFAULT_COMMAND[0], "-c", _FIND_CHECK],
                              capture_output=True, text=True, timeout=120, env=dict(env),
                              stdin=subprocess.DEVNULL)
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1] if proc.returncode else ""
    except FileNotFoundError:
        why = f"no {DEFAULT_COMMAND[0]!r} on PATH"
    except (OSError, subprocess.TimeoutExpired) as e:
        why = str(e)
    return why or None


def free_port(ip: str) -> int:
    """A port nothing listens on at `ip` now (rank 0 of the pair check runs on this node)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def _reports(out: Sequence[bytes]) -> list[dict]:
    """The check's JSON lines (any rank may print its failure line)."""
    found = []
    for raw in out:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("command") == "netcheck":
            found.append(line)
    return found


def _log_pairs(reports: Sequence[Mapping], nodes: Sequence[NodeRef]) -> None:
    summary = next((r for r in reports if "pairs" in r), None)
    if summary is None:
        return
    for p in summary["pairs"]:
        a, b = p["ranks"]
        figures = ", ".join(f"{size} B {p['seconds'][str(size)] * 1e6:.1f} us "
                            f"({p['bandwidth_MBps'][str(size)]:.4g} MB/s)"
                            for size in summary["sizes"])
        log.info("network: %s <-> %s: %s", _named([a], nodes, []), _named([b], nodes, []),
                 figures)
    if summary.get("transports"):
        log.info("network: transport on node %d: %s", nodes[0].index,
                 json.dumps(summary["transports"][0]))


def write_report(env: Mapping[str, str], job: str, reports: Sequence[Mapping],
                 nodes: Sequence[NodeRef], verdict: Verdict, which: str = "") -> Path | None:
    """`$OUTPUT_PATH/<job id>/network.json` (the solver's layout), written atomically."""
    root = env.get(contract.OUTPUT_PATH_ENV, "").strip()
    if not root:
        log.warning("network check: %s is not set, so %s is not written",
                    contract.OUTPUT_PATH_ENV, REPORT_NAME)
        return None
    path = Path(root) / job / REPORT_NAME
    summary = next((r for r in reports if "pairs" in r), {})
    report = {"ok": verdict.code == contract.OK, "exit_code": verdict.code,
              "verdict": verdict.line, "which": which, "attempt": env.get("AWS_BATCH_JOB_ATTEMPT"),
              "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "nodes": [{"rank": r, "index": n.index, "ip": n.ip} for r, n in enumerate(nodes)],
              "slow": {str(r): why for r, why in verdict.slow.items()},
              "thresholds": {"factor": FACTOR, "floor_s": FLOOR_S},
              "check": summary, "failures": [r for r in reports if "pairs" not in r]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{REPORT_NAME}.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        log.error("network check: cannot write %s: %s", path, e)
        return None
    log.info("network check: report in %s", path)
    return path


def transport_settings(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The transport choices this run hands MPI (`--mca` on argv, else OMPI_MCA_*, FI_*)."""
    chosen: dict[str, str] = {}
    for key in TRANSPORT_KEYS:
        if f"OMPI_MCA_{key}" in env:
            chosen[key] = env[f"OMPI_MCA_{key}"]
    for i, word in enumerate(argv[:-2]):
        if word in ("--mca", "-mca", "--prtemca") and argv[i + 1] in TRANSPORT_KEYS:
            chosen[argv[i + 1]] = argv[i + 2]
    if "FI_PROVIDER" in env:
        chosen["FI_PROVIDER"] = env["FI_PROVIDER"]
    return ", ".join(f"{k}={v}" for k, v in chosen.items()) or "MPI's defaults"
