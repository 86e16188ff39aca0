"""decide() on recorded DescribeJobs responses (tests/continuation/descriptions/*.json).

Each expected decision cites the document or contract line that makes it right.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from continuation.decide import Action, QueueSpec, decide, gang_decision
from continuation.family import TAG_MAX_GENERATIONS, TAG_MIN_NODES, FamilyError, family_of
from launcher.contract import NODE_LOST, STOPPED, USAGE

DESCRIPTIONS = Path(__file__).parent / "descriptions"
T0 = 1796630400000  # the recordings' clock: 2026-12-07T00:00:00Z, in ms as Batch gives it
PRIMARY = QueueSpec("mnp-batch-mpi", slots=8, vcpus=8, memory_mib=14336)
FALLBACK = QueueSpec("mnp-batch-mpi-fallback1", slots=16, vcpus=16, memory_mib=29696)
LATER = T0 + 10 * 3600_000  # after every recorded job ended


def recorded(name: str) -> list[dict[str, Any]]:
    return json.loads((DESCRIPTIONS / f"{name}.json").read_text())["jobs"]


def with_tag(jobs: list[dict[str, Any]], key: str, value: str) -> list[dict[str, Any]]:
    """The recording with one run tag changed on its first job (the run's settings)."""
    first = {**jobs[0], "tags": {**jobs[0]["tags"], key: value}}
    return [first, *jobs[1:]]


def test_recordings_have_the_describe_jobs_shape() -> None:
    """Every fixture validates against botocore's DescribeJobs output shape, except that
    botocore marks JobDetail.startedAt required while a job that never ran has none (the
    API reference: startedAt is when the job "transitioned from the STARTING state to the
    RUNNING state")."""
    shape = botocore.session.get_session().get_service_model("batch").operation_model(
        "DescribeJobs").output_shape
    for path in sorted(DESCRIPTIONS.glob("*.json")):
        body = json.loads(path.read_text())
        report = ParamValidator().validate(body, shape)
        errors = [e for e in report.generate_report().splitlines()[1:] if e.strip()]
        never_ran = [i for i, j in enumerate(body["jobs"]) if not j["attempts"]]
        allowed = {f'Missing required parameter in jobs[{i}]: "startedAt"' for i in never_ran}
        assert set(errors) <= allowed, (path.name, errors)


def test_exit_4_on_attempt_3_continues_without_the_lost_node() -> None:
    """Exit 4: "a node was lost mid-run" (docs/CONTRACTS.md); Batch's own 3 attempts are
    spent (retryStrategy attempts 3). Node 2's description says "Host EC2 (instance ...)
    terminated." (the contract's HOST_FAILURE_REASON), so 4 - 1 = 3 nodes go on from the
    checkpoints."""
    family = family_of(recorded("node_lost_attempt3"))
    assert family.newest.exit_code == NODE_LOST
    assert family.newest.attempts == 3
    decision = decide(family, [PRIMARY], LATER)
    assert decision.action is Action.CONTINUE
    assert (decision.nodes, decision.queue, decision.generation) == (3, PRIMARY.name, 2)
    assert decision.restart and decision.cancel is None


def test_exit_4_without_node_descriptions_assumes_one_lost() -> None:
    """Without the node jobs' descriptions the exit code still says a node was lost: at
    least one, so the count drops by one."""
    parent_only = [j for j in recorded("node_lost_attempt3") if "#" not in j["jobId"]]
    decision = decide(family_of(parent_only), [PRIMARY], LATER)
    assert (decision.action, decision.nodes) == (Action.CONTINUE, 3)


def test_exit_4_below_min_nodes_gives_up() -> None:
    """--min-nodes: "never fewer than --min-nodes" (issue 23, item 1)."""
    jobs = with_tag(recorded("node_lost_attempt3"), TAG_MIN_NODES, "4")
    decision = decide(family_of(jobs), [PRIMARY], LATER)
    assert decision.action is Action.GIVE_UP
    assert "fewer than the run's minimum of 4" in decision.reason


def test_capacity_hint_caps_the_continuation() -> None:
    """As many nodes as can be had: a capacity check saying 2 are available wins over 3."""
    decision = decide(family_of(recorded("node_lost_attempt3")), [PRIMARY], LATER,
                      available={PRIMARY.name: 2})
    assert (decision.action, decision.nodes) == (Action.CONTINUE, 2)


def test_terminate_job_by_a_user_ends_the_run() -> None:
    """TerminateJob's reason "is returned by future DescribeJobs operations" (Batch API
    reference, TerminateJob) and isTerminated is set: the user asked the run to stop, so the
    controller must not start it again, though the exit is 143."""
    family = family_of(recorded("terminated_by_user"))
    assert family.newest.exit_code == STOPPED
    decision = decide(family, [PRIMARY], LATER)
    assert decision.action is Action.GIVE_UP
    assert "cancelled by alice with the jobs CLI" in decision.reason


def test_sigterm_143_not_from_a_user_continues_on_the_same_nodes() -> None:
    """143: "stopped by SIGTERM after writing a checkpoint" (docs/CONTRACTS.md), nobody
    called TerminateJob: the same count goes on (issue 23: "same count for 143")."""
    decision = decide(family_of(recorded("stopped_143")), [PRIMARY], LATER)
    assert (decision.action, decision.nodes, decision.generation) == (Action.CONTINUE, 4, 2)


def test_timeout_continues_on_the_same_nodes() -> None:
    """A timeout sends SIGTERM and Batch does not retry it ("If a job is terminated for
    exceeding the timeout duration, it isn't retried", user guide, Job timeouts): the
    controller continues it from the checkpoint the SIGTERM wrote."""
    decision = decide(family_of(recorded("timed_out")), [PRIMARY], LATER)
    assert (decision.action, decision.nodes) == (Action.CONTINUE, 4)
    assert "timed out" in decision.reason


@pytest.mark.parametrize("minutes, action", [(29, Action.WAIT), (31, Action.MOVE)])
def test_runnable_with_a_capacity_reason_waits_then_moves(minutes: int,
                                                          action: Action) -> None:
    """statusReason "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the
    capacity requested" (user guide, Jobs stuck in RUNNABLE due to capacity); the run's
    deadline is 1800 s (mnp:runnable-deadline). Before it: wait; after: the next queue, with
    the same 32 ranks on 16-slot nodes = 2 nodes of 16 (issue 23, item 2)."""
    family = family_of(recorded("runnable_capacity"))
    decision = decide(family, [PRIMARY, FALLBACK], T0 + minutes * 60_000)
    assert decision.action is action
    if action is Action.WAIT:
        assert decision.wake_at_ms == T0 + 1800_000
        return
    assert (decision.queue, decision.nodes, decision.ranks_per_node) == (FALLBACK.name, 2, 16)
    assert decision.cancel == family.newest.job_id  # CancelJob first: it is still RUNNABLE
    assert not decision.restart  # it never ran: nothing to restart from


def test_runnable_past_its_deadline_on_the_last_queue_halves() -> None:
    """No fallback left: fewer nodes may fit ("All compute environments have insufficient
    capacity", JobDetail.statusReason); without a capacity figure the count halves."""
    decision = decide(family_of(recorded("runnable_capacity")), [PRIMARY], T0 + 3600_000)
    assert (decision.action, decision.nodes, decision.queue) == (Action.CONTINUE, 2,
                                                                PRIMARY.name)
    assert decision.cancel is not None


def test_runnable_waiting_its_turn_is_left_alone() -> None:
    """A RUNNABLE job without a blocked-queue reason waits its turn (user guide, "Jobs stuck
    in a RUNNABLE status": the reason is set only when Batch detects a blocked queue)."""
    jobs = recorded("runnable_capacity")
    jobs[0] = {k: v for k, v in jobs[0].items() if k != "statusReason"}
    assert decide(family_of(jobs), [PRIMARY], LATER).action is Action.NONE


def test_service_role_problem_gives_up_at_once() -> None:
    """MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS (JobDetail.statusReason): no other queue
    or node count fixes the service role."""
    jobs = recorded("runnable_capacity")
    jobs[0] = {**jobs[0], "statusReason": "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS"}
    assert decide(family_of(jobs), [PRIMARY, FALLBACK], T0).action is Action.GIVE_UP


def test_cancelled_by_the_queues_time_limit_moves() -> None:
    """"Canceled by JobStateTimeLimit action due to reason: CAPACITY:..." (user guide): the
    queue gave up first; the job never ran, so it moves without a CancelJob."""
    decision = decide(family_of(recorded("queue_cancelled")), [PRIMARY, FALLBACK], LATER)
    assert (decision.action, decision.queue, decision.cancel) == (Action.MOVE, FALLBACK.name,
                                                                  None)


def test_succeeded_needs_nothing() -> None:
    assert decide(family_of(recorded("succeeded")), [PRIMARY], LATER).action is Action.NONE


@pytest.mark.parametrize("name, code", [("exit_2", USAGE), ("exit_1", 1)])
def test_bad_input_and_application_errors_give_up(name: str, code: int) -> None:
    """2: "bad input or usage" and other codes: "application error", both EXIT in the
    contract's retry rules: a new job would fail the same way."""
    family = family_of(recorded(name))
    assert family.newest.exit_code == code
    decision = decide(family, [PRIMARY], LATER)
    assert decision.action is Action.GIVE_UP
    assert f"exit {code}" in decision.reason


def test_the_newest_generation_decides_and_max_generations_bounds_the_run() -> None:
    """A run of three (exit 4, timeout, exit 4) with mnp:max-generations 3: the third job's
    exit 4 would need a fourth job, which the run may not have."""
    family = family_of(recorded("three_generations"))
    assert [m.generation for m in family.members] == [1, 2, 3]
    assert decide(family, [PRIMARY], LATER).action is Action.GIVE_UP
    more = with_tag(recorded("three_generations"), TAG_MAX_GENERATIONS, "4")
    decision = decide(family_of(more), [PRIMARY], LATER)
    assert (decision.action, decision.nodes, decision.generation) == (Action.CONTINUE, 2, 4)


def test_running_jobs_need_nothing() -> None:
    jobs = recorded("succeeded")
    jobs[0] = {**jobs[0], "status": "RUNNING"}
    assert decide(family_of(jobs), [PRIMARY], LATER).action is Action.NONE


def test_descriptions_of_two_runs_are_refused() -> None:
    other = {**recorded("exit_1")[0], "jobId": "another-run"}
    with pytest.raises(FamilyError, match="several runs"):
        family_of([*recorded("exit_2"), other])


# --- Spot gangs: array children with MNP_GANG=1 (tests/continuation/descriptions/gang_members.json)

def test_a_gang_member_that_exited_3_cancels_the_array_parent() -> None:
    """Exit 3 from a gang member: the gang did not assemble in its bound (launcher/README.md,
    Spot gangs). CancelJob goes to the parent, the child's id without `:<index>` (Batch user
    guide, array_jobs.html: "example_job_ID:0"), which cancels the children still queued
    (Batch API reference, CancelJob)."""
    failed = recorded("gang_members")[0]
    decision = gang_decision(failed)
    assert decision is not None and decision.action is Action.CANCEL_GANG
    assert decision.cancel == "5c2d9e41-8a7b-4c3d-9e1f-2a3b4c5d6e7f"
    assert failed["jobId"] in decision.reason and "did not assemble" in decision.reason


@pytest.mark.parametrize("index", [1, 2])  # a member still queued, one that succeeded
def test_other_gang_members_cancel_nothing(index: int) -> None:
    decision = gang_decision(recorded("gang_members")[index])
    assert decision is not None and decision.action is Action.NONE and decision.cancel is None


def test_jobs_that_are_not_gang_members_are_not_the_gang_rule_s() -> None:
    """A run's multi-node job (no array index), and an array child without the opt-in (a
    parameter sweep's child, which exits 3 for reasons of its own)."""
    assert gang_decision(recorded("exit_1")[0]) is None
    sweep_child = recorded("gang_members")[0]
    sweep_child = {**sweep_child, "container": {**sweep_child["container"], "environment": [
        e for e in sweep_child["container"]["environment"] if e["name"] != "MNP_GANG"]}}
    assert gang_decision(sweep_child) is None
