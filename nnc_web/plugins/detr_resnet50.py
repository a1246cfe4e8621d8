"""Training: EasyMaker's built-in object detector, DETR with a ResNet-50 backbone (`transformers`), on any
detection dataset, with EasyMaker's hyperparameter names."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.bundle_kinds import DETR_DETECTOR, DETR_MODEL_ID
from nnc_web.engine.hf_weights import is_available, missing_weights_message, tiny_configs
from nnc_web.plugins.context import RunInputs
from nnc_web.plugins.detection_training import class_names_for
from nnc_web.plugins.evaluation import EVALUATORS
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.transfer_learning import complete


def run_class_names(params: dict, run_row: RunInputs, count: int) -> list[str]:
    """The names given, else the training dataset's own (its import named them), else 0, 1, ..."""
    known = list(getattr(run_row, "class_names", None) or [])
    if not params.get("class_names") and len(known) >= count > 0:
        return known
    return class_names_for(params.get("class_names"), count)


def weights_errors(params: dict, model_id: str) -> dict[str, str]:
    """Missing weights stop the run at the form (before any job), with the import command."""
    if params.get("pretrained", True) and not tiny_configs() and not is_available(model_id):
        return {"pretrained": missing_weights_message(model_id)}
    return {}


def cross_check(params: dict) -> dict[str, str]:
    errors = {} if params["input_size"] % 32 == 0 else {"input_size": "must be a multiple of 32"}
    return {**errors, **weights_errors(params, DETR_MODEL_ID)}


def run(ctx, params: dict) -> dict:
    from nnc_web.engine.detection_training.data import load_detection_csv
    from nnc_web.engine.detection_training.detr import predict_detr, save_detr, train_detr
    from nnc_web.engine.detection_training.evaluation import evaluate_detector
    from nnc_web.engine.training.trainer import resolve_device

    run_row: RunInputs = params["_run"]
    train_csv, valid_csv = run_row.datasets()
    train, valid = load_detection_csv(train_csv), load_detection_csv(valid_csv)
    names = run_class_names(params, run_row, max(train.num_classes(), valid.num_classes()))
    config = run_row.config
    device = resolve_device(config.get("device", "auto"))
    model, result = train_detr(
        train, valid, names, size=params["input_size"], learning_rate=params["learning_rate"],
        batch_size=params["per_device_train_batch_size"], eval_batch_size=params["per_device_eval_batch_size"],
        epochs=params["num_train_epochs"], logging_steps=params["logging_steps"],
        augmentation=[a for a in config.get("augmentation", "").split(",") if a], seed=config.get("seed", 0),
        device=device, pretrained=params["pretrained"], workdir=ctx.workdir, reporter=ctx,
        resume=bool(ctx.context.get("resume")))
    metrics = evaluate_detector(ctx.workdir, model, valid, names, params["input_size"], params["threshold"], device,
                                ctx, batch_size=params["per_device_eval_batch_size"], predict=predict_detr)
    save_detr(ctx.workdir / "model", model, names, params["input_size"], params["threshold"],
              run_row.training_record(params, result.best_epoch), run_row.dataset_ids())
    ctx.log("model bundle saved (manifest.json + weights.safetensors)")
    return {"metrics": metrics, "history": result.history}


def evaluate_again(ctx, run_row: RunInputs, folder: Path) -> dict:
    from nnc_web.engine.detection_training.data import load_detection_csv
    from nnc_web.engine.detection_training.detr import load_detr, predict_detr
    from nnc_web.engine.detection_training.evaluation import evaluate_detector
    from nnc_web.engine.training.trainer import resolve_device

    device = resolve_device("auto")
    model, manifest = load_detr(folder, str(device))
    batch = manifest.get("training", {}).get("per_device_eval_batch_size", 4)
    return evaluate_detector(ctx.workdir, model, load_detection_csv(run_row.valid_csv), manifest["class_names"],
                             manifest["input_size"], manifest["threshold"], device, ctx, batch_size=batch,
                             predict=predict_detr)


EVALUATORS[DETR_DETECTOR] = evaluate_again  # the Evaluate button re-runs it from the bundle

PLUGIN = register(Plugin(
    id="detr_resnet50",
    curves=("train_loss", "loss_ce", "loss_bbox", "loss_giou", "valid_map50", "valid_map"),
    kind="training",
    title="Object Detection (DETR ResNet-50)",
    description="EasyMaker's built-in object detector: DETR (a ResNet-50, a transformer encoder-decoder and 100 "
                "object queries, each predicting a box and a class) fine-tuned from facebook/detr-resnet-50 with "
                "a new class head, on any detection dataset (COCO import, YOLO v2 or CenterNet datasets). Its own "
                "loss matches predictions to boxes one to one (Hungarian matching: class, L1 and generalised IoU "
                "costs), so no NMS is needed. AdamW with a linear decay, EasyMaker's hyperparameter names; "
                "validation mAP@0.5 picks the best epoch. The weights come from the Hugging Face cache or "
                "manage.py import_weights detr_resnet50. End-to-End Object Detection with Transformers "
                "(Carion et al., 2020).",
    params=(
        Param("learning_rate", "float", 2e-4, min=1e-8, max=10.0, help="AdamW's initial learning rate"),
        Param("per_device_train_batch_size", "int", 4, min=1, max=4096, help="training batch size"),
        Param("per_device_eval_batch_size", "int", 4, min=1, max=4096, help="evaluation batch size"),
        Param("num_train_epochs", "int", 3, min=1, max=10_000, help="epochs"),
        Param("threshold", "float", 0.5, min=0.0, max=1.0, help="score from which a box counts as detected "
              "(output and endpoint; mAP uses every score)"),
        Param("logging_steps", "int", 500, min=1, help="a log line with the loss every so many steps"),
        Param("input_size", "int", 512, min=64, max=1333, help="images are resized to this square size "
              "(a multiple of 32)"),
        Param("class_names", "text", None, help="comma-separated class names (optional: else the dataset's own, "
              "or 0, 1, ...)"),
        Param("pretrained", "bool", True, help="start from facebook/detr-resnet-50 (off: random weights)"),
    ),
    runner=run,
    completer=complete,
    cross_check=cross_check,
    config_fields=("augmentation", "seed", "device"),  # epochs, batch size and learning rate are its own
))
