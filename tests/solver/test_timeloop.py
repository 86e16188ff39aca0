"""The shared time loop on COMM_SELF: fused sweeps equal single steps, hooks fire where due,
a stop request ends the run one poll later with a checkpoint, phase timers change nothing."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator

import numpy as np
import pytest
from mpi4py import MPI

from solver import stencil, timeloop
from solver.decomp import decompose

GRID = (29, 23)
COEFFS = (0.2, 0.15)


@pytest.fixture
def restore_signals() -> Iterator[None]:
    """StopRequest installs handlers for the life of the process; put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _stepper(rows_split: bool = False) -> tuple[timeloop.Stepper, np.ndarray]:
    """A stepper on a random interior of GRID, and the same field with one ghost layer.

    One rank has one ghost layer per axis; ``rows_split`` gives it the block of a rank whose
    row axis is split (8 ghost layers there) while its sides stay closed.
    """
    cart, block = decompose(MPI.COMM_SELF, GRID)
    assert block.ghost == stencil.MAX_DEPTH[2] and block.ghosts == (1, 1)
    if rows_split:
        block = dataclasses.replace(block, dims=(2, 1))
        assert block.ghosts == (8, 1)
    field = np.zeros(block.padded_shape)
    field[1:-1, 1:-1] = np.random.default_rng(5).random(block.count)
    u = np.zeros(block.compute_shape)
    u[block.io_view] = field
    return timeloop.Stepper(cart, block, u, COEFFS), field


def _single_steps(field: np.ndarray, steps: int) -> np.ndarray:
    u, out = field.copy(), field.copy()
    for _ in range(steps):
        stencil.step(u, out, COEFFS)
        u, out = out, u
    return u


@pytest.mark.parametrize("rows_split", [False, True])
def test_run_equals_single_steps_bit_for_bit_and_fires_hooks_where_due(rows_split: bool) -> None:
    stepper, field = _stepper(rows_split)
    saves: list[int] = []
    logs: list[int] = []
    hooks = timeloop.Hooks(checkpoint_every=10, log_every=4, save=saves.append, log=logs.append)
    step, stopped = timeloop.run(stepper, 0, 30, hooks)
    assert (step, stopped) == (30, False)
    assert saves == [10, 20]  # not at the last step: the results are written there instead
    assert logs == list(range(4, 31, 4))
    np.testing.assert_array_equal(stepper.field(), _single_steps(field, 30))


def test_run_from_a_later_step_takes_only_the_remaining_steps() -> None:
    stepper, field = _stepper()
    step, _ = timeloop.run(stepper, 17, 30)
    assert step == 30
    np.testing.assert_array_equal(stepper.field(), _single_steps(field, 13))


def test_sweeps_end_on_checkpoint_and_log_steps() -> None:
    hooks = timeloop.Hooks(checkpoint_every=10, log_every=4)
    assert [timeloop.next_boundary(s, 30, hooks) for s in (0, 4, 8, 9, 10, 28)] == \
        [4, 8, 10, 10, 12, 30]
    assert timeloop.next_boundary(3, 30, timeloop.Hooks()) == 30


def test_a_stop_request_ends_the_run_one_poll_later_with_a_checkpoint(restore_signals) -> None:
    stepper, field = _stepper()
    stop = timeloop.StopRequest(MPI.COMM_SELF)
    saves: list[int] = []
    signal.raise_signal(signal.SIGUSR1)  # what a launcher relays on SIGTERM
    hooks = timeloop.Hooks(save=saves.append, stop=stop)
    step, stopped = timeloop.run(stepper, 0, 100, hooks)
    # the first poll starts the agreement, the second sees it: two sweeps of 8 steps
    assert (step, stopped, saves) == (16, True, [16])
    assert stop.request is None  # no reduction left outstanding
    np.testing.assert_array_equal(stepper.field(), _single_steps(field, 16))


def test_a_stop_on_a_checkpoint_step_saves_once(restore_signals) -> None:
    stepper, _ = _stepper()
    stop = timeloop.StopRequest(MPI.COMM_SELF)
    saves: list[int] = []
    stop.local[0] = 1
    step, stopped = timeloop.run(stepper, 0, 100, timeloop.Hooks(8, 0, saves.append, None, stop))
    assert (step, stopped, saves) == (16, True, [8, 16])


def test_phase_timers_record_every_phase_and_change_no_result() -> None:
    timed, field = _stepper()
    timed.phases = timeloop.PhaseTimes()
    timeloop.run(timed, 0, 20)
    assert timed.phases.update > 0 and timed.phases.exchange >= 0 and timed.phases.wait >= 0
    np.testing.assert_array_equal(timed.field(), _single_steps(field, 20))


def test_one_rank_steps_on_the_grid_itself_and_writes_it_without_a_copy() -> None:
    stepper, field = _stepper()
    assert stepper.u.shape == GRID  # the row length kernel_rate measures, no ghost columns
    assert stepper.field() is stepper.u
    np.testing.assert_array_equal(stepper.field(), field)


def test_field_with_wider_ghosts_is_one_reused_contiguous_buffer() -> None:
    stepper, field = _stepper(rows_split=True)
    first = stepper.field()
    np.testing.assert_array_equal(first, field)
    assert first.flags.c_contiguous and first.shape == field.shape
    timeloop.run(stepper, 0, 3)
    assert stepper.field() is first  # a checkpoint allocates nothing
    np.testing.assert_array_equal(first, _single_steps(field, 3))


def test_the_second_array_starts_as_a_copy_with_the_same_boundary() -> None:
    stepper, _ = _stepper()
    np.testing.assert_array_equal(stepper.nxt, stepper.u)
    assert not np.shares_memory(stepper.nxt, stepper.u)
