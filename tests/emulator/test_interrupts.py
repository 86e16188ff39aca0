"""Stop signals become the Ctrl-C path, once, and cleanup interrupted by one still finishes."""

from __future__ import annotations

import os
import signal
import time

import pytest

from emulator.batchorder import BatchNodeGroup
from emulator.interrupts import Stopped, exit_code, stop_signals_interrupt


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_raises_a_keyboard_interrupt_with_its_exit_code(sig: int) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt) as stop, stop_signals_interrupt():
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler runs at once and raises
    assert isinstance(stop.value, Stopped) and exit_code(stop.value) == 128 + sig
    assert signal.getsignal(sig) is before  # restored after the block


def test_later_signals_are_dropped_while_cleaning_up() -> None:
    cleaned = []
    with pytest.raises(Stopped), stop_signals_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGHUP)  # e.g. the terminal closing meanwhile
            time.sleep(0.1)
            cleaned.append(True)
    assert cleaned == [True]
    assert exit_code(KeyboardInterrupt()) == 130


class _Group(BatchNodeGroup):
    """A group whose first close is cut short by a stop signal."""

    def __init__(self) -> None:
        self._closed, self.steps = False, []

    def setup(self) -> None:
        pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.steps.append("started")
        if len(self.steps) == 1:
            raise Stopped(signal.SIGTERM)
        self.steps.append("finished")


def test_cleanup_cut_short_by_a_signal_is_finished_before_stopping() -> None:
    group = _Group()
    with pytest.raises(Stopped), group:
        pass
    assert group.steps == ["started", "started", "finished"]
