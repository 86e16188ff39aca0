"""The per-attempt sshd: admits this attempt's keys only, as root (tests) and uid 1000 (image)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(),
                                reason="sshd is not installed (apt-get install openssh-server)")

# Runs as the account under test: start sshd, log in with the right key, then with another one.
PROBE = r"""
import os, subprocess, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from launcher import procs, sshd
from launcher.rendezvous import Peer
def node(name):
    state = Path(tempfile.mkdtemp(prefix=f"mnp-ssh-test-{name}-", dir=sys.argv[2]))
    return state, sshd.keygen(state / "id_ed25519", f"{name}-key")
def login(state, command="true"):
    env = {**os.environ, sshd.CONFIG_ENV: str(state / "ssh_config")}
    return subprocess.run([str(sshd.AGENT), "127.0.0.1", command], capture_output=True,
                          text=True, timeout=30, env=env)
state, pub = node("main")
port = sshd.free_port()
daemon, host_key = sshd.start_sshd(state, port, pub, "/opt/venv/bin:/usr/bin:/bin")
try:
    peer = Peer(1, "127.0.0.1", 1, port, host_key)
    sshd.write_ssh_client(state, state / "id_ed25519", [peer])
    ok = login(state, "id -u; echo $PATH; echo $MNP_SSH_CONFIG")
    print("right", ok.returncode, " ".join(ok.stdout.split()))
    # Another node of this attempt (a spawn tree): refused until the peer list admits it.
    other, other_pub = node("peer")
    sshd.write_ssh_client(other, other / "id_ed25519", [peer])
    before = login(other).returncode
    sshd.join_peers(state, pub, [Peer(1, "127.0.0.1", 1, port, host_key, other_pub)])
    print("peer", before, login(other).returncode)
    # Pinned host keys: a server whose host key is not the pinned one is refused.
    _, stranger = node("stranger")
    sshd.write_ssh_client(other, other / "id_ed25519", [Peer(1, "127.0.0.1", 1, port, stranger)])
    print("spoofed-host", login(other).returncode)
    # A key of another attempt (or anyone else's) is refused.
    sshd.keygen(state / "other", "someone-else")
    (state / "id_ed25519").write_bytes((state / "other").read_bytes())  # now offers a wrong key
    print("wrong", login(state).returncode)
    private = ("id_ed25519", "ssh_host_ed25519_key", "authorized_keys", "sshd_config",
               "ssh_config", "known_hosts")
    print("readable-by-others", *[n for n in private if (state / n).stat().st_mode & 0o077])
finally:
    procs.kill_tree(daemon.pid)
    daemon.wait()
"""


def _probe(argv_prefix: list[str], python: str, tmp: Path) -> dict[str, list[str]]:
    run = subprocess.run([*argv_prefix, python, "-c", PROBE, str(REPO), str(tmp)],
                         capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr
    return {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines()}


def _expect(result: dict[str, list[str]], uid: int, tmp: Path) -> None:
    code, seen_uid, path, config = result["right"]
    assert (code, seen_uid) == ("0", str(uid))
    assert path == "/opt/venv/bin:/usr/bin:/bin"  # as given: the account's ~/.bashrc did not run
    # the session (so a tree-spawning daemon) finds this node's ssh config by name
    assert config.startswith(str(tmp)) and config.endswith("/ssh_config") and "-main-" in config
    assert result["peer"] == ["255", "0"]
    assert result["spoofed-host"] == ["255"]
    assert result["wrong"] == ["255"]  # ssh's own failure: permission denied
    assert result["readable-by-others"] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="this case checks sshd run as root")
def test_sshd_as_root_admits_only_the_attempts_key(tmp_path: Path) -> None:
    _expect(_probe([], sys.executable, tmp_path), 0, tmp_path)


def _login_account() -> pwd.struct_passwd | None:
    """The image's user is uid 1000; here any non-root account with a real shell will do."""
    for entry in sorted(pwd.getpwall(), key=lambda e: abs(e.pw_uid - 1000)):
        if entry.pw_uid >= 1000 and entry.pw_shell.endswith(("/bash", "/sh")):
            return entry
    return None


def _python_for(prefix: list[str]) -> str | None:
    for python in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        if python and subprocess.run([*prefix, python, "-c", "pass"],
                                     capture_output=True).returncode == 0:
            return python
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to a non-root account needs root")
def test_sshd_as_a_non_root_user_admits_only_the_attempts_key(tmp_path: Path) -> None:
    account = _login_account()
    if account is None:
        pytest.skip("no non-root account with a login shell to run sshd as")
    prefix = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
              "--init-groups", "--", "env", f"HOME={tmp_path}"]
    python = _python_for(prefix)
    if python is None:
        pytest.skip(f"no Python interpreter that {account.pw_name} may run")
    # pytest's base temp dir is private to root: the account gets a directory of its own.
    home = Path(tempfile.mkdtemp(prefix="mnp-ssh-test-"))
    try:
        os.chown(home, account.pw_uid, account.pw_gid)
        prefix[-1] = f"HOME={home}"
        _expect(_probe(prefix, python, home), account.pw_uid, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
