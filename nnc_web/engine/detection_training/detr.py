"""DETR (End-to-End Object Detection with Transformers, Carion et al., 2020) through `transformers`:
EasyMaker's built-in detector `detr_resnet50` on our detection datasets. The data, evaluation, metrics
and bundle layout are the offline detector's; the model, its loss (DETR's own Hungarian matching: the
class, L1 and generalised IoU losses, computed by DetrForObjectDetection when given `labels`) and the
post-processing (`post_process_object_detection`) are DETR's. DETR's boxes are normalised (cx, cy, w, h)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from nnc_web.engine.atomic import write_bundle
from nnc_web.engine.bundle_kinds import DETR_DETECTOR, DETR_MODEL_ID
from nnc_web.engine.detection_training.data import DetectionData, DetectionDataset, collate
from nnc_web.engine.detection_training.trainer import check_data, truths_of
from nnc_web.engine.hf_training import LoopResult, LoopSpec, train_loop
from nnc_web.engine.hf_weights import load_pretrained, require_weights, tiny_configs
from nnc_web.engine.model_store import IMAGENET_MEAN, IMAGENET_STD
from nnc_web.engine.reporting import Reporter, UserError, check_stop
from nnc_web.engine.training.bundle import FORMAT
from nnc_web.engine.training.memory_guard import check_run_fits

MODEL_ID = DETR_MODEL_ID
ARCHITECTURE = DETR_DETECTOR
LOSS_PARTS = ("loss_ce", "loss_bbox", "loss_giou")


def tiny_config(class_names: list[str]):
    """Tests: DETR's architecture at toy size (a random timm ResNet-18, one encoder and decoder layer)."""
    from transformers import DetrConfig

    return DetrConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64,
                      encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10, use_timm_backbone=True,
                      backbone="resnet18", use_pretrained_backbone=False, **_labels(class_names))


def _labels(class_names: list[str]) -> dict:
    return {"num_labels": len(class_names), "id2label": dict(enumerate(class_names)),
            "label2id": {n: i for i, n in enumerate(class_names)}}


def build_detr(class_names: list[str], pretrained: bool, reporter: Reporter):
    from transformers import DetrConfig, DetrForObjectDetection

    if tiny_configs():
        reporter.log("NNC_TINY_HF_CONFIGS=1: a tiny random-initialised DETR (tests only)")
        return DetrForObjectDetection(tiny_config(class_names))
    if not pretrained:
        reporter.log("DETR-ResNet-50 from random weights (pretrained off)")
        return DetrForObjectDetection(DetrConfig(use_timm_backbone=True, backbone="resnet50",
                                                 use_pretrained_backbone=False, **_labels(class_names)))
    folder = require_weights(MODEL_ID)
    reporter.log(f"DETR-ResNet-50 from facebook/detr-resnet-50 ({folder}); a new class head for "
                 f"{len(class_names)} classes")
    return load_pretrained(DetrForObjectDetection, MODEL_ID, folder, use_pretrained_backbone=False,
                           **_labels(class_names))


def detr_targets(boxes: list[torch.Tensor], device: torch.device) -> list[dict]:
    """Our (n, 5) class, x0, y0, x1, y1 rows as DETR's labels: class ids and normalised cx, cy, w, h."""
    targets = []
    for rows in boxes:
        x0, y0, x1, y1 = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]
        targets.append({"class_labels": rows[:, 0].long().to(device),
                        "boxes": torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], 1).to(device)})
    return targets


def loader(data: DetectionData, size: int, batch_size: int, augmentation: list[str], seed: int, shuffle: bool,
           epoch: int = 0) -> DataLoader:
    """The offline detector's dataset (boxes move with the pixels) in DETR's normalisation (ImageNet's)."""
    dataset = DetectionDataset(data, size, IMAGENET_MEAN, IMAGENET_STD, augmentation, seed * 1000 + epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed * 1000 + epoch))


