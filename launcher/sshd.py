"""Per-job SSH for mpiexec's remote starts: keys, the child's sshd, the main's ssh client."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from launcher.rendezvous import Peer, without_secret

SSHD = "/usr/sbin/sshd"
# The agent every node's MPI starts remote daemons through (the same path on every node), and
# the variable naming this node's ssh config: mpiexec's environment on the main node, each
# sshd session's (so every daemon's) on a child.
AGENT = Path(__file__).with_name("ssh_agent.sh")
CONFIG_ENV = "MNP_SSH_CONFIG"


def user_name() -> str:
    """The account sshd admits and ssh logs in as (the same uid on every node)."""
    return pwd.getpwuid(os.getuid()).pw_name


def keygen(path: Path, comment: str) -> str:
    """Make an ed25519 key pair at `path` (private 0600) and return the public key line."""
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                        str(path)], check=True, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True)
    except subprocess.CalledProcessError as e:
        said = (e.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"ssh-keygen failed (exit {e.returncode}): {said}") from None
    except OSError as e:
        raise RuntimeError(f"cannot run ssh-keygen: {e} (Debian package openssh-client)") \
            from None
    return path.with_suffix(".pub").read_text().strip()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def admit(state: Path, keys: Iterable[str]) -> None:
    """Make `keys` (this attempt's public keys) the only ones sshd admits, atomically.

    sshd reads the file at every login, so a replaced file takes effect for the next one.
    """
    _write(state / "authorized_keys.new", "".join(f"{k}\n" for k in keys))
    os.replace(state / "authorized_keys.new", state / "authorized_keys")


def start_sshd(state: Path, port: int, authorized_key: str, path_env: str,
               session_env: Mapping[str, str] | None = None) -> tuple[
        subprocess.Popen[bytes], str]:
    """Run sshd on `port` admitting only `authorized_key`; return it and its host key.

    Sessions get PATH=`path_env`, `session_env` (names and values without spaces) and
    MNP_SSH_CONFIG naming this node's ssh config (written by `write_ssh_client`).
    """
    session = {**(session_env or {}), CONFIG_ENV: str(state / "ssh_config")}
    extra = "".join(f" {k}={v}" for k, v in session.items())
    if shutil.which("sshd", path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None:
        raise RuntimeError("sshd is not installed (Debian package openssh-server)")
    host_pub = keygen(state / "ssh_host_ed25519_key", "mnp-host")
    admit(state, [authorized_key])
    if os.geteuid() == 0:
        # Root sshd wants its privilege-separation directory; non-root sshd skips privsep.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    config = _write(state / "sshd_config", f"""\
Port {port}
ListenAddress 0.0.0.0
HostKey {state}/ssh_host_ed25519_key
PidFile {state}/sshd.pid
AuthorizedKeysFile {state}/authorized_keys
AllowUsers {user_name()}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The state dir sits under /tmp (world-writable parent), which StrictModes would refuse.
StrictModes no
PermitRootLogin prohibit-password
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
MaxStartups 256
ClientAliveInterval 5
ClientAliveCountMax 3
LogLevel ERROR
# The MPI's daemon (prted, orted, hydra_pmi_proxy) must be on PATH in the remote shell.
# SHLVL=1: bash skips ~/.bashrc for sshd sessions below level 2 (bash's shell.c, run_by_ssh),
# so remote ranks start in the environment the main node's get, not the account's dotfiles.
SetEnv PATH={path_env} SHLVL=1{extra}
""")
    # sshd passes none of its own environment to sessions, but keep the secret off it anyway.
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                            env=without_secret(os.environ))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode} on port {port}")
        if _listening(port):
            return proc, host_pub
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"sshd did not listen on port {port} within 15s")


def _listening(port: int) -> bool:
    """Whether a TCP socket listens on `port` (read from /proc: a probe would make sshd log)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def known_host(ip: str, port: int) -> str:
    """The host as ssh writes and looks it up in known_hosts: `[ip]:port`, plain `ip` for
    port 22 (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT)."""
    return ip if port == 22 else f"[{ip}]:{port}"


def write_ssh_client(state: Path, key: Path, peers: Iterable[Peer]) -> Path:
    """Write known_hosts (the peers' host keys pinned) and ssh_config; return the config.

    The config is what `AGENT` uses when MNP_SSH_CONFIG names it.
    """
    peers = list(peers)
    _write(state / "known_hosts", "".join(
        f"{known_host(p.ip, p.ssh_port)} {' '.join(p.host_key.split()[:2])}\n" for p in peers))
    hosts = "".join(f"Host {p.ip}\n  Port {p.ssh_port}\n" for p in peers)
    config = f"""{hosts}Host *
  User {user_name()}
  IdentityFile {key}
  IdentitiesOnly yes
  UserKnownHostsFile {state}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 15
  ServerAliveInterval 5
  ServerAliveCountMax 3
  LogLevel ERROR
"""
    # Written last, atomically: the agent never sees a config without its known_hosts.
    os.replace(_write(state / "ssh_config.new", config), state / "ssh_config")
    return state / "ssh_config"


def join_peers(state: Path, main_key: str, peers: list[Peer]) -> None:
    """A child in a spawn tree: admit every node's attempt key, pin every peer's host key."""
    write_ssh_client(state, state / "id_ed25519", peers)
    admit(state, [main_key, *(p.public_key for p in peers)])
