"""This node's network interface for an address, for MPIs that select interfaces by name.

UCX (MPICH's ch4:ucx in Debian, Open MPI's pml ucx) takes interfaces only by name
(`UCX_NET_DEVICES`) and otherwise tries every one, `ecs-eth0` included, where every awsvpc
node has the same address: MPI_Init then fails with "Destination is unreachable". Each node
names the interface that holds its own rendezvous address, whatever the image calls it.
libfabric's tcp provider (`MNP_NETWORK=ofi-tcp`) is pinned the same way.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Mapping

SIOCGIFADDR = 0x8915  # linux/sockios.h
UCX_DEVICES = "UCX_NET_DEVICES"
FI_TCP_IFACE = "FI_TCP_IFACE"  # libfabric's tcp provider (fi_tcp(7)): one interface by name


def source_address(peer: str, port: int) -> str | None:
    """The local address this node uses to reach `peer` (no packet is sent), None: no route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((peer, port))
        except OSError:
            return None
        return s.getsockname()[0]


def interface_of(ip: str) -> str | None:
    """The name of the interface whose IPv4 address is `ip`, or None."""
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                raw = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                  struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on it
                continue
        if socket.inet_ntoa(raw[20:24]) == ip:
            return name
    return None


def rank_env(ip: str | None, env: Mapping[str, str], *, ofi_tcp: bool = False) -> dict[str, str]:
    """Variables that keep this node's ranks on `ip`'s interface, named once for every
    transport that selects interfaces by name: UCX always, libfabric's tcp provider when the
    job runs on it (`ofi_tcp`). A user's own setting wins."""
    name = interface_of(ip) if ip else None
    if name is None:
        return {}
    wanted = (UCX_DEVICES, FI_TCP_IFACE) if ofi_tcp else (UCX_DEVICES,)
    return {var: name for var in wanted if var not in env}
