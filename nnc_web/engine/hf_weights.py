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
import pickle
import re
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


def listing() -> list[dict]:
    """The models listing's entries (`/api/models/`): each hub model, whether a run with `pretrained` on can
    start (tiny test configs need no weights), and the training plugin and parameter that ask for it."""
    return [{"id": m.id, "title": m.title, "available": tiny_configs() or is_available(m.id), "input_size": None,
             "repo": m.repo, "plugin": m.id, "param": "pretrained"} for m in MODELS.values()]


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


# Stray checkpoint entries (buffers a transformers version writes and another does not) that still let a file
# count as the model's; beyond them, unexpected tensors outside the replaced heads mean another model.
UNEXPECTED_TOLERANCE = 4
_PATH = re.compile(r"(?<![\w.:/\\])(?:[A-Za-z]:)?(?:[\\/][^\s'\"`\\/:]+)+[\\/]?")


def strip_paths(text: str) -> str:
    """`text` with every absolute path reduced to its last part (messages must not show server paths)."""
    return _PATH.sub(lambda m: Path(m.group(0).rstrip("/\\")).name or "folder", text)


def _examples(keys, count: int = 3) -> str:
    return ", ".join(sorted(keys)[:count])


def load_pretrained(model_class, model_id: str, folder: Path, **overrides):
    """`model_class.from_pretrained` from a local folder only. Heads listed in `replaced` may be missing or
    of another size (a run sizes them for its classes); any other tensor missing or of another shape, or
    more than a few tensors the model has no place for, mean the file is not this model's: a UserError."""
    from safetensors import SafetensorError

    model = get_model(model_id)
    try:
        config = model_class.config_class.from_pretrained(str(folder), local_files_only=True, **overrides)
        # never let timm fetch a backbone (transformers 5 keeps the switch in backbone_config; an override
        # passed to the model's from_pretrained would reach its __init__ and fail)
        for part in (config, getattr(config, "backbone_config", None)):
            if part is not None and hasattr(part, "use_pretrained_backbone"):
                part.use_pretrained_backbone = False
        loaded, info = model_class.from_pretrained(str(folder), config=config, local_files_only=True,
                                                   ignore_mismatched_sizes=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, SafetensorError, pickle.UnpicklingError) as exc:  # broken or foreign
        reason = strip_paths(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:300]
        raise UserError(f"the weights in {folder.name} do not load into {model.id}: {reason}") from exc
    replaced = model.replaced
    mismatched = [(key, tuple(ckpt), tuple(own)) for key, ckpt, own in info.get("mismatched_keys", [])
                  if not key.startswith(replaced)]
    if mismatched:
        shown = ", ".join(f"{key} {list(ckpt)} instead of {list(own)}" for key, ckpt, own in sorted(mismatched)[:2])
        raise UserError(f"the weights in {folder.name} are not {model.id} weights: {len(mismatched)} tensors have "
                        f"other shapes (e.g. {shown}); give the files of https://huggingface.co/{model.repo}")
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(replaced)]
    if missing:
        raise UserError(f"the weights in {folder.name} are not {model.id} weights: {len(missing)} tensors missing "
                        f"(e.g. {_examples(missing)}); give the files of https://huggingface.co/{model.repo}")
    unexpected = [k for k in info.get("unexpected_keys", []) if not k.startswith(replaced)
                  and not k.endswith("num_batches_tracked")]
    if len(unexpected) > UNEXPECTED_TOLERANCE:
        raise UserError(f"the weights in {folder.name} are not {model.id} weights: {len(unexpected)} tensors of "
                        f"another model (e.g. {_examples(unexpected)}); give the files of "
                        f"https://huggingface.co/{model.repo}")
    return loaded


def reference_config(model_id: str) -> dict:
    """The config a weights file must fit: the hub model's, or with NNC_TINY_HF_CONFIGS=1 the tests' tiny one."""
    model = get_model(model_id)
    if not tiny_configs():
        return dict(model.reference_config)
    if model.id == "detr_resnet50":
        from nnc_web.engine.detection_training.detr import tiny_config
    else:
        from nnc_web.engine.segmentation_training.segformer import tiny_config
    config = tiny_config(["0", "1"]).to_diff_dict()
    for key in ("transformers_version", "id2label", "label2id"):
        config.pop(key, None)
    return config


def _model_class(model_id: str):
    if model_id == "detr_resnet50":
        from transformers import DetrForObjectDetection

        return DetrForObjectDetection
    from transformers import SegformerForSemanticSegmentation

    return SegformerForSemanticSegmentation


def import_hf_weights(model_id: str, source: Path) -> Path:
    """Check that `source` (a hub snapshot folder, or a bare model.safetensors / pytorch_model.bin) loads into
    the hub model's architecture, then keep it as NNC_MODEL_DIR/<id>/ (safetensors). The weights are always
    loaded with the hub's config (a folder's own config.json only tells its model type), so another size of
    the same model (a SegFormer-B0 for segformer_b3) is refused by its shapes."""
    model = get_model(model_id)
    source = Path(source).resolve()  # `.` has no name of its own
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / source.name
        folder.mkdir()
        if source.is_dir():
            if not _complete(source):
                raise UserError(f"{source.name} must hold config.json and {' or '.join(WEIGHT_FILES)} "
                                f"(the files of https://huggingface.co/{model.repo})")
            try:
                model_type = json.loads((source / "config.json").read_text()).get("model_type")
            except (ValueError, AttributeError):
                raise UserError(f"{source.name}: config.json is not a Hugging Face config") from None
            weights = next(source / n for n in WEIGHT_FILES if (source / n).is_file())
        elif source.is_file():
            if source.suffix not in (".safetensors", ".bin", ".pth", ".pt"):
                raise UserError(f"{source.name}: give model.safetensors or pytorch_model.bin of {model.repo}, "
                                f"or the folder that holds them with config.json")
            model_type, weights = model.reference_config["model_type"], source
        else:
            raise UserError(f"{source.name} does not exist")
        if model_type != model.reference_config["model_type"]:
            raise UserError(f"{source.name} holds a {model_type!r} model, not {model.repo}")
        config = reference_config(model.id)
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
