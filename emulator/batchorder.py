"""What both emulators share: Batch's start order and the wait for every node."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterable


class BatchNodeGroup:
    """A context manager over N emulated nodes, started and awaited as Batch does.

    Subclasses set `max_delay`, `_rng` and `_closed`, and provide `setup`, `close`,
    `_start_index(i)`, `_started()` (indices started so far) and `_wait_index(i, timeout)`
    (the node's exit code, subprocess.TimeoutExpired past `timeout`).
    """

    max_delay: float
    _rng: random.Random
    _closed: bool
    _starter: threading.Thread | None = None

    def __enter__(self):  # noqa: ANN204 - the subclass's own type
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        except KeyboardInterrupt:
            # A stop signal cut the cleanup short (each step may run twice): finish it, then
            # stop as asked. interrupts.stop_signals_interrupt drops any later signal.
            self._closed = False
            self.close()
            raise

    def setup(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _start_index(self, index: int) -> None:
        raise NotImplementedError

    def _started(self) -> list[int]:
        raise NotImplementedError

    def _wait_index(self, index: int, timeout: float) -> int:
        raise NotImplementedError

    def start_in_order(self, main: int, others: Iterable[int],
                       start: Callable[[int], None] | None = None) -> None:
        """The main node now; the others in random order, each after a random delay."""
        if not 0 <= self.max_delay < float("inf"):  # nan fails too
            raise ValueError(f"max_delay {self.max_delay} must be a finite number >= 0 s")
        start = start or self._start_index
        start(main)
        children = list(others)
        self._rng.shuffle(children)
        delays = [self._rng.uniform(0, self.max_delay) for _ in children]

        def run() -> None:
            for index, delay in zip(children, delays, strict=True):
                time.sleep(delay)
                if self._closed:
                    return
                start(index)

        self._starter = threading.Thread(target=run, daemon=True)
        self._starter.start()

    def join_starter(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until every delayed start has happened."""
        if self._starter is not None:
            self._starter.join(timeout=max(0.0, timeout))

    def wait_all(self, timeout: float) -> dict[int, int | None]:
        """Every started node's exit code; None marks one still running after `timeout` s."""
        deadline = time.monotonic() + timeout
        self.join_starter(deadline - time.monotonic())
        codes: dict[int, int | None] = {}
        for index in self._started():
            try:
                codes[index] = self._wait_index(index, max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[index] = None
        return codes
