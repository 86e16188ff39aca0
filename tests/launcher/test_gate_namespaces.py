"""The MNP_PRECHECK gate on emulated Batch nodes (network namespaces), and the transport report.

The kernel here has no sch_netem (`tc qdisc add ... netem` answers "Specified qdisc kind is
unknown"), so a slow node is made with a token bucket (tbf) on its own eth0, inside its
namespace: its large messages crawl, which the gate's rule catches on the 1 MiB size.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from emulator.namespaces import Emulation, unavailable_reason

REPO = Path(__file__).resolve().parents[2]
_WHY = unavailable_reason() or (
    None if Path("/usr/sbin/sshd").exists()
    else "sshd is not installed (apt-get install openssh-server openssh-client)")
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_WHY is not None, reason=f"{_WHY}")]

# 100 Mbit/s: a 1 MiB message takes ~84 ms instead of about a millisecond over the bridge.
SLOW_LINK = ("tbf", "rate", "100mbit", "burst", "32kbit", "latency", "400ms")
# 200 kbit/s: a 1 MiB echo would take ~40 s, past netcheck's 10 s wait for a peer.
CRAWLING_LINK = ("tbf", "rate", "200kbit", "burst", "32kbit", "latency", "400ms")
OFI_TCP = {"OMPI_MCA_pml": "cm", "OMPI_MCA_mtl": "ofi",
           "OMPI_MCA_mtl_ofi_provider_include": "tcp", "FI_PROVIDER": "tcp"}


def _emulation(tmp_path: Path, solver_env: dict[str, str], job_id: str,
               **env: str) -> Emulation:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (tmp_path / "efs").mkdir(exist_ok=True)
    return Emulation(3, job_id=job_id, shared_dir=tmp_path / "efs", log_dir=tmp_path,
                     max_delay=1.0, env={
                         "NUMBA_CACHE_DIR": solver_env["NUMBA_CACHE_DIR"],
                         "PYTHONPATH": str(REPO), "MNP_RANKS_PER_NODE": "1",
                         "MNP_STATE_DIR": str(state), "MNP_HEARTBEAT_INTERVAL": "0.5",
                         "MNP_HEARTBEAT_TIMEOUT": "5",
                         "OUTPUT_PATH": str(tmp_path / "efs" / "out"), **env})


def _marker_command(marker: Path) -> list[str]:
    """The user's command: it leaves a file behind if it ever starts."""
    return ["python3", "-c", f"open({str(marker)!r}, 'a').write('started\\n')"]


def _network_report(tmp_path: Path, job: str) -> dict:
    return json.loads((tmp_path / "efs" / "out" / job / "network.json").read_text())


def test_the_gate_passes_on_healthy_nodes_and_records_every_pair(tmp_path: Path,
                                                                  solver_env) -> None:
    marker = tmp_path / "efs" / "started"
    with _emulation(tmp_path, solver_env, "gate-ok", MNP_PRECHECK="1") as emu:
        emu.start(_marker_command(marker), cwd=REPO)
        assert emu.wait(300) == 0, emu.output(0)[1]
        codes = emu.wait_all(30)
        err = emu.output(0)[1]
        hostnames = [n.hostname for n in emu.nodes]
        ips = [n.ip for n in emu.nodes]
    assert codes == {0: 0, 1: 0, 2: 0}
    assert marker.read_text().count("started") == 3  # then the user's command ran everywhere
    report = _network_report(tmp_path, "gate-ok")
    assert report["ok"] is True and report["exit_code"] == 0
    assert sorted(p["ranks"] for p in report["check"]["pairs"]) == [[0, 1], [0, 2], [1, 2]]
    assert report["check"]["hosts"] == hostnames
    for pair in report["check"]["pairs"]:
        assert set(pair["seconds"]) == {"8", "1048576"}
        assert all(t > 0 for t in pair["seconds"].values())
    assert report["check"]["transports"][0]["pml"] == "ob1"
    assert "tcp" in report["check"]["transports"][0]["btl"]
    assert "network check passed: 3 pairs of 3 nodes" in err
    assert f"network: node 0 ({ips[0]}) <-> node 2 ({ips[2]}): 8 B" in err
    assert "transport settings:" in err


