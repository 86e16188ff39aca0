"""Solver options: command line + params.json, validated into a frozen ``SolverConfig``."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from launcher import files
from launcher.contract import INPUT_PATH_ENV, OUTPUT_PATH_ENV
from launcher.inputs import finite_number_arg, whole_number_arg
from solver.stencil import stable_dt

DEFAULT_N = 1025
DEFAULT_STEPS = 500
DT_SAFETY = 0.8  # fraction of the stability limit used when --dt is not given
PARAMS_FILE = "params.json"
# Whole numbers index numpy int64 arrays and MPI offsets; a float field given as a whole number
# must convert to a float (a 401-digit one overflows).
MAX_WHOLE = 2**63 - 1


class UsageError(ValueError):
    """Bad input or usage: exit code 2, nothing started."""


decimal_arg = finite_number_arg  # the one ASCII spelling of a float (launcher.inputs)


def shown(value: object) -> str:
    """``value`` for an error line: a huge number is cut to its first digits and its length."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


@dataclass(frozen=True)
class SolverConfig:
    """Everything a heat run needs; checked on construction."""

    nx: int = DEFAULT_N  # grid points along x, boundary included
    ny: int = DEFAULT_N  # grid points along y, boundary included
    nz: int = 0  # grid points along z (0 = 2-D run)
    steps: int = DEFAULT_STEPS  # time steps to take
    t_end: float | None = None  # if set, steps = ceil(t_end / dt) and dt is shrunk to land on it
    alpha: float = 1.0  # diffusivity
    dt: float | None = None  # time step; default DT_SAFETY x the stability limit
    checkpoint_every: int = 100  # steps between checkpoints (0 = only on SIGTERM)
    checkpoint_dir: str | None = None  # default <output>/<job id>/checkpoints
    restart_from: str | None = None  # <dir>/<job id> of another job to start from
    output_path: str = "output"  # parent directory; results go under <output_path>/<job id>/
    input_path: str | None = None  # directory that may hold params.json
    png: bool = True  # draw field.png
    log_every: int = 0  # progress line to stderr every N steps (0 = off)

    def __post_init__(self) -> None:
        self._check_magnitudes()
        for name in ("nx", "ny"):
            if getattr(self, name) < 3:
                raise UsageError(f"{name} must be at least 3 (got {getattr(self, name)})")
        if self.nz != 0 and self.nz < 3:
            raise UsageError(f"nz must be 0 (2-D) or at least 3 (got {self.nz})")
        if self.steps < 0:
            raise UsageError(f"steps must be >= 0 (got {self.steps})")
        if self.alpha <= 0 or not math.isfinite(self.alpha):
            raise UsageError(f"alpha must be a positive number (got {self.alpha})")
        if self.t_end is not None and (self.t_end <= 0 or not math.isfinite(self.t_end)):
            raise UsageError(f"t_end must be a positive number (got {self.t_end})")
        if self.checkpoint_every < 0:
            raise UsageError(f"checkpoint_every must be >= 0 (got {self.checkpoint_every})")
        if self.log_every < 0:
            raise UsageError(f"log_every must be >= 0 (got {self.log_every})")
        limit = stable_dt(self.alpha, self.spacing)
        if self.dt is not None:
            if self.dt <= 0 or not math.isfinite(self.dt):
                raise UsageError(f"dt must be a positive number (got {self.dt})")
            if self.dt > limit:
                raise UsageError(f"dt {self.dt:g} is unstable for this grid (limit {limit:g})")
        # Derived values overflow or underflow for extreme inputs (alpha=1e-320 gives dt=inf):
        # one check here covers every path that reads them (log line, checkpoints, summary).
        try:
            dt, steps = self.time_step, self.total_steps
            end = steps * dt
        except OverflowError:  # t_end / dt is infinite
            dt, steps, end = self.dt or stable_dt(self.alpha, self.spacing), "inf", math.inf
        if not (math.isfinite(dt) and dt > 0 and math.isfinite(end)):
            raise UsageError(f"the time step works out as dt={dt!r} and the final time as "
                             f"t={end!r} after {steps} steps (alpha={self.alpha!r}, grid "
                             f"{self.grid}): both must be positive finite numbers")

    def _check_magnitudes(self) -> None:
        """Whole numbers up to MAX_WHOLE; whole numbers given for floats become floats."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            if "float" in str(f.type):
                try:
                    object.__setattr__(self, f.name, float(value))
                except OverflowError:
                    raise UsageError(f"{f.name} {shown(value)} is too large for a "
                                     "floating-point number") from None
            elif abs(value) > MAX_WHOLE:
                raise UsageError(f"{f.name} {shown(value)} is out of range: at most {MAX_WHOLE} "
                                 "either side of 0")

    @property
    def grid(self) -> tuple[int, ...]:
        """Global grid points per axis, boundary included."""
        return (self.nx, self.ny, self.nz) if self.nz else (self.nx, self.ny)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Grid spacing per axis on the unit square/cube."""
        return tuple(1.0 / (n - 1) for n in self.grid)

    @property
    def time_step(self) -> float:
        """The dt actually used (given, or derived from the stability limit and t_end)."""
        dt = self.dt if self.dt is not None else DT_SAFETY * stable_dt(self.alpha, self.spacing)
        if self.t_end is not None:
            # at least one step: a t_end far below dt is one (shorter) step, not zero steps
            dt = self.t_end / max(1, math.ceil(self.t_end / dt - 1e-12))
        return dt

    @property
    def total_steps(self) -> int:
        """Steps to take (from t_end when given)."""
        if self.t_end is None:
            return self.steps
        return round(self.t_end / self.time_step)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m solver heat", argument_default=argparse.SUPPRESS,
                description="Explicit finite-difference heat equation on the unit square/cube.")
    whole = whole_number_arg
    p.add_argument("--nx", type=whole, help=f"grid points along x incl. boundary ({DEFAULT_N})")
    p.add_argument("--ny", type=whole, help=f"grid points along y incl. boundary ({DEFAULT_N})")
    p.add_argument("--nz", type=whole, help="grid points along z; 0 = 2-D (0)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--steps", type=whole, help=f"time steps ({DEFAULT_STEPS})")
    group.add_argument("--t-end", type=decimal_arg, help="final time (sets the step count)")
    p.add_argument("--alpha", type=decimal_arg, help="diffusivity (1.0)")
    p.add_argument("--dt", type=decimal_arg,
                   help=f"time step (default {DT_SAFETY} x stability limit)")
    p.add_argument("--checkpoint-every", type=whole,
                   help="steps between checkpoints; 0 = only on SIGTERM (100)")
    p.add_argument("--checkpoint-dir", help="checkpoint directory (<output>/<job id>/checkpoints)")
    p.add_argument("--restart-from", help="start from the latest checkpoint of DIR/<job id>")
    p.add_argument("--input-path", help="directory with params.json (env INPUT_PATH)")
    p.add_argument("--output-path", help="parent of the per-job output dir (env OUTPUT_PATH)")
    p.add_argument("--no-png", dest="png", action="store_false", help="skip field.png")
    p.add_argument("--log-every", type=whole, help="progress line on stderr every N steps (0)")
    return p


