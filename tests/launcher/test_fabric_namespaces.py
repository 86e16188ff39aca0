"""MNP_NETWORK on emulated Batch nodes (namespaces): OFI over tcp runs, no EFA fails fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from emulator.namespaces import Emulation
from tests.launcher.test_namespaces import (
    COMPARED,
    _env,
    _finished_cleanly,
    _heat,
    _summary,
    pytestmark,  # noqa: F401 - the same skip and marker: namespaces and sshd needed
)

REPO = Path(__file__).resolve().parents[2]


class _Nodes(Emulation):
    """Three nodes; `only` adds variables to one node's environment (a node unlike the rest)."""

    def __init__(self, tmp_path: Path, solver_env: dict[str, str], extra: dict[str, str],
                 only: dict[int, dict[str, str]] | None = None, ranks: int = 1,
                 **kw: object) -> None:
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        (tmp_path / "efs").mkdir(exist_ok=True)
        super().__init__(3, shared_dir=tmp_path / "efs", log_dir=tmp_path,
                         env={**_env(solver_env, state, ranks), **extra}, max_delay=1.0, **kw)
        self.only = only or {}

    def node_env(self, index: int) -> dict[str, str]:
        return {**super().node_env(index), **self.only.get(index, {})}


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if " ERROR " in line]


def test_ofi_tcp_runs_heat_across_three_nodes_like_one_process(tmp_path: Path, solver_env,
                                                               run_solver) -> None:
    ref = run_solver(_heat(tmp_path / "ref", 60)[3:], env={"AWS_BATCH_JOB_ID": "ref#0"})
    assert ref.returncode == 0, ref.stderr
    with _Nodes(tmp_path, solver_env, {"MNP_NETWORK": "ofi-tcp"}, job_id="ofi-heat") as emu:
        emu.start(_heat(emu.shared_dir, 60), cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        codes = _finished_cleanly(emu, tmp_path)
        summary = _summary(emu)
        err = emu.output(0)[1]
    assert codes == {0: 0, 1: 0, 2: 0}
    assert "forcing --mca pml cm --mca mtl ofi --mca mtl_ofi_provider_include tcp" in err
    assert (summary["ranks"], summary["nodes"]) == (3, 3)
    for key in COMPARED:
        assert summary[key] == pytest.approx(ref.summary[key], rel=1e-12, abs=0), key


def test_ofi_tcp_commcheck_reaches_every_rank(tmp_path: Path, solver_env) -> None:
    with _Nodes(tmp_path, solver_env, {"MNP_NETWORK": "ofi-tcp"}, ranks=2) as emu:
        emu.start(["python", "-m", "solver", "commcheck", "--sizes", "8,65536",
                   "--iterations", "5", "--timeout", "30"], cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        _finished_cleanly(emu, tmp_path)
        summary = _summary(emu)
    assert summary["ok"] and summary["allreduce_ok"] and summary["unreachable"] == []
    assert (summary["ranks"], summary["nodes"]) == (6, 3)


def _refused(emu: _Nodes, tmp_path: Path) -> tuple[float, dict, str, str]:
    """Run a job that must end 4 before any rank: seconds taken, exit codes, main's output."""
    began = time.monotonic()
    # Batch ends the children when the main node exits; here a child still looking for the
    # main node gives up after 5 s.
    emu.start(_heat(emu.shared_dir, 10), launcher_args=["--rendezvous-timeout", "5"], cwd=REPO)
    assert emu.wait(30) == 4
    took = time.monotonic() - began
    codes = _finished_cleanly(emu, tmp_path)
    return (took, codes, *emu.output(0))


def test_efa_on_nodes_without_efa_exits_4_within_seconds_starting_no_rank(
        tmp_path: Path, solver_env) -> None:
    with _Nodes(tmp_path, solver_env, {"MNP_NETWORK": "efa"}) as emu:
        took, codes, out, err = _refused(emu, tmp_path)
        child_errors = [_errors(emu.output(i)[1]) for i in (1, 2)]
    assert took < 5, took
    assert out == ""  # no rank printed anything: none started
    assert "mpiexec with" not in err  # the line run_main logs as it starts mpiexec
    [line] = _errors(err)
    assert f"node 0 ({emu.nodes[0].ip}, host {emu.nodes[0].hostname}) cannot run " \
           "MNP_NETWORK=efa: no /dev/infiniband/uverbs* device" in line
    assert codes == {0: 4, 1: 4, 2: 4}
    for i, errors in zip((1, 2), child_errors, strict=True):
        assert any(f"node {i} ({emu.nodes[i].ip}, host {emu.nodes[i].hostname}) cannot run "
                   "MNP_NETWORK=efa" in e for e in errors), errors


def test_the_main_node_ends_the_job_when_a_child_lacks_the_fabric(tmp_path: Path,
                                                                 solver_env) -> None:
    # Only node 2 is asked for EFA: the main node and node 1 pass their (ofi-tcp) checks.
    with _Nodes(tmp_path, solver_env, {"MNP_NETWORK": "ofi-tcp"},
                only={2: {"MNP_NETWORK": "efa"}}) as emu:
        took, codes, out, err = _refused(emu, tmp_path)
        node2 = emu.nodes[2]
    assert took < 8, took  # the children start up to 1 s apart
    assert out == "" and "mpiexec with" not in err
    [line] = _errors(err)
    assert f"ERROR node 2 ({node2.ip}, host {node2.hostname}) cannot run MNP_NETWORK=efa: " \
        in line  # the child's own line, repeated by the main node
    assert "no /dev/infiniband/uverbs* device" in line and "exit 4, retryable" in line
    assert (codes[0], codes[2]) == (4, 4)
    # Node 1 ended too: dismissed (0), or it came after the job had ended and found no main
    # node (3), or lost it mid-handshake (4).
    assert codes[1] in (0, 3, 4)


def test_fi_and_ompi_mca_variables_of_the_definition_reach_remote_ranks(tmp_path: Path,
                                                                       solver_env) -> None:
    extra = {"FI_MNP_TEST_VALUE": "fi-42", "OMPI_MCA_mpi_show_mca_params_file": "mnp-43"}
    code = ("import json, os, socket; from mpi4py import MPI; MPI.COMM_WORLD.Barrier(); "
            "print(json.dumps([socket.gethostname(), os.environ.get('FI_MNP_TEST_VALUE'), "
            "os.environ.get('OMPI_MCA_mpi_show_mca_params_file')]), flush=True)")
    with _Nodes(tmp_path, solver_env, extra) as emu:
        emu.start(["python", "-c", code], cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        _finished_cleanly(emu, tmp_path)
        rows = [json.loads(line) for line in emu.output(0)[0].splitlines()]
        hosts = {n.hostname for n in emu.nodes}
    assert {row[0] for row in rows} == hosts
    assert all(row[1:] == ["fi-42", "mnp-43"] for row in rows), rows
