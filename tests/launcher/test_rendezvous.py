"""The rendezvous protocol on loopback: admission, authentication, missing nodes, heartbeats."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from launcher import server as rendezvous_server
from launcher.messages import ProtocolError, decode
from launcher.rendezvous import MAX_LINE, Channel, Client, RendezvousError, derive_key
from launcher.server import MAX_PENDING, NodeFailed, Server

REPO = Path(__file__).resolve().parents[2]

JOB = "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
SECRET = "4f0c9e6a1b2d3c4e5f60718293a4b5c6"  # the stack's Secrets Manager value stands here
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake mnp"
CHILD_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChildChildChildChildChildChildChildChild c"


def _server(expected: set[int], *, attempt: int = 1,
            hb: tuple[float, float] = (0.2, 1.5)) -> Server:
    s = Server(key=derive_key(JOB, attempt, SECRET), job=JOB, attempt=attempt, expected=expected,
               public_key=PUB, user="batch", hb_interval=hb[0], hb_timeout=hb[1],
               host="127.0.0.1", port=0)
    s.start()
    return s


def _client(server: Server, index: int, *, attempt: int = 1, job: str = JOB,
            secret: str | None = SECRET, slots: int = 2) -> Client:
    return Client(key=derive_key(job, attempt, secret), job=job, attempt=attempt, index=index,
                  slots=slots, main_ip="127.0.0.1", port=server.port, hb_interval=0.2,
                  hb_timeout=1.5)


def test_children_in_any_order_are_admitted_and_told_to_exit() -> None:
    server = _server({1, 2, 3})
    clients = {}
    try:
        for index, port in ((3, 2203), (1, 2201), (2, 2202)):
            c = _client(server, index, slots=index)
            welcome = c.connect(timeout=5)
            assert welcome["public_key"] == PUB  # only the public half ever crosses the wire
            assert "private" not in str(welcome).lower()
            c.ready(port, f"ssh-ed25519 HOSTKEY{index}", f"ssh-ed25519 USERKEY{index}")
            clients[index] = c
        peers = server.wait_ready(timeout=5)
        assert sorted(peers) == [1, 2, 3]
        assert {p.index: (p.ip, p.slots, p.ssh_port) for p in peers.values()} == {
            1: ("127.0.0.1", 1, 2201), 2: ("127.0.0.1", 2, 2202), 3: ("127.0.0.1", 3, 2203)}
        assert peers[2].host_key == "ssh-ed25519 HOSTKEY2"
        assert peers[2].public_key == "ssh-ed25519 USERKEY2"
        assert server.local_ip == "127.0.0.1"
        time.sleep(0.6)  # several heartbeats pass without anyone being declared lost
        assert server.lost.empty()
        assert server.confirm_alive(timeout=5) == []
        closer = threading.Thread(target=lambda: [c.close() for c in clients.values()
                                                  if c.events.get(timeout=5) == ("exit", 7)])
        closer.start()
        server.finish(7, grace=5)
        closer.join(timeout=10)
        assert not closer.is_alive()
    finally:
        server.close()
        for c in clients.values():
            c.close()


def _ready_children(server: Server, indices: list[int]) -> dict[int, Client]:
    clients = {}
    for index in indices:
        c = _client(server, index, slots=1)
        c.connect(timeout=5)
        clients[index] = c
    return clients


def test_every_child_installs_every_childs_keys_before_the_run() -> None:
    server = _server({1, 2, 3})
    clients = _ready_children(server, [1, 2, 3])
    got: dict[int, list] = {}
    try:
        for index, c in clients.items():
            c.on_peers = lambda peers, index=index: got.setdefault(index, peers)
            c.ready(2200 + index, f"ssh-ed25519 HOST{index}", f"ssh-ed25519 USER{index}")
        server.wait_ready(timeout=5)
        assert got == {}  # nothing before the main node has them all
        assert server.share_peers(timeout=5) == []
        # share_peers returned: every child had installed the list and said so
        expected = [(i, "127.0.0.1", 2200 + i, f"ssh-ed25519 HOST{i}", f"ssh-ed25519 USER{i}")
                    for i in (1, 2, 3)]
        for index in (1, 2, 3):
            assert [(p.index, p.ip, p.ssh_port, p.host_key, p.public_key)
                    for p in got[index]] == expected
            assert "private" not in str(got[index]).lower()
        assert server.lost.empty() and server.confirm_alive(timeout=5) == []
    finally:
        server.close()
        for c in clients.values():
            c.close()


def test_a_child_that_cannot_install_the_keys_is_named_and_stops() -> None:
    server = _server({1, 2})
    clients = _ready_children(server, [1, 2])

    def full(_: object) -> None:
        raise OSError(28, "No space left on device")

    try:
        clients[1].on_peers = lambda peers: None
        clients[2].on_peers = full
        for index, c in clients.items():
            c.ready(2200 + index, "ssh-ed25519 K", CHILD_PUB)
        server.wait_ready(timeout=5)
        began = time.monotonic()
        assert server.share_peers(timeout=2) == [2]
        assert time.monotonic() - began < 3
        kind, why = clients[2].events.get(timeout=5)
        assert kind == "lost" and "No space left" in why
    finally:
        server.close()
        for c in clients.values():
            c.close()


@pytest.mark.parametrize(("lines", "reason"), [
    ([{"t": "peers", "count": 2}, ], "peers: count 2 but 0 peer lines"),
    ([{"t": "peer", "node": 1, "ip": "10.0.0.2", "ssh_port": 0, "host_key": "k",
       "public_key": "k"}], "peer.ssh_port: 0 is not"),
    ([{"t": "peer", "node": 1, "ip": "10.0.0.2", "ssh_port": 22, "host_key": "k"}],
     "peer: field 'public_key' is missing"),
])
def test_a_child_refuses_a_malformed_peer_list(lines: list, reason: str) -> None:
    server = _server({1})
    c = _ready_children(server, [1])[1]
    installed = []
    try:
        c.on_peers = installed.append
        c.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        server.wait_ready(timeout=5)
        with server._cond:
            ch = server._chans[1]
        for line in lines:
            ch.send(**line)
        kind, why = c.events.get(timeout=5)
        assert kind == "lost" and reason in why
        assert installed == []
    finally:
        server.close()
        c.close()


def test_missing_children_are_named_after_the_timeout() -> None:
    server = _server({1, 2, 5})
    try:
        c = _client(server, 2)
        c.connect(timeout=5)
        c.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        began = time.monotonic()
        with pytest.raises(RendezvousError, match=r"timeout after 0\.5s: node\(s\) 1, 5 never"):
            server.wait_ready(timeout=0.5)
        assert time.monotonic() - began < 2
    finally:
        server.close()
        c.close()


def _say_unfit(child: Client) -> None:
    child.unfit("node 2 (127.0.0.1, host h2) cannot run MNP_NETWORK=efa: no\ndevice")


def _say_failed(child: Client) -> None:
    child.fail(1, "ssh-keygen failed (exit 1): No space left on device")


def _hang_up(child: Client) -> None:
    child.close()  # a child that crashed after its welcome (SIGKILL, a traceback)


# What a child says instead of `ready`, and what the main node ends the job with: at once,
# naming the node and why, not after the rendezvous timeout (600 s on Batch).
AFTER_WELCOME = [
    (_say_unfit, 4, r"^node 2 \(127.0.0.1, host h2\) cannot run MNP_NETWORK=efa: no device$"),
    (_say_failed, 1, r"^node 2 \(127.0.0.1\) failed before it was ready: ssh-keygen failed "
                     r"\(exit 1\): No space left on device$"),
    (_hang_up, 4, r"^node 2 \(127.0.0.1\) went away before it was ready: connection closed$"),
]


@pytest.mark.parametrize(("say", "code", "line"), AFTER_WELCOME,
                         ids=["unfit", "failed", "hung-up"])
def test_a_child_that_fails_after_its_welcome_ends_the_rendezvous_at_once(
        say, code: int, line: str) -> None:
    server = _server({1, 2, 3})
    ready, failing = _client(server, 1), _client(server, 2)
    try:
        ready.connect(timeout=5)
        ready.ready(2201, "ssh-ed25519 K", "ssh-ed25519 USER1")
        failing.connect(timeout=5)
        say(failing)
        began = time.monotonic()
        with pytest.raises(NodeFailed, match=line) as caught:
            server.wait_ready(timeout=30)  # node 3 never came: no need to wait for it
        assert time.monotonic() - began < 2
        assert caught.value.code == code
        assert sorted(server.peers) == [1]  # the failed child is no peer: no rank goes there
        # this test's clients never hang up: a short grace, not the 5 s a node gets
        server.finish(code, grace=0.5)
        assert ready.events.get(timeout=5) == ("exit", code)  # the ready child is dismissed
    finally:
        server.close()
        ready.close()
        failing.close()


@pytest.mark.parametrize(("msg", "reason"), [
    ({"t": "failed", "code": 0, "reason": "x"}, "failed.code: 0 is not an integer in 1..255"),
    ({"t": "failed", "code": 1, "reason": ""}, "failed.reason: '' is not printable text"),
    ({"t": "failed", "code": 1}, "failed: field 'reason' is missing"),
])
def test_a_malformed_failed_message_is_refused(msg: dict, reason: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(reason)):
        decode(json.dumps(msg).encode(), ("ready", "unfit", "failed"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"secret": "guess"}, "rejected this node: bad credentials"),
    # the hijack: a stranger who read the challenge (job, attempt) but holds no secret
    ({"secret": None}, "rejected this node: bad credentials"),
    ({"attempt": 2}, "main node runs job .* attempt 1, not job .* attempt 2"),
    ({"job": "another-job"}, "not job another-job"),
])
def test_foreign_nodes_are_refused(kwargs: dict, message: str) -> None:
    server = _server({1})
    try:
        with pytest.raises(RendezvousError, match=message):
            _client(server, 1, **kwargs).connect(timeout=5)
        assert server.peers == {}
    finally:
        server.close()


def test_a_node_of_another_job_of_the_stack_is_refused_even_claiming_this_job() -> None:
    """Same stack secret, its own job's key, this job's id and attempt from the challenge."""
    server = _server({1})
    try:
        own = Client(key=derive_key("another-job", 1, SECRET), job=JOB, attempt=1, index=1,
                     slots=1, main_ip="127.0.0.1", port=server.port, hb_interval=0.2,
                     hb_timeout=2.0)
        with pytest.raises(RendezvousError, match="rejected this node: bad credentials"):
            own.connect(timeout=5)
        assert server.peers == {}
    finally:
        server.close()


def test_unknown_and_duplicate_indices_are_refused() -> None:
    server = _server({1})
    first = _client(server, 1)
    try:
        with pytest.raises(RendezvousError, match="node index 4 is not a child"):
            _client(server, 4).connect(timeout=5)
        with pytest.raises(RendezvousError, match="node index 0 is not a child"):
            _client(server, 0).connect(timeout=5)
        first.connect(timeout=5)
        first.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        server.wait_ready(timeout=5)
        with pytest.raises(RendezvousError, match="node 1 already reported"):
            _client(server, 1).connect(timeout=5)
    finally:
        server.close()
        first.close()


def _child_refuses(listener: socket.socket, fake_main, message: str) -> None:
    """A child that connects to `fake_main` (serving on `listener`) gives up with `message`."""
    t = threading.Thread(target=fake_main, daemon=True)
    t.start()
    c = Client(key=derive_key(JOB, 1, SECRET), job=JOB, attempt=1, index=1, slots=1,
               main_ip="127.0.0.1", port=listener.getsockname()[1], hb_interval=0.2,
               hb_timeout=1)
    try:
        with pytest.raises(RendezvousError, match=message):
            c.connect(timeout=5)
    finally:
        listener.close()
        t.join(timeout=5)


def test_a_main_node_without_the_key_cannot_hand_over_its_ssh_key() -> None:
    """A fake main node that skips the check must not get a key into a child's sshd."""
    listener = socket.create_server(("127.0.0.1", 0))

    def fake_main() -> None:
        conn, _ = listener.accept()
        ch = Channel(conn)
        ch.send(t="challenge", nonce="00" * 16, job=JOB, attempt=1)
        ch.recv(5, ("hello",))
        ch.send(t="welcome", mac="0" * 64, public_key="ssh-ed25519 ATTACKER", user="root")
        time.sleep(1)
        ch.close()

    _child_refuses(listener, fake_main, "main node failed to authenticate")


