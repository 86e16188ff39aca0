"""Fixtures for the solver and launcher tests: an isolated environment and an mpiexec runner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MPIEXEC = Path(sys.executable).parent / "mpiexec"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
_CACHE: list[str] = []


# The Terraform round trip: `make test` runs it in a second pytest beside the rest
# (tests/run_all.sh).
ROUND_TRIP = REPO / "tests" / "deploy" / "test_round_trip.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--round-trip", choices=("only", "skip"), default=None,
                     help="run only the Terraform round trip (tests/deploy/test_round_trip.py), "
                          "or everything else (make test runs the two side by side)")


def _wanted(path: Path, config: pytest.Config) -> bool:
    """Whether --round-trip keeps PATH (a file, or a folder that may hold the round trip)."""
    choice = config.getoption("round_trip")
    if choice == "only":
        return path == ROUND_TRIP or path in ROUND_TRIP.parents
    return choice != "skip" or path != ROUND_TRIP


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """--round-trip: leave the other side's files unimported (none of their start-up cost)."""
    return None if _wanted(collection_path, config) else True


def pytest_configure(config: pytest.Config) -> None:
    """One throw-away numba cache for this session, set before any test module imports numba.
    The round-trip side of `make test` leaves snapshots to the other side: both get PYTEST_ARGS,
    --snapshot-update included, and only one process may write or prune a snapshot file."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        _CACHE.append(tempfile.mkdtemp(prefix="solver-tests-numba-"))
        os.environ["NUMBA_CACHE_DIR"] = _CACHE[0]
    if config.getoption("round_trip") == "only" and hasattr(config.option, "update_snapshots"):
        config.option.update_snapshots = False


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every botocore session of this process shares one model loader.

    The CLI under test makes a new boto3 session per run, and each new loader parses the
    service models again (~16 ms a file, a quarter of the jobs tests' time in this process).
    The models are read-only data that one session's clients already share.
    """
    import botocore.loaders
    import botocore.session

    loaders: dict[str | None, botocore.loaders.Loader] = {}

    def shared(search_path_string: str | None = None) -> botocore.loaders.Loader:
        # (each boto3.Session appends its data folder to the paths again: a path found once
        # is cached, so the repeats are only looked through on a miss)
        if search_path_string not in loaders:
            loaders[search_path_string] = botocore.loaders.create_loader(search_path_string)
        return loaders[search_path_string]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", shared)
        yield


# Fixtures that build or run the real image: a test using one is a container test, marked or not.
CONTAINER_FIXTURES = frozenset({"image"})
# Fixtures that run `python main.py` in a subprocess (a fresh ~20 s load of the provider
# bindings, then synth): a test using one is slow, marked or not. (Other projects are
# synthesized in this process: synth_project.)
SLOW_FIXTURES = frozenset({"entry_point"})
# Fixtures that start ranks under mpiexec (run_solver runs through run_python): an MPI test.
MPI_FIXTURES = frozenset({"run_python"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep --round-trip's side; mark `containers` every test that needs the built image, `slow`
    every one that needs a subprocess synth and `mpi` every one that starts mpiexec (`make
    test-fast` skips them)."""
    if config.getoption("round_trip"):
        # files named on the command line are collected whatever pytest_ignore_collect says
        kept = [item for item in items if _wanted(item.path, config)]
        config.hook.pytest_deselected(items=[i for i in items if not _wanted(i.path, config)])
        items[:] = kept
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if CONTAINER_FIXTURES & used:
            item.add_marker(pytest.mark.containers)
        if SLOW_FIXTURES & used:
            item.add_marker(pytest.mark.slow)
        if MPI_FIXTURES & used:
            item.add_marker(pytest.mark.mpi)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's numba cache."""
    for path in _CACHE:
        shutil.rmtree(path, ignore_errors=True)


def synth_project(out: Path, settings: dict[str, str], drop: tuple[str, ...] = ()) -> Path:
    """`make synth` in OUT (main.main, as `python main.py` runs it) with SETTINGS over this
    environment less DROP; returns the stack's Terraform JSON file. In this process: the
    provider bindings load once a session (~20 s each time a subprocess loads them)."""
    import main

    shutil.copy(REPO / "cdktf.json", out)
    with pytest.MonkeyPatch.context() as patch:
        for key in drop:
            patch.delenv(key, raising=False)
        for key, value in {"CHECKPOINT_DISABLE": "1", **settings}.items():
            patch.setenv(key, value)
        patch.chdir(out)
        assert main.main() == 0
    return out / "cdktf.out" / "stacks" / "mnp-batch" / "cdk.tf.json"


@dataclass
class Run:
    """A finished solver process."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        """The JSON object on the last stdout line."""
        return json.loads(self.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def clean_env() -> dict[str, str]:
    """Environment for subprocesses of ours: the session numba cache, no AWS or MPI job ids."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_BATCH_", "OMPI_", "PMIX_", "PRTE_"))
           and k not in ("INPUT_PATH", "OUTPUT_PATH")}
    env.update(NUMBA_CACHE_DIR=os.environ["NUMBA_CACHE_DIR"], PYTHONPATH=str(REPO),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


@pytest.fixture(scope="session")
def solver_env(clean_env: dict[str, str]) -> dict[str, str]:
    """clean_env with the solver's kernels compiled into the session numba cache (a minute on a
    busy machine: tests that start no solver take clean_env)."""
    env = dict(clean_env)
    # compile the 2-D and 3-D kernels once so concurrent ranks only load them
    subprocess.run([sys.executable, "-c", "from solver import stencil; stencil.warm_up(2); "
                    "stencil.warm_up(3)"], env=env, check=True, cwd=REPO, timeout=300)
    return env


@pytest.fixture(scope="session")
def mpi_command() -> Callable[[int, list[str]], list[str]]:
    """Builds ``mpiexec -n RANKS python -m solver ARGS`` with the venv's Open MPI."""

    def _command(ranks: int, args: list[str]) -> list[str]:
        return [str(MPIEXEC), "--oversubscribe", "-n", str(ranks), sys.executable, "-m", "solver",
                *args]

    return _command


@pytest.fixture
def run_python(solver_env: dict[str, str]) -> Callable[..., Run]:
    """Run ``mpiexec -n RANKS python ARGS`` (e.g. a script path, or ``-m solver ...``)."""

    def _run(args: list[str], ranks: int = 1, env: dict[str, str] | None = None,
             timeout: float = 120) -> Run:
        cmd = [str(MPIEXEC), "--oversubscribe", "-n", str(ranks), sys.executable, *args]
        proc = subprocess.run(cmd, env={**solver_env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout, cwd=REPO)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return _run


@pytest.fixture
def heat_here(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run the heat command in this process on COMM_SELF (no mpiexec start-up cost)."""
    from mpi4py import MPI

    from solver.heat import run

    def _run(args: list[str], env: dict[str, str] | None = None) -> Run:
        capsys.readouterr()
        saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
        try:
            code = run(MPI.COMM_SELF, args, env or {})
        finally:  # the solver keeps its stop handlers for the life of its process
            for s, handler in saved.items():
                signal.signal(s, handler)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return _run


@pytest.fixture
def run_solver(run_python: Callable[..., Run]) -> Callable[..., Run]:
    """Run ``python -m solver ARGS`` under mpiexec and return its outcome."""

    def _run(args: list[str], ranks: int = 1, env: dict[str, str] | None = None,
             timeout: float = 120) -> Run:
        return run_python(["-m", "solver", *args], ranks=ranks, env=env, timeout=timeout)

    return _run
