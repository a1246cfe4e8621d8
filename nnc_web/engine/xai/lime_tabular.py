"""LIME for tabular models (Ribeiro, Singh & Guestrin, "Why Should I Trust You?", 2016) through the
`lime` package with NNC's settings: quartile bins from the training rows, binary "same bin as the
row" features, kernel width 0.75·sqrt(F), a weighted Ridge(alpha=1), seed 0 for every row (so a row
explained alone or in a batch gets the same weights). A categorical column's one-hot group is one
categorical feature (`'colour' = red`), sampled from the training frequencies of its values."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lime.discretize import QuartileDiscretizer
from lime.lime_tabular import LimeTabularExplainer
from scipy.special import ndtr, ndtri

from nnc_web.engine.xai.tabular import Encoding, Feature, TabularModel

SEED = 0


class QuartileSampler(QuartileDiscretizer):
    """lime's quartile discretizer, with the values of the sampled bins drawn for every feature at
    once by inverting the truncated normal's CDF (lime calls scipy's truncnorm once per feature: most
    of its time on wide tables, and scipy's sampler alone is ten times slower than the inversion), and
    a bin that holds a single value sampled as that value (lime returns its z-score, 0, instead)."""

    def bins(self, data: np.ndarray, labels) -> list[np.ndarray]:
        self.quartiles = {f: np.unique(np.percentile(data[:, f], [25, 50, 75])) for f in self.to_discretize}
        return [self.quartiles[f] for f in self.to_discretize]

    def _tables(self) -> tuple:
        if not hasattr(self, "_table_cache"):
            features = list(self.means)
            width = max(len(self.means[f]) for f in features)

            def table(values: dict) -> np.ndarray:  # (features, bins), short rows padded (never indexed)
                return np.array([list(values[f]) + [values[f][-1]] * (width - len(values[f])) for f in features])

            self._table_cache = (features, table(self.mins), table(self.maxs), table(self.means), table(self.stds))
        return self._table_cache

    def undiscretize(self, data: np.ndarray) -> np.ndarray:
        if data.ndim != 2 or not self.means:
            return super().undiscretize(data)
        features, mins, maxs, means, stds = self._tables()
        bins = data[:, features].astype(int)
        columns = np.arange(len(features))[None, :]
        low, high, mean, std = mins[columns, bins], maxs[columns, bins], means[columns, bins], stds[columns, bins]
        a, b = (low - mean) / std, (high - mean) / std
        values = low.copy()
        drawn = a != b
        if drawn.any():
            values[drawn] = mean[drawn] + std[drawn] * truncated_normal(a[drawn], b[drawn], self.random_state)
        out = data.copy()
        out[:, features] = values
        return out


def truncated_normal(a: np.ndarray, b: np.ndarray, random: np.random.RandomState) -> np.ndarray:
    """Standard normal draws truncated to [a, b] by inverting the CDF. Above the mean the mirror image
    is inverted instead, where the CDF keeps its precision in the tail. (lime's bins hold their own
    mean, so a <= 0 <= b there and the inversion is exact to rounding.)"""
    upper = a > 0
    low, high = np.where(upper, -b, a), np.where(upper, -a, b)
    cdf_low, cdf_high = ndtr(low), ndtr(high)
    z = np.clip(ndtri(cdf_low + random.uniform(size=a.shape) * (cdf_high - cdf_low)), low, high)
    z = np.where(cdf_high > cdf_low, z, high)  # beyond ~37 sd the CDF underflows: the end nearer the mean
    return np.where(upper, -z, z)


@dataclass
class LimeExplanation:
    weights: np.ndarray  # one per feature, in feature order
    conditions: list[str]  # NNC's condition text of the row's bin / category per feature
    intercept: float
    score: float  # R² of the weighted local model
    prediction: float  # the model's output explained (the class score, or the regressor's value)


class TabularLime:
    """One explainer per job (bins and frequencies from the training rows), one `explain` per row."""

    def __init__(self, model: TabularModel, features: list[Feature], train_x: np.ndarray,
                 num_samples: int = 1000, seed: int = SEED) -> None:
        self.model = model
        self.features = features
        self.num_samples = num_samples
        self.seed = seed
        self.encoding = Encoding(features, train_x.shape[1])
        grouped = self.encoding.group(train_x)
        categorical = self.encoding.categorical
        labels = [f.label for f in features]
        self.random = np.random.RandomState(seed)  # shared by lime's sampler, discretizer and regression
        self.discretizer = QuartileSampler(grouped, categorical, labels, random_state=self.random)
        self.explainer = LimeTabularExplainer(
            grouped, mode="regression" if model.regression else "classification", feature_names=labels,
            categorical_features=categorical,
            categorical_names={j: list(features[j].categories) for j in categorical},
            discretizer=self.discretizer, feature_selection="none", random_state=self.random)

    def _predict(self, grouped: np.ndarray) -> np.ndarray:
        out = self.model.predict_numpy(self.encoding.expand(grouped))
        return out[:, 0] if self.model.regression else out

    def explain(self, x_row: np.ndarray, class_index: int) -> LimeExplanation:
        """The weights of one row (model inputs, width values) for `class_index` (0 for a regressor)."""
        grouped = self.encoding.group(np.asarray(x_row, dtype=np.float64)[None])[0]
        self.random.seed(self.seed)
        explanation = self.explainer.explain_instance(grouped, self._predict, labels=(class_index,),
                                                      num_features=len(self.features),
                                                      num_samples=self.num_samples)
        key = 1 if self.model.regression else class_index  # lime keeps a regressor's weights under 1
        weights = np.zeros(len(self.features))
        for feature, weight in explanation.local_exp[key]:
            weights[feature] = weight
        prediction = (explanation.predicted_value if self.model.regression
                      else explanation.predict_proba[class_index])
        return LimeExplanation(weights, self.conditions(grouped), float(explanation.intercept[key]),
                               float(explanation.score), float(prediction))

    def conditions(self, grouped: np.ndarray) -> list[str]:
        """NNC's text of each feature's condition: `'Age' <= 28.00`, `28.00 < 'Age' <= 37.00`,
        `45.00 < 'Age'`, or `'colour' = red` for a categorical feature."""
        texts = []
        for j, feature in enumerate(self.features):
            name = f"'{feature.label}'"
            if feature.categorical:
                texts.append(f"{name} = {feature.categories[int(grouped[j])]}")
                continue
            quartiles = self.discretizer.quartiles[j]
            k = int(np.searchsorted(quartiles, grouped[j]))
            if k == 0:
                texts.append(f"{name} <= {quartiles[0]:.2f}")
            elif k == len(quartiles):
                texts.append(f"{quartiles[-1]:.2f} < {name}")
            else:
                texts.append(f"{quartiles[k - 1]:.2f} < {name} <= {quartiles[k]:.2f}")
        return texts


def write_lime_csv(path: Path, features: list[Feature], values: list[str], explanation: LimeExplanation,
                   index: int) -> None:
    """NNC's five lines: feature names, the row's values, a blank line, conditions, importances."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["", *(f.name for f in features)])
        writer.writerow([f"Sample (Index {index})", *values])
        writer.writerow([])
        writer.writerow(["", *explanation.conditions])
        writer.writerow(["Importance", *(f"{w:.5f}" for w in explanation.weights)])


def write_lime_batch_csv(path: Path, features: list[Feature], weights: np.ndarray) -> None:
    """NNC's batch table: `Index,Importance of <feature>,...`, one row per input row (1-based)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["Index", *(f"Importance of {f.name}" for f in features)])
        for number, row in enumerate(weights, start=1):
            writer.writerow([number, *(f"{w:.5f}" for w in row)])
