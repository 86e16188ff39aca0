"""MPI communication: `solver commcheck` against an OSU-style ping-pong, on 1 host and 2 netns
(Open MPI's TCP BTL, and the OFI path over libfabric's tcp provider that MNP_NETWORK=ofi-tcp
forces: the EFA code path minus the device)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench import plot
from bench.common import (
    PYTHON,
    REPO,
    BenchError,
    Options,
    Row,
    Section,
    crossover_ratio,
    env,
    judge,
    mpiexec,
    run,
)

TOLERANCE = 0.10
SIZES = {True: (8, 4096, 1048576), False: (8, 64, 512, 4096, 32768, 262144, 1048576, 4194304)}
# Rounds per place, even so each program goes first equally often (ABBA). Large messages on
# one host are bound by memory bandwidth, which other guests' traffic moves by up to 2x from
# one 70 ms measurement to the next: many cheap rounds there, fewer slow ones over TCP.
OFI = "2 namespaces, OFI tcp"
ROUNDS = {True: {"same host": 2, "2 namespaces": 2, OFI: 2},
          False: {"same host": 64, "2 namespaces": 24, OFI: 24}}
# Each emulated place's MNP_NETWORK: TCP BTL (the default), and OFI's MTL over libfabric tcp.
NETWORK = {"2 namespaces": "tcp", OFI: "ofi-tcp"}


def _command(opts: Options, where: str) -> list[str]:
    """One MPI program: rounds of `solver commcheck` against the OSU latency loop, then OSU."""
    sizes = ",".join(map(str, SIZES[opts.quick]))
    quick = ["--loop", "200", "--skip", "20", "--loop-large", "10", "--skip-large", "2",
             "--pair-loop", "100", "--pair-loop-large", "10"]
    return ["python", "-m", "bench.osu", "--sizes", sizes, "--pairs",
            str(ROUNDS[opts.quick][where]),
            *(quick if opts.quick else [])]


def _parse(stdout: str) -> dict[int, dict]:
    """Per size: both programs' median latency, the paired ratios' median and range, osu_bw."""
    found = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            found[obj.get("command")] = obj
    if "commcheck" in found and not found["commcheck"].get("ok"):
        raise BenchError(f"commcheck reported errors: {found['commcheck'].get('errors')}")
    if "pairs" not in found.get("osu", {}):
        raise BenchError(f"expected the paired osu JSON line, got:\n{stdout[-2000:]}")
    out = {}
    for size, rounds in found["osu"]["pairs"].items():
        cc, osu = rounds["commcheck_us"], rounds["osu_us"]
        ratios = [c / o for c, o in zip(cc, osu, strict=True)]
        out[int(size)] = {
            "commcheck_us": statistics.median(cc), "osu_us": statistics.median(osu),
            "ratio": crossover_ratio(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "rounds": len(ratios),
            "commcheck_rounds_us": cc, "osu_rounds_us": osu,
            "osu_bw_MBps": found["osu"]["sizes"][size]["bandwidth_MBps"]}
    return out


def _same_host(opts: Options) -> dict[int, dict]:
    argv = [*mpiexec(2), PYTHON, *_command(opts, "same host")[1:]]
    return _parse(run(argv, environ=env(opts), timeout=600).stdout)


def netns_unavailable() -> str | None:
    """Why two emulated nodes cannot be made here (None when they can)."""
    from emulator.namespaces import unavailable_reason

    reason = unavailable_reason()
    if reason is None and not any(Path(p).exists() for p in ("/usr/sbin/sshd", "/usr/bin/sshd")):
        reason = "OpenSSH server is not installed (Open MPI starts remote ranks with ssh)"
    return reason


def _two_namespaces(opts: Options, where: str) -> dict[int, dict]:
    """The same program as a 2-node job of the emulator (emulator.namespaces), one rank per node,
    over the place's MNP_NETWORK."""
    from emulator.namespaces import Emulation

    full = env(opts)
    extra = {k: full[k] for k in ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM",
                                  "PYTHONPATH", "NUMBA_CACHE_DIR")}
    extra.update(MNP_RANKS_PER_NODE="1", MNP_RENDEZVOUS_TIMEOUT="120", MNP_NETWORK=NETWORK[where])
    with Emulation(2, env=extra, max_delay=0.0, shared_dir=_fresh(opts.work / "efs"),
                   log_dir=_fresh(opts.work / "emu-logs")) as emu:
        emu.start(_command(opts, where), cwd=REPO)
        code = emu.wait(600)
        stdout, stderr = emu.output(0)
    if code != 0:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise BenchError(f"emulated 2-node job ({where}): exit {code}\n{tail}")
    return _parse(stdout)


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _rows(where: str, res: dict[int, dict]) -> list[Row]:
    small, big = min(res), max(res)
    lo, hi = res[small], res[big]
    bw, osu_bw = big / hi["commcheck_us"], big / hi["osu_us"]
    worst = max(res, key=lambda s: abs(res[s]["ratio"] - 1))
    within = f"1 +- {TOLERANCE}"
    rounds = f"{lo['rounds']} paired rounds"
    return [
        Row(f"{where}: commcheck latency, {small} B ({rounds})", lo["commcheck_us"], "us",
            f"osu_latency {lo['osu_us']:.2f} us", lo["ratio"], within,
            judge(abs(lo["ratio"] - 1), "<=", TOLERANCE)),
        Row(f"{where}: commcheck bandwidth, {big} B (ping-pong, {rounds})", bw, "MB/s",
            f"osu_latency ping-pong {osu_bw:.0f} MB/s", 1 / hi["ratio"], within,
            judge(abs(1 / hi["ratio"] - 1), "<=", TOLERANCE)),
        Row(f"{where}: same, against streaming osu_bw", bw, "MB/s",
            f"osu_bw {hi['osu_bw_MBps']:.0f} MB/s", bw / hi["osu_bw_MBps"], "", None),
        Row(f"{where}: commcheck/osu time per message, size farthest from 1 ({worst} B)",
            None, "", "", res[worst]["ratio"], within,
            judge(abs(res[worst]["ratio"] - 1), "<=", TOLERANCE)),
    ]


