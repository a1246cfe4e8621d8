"""Training: the offline object detector (CenterNet on EfficientNet-Lite0) on any detection dataset."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.bundle_kinds import CENTERNET_DETECTOR, DENSE_BACKBONE
from nnc_web.engine.reporting import UserError
from nnc_web.plugins.context import RunInputs
from nnc_web.plugins.evaluation import EVALUATORS
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.transfer_learning import complete


def class_names_for(given: str | None, count: int, known: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The names given (one per class), else the training dataset's own (the names its import was given,
    e.g. a YOLO set's classes.txt), else 0, 1, ... up to the largest class id in the boxes."""
    if given:
        names = [n.strip() for n in given.split(",") if n.strip()]
        if len(names) < count:
            raise UserError(f"{len(names)} class names, but the boxes use {count} classes: give one name per class")
        return names
    if known and len(known) >= count:
        return list(known)
    return [str(i) for i in range(count)]


def run(ctx, params: dict) -> dict:
    from nnc_web.engine.detection_training.bundle import save_detector
    from nnc_web.engine.detection_training.data import load_detection_csv
    from nnc_web.engine.detection_training.evaluation import evaluate_detector
    from nnc_web.engine.detection_training.trainer import DetectionTrainer
    from nnc_web.engine.training.trainer import TrainConfig

    run_row: RunInputs = params["_run"]
    train_csv, valid_csv = run_row.datasets()
    train, valid = load_detection_csv(train_csv), load_detection_csv(valid_csv)
    names = class_names_for(params.get("class_names"), max(train.num_classes(), valid.num_classes()),
                            run_row.class_names)
    config = run_row.config
    train_config = TrainConfig(
        max_epoch=config["max_epoch"], batch_size=config["batch_size"], optimizer=config["optimizer"],
        learning_rate=config["learning_rate"], schedule=config["schedule"],
        augmentation=[a for a in config["augmentation"].split(",") if a], save_best=config["save_best"],
        seed=config["seed"], device=config["device"], devices=config.get("devices", 1),
        nodes=config.get("nodes", ""), input_size=params["input_size"], train_param="all",
        pretrained=params.get("pretrained", True))
    trainer = DetectionTrainer(train, valid, names, train_config, ctx.workdir, ctx)
    result = trainer.run(resume=bool(ctx.context.get("resume")))
    metrics = evaluate_detector(ctx.workdir, result.model, valid, names, trainer.size, params["threshold"],
                                trainer.device, ctx, batch_size=config["batch_size"])
    save_detector(ctx.workdir / "model", result.model, names, trainer.size, params["threshold"],
                  run_row.training_record(params, result.best_epoch), run_row.dataset_ids())
    ctx.log("model bundle saved (manifest.json + weights.safetensors)")
    return {"metrics": metrics, "history": result.history}


def evaluate_again(ctx, run_row: RunInputs, folder: Path) -> dict:
    from nnc_web.engine.detection_training.bundle import load_detector
    from nnc_web.engine.detection_training.data import load_detection_csv
    from nnc_web.engine.detection_training.evaluation import evaluate_detector
    from nnc_web.engine.training.trainer import resolve_device

    device = resolve_device("auto")
    model, manifest = load_detector(folder, str(device))
    return evaluate_detector(ctx.workdir, model, load_detection_csv(run_row.valid_csv), manifest["class_names"],
                             manifest["input_size"], manifest["threshold"], device, ctx,
                             batch_size=run_row.config.get("batch_size", 16))


EVALUATORS[CENTERNET_DETECTOR] = evaluate_again  # the Evaluate button re-runs it from the bundle

PLUGIN = register(Plugin(
    id="object_detection",
    curves=("train_loss", "heat_loss", "size_loss", "offset_loss", "valid_map50", "valid_map"),
    kind="training",
    title="Object Detection (CenterNet, offline)",
    description="Trains an anchor-free detector on any detection dataset (COCO import, YOLO v2 or CenterNet "
                "datasets): per class a heat map of object centres, plus the box size and the centre offset, "
                "from a small feature pyramid on the ImageNet-pretrained EfficientNet-Lite0 (stride 4). Boxes "
                "are the heat map's local maxima (3x3 max-pool, no NMS needed); flip, scale and translate "
                "augmentations move the boxes with the pixels. Validation mAP@0.5 picks the best epoch. "
                "Objects as Points (Zhou, Wang and Krahenbuhl, 2019).",
    params=(
        Param("input_size", "int", 256, min=64, max=1024, help="images are resized to this square size "
              "(a multiple of 32)"),
        Param("threshold", "float", 0.5, min=0.0, max=1.0, help="score from which a box counts as detected "
              "(output and endpoint; mAP uses every score)"),
        Param("class_names", "text", None, help="comma-separated class names (optional: else the training dataset's own, else 0, 1, ...)"),
    ),
    runner=run,
    completer=complete,
    cross_check=lambda params: {} if params["input_size"] % 32 == 0 else {"input_size": "must be a multiple of 32"},
    weights=lambda params: DENSE_BACKBONE,
    config_fields=("max_epoch", "batch_size", "optimizer", "learning_rate", "schedule", "augmentation", "save_best",
                   "seed", "device", "devices", "nodes"),
))
