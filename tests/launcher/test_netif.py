"""A node names the interface that holds its own address (for MPIs that pick by name)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from launcher import netif


def _addresses() -> dict[str, str]:
    """This machine's interfaces and their first IPv4 address, as iproute2 lists them."""
    listing = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                             text=True, check=True).stdout
    found: dict[str, str] = {}
    for line in listing.splitlines():
        fields = line.split()
        found.setdefault(fields[1].split("@")[0], fields[3].split("/")[0])
    return found


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (`ip`) is not installed")
def test_the_interface_holding_an_address_is_named() -> None:
    assert netif.interface_of("127.0.0.1") == "lo"
    for name, ip in _addresses().items():
        assert netif.interface_of(ip) == name
    assert netif.interface_of("192.0.2.77") is None  # TEST-NET-1: nobody's address here


def test_ranks_get_ucx_net_devices_unless_the_user_chose() -> None:
    assert netif.rank_env("127.0.0.1", {}) == {"UCX_NET_DEVICES": "lo"}
    assert netif.rank_env("127.0.0.1", {"UCX_NET_DEVICES": "eth1"}) == {}
    assert netif.rank_env("192.0.2.77", {}) == {}


def test_the_source_address_towards_a_peer_is_the_one_it_would_use() -> None:
    assert netif.source_address("127.0.0.1", 9) == "127.0.0.1"
