"""Where Terraform keeps state: local by default, S3 with its lock file when STATE_BUCKET is set."""

from __future__ import annotations

from tests.stacks.conftest import synth_stack


def test_default_is_local_state_beside_the_project(synthesized: dict) -> None:
    assert synthesized["terraform"]["backend"] == {
        "local": {"path": "../../../terraform.test.tfstate"}}


def test_state_bucket_selects_s3_with_native_locking() -> None:
    stack = synth_stack({"STATE_BUCKET": "acme-tfstate", "STATE_REGION": "eu-west-1",
                         "CLUSTER_NAME": "cfd"})
    assert stack["terraform"]["backend"] == {"s3": {
        "bucket": "acme-tfstate", "key": "mnp-batch/cfd/terraform.tfstate",
        "region": "eu-west-1", "encrypt": True, "use_lockfile": True}}
