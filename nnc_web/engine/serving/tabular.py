"""Tabular MLP bundles: `{"instances": [{"<column>": value, ...}]}` in; ranked labels (classifiers) or
the predicted number (regressors) out.

An instance names either the original CSV columns the Tabular plugin encoded (`{"age": 42, "colour":
"red"}`: encoded here exactly as the plugin did, one-hot groups included) or the encoded inputs by
their labels as the dataset's header has them (`{"age": 42, "colour=red": 1, ...}`; `x__0`, `x__1`
work too). The model standardises with the training set's statistics, as in evaluation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.engine.serving.image import ranked
from nnc_web.engine.serving.instances import Limits, Parameters, RequestError, number
from nnc_web.engine.serving.predictor import Predictor, register_predictor
from nnc_web.engine.serving.runtime import choose_runtime

MISSING = "(missing)"


def input_names(manifest: dict) -> list[str]:
    """The encoded inputs' labels (`age`, `colour=red`), in order; `x__k` where a header has none."""
    names = []
    for number_, cell in enumerate(manifest.get("input_header") or []):
        label = parse_header_cell(cell).label
        names.append(label if label else f"x__{number_}")
    return names


def columns(manifest: dict) -> list[dict]:
    """What a client sends: the original columns when the encoding is known, else the encoded inputs."""
    features = manifest.get("features")
    if features:
        return [{"name": f["column"], "kind": f["kind"], **({"categories": f["categories"]}
                                                             if f["kind"] == "categorical" else {})}
                for f in features]
    return [{"name": name, "kind": "numeric"} for name in input_names(manifest)]


def _from_features(instance: dict, features: list[dict], name: str) -> list[float]:
    row: list[float] = []
    for feature in features:
        column = feature["column"]
        value = instance.get(column)
        field = f"{name}.{column}"
        if feature["kind"] == "numeric":
            if value is None or (isinstance(value, str) and not value.strip()):
                raise RequestError.at(field, "required: a number")
            row.append(number(value, field))
            continue
        categories = list(feature["categories"])
        chosen = MISSING if value is None or (isinstance(value, str) and not value.strip()) else str(value).strip()
        if isinstance(value, float) and value.is_integer() and chosen not in categories:
            chosen = str(int(value))  # 3.0 for a category "3"
        if chosen not in categories:
            shown = ", ".join(c for c in categories[:20] if c != MISSING)
            raise RequestError.at(field, f"unknown category {chosen!r} (known: {shown})")
        row.extend(1.0 if chosen == c else 0.0 for c in categories)
    return row


def encode_instance(instance: dict, manifest: dict, name: str) -> list[float]:
    """One instance as the model's input row; RequestError naming the column that is wrong."""
    features = manifest.get("features")
    names = input_names(manifest)
    aliases = {alias: i for i, label in enumerate(names) for alias in (label, f"x__{i}")}
    if features and (set(instance) <= {f["column"] for f in features} or not set(instance) <= set(aliases)):
        unknown = sorted(set(instance) - {f["column"] for f in features})
        if unknown:
            expected = ", ".join(f["column"] for f in features[:20])
            raise RequestError.at(f"{name}.{unknown[0]}", f"not an input column of this model (columns: {expected})")
        return _from_features(instance, features, name)
    row: list[float | None] = [None] * len(names)
    for key, value in instance.items():
        if key not in aliases:
            expected = ", ".join(c["name"] for c in columns(manifest)[:20])
            raise RequestError.at(f"{name}.{key}", f"not an input column of this model (inputs: {expected})")
        row[aliases[key]] = number(value, f"{name}.{key}")
    missing = [names[i] for i, value in enumerate(row) if value is None]
    if missing:
        raise RequestError.at(f"{name}.{missing[0]}", "required: a number" + (
            f" ({len(missing)} inputs missing)" if len(missing) > 1 else ""))
    return [float(v) for v in row]  # type: ignore[arg-type]


def check_row(instance: dict, manifest: dict, name: str, limits: Limits) -> None:
    encode_instance(instance, manifest, name)


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
