"""The 6.x -> 5.x mapping changes exactly the names it lists, and nothing for a 6.x provider."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from tests.deploy.provider import RENAMES_6_TO_5, Provider, choose, map_back

STACK = {
    "terraform": {"required_providers": {"aws": {"source": "aws", "version": "6.25.0"}}},
    "data": {"aws_region": {"r": {}}},
    "resource": {
        "aws_batch_compute_environment": {"ce": {"name_prefix": "c-", "type": "MANAGED"},
                                          "named": {"name": "c", "type": "MANAGED"}},
        "aws_batch_job_queue": {"q": {"name": "q-${data.aws_region.r.region}"}},
    },
}


def test_5x_maps_back_only_the_listed_names() -> None:
    mapped, used = map_back(copy.deepcopy(STACK), Provider("5.100.0", Path("/mirror")))
    resources = mapped["resource"]
    assert resources["aws_batch_compute_environment"]["ce"] == {
        "compute_environment_name_prefix": "c-", "type": "MANAGED"}
    assert resources["aws_batch_compute_environment"]["named"] == {
        "compute_environment_name": "c", "type": "MANAGED"}
    # A job queue's own `name` is no compute-environment argument: only the reference moves.
    assert resources["aws_batch_job_queue"]["q"] == {"name": "q-${data.aws_region.r.name}"}
    assert mapped["terraform"]["required_providers"]["aws"]["version"] == "5.100.0"
    assert len(used) == len(RENAMES_6_TO_5) + 1


def test_6x_runs_the_stack_unchanged() -> None:
    mapped, used = map_back(copy.deepcopy(STACK), Provider("6.25.0", None))
    assert (mapped, used) == (STACK, [])


def test_a_mirror_holding_the_pinned_version_wins(tmp_path: Path, monkeypatch) -> None:
    for version in ("5.100.0", "6.25.0"):
        (tmp_path / "registry.terraform.io/hashicorp/aws" / version).mkdir(parents=True)
    monkeypatch.setenv("TF_PROVIDER_MIRROR", str(tmp_path))
    assert choose("6.25.0") == Provider("6.25.0", tmp_path)
    assert choose("6.30.0") == Provider("6.25.0", tmp_path)  # the newest it has
    newer = copy.deepcopy(STACK)
    newer["terraform"]["required_providers"]["aws"]["version"] = "6.30.0"
    mapped, used = map_back(newer, choose("6.30.0"))
    assert mapped["resource"] == STACK["resource"]
    assert used == [f"required_providers.aws.version 6.25.0 (mirror {tmp_path})"]
    config = choose("6.25.0").cli_config()
    assert f'path    = "{tmp_path}"' in config and json.dumps(str(tmp_path)) in config
