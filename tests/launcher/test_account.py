"""MNP_RUN_AS: the launcher keeps the stack's secret from the job's programs by becoming the
job's account itself (non-dumpable, no capabilities) before it starts anything."""

from __future__ import annotations

import hashlib
import hmac
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from launcher import account, contract, jobkeys
from launcher.settings import SettingError, read

REPO = Path(__file__).resolve().parents[2]
# The system's Python: the launcher is stdlib-only, and the test venv is root's alone.
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = pwd.getpwnam("nobody") if "nobody" in {p.pw_name for p in pwd.getpwall()} else None
needs_root = pytest.mark.skipif(os.geteuid() != 0 or NOBODY is None
                                or not os.access(SYSTEM_PYTHON, os.X_OK),
                                reason="changing uid needs root, a `nobody` and /usr/bin/python3")
SECRET = "s3cret-" + "x" * 40

# Becomes `nobody`, reports what it holds, then waits (so another process can try to read it).
BECOME = f"""
import os, sys
from launcher import account
account.become(account.Account({NOBODY.pw_uid if NOBODY else 0}, {NOBODY.pw_gid if NOBODY else 0}))
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())
print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), os.environ['HOME'],
      *(status[k].strip() for k in ('CapEff', 'CapPrm', 'CapBnd', 'CapAmb', 'NoNewPrivs')),
      flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize(("text", "expected"), [
    ("1000:1000", account.Account(1000, 1000)),
    ("1000:2000", account.Account(1000, 2000)),
])
def test_run_as_takes_uid_gid(text: str, expected: account.Account) -> None:
    assert read({account.RUN_AS_ENV: text}).run_as == expected


@pytest.mark.parametrize(("text", "why"), [
    ("0:0", "root: the job's programs would hold the stack's secret"),
    ("1000:0", "root"),
    ("1000", "not UID:GID"),
    ("mpi:mpi", "not UID:GID"),
    ("١٠٠٠:1000", "not UID:GID"),
    ("4294967295:1", "out of range"),
])
def test_run_as_refuses_root_and_names(text: str, why: str) -> None:
    with pytest.raises(SettingError, match=f"MNP_RUN_AS={text!r}: {why}"):
        read({account.RUN_AS_ENV: text})


@needs_root
def test_become_leaves_no_capability_and_no_way_back_to_root() -> None:
    proc = subprocess.Popen([SYSTEM_PYTHON, "-c", BECOME], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={"PYTHONPATH": str(REPO), "MNP_RENDEZVOUS_SECRET": SECRET})
    try:
        line = proc.stdout.readline().split()
        assert line[:3] == [str(NOBODY.pw_uid), str(NOBODY.pw_uid), str(NOBODY.pw_gid)]
        assert line[3] == "[]" and line[4] == NOBODY.pw_dir
        assert line[5:] == ["0000000000000000"] * 4 + ["1"]
        # Another process of the same account cannot read the environment it started with.
        peek = subprocess.run(
            [SYSTEM_PYTHON, "-c", f"open('/proc/{proc.pid}/environ', 'rb').read()"],
            user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[], capture_output=True,
            text=True, timeout=30)
        assert peek.returncode != 0 and "PermissionError" in peek.stderr
        # Root still can, which shows the secret is there to be protected.
        assert SECRET.encode() in Path(f"/proc/{proc.pid}/environ").read_bytes()
    finally:
        proc.communicate("", timeout=30)


def _launch(env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEM_PYTHON, "-m", "launcher", "true"], cwd=REPO, text=True,
                          capture_output=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **env}, **kw)


@needs_root
def test_a_launcher_that_is_not_root_cannot_become_another_account() -> None:
    run = _launch({account.RUN_AS_ENV: "1000:1000"}, user=NOBODY.pw_uid,
                  group=NOBODY.pw_gid, extra_groups=[])
    assert run.returncode == contract.USAGE
    assert (f"MNP_RUN_AS=1000:1000: the launcher runs as uid {NOBODY.pw_uid} gid "
            f"{NOBODY.pw_gid}, not root, so it cannot become that account") in run.stderr


def test_a_secret_without_run_as_says_the_programs_can_read_it() -> None:
    run = _launch({contract.RENDEZVOUS_SECRET_ENV: SECRET, "PATH": "/nonexistent"})
    assert "the job's programs run as the launcher's own user" in run.stderr
    assert "start the container as root with MNP_RUN_AS=UID:GID" in run.stderr


def test_the_checkpoint_key_is_per_job_and_the_same_for_every_attempt() -> None:
    key = jobkeys.checkpoint_key("job-a", SECRET)
    assert key == jobkeys.checkpoint_key("job-a", SECRET)
    assert key != jobkeys.checkpoint_key("job-b", SECRET)
    assert key != jobkeys.checkpoint_key("job-a", SECRET + "y")
    # The formula the solver's side was written against (solver/seal.py).
    assert key == hmac.new(SECRET.encode(), b"mnp-checkpoint-v1\0job-a",
                           hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("cmd", "sources"), [
    (["python", "-m", "solver", "heat"], []),
    (["python", "-m", "solver", "heat", "--restart-from", "/mnt/efs/out/job-b"], ["job-b"]),
    (["x", "--restart-from=/mnt/efs/out/job-b/checkpoints/"], ["job-b"]),
    (["x", "--restart-from", "out/job-b", "--restart-from", "out/job-b"], ["job-b"]),
    (["x", "--restart-from"], []),
])
def test_restart_sources_are_the_jobs_restart_from_names(cmd: list[str],
                                                         sources: list[str]) -> None:
    assert jobkeys.restart_sources(cmd) == sources
    value = jobkeys.checkpoint_env("job-a", SECRET, cmd).split(",")
    assert value == [jobkeys.checkpoint_key(j, SECRET) for j in ["job-a", *sources]]


def test_the_ranks_get_the_checkpoint_key_but_never_the_secret() -> None:
    from launcher.roles import forward_names
    env = {contract.CHECKPOINT_KEY_ENV: "k", contract.RENDEZVOUS_SECRET_ENV: SECRET,
           "MNP_FORWARD_ENV": contract.RENDEZVOUS_SECRET_ENV}
    names = forward_names(env)
    assert contract.CHECKPOINT_KEY_ENV in names
    assert contract.RENDEZVOUS_SECRET_ENV not in names
