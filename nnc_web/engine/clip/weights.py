"""Where CLIP's weights come from: `NNC_MODEL_DIR/<id>.safetensors` (`manage.py import_weights`), then
the Hugging Face hub cache that open_clip downloads into; a download only with NNC_ALLOW_DOWNLOADS=1.
Files are safetensors or plain state dicts read with weights_only=True: nothing is unpickled."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from nnc_web.engine.clip.architectures import (
    WEIGHTS_FILES,
    build_clip,
    build_visual,
    get_architecture,
    image_size,
    model_config,
)
from nnc_web.engine.clip.model import ImageTower
from nnc_web.engine.errors import UserError
from nnc_web.engine.model_store import ModelUnavailable, model_dir, read_weights_file


def stored_path(arch_id: str) -> Path:
    return model_dir() / f"{arch_id}.safetensors"


def _hub_cache_file(arch_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in WEIGHTS_FILES:
        found = try_to_load_from_cache(get_architecture(arch_id).hf_repo, name)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def clip_weights_path(arch_id: str) -> Path | None:
    """The weights file of `arch_id` on this machine, or None."""
    stored = stored_path(arch_id)
    return stored if stored.is_file() else _hub_cache_file(arch_id)


def missing_weights_message(arch_id: str) -> str:
    arch = get_architecture(arch_id)
    return (f"the weights of {arch_id} (OpenAI's {arch.title}) are not on this machine. On a machine with internet, "
            f"download {WEIGHTS_FILES[0]} (or {WEIGHTS_FILES[1]}) from https://huggingface.co/{arch.hf_repo}, "
            f"then run `python manage.py import_weights {arch_id} <that file>` here; or set NNC_ALLOW_DOWNLOADS=1 "
            f"on a machine with internet")


def _weights_file(arch_id: str) -> Path:
    path = clip_weights_path(arch_id)
    if path is not None:
        return path
    if os.environ.get("NNC_ALLOW_DOWNLOADS") == "1":
        from open_clip.pretrained import download_pretrained_from_hf  # prefers the safetensors file

        return Path(download_pretrained_from_hf(get_architecture(arch_id).hf_repo))
    raise ModelUnavailable(missing_weights_message(arch_id))


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = read_weights_file(path)
    except UserError as exc:  # OpenAI's own .pt files are TorchScript archives, which are never loaded
        raise UserError(f"{exc}. Use open_clip's {WEIGHTS_FILES[0]} or {WEIGHTS_FILES[1]}") from exc
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_strict(model: nn.Module, state: dict, arch_id: str, name: str) -> nn.Module:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # torch's first line names the class, the next the keys or shapes
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:2])
        raise UserError(f"{name} does not fit {arch_id}: {detail[:300]}") from exc
    return model


def load_clip(arch_id: str, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """The whole pretrained CLIP (both towers) in eval mode, and its open_clip config."""
    config = model_config(arch_id)
    path = _weights_file(arch_id)
    model = _load_strict(build_clip(config), _read_state(path), arch_id, path.name)
    return model.to(device).eval(), config


def load_image_tower(arch_id: str, pretrained: bool = True) -> nn.Module:
    """The image tower as a model-store backbone (images -> embeddings): the `visual.*` tensors of the
    CLIP checkpoint, or random weights with pretrained=False."""
    config = model_config(arch_id)
    path = _weights_file(arch_id) if pretrained else None  # before building: a missing file fails fast
    tower = ImageTower(build_visual(config), image_size(config))
    if path is not None:
        state = {k: v for k, v in _read_state(path).items() if k.startswith("visual.")}
        _load_strict(tower, state, arch_id, path.name)
    return tower.eval()


def import_clip_weights(arch_id: str, source: Path) -> Path:
    """Check that `source` loads strictly into the whole CLIP, then keep it as safetensors."""
    from safetensors.torch import save_file

    model = _load_strict(build_clip(model_config(arch_id)), _read_state(source), arch_id, source.name)
    target = stored_path(arch_id)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(target))
    return target
