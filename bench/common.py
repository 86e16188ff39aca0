"""Shared plumbing for the benchmarks: paths, subprocess environment, machine facts, results."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from launcher.flavours import FLAVOURS

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MPIEXEC = str(Path(sys.executable).with_name("mpiexec"))


def mpiexec(ranks: int) -> list[str]:
    """`mpiexec` for `ranks` ranks on this host, exactly as the launcher runs one node with
    this Open MPI: slots declared (4 ranks on 2 cores start), and its defaults
    (`--bind-to none`, so concurrent 1-rank jobs do not both land on core 0)."""
    flavour = FLAVOURS["openmpi5"]
    return [*flavour.local(MPIEXEC, ranks), *flavour.default_args]


# What `make` exports (see the Makefile); set here too so `python -m bench` measures the same.
MAKE_EXPORTS = {"CHECKPOINT_DISABLE": "1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
                "PIPENV_VENV_IN_PROJECT": "1", "PIPENV_VERBOSITY": "-1"}


class BenchError(RuntimeError):
    """A benchmark command failed; the message carries its exit code and stderr tail."""


@dataclass(frozen=True)
class Options:
    """One run's settings: QUICK or full, and where things go."""

    quick: bool
    out: Path  # BENCHMARKS.md goes here
    plots: Path  # PNGs and results.json go here
    work: Path  # scratch (solver outputs, synth output in QUICK mode); removed afterwards
    numba_cache: Path
    make_test: bool = False  # time the whole `make test` (full runs)


@dataclass
class Row:
    """One figure of the summary table; ``met`` is None when reported but not judged."""

    name: str
    value: float | None
    unit: str
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


@dataclass
class Section:
    """What one benchmark measured: summary rows, detail lines, its plot and raw data."""

    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure: str | None = None
    data: dict = field(default_factory=dict)
    skipped: str | None = None

    def as_dict(self) -> dict:
        """JSON-ready form (results.json)."""
        return asdict(self)


def env(opts: Options, **extra: str) -> dict[str, str]:
    """Environment for benchmark subprocesses: no Batch/MPI leftovers, root allowed for mpiexec."""
    out = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_BATCH_", "OMPI_", "PMIX_", "PRTE_"))
           and k not in ("INPUT_PATH", "OUTPUT_PATH")}
    for k, v in MAKE_EXPORTS.items():
        out.setdefault(k, v)
    # Synth refuses to guess a region (stacks/config.py sdk_region); a benchmark's stack is
    # never deployed, so any region times the same.
    if "AWS_REGION" not in out and "AWS_DEFAULT_REGION" not in out:
        out["AWS_REGION"] = "us-east-1"
    out.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=str(REPO), NUMBA_CACHE_DIR=str(opts.numba_cache))
    out.update(extra)
    return out


def run(cmd: list[str], *, environ: dict[str, str], timeout: float,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion; BenchError (with the stderr tail) unless it exits 0."""
    try:
        proc = subprocess.run(cmd, env=environ, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(cmd)}: still running after {timeout:g} s") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchError(f"{' '.join(cmd)}: exit {proc.returncode}\n{tail}")
    return proc


T = TypeVar("T")


def again_after_failure(measure: Callable[[], T], what: str, failures: list[str],
                        tries: int = 2) -> T:
    """`measure()`, run again (at most `tries` more times) after a BenchError.

    A benchmark measures: one failed run on a shared 2-core machine is reported (each
    failure's tail lands in `failures`, which the part prints in its notes), not fatal. A
    failure that repeats still ends the part.
    """
    for _ in range(tries):
        try:
            return measure()
        except BenchError as e:
            failures.append(f"{what}: {str(e)[-300:]}")
    return measure()


def last_json(text: str) -> dict:
    """The JSON object on the last line of ``text`` that holds one (the solver's summary)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"no JSON summary line in output:\n{text[-2000:]}")


def best_median(samples: list[float]) -> tuple[float, float]:
    """(smallest, median) of timing samples."""
    return min(samples), statistics.median(samples)


def crossover_ratio(ratios: list[float]) -> float:
    """Median over AB/BA blocks of two consecutive rounds' ratios' geometric mean.

    Paired benchmarks alternate which side goes first; going first can be systematically
    faster or slower (a 4 MiB ping-pong on one host: 0.9 vs 1.2 here), so each block
    averages one round of each order before the median takes out bursts of other load.
    """
    blocks = [math.sqrt(a * b) for a, b in zip(ratios[::2], ratios[1::2], strict=False)]
    return statistics.median(blocks or ratios)


def judge(ratio: float | None, op: str, bound: float) -> bool | None:
    """Whether ``ratio op bound`` holds (None when nothing was measured)."""
    if ratio is None:
        return None
    return ratio <= bound if op == "<=" else ratio >= bound


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1/5/15-minute load average, so readers can see how busy the machine was."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_ticks() -> tuple[int, int] | None:
    """(stolen, total) CPU ticks since boot from /proc/stat; None where there is none."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> str:
    """Share of CPU time the hypervisor gave to other guests between two cpu_ticks()."""
    if before is None or after is None or after[1] <= before[1]:
        return "n/a"
    return f"{100 * (after[0] - before[0]) / (after[1] - before[1]):.1f} %"


def machine() -> dict[str, str]:
    """Facts about this machine and software that the table header shows."""
    import numba
    import numpy

    mpi = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True, check=False)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "memory_gib": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "mpi": (mpi.stdout.splitlines() or ["unknown"])[0],
        "kernel": platform.release(),
        "load_start": load_average(),
    }
