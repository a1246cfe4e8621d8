"""What the anomaly methods accept, without torch: the training forms list and check these on the web."""
from __future__ import annotations

from nnc_web.engine.errors import UserError

AUTO = "auto"
GAUSSIAN_MODES = ("dense", "1/16", "single")  # PaDiM: per position of the finest map, of the coarsest, one


def parse_feature_ratio(value: object) -> float | str:
    """`auto` or a share of the channels in (0, 1] (a number or its text)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        ratio = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ratio = float("nan")
    if isinstance(value, bool) or not 0 < ratio <= 1:
        raise UserError("feature_ratio must be auto or a number above 0 and at most 1")
    return ratio
