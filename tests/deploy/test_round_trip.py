"""`terraform apply` of the stack by the real CLI and provider against the AWS emulator.

For each variant (default, EFA, state in S3, FSx for Lustre): apply creates every resource, a
second plan is empty, the jobs CLI works on what Terraform made, and destroy leaves nothing
(read with the AWS API, not the state). `make e2e` runs only these, printing Terraform's output
as it comes.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.deploy.roundtrip import STEP_TIMEOUT
from tests.deploy.scenario import FALLBACK_TYPES, VARIANTS, Outcome

NAMES = [v.name for v in VARIANTS]
# The session's round trips run inside the first test's setup, under its timeout: the longest
# variant's every step (fsx: apply, plan, jobs, then destroy with its 10-minute FSx wait).
pytestmark = pytest.mark.timeout(max(v.destroy_timeout for v in VARIANTS) + 3 * STEP_TIMEOUT)


def _variant(outcomes: dict[str, Outcome], name: str) -> Outcome:
    if name not in outcomes:
        pytest.skip(f"variant {name} left out by E2E_VARIANTS={os.environ['E2E_VARIANTS']}")
    return outcomes[name]


def _ok(outcome: Outcome, stage: str, part: str = "apply") -> None:
    assert part not in outcome.errors, outcome.errors[part]
    step = outcome.steps.get(stage)
    assert step is not None, f"{stage} did not run (stages run: {list(outcome.steps)})"
    assert step.code == 0, (f"{stage} exited {step.code}:\n{step.out[-4000:]}\n"
                            f"emulator's log:\n{outcome.emulator_log[-3000:]}")


@pytest.mark.parametrize("name", NAMES)
def test_apply_creates_every_planned_resource(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = _variant(outcomes, name)
    _ok(outcome, "apply")
    assert outcome.planned > 0
    assert len(outcome.in_state) == outcome.planned, sorted(outcome.in_state)


@pytest.mark.parametrize("name", NAMES)
def test_second_plan_has_no_changes(outcomes: dict[str, Outcome], name: str) -> None:
    # -detailed-exitcode: 0 = no changes, 2 = changes present
    # (developer.hashicorp.com/terraform/cli/commands/plan#detailed-exitcode).
    _ok(_variant(outcomes, name), "second plan")


@pytest.mark.parametrize("name", NAMES)
def test_jobs_cli_works_on_what_terraform_made(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = _variant(outcomes, name)
    _ok(outcome, "apply")
    assert "jobs" not in outcome.errors, outcome.errors["jobs"]
    jobs = outcome.jobs
    for command in ("preflight", "submit", "status", "list", "cancel"):
        assert command in jobs, f"{command} did not run: {list(jobs)}"
        assert jobs[command].code == 0, f"jobs {command}:\n{jobs[command].out[-3000:]}"
    job_id = json.loads(jobs["submit"].out)["jobId"]
    status = json.loads(jobs["status"].out)["job"]
    assert status["jobQueue"].endswith(f":job-queue/{outcome.outputs['job_queue_name']}")
    assert f":job-definition/{outcome.outputs['job_definition_name']}:" in status["jobDefinition"]
    assert job_id in jobs["list"].out
    # A job cancelled before it started ends FAILED with the reason given
    # (batch/latest/APIReference/API_CancelJob.html).
    ended = json.loads(jobs["after cancel"].out)["job"]
    assert (ended["status"], ended["statusReason"]) == ("FAILED", "round trip")


def test_fallback_queues_are_made_in_order_and_preflight_shows_them(
        outcomes: dict[str, Outcome]) -> None:
    outcome = _variant(outcomes, "default")
    _ok(outcome, "apply")
    main = outcome.outputs["job_queue_name"]
    names = [f"{main}_{t.replace('.', '-')}" for t in FALLBACK_TYPES.split(",")]
    assert outcome.outputs["fallback_job_queue_names"] == names
    for kind in ("aws_placement_group", "aws_batch_compute_environment", "aws_batch_job_queue"):
        made = {a for a in outcome.in_state if a.startswith(f"{kind}.fallback_")
                or a.startswith(f"{kind}.compute_fallback_")}
        assert len(made) == len(names), (kind, sorted(outcome.in_state))
    preflight = outcome.jobs["preflight"].out
    assert all(f"fallback {name}: " in preflight for name in names), preflight


@pytest.mark.parametrize("name", NAMES)
def test_destroy_leaves_nothing(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = _variant(outcomes, name)
    _ok(outcome, "destroy", part="destroy")
    assert outcome.after - outcome.before == set()


def test_state_in_s3_is_stored_and_locked(outcomes: dict[str, Outcome]) -> None:
    outcome = _variant(outcomes, "s3-state")
    _ok(outcome, "apply")
    assert "state lock" not in outcome.errors, outcome.errors["state lock"]
    assert outcome.state_object, "no state object under the backend's key"
    assert outcome.lock_refused is not None
    assert outcome.lock_refused.code != 0
    assert "Error acquiring the state lock" in outcome.lock_refused.out


SPOT_RESOURCES = ("aws_placement_group.compute_spot_placement_group",
                  "aws_launch_template.compute_spot_launch_template",
                  "aws_batch_compute_environment.compute_spot_compute_environment",
                  "aws_batch_job_queue.scheduling_spot_job_queue",
                  "aws_batch_job_definition.scheduling_spot_job_definition")


@pytest.mark.parametrize("name", [v.name for v in VARIANTS if v.tfvars.get("enable_spot_queue")])
def test_the_spot_queue_for_gangs_is_applied(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = _variant(outcomes, name)
    _ok(outcome, "apply")
    # Each counted Spot resource once (instance [0]), and the outputs the CLI reads name them.
    for resource in SPOT_RESOURCES:
        assert any(r.startswith(resource) and r.endswith("[0]") for r in outcome.in_state), \
            resource
    assert outcome.outputs["spot_job_queue_name"] and outcome.outputs["spot_job_definition_name"]


def test_provider_mapping_is_only_what_the_pin_needs(outcomes: dict[str, Outcome]) -> None:
    """Against the 6.x the stack pins nothing is mapped; against a 5.x mirror only the renames."""
    mapped = next(iter(outcomes.values())).mapped
    if not mapped:
        return
    assert mapped[-1].startswith("required_providers.aws.version 5.")
    assert all(" -> " in line for line in mapped[:-1])

