"""The zone choice run by a real terraform CLI on made-up offerings (no AWS provider needed)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from stacks.zones import first_zone, no_zone_message, offering_zones, other_zone
from tests.stacks.conftest import TERRAFORM, run_terraform

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    TERRAFORM is None, reason="no terraform CLI installed: install Terraform >= 1.11 to run these")]

ZONES = ["use2-az3", "use2-az1", "use2-az2"]


def _config(offerings: list[tuple[str, str]], wanted: list[str]) -> dict:
    """The stack's expressions over locals standing in for the two data sources."""
    offered = offering_zones("local.zone_ids", "local.locations", "local.types",
                             "var.instance_types")
    return {
        "variable": {"instance_types": {"type": "list(string)", "default": wanted}},
        "locals": {"zone_ids": ZONES, "locations": [zone for _, zone in offerings],
                   "types": [type_ for type_, _ in offerings],
                   "pinned": f"${{{first_zone(offered)}}}",
                   "second": f"${{{other_zone('local.zone_ids', 'local.pinned')}}}"},
        # terraform_data is built in: plan needs no provider download.
        "resource": {"terraform_data": {"subnet": {"input": "${local.pinned}", "lifecycle": {
            "precondition": [{"condition": '${local.pinned != ""}',
                              "error_message": no_zone_message("var.instance_types",
                                                               "us-east-2")}]}}}},
        "output": {"pinned": {"value": "${local.pinned}"},
                   "second": {"value": "${local.second}"}},
    }


def _apply(tmp_path: Path, offerings: list[tuple[str, str]],
           wanted: list[str]) -> subprocess.CompletedProcess:
    (tmp_path / "main.tf.json").write_text(json.dumps(_config(offerings, wanted)))
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false",
                                            "-no-color"]):
        proc = run_terraform(tmp_path, *args)
        if proc.returncode:
            return proc
    return run_terraform(tmp_path, "output", "-json", timeout=60)


def test_pinned_zone_offers_every_type(tmp_path: Path) -> None:
    # az1 offers only one of the two types; az2 and az3 offer both: the lowest such id wins.
    offerings = [("c5n.18xlarge", "use2-az1"), ("c5n.18xlarge", "use2-az2"),
                 ("hpc6a.48xlarge", "use2-az2"), ("c5n.18xlarge", "use2-az3"),
                 ("hpc6a.48xlarge", "use2-az3")]
    proc = _apply(tmp_path, offerings, ["hpc6a.48xlarge", "c5n.18xlarge"])
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(proc.stdout)
    assert outputs["pinned"]["value"] == "use2-az2"
    assert outputs["second"]["value"] == "use2-az1"


def test_type_offered_in_one_zone_still_gets_a_second_subnet(tmp_path: Path) -> None:
    proc = _apply(tmp_path, [("hpc6a.48xlarge", "use2-az3")], ["hpc6a.48xlarge"])
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(proc.stdout)
    assert (outputs["pinned"]["value"], outputs["second"]["value"]) == ("use2-az3", "use2-az1")


def test_no_zone_with_all_types_fails_at_plan_naming_them(tmp_path: Path) -> None:
    offerings = [("c5n.18xlarge", "use2-az1"), ("hpc6a.48xlarge", "use2-az2")]
    proc = _apply(tmp_path, offerings, ["hpc6a.48xlarge", "c5n.18xlarge"])
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert ("No availability zone of us-east-2 offers all of instance_types "
            "[hpc6a.48xlarge, c5n.18xlarge]") in message
    assert not (tmp_path / "terraform.tfstate").exists() or "subnet" not in (
        tmp_path / "terraform.tfstate").read_text()


ZONE_LOCALS = ("placement_zone_candidates", "placement_zone_id", "second_zone_id")
TYPES = ["c5n.18xlarge", "hpc6a.48xlarge"]