def test_the_gate_names_the_node_with_a_slowed_link_and_never_starts_the_run(
        tmp_path: Path, solver_env) -> None:
    marker = tmp_path / "efs" / "started"
    with _emulation(tmp_path, solver_env, "gate-slow", MNP_PRECHECK="1") as emu:
        # Only inside node 2's namespace: its own eth0, never an interface of the host.
        subprocess.run(["ip", "netns", "exec", emu.nodes[2].ns, "tc", "qdisc", "add", "dev",
                        "eth0", "root", *SLOW_LINK], check=True)
        emu.start(_marker_command(marker), cwd=REPO)
        assert emu.wait(300) == 4, emu.output(0)[1]
        codes = emu.wait_all(30)
        err = emu.output(0)[1]
        third = emu.nodes[2]
    assert not marker.exists()
    assert codes[1] == 0  # dismissed; the job's code is the main node's
    verdicts = [line.split("ERROR network check: ", 1)[1] for line in err.splitlines()
                if "ERROR network check: node" in line]
    assert len(verdicts) == 1, err
    assert verdicts[0].startswith(f"node 2 ({third.ip}, {third.hostname}) is unusable: all 2 "
                                  "of its pairs took")
    assert "node 0 " not in verdicts[0] and "node 1 " not in verdicts[0]
    assert "measuring again to tell a slow node from a passing hiccup" in err  # twice slow
    report = _network_report(tmp_path, "gate-slow")
    assert report["ok"] is False and report["exit_code"] == 4 and list(report["slow"]) == ["2"]


def test_a_node_that_does_not_answer_in_time_is_named_unreachable(tmp_path: Path,
                                                                  solver_env) -> None:
    marker = tmp_path / "efs" / "started"
    # Heartbeats get through the crawling link within 30 s: the check's own wait decides.
    with _emulation(tmp_path, solver_env, "gate-silent", MNP_PRECHECK="1",
                    MNP_HEARTBEAT_TIMEOUT="30") as emu:
        subprocess.run(["ip", "netns", "exec", emu.nodes[2].ns, "tc", "qdisc", "add", "dev",
                        "eth0", "root", *CRAWLING_LINK], check=True)
        emu.start(_marker_command(marker), cwd=REPO)
        assert emu.wait(120) == 4, emu.output(0)[1]
        emu.wait_all(30)
        err = emu.output(0)[1]
        third = emu.nodes[2]
    assert not marker.exists()
    verdicts = [line.split("ERROR network check: ", 1)[1] for line in err.splitlines()
                if "ERROR network check: node" in line]
    assert len(verdicts) == 1, err
    assert verdicts[0].startswith(f"node 2 ({third.ip}, {third.hostname}) unreachable "
                                  "(rank 2 "), err
    report = _network_report(tmp_path, "gate-silent")
    assert report["exit_code"] == 4 and report["failures"][0]["unreachable_pairs"]


def test_commcheck_reports_the_ofi_transport_when_told_to_use_it(tmp_path: Path,
                                                                  solver_env) -> None:
    with _emulation(tmp_path, solver_env, "ofi", **OFI_TCP) as emu:
        emu.start(["python", "-m", "solver", "commcheck", "--sizes", "8,65536",
                   "--iterations", "5", "--timeout", "30"], cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        emu.wait_all(30)
        out, err = emu.output(0)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert [(t["pml"], t["mtl"], t["provider"]) for t in summary["transports"]] == [
        ("cm", "ofi", "tcp")] * 3
    assert "transport settings: pml=cm, mtl=ofi, mtl_ofi_provider_include=tcp" in err
