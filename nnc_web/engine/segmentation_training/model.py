"""LR-ASPP (Searching for MobileNetV3, Howard et al., 2019) on EfficientNet-Lite0: the stride-32
features gated by their global average, upsampled onto a stride-8 branch, then to the input size."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nnc_web.engine.detection_training.model import LiteBody

INNER = 128


class LiteSegmenter(nn.Module):
    def __init__(self, num_classes: int, pretrained: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = LiteBody(pretrained)  # taps at strides 4, 8, 16, 32 (24, 40, 112, 320 channels)
        self.high = nn.Sequential(nn.Conv2d(320, INNER, 1, bias=False), nn.BatchNorm2d(INNER), nn.ReLU(inplace=True))
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(320, INNER, 1), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(40, num_classes, 1)
        self.high_classifier = nn.Conv2d(INNER, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, low, _, top = self.body(x)
        high = self.high(top) * self.gate(top)
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.low_classifier(low) + self.high_classifier(high)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
