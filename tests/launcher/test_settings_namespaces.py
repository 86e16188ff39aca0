"""Settings and child failures on emulated Batch nodes: MNP_SSH_PORT=22 runs, a child that
fails getting ready ends the attempt at once."""

from __future__ import annotations

import time
from pathlib import Path

from emulator.namespaces import Emulation
from tests.launcher.test_namespaces import (
    _env,
    _finished_cleanly,
    _summary,
    pytestmark,  # noqa: F401 - the same skip and marker: namespaces and sshd needed
)

REPO = Path(__file__).resolve().parents[2]
COMMCHECK = ["python", "-m", "solver", "commcheck", "--sizes", "8", "--iterations", "3",
             "--timeout", "30"]
# ssh-keygen that fails on node 2 only (a full disk, say), after the main node welcomed it.
FAILING_KEYGEN = """#!/bin/sh
if [ "$AWS_BATCH_JOB_NODE_INDEX" = 2 ]; then
    echo "ssh-keygen: No space left on device (emulated)" >&2
    exit 1
fi
exec /usr/bin/ssh-keygen "$@"
"""


def _nodes(tmp_path: Path, solver_env: dict[str, str], **extra: str) -> Emulation:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (tmp_path / "efs").mkdir(exist_ok=True)
    return Emulation(3, shared_dir=tmp_path / "efs", log_dir=tmp_path,
                     env={**_env(solver_env, state), **extra}, max_delay=1.0)


def test_ssh_port_22_runs_across_three_nodes(tmp_path: Path, solver_env) -> None:
    # ssh looks a port-22 host up in known_hosts by its plain address, not [ip]:22.
    with _nodes(tmp_path, solver_env, MNP_SSH_PORT="22") as emu:
        emu.start(COMMCHECK, cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        codes = _finished_cleanly(emu, tmp_path)
        summary = _summary(emu)
        err = emu.output(0)[1]
    assert codes == {0: 0, 1: 0, 2: 0}
    assert summary["ok"] and summary["nodes"] == 3
    assert "Host key verification failed" not in err


def test_a_child_that_fails_getting_ready_ends_the_attempt_at_once(tmp_path: Path,
                                                                   solver_env) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ssh-keygen").write_text(FAILING_KEYGEN)
    (fake / "ssh-keygen").chmod(0o755)
    with _nodes(tmp_path, solver_env, PATH=f"{fake}:{solver_env['PATH']}") as emu:
        began = time.monotonic()
        # Before, the main node waited out this timeout (600 s on Batch) and exited 3.
        emu.start(COMMCHECK, launcher_args=["--rendezvous-timeout", "20"], cwd=REPO)
        code = emu.wait(60)
        took = time.monotonic() - began
        codes = _finished_cleanly(emu, tmp_path)
        out, err = emu.output(0)
        node2 = emu.nodes[2]
    assert code == 1, err  # the child's own code: a launcher failure, which Batch does not retry
    assert took < 10, took
    assert out == "" and "mpiexec with" not in err  # no rank started
    [line] = [x for x in err.splitlines() if " ERROR " in x]
    assert line.endswith(f"node 2 ({node2.ip}) failed before it was ready: ssh-keygen failed "
                         "(exit 1): ssh-keygen: No space left on device (emulated): ending the "
                         "job (exit 1)")
    assert codes[2] == 1
    assert codes[1] in (0, 3, 4)  # dismissed, or came after the end and found no main node
