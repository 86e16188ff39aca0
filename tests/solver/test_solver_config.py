"""Option parsing: defaults, params.json, flags, environment, validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from solver.config import SolverConfig, UsageError, parse_heat_args


def test_defaults_are_a_2d_run() -> None:
    cfg = parse_heat_args([], environ={})
    assert cfg.grid == (1025, 1025)
    assert cfg.total_steps == 500
    assert cfg.output_path == "output"
    assert cfg.time_step == pytest.approx(0.8 * (1 / 1024) ** 2 / 4)


def test_params_json_then_flags_override(tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text(json.dumps({"nx": 33, "ny": 21, "steps": 7,
                                                      "checkpoint-every": 3}))
    cfg = parse_heat_args(["--input-path", str(tmp_path), "--steps", "9"], environ={})
    assert (cfg.nx, cfg.ny, cfg.steps, cfg.checkpoint_every) == (33, 21, 9, 3)


def test_environment_supplies_paths(tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text('{"nz": 9}')
    env = {"INPUT_PATH": str(tmp_path), "OUTPUT_PATH": "/shared/out"}
    cfg = parse_heat_args([], environ=env)
    assert cfg.grid == (1025, 1025, 9)
    assert cfg.output_path == "/shared/out"
    assert parse_heat_args(["--output-path", "here"], environ=env).output_path == "here"


def test_t_end_lands_exactly() -> None:
    cfg = parse_heat_args(["--nx", "17", "--ny", "17", "--t-end", "0.01"], environ={})
    assert cfg.time_step <= 0.8 * (1 / 16) ** 2 / 4
    assert cfg.total_steps * cfg.time_step == pytest.approx(0.01, rel=1e-14)
    assert cfg.total_steps == math.ceil(0.01 / (0.8 * (1 / 16) ** 2 / 4))


def test_t_end_flag_beats_steps_in_params(tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text('{"steps": 3}')
    cfg = parse_heat_args(["--input-path", str(tmp_path), "--t-end", "0.5", "--nx", "5",
                           "--ny", "5"], environ={})
    assert cfg.t_end == 0.5


@pytest.mark.parametrize(("values", "fragment"), [
    ({"nx": 2}, "nx must be at least 3"),
    ({"ny": -5}, "ny must be at least 3"),
    ({"nz": 2}, "nz must be 0 (2-D) or at least 3"),
    ({"steps": -1}, "steps must be >= 0"),
    ({"alpha": 0.0}, "alpha must be a positive number"),
    ({"dt": 1.0, "nx": 5, "ny": 5}, "dt 1 is unstable"),
    ({"dt": -1.0}, "dt must be a positive number"),
    ({"t_end": float("nan")}, "t_end must be a positive number"),
    ({"checkpoint_every": -2}, "checkpoint_every must be >= 0"),
])
def test_config_rejects_bad_values(values: dict, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        SolverConfig(**values)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("params", "fragment"), [
    ('{"nx": 9, "colour": 1}', "unknown option(s) colour"),
    ('{"nx": "9"}', "nx has the wrong type"),
    ("[1, 2]", "must hold a JSON object"),
    ("{nx: 9", "cannot read"),
    ('{"steps": 5, "t_end": 1.0}', "mutually exclusive"),
])
def test_bad_params_json(tmp_path: Path, params: str, fragment: str) -> None:
    (tmp_path / "params.json").write_text(params)
    with pytest.raises(UsageError) as info:
        parse_heat_args(["--input-path", str(tmp_path)], environ={})
    assert fragment in str(info.value)


def test_usage_errors_do_not_exit() -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: --colour"):
        parse_heat_args(["--colour", "red"], environ={})
    with pytest.raises(UsageError, match="not allowed with argument"):
        parse_heat_args(["--steps", "3", "--t-end", "1"], environ={})
