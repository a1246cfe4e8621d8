"""Kernel SHAP for tabular models (Lundberg & Lee, "A Unified Approach to Interpreting Model
Predictions", 2017) through captum, with NNC's settings: the whole training CSV is the background
(uniform weights), the base value is the mean output over it, and each feature (a one-hot group
counts as one) is a player. A coalition's value is the mean output over the background rows with the
coalition's features taken from the explained row. When every coalition fits in NNC's sample budget
(2^M - 2 <= 2M + 2048, i.e. M <= 11) each is evaluated once with its Shapley kernel weight, which
gives the exact Shapley values (NNC and shap enumerate them too); beyond, captum samples the budget."""
from __future__ import annotations

import csv
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import KernelShap

from nnc_web.engine.errors import UserError
from nnc_web.engine.xai.tabular import Encoding, Feature, TabularModel

SEED = 0
CHUNK_VALUES = 1 << 22  # model-input values per forward pass of the coalition sweep (16 MiB of float32)
ZERO = 1e-10  # NNC sets |phi| below this to 0


def sample_budget(features: int) -> int:
    """NNC's (and shap's) `nsamples = 2M + 2048`."""
    return 2 * features + 2048


def exhaustive(features: int) -> bool:
    return 2 ** features - 2 <= sample_budget(features)


def memory_estimate_gib(background_rows: int, width: int, features: int) -> float:
    """NNC's estimate of Kernel SHAP's memory: every sample's copy of the background, float64."""
    return background_rows * width * (2 ** 11 + 2 * features) * 8 / 2 ** 30


def available_memory_gib() -> float:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / 2 ** 30
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2 ** 30


def check_memory(background_rows: int, width: int, features: int, limit_gib: float | None) -> float:
    """NNC's memory guard: refuse when the estimate is above `limit_gib` (default 2/3 of the free
    memory). Returns the estimate."""
    needed = memory_estimate_gib(background_rows, width, features)
    limit = limit_gib if limit_gib is not None else available_memory_gib() * 2 / 3
    if needed > limit:
        raise UserError(f"Kernel SHAP over {background_rows} background rows of {width} inputs would need about "
                        f"{needed:.2f} GiB (NNC's estimate), above the memory limit of {limit:.2f} GiB: give a "
                        "smaller training CSV as `train` (a sample of its rows), or raise `memory_limit`")
    return needed


class _EveryCoalition(KernelShap):
    """captum's Kernel SHAP given every coalition once, weighted by the Shapley kernel, instead of a
    sample of them: the weighted regression then returns the exact Shapley values."""

    def kernel_shap_perturb_generator(self, original_inp, **kwargs):
        count = int(kwargs["num_interp_features"])
        device = original_inp.device
        yield torch.ones(1, count, device=device, dtype=torch.long)
        yield torch.zeros(1, count, device=device, dtype=torch.long)
        for size in range(1, count):
            for members in itertools.combinations(range(count), size):
                coalition = torch.zeros(1, count, device=device, dtype=torch.long)
                coalition[0, list(members)] = 1
                yield coalition

    def kernel_shap_similarity_kernel(self, _, __, interpretable_sample, **kwargs) -> torch.Tensor:
        count = int(kwargs["num_interp_features"])
        size = int(interpretable_sample.sum().item())
        if size in (0, count):
            return torch.tensor([self.inf_weight])
        # Shapley kernel, scaled so that the weights average 1 (as captum's sampled ones are)
        total = sum((count - 1) / (k * (count - k)) for k in range(1, count))
        weight = (count - 1) / (math.comb(count, size) * size * (count - size))
        return torch.tensor([weight * (2 ** count - 2) / total])


class _Coalitions:
    """A coalition's value: the model's mean output over the background rows, with the coalition's
    features (0/1 per feature) set to the explained row's values."""

    def __init__(self, model: TabularModel, x_row: torch.Tensor, background: torch.Tensor,
                 membership: torch.Tensor) -> None:
        self.model, self.x, self.background, self.membership = model, x_row, background, membership

    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor:
        mask = (coalitions.to(self.membership) @ self.membership) > 0  # (c, width)
        rows = torch.where(mask[:, None, :], self.x[None, None, :], self.background[None])
        out = self.model.predict(rows.reshape(-1, self.x.shape[0]))
        return out.reshape(len(coalitions), len(self.background), -1).mean(dim=1)


@dataclass
class ShapExplanation:
    values: np.ndarray  # one Shapley value per feature; they add up to prediction - base
    base: float  # mean output over the background
    prediction: float  # f(x)
    exact: bool  # every coalition evaluated


class TabularKernelShap:
    def __init__(self, model: TabularModel, features: list[Feature], background_x: np.ndarray,
                 alpha: float = 0.0, seed: int = SEED) -> None:
        self.model, self.features, self.alpha, self.seed = model, features, alpha, seed
        encoding = Encoding(features, background_x.shape[1])
        self.background = torch.as_tensor(background_x, dtype=torch.float32).to(model.device)
        self.membership = torch.as_tensor(encoding.membership()).to(model.device)
        self.base = model.predict(self.background).double().mean(dim=0).cpu().numpy()
        self.per_pass = max(1, min(1024, CHUNK_VALUES // background_x.size))

    def explain(self, x_row: np.ndarray, class_index: int) -> ShapExplanation:
        x = torch.as_tensor(np.asarray(x_row), dtype=torch.float32).to(self.model.device)
        prediction = float(self.model.predict(x[None])[0, class_index])
        base = float(self.base[class_index])
        count = len(self.features)
        if count == 1:  # one player takes the whole difference (captum cannot weigh a single feature)
            return ShapExplanation(np.array([prediction - base]), base, prediction, True)
        game = _Coalitions(self.model, x, self.background, self.membership)
        exact = exhaustive(count)
        explainer = _EveryCoalition(game) if exact else KernelShap(game)
        if self.alpha > 0:  # NNC's `alpha`: an L2 penalty on the values
            explainer.interpretable_model = SkLearnRidge(alpha=self.alpha)
        ones = torch.ones(1, count, device=self.model.device)
        with torch.random.fork_rng(devices=[]):  # captum samples with torch's global generator
            torch.manual_seed(self.seed)
            values = explainer.attribute(ones, baselines=torch.zeros_like(ones), target=class_index,
                                         n_samples=2 ** count if exact else sample_budget(count),
                                         perturbations_per_eval=self.per_pass)
        values = values[0].double().cpu().numpy()
        values[np.abs(values) < ZERO] = 0.0
        return ShapExplanation(values, base, prediction, exact)


def write_shap_csv(path: Path, features: list[Feature], values: list[str], explanation: ShapExplanation,
                   index: int, image: str) -> None:
    """NNC's layout: names (and `Image`), the row's values, a blank line, the values and the plot's path."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["", *(f.name for f in features), "Image"])
        writer.writerow([f"Sample (Index {index})", *values])
        writer.writerow([])
        writer.writerow(["Importance", *(f"{v:.5f}" for v in explanation.values), image])


def write_shap_batch_csv(path: Path, features: list[Feature], values: np.ndarray) -> None:
    """NNC's batch table: `Index,<feature>,...`, one row of Shapley values per input row (1-based)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["Index", *(f.name for f in features)])
        for number, row in enumerate(values, start=1):
            writer.writerow([number, *(f"{v:.5f}" for v in row)])