def test_silent_child_is_reported_lost_within_the_heartbeat_timeout() -> None:
    server = _server({1}, hb=(0.2, 1.0))
    raw = socket.create_connection(("127.0.0.1", server.port))
    try:
        ch = Channel(raw)
        c = _client(server, 1)
        welcome = c._handshake(ch)  # the real handshake, then no heartbeats at all
        assert welcome["t"] == "welcome"
        ch.send(t="ready", ssh_port=2222, host_key="ssh-ed25519 K", public_key=CHILD_PUB)
        server.wait_ready(timeout=5)
        began = time.monotonic()
        index, why = server.lost.get(timeout=5)
        assert index == 1 and "silent for 1s" in why
        assert 0.8 < time.monotonic() - began < 3
    finally:
        raw.close()
        server.close()


def test_child_notices_a_vanished_main_node() -> None:
    server = _server({1})
    c = _client(server, 1)
    try:
        c.connect(timeout=5)
        c.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        server.wait_ready(timeout=5)
        server.close()  # the main node's process is gone: its sockets close
        kind, why = c.events.get(timeout=5)
        assert kind == "lost"
    finally:
        c.close()


def test_child_gives_up_when_the_main_node_never_answers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    c = Client(key=derive_key(JOB, 1, SECRET), job=JOB, attempt=1, index=1, slots=1,
               main_ip="127.0.0.1", port=port, hb_interval=0.2, hb_timeout=1)
    began = time.monotonic()
    with pytest.raises(RendezvousError, match=f"127.0.0.1:{port} did not answer within 1.5s"):
        c.connect(timeout=1.5)
    assert time.monotonic() - began < 4