def _stack_config(stack: dict) -> dict:
    """The stack's own zone locals and kept choice, the two data sources made variables."""
    def local(expression: str) -> str:
        expression = re.sub(r"data\.aws_availability_zones\.\w+", "local.azs", expression)
        return re.sub(r"data\.aws_ec2_instance_type_offerings\.\w+", "local.offerings",
                      expression)

    (kept_id, kept), = stack["resource"]["terraform_data"].items()
    return {
        "variable": {**{name: stack["variable"][name]
                        for name in ("instance_types", "placement_zone_id")},
                     "offerings": {"type": "list(tuple([string, string]))"}},
        "locals": {**{name: local(stack["locals"][name]) for name in ZONE_LOCALS},
                   "azs": {"zone_ids": ZONES},
                   "offerings": {"locations": "${[for o in var.offerings : o[1]]}",
                                 "instance_types": "${[for o in var.offerings : o[0]]}"}},
        "resource": {"terraform_data": {kept_id: kept}},
        "output": {"pinned": {"value": "${local.placement_zone_id}"},
                   "second": {"value": "${local.second_zone_id}"}},
    }


def _offered_in(*zones: str) -> list[tuple[str, str]]:
    return [(type_, zone) for zone in zones for type_ in TYPES]


@pytest.fixture
def stack_work(synthesized: dict, tmp_path: Path) -> Path:
    (tmp_path / "main.tf.json").write_text(json.dumps(_stack_config(synthesized)))
    assert run_terraform(tmp_path, "init", "-input=false").returncode == 0
    return tmp_path


def _apply_stack(work: Path, offerings: list[tuple[str, str]],
                 pin: str = "") -> subprocess.CompletedProcess:
    proc = run_terraform(work, "apply", "-auto-approve", "-input=false", "-no-color",
                         f"-var=instance_types={json.dumps(TYPES)}",
                         f"-var=offerings={json.dumps(offerings)}",
                         f"-var=placement_zone_id={pin}")
    if proc.returncode:
        return proc
    return run_terraform(work, "output", "-json", timeout=60)


def _pinned(proc: subprocess.CompletedProcess) -> tuple[str, str]:
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(proc.stdout)
    return outputs["pinned"]["value"], outputs["second"]["value"]


def test_pinned_zone_stays_when_aws_adds_an_offering(stack_work: Path) -> None:
    assert _pinned(_apply_stack(stack_work, _offered_in("use2-az2", "use2-az3"))) == (
        "use2-az2", "use2-az1")
    # issue 20: az1 (a lower id) starts offering the types; the subnets must not move.
    assert _pinned(_apply_stack(stack_work, _offered_in("use2-az1", "use2-az2", "use2-az3"))) == (
        "use2-az2", "use2-az1")


def test_placement_zone_id_pins_and_must_offer_every_type(stack_work: Path) -> None:
    offerings = _offered_in("use2-az2", "use2-az3")
    assert _pinned(_apply_stack(stack_work, offerings, pin="use2-az3")) == ("use2-az3", "use2-az1")
    proc = _apply_stack(stack_work, offerings, pin="use2-az1")
    assert proc.returncode != 0
    assert ('placement_zone_id = "use2-az1" does not offer all of instance_types '
            "[c5n.18xlarge, hpc6a.48xlarge]: use one of [use2-az2, use2-az3]") in " ".join(
                proc.stderr.split())


def test_kept_zone_that_no_longer_offers_the_types_is_named(stack_work: Path) -> None:
    assert _pinned(_apply_stack(stack_work, _offered_in("use2-az2")))[0] == "use2-az2"
    proc = _apply_stack(stack_work, _offered_in("use2-az3"))
    assert proc.returncode != 0
    assert ("The placement zone use2-az2, kept since the first apply, does not offer all of "
            "instance_types [c5n.18xlarge, hpc6a.48xlarge]: set placement_zone_id to one that "
            "does ([use2-az3])") in " ".join(proc.stderr.split())
