"""tests/run_all.sh (`make test`): the round trip beside the rest, both exit codes honoured.

A stand-in for Python plays both pytest runs: it records its arguments and exits with the code
the test gives each side, so each combination takes a second, not a suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN_ALL = REPO / "tests" / "run_all.sh"
# Each side writes its arguments to <side>.args, sleeps <SIDE>_SLEEP s, exits with <SIDE>_RC.
FAKE_PYTHON = """#!/bin/sh
case "$3" in
  --round-trip=only) side=trip ;;
  *) side=rest ;;
esac
echo "$@" > "$side.args"
echo "$side says hello"
eval "sleep \\${${side}_SLEEP:-0}; exit \\${${side}_RC:-0}"
"""


def _fake(tmp_path: Path) -> Path:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return fake


def _run(tmp_path: Path, rest: int, trip: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "rest_RC": str(rest), "trip_RC": str(trip)}
    return subprocess.run(["bash", str(RUN_ALL), str(_fake(tmp_path)), *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)


def test_both_sides_get_the_arguments_and_the_round_trip_prints_after(tmp_path: Path) -> None:
    proc = _run(tmp_path, 0, 0, "-x", "-k", "foo")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rest.args").read_text().split() == [
        "-m", "pytest", "--round-trip=skip", "-x", "-k", "foo"]
    assert (tmp_path / "trip.args").read_text().split() == [
        "-m", "pytest", "--round-trip=only", "-x", "-k", "foo"]
    lines = proc.stdout.splitlines()
    assert lines.index("trip says hello") > lines.index("rest says hello")
    assert lines[-1] == "=== make test: the rest exited 0, the round trip 0 (pytest's codes) ==="


# (rest, round trip) -> status. pytest's 5 is "no tests collected": a side whose arguments
# select none of its tests (PYTEST_ARGS=tests/stacks) passes, unless neither side has one
# (docs.pytest.org/en/stable/reference/exit-codes.html).
@pytest.mark.parametrize(("rest", "trip", "status"), [
    (1, 0, 1), (0, 1, 1), (2, 1, 2), (0, 5, 0), (5, 0, 0), (5, 5, 5), (5, 1, 1)])
def test_the_status_is_the_rests_else_the_round_trips(tmp_path: Path, rest: int, trip: int,
                                                     status: int) -> None:
    assert _run(tmp_path, rest, trip).returncode == status


def test_ctrl_c_stops_both_sides(tmp_path: Path) -> None:
    env = {**os.environ, "rest_SLEEP": "60", "trip_SLEEP": "60"}
    # A terminal's Ctrl-C: SIGINT to the foreground process group. The round-trip side is in a
    # group of its own (and, as a script's background job, ignores SIGINT): the script stops it.
    proc = subprocess.Popen(["bash", str(RUN_ALL), str(_fake(tmp_path))], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 20
        while not ((tmp_path / "rest.args").exists() and (tmp_path / "trip.args").exists()):
            assert time.monotonic() < deadline, "the two sides did not start"
            time.sleep(0.05)
        assert len(_sleepers(tmp_path)) == 2
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) != 0
        time.sleep(0.5)
        assert _sleepers(tmp_path) == []
    finally:  # a failed check leaves nothing behind either
        for pid in _sleepers(tmp_path):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


def _sleepers(tmp_path: Path) -> list[int]:
    """The `sleep 60` processes whose working directory is TMP_PATH (the two sides')."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if ((entry / "cmdline").read_bytes() == b"sleep\x0060\x00"
                    and (entry / "cwd").resolve() == tmp_path.resolve()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
