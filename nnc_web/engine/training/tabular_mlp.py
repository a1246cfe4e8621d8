"""An MLP for tabular datasets (x__0..x__N inputs, y a class index or a number): classification or
regression, inputs standardised with the training set's statistics (kept in the bundle)."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nnc_web.engine.atomic import write_bundle
from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.engine.reporting import JobCancelled, Reporter, UserError
from nnc_web.engine.tabular import SCHEMA_FILE
from nnc_web.engine.training.evaluation import classification_metrics

FORMAT = "nnc-web-tabular/1"


@dataclass
class TabularData:
    header: list[str]
    rows: list[list[str]]
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]  # empty: regression
    features: list[dict] | None = None  # the Tabular plugin's encoding (tabular_schema.json), when known


def _encoding_beside(path: Path) -> list[dict] | None:
    """The features of the tabular_schema.json the Tabular plugin writes beside its CSVs (None: none)."""
    try:
        features = json.loads((path.parent / SCHEMA_FILE).read_text()).get("features")
    except (OSError, ValueError, AttributeError):
        return None
    return features if isinstance(features, list) and features else None


def load_tabular_csv(path: Path) -> TabularData:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for row in reader if row]
    cells = [parse_header_cell(c) for c in header]
    inputs = [i for i, c in enumerate(cells) if c.name == "x"]
    targets = [i for i, c in enumerate(cells) if c.name == "y"]
    if not inputs or len(targets) != 1:
        raise UserError("a tabular dataset needs x__0.. input columns and one y column")
    try:
        x = np.array([[float(row[i]) for i in inputs] for row in rows], dtype=np.float32)
        y = np.array([float(row[targets[0]]) for row in rows], dtype=np.float32)
    except ValueError as exc:
        raise UserError(f"{path.name}: every x and y value must be a number ({exc})") from exc
    return TabularData(header, rows, x, y, list(cells[targets[0]].classes), _encoding_beside(path))


class TabularMLP(nn.Module):
    def __init__(self, inputs: int, outputs: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = inputs
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*blocks)
        self.register_buffer("mean", torch.zeros(inputs))
        self.register_buffer("std", torch.ones(inputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


@dataclass
class MLPResult:
    model: TabularMLP
    history: list[dict]
    metrics: dict


def train_tabular(train: TabularData, valid: TabularData, reporter: Reporter, max_epoch: int = 50,
                  batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0, hidden: int = 64,
                  layers: int = 2, dropout: float = 0.1) -> MLPResult:
    """Train; per epoch `train_loss`, `train_error` and `valid_error` (error rate, or RMSE for regression)."""
    torch.manual_seed(seed)
    classify = bool(train.class_names)
    outputs = max(len(train.class_names), int(train.y.max()) + 1) if classify else 1
    model = TabularMLP(train.x.shape[1], outputs, hidden, layers, dropout)
    model.mean.copy_(torch.from_numpy(train.x.mean(axis=0)))
    model.std.copy_(torch.from_numpy(np.maximum(train.x.std(axis=0), 1e-6)))
    target = torch.from_numpy(train.y).long() if classify else torch.from_numpy(train.y).unsqueeze(1)
    loss_fn = nn.functional.cross_entropy if classify else nn.functional.mse_loss
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    history = []
    step = 0
    kind = "classifier" if classify else "regressor"
    reporter.log(f"training an MLP {kind}: {train.x.shape[1]} inputs, {len(train.y)} rows, {max_epoch} epochs")
    for epoch in range(1, max_epoch + 1):
        model.train()
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        total, wrong = 0.0, 0.0
        for x, y in DataLoader(TensorDataset(torch.from_numpy(train.x), target), batch_size=batch_size,
                               shuffle=True, generator=generator):
            if reporter.should_stop():
                raise JobCancelled("cancelled by the user")
            out = model(x)
            loss = loss_fn(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            total += loss.item() * len(y)
            out = out.detach()
            wrong += float((out.argmax(1) != y).sum()) if classify else float(((out - y) ** 2).sum())
            reporter.metric("loss", step, loss.item())
        rows = len(train.y)
        record = {"epoch": epoch, "train_loss": total / rows,
                  "train_error": wrong / rows if classify else math.sqrt(wrong / rows),
                  "valid_error": _error(model, valid, classify)}
        history.append(record)
        for name in ("train_loss", "train_error", "valid_error"):
            reporter.metric(name, epoch, record[name])
        reporter.log(f"epoch {epoch}/{max_epoch}: train loss {record['train_loss']:.4f}, "
                     f"train {'error' if classify else 'RMSE'} {record['train_error']:.4f}, "
                     f"valid {'error' if classify else 'RMSE'} {record['valid_error']:.4f}")
        reporter.progress(epoch, max_epoch)
    return MLPResult(model.eval(), history, tabular_metrics(model, valid))


def predict_tabular(model: TabularMLP, data: TabularData) -> np.ndarray:
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(data.x))
    return (torch.softmax(out, dim=1) if data.class_names else out).numpy()


def _error(model: TabularMLP, data: TabularData, classify: bool) -> float:
    predictions = predict_tabular(model, data)
    if classify:
        return float((predictions.argmax(1) != data.y.astype(int)).mean())
    return float(math.sqrt(mean_squared_error(data.y, predictions[:, 0])))


def tabular_metrics(model: TabularMLP, data: TabularData) -> dict:
    predictions = predict_tabular(model, data)
    if data.class_names:
        return classification_metrics(data.y.astype(int).tolist(), predictions, data.class_names)
    values = predictions[:, 0]
    return {"rmse": float(math.sqrt(mean_squared_error(data.y, values))),
            "mae": float(mean_absolute_error(data.y, values)), "r2": float(r2_score(data.y, values))}


def write_tabular_output(path: Path, data: TabularData, predictions: np.ndarray) -> None:
    """output_result.csv: the source columns, then y' (regression) or y'__k (class scores)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        extra = [f"y'__{k}" for k in range(predictions.shape[1])] if data.class_names else ["y'"]
        writer.writerow(data.header + extra)
        for row, values in zip(data.rows, predictions, strict=True):
            writer.writerow(row + [f"{v:.6g}" for v in values])


def save_tabular_bundle(folder: Path, model: TabularMLP, data: TabularData, settings: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "architecture": "tabular_mlp", "inputs": int(data.x.shape[1]),
                "outputs": model.net[-1].out_features, "class_names": data.class_names,
                "input_header": [h for h in data.header if parse_header_cell(h).name == "x"], "training": settings}
    if data.features:  # how the inputs were encoded (one-hot groups): explanations group them back
        manifest["features"] = data.features
    write_bundle(folder, model.state_dict(), manifest)


def load_tabular_bundle(folder: Path) -> tuple[TabularMLP, dict]:
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise UserError("not a tabular model bundle")
    training = manifest["training"]
    model = TabularMLP(manifest["inputs"], manifest["outputs"], training.get("hidden", 64), training.get("layers", 2),
                       training.get("dropout", 0.1))
    model.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=True)
    return model.eval(), manifest
