"""Hugging Face `transformers` models of EasyMaker's built-in trainers and where their weights come from.

`detr_resnet50` = `facebook/detr-resnet-50` (DetrForObjectDetection, COCO-trained; its class head is
replaced by one for the run's classes) and `segformer_b3` = `nvidia/mit-b3` (the ImageNet-pretrained
SegFormer-B3 encoder; the all-MLP decode head starts fresh, as in Hugging Face's fine-tuning recipe).
Weights are looked for, in order, in `NNC_MODEL_DIR/<id>/` (config.json + model.safetensors, written by
`manage.py import_weights <id> <file or folder>`) and in the Hugging Face hub cache; nothing is ever
downloaded at run time (`local_files_only`). Tests set NNC_TINY_HF_CONFIGS=1: the same plugins then
build tiny random-initialised configurations (the real weights cannot be fetched offline)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nnc_web.engine.model_store import ModelUnavailable, model_dir
from nnc_web.engine.reporting import UserError

TINY_ENV = "NNC_TINY_HF_CONFIGS"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class HfModel:
    id: str
    repo: str
    title: str
    # config.json of the hub repo (what a bare weights file is loaded with): only the keys that differ
    # from the transformers class defaults, which are those of the hub models.
    reference_config: dict
    # parameters that a run replaces (a head sized for the run's classes): may be missing or mismatched
    replaced: tuple[str, ...] = field(default_factory=tuple)


MODELS: dict[str, HfModel] = {m.id: m for m in (
    HfModel("detr_resnet50", "facebook/detr-resnet-50", "DETR with a ResNet-50 backbone (COCO)",
            {"model_type": "detr", "architectures": ["DetrForObjectDetection"], "use_timm_backbone": True,
             "backbone": "resnet50", "use_pretrained_backbone": False, "num_labels": 91},
            replaced=("class_labels_classifier.",)),
    HfModel("segformer_b3", "nvidia/mit-b3", "SegFormer-B3 encoder (MiT-b3, ImageNet-1k)",
            {"model_type": "segformer", "architectures": ["SegformerForImageClassification"],
             "depths": [3, 4, 18, 3], "hidden_sizes": [64, 128, 320, 512], "num_attention_heads": [1, 2, 5, 8],
             "sr_ratios": [8, 4, 2, 1], "decoder_hidden_size": 768, "drop_path_rate": 0.1, "num_labels": 1000},
            replaced=("decode_head.", "classifier.")),
)}


def get_model(model_id: str) -> HfModel:
    try:
        return MODELS[model_id]
    except KeyError:
        raise UserError(f"unknown model {model_id!r} (known: {', '.join(MODELS)})") from None


def tiny_configs() -> bool:
    """Tests only: tiny random-initialised configurations instead of the hub models."""
    return os.environ.get(TINY_ENV) == "1"


def stored_folder(model_id: str) -> Path:
    return model_dir() / model_id


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / name).is_file() for name in WEIGHT_FILES)


def _hub_cache_folder(model: HfModel) -> Path | None:
    """The hub cache's snapshot folder of the repo when it holds the config and a weights file."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    config = try_to_load_from_cache(model.repo, "config.json")
    if not isinstance(config, str):
        return None
    for name in WEIGHT_FILES:
        found = try_to_load_from_cache(model.repo, name)
        if isinstance(found, str) and Path(found).is_file():
            return Path(config).parent
    return None


def weights_folder(model_id: str) -> Path | None:
    """The folder (config.json + weights) of `model_id` on this machine, or None."""
    model = get_model(model_id)
    stored = stored_folder(model.id)
    return stored if _complete(stored) else _hub_cache_folder(model)


def is_available(model_id: str) -> bool:
    return weights_folder(model_id) is not None


def missing_weights_message(model_id: str) -> str:
    model = get_model(model_id)
    return (f"the weights of {model.id} ({model.repo}, {model.title}) are not on this machine. On a machine with "
            f"internet, download config.json and model.safetensors from https://huggingface.co/{model.repo} (or "
            f"`huggingface-cli download {model.repo}`), then run `python manage.py import_weights {model.id} "
            f"<that folder or model.safetensors>` here (or ask your administrator to); or turn pretrained off to "
            f"train from random weights")


def require_weights(model_id: str) -> Path:
    folder = weights_folder(model_id)
    if folder is None:
        raise ModelUnavailable(missing_weights_message(model_id))
    return folder


def load_pretrained(model_class, model_id: str, folder: Path, **overrides):
    """`model_class.from_pretrained` from a local folder only; heads listed in `replaced` may be new or
    resized, anything else missing is an error (the file is not this model's)."""
    model = get_model(model_id)
    try:
        loaded, info = model_class.from_pretrained(str(folder), local_files_only=True, ignore_mismatched_sizes=True,
                                                   output_loading_info=True, **overrides)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"the weights in {folder.name} do not load into {model.id}: {str(exc).splitlines()[0][:300]}"
                        ) from exc
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(model.replaced)]
    if missing:
        raise UserError(f"the weights in {folder.name} do not fit {model.id}: {len(missing)} tensors missing "
                        f"(e.g. {', '.join(sorted(missing)[:3])})")
    return loaded


def _model_class(model_id: str):
    if model_id == "detr_resnet50":
        from transformers import DetrForObjectDetection

        return DetrForObjectDetection
    from transformers import SegformerForSemanticSegmentation

    return SegformerForSemanticSegmentation


def import_hf_weights(model_id: str, source: Path) -> Path:
    """Check that `source` (a hub snapshot folder, or a bare model.safetensors / pytorch_model.bin loaded
    with the hub's config) loads into the model, then keep it as NNC_MODEL_DIR/<id>/ (safetensors)."""
    model = get_model(model_id)
    source = Path(source)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if source.is_dir():
            if not _complete(source):
                raise UserError(f"{source.name} must hold config.json and {' or '.join(WEIGHT_FILES)} "
                                f"(the files of https://huggingface.co/{model.repo})")
            config = json.loads((source / "config.json").read_text())
            weights = next(source / n for n in WEIGHT_FILES if (source / n).is_file())
        elif source.is_file():
            if source.suffix not in (".safetensors", ".bin", ".pth", ".pt"):
                raise UserError(f"{source.name}: give model.safetensors or pytorch_model.bin of {model.repo}, "
                                f"or the folder that holds them with config.json")
            config, weights = dict(model.reference_config), source
        else:
            raise UserError(f"{source} does not exist")
        if config.get("model_type") != model.reference_config["model_type"]:
            raise UserError(f"{source.name} holds a {config.get('model_type')!r} model, not {model.repo}")
        config["use_pretrained_backbone"] = False  # never let timm fetch the backbone on its own
        (folder / "config.json").write_text(json.dumps(config))
        name = "model.safetensors" if weights.suffix == ".safetensors" else "pytorch_model.bin"
        os.symlink(weights.resolve(), folder / name)
        loaded = load_pretrained(_model_class(model.id), model.id, folder)
        target = stored_folder(model.id)
        staging = target.with_name(f".{target.name}.importing")
        shutil.rmtree(staging, ignore_errors=True)
        loaded.save_pretrained(str(staging), safe_serialization=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target
