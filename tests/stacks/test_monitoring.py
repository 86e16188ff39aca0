"""Alarm thresholds and dashboard units against AWS/Batch's metric units (milliseconds)."""

from __future__ import annotations

import json
import re

import pytest
from moto.events.models import EventPattern

from stacks.config import PlatformLimits
from tests.stacks.conftest import batch_event, only, resources


def _alarms(stack: dict) -> dict[str, dict]:
    return {a["metric_name"]: a for a in resources(stack, "aws_cloudwatch_metric_alarm")}


def test_runnable_alarm_threshold_is_in_milliseconds(synthesized: dict) -> None:
    alarm = _alarms(synthesized)["JobAttemptRunnableToStartingDuration"]
    limits = PlatformLimits()
    assert alarm["threshold"] == limits.runnable_alarm_threshold_s * 1000
    # Read as milliseconds, 1800 would be 1.8 s: every job would set the alarm off.
    assert alarm["threshold"] >= 10 * 60 * 1000
    assert f"{limits.runnable_alarm_threshold_s // 60} minutes" in alarm["alarm_description"]


def test_a_job_that_never_starts_is_caught_by_the_queue_and_the_failed_alarm(
        synthesized: dict) -> None:
    # The duration metric exists only for jobs that reach STARTING; a job stuck RUNNABLE is
    # cancelled by the time limit (-> FAILED) and counted by the JobsMovedToFailed alarm.
    alarms = _alarms(synthesized)
    assert alarms["JobsMovedToFailed"]["threshold"] == 0
    queue = only(synthesized, "aws_batch_job_queue", "scheduling_job_queue")
    cancel_after_s = {a["max_time_seconds"] for a in queue["job_state_time_limit_action"]}
    assert cancel_after_s == {PlatformLimits().runnable_cancel_after_s}
    assert min(cancel_after_s) * 1000 > alarms["JobAttemptRunnableToStartingDuration"][
        "threshold"]


def test_dashboard_widgets_name_their_units(synthesized: dict) -> None:
    body = json.loads(only(synthesized, "aws_cloudwatch_dashboard")["dashboard_body"])
    widgets = {w["properties"]["title"]: w for w in body["widgets"] if w["type"] == "metric"}
    durations = widgets["Durations (milliseconds)"]["properties"]
    assert all(m[1].endswith("Duration") for m in durations["metrics"])
    assert durations["yAxis"]["left"]["label"] == "milliseconds"
    counts = widgets["Job state transitions (count)"]["properties"]
    assert not any(m[1].endswith("Duration") for m in counts["metrics"])


@pytest.mark.parametrize(("status", "suffix", "matched"), [
    ("FAILED", "", True),
    ("FAILED", "_c6i-4xlarge", True),  # a fallback queue: "<queue>_<type>" (stacks/fallback.py)
    ("SUCCEEDED", "_c6i-4xlarge", False),
    ("FAILED", "2", False),  # a queue whose name merely starts with ours
])
def test_failed_job_notifications_cover_the_fallback_queues(
        synthesized: dict, status: str, suffix: str, matched: bool) -> None:
    rule = only(synthesized, "aws_cloudwatch_event_rule", "job_failed_rule")
    ours = "arn:aws:batch:us-east-1:123456789012:job-queue/mnp-hpc-mpi"
    # The multi-node queue's ARN as Terraform renders it at apply.
    pattern = re.sub(r"\$\{aws_batch_job_queue\.scheduling_job_queue_\w+\.arn\}", ours,
                     rule["event_pattern"])
    assert ours in pattern
    event = batch_event(status, f"{ours}{suffix}")
    # moto's EventBridge pattern matcher, "prefix" included (as test_continuation.py uses it).
    assert EventPattern.load(pattern).matches_event(event) is matched
