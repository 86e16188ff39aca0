"""Parsing of outside text, one set of spellings for the solver, the jobs CLI and the stack
settings (kept in the stdlib-only launcher package, the layer every part may import).

``int()`` also takes ``'٨'``, ``'８'``, ``'1_000'``, ``'+8'`` and surrounding blanks, and
``float()`` takes ``'nan'``/``'inf'``; values from flags and environment variables go through
these instead, so every part accepts the same spellings.
"""

from __future__ import annotations

import argparse
import math
import re

_WHOLE = re.compile(r"-?[0-9]+")
# A decimal in ASCII: digits, one '.', an exponent; no '_', no '+', no other scripts' digits,
# no blanks (the same spellings as whole numbers).
DECIMAL = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")


def whole_number(text: str) -> int:
    """ASCII digits with an optional leading '-'; ValueError naming the text otherwise."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise ValueError(f"{text!r} is not a whole number (ASCII digits only)")
    return int(text)


def whole_number_arg(text: str) -> int:
    """``whole_number`` as an argparse ``type=``."""
    try:
        return whole_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def finite_number(text: str) -> float:
    """A finite float spelt in ASCII (e.g. 0.5, 1e-3); ValueError naming the text otherwise."""
    if not isinstance(text, str) or not DECIMAL.fullmatch(text):
        raise ValueError(f"{text!r} is not a number (ASCII digits, e.g. 0.5 or 1e-3)")
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def finite_number_arg(text: str) -> float:
    """``finite_number`` as an argparse ``type=``."""
    try:
        return finite_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def known_region(name: str) -> str:
    """An AWS region listed in botocore's partition data; ValueError naming it otherwise.

    Used by the CLI and the stack (botocore is not needed in the image: nothing there calls it).
    """
    from botocore import __version__ as botocore_version
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("partitions")["partitions"]
    regions = {r for p in partitions for r in p["regions"] if "global" not in r}
    if name not in regions:
        raise ValueError(
            f"{name!r} is not an AWS region known to botocore {botocore_version} "
            f"(did you mean {', '.join(nearest_regions(name, regions))}? a region newer than "
            "botocore needs a botocore upgrade)")
    return name


def nearest_regions(name: str, regions: set[str]) -> list[str]:
    """The regions a mistyped `name` most likely meant: those it begins (eu-west ->
    eu-west-1..3), else the closest spellings, else those of its geography."""
    import difflib

    ordered = sorted(regions)
    return ([r for r in ordered if r.startswith(name)][:6]
            or difflib.get_close_matches(name, ordered, n=4, cutoff=0.6)
            or [r for r in ordered if r.split("-")[0] == name.split("-")[0]][:6]
            or ["us-east-1", "eu-west-1"])


# Programs that start an MPI world themselves. The launcher already runs the job's command under
# mpiexec on every node, so one of these first would start MPI inside MPI (CONTRACTS.md: the
# job's command). Versioned names (`mpirun.openmpi`, `mpiexec.hydra`) are Debian's alternatives.
MPI_STARTERS = ("mpirun", "mpiexec", "orterun", "prterun", "srun", "aprun", "hydra")


def mpi_starter(command: list[str] | tuple[str, ...]) -> str | None:
    """The MPI starter that `command` begins with (its first word's file name), else None."""
    if not command:
        return None
    name = command[0].rstrip("/").rpartition("/")[2]
    return name if name.partition(".")[0] in MPI_STARTERS else None


def mpi_starter_refusal(command: list[str] | tuple[str, ...]) -> str | None:
    """One line refusing a job command that starts its own MPI world, else None."""
    starter = mpi_starter(command)
    if starter is None:
        return None
    return (f"the job's command starts with {starter!r}, but mnp-launch already runs it under "
            f"mpiexec on every node: drop {starter!r} and its options and give the program "
            "itself (ranks per node come from MNP_RANKS_PER_NODE)")
