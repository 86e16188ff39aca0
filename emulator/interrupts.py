"""SIGTERM and SIGHUP stop a run the way Ctrl-C does, so the same cleanup runs for each."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# What a terminal closing (HUP), `kill`/systemd/CI (TERM) and Ctrl-C (INT) send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; a KeyboardInterrupt, so every Ctrl-C cleanup path runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended."""
        return 128 + self.signum


def exit_code(exc: KeyboardInterrupt) -> int:
    """The exit code for an interrupt: 128 + the signal (a bare KeyboardInterrupt is SIGINT)."""
    return exc.exit_code if isinstance(exc, Stopped) else 128 + signal.SIGINT


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM/SIGHUP raises Stopped; later ones are
    dropped so that they cannot cut the cleanup short (children get default handlers)."""
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if not fired:
            fired.append(signum)
            raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
