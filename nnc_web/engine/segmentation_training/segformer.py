"""SegFormer (Xie et al., 2021) through `transformers`: EasyMaker's built-in segmenter `segformer_b3` on
EasyMaker segmentation datasets. The data (ignore index 255, the label map), evaluation, metrics and
bundle layout are the offline segmenter's; SegformerForSemanticSegmentation computes its own loss
(`semantic_loss_ignore_index=255`) on logits at a quarter of the input size, upsampled to it for the
predicted masks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch.nn import functional as F
from torch.utils.data import DataLoader

from nnc_web.engine.atomic import write_bundle
from nnc_web.engine.bundle_kinds import SEGFORMER_MODEL_ID, SEGFORMER_SEGMENTER
from nnc_web.engine.hf_training import LoopResult, LoopSpec, train_loop
from nnc_web.engine.hf_weights import load_pretrained, require_weights, tiny_configs
from nnc_web.engine.model_store import IMAGENET_MEAN, IMAGENET_STD
from nnc_web.engine.reporting import Reporter, UserError, check_stop
from nnc_web.engine.segmentation import IGNORE
from nnc_web.engine.segmentation_training.data import SegmentationData, SegmentationDataset, check_masks
from nnc_web.engine.segmentation_training.metrics import confusion, segmentation_metrics
from nnc_web.engine.training.bundle import FORMAT
from nnc_web.engine.training.memory_guard import check_run_fits

MODEL_ID = SEGFORMER_MODEL_ID
ARCHITECTURE = SEGFORMER_SEGMENTER


def _labels(class_names: list[str]) -> dict:
    return {"num_labels": len(class_names), "id2label": dict(enumerate(class_names)),
            "label2id": {n: i for i, n in enumerate(class_names)}, "semantic_loss_ignore_index": IGNORE}


def tiny_config(class_names: list[str]):
    """Tests: SegFormer's architecture at toy size (one block per stage, 8..64 channels)."""
    from transformers import SegformerConfig

    return SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], num_attention_heads=[1, 1, 2, 4],
                           decoder_hidden_size=32, **_labels(class_names))


def build_segformer(class_names: list[str], pretrained: bool, reporter: Reporter):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from nnc_web.engine.hf_weights import MODELS

    if tiny_configs():
        reporter.log("NNC_TINY_HF_CONFIGS=1: a tiny random-initialised SegFormer (tests only)")
        return SegformerForSemanticSegmentation(tiny_config(class_names))
    if not pretrained:
        reporter.log("SegFormer-B3 from random weights (pretrained off)")
        reference = {k: v for k, v in MODELS[MODEL_ID].reference_config.items()
                     if k not in ("model_type", "architectures", "num_labels")}
        return SegformerForSemanticSegmentation(SegformerConfig(**reference, **_labels(class_names)))
    folder = require_weights(MODEL_ID)
    reporter.log(f"SegFormer-B3: the nvidia/mit-b3 encoder ({folder}), a new decode head for {len(class_names)} "
                 f"classes")
    return load_pretrained(SegformerForSemanticSegmentation, MODEL_ID, folder, **_labels(class_names))


def loader(data: SegmentationData, size: int, batch_size: int, augmentation: list[str], seed: int, shuffle: bool,
           epoch: int = 0) -> DataLoader:
    dataset = SegmentationDataset(data, size, IMAGENET_MEAN, IMAGENET_STD, augmentation, seed * 1000 + epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed * 1000 + epoch))


def upsampled_logits(model, images: torch.Tensor) -> torch.Tensor:
    logits = model(pixel_values=images).logits
    return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def segformer_predictor(batch_size: int = 4):
    """evaluate_segmenter's `predict`: (predicted ids, truth ids) per batch at the input size."""
    def predict(model, data: SegmentationData, size: int, device: torch.device, reporter: Reporter):
        model.eval()
        with torch.no_grad():
            for images, masks in loader(data, size, batch_size, [], 0, shuffle=False):
                check_stop(reporter)
                yield upsampled_logits(model, images.to(device)).argmax(1).cpu().numpy(), masks.numpy()

    return predict


def train_segformer(train: SegmentationData, valid: SegmentationData, class_names: list[str], *, size: int,
                    learning_rate: float, batch_size: int, epochs: int, logging_steps: int, augmentation: list[str],
                    seed: int, device: torch.device, pretrained: bool, workdir: Path, reporter: Reporter,
                    resume: bool = False) -> tuple[torch.nn.Module, LoopResult]:
    if not class_names:
        raise UserError("the dataset has no label map (id2label): import it with Semantic segmentation "
                        "(EasyMaker layout)")
    if not train.images:
        raise UserError("the training dataset has no rows")
    if size % 32:
        raise UserError(f"input_size must be a multiple of 32 (the encoder's stride), got {size}")
    check_masks(train, len(class_names), "training")
    check_masks(valid, len(class_names), "validation")
    torch.manual_seed(seed)
    model = build_segformer(class_names, pretrained, reporter).to(device)
    check_run_fits(model, size, batch_size, device, forward=lambda images: model(pixel_values=images))
    reporter.log(f"training SegFormer ({size} px) on {device}: {len(train.images)} training and "
                 f"{len(valid.images)} validation images, {len(class_names)} classes ({IGNORE} = ignore)")
    predict = segformer_predictor(batch_size)

    def step(model, batch) -> dict:
        images, masks = batch
        return {"loss": model(pixel_values=images.to(device), labels=masks.to(device)).loss}

    def validate(model) -> dict:
        matrix = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
        for predicted, truth in predict(model, valid, size, device, reporter):
            matrix += confusion(truth, predicted, len(class_names))
        scores = segmentation_metrics(matrix, class_names)
        return {"valid_mean_iou": scores["mean_iou"], "valid_overall_accuracy": scores["overall_accuracy"]}

    spec = LoopSpec((), "valid_mean_iou", lambda r: (
        f"train loss {r['train_loss']:.4f}, valid mean IoU {r['valid_mean_iou']:.4f}, overall accuracy "
        f"{r['valid_overall_accuracy']:.4f}"))
    augment = [a for a in augmentation if a == "flip"]  # the mask moves with the pixels under a flip only
    result = train_loop(model, learning_rate=learning_rate, epochs=epochs, logging_steps=logging_steps,
                        batches=lambda epoch: loader(train, size, batch_size, augment, seed, True, epoch),
                        step=step, validate=validate, spec=spec, workdir=workdir, reporter=reporter, resume=resume)
    return model, result


def save_segformer(folder: Path, model, class_names: list[str], input_size: int, training: dict,
                   dataset_ids: dict) -> Path:
    manifest = {"format": FORMAT, "architecture": ARCHITECTURE, "hf_model": MODEL_ID,
                "hf_config": model.config.to_dict(), "class_names": class_names,
                "id2label": {str(i): n for i, n in enumerate(class_names)}, "num_classes": len(class_names),
                "input_size": input_size, "ignore_index": IGNORE,
                "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}, "training": training,
                "datasets": dataset_ids}
    return write_bundle(folder, model.state_dict(), manifest)


def load_segformer(folder: Path, device: str = "cpu"):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"not a model bundle: {exc}") from exc
    if manifest.get("architecture") != ARCHITECTURE:
        raise UserError(f"not a SegFormer bundle ({manifest.get('architecture')!r})")
    model = SegformerForSemanticSegmentation(SegformerConfig.from_dict(manifest["hf_config"]))
    model.load_state_dict(load_file(str(folder / "weights.safetensors"), device=device), strict=True)
    return model.to(device).eval(), manifest
