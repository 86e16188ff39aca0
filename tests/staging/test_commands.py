"""The command lines every starter of a staging job writes (docs/CONTRACTS.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from staging import commands
from staging.__main__ import parser


def test_the_stage_in_destination_is_new_per_submission_below_the_input_path() -> None:
    when = datetime(2026, 12, 7, 4, 5, 6, tzinfo=UTC)
    assert commands.stage_in_dest("/mnt/efs/data", "heat-1", when, "a1b2c3") == (
        "/mnt/efs/data/staged/heat-1-20261207T040506Z-a1b2c3")
    assert commands.stage_in_dest(None, "heat-1", when, "a1b2c3").startswith(
        "/mnt/efs/input/staged/")
    assert commands.stage_in_dest(None, "x") != commands.stage_in_dest(None, "x")


def test_the_commands_are_what_the_program_parses() -> None:
    args = parser().parse_args(commands.in_command("s3://data/in", "/mnt/efs/input/x")[3:])
    assert (str(args.source), str(args.dest)) == ("s3://data/in/", "/mnt/efs/input/x")
    out = commands.out_command("J", "FAILED", "/mnt/efs/output", "s3://data/out/")
    args = parser().parse_args(out[3:])
    assert (args.job, args.status, str(args.output_dir), str(args.to)) == (
        "J", "FAILED", "/mnt/efs/output", "s3://data/out/")
    # the stage-out job definition's command: Batch substitutes each Ref:: from the parameters
    assert commands.out_command_template() == [
        "python", "-m", "staging", "out", "--job", "Ref::jobId", "--status", "Ref::status",
        "--from", "Ref::outputDir", "--to", "Ref::stageOut"]