def test_keys_differ_per_job_attempt_and_secret() -> None:
    keys = {derive_key(JOB, 1, SECRET), derive_key(JOB, 2, SECRET),
            derive_key("other", 1, SECRET), derive_key(JOB, 1, "s3cret"), derive_key(JOB, 1, None)}
    assert len(keys) == 5
    assert derive_key(JOB, 1, SECRET) == derive_key(JOB, 1, SECRET)


def test_a_child_gone_just_before_mpiexec_ends_is_still_caught() -> None:
    """mpiexec can exit 0 after losing a daemon: the round trip must name the dead node."""
    server = _server({1, 2})
    clients = {i: _client(server, i) for i in (1, 2)}
    try:
        for i, c in clients.items():
            c.connect(timeout=5)
            c.ready(2200 + i, "ssh-ed25519 K", CHILD_PUB)
        server.wait_ready(timeout=5)
        clients[2].close()  # the node's process died: the kernel closes its socket
        lost = server.confirm_alive(timeout=5)
        assert [index for index, _ in lost] == [2]
    finally:
        server.close()
        for c in clients.values():
            c.close()


# -- hostile input ------------------------------------------------------------------------

NONCE, MAC = "ab" * 16, "cd" * 32


def _hello(**change: object) -> bytes:
    fields = {"t": "hello", "node": 1, "slots": 1, "nonce": NONCE, "mac": MAC, **change}
    return json.dumps({k: v for k, v in fields.items() if v is not ...},
                      separators=(",", ":")).encode()


