"""TorchScript and ONNX exports of a run's model bundle, by its manifest's architecture: the network's
own outputs (class logits; a detector's heat map, size and offset heads; a segmenter's per-pixel logits;
DETR's per-query class logits and normalised (cx, cy, w, h) boxes; SegFormer's logits upsampled to the
input), with the input normalised as the bundle's `normalization` says; post-processing (softmax, peak
extraction and NMS-free box decoding, argmax per pixel, DETR's threshold) stays with the caller, as in
the serving code."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from nnc_web.engine.reporting import UserError

FORMATS = ("torchscript", "onnx")


class DetrOutputs(nn.Module):
    """A `transformers` DETR as plain tensors (a trace cannot return its ModelOutput): class logits
    (N, queries, classes + 1, the last "no object") and boxes (N, queries, 4)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(pixel_values=images)
        return out.logits, out.pred_boxes


class SegformerOutputs(nn.Module):
    """A `transformers` SegFormer's logits, upsampled from its 1/4 resolution to the input's (as its
    evaluation and endpoint do), so that the export answers per pixel like the offline segmenter's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from nnc_web.engine.segmentation_training.segformer import upsampled_logits

        return upsampled_logits(self.model, images)


def load_detr_outputs(folder: Path) -> tuple[nn.Module, dict]:
    from nnc_web.engine.detection_training.detr import load_detr

    model, manifest = load_detr(folder)
    return DetrOutputs(model).eval(), manifest


def load_segformer_outputs(folder: Path) -> tuple[nn.Module, dict]:
    from nnc_web.engine.segmentation_training.segformer import load_segformer

    model, manifest = load_segformer(folder)
    return SegformerOutputs(model).eval(), manifest


def _loaders() -> dict[str, tuple[Callable[[Path], tuple[nn.Module, dict]], tuple[str, ...]]]:
    from nnc_web.engine.detection_training.bundle import ARCHITECTURE as DETECTOR
    from nnc_web.engine.detection_training.bundle import load_detector
    from nnc_web.engine.detection_training.detr import ARCHITECTURE as DETR
    from nnc_web.engine.segmentation_training.bundle import ARCHITECTURE as SEGMENTER
    from nnc_web.engine.segmentation_training.bundle import load_segmenter
    from nnc_web.engine.segmentation_training.segformer import ARCHITECTURE as SEGFORMER
    from nnc_web.engine.training.bundle import load_bundle

    return {"transfer_classifier": (load_bundle, ("logits",)),
            DETECTOR: (load_detector, ("heat", "size", "offset")),
            SEGMENTER: (load_segmenter, ("logits",)),
            DETR: (load_detr_outputs, ("logits", "pred_boxes")),
            SEGFORMER: (load_segformer_outputs, ("logits",))}


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
            # the Hugging Face wrappers skip the trace's re-run check (a whole second forward pass of a large
            # model); their exports are checked against the eager model in the tests
            check = not isinstance(model, (DetrOutputs, SegformerOutputs))
            torch.jit.trace(model, example, check_trace=check).save(str(path))
            return path
        try:
            import onnx  # noqa: F401 - the exporter needs it
        except ImportError as exc:
            raise UserError("ONNX export needs the onnx package") from exc
        torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=list(outputs),
                          dynamic_axes={name: {0: "batch"} for name in ("image", *outputs)}, opset_version=17,
                          dynamo=False)
    return path
