"""A run whose members are Spot gangs: gang_run_decision on a recorded gang after a reclaim
(descriptions/gang_reclaimed.json: the array parent, then its 4 children; child 2 exited 143
after the Spot watcher's SIGTERM, the others exited 4 having lost it), and the array
continuation it asks for."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from continuation.apply import CHECKPOINT_FLAG, RESTART_FLAG, continuation_request
from continuation.decide import GANG_MARK, Action, gang_run_decision
from continuation.family import TAG_MAX_GENERATIONS, TAG_MIN_NODES, Family, family_of
from launcher.contract import NODE_LOST, RENDEZVOUS_TIMEOUT, STOPPED
from tests.continuation.test_decide import recorded, with_tag

PARENT = "7e1f0a22-3b4c-4d5e-8f90-a1b2c3d4e5f6"
CHECKPOINTS = f"/mnt/efs/output/{PARENT}/checkpoints"
HOST_GONE = "Host EC2 (instance i-0123456789abcdef0) terminated."  # contract.HOST_FAILURE_REASON


def gang(parent_tag: tuple[str, str] | None = None) -> tuple[Family, list[dict[str, Any]]]:
    jobs = recorded("gang_reclaimed")
    if parent_tag:
        jobs = with_tag(jobs, *parent_tag)
    return family_of(jobs[:1]), copy.deepcopy(jobs[1:])


def ended(child: dict[str, Any], code: int | None, reason: str = "Essential container in "
          "task exited") -> None:
    """`child` FAILED with `code` (None: the instance went before the container ended, so
    Batch has no exit code) and `reason` on its last attempt, where Batch puts it."""
    attempt = child["attempts"][-1]
    attempt["container"] = {} if code is None else {"exitCode": code}
    attempt["statusReason"] = child["statusReason"] = reason
    child["container"].pop("exitCode", None)


def test_a_reclaimed_member_continues_the_run_as_a_gang_one_smaller() -> None:
    """Exit 143 (STOPPED) on the member the watcher signalled, 4 (NODE_LOST) on those that
    lost it: 4 - 1 = 3 members go on from the run's checkpoints, on the same Spot queue."""
    family, children = gang()
    decision = gang_run_decision(family, children)
    assert decision.action is Action.CONTINUE, decision.reason
    assert (decision.nodes, decision.generation, decision.queue) == (3, 2, "mnp-batch-spot")
    # The parent has no attempts; its children ran, so checkpoints may exist.
    assert decision.restart


def test_a_member_still_running_decides_nothing_yet() -> None:
    """One decision per gang attempt: only the last child's event decides."""
    family, children = gang()
    children[3]["status"] = "RUNNING"
    assert gang_run_decision(family, children).action is Action.NONE


@pytest.mark.parametrize(("codes", "nodes"), [
    ((NODE_LOST, NODE_LOST, NODE_LOST, NODE_LOST), 3),  # nobody identified: one, as for MNP
    ((STOPPED, STOPPED, STOPPED, STOPPED), 4),  # a stop that reached every member
    ((STOPPED, NODE_LOST, STOPPED, NODE_LOST), 2),  # two signalled, two lost them
])
def test_members_lost_by_exit_code(codes: tuple[int, ...], nodes: int) -> None:
    family, children = gang()
    for child, code in zip(children, codes, strict=True):
        ended(child, code)
    assert gang_run_decision(family, children).nodes == nodes


def test_members_whose_instance_went_are_the_lost_ones() -> None:
    """A child whose reason is "Host EC2 ..." lost its instance before it ended: each such
    child is one member fewer, whatever the others exited."""
    family, children = gang()
    for index in (1, 3):
        ended(children[index], None, HOST_GONE)
    decision = gang_run_decision(family, children)
    assert (decision.action, decision.nodes) == (Action.CONTINUE, 2)


@pytest.mark.parametrize(("tag", "words"), [
    ((TAG_MIN_NODES, "4"), "fewer than the run's minimum of 4"),
    ((TAG_MAX_GENERATIONS, "1"), "used all 1 jobs"),
])
def test_run_bounds_end_the_run(tag: tuple[str, str], words: str) -> None:
    family, children = gang(tag)
    decision = gang_run_decision(family, children)
    assert decision.action is Action.GIVE_UP and words in decision.reason


def test_a_gang_of_one_is_not_submitted() -> None:
    """arrayProperties.size is 2..10,000 (Batch API reference), whatever mnp:min-nodes says."""
    family, children = gang((TAG_MIN_NODES, "1"))
    for index in (0, 1, 2):
        ended(children[index], None, HOST_GONE)
    decision = gang_run_decision(family, children)
    assert decision.action is Action.GIVE_UP and "at least 2 members" in decision.reason


@pytest.mark.parametrize("change", ["exit 1", "exit 3", "cancelled gang", "user stop"])
def test_failures_no_new_gang_fixes_end_the_run(change: str) -> None:
    family, children = gang()
    if change == "exit 1":
        ended(children[0], 1)
    elif change == "exit 3":  # cancel-gang ended it (gang_decision); no continuation
        ended(children[0], RENDEZVOUS_TIMEOUT)
    elif change == "cancelled gang":
        ended(children[0], None, GANG_MARK + "member x exited 3")
    else:
        children[0]["isTerminated"] = True
    assert gang_run_decision(family, children).action is Action.GIVE_UP


def test_the_continuation_is_an_array_of_the_new_size() -> None:
    """What jobs/spotgang.gang_request sends, for the new size: arrayProperties, the
    container's overrides, the run's tags, and mnp:gang for the controller's CancelJob."""
    family, children = gang()
    decision = gang_run_decision(family, children)
    request = continuation_request(family, decision, [])
    assert request["arrayProperties"] == {"size": 3} and "nodeOverrides" not in request
    assert request["jobName"] == "heat-gang-g2"
    assert request["jobDefinition"] == family.newest.description["jobDefinition"]
    container = request["containerOverrides"]
    assert container["command"] == ["python", "-m", "solver", "heat", CHECKPOINT_FLAG,
                                    CHECKPOINTS, RESTART_FLAG, CHECKPOINTS]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["MNP_GANG"] == "1" and env["OUTPUT_PATH"] == "/mnt/efs/output"
    assert request["tags"]["mnp:gang"] == "3"
    assert (request["tags"]["mnp:family"], request["tags"]["mnp:previous"]) == (PARENT, PARENT)
    assert request["tags"][TAG_MIN_NODES] == "2"
    assert request["retryStrategy"] == {"attempts": 1}

