"""The CLIP architectures by NNC's ids (vitb32, vitb16, vitl14): their open_clip config and where
OpenAI's weights are published in open_clip's format.

An open_clip model config saved as `NNC_MODEL_DIR/<id>.open_clip.json` (the `model_cfg` of an
open_clip_config.json, or that object alone) replaces the built-in one: for another checkpoint of a
variant (LAION's GELU weights: `"quick_gelu": false`), and for tests, which run a tiny random CLIP
through exactly this code. It must keep the id's embedding size (the model store's feature size)."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nnc_web.engine.errors import UserError
from nnc_web.engine.model_store import model_dir

if TYPE_CHECKING:  # torch is not imported here: the training form lists these architectures on the web
    from torch import nn


@dataclass(frozen=True)
class ClipArchitecture:
    id: str
    title: str
    open_clip_name: str
    hf_repo: str  # the Hugging Face repository of OpenAI's weights converted to open_clip's format


ARCHITECTURES: dict[str, ClipArchitecture] = {a.id: a for a in (
    ClipArchitecture("vitb32", "CLIP ViT-B/32", "ViT-B-32", "timm/vit_base_patch32_clip_224.openai"),
    ClipArchitecture("vitb16", "CLIP ViT-B/16", "ViT-B-16", "timm/vit_base_patch16_clip_224.openai"),
    ClipArchitecture("vitl14", "CLIP ViT-L/14", "ViT-L-14", "timm/vit_large_patch14_clip_224.openai"),
)}
# The files of those repositories, in the order they are looked for (the first is safetensors).
WEIGHTS_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_CONFIG_KEYS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale", "init_logit_bias",
                "nonscalar_logit_scale"}


def get_architecture(arch_id: str) -> ClipArchitecture:
    try:
        return ARCHITECTURES[arch_id]
    except KeyError:
        raise UserError(f"unknown CLIP model {arch_id!r} (known: {', '.join(ARCHITECTURES)})") from None


def override_path(arch_id: str) -> Path:
    return model_dir() / f"{arch_id}.open_clip.json"


def model_config(arch_id: str) -> dict:
    """The open_clip config of `arch_id`: the override file when there is one, else the built-in
    config with QuickGELU (OpenAI's weights were trained with it; open_clip's plain config has GELU)."""
    import open_clip

    arch = get_architecture(arch_id)
    config = copy.deepcopy(open_clip.get_model_config(arch.open_clip_name))
    config["quick_gelu"] = True
    path = override_path(arch_id)
    return _read_override(path, arch_id, config["embed_dim"]) if path.is_file() else config


def _read_override(path: Path, arch_id: str, embed_dim: int) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path.name} is not an open_clip config: {exc}") from exc
    config = data.get("model_cfg", data) if isinstance(data, dict) else None
    if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ("vision_cfg", "text_cfg")):
        raise UserError(f"{path.name} needs vision_cfg and text_cfg (an open_clip model config)")
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise UserError(f"{path.name}: unsupported keys {', '.join(sorted(unknown))} (a plain CLIP is needed)")
    if config.get("embed_dim") != embed_dim:
        raise UserError(f"{path.name}: embed_dim must stay {embed_dim}, the feature size of {arch_id}")
    vision = config["vision_cfg"]
    if "timm_model_name" in vision or isinstance(vision.get("layers"), list) or "hf_model_name" in config["text_cfg"]:
        raise UserError(f"{path.name} must describe open_clip's own ViT image and text towers")
    return config


def _checked(build, config: dict) -> nn.Module:
    try:
        return build()
    except (TypeError, ValueError, AssertionError) as exc:  # unknown or inconsistent config fields
        raise UserError(f"the CLIP config cannot be built: {exc}") from exc


def build_clip(config: dict) -> nn.Module:
    """open_clip's CLIP (both towers) with random weights."""
    from open_clip.model import CLIP

    return _checked(lambda: CLIP(**copy.deepcopy(config)), config)


def build_visual(config: dict) -> nn.Module:
    """The image tower alone, as CLIP builds its `visual` (the text tower is not needed to classify)."""
    from open_clip.model import _build_vision_tower  # what CLIP.__init__ calls; open_clip is pinned

    return _checked(lambda: _build_vision_tower(config["embed_dim"], copy.deepcopy(config["vision_cfg"]),
                                                config.get("quick_gelu", False)), config)


def image_size(config: dict) -> int:
    size = config["vision_cfg"].get("image_size", 224)
    return int(size[0] if isinstance(size, list | tuple) else size)


def tokenizer(config: dict):
    """CLIP's BPE tokenizer (its vocabulary ships inside open_clip) for the config's context length."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=int(config["text_cfg"].get("context_length", 77)))
