"""CenterNet (Objects as Points, Zhou, Wang and Krahenbuhl, 2019) on EfficientNet-Lite0 with a small
top-down feature pyramid down to stride 4: a heat map per class, the box size and the centre offset."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nnc_web.engine.bundle_kinds import DENSE_BACKBONE
from nnc_web.engine.model_store import load_backbone

BACKBONE = DENSE_BACKBONE
TAPS = (1, 2, 4, 6)  # Lite0 blocks ending at strides 4, 8, 16, 32
TAP_CHANNELS = (24, 40, 112, 320)
STRIDE = 4
PYRAMID = 64  # channels of the pyramid and the heads
PRIOR = 0.1  # the heat map's starting probability (CenterNet's bias -2.19)


class LiteBody(nn.Module):
    """The Lite0 stem and blocks, returning the four tapped stages (the classifier head is dropped)."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        full = load_backbone(BACKBONE, pretrained)
        self.conv_stem, self.bn1, self.blocks = full.conv_stem, full.bn1, full.blocks

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.bn1(self.conv_stem(x))
        taps = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in TAPS:
                taps.append(x)
        return taps


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _head(out: int, bias: float = 0.0) -> nn.Sequential:
    head = nn.Sequential(_conv(PYRAMID, PYRAMID), nn.Conv2d(PYRAMID, out, 1))
    nn.init.constant_(head[-1].bias, bias)
    return head


class PyramidFeatures(nn.Module):
    """FPN-style top-down path: 1x1 laterals, upsample-and-add, one 3x3 smoothing at stride 4."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        self.body = LiteBody(pretrained)
        self.laterals = nn.ModuleList(nn.Conv2d(c, PYRAMID, 1) for c in TAP_CHANNELS)
        self.smooth = _conv(PYRAMID, PYRAMID)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = self.body(x)
        top = self.laterals[-1](taps[-1])
        for lateral, tap in zip(reversed(self.laterals[:-1]), reversed(taps[:-1]), strict=True):
            top = lateral(tap) + F.interpolate(top, size=tap.shape[-2:], mode="nearest")
        return self.smooth(top)


class CenterNetDetector(nn.Module):
    """forward -> (heat logits (B, C, H/4, W/4), log size in cells (B, 2, ...), offset (B, 2, ...))."""

    def __init__(self, num_classes: int, pretrained: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = PyramidFeatures(pretrained)
        self.heat = _head(num_classes, -math.log((1 - PRIOR) / PRIOR))
        self.size = _head(2)
        self.offset = _head(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shared = self.features(x)
        return self.heat(shared), self.size(shared), self.offset(shared)


def decode(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, top_k: int = 100
           ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Peaks of the heat map (a 3x3 max-pool keeps local maxima: CenterNet's NMS) -> per image
    (boxes (k, 4) x0 y0 x1 y1 normalised, scores (k,), labels (k,)), best first."""
    batch, classes, height, width = heat.shape
    prob = torch.sigmoid(heat)
    peaks = prob * (F.max_pool2d(prob, 3, stride=1, padding=1) == prob)
    scores, flat = peaks.view(batch, -1).topk(min(top_k, classes * height * width))
    labels, cell = flat // (height * width), flat % (height * width)
    gy, gx = (cell // width).float(), (cell % width).float()
    results = []
    for b in range(batch):
        w = size[b, 0].reshape(-1)[cell[b]].clamp(max=10).exp()
        h = size[b, 1].reshape(-1)[cell[b]].clamp(max=10).exp()
        cx = gx[b] + offset[b, 0].reshape(-1)[cell[b]]
        cy = gy[b] + offset[b, 1].reshape(-1)[cell[b]]
        boxes = torch.stack([(cx - w / 2) / width, (cy - h / 2) / height, (cx + w / 2) / width,
                             (cy + h / 2) / height], dim=1).clamp(0, 1)
        results.append((boxes, scores[b], labels[b]))
    return results
