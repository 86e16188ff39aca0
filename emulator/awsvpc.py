"""What an awsvpc task's network namespace holds besides its ENI, shared by both emulators."""

from __future__ import annotations

# The ECS agent gives every awsvpc task a second interface for the credentials endpoint; every
# node has the same address on it, so an MPI that uses it reaches itself instead of its peer.
ECS_ETH0 = ("ecs-eth0", "169.254.172.2/22")


def ecs_eth0_commands() -> tuple[tuple[str, ...], ...]:
    """`ip` arguments that add `ecs-eth0`: a veth whose peer (on ECS, the host's ecs-bridge)
    stays inside the node, so the link is up and nothing else answers on it."""
    name, cidr = ECS_ETH0
    return (("link", "add", name, "type", "veth", "peer", "name", "ecs-peer"),
            ("addr", "add", cidr, "dev", name), ("link", "set", "ecs-peer", "up"),
            ("link", "set", name, "up"))