def predict_detr(model, data: DetectionData, size: int, device: torch.device, reporter: Reporter,
                 batch_size: int = 4) -> list[dict]:
    """Per image every query's box (xyxy normalised), score and label (no threshold: mAP needs all)."""
    from transformers import DetrImageProcessor

    processor = DetrImageProcessor()
    model.eval()
    found = []
    with torch.no_grad():
        for images, _ in loader(data, size, batch_size, [], 0, shuffle=False):
            check_stop(reporter)
            outputs = model(pixel_values=images.to(device))
            for result in processor.post_process_object_detection(outputs, threshold=0.0):  # relative boxes
                order = torch.argsort(result["scores"], descending=True)
                found.append({"boxes": result["boxes"][order].clamp(0, 1).cpu(),
                              "scores": result["scores"][order].cpu(), "labels": result["labels"][order].cpu()})
    return found


def train_detr(train: DetectionData, valid: DetectionData, class_names: list[str], *, size: int, learning_rate: float,
               batch_size: int, eval_batch_size: int, epochs: int, logging_steps: int, augmentation: list[str],
               seed: int, device: torch.device, pretrained: bool, workdir: Path, reporter: Reporter,
               resume: bool = False) -> tuple[torch.nn.Module, LoopResult]:
    from nnc_web.engine.detection_training.metrics import detection_metrics

    check_data(train, valid, len(class_names))
    if size % 32:
        raise UserError(f"input_size must be a multiple of 32 (the backbone's stride), got {size}")
    torch.manual_seed(seed)
    model = build_detr(class_names, pretrained, reporter).to(device)
    check_run_fits(model, size, batch_size, device, forward=lambda images: model(pixel_values=images))
    reporter.log(f"training DETR ({size} px) on {device}: {len(train.images)} training images ({train.box_count} "
                 f"boxes), {len(valid.images)} validation images, {len(class_names)} classes")

    def step(model, batch) -> dict:
        images, boxes = batch
        outputs = model(pixel_values=images.to(device), labels=detr_targets(boxes, device))
        return {"loss": outputs.loss, **{name: outputs.loss_dict[name] for name in LOSS_PARTS}}

    def validate(model) -> dict:
        if not valid.images:
            return {"valid_map50": 0.0, "valid_map": 0.0}
        scores = detection_metrics(predict_detr(model, valid, size, device, reporter, eval_batch_size),
                                   truths_of(valid), class_names)
        return {"valid_map50": scores["map_50"], "valid_map": scores["map"]}

    spec = LoopSpec(LOSS_PARTS, "valid_map50", lambda r: (
        f"train loss {r['train_loss']:.4f} (class {r['loss_ce']:.4f}, L1 {r['loss_bbox']:.4f}, GIoU "
        f"{r['loss_giou']:.4f}), valid mAP@0.5 {r['valid_map50']:.4f}, mAP {r['valid_map']:.4f}"))
    result = train_loop(model, learning_rate=learning_rate, epochs=epochs, logging_steps=logging_steps,
                        batches=lambda epoch: loader(train, size, batch_size, augmentation, seed, True, epoch),
                        step=step, validate=validate, spec=spec, workdir=workdir, reporter=reporter, resume=resume)
    return model, result


def save_detr(folder: Path, model, class_names: list[str], input_size: int, threshold: float, training: dict,
              dataset_ids: dict) -> Path:
    manifest = {"format": FORMAT, "architecture": ARCHITECTURE, "hf_model": MODEL_ID,
                "hf_config": model.config.to_dict(), "class_names": class_names, "num_classes": len(class_names),
                "input_size": input_size, "threshold": threshold,
                "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}, "training": training,
                "datasets": dataset_ids}
    return write_bundle(folder, model.state_dict(), manifest)


def load_detr(folder: Path, device: str = "cpu"):
    """The bundle's DETR, rebuilt from its own config (no hub access: the backbone is never fetched)."""
    from transformers import DetrConfig, DetrForObjectDetection

    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"not a model bundle: {exc}") from exc
    if manifest.get("architecture") != ARCHITECTURE:
        raise UserError(f"not a DETR bundle ({manifest.get('architecture')!r})")
    config = DetrConfig.from_dict({**manifest["hf_config"], "use_pretrained_backbone": False})
    model = DetrForObjectDetection(config)
    model.load_state_dict(load_file(str(folder / "weights.safetensors"), device=device), strict=True)
    return model.to(device).eval(), manifest
