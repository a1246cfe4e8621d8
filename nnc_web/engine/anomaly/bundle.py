"""Anomaly model bundles: manifest.json (method, backbone, settings, threshold, heat-map range) and
weights.safetensors (PaDiM mean + inverse covariances, or the PatchCore memory bank, plus the kept
channels). The backbone's own weights come from the model store, as for every other model."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from nnc_web.engine.anomaly.model import AnomalyModel
from nnc_web.engine.anomaly.padim import Padim
from nnc_web.engine.anomaly.patchcore import Patchcore
from nnc_web.engine.atomic import write_bundle
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import UserError
from nnc_web.engine.training.bundle import FORMAT

METHODS = {"padim": Padim, "patchcore": Patchcore}


def save_anomaly_bundle(folder: Path, model: AnomalyModel, extra: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = get_backbone(model.backbone_id)
    manifest = {"format": FORMAT, "architecture": model.method, **model.settings(),
                "normalization": {"mean": list(spec.mean), "std": list(spec.std)}, **extra}
    return write_bundle(folder, model.state(), manifest)


def is_anomaly_bundle(manifest: dict) -> bool:
    return manifest.get("architecture") in METHODS


def load_anomaly_bundle(folder: Path, device: str = "cpu") -> tuple[AnomalyModel, dict]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        state = load_file(str(folder / "weights.safetensors"))
    except (OSError, ValueError) as exc:
        raise UserError(f"not a model bundle: {exc}") from exc
    if manifest.get("format") != FORMAT or not is_anomaly_bundle(manifest):
        raise UserError(f"not an anomaly-detection bundle ({manifest.get('architecture')!r})")
    common = {"input_size": manifest["input_size"], "feature_ratio": manifest["feature_ratio"],
              "seed": manifest["seed"], "channels": state["channels"], "device": device}
    if manifest["architecture"] == "padim":
        model: AnomalyModel = Padim(manifest["backbone"], manifest["gaussian"], **common,
                                    **({"border": manifest["border"]} if "border" in manifest else {}))
    else:
        model = Patchcore(manifest["backbone"], manifest["sample_ratio"], **common)
    model.load_state(state)
    return model, manifest


def _register() -> None:
    """Anomaly bundles are explainable (Grad-CAM, LIME, SHAP of the image anomaly score)."""
    from nnc_web.engine.anomaly.explain import explainable
    from nnc_web.engine.xai.classifier import register_loader

    for method in METHODS:
        register_loader(method, explainable)


_register()
