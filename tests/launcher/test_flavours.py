"""MPI flavours: detection from `mpiexec --version`, MNP_MPI, each flavour's hostfile and argv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import sshd
from launcher.flavours import FLAVOURS, FlavourError, detect, resolve
from launcher.node import Settings
from launcher.roles import world_argv

REPO = Path(__file__).resolve().parents[2]
# What each MPI's `mpiexec --version` prints first (Debian bookworm's packages, the PyPI wheel).
BANNERS = {
    "openmpi5": "mpiexec (Open MPI) 5.0.11\n\nReport bugs to https://www.open-mpi.org/community/help/",
    "openmpi4": "mpiexec (OpenRTE) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/",
    "mpich": "HYDRA build details:\n    Version:                                 4.0.2\n",
}
INTEL = "Intel(R) MPI Library for Linux* OS, Version 2021.10 Build 20230619"
HOSTS = [("10.0.1.5", 2), ("10.0.1.9", 2), ("10.0.2.7", 1)]
NETS = "10.0.0.0/22"  # the smallest network holding the three addresses above
# Every rank gets these from the launcher; the rendezvous secret never, even when asked for.
JOB_ENV = {"AWS_BATCH_JOB_ID": "j#0", "AWS_BATCH_JOB_ATTEMPT": "2", "INPUT_PATH": "/mnt/efs/in",
           "OUTPUT_PATH": "/mnt/efs/out", "OMP_NUM_THREADS": "1",
           "MNP_FORWARD_ENV": "OMP_NUM_THREADS,MNP_RENDEZVOUS_SECRET,NOT_SET",
           "MNP_RENDEZVOUS_SECRET": "s" * 32}
FORWARDED = ["AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ATTEMPT", "INPUT_PATH", "OUTPUT_PATH", "PATH",
             "OMP_NUM_THREADS"]


def _fake_mpiexec(bindir: Path, banner: str) -> Path:
    """An `mpiexec` that prints `banner` for --version and its argv (one per line) otherwise."""
    bindir.mkdir(exist_ok=True)
    (bindir / "banner").write_text(banner)
    script = bindir / "mpiexec"
    script.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then cat "{bindir}/banner"; exit 0; '
                      'fi\nfor a in "$@"; do echo "ARG $a"; done\n')
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("name", sorted(BANNERS))
def test_each_mpiexec_version_banner_names_its_flavour(tmp_path: Path, name: str) -> None:
    fake = _fake_mpiexec(tmp_path / "bin", BANNERS[name])
    assert resolve(None, str(fake)).name == name
    assert detect(BANNERS[name]) is FLAVOURS[name]


def test_mnp_mpi_overrides_what_mpiexec_says(tmp_path: Path) -> None:
    fake = _fake_mpiexec(tmp_path / "bin", INTEL)  # not even supported: never asked
    assert resolve("openmpi4", str(fake)).name == "openmpi4"


@pytest.mark.parametrize(("chosen", "banner", "message"), [
    (None, INTEL, f"unsupported MPI: `mpiexec --version` printed {INTEL!r}; supported: openmpi5 "
     "('mpiexec (Open MPI) 5.x'), openmpi4 ('mpiexec (OpenRTE) 4.x'), mpich ('HYDRA build "
     "details (MPICH)') (or set MNP_MPI to one of openmpi5, openmpi4, mpich)"),
    (None, "", "printed '(no output)'"),
])
def test_an_unknown_mpi_is_named_with_what_is_supported(tmp_path: Path, chosen: None, banner: str,
                                                        message: str) -> None:
    fake = _fake_mpiexec(tmp_path / "bin", banner)
    with pytest.raises(FlavourError) as caught:
        resolve(chosen, str(fake))
    assert message in str(caught.value)


def test_no_mpiexec_at_all_says_so(tmp_path: Path) -> None:
    with pytest.raises(FlavourError, match="cannot run `.*/none --version`.*install an MPI"):
        resolve(None, str(tmp_path / "none"))


def _world(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           user_args: str | None = None) -> tuple[list[str], str]:
    monkeypatch.setattr(os, "environ", {**JOB_ENV, "PATH": "/usr/bin:/bin"})
    env = {} if user_args is None else {"MNP_MPIEXEC_ARGS": user_args}
    settings = Settings.from_env(env, None)
    argv = world_argv(FLAVOURS[name], "/opt/mpi/bin/mpiexec", HOSTS, tmp_path,
                      sshd.AGENT, settings, ["lmp", "-in", "in.melt"])
    return argv, (tmp_path / "hostfile").read_text()


@pytest.mark.parametrize(("name", "opt", "plm"), [
    ("openmpi5", "--prtemca", "plm_ssh"), ("openmpi4", "--mca", "plm_rsh")])
def test_open_mpi_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, opt: str,
                        plm: str) -> None:
    argv, hostfile = _world(name, tmp_path, monkeypatch)
    assert hostfile == "10.0.1.5 slots=2\n10.0.1.9 slots=2\n10.0.2.7 slots=1\n"
    # The MPI's own tree spawn (no `no_tree_spawn`); the agent is one word, so the MPI hands
    # it to every daemon it starts.
    assert argv == [
        "/opt/mpi/bin/mpiexec", "--hostfile", f"{tmp_path}/hostfile", "-n", "5",
        opt, f"{plm}_agent", str(sshd.AGENT),
        "--mca", "btl_tcp_if_include", NETS, opt, "oob_tcp_if_include", NETS,
        "--bind-to", "none",
        *[a for n in FORWARDED for a in ("-x", n)], "lmp", "-in", "in.melt"]
    assert FLAVOURS[name].tree_spawn and not FLAVOURS["mpich"].tree_spawn


def test_the_agent_is_one_executable_path_that_ssh_runs_with_the_nodes_config(
        tmp_path: Path) -> None:
    assert " " not in str(sshd.AGENT) and os.access(sshd.AGENT, os.X_OK)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text('#!/bin/sh\necho "$@"\n')
    (bindir / "ssh").chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", sshd.CONFIG_ENV: str(tmp_path / "ssh_config")}
    run = subprocess.run([str(sshd.AGENT), "10.0.1.9", "prted", "--x"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert run.stdout == f"-F {tmp_path}/ssh_config 10.0.1.9 prted --x\n"
    unset = subprocess.run([str(sshd.AGENT), "10.0.1.9"], env={"PATH": env["PATH"]},
                           capture_output=True, text=True, timeout=30)
    assert unset.returncode != 0 and "MNP_SSH_CONFIG is not set" in unset.stderr


def test_mpich_hydra_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv, hostfile = _world("mpich", tmp_path, monkeypatch)
    assert hostfile == "10.0.1.5:2\n10.0.1.9:2\n10.0.2.7:1\n"
    # No interface name anywhere: proxies are reached, and call back, at rendezvous addresses.
    assert argv == [
        "/opt/mpi/bin/mpiexec", "-f", f"{tmp_path}/hostfile", "-n", "5", "-launcher", "ssh",
        "-launcher-exec", str(sshd.AGENT), "-localhost", "10.0.1.5",
        "-genvlist", ",".join(FORWARDED), "lmp", "-in", "in.melt"]


@pytest.mark.parametrize("name", sorted(FLAVOURS))
def test_mnp_mpiexec_args_replace_the_flavours_defaults(tmp_path: Path, name: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    argv, _ = _world(name, tmp_path, monkeypatch, user_args="-verbose")
    assert "-verbose" in argv and "--bind-to" not in argv
    assert not any("SECRET" in a for a in argv)


def _launch_one_node(tmp_path: Path, banner: str, **extra: str) -> subprocess.CompletedProcess:
    bindir = tmp_path / "bin"
    _fake_mpiexec(bindir, banner)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_BATCH_", "MNP_"))}
    env.update(PATH=f"{bindir}:/usr/bin:/bin", PYTHONPATH=str(REPO), **extra)
    return subprocess.run([sys.executable, "-m", "launcher", "--", "app", "--flag"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("name", "declared", "defaults"), [
    ("openmpi5", ["--host", "localhost:{slots}"], ["--bind-to", "none"]),
    ("openmpi4", ["--host", "localhost:{slots}"], ["--bind-to", "none"]),
    ("mpich", [], []),  # Hydra runs any number of ranks on one node without being told
])
def test_one_node_runs_mpiexec_n_of_the_detected_flavour(tmp_path: Path, name: str,
                                                         declared: list[str],
                                                         defaults: list[str]) -> None:
    slots = (os.cpu_count() or 1) + 1
    run = _launch_one_node(tmp_path, BANNERS[name], MNP_RANKS_PER_NODE=str(slots))
    assert run.returncode == 0, run.stderr
    args = [line[4:] for line in run.stdout.splitlines() if line.startswith("ARG ")]
    assert args == [*(a.format(slots=slots) for a in declared), "-n", str(slots), *defaults,
                    "app", "--flag"]
    assert f"{slots} slots, {name} ({tmp_path}/bin/mpiexec)" in run.stderr


def test_one_node_of_a_hyperthreaded_instance_runs_a_rank_per_vcpu(tmp_path: Path) -> None:
    # hwloc's synthetic topology: one core with two hardware threads, as every vCPU pair of a
    # c5n or c6i instance is. Open MPI counts cores as slots unless told otherwise.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_BATCH_", "MNP_"))}
    env.update(PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin", PYTHONPATH=str(REPO),
               HWLOC_SYNTHETIC="pack:1 core:1 pu:2", MNP_RANKS_PER_NODE="2",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    run = subprocess.run([sys.executable, "-m", "launcher", sys.executable, "-c",
                          "from mpi4py import MPI; c = MPI.COMM_WORLD; "
                          "print(f'rank {c.Get_rank()} of {c.Get_size()}')"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(run.stdout.split("\n")[:-1]) == ["rank 0 of 2", "rank 1 of 2"]


def test_an_unknown_mpi_exits_2_before_starting_anything(tmp_path: Path) -> None:
    run = _launch_one_node(tmp_path, INTEL)
    assert run.returncode == 2, run.stderr
    assert "ARG" not in run.stdout  # mpiexec was asked its version, nothing was launched
    assert f"unsupported MPI: `mpiexec --version` printed {INTEL!r}" in run.stderr
    assert "Traceback" not in run.stderr
