"""The configuration section of stacks/README.md names exactly the stack's Terraform variables
and exactly the environment variables synth reads: a page that drifts from the code fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from stacks.config import ConfigError, PlatformConfig

PAGE = Path(__file__).resolve().parents[2] / "stacks" / "README.md"
NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def section(text: str, heading: str) -> str:
    """The text under one `## ` heading, up to the next one."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def first_column_names(text: str) -> set[str]:
    """Backticked names in the first column of every table whose first header says 'variable'."""
    names: set[str] = set()
    in_table = False
    for line in text.splitlines():
        row = line.strip()
        cells = [c.strip() for c in row.strip("|").split("|")] if row.startswith("|") else []
        if not cells:
            in_table = False
        elif not in_table:
            in_table = "variable" in cells[0]
        elif not set(cells[0]) <= set("-: "):
            names.update(NAME.findall(cells[0]))
    return names


class Reads(Mapping[str, str]):
    """An environment that records every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.read = values, set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return key in self.values

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(key)
        return self.values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("synth must look names up, not list the environment")

    def __len__(self) -> int:
        return len(self.values)


def names_synth_reads() -> set[str]:
    """Every variable PlatformConfig.from_env looks up: with no region (the profile lookup),
    and with a region and an S3 state bucket (the backend's settings)."""
    read: set[str] = set()
    for values in ({"AWS_CONFIG_FILE": "/nonexistent/aws-config"},
                   {"AWS_REGION": "us-east-1", "STATE_BUCKET": "my-tfstate"}):
        env = Reads(values)
        try:
            PlatformConfig.from_env(env)
        except ConfigError:
            pass  # no region: everything before the region was read all the same
        read |= env.read
    return read


@pytest.fixture(scope="module")
def configuration() -> str:
    return section(PAGE.read_text(), "Configuration")


def test_the_table_names_every_terraform_variable(configuration: str, synthesized: dict) -> None:
    documented = {n for n in first_column_names(configuration) if n.islower()}
    assert documented == set(synthesized["variable"])


def test_the_tables_name_every_environment_variable_synth_reads(configuration: str) -> None:
    documented = {n for n in first_column_names(configuration) if n.isupper()}
    assert documented == names_synth_reads()


def test_names_synth_reads_include_the_settings_and_the_backend() -> None:
    read = names_synth_reads()
    assert {"CLUSTER_NAME", "ENABLE_EFA", "AWS_DEFAULT_REGION", "AWS_PROFILE",
            "STATE_KEY", "STATE_REGION"} <= read


@pytest.mark.parametrize(("table", "expected"), [
    ("| variable | type |\n|---|---|\n| `a_b` | string |\n| `C`, `D` | x |\n", {"a_b", "C", "D"}),
    ("| check | status |\n|---|---|\n| `a_b` | x |\n", set()),
    ("| variable | x |\n|---|---|\n| `a` | `not_me` |\n\ntext `b`\n", {"a"}),
])
def test_first_column_names(table: str, expected: set[str]) -> None:
    assert first_column_names(table) == expected
