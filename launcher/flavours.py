"""The MPI launchers `mnp-launch` drives: Open MPI 5 (PRRTE), Open MPI 4 (ORTE), MPICH (Hydra).

Each flavour turns the same facts (the nodes' addresses and slots, the ssh agent script, the
variables to forward) into its own hostfile and `mpiexec` options; roles.py does the rest.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Sequence

MPI_ENV = "MNP_MPI"
LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")


class FlavourError(ValueError):
    """The MPI cannot be driven: unknown flavour, or no mpiexec that answers."""


def job_networks(ips: Sequence[str]) -> str:
    """Open MPI's `*_if_include` value that admits the job's node addresses and nothing else.

    awsvpc tasks also carry `ecs-eth0` (169.254.172.x on every node alike): an MPI that
    listens or connects there reaches itself. Matching by address, not interface name,
    works whatever the image or instance calls its interfaces.
    """
    addrs = [ipaddress.ip_address(a) for a in ips]
    net = ipaddress.ip_network(f"{addrs[0]}/32")
    while not all(a in net for a in addrs):
        net = net.supernet()
    if net.prefixlen >= 8 and not net.overlaps(LINK_LOCAL):
        return str(net)
    return ",".join(f"{a}/32" for a in addrs)


class Flavour:
    """One MPI's launcher options; subclasses fill in the spelling."""

    name = ""
    banner = ""  # what `mpiexec --version` prints for this flavour
    default_args: tuple[str, ...] = ()  # when MNP_MPIEXEC_ARGS is unset
    # Daemons start daemons: every node needs every peer's public key and pinned host key.
    tree_spawn = False

    def extra_args(self, user: tuple[str, ...] | None) -> tuple[str, ...]:
        """MNP_MPIEXEC_ARGS as given, else this flavour's defaults."""
        return self.default_args if user is None else user

    def hostfile(self, hosts: Sequence[tuple[str, int]]) -> str:
        """The hostfile text for (address, slots) pairs, main node first."""
        return "".join(f"{ip} slots={n}\n" for ip, n in hosts)

    def forward(self, names: Sequence[str]) -> list[str]:
        """Options that hand the launcher's value of each variable to every rank."""
        return [arg for n in names for arg in ("-x", n)]

    def local(self, mpiexec: str, slots: int) -> list[str]:
        """`mpiexec -n SLOTS` on this node only, with SLOTS declared as the hostfile does."""
        return [mpiexec, *self.local_slots(slots), "-n", str(slots)]

    def local_slots(self, slots: int) -> tuple[str, ...]:
        """Options that give this node `slots` slots (Hydra counts none: nothing to say)."""
        return ()

    def world(self, mpiexec: str, hostfile: str, total: int, agent: str,
              ips: Sequence[str]) -> list[str]:
        """`mpiexec` across every node in the hostfile, remote starts through `agent`."""
        raise NotImplementedError


class OpenMPI5(Flavour):
    """Open MPI 5: PRRTE starts the daemons (`--prtemca plm_ssh_*`) as a tree.

    PRRTE's default tree spawn: mpiexec starts its children in the radix tree
    (`rml_base_radix`, 64), each passes `--tree-spawn` and starts its own through the same
    agent, which it takes from the one-word `--prtemca` values copied onto every prted's
    command line (src/mca/plm/ssh/plm_ssh_module.c `remote_spawn`,
    src/mca/plm/base/plm_base_launch_support.c `prte_plm_base_prted_append_basic_args`).
    For 1,000 nodes: 64 starts on the main node, then up to 64 on each of those.
    """

    name, banner = "openmpi5", "mpiexec (Open MPI) 5.x"

    # Open MPI binds ranks to cores by default, which piles them up when nodes share cores.
    default_args = ("--bind-to", "none")
    launch_option, launch_prefix = "--prtemca", "plm_ssh"
    tree_spawn = True

    def local_slots(self, slots: int) -> tuple[str, ...]:
        # Undeclared, a node has one slot per physical core, not per vCPU: half the default
        # ranks on hyperthreaded instances (PRRTE's "not enough slots" help, item 4).
        return ("--host", f"localhost:{slots}")

    def world(self, mpiexec: str, hostfile: str, total: int, agent: str,
              ips: Sequence[str]) -> list[str]:
        nets = job_networks(ips)
        opt = self.launch_option
        return [mpiexec, "--hostfile", hostfile, "-n", str(total), *self._agent(agent),
                # MPI traffic and the daemons' own channel stay on the rendezvous addresses.
                "--mca", "btl_tcp_if_include", nets, opt, "oob_tcp_if_include", nets]

    def _agent(self, agent: str) -> list[str]:
        # One word, so it reaches every daemon; the agent is the same path on every node.
        return [self.launch_option, f"{self.launch_prefix}_agent", agent]