@pytest.fixture
def thread_errors(monkeypatch) -> list:
    """Exceptions that escaped any thread (a handler's traceback)."""
    seen: list = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    return seen


def _raw(server: Server, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10,
                                    source_address=(source, 0))
    return sock


def _read_until_eof(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _replies(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


MALFORMED = [
    # the reproductions
    pytest.param(_hello().replace(b'"node":1', b'"node":Infinity'), "Infinity is not a number",
                 id="node-Infinity"),
    pytest.param(b"[" * 60000, f"longer than {MAX_LINE} bytes", id="60000-brackets"),
    pytest.param(_hello(node="1"), "hello.node: '1' is not an integer", id="node-str"),
    pytest.param(b"x" * 100_000, f"longer than {MAX_LINE} bytes", id="oversized-no-newline"),
    # more of the same kinds
    pytest.param(b"[" * 3000, "nested too deeply", id="3000-brackets"),
    pytest.param(b'{"t":"hello","node":' + b"[" * 3000, "nested too deeply", id="nested-field"),
    pytest.param(_hello().replace(b'"slots":1', b'"slots":NaN'), "NaN is not a number",
                 id="slots-NaN"),
    pytest.param(_hello().replace(b'"node":1', b'"node":-Infinity'), "-Infinity is not",
                 id="node-minus-Infinity"),
    pytest.param(_hello().replace(b'"node":1', b'"node":1e400'), "hello.node: inf is not",
                 id="node-1e400"),
    pytest.param(_hello(node=10**30), "hello.node: 10000000000", id="node-huge"),
    pytest.param(_hello(node=True), "hello.node: True is not an integer", id="node-bool"),
    pytest.param(_hello(node=1.5), "hello.node: 1.5 is not an integer", id="node-float"),
    pytest.param(_hello(node=-1), "hello.node: -1 is not an integer in 0..", id="node-negative"),
    pytest.param(_hello(slots=[1]), "hello.slots: [1] is not", id="slots-list"),
    pytest.param(_hello(slots=0), "hello.slots: 0 is not an integer in 1..", id="slots-zero"),
    pytest.param(_hello(nonce=5), "hello.nonce: 5 is not 32 lowercase hex", id="nonce-int"),
    pytest.param(_hello(mac=None), "hello.mac: None is not 64", id="mac-null"),
    pytest.param(_hello(mac=...), "hello: field 'mac' is missing", id="mac-missing"),
    pytest.param(_hello(extra=1), "hello: unknown field(s) ['extra']", id="extra-field"),
    pytest.param(b"[1, 2]", "a JSON list, not an object", id="array"),
    pytest.param(b'"hello"', "a JSON str, not an object", id="string"),
    pytest.param(b"", "malformed message", id="empty-line"),
    pytest.param(b"\xff\xfe{}", "malformed message", id="not-utf8"),
    pytest.param(b'{"t": 5}', "unexpected message 5 (expected hello)", id="type-int"),
    pytest.param(b'{"node": 1}', "unexpected message None", id="type-missing"),
    pytest.param(b'{"t": "ready", "ssh_port": 22, "host_key": "k"}',
                 "unexpected message 'ready' (expected hello)", id="ready-first"),
    pytest.param(_hello() + b" " * MAX_LINE, f"longer than {MAX_LINE} bytes",
                 id="oversized-line"),
]


@pytest.mark.parametrize(("line", "reason"), MALFORMED)
def test_malformed_hello_gets_a_reject_a_log_line_and_a_closed_socket(
        line: bytes, reason: str, caplog, thread_errors: list) -> None:
    server = _server({1})
    try:
        with _raw(server) as sock:
            sock.sendall(line + b"\n")
            replies = _replies(_read_until_eof(sock))  # EOF: the main node closed its end
        assert [r["t"] for r in replies] == ["challenge", "reject"]
        assert reason in replies[1]["reason"]
        assert len(replies[1]["reason"]) < 300  # never the attacker's bytes echoed back whole
        refused = [r.getMessage() for r in caplog.records if "refused 127.0.0.1" in r.getMessage()]
        assert len(refused) == 1 and reason in refused[0]
        assert "Traceback" not in caplog.text and thread_errors == []
        # the server is none the worse: the real child still gets in
        child = _client(server, 1)
        child.connect(timeout=5)
        child.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        assert sorted(server.wait_ready(timeout=5)) == [1]
        child.close()
    finally:
        server.close()


@pytest.mark.parametrize(("ready", "reason"), [
    ({"ssh_port": float("inf")}, "Infinity is not a number"),
    ({"ssh_port": 0}, "ready.ssh_port: 0 is not an integer in 1..65535"),
    ({"ssh_port": 70000}, "ready.ssh_port: 70000 is not"),
    ({"ssh_port": "22"}, "ready.ssh_port: '22' is not"),
    ({"host_key": None}, "ready.host_key: None is not printable text"),
    ({"host_key": "k\n" * 10}, "ready.host_key"),
    ({"host_key": "k" * 2000}, "ready.host_key: 'kkk"),
    ({"public_key": ""}, "ready.public_key: '' is not printable text"),
    ({"public_key": "k\n"}, "ready.public_key"),
])
def test_malformed_ready_from_an_authenticated_child_is_refused(
        ready: dict, reason: str, caplog, thread_errors: list) -> None:
    server = _server({1})
    raw = _raw(server)
    try:
        ch = Channel(raw)
        _client(server, 1)._handshake(ch)
        msg = {"t": "ready", "ssh_port": 2222, "host_key": "ssh-ed25519 K",
               "public_key": CHILD_PUB, **ready}
        raw.sendall(json.dumps(msg).encode() + b"\n")
        reply = _replies(_read_until_eof(raw))
        assert [r["t"] for r in reply] == ["reject"] and reason in reply[0]["reason"]
        assert server.peers == {}
        assert any(reason in r.getMessage() for r in caplog.records)
        assert thread_errors == []
    finally:
        raw.close()
        server.close()


@pytest.mark.parametrize(("greeting", "message"), [
    (b'{"t":"challenge","nonce":"' + b"ab" * 16 + b'","job":"j","attempt":Infinity}',
     "main node sent malformed message: Infinity"),
    (b'{"t":"challenge","nonce":7,"job":"' + JOB.encode() + b'","attempt":1}',
     "challenge.nonce: 7 is not"),
    (b"[" * 60000, "longer than"),
    (b'{"t":"welcome"}', "unexpected message 'welcome' (expected challenge or reject)"),
    (b'{"t":"reject","reason":7}', "reject.reason: 7 is not"),
])
def test_a_child_refuses_malformed_messages_from_the_main_node(
        greeting: bytes, message: str, thread_errors: list) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def fake_main() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(greeting + b"\n")
            time.sleep(1)

    _child_refuses(listener, fake_main, re.escape(message))
    assert thread_errors == []


# -- starvation ---------------------------------------------------------------------------

def _hold(server_port: int, count: int, source: str) -> list[socket.socket]:
    """`count` idle connections from `source`, as an attacker opens and keeps them."""
    held = []
    for _ in range(count):
        try:
            held.append(socket.create_connection(("127.0.0.1", server_port), timeout=2,
                                                 source_address=(source, 0)))
        except OSError:
            pass  # the backlog is full for a moment: the attacker just keeps what it has
    return held


class _PeakThreads:
    """The most threads alive at once while the block ran (sampled every 5 ms)."""

    def __enter__(self) -> _PeakThreads:
        self.peak, self._stop = threading.active_count(), threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, threading.active_count())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.2"])  # the children's address, or not
def test_idle_connections_cost_bounded_threads_and_children_still_get_in(
        source: str, thread_errors: list) -> None:
    base = threading.active_count()
    server = _server({1, 2})
    held: list[socket.socket] = []
    clients = [_client(server, i) for i in (1, 2)]
    try:
        with _PeakThreads() as threads:
            held = _hold(server.port, 200, source)
            assert len(held) >= 150
            for c in clients:
                c.connect(timeout=20)
                c.ready(2222, "ssh-ed25519 K", CHILD_PUB)
            assert sorted(server.wait_ready(timeout=10)) == [1, 2]
        # the server, its heartbeat, the sampler, the children's readers and heartbeats
        assert threads.peak <= base + MAX_PENDING + 2 + 1 + 4 + 2, threads.peak
    finally:
        for s in held:
            s.close()
        for c in clients:
            c.close()
        server.close()
    assert thread_errors == []


@pytest.mark.parametrize("mode", ["idle", "trickle"])
def test_a_connection_that_does_not_say_hello_in_time_is_refused(monkeypatch, mode: str) -> None:
    monkeypatch.setattr(rendezvous_server, "HELLO_TIMEOUT", 0.5)
    server = _server({1})
    try:
        with _raw(server) as sock:
            began = time.monotonic()
            if mode == "trickle":  # slowloris: a byte at a time, never a whole line
                for b in b'{"t":"hello"':
                    try:
                        sock.sendall(bytes([b]))
                    except OSError:
                        break
                    time.sleep(0.1)
            replies = _replies(_read_until_eof(sock))
            took = time.monotonic() - began
        assert [r["t"] for r in replies] == ["challenge", "reject"]
        assert "silent for 0.5s" in replies[1]["reason"]
        assert took < 3
    finally:
        server.close()


class _FailingAccept:
    """A listening socket whose accept() fails `times` times with `code`, then works."""

    def __init__(self, sock: socket.socket, code: int, times: int) -> None:
        self._sock, self._code, self.left = sock, code, times

    def accept(self) -> tuple[socket.socket, object]:
        if self.left > 0:
            self.left -= 1
            raise OSError(self._code, os.strerror(self._code))
        return self._sock.accept()

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                                  errno.ECONNABORTED, errno.ENOMEM])
def test_accept_errors_are_logged_and_accepting_goes_on(code: int, caplog) -> None:
    server = Server(key=derive_key(JOB, 1, SECRET), job=JOB, attempt=1, expected={1},
                    public_key=PUB, user="batch", hb_interval=0.2, hb_timeout=1.5,
                    host="127.0.0.1", port=0)
    failing = _FailingAccept(server._sock, code, 5)
    server._sock = failing
    server.start()
    c = _client(server, 1)
    try:
        c.connect(timeout=10)
        c.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        assert sorted(server.wait_ready(timeout=5)) == [1]
        assert failing.left == 0
        assert f"accept() failed: [Errno {code}]" in caplog.text
    finally:
        c.close()
        server.close()


