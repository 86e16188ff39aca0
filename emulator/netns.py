"""Network-namespace plumbing for the Batch node emulator (emulator.namespaces)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from emulator.awsvpc import ecs_eth0_commands

# Owner files let a later emulation remove namespaces left by a process that was SIGKILLed.
OWNERS = Path("/run/mnp-emulate")


def state_prefix(tag: str) -> str:
    """The name start of emulation `tag`'s own launcher state directory (in the temp dir)."""
    return f"mnp-state-{tag}-"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS` quietly."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unavailable_reason() -> str | None:
    """Why this machine cannot emulate nodes (None when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (run with sudo)"
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if ip("netns", "list", check=False).returncode != 0:
        return "`ip netns` is not available on this kernel"
    if shutil.which("unshare") is None:
        return "`unshare` (util-linux) is not installed"
    return None


def _forward_rule(action: str, bridge: str) -> None:
    """Insert (-I) or delete (-D) an ACCEPT for frames within `bridge` in iptables' FORWARD.

    Docker sets the FORWARD policy to DROP, and with br_netfilter loaded that drops frames
    between two ports of our bridge too: the nodes would never hear each other.
    """
    if shutil.which("iptables") is None:
        return
    subprocess.run(["iptables", "-w", action, "FORWARD", "-i", bridge, "-o", bridge,
                    "-j", "ACCEPT"], capture_output=True, check=False)


def build(bridge: str, prefixlen: int, nodes: Sequence) -> None:
    """Bridge, one namespace per node (veth renamed eth0, lo up) and per-node /etc/hosts."""
    # No address on the bridge: the root namespace gets no route, so traffic stays inside.
    ip("link", "add", bridge, "type", "bridge")
    # A host with br_netfilter and a FORWARD DROP policy (Docker) would drop bridged frames.
    ip("link", "set", bridge, "type", "bridge", "nf_call_iptables", "0", check=False)
    _forward_rule("-I", bridge)  # where the per-bridge switch above is not honoured
    ip("link", "set", bridge, "up")
    hosts = "127.0.0.1 localhost\n" + "".join(f"{n.ip} {n.hostname}\n" for n in nodes)
    for n in nodes:
        ip("netns", "add", n.ns)
        ip("link", "add", n.veth, "type", "veth", "peer", "name", f"{n.veth}p")
        ip("link", "set", f"{n.veth}p", "netns", n.ns)
        ip("link", "set", n.veth, "master", bridge, "up")
        inside = ("ip", "netns", "exec", n.ns, "ip")
        for args in (("link", "set", "lo", "up"),
                     ("link", "set", f"{n.veth}p", "name", "eth0"),
                     ("addr", "add", f"{n.ip}/{prefixlen}", "dev", "eth0"),
                     ("link", "set", "eth0", "up"),
                     *ecs_eth0_commands()):
            subprocess.run([*inside, *args], check=True, capture_output=True)
        # `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc: per-node host names.
        etc = Path("/etc/netns") / n.ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(hosts)


def remove(tag: str, namespaces: Iterable[str]) -> None:
    """Kill the namespaces' processes, delete them, their links, bridge and /etc/netns files."""
    for ns in namespaces:
        for pid in ip("netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        ip("netns", "del", ns, check=False)  # removes the veth pair with it
        shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
    # Deleting a namespace does not always take the root end of its veth with it (gVisor).
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(f"mv{tag}"):
            ip("link", "del", name, check=False)
    ip("link", "del", f"mb{tag}", check=False)
    _forward_rule("-D", f"mb{tag}")
    for path in Path(tempfile.gettempdir()).glob(f"{state_prefix(tag)}*"):  # its keys
        shutil.rmtree(path, ignore_errors=True)
    (OWNERS / tag).unlink(missing_ok=True)


def claim(tag: str, subnet: str) -> None:
    """Record this process as the owner of emulation `tag` and its subnet."""
    OWNERS.mkdir(parents=True, exist_ok=True)
    (OWNERS / tag).write_text(f"{os.getpid()} {subnet}\n")


def owners() -> dict[str, tuple[int | None, str | None]]:
    """Every recorded emulation: tag -> (owner pid, subnet), None where unreadable."""
    found: dict[str, tuple[int | None, str | None]] = {}
    if OWNERS.is_dir():
        for owner in OWNERS.iterdir():
            words = owner.read_text().split()  # "pid subnet"
            pid = int(words[0]) if words and words[0].isdigit() else None
            found[owner.name] = (pid, words[1] if len(words) > 1 else None)
    return found


def cleanup_stale() -> None:
    """Remove emulations whose owning process died without cleaning up."""
    stale = []
    for tag, (pid, _) in owners().items():
        try:
            if pid is not None:
                os.kill(pid, 0)
                continue
        except ProcessLookupError:
            pass
        stale.append(tag)
    if stale:
        listed = ip("netns", "list", check=False).stdout.split()
        for tag in stale:
            remove(tag, [ns for ns in listed if ns.startswith(f"mnp{tag}n")])
