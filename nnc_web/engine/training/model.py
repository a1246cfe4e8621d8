"""A pretrained backbone with a new classification head (transfer learning)."""
from __future__ import annotations

import torch
from torch import nn

from nnc_web.engine.model_store import get_backbone, load_backbone


class FeatureExtractor(nn.Module):
    """The backbone up to its pooled features (the "bottleneck" of the TF Hub retraining recipe)."""

    def __init__(self, backbone_id: str, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone_id = backbone_id
        self.body = load_backbone(backbone_id, pretrained)
        spec = get_backbone(backbone_id)
        self.dim = spec.feature_dim
        if spec.family == "resnet":
            self.body.fc = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.body, "forward_head"):  # timm
            return self.body.forward_head(self.body.forward_features(x), pre_logits=True)
        return self.body(x)


class TransferClassifier(nn.Module):
    def __init__(self, backbone_id: str, num_classes: int, pretrained: bool = True) -> None:
        super().__init__()
        self.features = FeatureExtractor(backbone_id, pretrained)
        self.head = nn.Linear(self.features.dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
