"""The Spot capacity for gangs as synthesized: its placement group, zone, launch template and
the interruption handling in its user data; the Spot job definition's launcher grace."""

from __future__ import annotations

import base64
import email
import json
import re
from pathlib import Path

import pytest

from stacks import spot_interruption
from stacks.compute import literal
from stacks.spot_interruption import ECS_CONFIG, STOP_TIMEOUT_S, TERM_GRACE_S, WATCHER
from tests.stacks.conftest import MNP_TEMPLATE, SPOT_TEMPLATE, TERRAFORM, only, run_terraform

SPOT_COUNT = "${var.enable_spot_queue ? 1 : 0}"


def _scripts(template: dict) -> list[str]:
    archive = email.message_from_bytes(base64.b64decode(template["user_data"], validate=True))
    return [part.get_payload(decode=True).decode() for part in archive.walk()
            if not part.is_multipart()]


def _ecs_config(script: str) -> list[str]:
    return re.findall(r"^echo '([^']*)' >> /etc/ecs/ecs\.config$", script, re.M)


def test_spot_environment_uses_its_own_cluster_group_in_the_pinned_subnet(
        synthesized: dict) -> None:
    spot = only(synthesized, "aws_batch_compute_environment", "spot")["compute_resources"]
    mnp = only(synthesized, "aws_batch_compute_environment",
               "compute_compute_environment")["compute_resources"]
    group = only(synthesized, "aws_placement_group", "spot")
    assert group["strategy"] == "cluster" and group["count"] == SPOT_COUNT
    assert group["name"] == "${var.cluster_name}-spot-mpi"
    assert spot["placement_group"] == "${aws_placement_group.compute_spot_placement_group_" \
        "47CB70F7[0].name}"
    # A cluster group lives in one zone (EC2 user guide, placement-strategies.html): the Spot
    # environment gets the one subnet the multi-node environment (and its group) uses.
    assert spot["subnets"] == mnp["subnets"] and len(spot["subnets"]) == 1


def test_spot_template_exists_with_the_queue_and_keeps_imdsv2(synthesized: dict) -> None:
    spot, mnp = (only(synthesized, "aws_launch_template", t) for t in (SPOT_TEMPLATE,
                                                                        MNP_TEMPLATE))
    assert spot["count"] == SPOT_COUNT and "count" not in mnp
    # The watcher's token dance relies on the same metadata options as every node's.
    assert spot["metadata_options"] == mnp["metadata_options"]
    assert spot["metadata_options"]["http_tokens"] == "required"


def test_spot_user_data_sets_stop_timeout_and_draining(synthesized: dict) -> None:
    (mnp_script,) = _scripts(only(synthesized, "aws_launch_template", MNP_TEMPLATE))
    first, _ = _scripts(only(synthesized, "aws_launch_template", SPOT_TEMPLATE))
    # ecs-agent-config.html: both are agent settings read from /etc/ecs/ecs.config.
    assert _ecs_config(first) == _ecs_config(mnp_script) + [
        "ECS_CONTAINER_STOP_TIMEOUT=90s", "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true"]
    assert list(ECS_CONFIG) == _ecs_config(first)[1:]
    # The multi-node nodes keep the agent's default 30 s (their launcher grace is 30 s).
    assert "ECS_CONTAINER_STOP_TIMEOUT" not in mnp_script
    # The same IMDS block for host-network jobs as on every node.
    assert [ln for ln in first.splitlines() if ln.startswith("iptables")] == [
        ln for ln in mnp_script.splitlines() if ln.startswith("iptables")]


def test_spot_user_data_installs_the_watcher_verbatim_and_starts_it(synthesized: dict) -> None:
    _, second = _scripts(only(synthesized, "aws_launch_template", SPOT_TEMPLATE))
    written = re.search(r"^cat > (\S+) <<'MNP_EOF'\n(.*?)^MNP_EOF$", second, re.M | re.S)
    assert written and written.group(1) == spot_interruption.WATCHER_PATH
    assert written.group(2) == WATCHER.read_text()
    unit = re.search(r"^cat > /etc/systemd/system/(\S+) <<'MNP_EOF'\n(.*?)^MNP_EOF$", second,
                     re.M | re.S)
    assert unit and f"ExecStart={spot_interruption.WATCHER_PATH}\n" in unit.group(2)
    assert second.splitlines()[-1] == f"systemctl enable --now --no-block {unit.group(1)}"


def test_spot_fsx_user_data_escapes_the_watcher_for_terraform(synthesized_fsx: dict) -> None:
    template = only(synthesized_fsx, "aws_launch_template", SPOT_TEMPLATE)["user_data"]
    local = re.fullmatch(r'\$\{var\.enable_fsx \? base64encode\(local\.(\w+)\) : "[^"]+"\}',
                         template).group(1)
    text = synthesized_fsx["locals"][local]
    # Terraform renders the local: every ${ and %{ of the watcher must come out as itself
    # (developer.hashicorp.com/terraform/language/expressions/strings, "Escape sequences").
    watcher = WATCHER.read_text()
    assert "${" in watcher and "%{" in watcher
    assert literal(watcher) in text


@pytest.mark.slow
@pytest.mark.skipif(TERRAFORM is None, reason="needs the terraform CLI")
def test_terraform_renders_the_escaped_watcher_part_to_itself(tmp_path: Path) -> None:
    # The real renderer: a local holding the escaped part, read back through an output.
    part = spot_interruption.watcher_script()
    (tmp_path / "main.tf.json").write_text(json.dumps(
        {"locals": {"part": literal(part)}, "output": {"part": {"value": "${local.part}"}}}))
    for args in (("init", "-input=false"), ("apply", "-auto-approve", "-input=false")):
        step = run_terraform(tmp_path, *args)
        assert step.returncode == 0, step.stderr
    shown = run_terraform(tmp_path, "output", "-raw", "part")
    assert shown.stdout == part


def test_spot_job_definition_grace_fits_inside_the_stop_timeout(synthesized: dict) -> None:
    spot = json.loads(only(synthesized, "aws_batch_job_definition",
                           "spot")["container_properties"])
    env = {e["name"]: e["value"] for e in spot["environment"]}
    assert float(env["MNP_TERM_GRACE"]) == TERM_GRACE_S < STOP_TIMEOUT_S
    # The watcher may act one poll late; grace and stop both end inside the two minutes.
    assert spot_interruption.POLL_S + STOP_TIMEOUT_S < spot_interruption.NOTICE_S
    mnp = json.loads(only(synthesized, "aws_batch_job_definition",
                          "scheduling_job_definition")["node_properties"])
    # Multi-node nodes keep the launcher's default, which matches the agent's default 30 s.
    assert "MNP_TERM_GRACE" not in json.dumps(mnp)
