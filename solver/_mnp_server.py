"""The main node's side of the rendezvous: admit children, watch their heartbeats."""

from __future__ import annotations

import hmac
import queue
import secrets
import socket
import threading
import time

from solver._mnp_proto import (
    HANDSHAKE_TIMEOUT,
    Channel,
    ChannelClosed,
    Peer,
    RendezvousError,
    _heartbeat,
    _start,
    log,
    mac,
)


class Server:
    """Accepts the expected children, records them as `Peer`s, reports any that go silent."""

    def __init__(self, *, key: bytes, job: str, attempt: int, expected: set[int],
                 public_key: str, user: str, hb_interval: float, hb_timeout: float,
                 host: str = "0.0.0.0", port: int = 0) -> None:
        self.key, self.job, self.attempt = key, job, attempt
        self.expected = set(expected)
        self.public_key, self.user = public_key, user
        self.hb_interval, self.hb_timeout = hb_interval, hb_timeout
        self.peers: dict[int, Peer] = {}
        self.local_ip: str | None = None  # our address as the children reach us
        self.lost: queue.Queue[tuple[int, str]] = queue.Queue()
        self._chans: dict[int, Channel] = {}
        self._synced: set[int] = set()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._finishing = False
        self._sock = socket.create_server((host, port), reuse_port=False)
        self.port = self._sock.getsockname()[1]

    def start(self) -> None:
        """Accept connections and ping admitted children in background threads."""
        _start(self._accept)
        _start(_heartbeat, self._channels, self.hb_interval, self._stop)

    def _channels(self) -> list[Channel]:
        with self._cond:
            return list(self._chans.values())

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self._sock.accept()
            except OSError:
                return
            _start(self._serve, conn, addr[0])

    def _serve(self, conn: socket.socket, ip: str) -> None:
        ch = Channel(conn)
        try:
            index = self._admit(ch, ip, conn.getsockname()[0])
        except (ChannelClosed, RendezvousError, KeyError, TypeError, ValueError) as e:
            log.warning("rendezvous: refused %s: %s", ip, e)
            try:
                ch.send(t="reject", reason=str(e))
            except ChannelClosed:
                pass
            ch.close()
            return
        while True:
            try:
                msg = ch.recv(self.hb_timeout)
            except ChannelClosed as e:
                with self._cond:
                    finishing = self._finishing
                    self._chans.pop(index, None)
                    self._cond.notify_all()
                if not finishing:
                    self.lost.put((index, str(e)))
                ch.close()
                return
            if msg.get("t") == "synced":
                with self._cond:
                    self._synced.add(index)
                    self._cond.notify_all()
            elif msg.get("t") != "ping":
                log.warning("node %d sent unexpected %r", index, msg.get("t"))

    def _admit(self, ch: Channel, ip: str, local_ip: str) -> int:
        nonce = secrets.token_hex(16)
        ch.send(t="challenge", nonce=nonce, job=self.job, attempt=self.attempt)
        hello = ch.recv(HANDSHAKE_TIMEOUT)
        index, slots = int(hello["node"]), int(hello["slots"])
        want = mac(self.key, "hello", nonce, hello["nonce"], index, slots)
        if hello.get("t") != "hello" or not hmac.compare_digest(str(hello.get("mac")), want):
            raise RendezvousError(f"bad credentials for job {self.job} attempt {self.attempt}")
        with self._cond:
            if self._finishing:
                raise RendezvousError("the job is already ending")
            if index not in self.expected:
                raise RendezvousError(f"node index {index} is not a child of this job")
            if index in self.peers:
                raise RendezvousError(f"node {index} already reported")
        if slots < 1:
            raise RendezvousError(f"node {index} offers {slots} slots")
        ch.send(t="welcome", mac=mac(self.key, "welcome", hello["nonce"], nonce),
                public_key=self.public_key, user=self.user)
        ready = ch.recv(HANDSHAKE_TIMEOUT)
        if ready.get("t") != "ready":
            raise RendezvousError(f"node {index} sent {ready.get('t')!r} instead of ready")
        peer = Peer(index, ip, slots, int(ready["ssh_port"]), str(ready["host_key"]))
        with self._cond:
            if index in self.peers or self._finishing:
                raise RendezvousError(f"node {index} already reported")
            self.peers[index] = peer
            self._chans[index] = ch
            self.local_ip = self.local_ip or local_ip
            self._cond.notify_all()
            done = len(self.peers)
        log.info("rendezvous: node %d reported from %s with %d slots (%d/%d)",
                 index, ip, slots, done, len(self.expected))
        return index

    def wait_ready(self, timeout: float, stop: threading.Event | None = None) -> dict[int, Peer]:
        """Block until every expected child reported; RendezvousError names the missing."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while set(self.peers) != self.expected:
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    missing = ", ".join(map(str, sorted(self.expected - set(self.peers))))
                    why = "stopped" if left > 0 else f"timeout after {timeout:g}s"
                    raise RendezvousError(f"rendezvous {why}: node(s) {missing} never reported")
                self._cond.wait(min(left, 0.2))
            return dict(self.peers)

    def confirm_alive(self, timeout: float) -> list[tuple[int, str]]:
        """Round-trip every child; return those lost (mpiexec may exit 0 after losing one)."""
        with self._cond:
            self._synced.clear()
            chans = list(self._chans.items())
        for _, ch in chans:
            try:
                ch.send(t="sync")
            except ChannelClosed:
                pass  # the reader reports it
        deadline = time.monotonic() + timeout
        with self._cond:
            while (set(self._chans) - self._synced) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            silent = sorted(set(self._chans) - self._synced)
        lost = []
        while not self.lost.empty():
            lost.append(self.lost.get())
        lost += [(i, f"no answer within {timeout:g}s") for i in silent]
        return sorted(lost)

    def finish(self, code: int, grace: float = 5.0) -> None:
        """Tell every child to exit with `code`, wait up to `grace` s for them to hang up."""
        with self._cond:
            self._finishing = True
            chans = list(self._chans.items())
        for _, ch in chans:
            try:
                ch.send(t="exit", code=code)
            except ChannelClosed:
                pass
        deadline = time.monotonic() + grace
        with self._cond:
            while self._chans and time.monotonic() < deadline:
                self._cond.wait(0.1)
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        with self._cond:
            for ch in self._chans.values():
                ch.close()
            self._chans.clear()
