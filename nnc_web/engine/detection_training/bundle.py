"""Detector bundles: manifest.json + weights.safetensors (architecture "centernet_detector")."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from nnc_web.engine.atomic import write_bundle
from nnc_web.engine.bundle_kinds import CENTERNET_DETECTOR
from nnc_web.engine.detection_training.model import BACKBONE, STRIDE, CenterNetDetector
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import UserError
from nnc_web.engine.training.bundle import FORMAT

ARCHITECTURE = CENTERNET_DETECTOR


def save_detector(folder: Path, model: CenterNetDetector, class_names: list[str], input_size: int, threshold: float,
                  training: dict, dataset_ids: dict) -> Path:
    spec = get_backbone(BACKBONE)
    manifest = {"format": FORMAT, "architecture": ARCHITECTURE, "backbone": BACKBONE, "class_names": class_names,
                "num_classes": len(class_names), "input_size": input_size, "stride": STRIDE, "threshold": threshold,
                "normalization": {"mean": list(spec.mean), "std": list(spec.std)}, "training": training,
                "datasets": dataset_ids}
    return write_bundle(folder, model.state_dict(), manifest)


def load_detector(folder: Path, device: str = "cpu") -> tuple[CenterNetDetector, dict]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"not a model bundle: {exc}") from exc
    if manifest.get("architecture") != ARCHITECTURE:
        raise UserError(f"not a detector bundle ({manifest.get('architecture')!r})")
    model = CenterNetDetector(manifest["num_classes"], pretrained=False)
    model.load_state_dict(load_file(str(folder / "weights.safetensors"), device=device), strict=True)
    return model.to(device).eval(), manifest
