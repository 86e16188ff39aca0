"""Checkpoints are verified before they are resumed: complete, sealed (under the job's key
when it has one), consistent in step, time and grid, and this run's; else skipped with the
reason for the previous one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from solver import seal
from tests.solver.runs import strict_summary

RUN = ["--nx", "33", "--ny", "25", "--no-png"]


KEY, OTHER_KEY = "k3y-of-this-job", "k3y-of-another-job"


def _checkpoints(tmp_path: Path, heat_here, key: str | None) -> tuple[Path, np.ndarray]:
    """Job "job": a first attempt of 25 steps with checkpoints at steps 10 and 20 (sealed
    under ``key``), and the field of a straight 40-step run."""
    straight = heat_here([*RUN, "--steps", "40", "--checkpoint-every", "0",
                          "--output-path", str(tmp_path / "straight")],
                         env={"AWS_BATCH_JOB_ID": "straight"})
    assert straight.returncode == 0, straight.stderr
    first = heat_here([*RUN, "--steps", "25", "--checkpoint-every", "10",
                       "--output-path", str(tmp_path)], env=_env(key))
    assert first.returncode == 0, first.stderr
    return (tmp_path / "job" / "checkpoints",
            np.load(tmp_path / "straight" / "straight" / "field.npy"))


def _env(key: str | None, attempt: str = "1") -> dict[str, str]:
    env = {"AWS_BATCH_JOB_ID": "job", "AWS_BATCH_JOB_ATTEMPT": attempt}
    return env if key is None else {**env, "MNP_CHECKPOINT_KEY": key}


@pytest.fixture
def two_checkpoints(tmp_path: Path, heat_here) -> tuple[Path, np.ndarray]:
    """Unkeyed checkpoints at steps 10 and 20, and the straight run's field."""
    return _checkpoints(tmp_path, heat_here, None)


def _edit_meta(step_dir: Path, **changes: object) -> None:
    meta = json.loads((step_dir / "meta.json").read_text())
    meta.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del meta[key]
    (step_dir / "meta.json").write_text(json.dumps(meta))


def _edit_field(step_dir: Path, value: float) -> None:
    field = np.load(step_dir / "field.npy")
    field[5, 5] = value
    np.save(step_dir / "field.npy", field)


def _relabel(step_dir: Path, step: int) -> None:
    _edit_meta(step_dir, step=step)
    step_dir.rename(step_dir.with_name(f"step-{step:010d}"))


TAMPER = [
    (lambda d: _edit_field(d, np.nan), "seal mismatch"),
    (lambda d: _edit_field(d, 1e300), "seal mismatch"),
    (lambda d: _edit_field(d, -np.inf), "seal mismatch"),
    (lambda d: _relabel(d, 30), "seal mismatch"),
    (lambda d: _edit_meta(d, dt=None), "meta.json lacks dt"),
    (lambda d: _edit_meta(d, alpha=None), "meta.json lacks alpha"),
    (lambda d: _edit_meta(d, ranks=None), "meta.json lacks ranks"),
    (lambda d: _edit_meta(d, seal=None), "meta.json lacks seal"),
    (lambda d: _edit_meta(d, dt=float("nan")), "meta.json dt=nan is not a finite float"),
    (lambda d: _edit_meta(d, ranks="2"), "meta.json ranks='2' is not a finite int"),
    (lambda d: _edit_meta(d, format=1), "format 1, this solver reads"),
    (lambda d: (d / "meta.json").write_text("[]"), "meta.json is not a JSON object"),
    (lambda d: (d / "meta.json").write_text('{"step": 2'), "meta.json unreadable"),
]


@pytest.mark.parametrize(("tamper", "reason"), TAMPER)
def test_a_bad_checkpoint_is_skipped_for_the_previous_one(
        tmp_path: Path, heat_here, two_checkpoints, tamper, reason: str) -> None:
    ckpts, straight = two_checkpoints
    tamper(ckpts / "step-0000000020")
    result = heat_here([*RUN, "--steps", "40", "--checkpoint-every", "0",
                        "--output-path", str(tmp_path)],
                       env={"AWS_BATCH_JOB_ID": "job", "AWS_BATCH_JOB_ATTEMPT": "2"})
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if "skipped checkpoint" in line]
    assert len(skipped) == 1 and "step-00000000" in skipped[0] and reason in skipped[0], \
        result.stderr
    assert strict_summary(result.stdout)["restarted_from_step"] == 10
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "field.npy"), straight)


@pytest.mark.parametrize("value", [1e300, 1e308, np.nan])
def test_a_field_that_ends_non_finite_prints_no_summary(tmp_path: Path, heat_here,
                                                        two_checkpoints, value: float) -> None:
    """Even a forged checkpoint (checksum recomputed) cannot put NaN or Infinity on stdout."""
    ckpts, _ = two_checkpoints
    step = ckpts / "step-0000000020"
    _edit_field(step, value)
    meta = json.loads((step / "meta.json").read_text())
    meta["seal"], finite = seal.seal(meta, str(step / "field.npy"), None)
    (step / "meta.json").write_text(json.dumps(meta))
    result = heat_here([*RUN, "--steps", "40", "--output-path", str(tmp_path)],
                       env={"AWS_BATCH_JOB_ID": "job", "AWS_BATCH_JOB_ATTEMPT": "2"})
    if not finite:  # refused at restart: resumed from step 10 instead
        assert "the field holds NaN or infinite values" in result.stderr
        assert result.returncode == 0 and strict_summary(result.stdout)
        return
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "the field is not finite at step 40" in result.stderr
    # the job's summary.json is still the first run's (25 steps)
    assert json.loads((tmp_path / "job" / "summary.json").read_text())["steps"] == 25


