"""Tree spawn on emulated nodes: a child's daemon starts another child's, no private key moves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from emulator.namespaces import Emulation, unavailable_reason

REPO = Path(__file__).resolve().parents[2]
_WHY = unavailable_reason() or (
    None if Path("/usr/sbin/sshd").exists()
    else "sshd is not installed (apt-get install openssh-server openssh-client)")
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_WHY is not None, reason=f"{_WHY}")]

# Each rank first says which address started its daemon (the sshd session's SSH_CONNECTION
# the daemon inherited), and rank 0 what every node's state directory holds, while all run.
PROBE = r"""
import hashlib, json, os, socket, sys
from pathlib import Path
def environ(pid):
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(x.decode().split("=", 1) for x in raw if b"=" in x)
conn = environ(os.getppid()).get("SSH_CONNECTION", "")
print("ORIGIN", socket.gethostname(), conn.split()[0] if conn else "-", flush=True)
if os.environ.get("OMPI_COMM_WORLD_RANK") == "0":
    nodes = {}
    for d in sorted(Path(sys.argv[1]).iterdir()):
        files = {f.name: f.read_bytes() for f in d.iterdir() if f.is_file()}
        nodes[d.name] = {
            "private": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()
                        if b.startswith(b"-----BEGIN OPENSSH PRIVATE KEY")},
            "public": files.get("id_ed25519.pub", b"").decode().split()[:2],
            "admitted": sorted(" ".join(k.split()[:2]) for k in
                               files.get("authorized_keys", b"").decode().splitlines()),
            "pinned": len(files.get("known_hosts", b"").splitlines())}
    print("KEYS", json.dumps(nodes), flush=True)
"""


def test_a_child_starts_a_daemon_and_no_private_key_leaves_its_node(tmp_path: Path,
                                                                    solver_env) -> None:
    state = tmp_path / "state"
    state.mkdir()
    env = {"NUMBA_CACHE_DIR": solver_env["NUMBA_CACHE_DIR"], "PYTHONPATH": str(REPO),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "MNP_RANKS_PER_NODE": "1", "MNP_STATE_DIR": str(state),
           # A radix of 2 makes 4 nodes a tree of depth 2 (PRRTE's default, 64, would be flat).
           "PRTE_MCA_rml_base_radix": "2"}
    with Emulation(4, shared_dir=tmp_path / "efs", log_dir=tmp_path, env=env,
                   max_delay=1.0, job_id="tree-4") as emu:
        emu.start(["sh", "-c", 'python -c "$0" "$1" && shift && exec "$@"', PROBE, str(state),
                   "python", "-m", "solver", "commcheck", "--sizes", "8,4096",
                   "--iterations", "3", "--timeout", "30"], cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        out, err = emu.output(0)
        ips = [n.ip for n in emu.nodes]
        names = {n.hostname: n.index for n in emu.nodes}
        codes = emu.wait_all(30)
    assert codes == {0: 0, 1: 0, 2: 0, 3: 0}
    assert "spawn tree: every node admits the 3 children's keys" in err
    lines = out.splitlines()
    origin = {names[w[1]]: w[2] for w in map(str.split, lines) if w[:1] == ["ORIGIN"]}
    # PRRTE's radix tree (daemon i is node i, the hostfile's order): 0 starts 1 and 2, and
    # node 1's daemon, not the main node, starts node 3's.
    assert origin == {0: "-", 1: ips[0], 2: ips[0], 3: ips[1]}
    summary = json.loads(lines[-1])
    assert summary["ok"] and summary["nodes"] == 4 and summary["unreachable"] == []

    keys = json.loads(next(line for line in lines if line.startswith("KEYS "))[5:])
    assert len(keys) == 4
    # state_dir's prefix mnp-<job>-a<attempt>-n<index>-; mkdtemp's random tail may hold "-n" too
    by_node = {int(re.match(r"mnp-tree-4-a1-n(\d+)-", d).group(1)): v for d, v in keys.items()}
    assert sorted(by_node[0]["private"]) == ["id_ed25519"]
    publics = sorted(" ".join(v["public"]) for v in by_node.values())
    for index in (1, 2, 3):
        # a child holds its own key and host key only, admits every node's attempt key and
        # pins every child's host key
        assert sorted(by_node[index]["private"]) == ["id_ed25519", "ssh_host_ed25519_key"]
        assert by_node[index]["admitted"] == publics
        assert by_node[index]["pinned"] == 3
    digests = [h for v in by_node.values() for h in v["private"].values()]
    assert len(digests) == len(set(digests)) == 7  # no private key in two nodes' directories
    assert list(state.iterdir()) == []  # every node removed its state directory