def _read_params(input_path: str) -> dict[str, Any]:
    path = Path(input_path)
    if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"input path {input_path} is not a readable directory")
    params_file = path / PARAMS_FILE
    if not os.path.lexists(params_file):  # a symlink loop there is an error, not "no file"
        return {}
    try:
        params = files.load_json(params_file)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {params_file}: {exc}") from exc
    if not isinstance(params, dict):
        raise UsageError(f"{params_file} must hold a JSON object")
    known = {f.name for f in fields(SolverConfig)} - {"input_path"}
    params = {k.replace("-", "_"): v for k, v in params.items()}
    unknown = sorted(set(params) - known)
    if unknown:
        raise UsageError(f"{params_file}: unknown option(s) {', '.join(unknown)}")
    return params


def _check_types(values: dict[str, Any]) -> None:
    for f in fields(SolverConfig):
        if f.name not in values or values[f.name] is None:
            continue
        v = values[f.name]
        want = str(f.type)
        ok = (isinstance(v, bool) if want == "bool" else
              isinstance(v, int) and not isinstance(v, bool) if want == "int" else
              isinstance(v, (int, float)) and not isinstance(v, bool) if "float" in want else
              isinstance(v, str))
        if not ok:
            raise UsageError(f"{f.name} has the wrong type ({shown(v)})")
        if isinstance(v, str) and "\0" in v:  # a path; only params.json can hold one
            raise UsageError(f"{f.name} {shown(v)} holds a NUL character")


def parse_heat_args(argv: list[str], environ: dict[str, str] | None = None) -> SolverConfig:
    """Merge defaults < params.json < flags (env INPUT_PATH/OUTPUT_PATH as flag defaults)."""
    env = os.environ if environ is None else environ
    flags = vars(_parser().parse_args(argv))
    values: dict[str, Any] = {}
    input_path = flags.get("input_path", env.get(INPUT_PATH_ENV) or None)
    if input_path:
        values.update(_read_params(input_path))
        values["input_path"] = input_path
    if env.get(OUTPUT_PATH_ENV) and "output_path" not in values:
        values["output_path"] = env[OUTPUT_PATH_ENV]
    if "t_end" in flags:
        values.pop("steps", None)
    if "steps" in flags:
        values.pop("t_end", None)
    values.update(flags)
    if values.get("steps") is not None and values.get("t_end") is not None:
        raise UsageError("steps and t_end are mutually exclusive")
    _check_types(values)
    return SolverConfig(**values)
