"""The rendezvous' messages: one schema, and the one check every received line passes."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass


class ProtocolError(Exception):
    """The peer sent something that is not a message of this protocol."""


@dataclass(frozen=True)
class _Field:
    check: Callable[[object], bool]
    allowed: str


def _int(low: int, high: int) -> _Field:
    return _Field(lambda v: type(v) is int and low <= v <= high, f"an integer in {low}..{high}")


def _text(limit: int) -> _Field:
    return _Field(lambda v: type(v) is str and 0 < len(v) <= limit and v.isprintable(),
                  f"printable text of 1..{limit} characters")


def _hex(length: int) -> _Field:
    return _Field(lambda v: type(v) is str and len(v) == length
                  and all(c in "0123456789abcdef" for c in v), f"{length} lowercase hex digits")


NONCE, MAC = _hex(32), _hex(64)
# Every message of the protocol and its fields; nothing else is accepted from the wire.
MESSAGES: dict[str, dict[str, _Field]] = {
    "challenge": {"nonce": NONCE, "job": _text(256), "attempt": _int(1, 2**31)},
    # Batch allows up to 1,000 nodes; slots are the node's vCPUs.
    "hello": {"node": _int(0, 9_999), "slots": _int(1, 1_000_000), "nonce": NONCE, "mac": MAC},
    "welcome": {"mac": MAC, "public_key": _text(1024), "user": _text(256)},
    # Instead of `ready`: this node cannot run the job's fabric (the one line saying why).
    "unfit": {"reason": _text(1024)},
    # Instead of `ready`: this node failed while getting ready; the code it exits with.
    "failed": {"code": _int(1, 255), "reason": _text(1024)},
    # public_key: the child's own attempt key, which its daemons start others' with.
    "ready": {"ssh_port": _int(1, 65535), "host_key": _text(1024), "public_key": _text(1024)},
    # After every child is ready (tree spawn): one `peer` line per child, then `peers` with
    # their count; the child admits every key and pins every host key, then says `peered`.
    "peer": {"node": _int(0, 9_999), "ip": _text(64), "ssh_port": _int(1, 65535),
             "host_key": _text(1024), "public_key": _text(1024)},
    "peers": {"count": _int(1, 9_999)}, "peered": {"count": _int(1, 9_999)},
    "reject": {"reason": _text(1024)},
    "ping": {}, "sync": {}, "synced": {},
    "exit": {"code": _int(0, 255)},
    # Before `exit` when the main node gives up on the job: the line saying why, for every
    # node's log (a gang's members are separate Batch jobs, each with its own log).
    "why": {"reason": _text(1024)},
}


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number JSON allows")


def _clip(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _short(value: object) -> str:
    return _clip(repr(value))


def decode(line: bytes, expect: Collection[str]) -> dict:
    """Parse and check one line against MESSAGES; ProtocolError says what is wrong."""
    try:
        msg = json.loads(line, parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("malformed message: nested too deeply") from None
    except ValueError as e:  # bad JSON, bad UTF-8, an integer too long to convert
        raise ProtocolError(f"malformed message: {_clip(str(e))}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"malformed message: a JSON {type(msg).__name__}, not an object")
    kind = msg.get("t")
    if kind not in expect:
        raise ProtocolError(f"unexpected message {_short(kind)} (expected "
                            f"{' or '.join(sorted(expect))})")
    fields = MESSAGES[kind]
    extra = sorted(set(msg) - set(fields) - {"t"})
    if extra:
        raise ProtocolError(f"{kind}: unknown field(s) {_short(extra)}")
    for name, field in fields.items():
        if name not in msg:
            raise ProtocolError(f"{kind}: field {name!r} is missing")
        if not field.check(msg[name]):
            raise ProtocolError(f"{kind}.{name}: {_short(msg[name])} is not {field.allowed}")
    return msg
