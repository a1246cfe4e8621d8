"""Splitting rows into the two output datasets with both ratios honoured."""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from nnc_web.engine.reporting import UserError

T = TypeVar("T")


def split_counts(total: int, ratio1: int, ratio2: int) -> tuple[int, int]:
    """Rows for output 1 and 2. Both shares are rounded from the same total, so 50/50 of 5 is 3/2
    and 70/30 of 10 is exactly 7/3; rows beyond ratio1+ratio2 percent are left out."""
    if ratio1 < 0 or ratio2 < 0 or ratio1 + ratio2 > 100:
        raise UserError("ratio1 and ratio2 must be between 0 and 100 and add up to at most 100")
    used = round(total * (ratio1 + ratio2) / 100)
    first = min(round(total * ratio1 / 100), used)
    return first, used - first


def split_rows(
    rows: Sequence[T], ratio1: int, ratio2: int, shuffle: bool, seed: int
) -> tuple[list[T], list[T]]:
    """Shuffle (deterministically for a seed) then cut the rows into the two outputs."""
    ordered = list(rows)
    if shuffle:
        random.Random(seed).shuffle(ordered)
    first, second = split_counts(len(ordered), ratio1, ratio2)
    return ordered[:first], ordered[first:first + second]
