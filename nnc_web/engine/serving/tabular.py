"""Tabular MLP bundles: `{"instances": [{"<column>": value, ...}]}` in; ranked labels (classifiers) or
the predicted number (regressors) out.

An instance names the original CSV columns or the encoded inputs (`table_rows.py`). The model
standardises with the training set's statistics, as in evaluation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nnc_web.engine.serving.image import ranked
from nnc_web.engine.serving.instances import Limits, Parameters
from nnc_web.engine.serving.predictor import Predictor, register_predictor
from nnc_web.engine.serving.runtime import choose_runtime
from nnc_web.engine.serving.table_rows import check_row, columns, encode_instance, input_names  # noqa: F401 - re-exported


class TabularPredictor(Predictor):
    architecture = "tabular_mlp"
    inputs = "table"

    def __init__(self, model, manifest: dict, device: torch.device, runtime: str, onnx_dir: Path | None,
                 key: str) -> None:
        self.model, self.manifest = model, manifest
        self.class_names = list(manifest.get("class_names") or [])
        example = torch.randn(1, int(manifest["inputs"]), generator=torch.Generator().manual_seed(0))
        choice = choose_runtime(model, example, device, runtime, onnx_dir, key)
        self.run, self.runtime, self.runtime_report = choice.runner, choice.name, choice.report

    def prepare(self, instance: dict, name: str, parameters: Parameters, limits: Limits) -> np.ndarray:
        return np.asarray(encode_instance(instance, self.manifest, name), dtype=np.float32)

    def forward(self, prepared: list[np.ndarray]) -> list[np.ndarray]:
        out = torch.from_numpy(self.run(torch.from_numpy(np.stack(prepared))))
        return list((torch.softmax(out, dim=1) if self.class_names else out).numpy())

    def answer(self, output: np.ndarray, prepared, parameters: Parameters):
        if not self.class_names:
            return float(output[0])
        names = [*self.class_names, *(str(i) for i in range(len(self.class_names), len(output)))]
        return ranked(output, names, parameters.top_k)


def _tabular(folder: Path, manifest: dict, device: torch.device, runtime: str, onnx_dir: Path | None) -> TabularPredictor:
    from nnc_web.engine.serving.image import bundle_key
    from nnc_web.engine.training.tabular_mlp import load_tabular_bundle

    model, manifest = load_tabular_bundle(folder)
    return TabularPredictor(model, manifest, device, runtime, onnx_dir, bundle_key(folder))


register_predictor("tabular_mlp", "table", _tabular, check=check_row)