def measure(opts: Options) -> Section:
    """Same host always; two namespaces when the emulator can run here."""
    sec = Section("comm", "MPI communication")
    results = {"same host": _same_host(opts)}
    reason = netns_unavailable()
    if reason is None:
        for where in NETWORK:
            results[where] = _two_namespaces(opts, where)
    else:
        sec.notes.append(f"Two-namespace figures skipped: {reason}.")
    for where, res in results.items():
        sec.rows += _rows(where, res)
    if OFI in results:
        sec.rows += _transports(results["2 namespaces"], results[OFI])
    sec.data = {where: {str(s): v for s, v in res.items()} for where, res in results.items()}
    sec.notes.append(
        "One MPI job per setting runs `bench.osu --pairs`: in each of "
        f"{' and '.join(map(str, ROUNDS[opts.quick].values()))} rounds (one host, "
        "namespaces), `solver commcheck` (its `run` on the job's "
        "communicator, rank 0 <-> rank 1) and the OSU latency loop (`bench.osu`, the algorithm "
        "of mpi4py's demo/osu_latency.py) measure the same sizes back to back with the same "
        "counts (1000 timed round trips up to 8 KiB, 100 above, 1 in 10 more as warm-up), the "
        "order flipping every round; afterwards osu_bw's streaming loop runs once. Each "
        "ratio is commcheck/OSU time per message: the geometric mean of two consecutive "
        "rounds (one of each order, which cancels a first-mover effect), then the median over "
        "those blocks, so a burst of other load falls on both sides of a pair; the latencies "
        "shown are medians over rounds; `ratio_min`/`ratio_max` in results.json are the "
        "single rounds' extremes. Settings: `mpiexec --bind-to none -n 2` on one host, and "
        "a 2-node job of `emulator.namespaces` (network namespaces on a bridge, one rank per "
        "node, the launcher's mpiexec over ssh/TCP), once with Open MPI's TCP BTL (MNP_NETWORK "
        "tcp) and once on the OFI path the launcher forces for MNP_NETWORK=ofi-tcp (pml cm, "
        "mtl ofi, libfabric's tcp provider): the EFA code path with TCP in place of the "
        "device. Both programs send from buffers allocated "
        "once, page-aligned and written (`solver.commcheck.message_buffer`).")
    sec.figure = _figure(opts, results)
    return sec


def _transports(btl: dict[int, dict], ofi: dict[int, dict]) -> list[Row]:
    """OFI over tcp against the TCP BTL on the same two namespaces: OSU latency and bandwidth."""
    small, big = min(btl), max(btl)
    return [
        Row(f"{OFI} vs TCP BTL: osu latency, {small} B", ofi[small]["osu_us"], "us",
            f"TCP BTL {btl[small]['osu_us']:.2f} us", ofi[small]["osu_us"] / btl[small]["osu_us"],
            "", None),
        Row(f"{OFI} vs TCP BTL: osu_bw, {big} B", ofi[big]["osu_bw_MBps"], "MB/s",
            f"TCP BTL {btl[big]['osu_bw_MBps']:.0f} MB/s",
            ofi[big]["osu_bw_MBps"] / btl[big]["osu_bw_MBps"], "", None),
    ]


def _figure(opts: Options, results: dict[str, dict]) -> str:
    fig, (ax1, ax2, ax3) = plot.figure(3, width=4.6)
    styles = {"same host": "-", "2 namespaces": "--", OFI: ":"}
    for where, res in results.items():
        ls = styles[where]
        sizes = sorted(res)
        cc = [res[s]["commcheck_us"] for s in sizes]
        osu = [res[s]["osu_us"] for s in sizes]
        ax1.plot(sizes, cc, "o" + ls, label=f"commcheck, {where}")
        ax1.plot(sizes, osu, "s" + ls, label=f"osu_latency, {where}")
        ax2.plot(sizes, [s / c for s, c in zip(sizes, cc, strict=True)], "o" + ls,
                 label=f"commcheck, {where}")
        ax2.plot(sizes, [s / o for s, o in zip(sizes, osu, strict=True)], "s" + ls,
                 label=f"osu ping-pong, {where}")
        ax2.plot(sizes, [res[s]["osu_bw_MBps"] for s in sizes], "^" + ls, alpha=0.6,
                 label=f"osu_bw, {where}")
        mid = [res[s]["ratio"] for s in sizes]
        spread = [[m - res[s]["ratio_min"] for s, m in zip(sizes, mid, strict=True)],
                  [res[s]["ratio_max"] - m for s, m in zip(sizes, mid, strict=True)]]
        ax3.errorbar(sizes, mid, yerr=spread, fmt="o" + ls, capsize=3,
                     label=f"{where} (paired median; bars: range of single rounds)")
    ax3.axhspan(1 - TOLERANCE, 1 + TOLERANCE, color="green", alpha=0.15, label="target band")
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("message size (bytes)")
        ax.legend(fontsize=7)
    ax1.set_yscale("log")
    ax2.set_yscale("log")
    ax1.set_ylabel("one-way latency (us, median of rounds)")
    ax2.set_ylabel("bandwidth (MB/s)")
    ax3.set_ylabel("commcheck / OSU time per message")
    return plot.save(fig, opts, "comm", "commcheck vs OSU-style ping-pong (paired rounds)")
