"""Training: the offline semantic segmenter (LR-ASPP on EfficientNet-Lite0) on EasyMaker segmentation datasets."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.bundle_kinds import DENSE_BACKBONE, LRASPP_SEGMENTER
from nnc_web.plugins.context import RunInputs
from nnc_web.plugins.evaluation import EVALUATORS
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.transfer_learning import complete


def run(ctx, params: dict) -> dict:
    from nnc_web.engine.segmentation_training.bundle import save_segmenter
    from nnc_web.engine.segmentation_training.data import load_segmentation_csv
    from nnc_web.engine.segmentation_training.evaluation import evaluate_segmenter
    from nnc_web.engine.segmentation_training.trainer import SegmentationTrainer
    from nnc_web.engine.training.trainer import TrainConfig

    run_row: RunInputs = params["_run"]
    train_csv, valid_csv = run_row.datasets()
    train, valid = load_segmentation_csv(train_csv), load_segmentation_csv(valid_csv)
    names = train.class_names or valid.class_names  # the label map (id2label) the import wrote into the header
    config = run_row.config
    train_config = TrainConfig(
        max_epoch=config["max_epoch"], batch_size=config["batch_size"], optimizer=config["optimizer"],
        learning_rate=config["learning_rate"], schedule=config["schedule"],
        augmentation=[a for a in config["augmentation"].split(",") if a == "flip"], save_best=config["save_best"],
        seed=config["seed"], device=config["device"], devices=config.get("devices", 1),
        nodes=config.get("nodes", ""), input_size=params["input_size"], train_param="all")
    trainer = SegmentationTrainer(train, valid, names, train_config, ctx.workdir, ctx)
    result = trainer.run(resume=bool(ctx.context.get("resume")))
    metrics = evaluate_segmenter(ctx.workdir, result.model, valid, names, trainer.size, trainer.device, ctx)
    save_segmenter(ctx.workdir / "model", result.model, names, trainer.size,
                   run_row.training_record(params, result.best_epoch), run_row.dataset_ids())
    ctx.log("model bundle saved (manifest.json + weights.safetensors)")
    return {"metrics": metrics, "history": result.history}


def evaluate_again(ctx, run_row: RunInputs, folder: Path) -> dict:
    from nnc_web.engine.segmentation_training.bundle import load_segmenter
    from nnc_web.engine.segmentation_training.data import load_segmentation_csv
    from nnc_web.engine.segmentation_training.evaluation import evaluate_segmenter
    from nnc_web.engine.training.trainer import resolve_device

    device = resolve_device("auto")
    model, manifest = load_segmenter(folder, str(device))
    return evaluate_segmenter(ctx.workdir, model, load_segmentation_csv(run_row.valid_csv), manifest["class_names"],
                              manifest["input_size"], device, ctx)


EVALUATORS[LRASPP_SEGMENTER] = evaluate_again

PLUGIN = register(Plugin(
    id="semantic_segmentation",
    curves=("train_loss", "valid_mean_iou", "valid_overall_accuracy"),
    kind="training",
    title="Semantic Segmentation (LR-ASPP, offline)",
    description="Trains a per-pixel classifier on an EasyMaker segmentation dataset: the LR-ASPP head (the "
                "stride-32 features gated by their global average, joined with a stride-8 branch) on the "
                "ImageNet-pretrained EfficientNet-Lite0. Pixels marked 255 are ignored; the label map is kept in "
                "the bundle. Validation mean IoU picks the best epoch. Searching for MobileNetV3 (Howard et al., "
                "2019).",
    params=(Param("input_size", "int", 256, min=64, max=1024,
                  help="images and masks are resized to this square size (a multiple of 32)"),),
    runner=run,
    completer=complete,
    cross_check=lambda params: {} if params["input_size"] % 32 == 0 else {"input_size": "must be a multiple of 32"},
    weights=lambda params: DENSE_BACKBONE,
    config_fields=("max_epoch", "batch_size", "optimizer", "learning_rate", "schedule", "augmentation", "save_best",
                   "seed", "device", "devices", "nodes"),
))
