"""Spot gangs without namespaces: the sealed address file, the gang wait's bound, and how an
array child reads its place from Batch's variables."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from launcher import gang
from launcher.node import BatchNode, Settings

SECRET = "s" * 64
JOB = "4237c1f8-9ff0-436e-af14-e40218b98634"


def test_a_published_address_verifies_and_is_found(tmp_path: Path) -> None:
    path = gang.publish(tmp_path, JOB, 2, "10.0.1.7", 40123, SECRET)
    assert path == tmp_path / JOB / "2" / "main.json"
    assert gang.find_main(tmp_path, JOB, 2, SECRET, time.monotonic() + 1) == ("10.0.1.7", 40123)
    assert [p.name for p in path.parent.iterdir()] == ["main.json"]  # no temporary left


def test_a_file_sealed_without_the_stacks_secret_is_refused(tmp_path: Path) -> None:
    gang.publish(tmp_path, JOB, 1, "198.51.100.9", 22, "another stack's secret!!")
    text = gang.address_path(tmp_path, JOB, 1).read_text()
    with pytest.raises(gang.GangError, match="HMAC does not verify"):
        gang.verify(text, JOB, 1, SECRET)
    # Someone who can write EFS but lacks the secret can change the address, not re-seal it.
    body = json.loads(gang.publish(tmp_path, JOB, 1, "10.0.1.7", 40123, SECRET).read_text())
    body["ip"] = "198.51.100.9"
    with pytest.raises(gang.GangError, match="HMAC does not verify"):
        gang.verify(json.dumps(body), JOB, 1, SECRET)


def test_a_forged_file_is_ignored_until_the_main_node_replaces_it(tmp_path: Path,
                                                                caplog) -> None:
    gang.publish(tmp_path, JOB, 1, "198.51.100.9", 22, "another stack's secret!!")
    later = threading.Timer(0.5, gang.publish, (tmp_path, JOB, 1, "10.0.1.7", 40123, SECRET))
    later.start()
    try:
        found = gang.find_main(tmp_path, JOB, 1, SECRET, time.monotonic() + 10)
    finally:
        later.join()
    assert found == ("10.0.1.7", 40123)
    assert sum("ignoring" in r.message for r in caplog.records) == 1  # said once, not per poll


def test_an_earlier_attempts_file_is_never_taken(tmp_path: Path) -> None:
    first = gang.publish(tmp_path, JOB, 1, "10.0.1.7", 40123, SECRET)
    began = time.monotonic()
    with pytest.raises(gang.GangError, match="published no valid address"):
        gang.find_main(tmp_path, JOB, 2, SECRET, began + 0.5)
    assert 0.5 <= time.monotonic() - began < 2
    # Copied to attempt 2's place, its sealed attempt number still gives it away.
    second = gang.address_path(tmp_path, JOB, 2)
    second.parent.mkdir(parents=True)
    second.write_text(first.read_text())
    with pytest.raises(gang.GangError, match="attempt 1, not job .* attempt 2"):
        gang.verify(second.read_text(), JOB, 2, SECRET)


def test_readers_never_see_a_half_written_file(tmp_path: Path) -> None:
    gang.publish(tmp_path, JOB, 1, "10.0.0.1", 1, SECRET)
    path, seen, stop = gang.address_path(tmp_path, JOB, 1), [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(gang.verify(path.read_text(), JOB, 1, SECRET))  # raises if torn

    reader = threading.Thread(target=read)
    reader.start()
    for port in range(2, 400):
        gang.publish(tmp_path, JOB, 1, "10.0.0.1", port, SECRET)
    stop.set()
    reader.join()
    assert len(seen) > 10 and {ip for ip, _ in seen} == {"10.0.0.1"}


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path, monkeypatch) -> None:
    def full(_: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(gang.os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        gang.publish(tmp_path, JOB, 1, "10.0.0.1", 1, SECRET)
    assert list((tmp_path / JOB / "1").iterdir()) == []


def test_withdrawing_removes_the_attempt_and_an_empty_job_directory(tmp_path: Path) -> None:
    one = gang.publish(tmp_path, JOB, 1, "10.0.0.1", 1, SECRET)
    two = gang.publish(tmp_path, JOB, 2, "10.0.0.1", 1, SECRET)
    gang.withdraw(one)
    assert not one.parent.exists() and two.exists()
    gang.withdraw(two)
    assert not (tmp_path / JOB).exists()


def test_a_withdrawn_attempt_ends_a_late_member_at_once(tmp_path: Path) -> None:
    address = gang.publish(tmp_path, JOB, 1, "10.0.0.1", 1, SECRET)
    gang.leave_withdrawn(tmp_path, JOB, 1, 0, "index(es) 3 never arrived", SECRET)
    # The address goes with the withdrawal: a late member must not join a main node that left.
    assert not address.exists()
    began = time.monotonic()
    with pytest.raises(gang.GangWithdrawn,
                       match="member 0 withdrew this attempt of the gang: index.es. 3 never"):
        gang.find_main(tmp_path, JOB, 1, SECRET, began + 30)
    assert time.monotonic() - began < 1  # not its 30 s bound
    # Attempt 2 (a new array) is not withdrawn by attempt 1's marker.
    gang.publish(tmp_path, JOB, 2, "10.0.0.2", 2, SECRET)
    assert gang.find_main(tmp_path, JOB, 2, SECRET, time.monotonic() + 1) == ("10.0.0.2", 2)


def test_a_withdrawal_naming_a_thousand_members_still_fits_and_verifies(tmp_path: Path) -> None:
    why = gang.missing_line(list(range(1, 1000)), gang.Bound(600, "MNP_GANG_TIMEOUT=600s"), 1000)
    assert len(why) > gang.MAX_FILE  # uncut, the reader's limit would refuse it
    path = gang.leave_withdrawn(tmp_path, JOB, 1, 0, why, SECRET)
    assert path.stat().st_size <= gang.MAX_FILE
    found = gang.withdrawal(tmp_path, JOB, 1, SECRET)
    assert found is not None and found.endswith("...") and "index(es) 1, 2, 3" in found


@pytest.mark.parametrize("edit", [
    lambda body: body.update(why="forged"),  # an edited reason
    lambda body: body.update(attempt=2),  # attempt 1's marker passed off as attempt 2's
])
def test_a_withdrawal_that_does_not_verify_is_ignored(tmp_path: Path, caplog, edit) -> None:
    path = gang.leave_withdrawn(tmp_path, JOB, 1, 0, "gave up", SECRET)
    body = json.loads(path.read_text())
    edit(body)
    target = gang.withdrawn_path(tmp_path, JOB, body["attempt"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(body))
    gang.publish(tmp_path, JOB, body["attempt"], "10.0.0.1", 1, SECRET)
    # Anyone who can write EFS could write the marker: without the secret it ends nothing.
    found = gang.find_main(tmp_path, JOB, body["attempt"], SECRET, time.monotonic() + 1)
    assert found == ("10.0.0.1", 1)
    assert sum("ignoring" in r.message for r in caplog.records) == 1


def test_a_marker_sealed_by_another_stack_is_refused(tmp_path: Path) -> None:
    path = gang.leave_withdrawn(tmp_path, JOB, 1, 2, "gave up", "another stack's secret!!")
    with pytest.raises(gang.GangError, match="HMAC does not verify"):
        gang.verify_withdrawn(path.read_text(), JOB, 1, SECRET)
    # An address's seal is not a withdrawal's: the keys are labelled apart.
    sealed = json.loads(gang.publish(tmp_path, JOB, 1, "10.0.0.1", 1, SECRET).read_text())
    forged = {"job": JOB, "attempt": 1, "index": 0, "why": "x", "mac": sealed["mac"]}
    with pytest.raises(gang.GangError, match="HMAC does not verify"):
        gang.verify_withdrawn(json.dumps(forged), JOB, 1, SECRET)


@pytest.mark.parametrize(("timeout", "cap", "price", "seconds", "reason"), [
    (600, None, None, 600, "MNP_GANG_TIMEOUT=600s"),
    (600, None, 3.6, 600, "MNP_GANG_TIMEOUT=600s"),  # a price alone caps nothing
    # 10 members at $3.60/h cost $0.01 a second: $1 lasts 100 s.
    (600, 1.0, 3.6, 100, "the cost cap: 10 members at $3.6/h each reach "
     "MNP_GANG_COST_CAP=$1 after 100.0s"),
    (60, 1.0, 3.6, 60, "MNP_GANG_TIMEOUT=60s"),  # the timeout comes first
    (600, 1.0, 0, 600, "MNP_GANG_TIMEOUT=600s"),  # free capacity: only the timeout
])
def test_the_wait_is_the_earlier_of_timeout_and_cost_cap(timeout: float, cap, price,
                                                         seconds: float, reason: str) -> None:
    bound = gang.wait_bound(timeout, 10, cap, price)
    assert bound.seconds == pytest.approx(seconds)
    assert bound.reason == reason


def _array_child(index: int, **more: str) -> dict[str, str]:
    # docs.aws.amazon.com/batch/latest/userguide/array_jobs.html: child ids are <parent>:<index>
    return {"AWS_BATCH_JOB_ID": f"{JOB}:{index}", "AWS_BATCH_JOB_ARRAY_INDEX": str(index),
            "AWS_BATCH_JOB_ARRAY_SIZE": "4", "AWS_BATCH_JOB_ATTEMPT": "1", **more}


def test_an_array_child_in_a_gang_is_a_node_of_the_parents_world() -> None:
    node = BatchNode.from_env(_array_child(3, MNP_GANG="1"))
    assert (node.index, node.num_nodes, node.main_index, node.is_main) == (3, 4, 0, False)
    assert node.job == JOB and node.main_ip is None and node.gang
    assert BatchNode.from_env(_array_child(0, MNP_GANG="1")).is_main


def test_an_array_child_without_the_opt_in_stays_a_job_of_its_own() -> None:
    node = BatchNode.from_env(_array_child(3))
    assert (node.num_nodes, node.job) == (1, f"{JOB}:3")  # a sweep's children keep apart


@pytest.mark.parametrize(("change", "message"), [
    ({"AWS_BATCH_JOB_NUM_NODES": "4"}, "not a multi-node parallel job"),
    ({"AWS_BATCH_JOB_ARRAY_SIZE": ""}, "AWS_BATCH_JOB_ARRAY_SIZE is not set"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "4"}, "AWS_BATCH_JOB_ARRAY_INDEX=4 is not below"),
    ({"AWS_BATCH_JOB_ARRAY_SIZE": "1"}, "AWS_BATCH_JOB_ARRAY_SIZE=1 must be at least 2"),
    ({"MNP_GANG": "yes"}, "MNP_GANG='yes'"),
])
def test_a_gang_member_with_bad_variables_is_refused_by_name(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchNode.from_env({**_array_child(1, MNP_GANG="1"), **change})


def test_a_gang_member_takes_its_bound_and_any_free_port() -> None:
    env = {"MNP_GANG": "1", "MNP_RENDEZVOUS_SECRET": SECRET, "MNP_GANG_COST_CAP": "1",
           "MNP_GANG_PRICE_PER_NODE_HOUR": "9"}
    knobs = Settings.from_env(env, None, num_nodes=4)
    assert knobs.rendezvous_timeout == pytest.approx(100.0) == knobs.gang_bound.seconds
    assert knobs.port == 0  # published with the address, so any free port will do
    assert Settings.from_env({**env, "MNP_RENDEZVOUS_PORT": "47470"}, None, 4).port == 47470


def test_a_cost_cap_without_a_price_is_refused() -> None:
    with pytest.raises(ValueError, match="MNP_GANG_PRICE_PER_NODE_HOUR is not"):
        Settings.from_env({"MNP_GANG": "1", "MNP_RENDEZVOUS_SECRET": SECRET,
                           "MNP_GANG_COST_CAP": "1"}, None, num_nodes=4)
