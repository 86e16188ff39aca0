"""The continuation's command, run by the real solver: three generations on fewer and fewer
ranks share one checkpoint directory, each resumes from its predecessor's newest checkpoint
(sealed with that job's key), and the end is bit-identical to a run never interrupted."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from continuation.apply import continuation_command
from continuation.family import family_of
from launcher import jobkeys
from launcher.contract import CHECKPOINT_KEY_ENV, OUTPUT_PATH_ENV
from solver.config import parse_heat_args
from tests.continuation.test_decide import recorded

SECRET = "stack-rendezvous-secret"
GRID = ["heat", "--nx", "33", "--ny", "33", "--no-png"]


def generations(out: Path) -> list[dict[str, Any]]:
    """The recorded run of three, its output path (the job definition's OUTPUT_PATH) moved
    to `out`."""
    jobs = copy.deepcopy(recorded("three_generations"))
    for job in jobs:
        for var in job["nodeProperties"]["nodeRangeProperties"][0]["container"]["environment"]:
            if var["name"] == "OUTPUT_PATH":
                var["value"] = str(out)
    return jobs


def test_the_solver_reads_the_family_directory_and_accepts_every_members_key() -> None:
    jobs = recorded("three_generations")
    family = family_of(jobs)
    command = continuation_command(family, ["python", "-m", "solver", *GRID], restart=True)
    cfg = parse_heat_args(command[4:], environ={})  # after "python -m solver heat"
    # argparse keeps the last --restart-from: the family's directory (docs/CONTRACTS.md:
    # "--restart-from DIR/<job id>" or the checkpoints directory itself)
    assert cfg.restart_from == cfg.checkpoint_dir == family.checkpoint_dir
    assert jobkeys.restart_sources(command) == [j["jobId"] for j in jobs[1:]] + [family.id]


def test_a_recorded_command_is_rebuilt_not_extended() -> None:
    """Generation 3 recorded the flags already; the controller's command for generation 4 has
    each flag once per member, not twice."""
    family = family_of(recorded("three_generations"))
    recorded_cmd = family.newest.container["command"]
    command = continuation_command(family, recorded_cmd, restart=True)
    assert command.count("--checkpoint-dir") == 1
    assert command.count("--restart-from") == len(family.members)
    assert continuation_command(family, recorded_cmd, restart=False)[-2:] == [
        "--checkpoint-dir", family.checkpoint_dir]


def test_three_generations_on_fewer_ranks_end_bit_identical(tmp_path: Path, heat_here,
                                                            run_solver) -> None:
    straight = heat_here([*GRID[1:], "--steps", "60", "--output-path", str(tmp_path / "s")],
                         env={"AWS_BATCH_JOB_ID": "straight"})
    assert straight.returncode == 0, straight.stderr
    jobs = generations(tmp_path)
    resumed = []
    # steps each generation reaches, checkpoints every 10; ranks shrink as nodes are lost
    for count, (steps, ranks) in enumerate([(25, 3), (45, 2), (60, 1)], start=1):
        family = family_of(jobs[:count])
        job_id = jobs[count - 1]["jobId"]
        base = [*GRID, "--steps", str(steps), "--checkpoint-every", "10"]
        args = base if count == 1 else continuation_command(
            family_of(jobs[:count - 1]), base, restart=True)
        key = jobkeys.checkpoint_env(job_id, SECRET, args)
        run = run_solver(args, ranks=ranks, env={"AWS_BATCH_JOB_ID": job_id,
                                                 CHECKPOINT_KEY_ENV: key,
                                                 OUTPUT_PATH_ENV: str(tmp_path)})
        assert run.returncode == 0, run.stderr
        resumed.append(run.summary["restarted_from_step"])
    assert resumed == [None, 20, 40]  # generation 3 took generation 2's own checkpoint
    last = tmp_path / jobs[-1]["jobId"] / "field.npy"
    np.testing.assert_array_equal(np.load(last), np.load(tmp_path / "s" / "straight" /
                                                         "field.npy"))
    assert family.checkpoint_dir == str(tmp_path / jobs[0]["jobId"] / "checkpoints")


def test_members_batch_no_longer_describes_are_still_named() -> None:
    """Only the newest member described (older ones gone from Batch): its recorded command
    still names generation 2, so generation 4 accepts its checkpoints; the name still
    derives from the run's."""
    jobs = recorded("three_generations")
    alone = family_of(jobs[-1:])
    command = continuation_command(alone, alone.newest.container["command"], restart=True)
    assert jobkeys.restart_sources(command) == [jobs[1]["jobId"], jobs[2]["jobId"],
                                                jobs[0]["jobId"]]
    assert alone.continuation_name(4) == "heat-big-g4"
    assert alone.checkpoint_dir == family_of(jobs).checkpoint_dir
