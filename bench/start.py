"""Job start cost in the real image: container start to the solver's first step.

Cold: numba compiles every kernel (an empty NUMBA_CACHE_DIR, as before the image carried
compiled kernels). Warm: the kernels compiled into the image at build time. 1 and 4 containers
(4 nodes share this machine's 2 cores, so their imports and compiles queue behind each other).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from bench import plot
from bench.common import PYTHON, REPO, BenchError, Options, Row, Section, env, judge, run

TARGET_WARM_S = 3.0
STEP1 = "step 1/"


def stack_config(opts: Options) -> dict:
    """The stack as `make synth` writes it: the synth part's (QUICK), else made here."""
    from jobs.outputs import synthesized_config

    for root in (opts.work / "synth", opts.work / "start-synth"):
        if (root / "cdktf.out" / "manifest.json").is_file():
            return synthesized_config(root)
    root = opts.work / "start-synth"
    root.mkdir(parents=True, exist_ok=True)
    run([PYTHON, str(REPO / "main.py")], environ=env(opts), timeout=600, cwd=root)
    return synthesized_config(root)


def _job(config: dict, nodes: int):  # noqa: ANN202 - emulator types stay out of bench's imports
    from emulator.jobdef import access_point_owner, apply_request, multinode_definition
    from jobs.request import JobSpec, submit_request

    definition = multinode_definition(config)
    spec = JobSpec(name="bench-start", queue="local", definition=definition[
        "jobDefinitionName"], nodes=nodes, vcpus=1, memory=1024,
        output_path="/mnt/efs/out", command=("python", "-m", "solver", "heat", "--nx", "65",
                                             "--ny", "65", "--steps", "2", "--log-every", "1",
                                             "--no-png"))
    return apply_request(definition, submit_request(spec), access_point_owner(config))


def _once(config: dict, image: str, nodes: int, cold: bool) -> float:
    """Seconds from starting the main node's container to its rank 0's first step."""
    from emulator.containers import ContainerJob

    env = {"NUMBA_CACHE_DIR": "/tmp/numba-cold"} if cold else {}
    with tempfile.TemporaryDirectory(prefix="bench-start-") as scratch:
        with ContainerJob(_job(config, nodes), image, efs_dir=Path(scratch) / "efs",
                          log_dir=Path(scratch) / "logs", max_delay=0.0, env=env) as job:
            began = time.time()
            job.start()
            if job.wait(600) != 0:
                raise BenchError(f"start benchmark job failed: {job.output(0)[1][-800:]}")
            lines = job.timed_lines(job.job.main_node)
    first = [t for t, text in lines if STEP1 in text]
    if not first:
        raise BenchError("the solver logged no first step")
    return first[0] - began


def bench_image(sec: Section) -> str | None:
    """The image built from this checkout, or None with `sec.skipped` saying why not."""
    try:
        from emulator import engine

        engine.ensure_running()
        return engine.build_image(f"mnp-solver:bench-{engine.context_digest()}")
    except Exception as exc:  # noqa: BLE001 - no engine here: say why, keep the other parts
        sec.skipped = f"no container engine: {exc}"
        return None


def measure(opts: Options) -> Section:
    """Cold and warm starts at 1 and 4 containers, in turns; medians."""
    sec = Section("start", "Job start in the real image")
    image = bench_image(sec)
    if image is None:
        return sec
    config = stack_config(opts)
    reps = 1 if opts.quick else 3
    results: dict[str, list[float]] = {}
    for _ in range(reps):
        for nodes in (1, 4):
            for cold in (True, False):
                key = f"{nodes}-{'cold' if cold else 'warm'}"
                results.setdefault(key, []).append(_once(config, image, nodes, cold))
    for nodes in (1, 4):
        warm = statistics.median(results[f"{nodes}-warm"])
        cold = statistics.median(results[f"{nodes}-cold"])
        sec.rows.append(Row(f"{nodes} container(s): start to first step, warm (median of "
                            f"{reps})", warm, "s", f"cold {cold:.1f} s", warm / cold,
                            f"warm <= {TARGET_WARM_S:g} s", judge(warm, "<=", TARGET_WARM_S)))
    sec.data = {"seconds": results}
    sec.figure = _figure(opts, {k: statistics.median(v) for k, v in results.items()})
    sec.notes.append(
        "From `docker run` of the main node (children at once, max_delay 0) to the engine's "
        "timestamp of rank 0's `step 1/` line: launcher, rendezvous, mpiexec and ssh starts, "
        "Python and numba imports, kernel load or compile, the first step. Cold sets "
        "NUMBA_CACHE_DIR to an empty directory. Raw seconds: " + json.dumps(results))
    return sec


def _figure(opts: Options, medians: dict[str, float]) -> str:
    fig, (ax,) = plot.figure(1, width=5.0)
    keys = ["1-cold", "1-warm", "4-cold", "4-warm"]
    names = ["1 node\ncold", "1 node\nwarm", "4 nodes\ncold", "4 nodes\nwarm"]
    colours = ["grey", "tab:blue", "grey", "tab:blue"]
    plot.annotate_bars(ax, ax.bar(names, [medians[k] for k in keys], color=colours), "{:.1f}")
    ax.axhline(TARGET_WARM_S, color="tab:red", linestyle="--", linewidth=1)
    ax.set_ylabel("container start to first step (s)")
    ax.set_title(f"warm target <= {TARGET_WARM_S:g} s (dashed)")
    return plot.save(fig, opts, "start", "Job start: kernels compiled at start vs in the image")