def _reseal(step_dir: Path, key: str | None = None, **changes: object) -> None:
    """Rewrite meta.json with ``changes`` and a seal recomputed under ``key``, as a forger."""
    meta = json.loads((step_dir / "meta.json").read_text())
    meta.update(changes)
    meta["seal"], _ = seal.seal(meta, str(step_dir / "field.npy"), key and key.encode())
    (step_dir / "meta.json").write_text(json.dumps(meta))


def _restep(step_dir: Path, step: int, key: str | None = None) -> None:
    """Relabel as ``step`` with t = step * dt, resealed, and renamed to match."""
    dt = json.loads((step_dir / "meta.json").read_text())["dt"]
    _reseal(step_dir, key, step=step, t=step * dt)
    step_dir.rename(step_dir.with_name(f"step-{step:010d}"))


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


def _loop_dir(step_dir: Path) -> None:
    for f in step_dir.iterdir():
        f.unlink()
    step_dir.rmdir()
    step_dir.symlink_to(step_dir.name)


# Forged with the plain seal recomputed: the step, time and grid must still agree with each
# other, with the name and the field file, and with this run.
DISAGREE = [
    (lambda d: _reseal(d, step=21), "meta.json says step 21"),
    (lambda d: _reseal(d, t=0.5), "meta.json t=0.5 is not step x dt = 20 x 0.00025"),
    (lambda d: _reseal(d, ranks=0), "ranks=0 must be positive"),
    (lambda d: _reseal(d, dt=1e-4, t=20e-4), "it has dt=0.0001 alpha=1.0, this run has dt=0.00025"),
    (lambda d: _reseal(d, alpha=2.0), "it has dt=0.00025 alpha=2.0, this run has"),
    (lambda d: _reseal(d, grid=[25, 33]), "holds (33, 25) float64, expected (25, 33)"),
    (lambda d: _reseal(d, grid=[33, 25, 3]), "expected (33, 25, 3) float64"),
    (lambda d: _reseal(d, grid=[33, True]), "meta.json grid [33, True] is not a grid"),
    (lambda d: _reseal(d, dt=10**400),
     "dt=10000000000000000000... (401 characters) is not a finite float"),
    # files that are not what they are named (a RecursionError, a hang, an endless read)
    (lambda d: (d / "meta.json").write_text("[" * 200_000), "nested too deeply to parse"),
    (lambda d: _replace(d / "meta.json", os.mkfifo), "meta.json is not a regular file (a FIFO)"),
    (lambda d: _replace(d / "field.npy", os.mkfifo), "field.npy is not a regular file (a FIFO)"),
    (lambda d: _replace(d / "meta.json", lambda p: p.symlink_to("/dev/zero")),
     "meta.json is not a regular file (a character device)"),
    (_loop_dir, "Too many levels of symbolic links"),
]


@pytest.mark.parametrize(("tamper", "reason"), DISAGREE)
def test_a_checkpoint_that_disagrees_is_skipped(tmp_path: Path, heat_here, two_checkpoints,
                                                tamper, reason: str) -> None:
    ckpts, straight = two_checkpoints
    tamper(ckpts / "step-0000000020")
    result = heat_here([*RUN, "--steps", "40", "--checkpoint-every", "0",
                        "--output-path", str(tmp_path)], env=_env(None, "2"))
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if "skipped checkpoint" in line]
    assert len(skipped) == 1 and reason in skipped[0], result.stderr
    summary = strict_summary(result.stdout)
    assert summary["restarted_from_step"] == 10 and summary["steps"] == 40
    assert "done: 30 steps" in result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "field.npy"), straight)


def test_a_negative_step_is_not_resumed(tmp_path: Path, heat_here, two_checkpoints) -> None:
    """It resumed at step -20 (and said "done: 60 steps"), its error ~800x the true one."""
    ckpts, straight = two_checkpoints
    for f in (ckpts / "step-0000000010").iterdir():
        f.unlink()
    (ckpts / "step-0000000010").rmdir()
    _restep(ckpts / "step-0000000020", -20)
    result = heat_here([*RUN, "--steps", "40", "--checkpoint-every", "0",
                        "--output-path", str(tmp_path)], env=_env(None, "2"))
    assert result.returncode == 0, result.stderr
    assert "step--000000020: the name is not step-<step as 10 or more digits>" in result.stderr
    assert strict_summary(result.stdout)["restarted_from_step"] is None
    assert "done: 40 steps" in result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "field.npy"), straight)


