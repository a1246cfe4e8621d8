"""A zero-shot classifier from CLIP and a list of classes: no training, the classes' text features are
computed once (the text tower is then dropped) and frozen into the classifier, as NNC's
`text_feature` parameter."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnc_web.engine.clip.architectures import get_architecture, image_size, tokenizer
from nnc_web.engine.clip.model import ZeroShotClassifier
from nnc_web.engine.clip.prompts import prompts_for, templates
from nnc_web.engine.clip.weights import load_clip
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import Reporter, check_stop


@torch.no_grad()
def encode_classes(clip: nn.Module, tokenize, classes: list[str], template_list: list[str],
                   device: torch.device, reporter: Reporter | None = None, batch_size: int = 256) -> torch.Tensor:
    """(classes x D) L2-normalised text features; with several templates, the normalised mean of each
    class's normalised prompt embeddings (the CLIP paper's ensemble)."""
    prompts = [p for name in classes for p in prompts_for(name, template_list)]
    embeddings = []
    for start in range(0, len(prompts), batch_size):
        if reporter is not None:
            check_stop(reporter)
            reporter.progress(start, len(prompts))
        tokens = tokenize(prompts[start:start + batch_size]).to(device)
        embeddings.append(F.normalize(clip.encode_text(tokens).float(), dim=-1))
    per_prompt = torch.cat(embeddings).view(len(classes), len(template_list), -1)
    return F.normalize(per_prompt.mean(dim=1), dim=-1).cpu()


def build_zero_shot(arch_id: str, classes: list[str], template_id: str, device: torch.device,
                    reporter: Reporter) -> tuple[ZeroShotClassifier, dict]:
    """The classifier on `device` and the manifest fields that describe it."""
    arch = get_architecture(arch_id)
    template_list = templates(template_id)
    clip, config = load_clip(arch_id, device)
    reporter.log(f"{arch.title}: text features of {len(classes)} classes from {len(template_list)} "
                 f"prompt{'s' if len(template_list) > 1 else ''} each, computed once")
    features = encode_classes(clip, tokenizer(config), classes, template_list, device, reporter)
    size = image_size(config)
    model = ZeroShotClassifier(clip.visual, size, features, clip.logit_scale.detach().cpu()).to(device).eval()
    del clip  # the text tower's part is done
    spec = get_backbone(arch_id)
    manifest = {"backbone": arch_id, "open_clip_config": config, "class_names": list(classes),
                "input_size": size, "normalization": {"mean": list(spec.mean), "std": list(spec.std)},
                "prompts": {"template": template_id, "templates": template_list}}
    return model, manifest
