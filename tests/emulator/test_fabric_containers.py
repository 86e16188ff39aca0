"""MNP_NETWORK in containers of the real image (awsvpc's ecs-eth0 included): OFI over libfabric's
tcp provider gives the one-process answer; EFA asked for on a host without it fails fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from emulator.containers import ContainerJob
from tests.emulator.test_containers import (
    COMPARED,
    FAST_HEARTBEAT,
    _heat,
    _job,
    _left,
    _reference,
    pytestmark,  # noqa: F401 - the same marker and skip: a container engine is needed
)


def _fabric_job(config: dict, image: str, scratch: Path, network: str, command: list[str],
                **env: str) -> ContainerJob:
    return ContainerJob(_job(config, 3, command), image, efs_dir=scratch / "efs",
                        log_dir=scratch / "logs",
                        env={**FAST_HEARTBEAT, "MNP_NETWORK": network, **env})


def test_ofi_tcp_heat_in_three_containers_gives_the_one_process_answer(
        image: str, synthesized_config: dict, scratch: Path) -> None:
    ref, ref_field = _reference(scratch, 100)
    command = _heat(100, "--output-path", "/mnt/efs/out")
    with _fabric_job(synthesized_config, image, scratch, "ofi-tcp", command) as job:
        job.start()
        assert job.wait(180) == 0, job.output(0)[1]
        codes = job.wait_all(30)
        out, err = job.output(0)
        tag = job.tag
    summary = json.loads(out.strip().splitlines()[-1])
    assert codes == {0: 0, 1: 0, 2: 0}
    assert "forcing --mca pml cm --mca mtl ofi --mca mtl_ofi_provider_include tcp" in err
    assert (summary["ranks"], summary["nodes"]) == (3, 3)
    for key in COMPARED:
        assert summary[key] == pytest.approx(ref[key], rel=1e-12, abs=0), key
    [field] = (scratch / "efs" / "out").glob("*/field.npy")
    np.testing.assert_array_equal(np.load(field), ref_field)
    assert _left(tag) == []


def test_efa_in_containers_without_the_devices_exits_4_naming_the_node(
        image: str, synthesized_config: dict, scratch: Path) -> None:
    command = _heat(10, "--output-path", "/mnt/efs/out")
    # Batch ends the children when the main node exits; here they give up after 5 s.
    with _fabric_job(synthesized_config, image, scratch, "efa", command,
                     MNP_RENDEZVOUS_TIMEOUT="5") as job:
        began = time.monotonic()
        job.start()
        assert job.wait(60) == 4
        took = time.monotonic() - began
        codes = job.wait_all(60)
        out, err = job.output(0)
        main = job.nodes[0]
        tag = job.tag
    assert took < 30, took  # container start-up included
    assert out == "" and "mpiexec with" not in err  # no rank started
    [line] = [x for x in err.splitlines() if " ERROR " in x]
    assert f"node 0 ({main.ip}, host {main.hostname}) cannot run MNP_NETWORK=efa: " in line
    # The image's libfabric loads its efa provider (libibverbs is installed); only the
    # device is missing.
    assert "no /dev/infiniband/uverbs* device" in line
    assert "efa provider lists no usable device" in line and "does not load" not in line
    assert codes[0] == 4 and None not in codes.values()
    assert _left(tag) == []
