"""The main node's side of the rendezvous: admit children, watch their heartbeats."""

from __future__ import annotations

import errno
import hmac
import math
import queue
import secrets
import socket
import threading
import time
from collections import Counter

from launcher.contract import NODE_LOST
from launcher.rendezvous import (
    HANDSHAKE_TIMEOUT,
    HELLO_TIMEOUT,
    Channel,
    ChannelClosed,
    Peer,
    ProtocolError,
    RendezvousError,
    _heartbeat,
    _start,
    encode,
    log,
    mac,
    printable,
)

# Connections that have not yet proved they hold the key, each with its own thread. A real
# child needs one round trip (milliseconds) before it is authenticated; 64 keeps threads and
# descriptors far below the usual 1,024 open-file limit. When full, accepting waits until one
# is done or has had PENDING_GRACE seconds, then drops the oldest connection of the address
# holding the most among those: a stranger's idle connections never outlive a child's fresh
# one, and a child whose connection was dropped reconnects. Without the grace, 999 children
# connecting at once (Batch's 1,000 nodes starting together) dropped each other mid-handshake
# (116 reconnects of 0.5 s each in `python -m bench --only rendezvous`).
MAX_PENDING = 64
PENDING_GRACE = 1.0  # seconds: many round trips even on a busy main node; HELLO_TIMEOUT is 5
# Connections the kernel completes and queues before accept() takes them. Python's default
# (128) is far below 999 children starting at once: past it Linux drops handshakes and leaves
# them to TCP's retransmission timers, and a child that believes it is connected waits out
# its handshake timeout (30 s); 999 children took 31-33 s to be admitted that way, 2-3 s with
# this backlog. listen(2) silently caps it at net.core.somaxconn (4096 since Linux 5.4).
BACKLOG = 4096
# accept() errors that pass (descriptors, memory, a peer gone before accept): back off, go on.
TRANSIENT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED,
             errno.EPROTO, errno.EPERM, errno.ETIMEDOUT, errno.EINTR, errno.EAGAIN}


