import pytest

from nnc_web.engine.reporting import UserError
from nnc_web.engine.splitting import split_counts, split_rows


@pytest.mark.parametrize("total,r1,r2,expected", [
    (10, 70, 30, (7, 3)), (100, 80, 20, (80, 20)), (5, 50, 50, (2, 3)), (3, 100, 0, (3, 0)),
    (10, 0, 100, (0, 10)), (10, 50, 30, (5, 3)), (7, 60, 40, (4, 3)), (0, 80, 20, (0, 0)),
])
def test_both_ratios_are_honoured(total, r1, r2, expected):
    assert split_counts(total, r1, r2) == expected


def test_ratios_over_100_are_refused():
    with pytest.raises(UserError):
        split_counts(10, 80, 30)


def test_shuffle_is_deterministic_for_a_seed_and_differs_between_seeds():
    rows = list(range(100))
    first = split_rows(rows, 80, 20, shuffle=True, seed=7)
    assert first == split_rows(rows, 80, 20, shuffle=True, seed=7)
    assert first != split_rows(rows, 80, 20, shuffle=True, seed=8)
    assert sorted(first[0] + first[1]) == rows and first[0][:10] != rows[:10]


def test_without_shuffle_source_order_is_kept():
    assert split_rows(list(range(10)), 70, 30, shuffle=False, seed=1) == ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
