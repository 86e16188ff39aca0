"""Spot gangs on emulated nodes: array children of one job form one MPI world through the
shared directory, or give up within their bound naming who never came."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from emulator.namespaces import Emulation, unavailable_reason
from launcher import contract

REPO = Path(__file__).resolve().parents[2]
_WHY = unavailable_reason() or (
    None if Path("/usr/sbin/sshd").exists()
    else "sshd is not installed (apt-get install openssh-server openssh-client)")
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_WHY is not None, reason=f"{_WHY}")]


def _gang(tmp_path: Path, solver_env: dict[str, str], **env: str) -> Emulation:
    state, efs = tmp_path / "state", tmp_path / "efs"
    state.mkdir(exist_ok=True)
    efs.mkdir(exist_ok=True)
    return Emulation(3, gang=True, shared_dir=efs, log_dir=tmp_path, max_delay=1.0, env={
        "NUMBA_CACHE_DIR": solver_env["NUMBA_CACHE_DIR"], "PYTHONPATH": str(REPO),
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "MNP_RANKS_PER_NODE": "1", "MNP_STATE_DIR": str(state),
        "MNP_HEARTBEAT_INTERVAL": "0.5", "MNP_HEARTBEAT_TIMEOUT": "5", **env})


def _heat(out: Path, steps: int) -> list[str]:
    return ["python", "-m", "solver", "heat", "--nx", "67", "--ny", "45", "--steps", str(steps),
            "--output-path", str(out), "--no-png"]


def _stamp(err: str, pattern: str) -> float:
    """Seconds of the day of the first log line matching `pattern` ([node ...] HH:MM:SS.mmm)."""
    found = re.search(r"\] (\d\d):(\d\d):(\d\d\.\d{3}) [A-Z]+ " + pattern, err)
    assert found, pattern
    h, m, s = found.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_three_array_children_form_one_world_and_run_heat(tmp_path: Path, solver_env) -> None:
    with _gang(tmp_path, solver_env) as emu:
        emu.start(_heat(emu.shared_dir, 100), cwd=REPO)
        codes = emu.wait_all(120)
        logs = [emu.output(i) for i in range(3)]
        gang_dir = emu.shared_dir / ".mnp" / "gang"
        job = emu.job_id
    assert codes == {0: 0, 1: 0, 2: 0}, logs[0][1]
    summary = json.loads(logs[0][0].strip().splitlines()[-1])
    assert (summary["ranks"], summary["nodes"]) == (3, 3)
    # The world's job is the array's parent: its output lands under the parent id.
    assert summary["job_id"] == job and (tmp_path / "efs" / job / "field.npy").exists()
    main_err = logs[0][1]
    assert "gang: published" in main_err and "all 3 nodes ready" in main_err
    for i in (1, 2):
        assert "waiting up to 600.0s (MNP_GANG_TIMEOUT=600s)" in logs[i][1]
    # The main node removes its published address when the gang ends.
    assert not (gang_dir / job).exists()
    ready = _stamp(main_err, "all 3 nodes ready")
    last = max(_stamp(logs[i][1], "gang member") for i in (1, 2))
    print(f"gang of 3: world ready {ready - _stamp(main_err, 'gang: published'):.2f}s after "
          f"the main node published its address, {ready - last:.2f}s after the last member "
          "started (members start 0-1 s apart)")


def test_a_member_that_never_starts_ends_the_gang_within_its_bound(tmp_path: Path,
                                                                   solver_env) -> None:
    # 3 members at $36/h each cost $0.03 a second: a $0.12 cap ends the wait after 4 s,
    # before MNP_GANG_TIMEOUT's 60 s.
    with _gang(tmp_path, solver_env, MNP_GANG_TIMEOUT="60", MNP_GANG_COST_CAP="0.12",
               MNP_GANG_PRICE_PER_NODE_HOUR="36") as emu:
        began = time.monotonic()
        emu.start(_heat(emu.shared_dir, 10), skip=[2], cwd=REPO)
        codes = emu.wait_all(60)
        took = time.monotonic() - began
        logs = [emu.output(i)[1] for i in range(2)]
    assert codes == {0: contract.RENDEZVOUS_TIMEOUT, 1: contract.RENDEZVOUS_TIMEOUT}, logs
    assert 4 <= took < 15
    for err in logs:  # every member says who never came and which bound ended the wait
        assert ("gang of 3 did not assemble within 4.0s (the cost cap: 3 members at $36/h "
                "each reach MNP_GANG_COST_CAP=$0.12 after 4.0s): index(es) 2 never arrived"
                in err), err


def test_members_whose_main_node_never_starts_give_up_within_their_bound(
        tmp_path: Path, solver_env) -> None:
    with _gang(tmp_path, solver_env, MNP_GANG_TIMEOUT="3") as emu:
        argv = emu.entrypoint(_heat(emu.shared_dir, 10))
        began = time.monotonic()
        for index in (1, 2):
            emu.start_node(index, argv, cwd=REPO)
        codes = emu.wait_all(60)
        took = time.monotonic() - began
        logs = [emu.output(i)[1] for i in (1, 2)]
    assert codes == {1: contract.RENDEZVOUS_TIMEOUT, 2: contract.RENDEZVOUS_TIMEOUT}, logs
    assert 3 <= took < 12
    for err in logs:
        assert ("gang of 3 did not assemble within 3.0s (MNP_GANG_TIMEOUT=3s): index(es) 0 "
                "never arrived" in err), err
    # The first to give up withdraws the attempt; the other may read that before its own
    # bound passes (then it quotes the first one's line, as checked above).
    assert any("published no valid address" in err for err in logs), logs
