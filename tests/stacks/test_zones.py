"""The zone choice run by a real terraform CLI on made-up offerings (no AWS provider needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stacks.zones import first_zone, no_zone_message, offering_zones, other_zone
from tests.stacks.conftest import TERRAFORM, run_terraform

pytestmark = pytest.mark.skipif(
    TERRAFORM is None, reason="no terraform CLI installed: install Terraform >= 1.11 to run these")

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
