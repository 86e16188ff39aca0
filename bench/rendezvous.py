"""The main node's rendezvous at Batch's scale: 999 authenticated children admitted at once.

Runs `bench.rendezvous_sim` (the launcher's real server in its own process, the launcher's
real client as each child) at several child counts, each run with one impostor holding
another secret's key. Per count, the median over rounds of: seconds from the first child's
connect and from the server listening to every child admitted, the server process's CPU
time and peak memory growth, and then the seconds and server CPU to hand every child the
list of all (what Open MPI's spawn tree needs before `mpiexec`). A least-squares line
through the medians gives what one more node costs. Timings are printed, never asserted; a
run that does not admit every child with its own index, or admits the impostor, is a
failure.
"""

from __future__ import annotations

import json
import statistics

from bench import plot
from bench.common import BenchError, Options, Row, Section, again_after_failure
from jobs.validate import MAX_NODES

# QUICK too ends at 999: the target is about Batch's largest job, and one run takes seconds.
CHILDREN = {True: (50, 200, MAX_NODES - 1), False: (125, 250, 500, MAX_NODES - 1)}
TARGET_S = 5.0  # every child of the largest job admitted
IMPOSTOR = 1  # claims a real child's index with a key of another secret
# The peer list is n lines to each of n children, decoded here by the simulated children on
# this machine's cores (at 999: ~1M lines, minutes on 2 cores): measured up to this many.
PEER_LIST_UP_TO = 500
FIELDS = ("first_connect_to_all_s", "listen_to_all_s", "cpu_s", "reconnects", "rss_peak_mib",
          "threads")
PEER_FIELDS = ("peer_list_s", "peer_list_cpu_s")


def line_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through the points."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


def checked(n: int, run: dict) -> dict[str, float]:
    """The figures of one run; BenchError unless children 1..n and only they got in."""
    if sorted(run["peers"]) != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(run["peers"]))
        raise BenchError(f"{n} children: not admitted: {missing[:10]}")
    impostor = run["ends"].get(f"wrong-key {IMPOSTOR}", "")
    if not impostor.startswith("refused: main node rejected this node: bad credentials"):
        raise BenchError(f"{n} children: the wrong-key child was not refused: {impostor!r}")
    if run["peer_list_missing"]:
        raise BenchError(f"{n} children: no peer list installed by {run['peer_list_missing']}")
    ended = {k: v for k, v in run["ends"].items() if not k.startswith("wrong-key")}
    if set(ended.values()) != {"exit 0"}:
        raise BenchError(f"{n} children: not all told to exit 0: {set(ended.values())}")
    return {**{k: run[k] for k in FIELDS + (PEER_FIELDS if run["peer_list"] else ())},
            "rss_growth_mib": run["rss_peak_mib"] - run["rss_before_mib"]}


def _once(n: int) -> dict[str, float]:
    from bench.rendezvous_sim import simulate

    try:
        return checked(n, simulate(n, wrong_key=(IMPOSTOR,), peer_list=n <= PEER_LIST_UP_TO))
    except RuntimeError as e:
        raise BenchError(str(e)) from None


def measure(opts: Options) -> Section:
    """Medians per child count, the fitted cost of one more node, the 999-child verdict."""
    sec = Section("rendezvous", "Rendezvous at Batch's scale (simulated children)")
    counts = CHILDREN[opts.quick]
    reps = 1 if opts.quick else 3
    runs: dict[int, list[dict[str, float]]] = {}
    retries: list[str] = []
    for _ in range(reps):
        for n in counts:
            runs.setdefault(n, []).append(again_after_failure(
                lambda n=n: _once(n), f"{n} children", retries))
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    fits = {k: line_fit(list(counts), [med[n][k] for n in counts])
            for k in ("first_connect_to_all_s", "cpu_s", "rss_growth_mib")}
    for n in counts:
        m = med[n]
        sec.rows.append(Row(
            f"{n} children: first connect to all admitted (median of {reps})",
            m["first_connect_to_all_s"], "s",
            f"from listening {m['listen_to_all_s']:.2f} s; server CPU {m['cpu_s']:.2f} s, "
            f"peak RSS +{m['rss_growth_mib']:.1f} MiB ({m['rss_peak_mib']:.0f} MiB); "
            f"reconnects {m['reconnects']:.0f}" + (
                f"; then the peer list to all {m['peer_list_s']:.2f} s, server CPU "
                f"{m['peer_list_cpu_s']:.2f} s" if "peer_list_s" in m else "")))
    per_node = {k: slope for k, (_, slope) in fits.items()}
    sec.rows.append(Row(
        "one more node (slope of the medians)", per_node["first_connect_to_all_s"] * 1000,
        "ms", f"server CPU {per_node['cpu_s'] * 1000:.2f} ms, memory "
        f"{per_node['rss_growth_mib'] * 1024:.0f} KiB"))
    listed = max(n for n in counts if "peer_list_cpu_s" in med[n])
    # n lines to each of n children: the server's share grows with n^2
    pair = med[listed]["peer_list_cpu_s"] / listed**2
    largest = MAX_NODES - 1
    sec.rows.append(Row(
        f"peer list to {largest} children, server CPU (x n^2 from {listed})",
        pair * largest**2, "s", f"{pair * 1e6:.2f} us per child per listed child"))
    per_node["peer_list_cpu_per_pair_s"] = pair
    value = med[largest]["first_connect_to_all_s"]
    sec.rows.append(Row(f"{largest} children admitted, first connect to all", value, "s",
                        f"median of {reps}", value, f"<= {TARGET_S:g} s",
                        value <= TARGET_S))
    sec.data = {"runs": {str(n): rs for n, rs in runs.items()}, "retries": retries,
                "per_node": per_node}
    sec.notes.append(
        "The launcher's own server (`launcher.server.Server`, heartbeat settings at their "
        "defaults, log lines at INFO to stderr as on a node) in one process; the children, "
        "each a thread running the launcher's own `Client` (same key derivation, HMAC over "
        "both nonces, messages and retries as a child node, `ready` sent at once instead of "
        "after starting sshd), in 4 processes, all made before the server listens and let "
        "go together; plus one child holding another secret's key, refused every run. All on "
        "this machine's cores, so the children's own CPU competes with the server's: on "
        "Batch each child is a machine of its own. Raw rounds: " + json.dumps(sec.data["runs"])
        + (f". Runs repeated after a failure: {json.dumps(retries)}" if retries else ""))
    sec.figure = _figure(opts, list(counts), med)
    return sec


def _figure(opts: Options, counts: list[int], med: dict) -> str:
    fig, (ax1, ax2) = plot.figure(2, width=4.5)
    ax1.plot(counts, [med[n]["first_connect_to_all_s"] for n in counts], "o-",
             label="first connect to all admitted")
    ax1.plot(counts, [med[n]["listen_to_all_s"] for n in counts], "s--",
             label="server listening to all admitted")
    ax1.axhline(TARGET_S, color="tab:red", linestyle="--", linewidth=1)
    ax1.set_xlabel("children")
    ax1.set_ylabel("seconds")
    plot.legend_below(ax1)
    ax2.plot(counts, [med[n]["cpu_s"] for n in counts], "o-", label="server CPU (s)")
    ax2.plot(counts, [med[n]["rss_growth_mib"] / 100 for n in counts], "s--",
             label="server peak RSS growth (100 MiB)")
    ax2.set_xlabel("children")
    plot.legend_below(ax2)
    return plot.save(fig, opts, "rendezvous",
                     f"Rendezvous: children admitted at once (target <= {TARGET_S:g} s, red)")
