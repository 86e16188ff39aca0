"""The MNP_PRECHECK gate's judgement, settings and report, without MPI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import contract, gate

REPO = Path(__file__).resolve().parents[2]
NODES = [gate.NodeRef(0, "10.0.0.10"), gate.NodeRef(3, "10.0.0.13"),
         gate.NodeRef(1, "10.0.0.11"), gate.NodeRef(2, "10.0.0.12")]
HOSTS = ["ip-a", "ip-b", "ip-c", "ip-d"]
SIZES = [8, 1048576]


def _pairs(n: int, slow: dict[int, float] | None = None, small: float = 20e-6,
           big: float = 1e-3) -> list[dict]:
    """Every pair of n ranks; a pair touching rank r in `slow` is multiplied by slow[r]."""
    out = []
    for a in range(n):
        for b in range(a + 1, n):
            factor = max((slow or {}).get(r, 1.0) for r in (a, b))
            out.append({"ranks": [a, b], "seconds": {"8": small * factor,
                                                     "1048576": big * factor},
                        "bandwidth_MBps": {"8": 1.0, "1048576": 1.0}, "wrong_echoes": 0})
    return out


def _summary(pairs: list[dict], **extra: object) -> dict:
    return {"command": "netcheck", "ok": True, "hosts": HOSTS[:len({r for p in pairs
                                                                    for r in p["ranks"]})],
            "sizes": SIZES, "pairs": pairs, "unreachable_pairs": [], "errors": [],
            "seconds": 1.5, **extra}


@pytest.mark.parametrize("n", [3, 4])
def test_the_node_all_slow_pairs_share_is_named_and_only_it(n: int) -> None:
    found = gate.outliers(_pairs(n, {n - 1: 50.0}), SIZES)
    assert list(found) == [n - 1]
    assert f"all {n - 1} of its pairs" in found[n - 1]


def test_healthy_figures_name_nobody() -> None:
    pairs = _pairs(4)
    pairs[0]["seconds"]["8"] *= 20  # one noisy pair: its two nodes have other, fast pairs
    assert gate.outliers(pairs, SIZES) == {}


def test_two_nodes_cannot_pin_a_slow_pair_on_either() -> None:
    assert gate.outliers(_pairs(2, {1: 100.0}), SIZES) == {}


def test_latency_threshold_is_three_times_the_median_or_a_millisecond_more() -> None:
    # Others' median 20 us: the limit is 1.02 ms (the floor), not 60 us.
    below = _pairs(4)
    above = _pairs(4)
    for p in below:
        if 3 in p["ranks"]:
            p["seconds"]["8"] = 1.0e-3
    for p in above:
        if 3 in p["ranks"]:
            p["seconds"]["8"] = 1.05e-3
    assert gate.outliers(below, SIZES) == {}
    assert list(gate.outliers(above, SIZES)) == [3]


def test_large_message_threshold_is_three_times_the_median() -> None:
    # Others' median 10 ms per MiB: limit 30 ms (3x beats +1 ms).
    assert gate.outliers(_pairs(3, {2: 2.9}, big=10e-3), SIZES) == {}
    assert list(gate.outliers(_pairs(3, {2: 3.1}, big=10e-3), SIZES)) == [2]


def test_a_passing_check_goes_on() -> None:
    verdict = gate.judge(0, [_summary(_pairs(4))], NODES, None)
    assert verdict.code == contract.OK
    assert verdict.line == "network check passed: 6 pairs of 4 nodes in 1.50s"


def test_a_slow_node_fails_with_node_lost_naming_its_batch_index() -> None:
    verdict = gate.judge(0, [_summary(_pairs(4, {1: 10.0}))], NODES, None)
    assert verdict.code == contract.NODE_LOST and list(verdict.slow) == [1]
    # rank 1 is the second hostfile entry: Batch node 3
    assert verdict.line.startswith("network check: node 3 (10.0.0.13, ip-b) is unusable: ")
    assert "\n" not in verdict.line


def test_a_silent_node_is_named_from_the_failure_lines() -> None:
    reports = [{"command": "netcheck", "ok": False, "hosts": HOSTS,
                "unreachable_pairs": [[1, 2]], "errors": ["rank 2 (ip-c) did not answer"]},
               {"command": "netcheck", "ok": False, "hosts": HOSTS,
                "unreachable_pairs": [[3, 2]], "errors": ["rank 2 (ip-c) did not answer"]}]
    verdict = gate.judge(4, reports, NODES, None)
    assert verdict.code == contract.NODE_LOST
    assert verdict.line.startswith("network check: node 1 (10.0.0.11, ip-c) unreachable (")


def test_a_round_that_never_finished_is_a_lost_node_even_unnamed() -> None:
    reports = [{"command": "netcheck", "ok": False, "hosts": HOSTS, "unreachable_pairs": [],
                "errors": ["round 1 did not finish within 30s"]}]
    verdict = gate.judge(4, reports, NODES, None)
    assert verdict.code == contract.NODE_LOST
    assert verdict.line == ("network check: a node (not named by the check) unreachable "
                            "(round 1 did not finish within 30s)")


def test_silent_ranks_are_those_reported_most_often() -> None:
    assert gate.silent_ranks([[0, 2], [1, 2], [2, 0]]) == [2]
    assert gate.silent_ranks([[0, 1]]) == [1]
    assert gate.silent_ranks([]) == []


def test_a_check_that_timed_out_is_a_lost_node_and_one_without_output_is_not() -> None:
    assert gate.judge(-9, [], NODES, 120.0).code == contract.NODE_LOST
    assert gate.judge(4, [], NODES, None).line == (
        "network check: a node did not answer (the check exited 4 before its report reached "
        "the main node)")
    broken = gate.judge(127, [], NODES, None)
    assert broken.code == contract.APPLICATION_ERROR
    assert "MNP_PRECHECK_COMMAND" in broken.line and "MNP_PRECHECK=0" in broken.line


def test_corrupted_echoes_name_the_node_their_pairs_share() -> None:
    pairs = _pairs(4)
    for p in pairs:
        if 2 in p["ranks"]:
            p["wrong_echoes"] = 1
    verdict = gate.judge(1, [_summary(pairs)], NODES, None)
    assert verdict.code == contract.NODE_LOST and list(verdict.slow) == [2]


@pytest.mark.parametrize("value", ["", "0"])
def test_precheck_off(value: str) -> None:
    assert gate.Check.configured({"MNP_PRECHECK": value}) is None


@pytest.mark.parametrize(("env", "fragment"), [
    ({"MNP_PRECHECK": "yes"}, "MNP_PRECHECK='yes': unknown value; allowed: 0 or 1"),
    ({"MNP_PRECHECK": "1", "MNP_PRECHECK_COMMAND": "check 'open"},
     "MNP_PRECHECK_COMMAND=\"check 'open\": No closing quotation"),
    ({"MNP_PRECHECK": "1", "MNP_PRECHECK_COMMAND": "x", "MNP_PRECHECK_TIMEOUT": "soon"},
     "MNP_PRECHECK_TIMEOUT='soon': not a number; allowed: a number of seconds from 1 to"),
    ({"MNP_PRECHECK": "1", "MNP_PRECHECK_COMMAND": "x", "MNP_PRECHECK_TIMEOUT": "inf"},
     "MNP_PRECHECK_TIMEOUT='inf': not a number"),
    ({"MNP_PRECHECK": "1", "MNP_PRECHECK_COMMAND": "x", "MNP_PRECHECK_TIMEOUT": "nan"},
     "MNP_PRECHECK_TIMEOUT='nan': not a number"),
])
def test_bad_precheck_settings_are_named(env: dict, fragment: str) -> None:
    with pytest.raises(gate.GateError) as info:
        gate.Check.configured(env)
    assert fragment in str(info.value)


def test_a_custom_check_command_is_split_into_words() -> None:
    check = gate.Check.configured({"MNP_PRECHECK": "1",
                                   "MNP_PRECHECK_COMMAND": "/opt/check --sizes '8,1048576'",
                                   "MNP_PRECHECK_TIMEOUT": "30"})
    assert check == gate.Check(("/opt/check", "--sizes", "8,1048576"), 30.0)


def _launcher(tmp_path: Path, nodes: int = 2, **env: str) -> subprocess.CompletedProcess[str]:
    """The main node of a `nodes`-node job with only the launcher importable (no solver)."""
    (tmp_path / "launcher").symlink_to(REPO / "launcher")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # not the default port: another test may hold it meanwhile
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_BATCH_", "MNP_"))}
    base.update(PYTHONPATH=str(tmp_path), AWS_BATCH_JOB_ID="gate-test", MNP_MPI="openmpi5",
                AWS_BATCH_JOB_NUM_NODES=str(nodes), AWS_BATCH_JOB_NODE_INDEX="0",
                AWS_BATCH_JOB_MAIN_NODE_INDEX="0", MNP_RENDEZVOUS_SECRET="s" * 32,
                MNP_STATE_DIR=str(tmp_path), MNP_RENDEZVOUS_TIMEOUT="30",
                MNP_RENDEZVOUS_PORT=str(port),
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    base.update(env)
    return subprocess.run([sys.executable, "-m", "launcher", "true"], env=base, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_a_bad_precheck_value_exits_2_before_any_rendezvous(tmp_path: Path) -> None:
    proc = _launcher(tmp_path, MNP_PRECHECK="true")
    assert proc.returncode == contract.USAGE
    assert "MNP_PRECHECK='true': unknown value; allowed: 0 or 1" in proc.stderr \
        and "waiting up to" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["launcher"]  # no state left behind


def test_a_bad_precheck_value_exits_2_on_one_node_too(tmp_path: Path) -> None:
    proc = _launcher(tmp_path, nodes=1, MNP_PRECHECK="yes")
    assert proc.returncode == contract.USAGE
    assert "MNP_PRECHECK='yes': unknown value" in proc.stderr
    assert "mpiexec exited" not in proc.stderr


def test_one_node_has_no_pair_to_check_and_runs_the_command(tmp_path: Path) -> None:
    # no solver importable either: nothing is checked, so nothing is missing
    proc = _launcher(tmp_path, nodes=1, MNP_PRECHECK="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                     OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", MNP_RANKS_PER_NODE="1")
    assert proc.returncode == contract.OK, proc.stderr[-2000:]
    assert "MNP_PRECHECK=1: one node, so no pair of nodes to check" in proc.stderr
    assert "mpiexec exited with 0" in proc.stderr


def test_without_the_solver_the_main_node_goes_on_with_the_pair_check(tmp_path: Path) -> None:
    # Bring-your-own images: no solver is no reason to refuse (the child never comes here).
    proc = _launcher(tmp_path, MNP_PRECHECK="1", MNP_RENDEZVOUS_TIMEOUT="1")
    assert proc.returncode == contract.RENDEZVOUS_TIMEOUT, proc.stderr[-2000:]
    assert "waiting up to 1s" in proc.stderr and "cannot run here" not in proc.stderr


def test_the_report_lands_in_the_jobs_output_directory(tmp_path: Path) -> None:
    summary = _summary(_pairs(4, {1: 10.0}))
    verdict = gate.judge(0, [summary], NODES, None)
    path = gate.write_report({"OUTPUT_PATH": str(tmp_path), "AWS_BATCH_JOB_ATTEMPT": "2"},
                             "job-1", [summary], NODES, verdict)
    assert path == tmp_path / "job-1" / "network.json"
    report = json.loads(path.read_text())
    assert (report["ok"], report["exit_code"], report["attempt"]) == (False, 4, "2")
    assert report["nodes"][1] == {"rank": 1, "index": 3, "ip": "10.0.0.13"}
    assert report["check"]["pairs"] == summary["pairs"] and list(report["slow"]) == ["1"]
    assert [p.name for p in path.parent.iterdir()] == ["network.json"]


def test_without_output_path_no_report_is_written(caplog: pytest.LogCaptureFixture) -> None:
    verdict = gate.judge(0, [_summary(_pairs(3))], NODES, None)
    assert gate.write_report({}, "job-1", [], NODES, verdict) is None
    assert "OUTPUT_PATH is not set, so network.json is not written" in caplog.text


def test_transport_settings_come_from_mca_options_and_the_environment() -> None:
    argv = ["mpiexec", "--mca", "btl_tcp_if_include", "10.0.0.0/24", "--mca", "pml", "cm", "x"]
    env = {"OMPI_MCA_pml": "ob1", "OMPI_MCA_mtl": "ofi", "FI_PROVIDER": "efa", "HOME": "/"}
    assert gate.transport_settings(argv, env) == (
        "pml=cm, mtl=ofi, btl_tcp_if_include=10.0.0.0/24, FI_PROVIDER=efa")
    assert gate.transport_settings(["mpiexec", "x"], {}) == "MPI's defaults"


def _fake_check(tmp_path: Path, *outputs: dict) -> list[str]:
    """A check program printing outputs[i] on its i-th run (a file counts the runs)."""
    count, lines = tmp_path / "runs", tmp_path / "lines.json"
    lines.write_text(json.dumps(list(outputs)))
    script = (f"import json, pathlib; c = pathlib.Path({str(count)!r}); "
              "n = int(c.read_text()) if c.exists() else 0; c.write_text(str(n + 1)); "
              f"print(json.dumps(json.loads(pathlib.Path({str(lines)!r}).read_text())[n]))")
    return [sys.executable, "-c", script]


def _run_check(tmp_path: Path, argv: list[str]) -> int:
    check = gate.Check(tuple(argv), 30.0)
    env = {"OUTPUT_PATH": str(tmp_path / "out"), "PATH": os.environ["PATH"]}
    return check.run(argv, env, lambda proc: (proc.wait(), None), NODES, "job-9")


def test_a_node_slow_twice_fails_the_attempt(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    slow = _summary(_pairs(4, {2: 10.0}))
    assert _run_check(tmp_path, _fake_check(tmp_path, slow, slow)) == contract.NODE_LOST
    assert (tmp_path / "runs").read_text() == "2"
    assert "measuring again" in caplog.text
    report = json.loads((tmp_path / "out" / "job-9" / "network.json").read_text())
    assert report["exit_code"] == 4 and list(report["slow"]) == ["2"]


def test_a_node_slow_once_is_a_hiccup_and_the_run_goes_on(tmp_path: Path) -> None:
    argv = _fake_check(tmp_path, _summary(_pairs(4, {2: 10.0})), _summary(_pairs(4)))
    assert _run_check(tmp_path, argv) == contract.OK
    report = json.loads((tmp_path / "out" / "job-9" / "network.json").read_text())
    assert report["ok"] is True and report["verdict"].startswith(
        "network check passed: 6 pairs of 4 nodes in 1.50s (on the second run; the first "
        "found: network check: node 1 (10.0.0.11, ip-c) is unusable:")


def test_a_healthy_check_runs_once(tmp_path: Path) -> None:
    assert _run_check(tmp_path, _fake_check(tmp_path, _summary(_pairs(3)))) == contract.OK
    assert (tmp_path / "runs").read_text() == "1"


def test_runs_that_blame_different_nodes_are_noise_and_the_run_goes_on(tmp_path: Path) -> None:
    argv = _fake_check(tmp_path, _summary(_pairs(4, {2: 10.0})), _summary(_pairs(4, {3: 10.0})))
    assert _run_check(tmp_path, argv) == contract.OK
    report = json.loads((tmp_path / "out" / "job-9" / "network.json").read_text())
    assert report["verdict"].startswith("network check passed: no node slow in both runs (")
