"""The launch benchmark's arithmetic: PRRTE's radix-tree depth and the 1,000-node estimate."""

from __future__ import annotations

import pytest

from bench.launch import depth, estimate


@pytest.mark.parametrize(("nodes", "radix", "levels"), [
    (1, 64, 0), (2, 64, 1), (65, 64, 1), (66, 64, 2), (1000, 64, 2),
    (2, 2, 1), (3, 2, 1), (4, 2, 2), (8, 2, 3), (15, 2, 3), (16, 2, 4)])
def test_depth_counts_the_levels_below_the_main_node(nodes: int, radix: int,
                                                     levels: int) -> None:
    assert depth(nodes, radix) == levels


def test_the_estimate_adds_a_hop_per_extra_level_and_the_parents_ssh_starts() -> None:
    wall, tree = {2: 1.0, 4: 2.0, 8: 3.0}, {2: 1.1, 4: 2.5, 8: 2.8}
    cpu = {2: 0.10, 4: 0.12, 8: 0.16}
    est = estimate([2, 4, 8], wall, cpu, tree)
    # 2 nodes are one level at radix 2 too; of 4 (+0.5 s, 1 extra level) and 8 (-0.2 s over
    # 2 extra levels) the larger counts
    assert est["hop_s"] == pytest.approx(0.5)
    assert est["cpu_per_start_s"] == pytest.approx(0.01)
    assert est["levels"] == 2
    # 2-node figure + one more level + (64 starts on the main node + 15 on a level-1 node)
    assert est["wall_1000_s"] == pytest.approx(1.0 + 0.5 + 79 * 0.01)
    assert est["main_cpu_1000_s"] == pytest.approx(0.10 + 64 * 0.01)
    assert est["straight_line_s"] == pytest.approx(3.0 + 2.0 / 6 * 992)


def test_without_a_measured_hop_a_level_costs_as_much_as_the_first() -> None:
    est = estimate([2, 4], {2: 1.0, 4: 2.0}, {2: 0.1, 4: 0.1}, {2: 1.0, 4: 1.8})
    assert est["hop_s"] == 1.0 and est["wall_1000_s"] == pytest.approx(2.0)
