"""TorchScript and ONNX exports of a run's model bundle, by its manifest's architecture: the network's
own outputs (class logits; a detector's heat map, size and offset heads; a segmenter's per-pixel logits),
with the input normalised as the bundle's `normalization` says; post-processing (softmax, peak extraction
and NMS-free box decoding, argmax per pixel) stays with the caller, as in the serving code."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from nnc_web.engine.reporting import UserError

FORMATS = ("torchscript", "onnx")


def _loaders() -> dict[str, tuple[Callable[[Path], tuple[nn.Module, dict]], tuple[str, ...]]]:
    from nnc_web.engine.detection_training.bundle import ARCHITECTURE as DETECTOR
    from nnc_web.engine.detection_training.bundle import load_detector
    from nnc_web.engine.segmentation_training.bundle import ARCHITECTURE as SEGMENTER
    from nnc_web.engine.segmentation_training.bundle import load_segmenter
    from nnc_web.engine.training.bundle import load_bundle

    return {"transfer_classifier": (load_bundle, ("logits",)),
            DETECTOR: (load_detector, ("heat", "size", "offset")),
            SEGMENTER: (load_segmenter, ("logits",))}


def exportable(architecture: str | None) -> bool:
    return architecture in _loaders()


def export_bundle(folder: Path, export_format: str, path: Path) -> Path:
    """Write the bundle in `folder` as `export_format` to `path` (a batch of (N, 3, S, S) images in)."""
    if export_format not in FORMATS:
        raise UserError(f"export to one of {', '.join(FORMATS)}")
    architecture = json.loads((Path(folder) / "manifest.json").read_text()).get("architecture")
    if not exportable(architecture):
        raise UserError(f"models of architecture {architecture!r} cannot be exported to TorchScript or ONNX; "
                        "download the model bundle")
    load, outputs = _loaders()[architecture]
    model, manifest = load(Path(folder))
    model = model.cpu().eval()
    size = manifest["input_size"]
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad():  # with autograd on, attention layers take another path between traces
        if export_format == "torchscript":
            torch.jit.trace(model, example).save(str(path))
            return path
        try:
            import onnx  # noqa: F401 - the exporter needs it
        except ImportError as exc:
            raise UserError("ONNX export needs the onnx package") from exc
        torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=list(outputs),
                          dynamic_axes={name: {0: "batch"} for name in ("image", *outputs)}, opset_version=17,
                          dynamo=False)
    return path
