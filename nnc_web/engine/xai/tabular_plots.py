"""The pictures of the tabular explanations (matplotlib's Agg canvas, no pyplot state): LIME's bar
chart of one row, the mean |weight| bars and beeswarm of a batch, and a SHAP force plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

POSITIVE, NEGATIVE = "#FF0D57", "#1E88E5"  # SHAP's red (pushes up) and blue (pushes down)
MAX_ROWS = 30  # features shown in one chart; the rest are summed up in the CSV only


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, format="png", dpi=100, bbox_inches="tight")


def importance_bars(path: Path, labels: list[str], weights: np.ndarray, title: str) -> None:
    """Horizontal bars, the largest |weight| on top, each labelled with its condition and value."""
    order = np.argsort(-np.abs(weights), kind="stable")[:MAX_ROWS][::-1]
    figure = Figure(figsize=(9, 1.2 + 0.4 * len(order)))
    axes = figure.subplots()
    values = weights[order]
    axes.barh(range(len(order)), values, color=["#2ca02c" if w > 0 else "#d62728" for w in values])
    axes.set_yticks(range(len(order)), [labels[i] for i in order])
    span = float(np.abs(values).max()) or 1.0
    for y, w in enumerate(values):
        axes.text(w + (0.01 if w >= 0 else -0.01) * span, y, f"{w:.5f}", va="center",
                  ha="left" if w >= 0 else "right", fontsize=8)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlim(-1.25 * span if (values < 0).any() else -0.05 * span,
                  1.25 * span if (values > 0).any() else 0.05 * span)
    axes.set_xlabel("importance (weight of the local linear model)")
    axes.set_title(title)
    _save(figure, path)


def mean_abs_bars(path: Path, names: list[str], weights: np.ndarray, title: str, what: str) -> None:
    """Mean |weight| over the rows per feature, the largest on top."""
    mean = np.abs(weights).mean(axis=0)
    order = np.argsort(-mean, kind="stable")[:MAX_ROWS][::-1]
    figure = Figure(figsize=(9, 1.2 + 0.4 * len(order)))
    axes = figure.subplots()
    axes.barh(range(len(order)), mean[order], color=POSITIVE)
    axes.set_yticks(range(len(order)), [names[i] for i in order])
    axes.set_xlabel(f"mean |{what}|")
    axes.set_title(title)
    _save(figure, path)


def beeswarm(path: Path, names: list[str], weights: np.ndarray, colours: np.ndarray, title: str,
             what: str) -> None:
    """One row of dots per feature (weight on x), spread where they pile up, coloured by the feature's
    value (blue low, red high, NNC's `bwr`); grey where there is no order (a categorical feature)."""
    order = np.argsort(-np.abs(weights).mean(axis=0), kind="stable")[:MAX_ROWS][::-1]
    figure = Figure(figsize=(9, 1.2 + 0.45 * len(order)))
    axes = figure.subplots()
    cmap = colormaps["bwr"]
    for y, j in enumerate(order):
        x = weights[:, j]
        offsets = _swarm_offsets(x)
        shade = colours[:, j]
        colour = [cmap(float(v)) if np.isfinite(v) else (0.6, 0.6, 0.6, 1.0) for v in shade]
        axes.scatter(x, y + offsets, s=12, c=colour, linewidths=0)
    axes.set_yticks(range(len(order)), [names[j] for j in order])
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel(what)
    axes.set_title(title)
    bar = figure.colorbar(_mappable(cmap), ax=axes, ticks=[0, 1], aspect=40)
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("feature value")
    _save(figure, path)


def _mappable(cmap):
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(cmap=cmap)


def _swarm_offsets(x: np.ndarray, bins: int = 40, height: float = 0.4) -> np.ndarray:
    """Vertical offsets that stack the dots falling in the same x bin, alternately up and down."""
    span = float(x.max() - x.min()) or 1.0
    slot = np.floor((x - x.min()) / span * (bins - 1)).astype(int)
    offsets = np.zeros(len(x))
    most = max(int(np.bincount(slot).max()), 1)
    for b in np.unique(slot):
        members = np.flatnonzero(slot == b)
        rank = np.arange(len(members))
        offsets[members] = np.where(rank % 2 == 0, 1, -1) * ((rank + 1) // 2)
    return offsets * (height / max(most / 2, 1))


def scaled(values: np.ndarray) -> np.ndarray:
    """Each column scaled to 0..1 (its 5th to 95th percentile), the beeswarm's colours."""
    low, high = np.nanpercentile(values, 5, axis=0), np.nanpercentile(values, 95, axis=0)
    return np.clip((values - low) / np.where(high > low, high - low, 1.0), 0.0, 1.0)


def force_plot(path: Path, labels: list[str], phi: np.ndarray, base: float, prediction: float,
               title: str) -> None:
    """SHAP's force plot: from the base value, red features push the output up to f(x), blue ones push
    it down; the segments sit end to end on one axis, the largest labelled below it."""
    figure = Figure(figsize=(12, 3.2))
    axes = figure.subplots()
    positive = [j for j in np.argsort(-phi, kind="stable") if phi[j] > 0]
    negative = [j for j in np.argsort(phi, kind="stable") if phi[j] < 0]
    span = float(np.abs(phi).sum()) or 1.0
    right = prediction  # red segments end at f(x), the largest nearest to it
    for j in positive:
        _segment(axes, right - phi[j], right, POSITIVE, labels[j], phi[j], span)
        right -= phi[j]
    left = prediction  # blue segments start at f(x)
    for j in negative:
        _segment(axes, left, left - phi[j], NEGATIVE, labels[j], phi[j], span)
        left -= phi[j]
    low = min(prediction - phi[phi > 0].sum(), base, prediction) - 0.08 * span
    high = max(prediction - phi[phi < 0].sum(), base, prediction) + 0.08 * span
    axes.set_xlim(low, high)
    axes.set_ylim(-1.6, 1.2)
    axes.axvline(base, color="grey", linestyle="--", linewidth=1)
    axes.text(base, 0.75, f"base value\n{base:.4g}", ha="center", va="bottom", fontsize=9, color="grey",
              bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    axes.text(prediction, 0.45, f"f(x) = {prediction:.4g}", ha="center", va="bottom", fontsize=11,
              fontweight="bold")
    axes.set_yticks([])
    for side in ("left", "right", "top"):
        axes.spines[side].set_visible(False)
    axes.set_title(title)
    handles = [axes.bar(0, 0, color=POSITIVE, label="higher"), axes.bar(0, 0, color=NEGATIVE, label="lower")]
    axes.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    _save(figure, path)


def _segment(axes, start: float, end: float, colour: str, label: str, value: float, span: float) -> None:
    axes.barh(0, end - start, left=start, height=0.6, color=colour, edgecolor="white", linewidth=1)
    if abs(value) >= 0.04 * span:  # label only the segments wide enough to read
        axes.text((start + end) / 2, -0.45, f"{label}\n({value:+.4g})", ha="center", va="top", fontsize=8,
                  rotation=0, color=colour)
