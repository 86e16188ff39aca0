"""Fallback capacity as synthesized: per type a placement group, a one-subnet environment and a
queue, all keyed by the type, and FALLBACK_INSTANCE_TYPES as the variable's default."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, StackSettings
from tests.stacks.conftest import only

EACH = "${toset(var.fallback_instance_types)}"
REGION = {"AWS_REGION": "us-east-1"}  # never the machine's own profile


def test_each_fallback_type_gets_a_placement_group_environment_and_queue(
        synthesized: dict) -> None:
    group = only(synthesized, "aws_placement_group", "fallback_placement_group")
    environment = only(synthesized, "aws_batch_compute_environment",
                       "fallback_compute_environment")
    queue = only(synthesized, "aws_batch_job_queue", "fallback_job_queue")
    for resource in (group, environment, queue):
        assert resource["for_each"] == EACH
    # A cluster placement group lives in one zone, so its environment has one subnet
    # (Batch user guide, multi-node parallel jobs; EC2 placement groups).
    assert group["strategy"] == "cluster"
    resources = environment["compute_resources"]
    assert resources["type"] == "EC2" and environment["type"] == "MANAGED"
    assert resources["instance_type"] == "${[each.key]}"
    (group_id,) = synthesized["resource"]["aws_placement_group"].keys() - {
        k for k in synthesized["resource"]["aws_placement_group"] if k.startswith("compute_")}
    assert resources["placement_group"] == f"${{aws_placement_group.{group_id}[each.key].name}}"
    assert resources["subnets"] == ["${local.fallback_subnet_ids[each.key]}"]
    # Empty environments run nothing: min 0 vCPUs.
    assert resources["min_vcpus"] == 0
    primary = only(synthesized, "aws_batch_compute_environment", "compute_compute_environment")
    assert resources["launch_template"] == primary["compute_resources"]["launch_template"]
    (environment_id,) = [k for k in synthesized["resource"]["aws_batch_compute_environment"]
                         if "fallback" in k]
    assert queue["compute_environment_order"] == [{
        "order": 1, "compute_environment":
        f"${{aws_batch_compute_environment.{environment_id}[each.key].arn}}"}]
    assert queue["job_state_time_limit_action"] == only(
        synthesized, "aws_batch_job_queue", "scheduling_job_queue")["job_state_time_limit_action"]


def test_queue_names_are_the_main_queue_and_the_type(synthesized: dict) -> None:
    main = only(synthesized, "aws_batch_job_queue", "scheduling_job_queue")["name"]
    queue = only(synthesized, "aws_batch_job_queue", "fallback_job_queue")
    assert queue["name"] == main + '_${replace(each.key, ".", "-")}'
    assert synthesized["output"]["fallback_job_queue_names"]["value"] == (
        "${local.fallback_queue_names}")


def test_controller_queue_list_is_the_primary_then_the_fallbacks(synthesized: dict) -> None:
    function = only(synthesized, "aws_lambda_function", "continuation_function")
    raw = function["environment"]["variables"]["MNP_CONTINUATION_QUEUES"]
    assert raw.startswith("${jsonencode(concat([{name = aws_batch_job_queue.scheduling_job_queue")
    assert raw.endswith("local.fallback_queue_specs))}")


def test_fallback_types_default_from_the_environment() -> None:
    settings = StackSettings.from_env({**REGION,
                                       "FALLBACK_INSTANCE_TYPES": " c6i.4xlarge, c5.2xlarge "})
    assert settings.fallback_instance_types == ("c6i.4xlarge", "c5.2xlarge")
    assert StackSettings.from_env(REGION).fallback_instance_types == ()


@pytest.mark.parametrize(("value", "message"), [
    ("c6i.4xlarge,C5", "FALLBACK_INSTANCE_TYPES='C5' is not allowed: EC2 instance types"),
    ("c5.large,c5.large", "FALLBACK_INSTANCE_TYPES='c5.large,c5.large' is not allowed: each "
                          "type at most once"),
])
def test_bad_fallback_types_stop_synth_naming_them(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        StackSettings.from_env({**REGION, "FALLBACK_INSTANCE_TYPES": value})