class OpenMPI4(OpenMPI5):
    """Open MPI 4: ORTE starts the daemons (`--mca plm_rsh_*`, `oob_tcp` is an MCA too).

    ORTE's tree spawn works as PRRTE's (orte/mca/plm/rsh/plm_rsh_module.c `remote_spawn`,
    radix `routed_radix` 64): ORTE copies one-word MCA values onto every orted's command
    line, and an orted whose plm_rsh_agent does not exist on its node aborts, which is why
    the agent is the launcher package's own script (the same path on every node).
    """

    name, banner = "openmpi4", "mpiexec (OpenRTE) 4.x"
    launch_option, launch_prefix = "--mca", "plm_rsh"


class Mpich(Flavour):
    """MPICH's Hydra: `-f` hostfile of `host:n`, `-launcher ssh -launcher-exec`, `-genvlist`."""

    name, banner = "mpich", "HYDRA build details (MPICH)"  # Hydra binds nothing by default

    def hostfile(self, hosts: Sequence[tuple[str, int]]) -> str:
        return "".join(f"{ip}:{n}\n" for ip, n in hosts)

    def forward(self, names: Sequence[str]) -> list[str]:
        # Hydra passes its whole environment by default; a list passes only these.
        return ["-genvlist", ",".join(names)] if names else ["-genvnone"]

    def world(self, mpiexec: str, hostfile: str, total: int, agent: str,
              ips: Sequence[str]) -> list[str]:
        # No -iface (an interface name differs between images and instance types): Hydra
        # reaches each proxy at its hostfile address, and `-localhost` makes the proxies
        # call back to the main node's rendezvous address rather than what its host name
        # resolves to; ranks take their address from the same hostfile entry.
        return [mpiexec, "-f", hostfile, "-n", str(total), "-launcher", "ssh",
                "-launcher-exec", agent, "-localhost", ips[0]]


FLAVOURS: dict[str, Flavour] = {f.name: f for f in (OpenMPI5(), OpenMPI4(), Mpich())}
# First match wins: what each MPI's `mpiexec --version` prints.
_BANNERS = ((re.compile(r"\(Open MPI\)\s+5\."), "openmpi5"),
            (re.compile(r"\(OpenRTE\)\s+4\.|\(Open MPI\)\s+4\."), "openmpi4"),
            (re.compile(r"HYDRA build details"), "mpich"))


def supported() -> str:
    """The flavours and how each is recognised, for error messages."""
    return ", ".join(f"{f.name} ({f.banner!r})" for f in FLAVOURS.values())


def detect(version_output: str) -> Flavour:
    """The flavour whose `mpiexec --version` banner this is; FlavourError names what was seen."""
    for pattern, name in _BANNERS:
        if pattern.search(version_output):
            return FLAVOURS[name]
    first = next((line.strip() for line in version_output.splitlines() if line.strip()),
                 "(no output)")
    raise FlavourError(f"unsupported MPI: `mpiexec --version` printed {first!r}; supported: "
                       f"{supported()} (or set {MPI_ENV} to one of {', '.join(FLAVOURS)})")


def resolve(chosen: str | None, mpiexec: str) -> Flavour:
    """The flavour MNP_MPI names (checked by launcher.settings), else detected from
    `mpiexec --version`."""
    if chosen:
        return FLAVOURS[chosen]
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FlavourError(f"cannot run `{mpiexec} --version` to tell which MPI this is: "
                           f"{e} (install an MPI, or put its mpiexec on PATH)") from None
    return detect(out.stdout + out.stderr)
