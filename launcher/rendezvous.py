"""Rendezvous between Batch nodes over TCP: authenticated hello, ready, heartbeats, exit.

Wire format: one JSON object per line. A child connects to the main node, both prove they
hold the key of this job and attempt (HMAC over fresh nonces from both sides), the main node
hands over its SSH public key, the child answers with its sshd port and host key once sshd
runs (and its own attempt key), then both send pings until the main node sends `exit`. For a
spawn tree the main node, once every child is ready, sends each child the list of all of
them (address, sshd port, host key, public key), which the child installs before it answers.
Only public keys cross the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from launcher.contract import RENDEZVOUS_SECRET_ENV
from launcher.messages import ProtocolError, decode

# The longest message (`welcome`, `ready`) carries one OpenSSH public key line (~100 bytes).
MAX_LINE = 4096
HELLO_TIMEOUT = 5.0  # a child answers the challenge in one round trip; a stranger may not idle
HANDSHAKE_TIMEOUT = 30.0  # a child starts sshd between `welcome` and `ready`

SECRET_ENV = RENDEZVOUS_SECRET_ENV  # key material; never passed on to anything started
INSECURE_ENV = "MNP_INSECURE_RENDEZVOUS"  # 1: multi-node without a secret (experiments only)

log = logging.getLogger("mnp")


def without_secret(env: Mapping[str, str]) -> dict[str, str]:
    """`env` minus the secret: the environment of anything the launcher starts."""
    return {k: v for k, v in env.items() if k != SECRET_ENV}


class RendezvousError(Exception):
    """The rendezvous failed (rejected, never answered, or nodes missing)."""


class ChannelClosed(Exception):
    """The peer closed the connection or went silent."""


def derive_key(job_id: str, attempt: int, secret: str | None) -> bytes:
    """The HMAC key binding the rendezvous to one job and attempt.

    With a secret nobody can compute it from what the challenge shows (job id and attempt);
    `None` (MNP_INSECURE_RENDEZVOUS=1 only) makes it a function of those public values alone.
    """
    return hmac.new((secret or "").encode(), f"mnp-rendezvous-v2\0{job_id}\0{attempt}".encode(),
                    hashlib.sha256).digest()


def mac(key: bytes, *parts: object) -> str:
    """HMAC-SHA256 of the `|`-joined parts."""
    return hmac.new(key, "|".join(map(str, parts)).encode(), hashlib.sha256).hexdigest()


def encode(msg: dict[str, object]) -> bytes:
    """One message as its line on the wire."""
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


class Channel:
    """Line-delimited JSON over a socket; sends may come from several threads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""
        self._lock = threading.Lock()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def send(self, **msg: object) -> None:
        self.send_raw(encode(msg))

    def send_raw(self, data: bytes) -> None:
        """Send lines already encoded (one message or several)."""
        with self._lock:
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise ChannelClosed(str(e)) from e

    def recv(self, timeout: float, expect: Collection[str]) -> dict:
        """Next message, one of `expect` (checked by `decode`).

        ChannelClosed on EOF, error or `timeout` seconds without a whole line;
        ProtocolError for anything that is not a valid message.
        """
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelClosed(f"silent for {timeout:g}s")
            try:
                self.sock.settimeout(left)
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError as e:
                raise ChannelClosed(str(e)) from e
            if not chunk:
                raise ChannelClosed("connection closed")
            self._buf += chunk
            if len(self._buf) > MAX_LINE and b"\n" not in self._buf[:MAX_LINE + 1]:
                raise ProtocolError(f"malformed message: longer than {MAX_LINE} bytes")
        line, self._buf = self._buf.split(b"\n", 1)
        if len(line) > MAX_LINE:
            raise ProtocolError(f"malformed message: longer than {MAX_LINE} bytes")
        return decode(line, expect)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@dataclass(frozen=True)
class Peer:
    """A child node that reported: where its sshd listens and how many ranks it takes."""

    index: int
    ip: str
    slots: int
    ssh_port: int
    host_key: str
    public_key: str = ""  # the child's own attempt key (its daemons start others with it)

    def message(self) -> dict[str, object]:
        """This peer as a `peer` message of the protocol."""
        return {"t": "peer", "node": self.index, "ip": self.ip, "ssh_port": self.ssh_port,
                "host_key": self.host_key, "public_key": self.public_key}


def printable(text: str) -> str:
    """`text` as a protocol field: printable, at most 1,024 characters, never empty."""
    return "".join(c if c.isprintable() else " " for c in text)[:1024] or "no reason given"


def _heartbeat(channels: Callable[[], list[Channel]], interval: float,
               stop: threading.Event) -> None:
    while not stop.wait(interval):
        for ch in channels():
            try:
                ch.send(t="ping")
            except ChannelClosed:
                pass  # the reader side notices and reports the loss


def _start(target: Callable[..., object], *args: object) -> threading.Thread:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


