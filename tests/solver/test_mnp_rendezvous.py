"""The rendezvous protocol on loopback: admission, authentication, missing nodes, heartbeats."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from solver._mnp_proto import Channel, Client, RendezvousError, derive_key
from solver._mnp_server import Server

JOB = "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
SECRET = "4f0c9e6a1b2d3c4e5f60718293a4b5c6"  # the stack's Secrets Manager value stands here
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake mnp"


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
            c.ready(port, f"ssh-ed25519 HOSTKEY{index}")
            clients[index] = c
        peers = server.wait_ready(timeout=5)
        assert sorted(peers) == [1, 2, 3]
        assert {p.index: (p.ip, p.slots, p.ssh_port) for p in peers.values()} == {
            1: ("127.0.0.1", 1, 2201), 2: ("127.0.0.1", 2, 2202), 3: ("127.0.0.1", 3, 2203)}
        assert peers[2].host_key == "ssh-ed25519 HOSTKEY2"
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


def test_missing_children_are_named_after_the_timeout() -> None:
    server = _server({1, 2, 5})
    try:
        c = _client(server, 2)
        c.connect(timeout=5)
        c.ready(2222, "ssh-ed25519 K")
        began = time.monotonic()
        with pytest.raises(RendezvousError, match=r"timeout after 0\.5s: node\(s\) 1, 5 never"):
            server.wait_ready(timeout=0.5)
        assert time.monotonic() - began < 2
    finally:
        server.close()
        c.close()


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


def test_unknown_and_duplicate_indices_are_refused() -> None:
    server = _server({1})
    first = _client(server, 1)
    try:
        with pytest.raises(RendezvousError, match="node index 4 is not a child"):
            _client(server, 4).connect(timeout=5)
        with pytest.raises(RendezvousError, match="node index 0 is not a child"):
            _client(server, 0).connect(timeout=5)
        first.connect(timeout=5)
        first.ready(2222, "ssh-ed25519 K")
        server.wait_ready(timeout=5)
        with pytest.raises(RendezvousError, match="node 1 already reported"):
            _client(server, 1).connect(timeout=5)
    finally:
        server.close()
        first.close()


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

    t = threading.Thread(target=fake_main, daemon=True)
    t.start()
    c = Client(key=derive_key(JOB, 1, SECRET), job=JOB, attempt=1, index=1, slots=1,
               main_ip="127.0.0.1", port=listener.getsockname()[1], hb_interval=0.2,
               hb_timeout=1)
    try:
        with pytest.raises(RendezvousError, match="main node failed to authenticate"):
            c.connect(timeout=5)
    finally:
        listener.close()
        t.join(timeout=5)


def test_silent_child_is_reported_lost_within_the_heartbeat_timeout() -> None:
    server = _server({1}, hb=(0.2, 1.0))
    raw = socket.create_connection(("127.0.0.1", server.port))
    try:
        ch = Channel(raw)
        c = _client(server, 1)
        welcome = c._handshake(ch)  # the real handshake, then no heartbeats at all
        assert welcome["t"] == "welcome"
        ch.send(t="ready", ssh_port=2222, host_key="ssh-ed25519 K")
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
        c.ready(2222, "ssh-ed25519 K")
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
            c.ready(2200 + i, "ssh-ed25519 K")
        server.wait_ready(timeout=5)
        clients[2].close()  # the node's process died: the kernel closes its socket
        lost = server.confirm_alive(timeout=5)
        assert [index for index, _ in lost] == [2]
    finally:
        server.close()
        for c in clients.values():
            c.close()
