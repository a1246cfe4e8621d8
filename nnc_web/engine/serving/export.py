"""A run's model as a model repository for NVIDIA Triton Inference Server, which KServe serves too
(its Triton runtime takes the same layout), for users who outgrow one machine:

    <name>/config.pbtxt     platform onnxruntime_onnx, input/output names and shapes, dynamic batching
    <name>/1/model.onnx     the model, softmax included: its output is the evaluation's y'
    <name>/labels.txt       one class per line (classifiers; Triton's classification extension reads it)
    README.md               the preprocessing a client does, and a KServe InferenceService

Image models whose bundle states its normalisation take [0, 1] RGB pixels (N, 3, S, S) and normalise
inside the graph, so a client only resizes and scales; tabular models take the encoded inputs."""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nnc_web.engine.errors import UserError
from nnc_web.engine.serving.image import ImageClassifierPredictor
from nnc_web.engine.serving.predictor import Predictor, load_predictor
from nnc_web.engine.serving.runtime import export_onnx
from nnc_web.engine.serving.tabular import TabularPredictor, input_names

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_BATCH = 32
QUEUE_DELAY_US = 2000


class _Normalised(nn.Module):
    """[0, 1] pixels -> the bundle's normalisation -> the model -> softmax."""

    def __init__(self, model: nn.Module, normalization: dict | None, softmax: bool) -> None:
        super().__init__()
        self.model, self.softmax = model, softmax
        norm = normalization or {"mean": [0.0] * 3, "std": [1.0] * 3}
        self.register_buffer("mean", torch.tensor(norm["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm["std"], dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model((pixels - self.mean) / self.std)
        return torch.softmax(out, dim=1) if self.softmax else out


class _Tabular(nn.Module):
    def __init__(self, model: nn.Module, softmax: bool) -> None:
        super().__init__()
        self.model, self.softmax = model, softmax

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.model(features)
        return torch.softmax(out, dim=1) if self.softmax else out


@dataclass
class Graph:
    module: nn.Module
    example: torch.Tensor
    input_name: str
    output_name: str
    labels: list[str]
    notes: str  # README: what the input is


def graph_of(predictor: Predictor) -> Graph:
    if isinstance(predictor, ImageClassifierPredictor):
        size = predictor.input_size
        softmax = predictor.outputs == "logits"
        if predictor.normalization:
            module = _Normalised(predictor.model, predictor.normalization, softmax)
            mean, std = predictor.normalization["mean"], predictor.normalization["std"]
            notes = (f"`image`: float32 RGB pixels in [0, 1], shape (N, 3, {size}, {size}): the image resized to "
                     f"{size} x {size} (bilinear, antialiased, as torchvision's Resize) and divided by 255. The graph "
                     f"normalises with mean {mean} and std {std}.")
        else:
            module = _Tabular(predictor.model, softmax)  # no normalisation known: the model's own input
            notes = (f"`image`: float32 (N, 3, {size}, {size}), exactly what the run's evaluation transform "
                     f"gives for an image (see the bundle's manifest).")
        return Graph(module, torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)), "image",
                     "probabilities", predictor.class_names, notes)
    if isinstance(predictor, TabularPredictor):
        inputs = int(predictor.manifest["inputs"])
        names = input_names(predictor.manifest)
        classify = bool(predictor.class_names)
        notes = (f"`features`: float32 (N, {inputs}), the encoded inputs in this order (one-hot columns are 0 or "
                 f"1, as the Tabular dataset plugin wrote them): {', '.join(names)}.")
        return Graph(_Tabular(predictor.model, classify), torch.zeros(1, inputs), "features",
                     "probabilities" if classify else "value", predictor.class_names, notes)
    raise UserError(f"{predictor.architecture or 'this model'} does not export to ONNX (anomaly models use forward "
                    f"hooks); serve it from an endpoint instead")


def config_pbtxt(name: str, graph: Graph, output_dims: list[int]) -> str:
    input_dims = list(graph.example.shape[1:])
    label = '\n    label_filename: "labels.txt"' if graph.labels else ""
    return f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {MAX_BATCH}
input [
  {{
    name: "{graph.input_name}"
    data_type: TYPE_FP32
    dims: [ {", ".join(str(d) for d in input_dims)} ]
  }}
]
output [
  {{
    name: "{graph.output_name}"
    data_type: TYPE_FP32
    dims: [ {", ".join(str(d) for d in output_dims)} ]{label}
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {QUEUE_DELAY_US}
}}
"""


def readme(name: str, graph: Graph) -> str:
    return f"""# {name}: a model repository for NVIDIA Triton / KServe

Exported by NNC Web. `{name}/1/model.onnx` answers what the run's evaluation computed (`y'`).

Input: {graph.notes}

Output `{graph.output_name}`: {"class probabilities, in the order of labels.txt" if graph.labels
                               else "the predicted value"}.

Triton: `tritonserver --model-repository=<this folder>`, then
`curl -X POST localhost:8000/v2/models/{name}/infer -d '{{"inputs": [...]}}'`.

KServe (the repository in a bucket or volume):

```yaml
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name.lower().replace("_", "-").replace(".", "-")}
spec:
  predictor:
    model:
      modelFormat:
        name: triton
      storageUri: <where this folder is, e.g. s3://models/nnc>
```
"""


def export_repository(bundle: Path, folder: Path, name: str) -> Path:
    """Write the repository for `bundle` into `folder` (a model directory `name` in it)."""
    if not NAME.match(name):
        raise UserError("a model name has 1 to 64 letters, digits, '_', '-' or '.'")
    graph = graph_of(load_predictor(bundle, "cpu", "torch"))
    model_dir = folder / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    export_onnx(graph.module.eval(), graph.example, model_dir / "1" / "model.onnx", graph.input_name, graph.output_name)
    with torch.no_grad():
        output_dims = list(graph.module(graph.example).shape[1:])
    (model_dir / "config.pbtxt").write_text(config_pbtxt(name, graph, output_dims))
    if graph.labels:
        (model_dir / "labels.txt").write_text("".join(f"{label}\n" for label in graph.labels))
    (folder / "README.md").write_text(readme(name, graph))
    return folder


def zip_repository(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return target