class Client:
    """The child side: connect, authenticate, report `ready`, then follow the main node."""

    def __init__(self, *, key: bytes, job: str, attempt: int, index: int, slots: int,
                 main_ip: str, port: int, hb_interval: float, hb_timeout: float) -> None:
        self.key, self.job, self.attempt = key, job, attempt
        self.index, self.slots = index, slots
        self.addr = (main_ip, port)
        self.hb_interval, self.hb_timeout = hb_interval, hb_timeout
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()
        # Called with every child's Peer when the main node sends the list (tree spawn);
        # `peered` goes back only after it returned.
        self.on_peers: Callable[[list[Peer]], None] | None = None
        self._peers: list[Peer] = []
        self.why: str | None = None  # the main node's reason for ending the job, if it gave one
        self._ch: Channel | None = None
        self._stop = threading.Event()

    def connect(self, timeout: float, stop: threading.Event | None = None) -> dict:
        """Retry until the main node answers; return its `welcome` (public key, user).

        A connection dropped before `welcome` is retried (a busy main node sheds the oldest
        unauthenticated connections); a `reject` or a failed check ends the rendezvous.
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                raise RendezvousError("stopped before the main node answered")
            try:
                sock = socket.create_connection(self.addr, timeout=min(5.0, self.hb_timeout))
            except OSError as e:
                last = str(e)
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            ch = Channel(sock)
            try:
                return self._handshake(ch)
            except ChannelClosed as e:
                ch.close()
                last = f"main node dropped the connection: {e}"
                log.warning("rendezvous: %s; retrying", last)
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            except BaseException:
                ch.close()
                raise
        raise RendezvousError(
            f"main node {self.addr[0]}:{self.addr[1]} did not answer within {timeout:g}s "
            f"({last})")

    def _handshake(self, ch: Channel) -> dict:
        try:
            hi = ch.recv(HANDSHAKE_TIMEOUT, ("challenge", "reject"))
            if hi["t"] == "challenge":
                if (hi["job"], hi["attempt"]) != (self.job, self.attempt):
                    raise RendezvousError(
                        f"main node runs job {hi['job']} attempt {hi['attempt']}, "
                        f"not job {self.job} attempt {self.attempt}")
                nonce = secrets.token_hex(16)
                ch.send(t="hello", node=self.index, slots=self.slots, nonce=nonce,
                        mac=mac(self.key, "hello", hi["nonce"], nonce, self.index, self.slots))
                ans = ch.recv(HANDSHAKE_TIMEOUT, ("welcome", "reject"))
            else:
                ans = hi
        except ProtocolError as e:
            raise RendezvousError(f"main node sent {e}") from None
        if ans["t"] == "reject":
            raise RendezvousError(f"main node rejected this node: {ans['reason']}")
        expected = mac(self.key, "welcome", nonce, hi["nonce"])
        if not hmac.compare_digest(ans["mac"], expected):
            raise RendezvousError("main node failed to authenticate (wrong job key)")
        self._ch = ch
        return ans

    def unfit(self, reason: str) -> None:
        """Tell the main node this node cannot run the job's fabric (instead of `ready`)."""
        self._tell(t="unfit", reason=printable(reason))

    def fail(self, code: int, reason: str) -> None:
        """Tell the main node this node failed getting ready and exits `code` (not `ready`)."""
        self._tell(t="failed", code=code, reason=printable(reason))

    def _tell(self, **msg: object) -> None:
        assert self._ch is not None
        try:
            self._ch.send(**msg)
        except ChannelClosed as e:
            log.warning("could not tell the main node why this node stops: %s", e)

    def ready(self, ssh_port: int, host_key: str, public_key: str) -> None:
        """Report that sshd runs, then keep pinging and watch for `exit` or silence."""
        assert self._ch is not None
        self._ch.send(t="ready", ssh_port=ssh_port, host_key=host_key, public_key=public_key)
        _start(_heartbeat, lambda: [self._ch], self.hb_interval, self._stop)
        _start(self._read)

    def _read(self) -> None:
        assert self._ch is not None
        while not self._stop.is_set():
            try:
                msg = self._ch.recv(self.hb_timeout,
                                    ("ping", "sync", "exit", "peer", "peers", "why"))
                if msg["t"] in ("peer", "peers"):
                    self._take_peer(msg)
                    continue
                if msg["t"] == "why":
                    self.why = msg["reason"]
                    continue
            except (ChannelClosed, ProtocolError, OSError) as e:
                if not self._stop.is_set():
                    self.events.put(("lost", str(e)))
                return
            if msg["t"] == "sync":
                try:
                    self._ch.send(t="synced")
                except ChannelClosed:
                    pass
            elif msg["t"] == "exit":
                self.events.put(("exit", msg["code"]))
                return

    def _take_peer(self, msg: dict) -> None:
        """Collect `peer` lines; at `peers`, install them and answer `peered`."""
        assert self._ch is not None
        if msg["t"] == "peer":
            self._peers.append(Peer(msg["node"], msg["ip"], 1, msg["ssh_port"],
                                    msg["host_key"], msg["public_key"]))
            return
        peers, self._peers = self._peers, []
        if msg["count"] != len(peers):
            raise ProtocolError(f"peers: count {msg['count']} but {len(peers)} peer lines")
        if self.on_peers is not None:
            self.on_peers(peers)  # an OSError here (disk full) is this node unusable
        self._ch.send(t="peered", count=len(peers))

    def close(self) -> None:
        self._stop.set()
        if self._ch is not None:
            self._ch.close()
