"""MNP_NETWORK: the OFI path forced per flavour, bad values refused, each node's own check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import fabric, netif
from launcher.fabric import NETWORKS, Fabric, FabricError
from launcher.flavours import FLAVOURS
from launcher.node import Settings
from launcher.roles import forward_names, world_argv

REPO = Path(__file__).resolve().parents[2]
MPIEXEC = Path(sys.executable).parent / "mpiexec"
HOSTS = [("10.0.1.5", 1), ("10.0.1.9", 1)]
FORCED = {"efa": ["--mca", "pml", "cm", "--mca", "mtl", "ofi",
                  "--mca", "mtl_ofi_provider_include", "efa"],
          "ofi-tcp": ["--mca", "pml", "cm", "--mca", "mtl", "ofi",
                      "--mca", "mtl_ofi_provider_include", "tcp"]}


def test_default_is_tcp_and_each_value_is_read() -> None:
    assert Settings.from_env({}, None).network == Fabric("tcp")
    assert Settings.from_env({"MNP_NETWORK": " "}, None).network.provider is None
    assert [Settings.from_env({"MNP_NETWORK": v}, None).network.provider
            for v in ("tcp", "ofi-tcp", "efa")] == [None, "tcp", "efa"]


@pytest.mark.parametrize("value", ["EFA", "ofi", "infiniband"])
def test_an_unknown_value_is_named_with_what_is_allowed(value: str) -> None:
    with pytest.raises(ValueError, match=f"MNP_NETWORK='{value}': unknown value; allowed: one "
                                         "of tcp, ofi-tcp, efa"):
        Settings.from_env({"MNP_NETWORK": value}, None)


def test_the_launcher_exits_2_on_an_unknown_value_before_anything_starts() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_BATCH_", "MNP_"))}
    env.update(PYTHONPATH=str(REPO), MNP_NETWORK="rdma")
    run = subprocess.run([sys.executable, "-m", "launcher", "--", "sh", "-c", "echo RAN"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "RAN" not in run.stdout
    assert ("mnp-launch: error: MNP_NETWORK='rdma': unknown value; allowed: one of tcp, "
            "ofi-tcp, efa") in run.stderr


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_tcp_forces_nothing_on_any_flavour(flavour: str) -> None:
    assert fabric.mpi_forcing(Fabric("tcp"), flavour, None, {}) == ([], {})


@pytest.mark.parametrize("flavour", ["openmpi5", "openmpi4"])
@pytest.mark.parametrize(("network", "provider"), [("efa", "efa"), ("ofi-tcp", "tcp")])
def test_open_mpi_is_forced_onto_the_ofi_mtl(flavour: str, network: str, provider: str) -> None:
    args, env = fabric.mpi_forcing(Fabric(network), flavour, ("--bind-to", "none"), {})
    assert args == FORCED[network]
    assert env == {"OMPI_MCA_pml": "cm", "OMPI_MCA_mtl": "ofi",
                   "OMPI_MCA_mtl_ofi_provider_include": provider, "FI_PROVIDER": provider}


def test_mpich_is_refused_ofi_tcp_which_only_a_user_chooses() -> None:
    with pytest.raises(FabricError, match="MNP_NETWORK=ofi-tcp needs Open MPI.*mpich.*"
                                          "ch4:ucx.*MNP_NETWORK=tcp"):
        fabric.mpi_forcing(Fabric("ofi-tcp"), "mpich", None, {})


def test_mpich_on_an_efa_definition_runs_tcp_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    # An EFA stack's job definition sets MNP_NETWORK=efa for every image, MPICH ones too.
    assert fabric.mpi_forcing(Fabric("efa"), "mpich", None, {}) == ([], {})
    assert fabric.check(Fabric("efa"), None, "mpich") is None  # no EFA device needed
    assert "MNP_NETWORK=efa, but mpich has no libfabric path" in caplog.text
    assert "running over TCP on the node's own interface" in caplog.text


def test_a_child_node_asks_its_mpi_before_checking_for_efa(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hydra = tmp_path / "mpiexec"
    hydra.write_text("#!/bin/sh\necho 'HYDRA build details:'\n")
    hydra.chmod(0o755)
    monkeypatch.delenv("MNP_MPI", raising=False)
    assert fabric.check(Fabric("efa"), str(hydra)) is None
    monkeypatch.setenv("MNP_MPI", "openmpi4")  # told Open MPI: the EFA device is required
    assert "no /dev/infiniband/uverbs* device" in (fabric.check(Fabric("efa"), str(hydra)) or "")


def test_mpiexec_args_that_contradict_the_forcing_are_refused() -> None:
    with pytest.raises(FabricError, match="--mca pml ob1, but MNP_NETWORK=efa forces pml=cm"):
        fabric.mpi_forcing(Fabric("efa"), "openmpi5", ("--mca", "pml", "ob1", "-v"), {})
    agreeing = ("--mca", "pml", "cm", "--mca", "btl", "self")
    assert fabric.mpi_forcing(Fabric("efa"), "openmpi5", agreeing, {})[0] == FORCED["efa"]


def test_the_definitions_contrary_values_are_replaced_and_named() -> None:
    _, env = fabric.mpi_forcing(Fabric("efa"), "openmpi5", None, {})
    given = {"OMPI_MCA_pml": "ob1", "FI_PROVIDER": "efa", "OMPI_MCA_btl": "tcp,self"}
    assert fabric.overridden(env, given) == ["OMPI_MCA_pml=ob1"]


def test_the_world_carries_the_forcing_and_forwards_it(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", {"PATH": "/usr/bin", "OMPI_MCA_pml": "ob1"})
    settings = Settings.from_env({"MNP_NETWORK": "ofi-tcp"}, None)
    forcing = fabric.Forcing(*fabric.mpi_forcing(settings.network, "openmpi5", None,
                                                 os.environ))
    argv = world_argv(FLAVOURS["openmpi5"], "mpiexec", HOSTS, tmp_path, tmp_path / "agent",
                      settings, ["app"], forcing)
    forced_at = argv.index("mtl_ofi_provider_include") - 7
    assert argv[forced_at:forced_at + 9] == FORCED["ofi-tcp"]
    assert argv.index("--bind-to") < forced_at  # after the flavour's defaults
    xs = {argv[i + 1] for i, a in enumerate(argv) if a == "-x"}
    assert {"FI_PROVIDER", "OMPI_MCA_pml", "OMPI_MCA_mtl",
            "OMPI_MCA_mtl_ofi_provider_include"} <= xs


def test_the_definitions_mpi_and_fabric_variables_reach_every_rank() -> None:
    env = {"FI_EFA_USE_DEVICE_RDMA": "1", "OMPI_MCA_btl_tcp_eager_limit": "65536",
           "UCX_TLS": "tcp", "MPIR_CVAR_ASYNC_PROGRESS": "1", "FIX": "no", "OMPI_X": "no",
           "PATH": "/bin", "MNP_RENDEZVOUS_SECRET": "s" * 32}
    assert forward_names(env) == ["PATH", "FI_EFA_USE_DEVICE_RDMA", "MPIR_CVAR_ASYNC_PROGRESS",
                                  "OMPI_MCA_btl_tcp_eager_limit", "UCX_TLS"]


def test_ofi_tcp_ranks_stay_on_the_nodes_own_interface() -> None:
    assert [n for n in NETWORKS if Fabric(n).ofi_tcp] == ["ofi-tcp"]
    assert netif.rank_env("127.0.0.1", {}, ofi_tcp=True) == {"FI_TCP_IFACE": "lo",
                                                             "UCX_NET_DEVICES": "lo"}
    assert netif.rank_env("127.0.0.1", {"FI_TCP_IFACE": "eth1"}, ofi_tcp=True) == {
        "UCX_NET_DEVICES": "lo"}
    assert netif.rank_env("127.0.0.1", {}, ofi_tcp=False) == {"UCX_NET_DEVICES": "lo"}
    assert netif.rank_env("192.0.2.77", {}, ofi_tcp=True) == {}  # nobody's address here


def test_this_machine_has_libfabrics_tcp_provider_but_no_efa() -> None:
    assert fabric.check(Fabric("tcp"), None) is None
    assert fabric.check(Fabric("ofi-tcp"), str(MPIEXEC)) is None
    missing = fabric.check(Fabric("efa"), str(MPIEXEC))
    assert missing is not None
    assert missing.startswith("no /dev/infiniband/uverbs* device")
    assert "libfabric's efa provider" in missing  # it cannot load, or lists nothing


def test_devices_alone_do_not_make_a_node_fit(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "uverbs0").touch()
    monkeypatch.setattr(fabric, "EFA_DEVICES", str(tmp_path / "uverbs*"))
    missing = fabric.check(Fabric("efa"), str(MPIEXEC))
    assert missing is not None and missing.startswith("libfabric's efa provider")


def test_the_unusable_line_names_node_address_and_host() -> None:
    line = fabric.unusable(2, "10.0.1.9", "ip-10-0-1-9", "efa", "no device")
    assert line == "node 2 (10.0.1.9, host ip-10-0-1-9) cannot run MNP_NETWORK=efa: no device"


def _mpiexec(network: str, solver_env: dict[str, str]) -> subprocess.CompletedProcess:
    args, env = fabric.mpi_forcing(Fabric(network), "openmpi5", None, {})
    # This host's other interfaces (other tests' bridges) come and go, and libfabric's tcp
    # provider will not use loopback: stay on the default route's, as rank_env keeps a real
    # node on its own address.
    env.update(netif.rank_env(netif.source_address("203.0.113.1", 9), {},
                              ofi_tcp=Fabric(network).ofi_tcp))
    code = ("import os; from mpi4py import MPI; "
            "print('RANK', MPI.COMM_WORLD.rank, os.environ['OMPI_MCA_pml'])")
    return subprocess.run([str(MPIEXEC), "-n", "2", "--oversubscribe", *args, sys.executable,
                           "-c", code], env={**solver_env, **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.mpi
def test_forced_efa_without_efa_fails_mpi_init_instead_of_using_tcp(solver_env) -> None:
    run = _mpiexec("efa", solver_env)
    assert run.returncode != 0
    assert "RANK" not in run.stdout


@pytest.mark.mpi
def test_forced_ofi_tcp_runs_on_the_ofi_mtl(solver_env) -> None:
    run = _mpiexec("ofi-tcp", solver_env)
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.split("\n")[:2]) == ["RANK 0 cm", "RANK 1 cm"]


def test_one_node_without_efa_exits_4_with_one_line_and_starts_no_rank(clean_env) -> None:
    env = {**clean_env, "MNP_NETWORK": "efa", "MNP_RANKS_PER_NODE": "1",
           "PATH": f"{MPIEXEC.parent}:{os.environ['PATH']}"}
    run = subprocess.run([sys.executable, "-m", "launcher", "--", "sh", "-c", "echo RAN"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 4
    assert "RAN" not in run.stdout
    errors = [line for line in run.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert "node 0 (" in errors[0] and "cannot run MNP_NETWORK=efa: no /dev/infiniband" in errors[0]


def test_a_probe_that_crashes_counts_as_missing(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    # A libfabric that is no library: the probe's dlopen fails in the child Python.
    bad = tmp_path / "libfabric.so.1"
    bad.write_text("not an ELF file")
    monkeypatch.setattr(fabric, "libfabric", lambda _: str(bad))
    missing = fabric.check(Fabric("ofi-tcp"), None)
    assert missing is not None and missing.startswith("libfabric does not load:")
    monkeypatch.setattr(fabric.sys, "executable", "/bin/false")
    missing = fabric.check(Fabric("ofi-tcp"), None)
    assert missing == "libfabric's tcp provider probe failed (exit 1): no output"