def test_a_checkpoint_past_the_end_of_the_run_is_skipped(tmp_path: Path, heat_here,
                                                         two_checkpoints) -> None:
    result = heat_here([*RUN, "--steps", "15", "--output-path", str(tmp_path)],
                       env=_env(None, "2"))
    assert result.returncode == 0, result.stderr
    assert "step-0000000020: it is at step 20, past this run's 15 steps" in result.stderr
    assert strict_summary(result.stdout)["restarted_from_step"] == 10


def test_a_symlink_loop_named_like_a_checkpoint_gives_way(tmp_path: Path, heat_here,
                                                          two_checkpoints) -> None:
    ckpts, straight = two_checkpoints
    (ckpts / "step-0000000030").symlink_to("step-0000000030")
    result = heat_here([*RUN, "--steps", "40", "--checkpoint-every", "10",
                        "--output-path", str(tmp_path)], env=_env(None, "2"))
    assert result.returncode == 0, result.stderr
    assert strict_summary(result.stdout)["restarted_from_step"] == 20
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-0000000020", "step-0000000030"]
    assert (ckpts / "step-0000000030").is_dir() and not (ckpts / "step-0000000030").is_symlink()
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "field.npy"), straight)


# --- checkpoints sealed under the job's key ---------------------------------------------------

FORGERIES = [  # what a job without this job's key can do to its checkpoint
    (lambda d: (_edit_field(d, 0.5), _reseal(d)),
     "sealed without a key (plain sha256), but this run has MNP_CHECKPOINT_KEY"),
    (lambda d: (_edit_field(d, 0.5), _reseal(d, OTHER_KEY)), "seal mismatch"),
    (lambda d: _restep(d, 30, OTHER_KEY), "step-0000000030: seal mismatch"),
    (lambda d: _edit_field(d, 0.5), "seal mismatch"),
    (lambda d: _edit_meta(d, seal="md5:00"), "unknown seal scheme 'md5'"),
]


@pytest.mark.parametrize(("forge", "reason"), FORGERIES)
def test_a_checkpoint_forged_without_the_job_key_is_skipped(
        tmp_path: Path, heat_here, forge, reason: str) -> None:
    ckpts, straight = _checkpoints(tmp_path, heat_here, KEY)
    meta = json.loads((ckpts / "step-0000000020" / "meta.json").read_text())
    assert meta["seal"].startswith("hmac-sha256:")
    forge(ckpts / "step-0000000020")
    result = heat_here([*RUN, "--steps", "40", "--output-path", str(tmp_path)],
                       env=_env(KEY, "2"))
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if "skipped checkpoint" in line]
    assert len(skipped) == 1 and reason in skipped[0], result.stderr
    assert "warning" not in result.stderr
    assert strict_summary(result.stdout)["restarted_from_step"] == 10
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "field.npy"), straight)


def test_keyed_checkpoints_need_the_key(tmp_path: Path, heat_here) -> None:
    ckpts, straight = _checkpoints(tmp_path, heat_here, KEY)
    result = heat_here([*RUN, "--steps", "40", "--output-path", str(tmp_path)],
                       env=_env(None, "2"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("sealed with a key, and MNP_CHECKPOINT_KEY is not set") == 2
    assert "warning: MNP_CHECKPOINT_KEY is not set" in result.stderr
    assert strict_summary(result.stdout)["restarted_from_step"] is None
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "field.npy"), straight)


@pytest.mark.parametrize(("keys", "resumed"), [(f"b-key,{KEY}", 20), ("b-key", None)])
def test_restart_from_another_job_needs_its_key(tmp_path: Path, heat_here, keys: str,
                                                resumed: int | None) -> None:
    _, straight = _checkpoints(tmp_path, heat_here, KEY)
    result = heat_here([*RUN, "--steps", "40", "--output-path", str(tmp_path),
                        "--restart-from", str(tmp_path / "job")],
                       env={"AWS_BATCH_JOB_ID": "b", "MNP_CHECKPOINT_KEY": keys})
    if resumed is None:
        assert result.returncode == 2
        assert result.stderr.count("seal mismatch") == 2
        assert "restart-from" in result.stderr and "no valid checkpoint there" in result.stderr
        assert not (tmp_path / "b").exists()
        return
    assert result.returncode == 0, result.stderr
    assert strict_summary(result.stdout)["restarted_from_step"] == resumed
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "field.npy"), straight)
    meta = json.loads((tmp_path / "job" / "checkpoints" / "step-0000000020" / "meta.json")
                      .read_text())
    assert meta["job_id"] == "job"


@pytest.mark.parametrize("value", ["", "key,", ",key", "a,,b"])
def test_an_empty_checkpoint_key_is_refused(tmp_path: Path, heat_here, value: str) -> None:
    result = heat_here([*RUN, "--output-path", str(tmp_path / "out")],
                       env={"MNP_CHECKPOINT_KEY": value})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "MNP_CHECKPOINT_KEY holds an empty key" in errors[0]
    assert "key" not in errors[0].split("empty key", 1)[1].replace("KEY", "")  # value unshown
    assert not (tmp_path / "out").exists()
