"""The all-pairs network check (`python -m solver netcheck`) and the transport report."""

from __future__ import annotations

import itertools

import pytest


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8])
def test_rounds_meet_every_pair_once_with_disjoint_pairs_per_round(n: int) -> None:
    from launcher.pairs import rounds

    schedule = rounds(n)
    met = [pair for pairs in schedule for pair in pairs]
    assert sorted(met) == list(itertools.combinations(range(n), 2))
    for pairs in schedule:
        ranks = [r for pair in pairs for r in pair]
        assert len(ranks) == len(set(ranks))  # nobody is in two pairs of one round
    assert len(schedule) == (n - 1 if n % 2 == 0 else n)


@pytest.mark.mpi
def test_every_pair_is_measured_at_both_sizes_and_the_transport_reported(run_solver) -> None:
    result = run_solver(["netcheck", "--iterations", "3", "--repeats", "2"], ranks=3)
    assert result.returncode == 0, result.stderr
    summary = result.summary
    assert summary["command"] == "netcheck" and summary["ok"] is True
    assert [p["ranks"] for p in summary["pairs"]] == [[0, 1], [0, 2], [1, 2]]
    assert summary["sizes"] == [8, 1048576]
    for pair in summary["pairs"]:
        assert pair["wrong_echoes"] == 0
        assert set(pair["seconds"]) == {"8", "1048576"} and min(pair["seconds"].values()) > 0
        assert pair["bandwidth_MBps"]["1048576"] == pytest.approx(
            1048576 / pair["seconds"]["1048576"] / 1e6, rel=1e-5)
    assert [t["pml"] for t in summary["transports"]] == ["ob1"] * 3
    assert all("tcp" in t["btl"] and t["rdma_devices"] == [] for t in summary["transports"])
    assert "transport: Open MPI v5.0.11: pml ob1, btl self," in result.stderr


@pytest.mark.mpi
def test_commcheck_reports_the_transport_of_every_rank(run_solver) -> None:
    result = run_solver(["commcheck", "--sizes", "8", "--iterations", "3"], ranks=2)
    assert result.returncode == 0, result.stderr
    summary = result.summary
    assert summary["transport"]["pml"] == "ob1" and "self" in summary["transport"]["btl"]
    assert len(summary["transports"]) == 2


@pytest.mark.parametrize(("args", "fragment"), [
    (["--repeats", "0"], "--iterations, --repeats and --timeout must be positive"),
    (["--timeout", "nan"], "argument --timeout: 'nan' is not a number (ASCII"),
    (["--sizes", "8,x"], "--sizes: not a list of integers"),
    (["--sizes", "1000000000000"], "--sizes: byte counts must be at most 1073741824 (1 GiB)"),
    (["--sizes", "9" * 23], f"at most 1073741824 (1 GiB), got {'9' * 23}"),
    (["--timeout", "\u0661"], "argument --timeout: '\u0661' is not a number (ASCII digits"),
])
def test_bad_netcheck_option(capsys: pytest.CaptureFixture[str], args: list[str],
                             fragment: str) -> None:
    from mpi4py import MPI

    from solver.netcheck import run

    assert run(MPI.COMM_SELF, args, {}) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count(fragment) == 1


def test_the_ofi_provider_is_the_one_the_include_list_admits() -> None:
    from solver.transport import ofi_provider

    assert ofi_provider({"OMPI_MCA_mtl_ofi_provider_include": "efa"}) == "efa"
    assert ofi_provider({"FI_PROVIDER": "tcp"}) == "tcp"
    assert ofi_provider({"OMPI_MCA_mtl_ofi_provider_include": "efa,tcp"}) is None
    assert ofi_provider({"OMPI_MCA_mtl_ofi_provider_include": "^shm"}) is None
    assert ofi_provider({}) is None


@pytest.mark.mpi
@pytest.mark.parametrize("command", ["commcheck", "netcheck"])
@pytest.mark.parametrize("size", ["1000000000000", "1" * 23])
def test_a_message_too_large_is_refused_by_every_rank(run_solver, command: str,
                                                      size: str) -> None:
    """Two ranks: the echoing rank allocated too and died (ENOMEM, OverflowError)."""
    result = run_solver([command, "--sizes", f"8,{size}", "--timeout", "5"], ranks=2)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("error:") == 1, result.stderr
    assert "Traceback" not in result.stderr
