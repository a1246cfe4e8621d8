"""CenterNet training targets and loss: the Gaussian heat maps of engine/detection.centernet_targets,
the centre cell's offset and log size, the penalty-reduced focal loss and L1 at the centres."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from nnc_web.engine.detection import Box, centernet_targets

SIZE_WEIGHT = 1.0  # the size is regressed as a log (CenterNet weights raw pixel sizes by 0.1)
OFFSET_WEIGHT = 1.0


def batch_targets(boxes: list[torch.Tensor], num_classes: int, grid: int, device: torch.device) -> dict:
    """Per batch: heat (B, C, g, g), region (B, 4, g, g) = offset x, y and log w, h in cells, and the
    mask of centre cells."""
    heats, regions, masks = [], [], []
    for rows in boxes:
        found = [Box(int(r[0]), float((r[1] + r[3]) / 2), float((r[2] + r[4]) / 2), float(r[3] - r[1]),
                     float(r[4] - r[2])) for r in rows.tolist()]
        heat, region = centernet_targets(found, num_classes, grid, grid)
        mask = torch.zeros(grid, grid)
        for box in found:
            mask[min(int(box.cy * grid), grid - 1), min(int(box.cx * grid), grid - 1)] = 1
        heats.append(torch.from_numpy(heat).float())
        regions.append(torch.from_numpy(region[0]).float().permute(2, 0, 1))
        masks.append(mask)
    return {"heat": torch.stack(heats).to(device), "region": torch.stack(regions).to(device),
            "mask": torch.stack(masks).to(device)}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0,
               objects: torch.Tensor | None = None) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, averaged over the objects (`objects`: their
    count in the whole global batch of a distributed run, else this batch's peaks)."""
    prob = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos = -torch.log(prob) * (1 - prob) ** alpha * positive
    neg = -torch.log(1 - prob) * prob ** alpha * (1 - target) ** beta * (1 - positive)
    return (pos.sum() + neg.sum()) / (positive.sum() if objects is None else objects).clamp(min=1)


def object_counts(targets: dict) -> torch.Tensor:
    """(heat-map peaks, centre cells) of a batch: what the loss parts are averaged over."""
    return torch.stack([targets["heat"].eq(1).sum().float(), targets["mask"].sum().float()])


def detection_loss(outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], targets: dict,
                   counts: torch.Tensor | None = None) -> dict:
    """The loss parts of a batch; `counts` (object_counts summed over the ranks of a distributed run)
    averages each rank's sums over the global batch's objects, so the ranks' parts add up to the global
    batch's."""
    heat, size, offset = outputs
    mask = targets["mask"].unsqueeze(1)
    count = (mask.sum() if counts is None else counts[1]).clamp(min=1)
    region = targets["region"]
    parts = {"heat_loss": focal_loss(heat, targets["heat"], objects=None if counts is None else counts[0]),
             "size_loss": (F.l1_loss(size, region[:, 2:], reduction="none") * mask).sum() / count,
             "offset_loss": (F.l1_loss(offset, region[:, :2], reduction="none") * mask).sum() / count}
    parts["loss"] = parts["heat_loss"] + SIZE_WEIGHT * parts["size_loss"] + OFFSET_WEIGHT * parts["offset_loss"]
    return parts

