"""Splitting a distributed product's amount: largest remainder on the cents."""

from __future__ import annotations

import random
from decimal import Decimal

from hg_pipeline.warehouse.spend import split_amount


def test_parts_sum_exactly_to_the_whole_and_stay_within_a_cent_of_their_share():
    rng = random.Random(5)
    for _ in range(2000):
        amount = Decimal(rng.randrange(-500_000, 5_000_000)).scaleb(-2)
        count = rng.randrange(1, 6)
        raw = [rng.randrange(1, 1000) for _ in range(count)]
        pcts = [round(100 * r / sum(raw), 2) for r in raw]
        pcts[-1] = round(100 - sum(pcts[:-1]), 2)
        if pcts[-1] <= 0:
            continue
        parts = split_amount(amount, [(f"c{i}", p) for i, p in enumerate(pcts)])
        assert sum(part for _, part in parts) == amount
        for (_, part), pct in zip(parts, pcts):
            assert part == part.quantize(Decimal("0.01"))
            assert abs(part - amount * Decimal(str(pct)) / 100) < Decimal("0.01")


def test_a_third_each_gives_the_odd_cent_to_the_first_share():
    parts = split_amount(Decimal("100.00"), [("a", 33.34), ("b", 33.33), ("c", 33.33)])
    assert parts == [("a", Decimal("33.34")), ("b", Decimal("33.33")), ("c", Decimal("33.33"))]
    parts = split_amount(Decimal("0.02"), [("a", 1), ("b", 1), ("c", 1)])
    assert parts == [("a", Decimal("0.01")), ("b", Decimal("0.01")), ("c", Decimal("0.00"))]
    parts = split_amount(Decimal("-10.01"), [("a", 50), ("b", 50)])  # a credit splits the same way
    assert parts == [("a", Decimal("-5.01")), ("b", Decimal("-5.00"))]
