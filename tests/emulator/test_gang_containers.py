"""Spot gangs in containers of the real image, started from what `mnp submit --spot-gang`
sends applied to the synthesized Spot job definition: a gang that cannot assemble cancels
itself within its bound, and a member that starts after that ends at once."""

from __future__ import annotations

import argparse
import json
import re
import secrets
import time
from pathlib import Path

import pytest

from emulator.gangs import ContainerGang
from emulator.jobdef import access_point_owner, apply_array_request, spot_definition
from jobs import spotgang
from jobs.request import JobSpec
from launcher import contract, gang
from tests.emulator.conftest import container_skip_reason

_WHY = container_skip_reason()
pytestmark = [pytest.mark.containers,
              pytest.mark.skipif(_WHY is not None, reason=f"no container engine: {_WHY}")]

STACK = {"MNP_RENDEZVOUS_SECRET": secrets.token_hex(32)}
BOUND = 20  # MNP_GANG_TIMEOUT of the failing gang
# A member's container starts in 1-2 s here and the launcher polls every 0.2 s.
SLACK = 15


def _heat(steps: int) -> list[str]:
    return ["python", "-m", "solver", "heat", "--nx", "67", "--ny", "45", "--steps", str(steps),
            "--no-png"]


def gang_request(config: dict, size: int, timeout: int, command: list[str]) -> dict:
    """SubmitJob as `submit --spot-gang --nodes SIZE --gang-timeout TIMEOUT -- command`
    builds it (jobs/commands/gang.py), with 1 vCPU and 1 GiB instead of a whole instance."""
    spec = JobSpec(name="gang", queue="local",
                   definition=spot_definition(config)["jobDefinitionName"], nodes=1, vcpus=1,
                   memory=1024, output_path="/mnt/efs/out", command=tuple(command),
                   single_node=True)
    args = argparse.Namespace(gang_timeout=timeout, gang_cost_cap=None)
    # Price 0: no cost cap applies, the bound is the timeout alone (launcher/gang.wait_bound).
    return spotgang.gang_request(spotgang.gang_spec(spec, spotgang.gang_env(args, 0.0)), size)


def _gang(config: dict, image: str, scratch: Path, size: int, timeout: int,
          command: list[str]) -> ContainerGang:
    job = apply_array_request(spot_definition(config),
                              gang_request(config, size, timeout, command),
                              access_point_owner(config))
    return ContainerGang(job, image, efs_dir=scratch / "efs", log_dir=scratch / "logs",
                         secret_values=STACK,
                         env={"MNP_HEARTBEAT_INTERVAL": "0.5", "MNP_HEARTBEAT_TIMEOUT": "5"})


def test_a_gang_whose_fourth_member_never_starts_cancels_itself(
        synthesized_config: dict, image: str, scratch: Path) -> None:
    missing = (f"gang of 4 did not assemble within {BOUND:.1f}s (MNP_GANG_TIMEOUT={BOUND}s): "
               "index(es) 3 never arrived")
    with _gang(synthesized_config, image, scratch, 4, BOUND, _heat(10)) as run:
        began = time.monotonic()
        run.start(skip=[3])
        codes = run.wait_all(BOUND + 60)
        took = time.monotonic() - began
        logs = {i: run.output(i)[1] for i in range(3)}
        marker = gang.withdrawn_path(scratch / "efs" / ".mnp" / "gang", run.job_id, 1)
        left = sorted(p.name for p in marker.parent.iterdir())
        late = time.monotonic()
        run.start_node(3)  # Batch found capacity for the last member only now
        late_code = run.wait_member(3, 60)
        late_took = time.monotonic() - late
        late_log = run.output(3)[1]
    print(f"\nmembers 0-2 ended {took:.1f}s after the first started (bound {BOUND}s); the late "
          f"member 3 ended {late_took:.1f}s after it started")
    for err in (*logs.values(), late_log):
        print("\n".join(line for line in err.splitlines()
                        if re.search(r"ERROR|withdrew|waiting up to", line)))
    # contract.RENDEZVOUS_TIMEOUT (3): a member never reported.
    assert codes == {i: contract.RENDEZVOUS_TIMEOUT for i in range(3)}, logs
    assert BOUND <= took < BOUND + SLACK
    for err in logs.values():  # each member's own log (its own Batch job) says who and which bound
        assert missing in err, err
    # The withdrawal is left for late members, and the address is gone with the main node.
    assert left == [gang.WITHDRAWN_NAME]
    assert late_code == contract.RENDEZVOUS_TIMEOUT, late_log
    assert re.search(r"gang member 3 of 4 exits at once, without waiting: member \d withdrew "
                     rf"this attempt of the gang: {re.escape(missing)}", late_log), late_log
    assert late_took < BOUND / 2  # it did not wait its own bound


def test_a_gang_of_three_assembles_and_runs_heat(synthesized_config: dict, image: str,
                                                 scratch: Path) -> None:
    with _gang(synthesized_config, image, scratch, 3, 120, _heat(20)) as run:
        run.start()
        codes = run.wait_all(240)
        out, err = run.output(0)
        job = run.job_id
    # A member ends with the world's code (launcher/README.md, Spot gangs: Exit codes).
    assert codes == {0: 0, 1: 0, 2: 0}, err
    assert "all 3 nodes ready" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["ranks"], summary["nodes"]) == (3, 3), summary
    # The ranks' job is the parent's id (`<parent>:<index>` without `:<index>`).
    assert summary["job_id"] == job and (scratch / "efs" / "out" / job / "field.npy").exists()
    # After a world that ran, the attempt's directory is removed: no marker is left.
    assert not (scratch / "efs" / ".mnp" / "gang" / job).exists()
