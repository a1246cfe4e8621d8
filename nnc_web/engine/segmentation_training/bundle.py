"""Segmenter bundles: manifest.json (with id2label) + weights.safetensors (architecture "lraspp_segmenter")."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from nnc_web.engine.atomic import write_bundle
from nnc_web.engine.bundle_kinds import LRASPP_SEGMENTER
from nnc_web.engine.detection_training.model import BACKBONE
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import UserError
from nnc_web.engine.segmentation_training.model import LiteSegmenter
from nnc_web.engine.training.bundle import FORMAT

ARCHITECTURE = LRASPP_SEGMENTER


def save_segmenter(folder: Path, model: LiteSegmenter, class_names: list[str], input_size: int, training: dict,
                   dataset_ids: dict) -> Path:
    spec = get_backbone(BACKBONE)
    manifest = {"format": FORMAT, "architecture": ARCHITECTURE, "backbone": BACKBONE, "class_names": class_names,
                "id2label": {str(i): n for i, n in enumerate(class_names)}, "num_classes": len(class_names),
                "input_size": input_size, "ignore_index": 255,
                "normalization": {"mean": list(spec.mean), "std": list(spec.std)}, "training": training,
                "datasets": dataset_ids}
    return write_bundle(folder, model.state_dict(), manifest)


def load_segmenter(folder: Path, device: str = "cpu") -> tuple[LiteSegmenter, dict]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"not a model bundle: {exc}") from exc
    if manifest.get("architecture") != ARCHITECTURE:
        raise UserError(f"not a segmenter bundle ({manifest.get('architecture')!r})")
    model = LiteSegmenter(manifest["num_classes"], pretrained=False)
    model.load_state_dict(load_file(str(folder / "weights.safetensors"), device=device), strict=True)
    return model.to(device).eval(), manifest
