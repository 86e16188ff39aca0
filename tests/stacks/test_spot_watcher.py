"""stacks/spot_watcher.sh against a fake instance metadata service and a fake `docker`.

The metadata server listens on 127.0.0.1 only and behaves as IMDSv2 with tokens required:
PUT /latest/api/token issues a token, a GET without it is refused with 401, and
spot/instance-action answers 404 until the test plants a notice (EC2 user guide,
spot-instance-termination-notices.html: the item exists only once an interruption is planned).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stacks.spot_interruption import WATCHER

NOTICE = {"action": "terminate", "time": "2026-12-07T10:00:00Z"}
# What the fake `docker ps` knows: two job containers, the pause container of an awsvpc task
# and the ECS agent itself (which carries no task label).
CONTAINERS = [
    {"id": "job1", "labels": {"com.amazonaws.ecs.task-arn": "arn:task/1",
                              "com.amazonaws.ecs.container-name": "default"}},
    {"id": "job2", "labels": {"com.amazonaws.ecs.task-arn": "arn:task/2",
                              "com.amazonaws.ecs.container-name": "default"}},
    {"id": "pause", "labels": {"com.amazonaws.ecs.task-arn": "arn:task/2",
                               "com.amazonaws.ecs.container-name": "~internal~ecs~pause"}},
    {"id": "agent", "labels": {}},
]
# `docker ps --filter label=K --format TEMPLATE` and `docker kill ...`, recorded one call a line.
FAKE_DOCKER = r'''#!{python}
import json, os, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[0] == "ps":
    wanted = [args[i + 1].split("=", 1)[1] for i, a in enumerate(args) if a == "--filter"]
    template = args[args.index("--format") + 1]
    for c in json.loads(os.environ["FAKE_DOCKER_CONTAINERS"]):
        if all(k in c["labels"] for k in wanted):
            line = template.replace("{{{{.ID}}}}", c["id"])
            line = re.sub(r'\{{\{{\.Label "([^"]+)"\}}\}}',
                          lambda m: c["labels"].get(m.group(1), ""), line)
            print(line)
'''


class FakeImds(BaseHTTPRequestHandler):
    """IMDSv2 with tokens required; records every request."""

    requests: list[tuple[str, str, dict[str, str]]] = []
    notice: dict | None = None
    valid: set[str] = set()  # tokens issued and not yet expired

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        self._record("PUT")
        if self.path == "/latest/api/token" and \
                self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            token = f"token-{len(self.requests)}"
            type(self).valid.add(token)
            self._answer(200, token)
        else:
            self._answer(400, "")

    def do_GET(self) -> None:  # noqa: N802
        self._record("GET")
        if self.headers.get("X-aws-ec2-metadata-token") not in self.valid:
            self._answer(401, "")
        elif self.path == "/latest/meta-data/spot/instance-action" and self.notice:
            self._answer(200, json.dumps(self.notice))
        else:
            self._answer(404, "")

    def _record(self, method: str) -> None:
        type(self).requests.append((method, self.path, dict(self.headers)))

    def _answer(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def imds():
    FakeImds.requests, FakeImds.notice, FakeImds.valid = [], None, set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeImds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _start(tmp_path: Path, port: int) -> tuple[subprocess.Popen[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    docker.chmod(0o755)
    calls = tmp_path / "docker.log"
    calls.touch()
    # No proxy variables: curl must talk to the loopback server directly.
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", MNP_IMDS_URL=f"http://127.0.0.1:{port}",
               MNP_SPOT_POLL_SECONDS="0.1", FAKE_DOCKER_LOG=str(calls),
               FAKE_DOCKER_CONTAINERS=json.dumps(CONTAINERS))
    proc = subprocess.Popen(["bash", str(WATCHER)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, calls


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _polls() -> int:
    return sum(1 for method, path, _ in FakeImds.requests
               if method == "GET" and path.endswith("/spot/instance-action"))


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")),
                    reason="needs bash and curl (as the ECS-optimized AL2023 image has)")
def test_watcher_signals_each_job_container_once_after_the_notice(imds, tmp_path: Path) -> None:
    proc, calls = _start(tmp_path, imds.server_address[1])
    try:
        _wait_polls(proc, 5)
        # Five 404s: nothing is signalled, docker is not even asked.
        assert _calls(calls) == []
        FakeImds.notice = NOTICE
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    kills = [c for c in _calls(calls) if c[0] == "kill"]
    # Each job container once; not the pause container, not the agent (no task label).
    assert sorted(kills) == [["kill", "--signal", "TERM", "job1"],
                             ["kill", "--signal", "TERM", "job2"]]
    assert "2 job container(s) signalled" in out and json.dumps(NOTICE) in out
    # IMDSv2: a token from PUT api/token first, and every poll carried it (else 401).
    assert FakeImds.requests[0][:2] == ("PUT", "/latest/api/token")
    assert all(h.get("X-aws-ec2-metadata-token") in FakeImds.valid
               for method, _, h in FakeImds.requests if method == "GET")


def _wait_polls(proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 20
    while _polls() < count and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert _polls() >= count and proc.poll() is None, "the watcher stopped polling"


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")),
                    reason="needs bash and curl")
def test_watcher_fetches_a_new_token_when_its_token_expires(imds, tmp_path: Path) -> None:
    # A token lives at most 6 hours; a watcher that kept an expired one would get 401 for
    # the rest of the instance's life and miss the notice.
    proc, calls = _start(tmp_path, imds.server_address[1])
    try:
        _wait_polls(proc, 3)
        FakeImds.valid.clear()
        FakeImds.notice = NOTICE
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sum(1 for r in FakeImds.requests if r[0] == "PUT") == 2, out
    assert proc.returncode == 0 and len([c for c in _calls(calls) if c[0] == "kill"]) == 2, out
