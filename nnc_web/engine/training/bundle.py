"""Model bundles: manifest.json + weights.safetensors, reloadable without unpickling anything."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from nnc_web.engine.atomic import write_bundle
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import UserError
from nnc_web.engine.training.model import TransferClassifier

FORMAT = "nnc-web-bundle/1"


def save_bundle(folder: Path, model: TransferClassifier, backbone_id: str, class_names: list[str], input_size: int,
                training: dict, dataset_ids: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = get_backbone(backbone_id)
    manifest = {"format": FORMAT, "architecture": "transfer_classifier", "backbone": backbone_id,
                "class_names": class_names, "num_classes": model.head.out_features, "input_size": input_size,
                "normalization": {"mean": list(spec.mean), "std": list(spec.std)}, "training": training,
                "datasets": dataset_ids}
    return write_bundle(folder, model.state_dict(), manifest)


def load_bundle(folder: Path, device: str = "cpu") -> tuple[TransferClassifier, dict]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"not a model bundle: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise UserError(f"unknown bundle format {manifest.get('format')!r}")
    model = TransferClassifier(manifest["backbone"], manifest["num_classes"], pretrained=False)
    model.load_state_dict(load_file(str(folder / "weights.safetensors"), device=device), strict=True)
    return model.eval(), manifest


def export_torchscript(model: TransferClassifier, input_size: int, path: Path) -> Path:
    example = torch.zeros(1, 3, input_size, input_size)
    with torch.no_grad():  # with autograd on, attention layers (CLIP's ViT) take another path between traces
        traced = torch.jit.trace(model.eval(), example)
    traced.save(str(path))
    return path


def export_onnx(model: TransferClassifier, input_size: int, path: Path) -> Path:
    """ONNX (opset 17) with a dynamic batch dimension."""
    try:
        import onnx  # noqa: F401 - the exporter needs it
    except ImportError as exc:
        raise UserError("ONNX export needs the onnx package") from exc
    example = torch.zeros(1, 3, input_size, input_size)
    torch.onnx.export(model.eval(), (example,), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    return path
