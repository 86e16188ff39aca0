"""Helpers shared by the solver tests."""

from __future__ import annotations

import json


def strict_summary(stdout: str) -> dict:
    """The summary line, refusing NaN and Infinity (which json.loads would take)."""
    def refuse(name: str) -> float:
        raise AssertionError(f"non-finite number {name} in the summary line")
    return json.loads(stdout.strip().splitlines()[-1], parse_constant=refuse)
