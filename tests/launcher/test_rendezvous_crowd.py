"""The rendezvous when many children arrive at once (Batch starts up to 1,000 nodes together),
and that admitting them fast kept every check: a replayed hello is still refused."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from pathlib import Path

from launcher import server as rendezvous_server
from launcher.rendezvous import Channel, Client, derive_key, mac
from launcher.server import BACKLOG, Server

JOB = "0d6c4f1e-1111-2222-3333-0123456789ab"
SECRET = "9b1e5f0a7c3d2e4f60718293a4b5c6d7"
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake mnp"
CHILD_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChildChildChildChildChildChildChildChild c"
KEY = derive_key(JOB, 1, SECRET)


def _server(expected: set[int]) -> Server:
    s = Server(key=KEY, job=JOB, attempt=1, expected=expected, public_key=PUB, user="batch",
               hb_interval=5, hb_timeout=30, host="127.0.0.1", port=0)
    s.start()
    return s


def _somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def test_the_listen_backlog_holds_batchs_largest_job_arriving_at_once() -> None:
    # Batch: "up to 1,000 nodes" per multi-node job (user guide, "Multi-node parallel
    # jobs"). A listening socket's TCP_INFO reports its accept-queue bound in tcpi_sacked
    # (Linux net/ipv4/tcp.c, tcp_get_info: "sk_max_ack_backlog" for TCP_LISTEN).
    server = Server(key=KEY, job=JOB, attempt=1, expected={1}, public_key=PUB, user="batch",
                    hb_interval=5, hb_timeout=30, host="127.0.0.1", port=0)
    try:
        info = server._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        backlog = struct.unpack_from("I", info, 28)[0]  # after 8 bytes, rto ato mss mss unacked
    finally:
        server.close()
    assert BACKLOG >= 1000
    assert backlog == min(BACKLOG, _somaxconn())  # the kernel caps it at somaxconn


class _Dropped(logging.Handler):
    """Log lines of connections the server dropped or the children had to retry."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "dropped the oldest" in text or "retrying" in text:
            self.lines.append(text)


def test_children_arriving_together_do_not_drop_each_other(monkeypatch) -> None:
    """More children than pending slots, all at once: each one's handshake completes on its
    first connection (before the grace, a full table dropped children mid-handshake)."""
    monkeypatch.setattr(rendezvous_server, "MAX_PENDING", 2)
    monkeypatch.setattr(rendezvous_server, "PENDING_GRACE", 20.0)  # never reached here
    dropped = _Dropped()
    logging.getLogger("mnp").addHandler(dropped)
    n = 40
    server = _server(set(range(1, n + 1)))
    clients = [Client(key=KEY, job=JOB, attempt=1, index=i, slots=1, main_ip="127.0.0.1",
                      port=server.port, hb_interval=5, hb_timeout=30) for i in range(1, n + 1)]
    go = threading.Event()
    errors: list[BaseException] = []

    def child(c: Client) -> None:
        go.wait()
        try:
            c.connect(timeout=60)
            c.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=child, args=(c,)) for c in clients]
    try:
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert sorted(server.wait_ready(timeout=60)) == list(range(1, n + 1))
        assert dropped.lines == []
    finally:
        logging.getLogger("mnp").removeHandler(dropped)
        for c in clients:
            c.close()
        server.close()


def test_idle_strangers_past_the_grace_still_make_room_for_a_child(monkeypatch) -> None:
    monkeypatch.setattr(rendezvous_server, "MAX_PENDING", 2)
    monkeypatch.setattr(rendezvous_server, "PENDING_GRACE", 0.2)
    server = _server({1})
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(8)]
    child = Client(key=KEY, job=JOB, attempt=1, index=1, slots=1, main_ip="127.0.0.1",
                   port=server.port, hb_interval=5, hb_timeout=30)
    try:
        child.connect(timeout=30)  # HELLO_TIMEOUT (5 s) would free a slot too; the grace first
        child.ready(2222, "ssh-ed25519 K", CHILD_PUB)
        assert sorted(server.wait_ready(timeout=10)) == [1]
    finally:
        for s in held:
            s.close()
        child.close()
        server.close()


def _challenge(port: int) -> tuple[Channel, dict]:
    ch = Channel(socket.create_connection(("127.0.0.1", port), timeout=10))
    return ch, ch.recv(10, ("challenge",))


def test_a_recorded_hello_replayed_on_a_new_connection_is_refused() -> None:
    """A valid hello answers one connection's nonce only: whoever records it (a stranger on
    the network, or a node of a later attempt) cannot get in with it."""
    server = _server({1})
    try:
        ch, hi = _challenge(server.port)
        nonce = "ab" * 16
        hello = {"t": "hello", "node": 1, "slots": 1, "nonce": nonce,
                 "mac": mac(KEY, "hello", hi["nonce"], nonce, 1, 1)}
        ch.close()  # recorded, never finished
        again, hi2 = _challenge(server.port)
        assert hi2["nonce"] != hi["nonce"]
        again.send_raw((json.dumps(hello) + "\n").encode())
        reply = again.recv(10, ("reject", "welcome"))
        again.close()
        assert reply["t"] == "reject" and "bad credentials" in reply["reason"]
        assert server.peers == {}
    finally:
        server.close()
