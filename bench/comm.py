"""MPI communication: `solver commcheck` against an OSU-style ping-pong, on 1 host and 2 netns
(Open MPI's TCP BTL, and the OFI path over libfabric's tcp provider that MNP_NETWORK=ofi-tcp
forces: the EFA code path minus the device)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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
# Each place's colour in every panel of the figure.
PLACES = {"same host": "tab:blue", "2 namespaces": "tab:orange", OFI: "tab:green"}
FIGURE_TITLE = "commcheck vs OSU-style ping-pong (paired rounds)"


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
    sec.figure = plot.save(draw(sec.data), opts, "comm", FIGURE_TITLE)
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


def _quartiles(figures: dict) -> tuple[float, float]:
    """The middle half of the single rounds' commcheck/OSU ratios (first and third quartile)."""
    ratios = [c / o for c, o in zip(figures["commcheck_rounds_us"], figures["osu_rounds_us"],
                                    strict=True)]
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, q3


def _keyed(ax, styles: dict[str, dict]) -> None:
    """The style legend under ``ax``: one black sample per program (colour is the place's)."""
    handles = [Line2D([], [], color="black", label=name, **style)
               for name, style in styles.items()]
    plot.legend_below(ax, handles=handles)


def draw(data: dict) -> Figure:
    """The figure from ``Section.data``: latency, bandwidth, and commcheck/OSU per place."""
    places = [w for w in PLACES if w in data]
    fig, (ax1, ax2, ax3) = plot.figure(3, width=4.6, height=4.6)
    latency = {"commcheck": {"marker": "o", "ls": "-"},
               "osu_latency": {"marker": "s", "ls": "none", "mfc": "none"}}
    bandwidth = {"commcheck ping-pong": {"marker": "o", "ls": "-"},
                 "osu_bw, streaming": {"marker": "^", "ls": "--", "mfc": "none"}}
    ratio = {"paired median": {"marker": "o", "ls": "-"},
             "middle half of single rounds": {"marker": "|", "ls": "none", "ms": 12}}
    for k, where in enumerate(places):
        res = {int(size): figures for size, figures in data[where].items()}
        sizes = sorted(res)
        colour = PLACES[where]
        for name, values, style, ax in (
            ("commcheck", [res[s]["commcheck_us"] for s in sizes], latency, ax1),
            ("osu_latency", [res[s]["osu_us"] for s in sizes], latency, ax1),
            ("commcheck ping-pong", [s / res[s]["commcheck_us"] for s in sizes], bandwidth, ax2),
            ("osu_bw, streaming", [res[s]["osu_bw_MBps"] for s in sizes], bandwidth, ax2),
        ):
            ax.plot(sizes, values, color=colour, label=f"{name}{plot.KEY_SEP}{where}",
                    **style[name])
        # Side by side per size (a quarter of a power of two apart), so no place hides another.
        shifted = [s * 2 ** (0.25 * (k - (len(places) - 1) / 2)) for s in sizes]
        ax3.plot(shifted, [res[s]["ratio"] for s in sizes], color=colour, marker="o",
                 label=f"paired median{plot.KEY_SEP}{where}")
        quart = [_quartiles(res[s]) for s in sizes]
        ax3.vlines(shifted, [q[0] for q in quart], [q[1] for q in quart], color=colour, lw=1.5,
                   alpha=0.7)
    band = ax3.axhspan(1 - TOLERANCE, 1 + TOLERANCE, color="green", alpha=0.12,
                       label=f"target 1 +- {TOLERANCE}")
    _keyed(ax1, latency)
    _keyed(ax2, bandwidth)
    plot.legend_below(ax3, handles=[
        Line2D([], [], color="black", label=name, **style) for name, style in ratio.items()
    ] + [band])
    fig.legend(handles=[Line2D([], [], color=PLACES[w], lw=3, label=w) for w in places],
               loc="outside lower center", ncols=len(places), fontsize=9, frameon=False,
               title="colour: where the two ranks run", title_fontsize=9)
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("message size (bytes)")
    ax1.set_yscale("log")
    ax2.set_yscale("log")
    ax3.set_xlim(ax1.get_xlim())  # the same size ticks as its neighbours despite the shift
    low, high = ax3.get_ylim()
    if high > 2 * max(low, 0.01):
        # A loaded machine's single rounds reach 100x: on a log scale the medians near 1 stay
        # readable beside them (and a ratio and its inverse are equally far from 1).
        ax3.set_yscale("log")
    ax1.set_ylabel("one-way latency (us, median of rounds)")
    ax1.set_title("latency", fontsize=10)
    ax2.set_ylabel("bandwidth (MB/s)")
    ax2.set_title("bandwidth", fontsize=10)
    ax3.set_ylabel("commcheck / OSU time per message")
    ax3.set_title("does commcheck agree with OSU?", fontsize=10)
    return fig
