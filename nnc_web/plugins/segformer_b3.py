"""Training: EasyMaker's built-in semantic segmenter, SegFormer-B3 (`transformers`), on EasyMaker
segmentation datasets, with EasyMaker's hyperparameter names."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.bundle_kinds import SEGFORMER_MODEL_ID, SEGFORMER_SEGMENTER
from nnc_web.plugins.context import RunInputs
from nnc_web.plugins.detr_resnet50 import weights_errors
from nnc_web.plugins.evaluation import EVALUATORS
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.transfer_learning import complete


def cross_check(params: dict) -> dict[str, str]:
    errors = {} if params["input_size"] % 32 == 0 else {"input_size": "must be a multiple of 32"}
    return {**errors, **weights_errors(params, SEGFORMER_MODEL_ID)}


def run(ctx, params: dict) -> dict:
    from nnc_web.engine.segmentation_training.data import load_segmentation_csv
    from nnc_web.engine.segmentation_training.evaluation import evaluate_segmenter
    from nnc_web.engine.segmentation_training.segformer import (
        save_segformer,
        segformer_predictor,
        train_segformer,
    )
    from nnc_web.engine.training.trainer import resolve_device

    run_row: RunInputs = params["_run"]
    train_csv, valid_csv = run_row.datasets()
    train, valid = load_segmentation_csv(train_csv), load_segmentation_csv(valid_csv)
    names = train.class_names or valid.class_names  # the label map (id2label) the import wrote into the header
    config = run_row.config
    device = resolve_device(config.get("device", "auto"))
    batch = params["per_device_train_batch_size"]
    model, result = train_segformer(
        train, valid, names, size=params["input_size"], learning_rate=params["learning_rate"], batch_size=batch,
        epochs=params["num_train_epochs"], logging_steps=params["logging_steps"],
        augmentation=[a for a in config.get("augmentation", "").split(",") if a], seed=config.get("seed", 0),
        device=device, pretrained=params["pretrained"], workdir=ctx.workdir, reporter=ctx,
        resume=bool(ctx.context.get("resume")))
    metrics = evaluate_segmenter(ctx.workdir, model, valid, names, params["input_size"], device, ctx,
                                 predict=segformer_predictor(batch))
    save_segformer(ctx.workdir / "model", model, names, params["input_size"],
                   run_row.training_record(params, result.best_epoch), run_row.dataset_ids())
    ctx.log("model bundle saved (manifest.json + weights.safetensors)")
    return {"metrics": metrics, "history": result.history}


def evaluate_again(ctx, run_row: RunInputs, folder: Path) -> dict:
    from nnc_web.engine.segmentation_training.data import load_segmentation_csv
    from nnc_web.engine.segmentation_training.evaluation import evaluate_segmenter
    from nnc_web.engine.segmentation_training.segformer import load_segformer, segformer_predictor
    from nnc_web.engine.training.trainer import resolve_device

    device = resolve_device("auto")
    model, manifest = load_segformer(folder, str(device))
    batch = manifest.get("training", {}).get("per_device_train_batch_size", 4)
    return evaluate_segmenter(ctx.workdir, model, load_segmentation_csv(run_row.valid_csv), manifest["class_names"],
                              manifest["input_size"], device, ctx, predict=segformer_predictor(batch))


EVALUATORS[SEGFORMER_SEGMENTER] = evaluate_again

PLUGIN = register(Plugin(
    id="segformer_b3",
    curves=("train_loss", "valid_mean_iou", "valid_overall_accuracy"),
    kind="training",
    title="Semantic Segmentation (SegFormer-B3)",
    description="EasyMaker's built-in semantic segmenter: SegFormer-B3 (a hierarchical transformer encoder, "
                "MiT-b3, and a light all-MLP decoder) fine-tuned from the ImageNet-pretrained nvidia/mit-b3 "
                "encoder with a new decode head for the dataset's label map (id2label, kept in the bundle); "
                "pixels marked 255 are ignored. AdamW with a linear decay, EasyMaker's hyperparameter names; "
                "validation mean IoU picks the best epoch. The weights come from the Hugging Face cache or "
                "manage.py import_weights segformer_b3. SegFormer: Simple and Efficient Design for Semantic "
                "Segmentation with Transformers (Xie et al., 2021).",
    params=(
        Param("learning_rate", "float", 2e-4, min=1e-8, max=10.0, help="AdamW's initial learning rate"),
        Param("per_device_train_batch_size", "int", 4, min=1, max=4096, help="training (and evaluation) batch size"),
        Param("num_train_epochs", "int", 3, min=1, max=10_000, help="epochs"),
        Param("logging_steps", "int", 500, min=1, help="a log line with the loss every so many steps"),
        Param("input_size", "int", 512, min=64, max=1024, help="images and masks are resized to this square size "
              "(a multiple of 32; EasyMaker's is 512)"),
        Param("pretrained", "bool", True, help="start from the nvidia/mit-b3 encoder (off: random weights)"),
    ),
    runner=run,
    completer=complete,
    cross_check=cross_check,
    config_fields=("augmentation", "seed", "device"),
))
