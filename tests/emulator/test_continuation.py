"""A run that outlives its nodes (issue 23, item 4): a 4-node heat run in containers of the
real image, reclaimed twice at random steps, continues on 3, then 2 nodes as
continuation.decide decides, and ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from continuation.decide import HOST_LOST, Action, decide
from continuation.family import TAG_MIN_NODES, family_of
from emulator.containers import ContainerJob
from emulator.continuations import (
    QUEUE,
    ContinuedRun,
    Reclaim,
    describe,
    field_path,
    queue_spec,
)
from emulator.jobdef import LocalJob, access_point_owner, apply_request, multinode_definition
from jobs.request import JobSpec, submit_request
from launcher.contract import EFS_MOUNT_PATH, NODE_LOST, STOPPED
from tests.emulator.conftest import REPO, container_skip_reason

_WHY = container_skip_reason()

# docs/CONTRACTS.md "The summary line": compared fields agree to 1e-12, the field bit for bit.
COMPARED = ("grid", "steps", "t", "l2_error", "max_error")
STEPS = 150
HEAT = ["python", "-m", "solver", "heat", "--nx", "129", "--ny", "97", "--steps", str(STEPS),
        "--checkpoint-every", "10", "--log-every", "1", "--no-png"]
OUTPUT = f"{EFS_MOUNT_PATH}/out"
# Fast loss detection, as tests/emulator/test_containers.py uses.
FAST = {"MNP_HEARTBEAT_INTERVAL": "0.5", "MNP_HEARTBEAT_TIMEOUT": "5"}


def _request(definition: dict, nodes: int, min_nodes: int | None) -> dict:
    """What `submit --nodes N --vcpus 1 --attempts 1 [--min-nodes M]` sends."""
    tags = {TAG_MIN_NODES: str(min_nodes)} if min_nodes else {}
    return submit_request(JobSpec(
        name="heat-reclaimed", queue="local", definition=definition["jobDefinitionName"],
        nodes=nodes, vcpus=1, memory=1024, output_path=OUTPUT, command=tuple(HEAT),
        attempts=1, tags=tags))


@pytest.mark.containers
@pytest.mark.skipif(_WHY is not None, reason=f"no container engine: {_WHY}")
def test_a_run_reclaimed_twice_continues_on_3_then_2_nodes_bit_identical(
        image: str, synthesized_config: dict, scratch: Path) -> None:
    seed = int(os.environ.get("MNP_TEST_SEED") or random.randrange(2**32))
    print(f"seed {seed} (MNP_TEST_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    definition = multinode_definition(synthesized_config)
    owner = access_point_owner(synthesized_config)
    stack = {"MNP_RENDEZVOUS_SECRET": secrets.token_hex(32)}  # one stack: one secret

    def make_job(local: LocalJob, job_id: str) -> ContainerJob:
        return ContainerJob(local, image, efs_dir=scratch / "efs", log_dir=scratch / "logs",
                            job_id=job_id, secret_values=stack, env=FAST,
                            max_delay=0.2, seed=rng.randrange(2**32))

    reference = ContinuedRun(definition, _request(definition, 4, None), make_job,
                             owner=owner).run()
    assert [m.exit_code for m in reference] == [0]
    # Each reclaim lands at a random step of its member, before the run could end.
    reclaims = [Reclaim(rng.randint(5, 40)), Reclaim(rng.randint(5, 40))]
    events: list[str] = []
    run = ContinuedRun(definition, _request(definition, 4, 2), make_job, owner=owner,
                       reclaims=reclaims, rng=rng, on_event=events.append).run()
    print("\n".join(events))
    assert [m.nodes for m in run] == [4, 3, 2], events
    # The reclaimed node's launcher leaves 5 s after its ranks checkpointed (launcher/roles.py,
    # _follow): the main node ends 143 if mpiexec is down by then, else 4 (node lost);
    # decide() continues on one node fewer either way (continuation/README.md, Decisions).
    assert [m.exit_code in (STOPPED, NODE_LOST) for m in run[:2]] == [True, True], events
    assert run[-1].exit_code == 0, events
    assert [m.decision.action for m in run] == [Action.CONTINUE, Action.CONTINUE, Action.NONE]
    # each continuation resumed from the checkpoint its predecessor's stop wrote
    assert [m.resumed_step for m in run[1:]] == [m.stop_step for m in run[:2]]
    assert all(m.stop_step and 0 < m.stop_step < STEPS for m in run[:2])
    last, ref = json.loads(run[-1].summary_line), json.loads(reference[0].summary_line)
    assert (last["ranks"], last["nodes"], ref["ranks"]) == (2, 2, 4)
    for key in COMPARED:
        assert last[key] == pytest.approx(ref[key], rel=1e-12, abs=0), key
    np.testing.assert_array_equal(
        np.load(field_path(scratch / "efs", OUTPUT, EFS_MOUNT_PATH, run[-1].job_id)),
        np.load(field_path(scratch / "efs", OUTPUT, EFS_MOUNT_PATH, reference[0].job_id)))


@pytest.mark.parametrize("code", [STOPPED, NODE_LOST])
def test_a_reclaimed_members_description_makes_decide_continue_on_one_node_fewer(
        synthesized_config: dict, code: int) -> None:
    """What the emulator writes for a reclaimed member reads back as the recorded
    descriptions do (exit code from the last attempt, nodes, ranks, the run's minimum, the
    family's checkpoint directory), and decide() continues on 3 of 4 nodes for either exit."""
    definition = multinode_definition(synthesized_config)
    request = _request(definition, 4, 2)
    local = apply_request(definition, request, access_point_owner(synthesized_config))
    family = family_of(describe(request, local, "job-1", dict.fromkeys(range(4), code),
                                1000, 2000, reclaimed=2))
    member = family.newest
    assert (member.status, member.exit_code, member.num_nodes, member.ranks_per_node,
            member.lost_nodes(HOST_LOST)) == ("FAILED", code, 4, 1, 1)
    assert (family.min_nodes, family.checkpoint_dir) == (2, f"{OUTPUT}/job-1/checkpoints")
    decision = decide(family, [queue_spec(local)], 3000, {QUEUE: 3})
    assert (decision.action, decision.nodes, decision.restart) == (Action.CONTINUE, 3, True)


@pytest.mark.parametrize(("args", "message"), [
    (["--min-nodes", "5"], "--min-nodes 5 is more than --nodes 4: allowed 1..4"),
    (["--reclaim-after", "10"], "--reclaim-after needs --min-nodes"),
    (["--min-nodes", "2", *["--reclaim-after", "10"] * 4], "at most 3"),
])
def test_run_local_refuses_a_run_it_cannot_continue_before_starting_anything(
        project: Path, args: list[str], message: str) -> None:
    run = subprocess.run([sys.executable, "-m", "jobs", "run-local", "--nodes", "4", "--vcpus",
                          "1", "--memory", "1024", "--image", "mnp-no-such-image:x", *args,
                          "--", "true"], cwd=project,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