LOW_NOFILE = """
import json, logging, resource, sys, threading, time
from launcher.rendezvous import derive_key
from launcher.server import Server
logging.basicConfig(level=logging.WARNING, format="%(message)s")
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), resource.getrlimit(
    resource.RLIMIT_NOFILE)[1]))
s = Server(key=derive_key(sys.argv[2], 1, sys.argv[3]), job=sys.argv[2], attempt=1,
           expected={1, 2}, public_key="ssh-ed25519 K", user="batch", hb_interval=0.2,
           hb_timeout=5, host="127.0.0.1", port=0)
s.start()
print(s.port, flush=True)
peak, deadline = 0, time.monotonic() + 60
while set(s.peers) != {1, 2} and time.monotonic() < deadline:
    peak = max(peak, threading.active_count())
    time.sleep(0.005)
print(json.dumps({"peers": sorted(s.peers), "threads": peak}), flush=True)
sys.stdin.read()  # hold until the test is done
"""


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.2"])
def test_children_get_in_past_a_low_open_file_limit_and_200_idle_connections(
        source: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", LOW_NOFILE, "40", JOB, SECRET],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    held: list[socket.socket] = []
    clients: list[Client] = []
    try:
        port = int(proc.stdout.readline())
        held = _hold(port, 200, source)
        clients = [Client(key=derive_key(JOB, 1, SECRET), job=JOB, attempt=1, index=i,
                          slots=1, main_ip="127.0.0.1", port=port, hb_interval=0.2,
                          hb_timeout=5) for i in (1, 2)]
        for c in clients:
            c.connect(timeout=30)
            c.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        report = json.loads(proc.stdout.readline())
    finally:
        for s in held:
            s.close()
        for c in clients:
            c.close()
        proc.stdin.close()
        proc.wait(timeout=10)
    err = proc.stderr.read()
    assert report["peers"] == [1, 2], err
    assert "accept() failed: [Errno 24] Too many open files" in err  # it was starved, logged
    assert report["threads"] <= 40, report  # one per connection the fd limit let in, no more
    assert "Traceback" not in err