class _Throttled:
    """A warning at most once per `every` seconds, counting the ones held back."""

    def __init__(self, every: float = 1.0) -> None:
        self.every, self._last, self._held = every, 0.0, 0

    def warn(self, fmt: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            self._held += 1
            return
        more = f" (and {self._held} more like it)" if self._held else ""
        self._last, self._held = now, 0
        log.warning(fmt + more, *args)


class NodeFailed(RendezvousError):
    """A child cannot take part: it reported why (or went away) after its welcome.

    `code` is what the job ends with: the child's own, or node-lost when it left unsaid.
    """

    def __init__(self, line: str, code: int) -> None:
        super().__init__(line)
        self.code = code


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
        # Children that cannot take part: the job's exit code and the line saying why.
        self.failed: dict[int, tuple[int, str]] = {}
        self._chans: dict[int, Channel] = {}
        self._synced: set[int] = set()
        self._peered: set[int] = set()
        # unauthenticated and not yet dropped: address and when accepted, oldest first
        self._pending: dict[socket.socket, tuple[str, float]] = {}
        self._unproven: set[socket.socket] = set()  # _pending, and dropped ones still served
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._finishing = False
        # Under attack these come by the hundred: one line a second says enough.
        self._accept_errors, self._shed, self._gone = _Throttled(), _Throttled(), _Throttled()
        self._sock = socket.create_server((host, port), reuse_port=False, backlog=BACKLOG)
        self.port = self._sock.getsockname()[1]

    def start(self) -> None:
        """Accept connections and ping admitted children in background threads."""
        _start(self._accept)
        _start(_heartbeat, self._channels, self.hb_interval, self._stop)

    def _channels(self) -> list[Channel]:
        with self._cond:
            return list(self._chans.values())

    def _accept(self) -> None:
        backoff = 0.01
        while not self._stop.is_set():
            try:
                conn, addr = self._sock.accept()
            except OSError as e:
                if self._stop.is_set():
                    return
                if e.errno not in TRANSIENT:
                    log.error("rendezvous: accept() failed for good: %s", e)
                    return
                self._accept_errors.warn("rendezvous: accept() failed: %s; retrying in %gs",
                                         e, backoff)
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    with self._cond:
                        self._shed_one()  # frees a descriptor for the next child
                time.sleep(backoff)
                backoff = min(2 * backoff, 1.0)
                continue
            backoff = 0.01
            with self._cond:
                self._make_room()
                if self._stop.is_set():
                    conn.close()
                    return
                self._pending[conn] = (addr[0], time.monotonic())
                self._unproven.add(conn)
            _start(self._serve, conn, addr[0])

    def _make_room(self) -> None:
        """Wait until fewer than MAX_PENDING unauthenticated connections are served, shedding
        one older than the grace when none is on its way out (lock held)."""
        while len(self._unproven) >= MAX_PENDING and not self._stop.is_set():
            left = PENDING_GRACE
            if self._pending and len(self._pending) == len(self._unproven):
                oldest = next(iter(self._pending.values()))[1]  # the dict keeps accept order
                left = oldest + PENDING_GRACE - time.monotonic()
                if left <= 0:
                    self._shed_one(time.monotonic() - PENDING_GRACE)
                    continue  # its thread leaves at once and notifies
            self._cond.wait(left)  # a handshake that ends notifies

    def _shed_one(self, before: float = math.inf) -> None:
        """Drop the oldest unauthenticated connection of the busiest address among those
        accepted before `before` (lock held)."""
        old = {c: ip for c, (ip, since) in self._pending.items() if since <= before}
        if not old:
            return
        busiest, _ = Counter(old.values()).most_common(1)[0]
        victim = next(c for c, ip in old.items() if ip == busiest)
        del self._pending[victim]
        self._shed.warn("rendezvous: %d connections not yet authenticated: dropped the "
                        "oldest from %s", len(self._pending) + 1, busiest)
        try:
            victim.shutdown(socket.SHUT_RDWR)  # wakes its thread, which closes it
        except OSError:
            pass

    def _authenticated(self, conn: socket.socket) -> None:
        with self._cond:
            if self._pending.pop(conn, None) is None:
                raise ChannelClosed("dropped while the rendezvous was full")
            self._unproven.discard(conn)
            self._cond.notify_all()

    def _serve(self, conn: socket.socket, ip: str) -> None:
        ch = Channel(conn)
        try:
            try:
                index = self._admit(ch, conn, ip)
            except (ChannelClosed, ProtocolError, RendezvousError) as e:
                if isinstance(e, ChannelClosed):  # went away or idled: nothing to learn
                    self._gone.warn("rendezvous: refused %s: %s", ip, e)
                else:
                    log.warning("rendezvous: refused %s: %s", ip, e)
                try:
                    ch.send(t="reject", reason=str(e)[:1024])
                except ChannelClosed:
                    pass
                return
            finally:
                with self._cond:
                    self._pending.pop(conn, None)
                    self._unproven.discard(conn)
                    self._cond.notify_all()
            if index is not None:
                self._follow(ch, index)
        finally:
            ch.close()  # whatever happened: no socket is left half-closed

    def _follow(self, ch: Channel, index: int) -> None:
        while True:
            try:
                msg = ch.recv(self.hb_timeout, ("ping", "synced", "peered"))
            except (ChannelClosed, ProtocolError) as e:
                with self._cond:
                    finishing = self._finishing
                    self._chans.pop(index, None)
                    self._cond.notify_all()
                if not finishing:
                    self.lost.put((index, str(e)))
                return
            if msg["t"] in ("synced", "peered"):
                with self._cond:
                    (self._synced if msg["t"] == "synced" else self._peered).add(index)
                    self._cond.notify_all()

    def _admit(self, ch: Channel, conn: socket.socket, ip: str) -> int | None:
        nonce = secrets.token_hex(16)
        ch.send(t="challenge", nonce=nonce, job=self.job, attempt=self.attempt)
        hello = ch.recv(HELLO_TIMEOUT, ("hello",))
        index, slots = hello["node"], hello["slots"]
        want = mac(self.key, "hello", nonce, hello["nonce"], index, slots)
        if not hmac.compare_digest(hello["mac"], want):
            raise RendezvousError(f"bad credentials for job {self.job} attempt {self.attempt}")
        self._authenticated(conn)
        with self._cond:
            if self._finishing:
                raise RendezvousError("the job is already ending")
            if index not in self.expected:
                raise RendezvousError(f"node index {index} is not a child of this job")
            if index in self.peers:
                raise RendezvousError(f"node {index} already reported")
        ch.send(t="welcome", mac=mac(self.key, "welcome", hello["nonce"], nonce),
                public_key=self.public_key, user=self.user)
        try:
            ready = ch.recv(HANDSHAKE_TIMEOUT, ("ready", "unfit", "failed"))
        except ChannelClosed as e:  # a child does not reconnect after its welcome
            self._fail(index, NODE_LOST, f"node {index} ({ip}) went away before it was "
                       f"ready: {e}")
            return None
        if ready["t"] == "unfit":  # the child's own line names it and what it lacks
            self._fail(index, NODE_LOST, ready["reason"])
            return None
        if ready["t"] == "failed":
            self._fail(index, ready["code"], f"node {index} ({ip}) failed before it was "
                       f"ready: {ready['reason']}")
            return None
        peer = Peer(index, ip, slots, ready["ssh_port"], ready["host_key"],
                    ready["public_key"])
        with self._cond:
            if index in self.peers or self._finishing:
                raise RendezvousError(f"node {index} already reported")
            self.peers[index] = peer
            self._chans[index] = ch
            self.local_ip = self.local_ip or conn.getsockname()[0]
            self._cond.notify_all()
            done = len(self.peers)
        log.info("rendezvous: node %d reported from %s with %d slots (%d/%d)",
                 index, ip, slots, done, len(self.expected))
        return index

    def _fail(self, index: int, code: int, line: str) -> None:
        with self._cond:
            if not self._finishing:
                self.failed.setdefault(index, (code, line))
            self._cond.notify_all()

    def wait_ready(self, timeout: float, stop: threading.Event | None = None) -> dict[int, Peer]:
        """Block until every expected child reported; RendezvousError names the missing."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while set(self.peers) != self.expected:
                if self.failed:
                    code, line = self.failed[min(self.failed)]
                    raise NodeFailed(line, code)
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    missing = ", ".join(map(str, sorted(self.expected - set(self.peers))))
                    why = "stopped" if left > 0 else f"timeout after {timeout:g}s"
                    raise RendezvousError(f"rendezvous {why}: node(s) {missing} never reported")
                self._cond.wait(min(left, 0.2))
            return dict(self.peers)

    def _round_trip(self, data: bytes, answered: set[int], timeout: float) -> set[int]:
        """Send `data` to every child, wait until each answered (its reader adds it to
        `answered`) or left, for at most `timeout` s; return the children it went to."""
        with self._cond:
            answered.clear()
            chans = list(self._chans.items())
        for _, ch in chans:
            try:
                ch.send_raw(data)
            except ChannelClosed:
                pass  # the reader reports it
        deadline = time.monotonic() + timeout
        with self._cond:
            while (set(self._chans) - answered) and time.monotonic() < deadline:
                self._cond.wait(0.05)
        return {i for i, _ in chans}

    def share_peers(self, timeout: float) -> list[int]:
        """Send every child the list of all children; return those that did not install it.

        For a spawn tree: each child's sshd must admit every child's key and each child's
        ssh pin every child's host key. The lines are encoded once and sent to all.
        """
        with self._cond:
            lines = [p.message() for _, p in sorted(self.peers.items())]
        data = b"".join(encode(m) for m in [*lines, {"t": "peers", "count": len(lines)}])
        sent = self._round_trip(data, self._peered, timeout)
        with self._cond:
            return sorted(sent - self._peered)

    def confirm_alive(self, timeout: float) -> list[tuple[int, str]]:
        """Round-trip every child; return those lost (mpiexec may exit 0 after losing one)."""
        self._round_trip(encode({"t": "sync"}), self._synced, timeout)
        with self._cond:
            silent = sorted(set(self._chans) - self._synced)
        lost = []
        while not self.lost.empty():
            lost.append(self.lost.get())
        lost += [(i, f"no answer within {timeout:g}s") for i in silent]
        return sorted(lost)

    def finish(self, code: int, grace: float = 5.0, why: str | None = None) -> None:
        """Tell every child to exit with `code` (after `why`, when given), wait up to `grace`
        s for them to hang up."""
        with self._cond:
            self._finishing = True
            chans = list(self._chans.items())
        said = encode({"t": "why", "reason": printable(why)}) if why else b""
        for _, ch in chans:
            try:
                ch.send_raw(said + encode({"t": "exit", "code": code}))
            except ChannelClosed:
                pass
        deadline = time.monotonic() + grace
        with self._cond:
            while self._chans and time.monotonic() < deadline:
                self._cond.wait(0.1)
        self.close()

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept thread: it ends
        except OSError:
            pass
        self._sock.close()
        with self._cond:
            for conn in self._pending:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._pending.clear()
            for ch in self._chans.values():
                ch.close()
            self._chans.clear()
