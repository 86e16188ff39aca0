"""The whole synthesized stack, reviewed as a diff whenever it changes."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_stack_matches_reviewed_snapshot(synthesized: dict,
                                         snapshot_json: SnapshotAssertion) -> None:
    # Update only on purpose (pytest --snapshot-update) and review the diff.
    assert synthesized == snapshot_json
