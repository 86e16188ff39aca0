"""The rendezvous simulation at a small size: the launcher's server admits every simulated
child under its own index and refuses the one holding another secret's key. Behaviour only:
how fast is `python -m bench --only rendezvous`'s business."""

from __future__ import annotations

import pytest

from bench.common import BenchError
from bench.rendezvous import checked, line_fit
from bench.rendezvous_sim import simulate

N = 50


@pytest.fixture(scope="module")
def run() -> dict:
    return simulate(N, processes=2, wrong_key=(7,), timeout=120, peer_list=True)


def test_every_child_is_admitted_under_its_own_index(run: dict) -> None:
    # index -> [address, slots, sshd port] as the server recorded each child's `ready`
    assert run["peers"] == {i: ["127.0.0.1", 1, 2222] for i in range(1, N + 1)}
    assert run["threads"] >= N  # the server follows each admitted child
    assert run["peer_list_missing"] == []  # and each answered the list of all


def test_every_admitted_child_is_told_the_jobs_exit_code(run: dict) -> None:
    ends = {k: v for k, v in run["ends"].items() if not k.startswith("wrong-key")}
    assert ends == {str(i): "exit 0" for i in range(1, N + 1)}


def test_the_child_with_another_secrets_key_is_refused(run: dict) -> None:
    assert run["ends"]["wrong-key 7"] == (
        "refused: main node rejected this node: bad credentials for job "
        "bench-rendezvous-0000 attempt 1")
    assert len(run["server_refusals"]) == 1
    assert "bad credentials" in run["server_refusals"][0]


def test_the_benchmarks_check_accepts_this_run_and_refuses_a_short_one(run: dict) -> None:
    assert checked(N, {**run, "ends": {**run["ends"], "wrong-key 1": run["ends"][
        "wrong-key 7"]}})["reconnects"] == run["reconnects"]
    short = {**run, "peers": {i: p for i, p in run["peers"].items() if i != 3}}
    with pytest.raises(BenchError, match=r"not admitted: \[3\]"):
        checked(N, short)
    let_in = {**run, "ends": {**run["ends"], "wrong-key 1": "exit 0"}}
    with pytest.raises(BenchError, match="wrong-key child was not refused"):
        checked(N, let_in)


def test_line_fit_recovers_a_line() -> None:
    assert line_fit([125, 250, 500, 999], [1 + 0.002 * x for x in (125, 250, 500, 999)]) == (
        pytest.approx(1.0), pytest.approx(0.002))
