"""This node's network interface for an address, for MPIs that select interfaces by name.

UCX (MPICH's ch4:ucx in Debian, Open MPI's pml ucx) takes interfaces only by name
(`UCX_NET_DEVICES`) and otherwise tries every one, `ecs-eth0` included, where every awsvpc
node has the same address: MPI_Init then fails with "Destination is unreachable". Each node
names the interface that holds its own rendezvous address, whatever the image calls it.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Mapping

SIOCGIFADDR = 0x8915  # linux/sockios.h
UCX_DEVICES = "UCX_NET_DEVICES"


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


def rank_env(ip: str | None, env: Mapping[str, str]) -> dict[str, str]:
    """Variables this node's ranks need to stay on `ip` (a user's own setting wins)."""
    name = interface_of(ip) if ip else None
    if name is None or UCX_DEVICES in env:
        return {}
    return {UCX_DEVICES: name}
