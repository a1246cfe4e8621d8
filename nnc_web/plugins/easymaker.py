"""Pre-processing: EasyMaker's dataset layouts imported as NNC datasets."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.classification_dataset import (
    OutputSpec,
    build_classification_datasets,
    find_class_root,
    is_visible,
)
from nnc_web.engine.coco import load_coco, read_coco_split, used_categories
from nnc_web.engine.detection_dataset import DetectionParams, convert_detection_items
from nnc_web.engine.imaging import IMAGE_SUFFIXES
from nnc_web.engine.reporting import UserError, log_list
from nnc_web.engine.segmentation import convert_segmentation, load_id2label, read_pairs
from nnc_web.plugins.common import SOURCE_HELP, register_datasets, shaping_of, shaping_params
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.sources import prepare_source

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": ("train", "training"), "validation": ("validation", "valid", "val"),
                 "test": ("test", "testing")}


def find_splits(source: Path) -> dict[str, Path]:
    """`train/`, `validation/` (or valid/val) and `test/` folders, possibly inside one wrapping folder."""
    for root in (source, find_class_root(source), *[p for p in source.iterdir() if p.is_dir() and is_visible(p)]):
        found = {}
        for split, aliases in SPLIT_ALIASES.items():
            folder = next((root / a for a in aliases if (root / a).is_dir()), None)
            if folder is not None:
                found[split] = folder
        if "train" in found:
            return found
    raise UserError("no train/ folder found: the archive must hold train/, validation/ and test/ folders, "
                    "each with one folder of images per class")


def shared_classes(splits: dict[str, Path]) -> list[str]:
    """Every class folder that holds an image in any split, sorted: one label index for all splits."""
    names = set()
    for folder in splits.values():
        for entry in folder.iterdir():
            if entry.is_dir() and is_visible(entry) and any(
                    f.suffix.lower() in IMAGE_SUFFIXES for f in entry.iterdir() if f.is_file()):
                names.add(entry.name)
    return sorted(names)


def run_classification(ctx, params: dict) -> list:
    source = prepare_source(ctx, Path(params["source"]))
    splits = find_splits(source)
    classes = shared_classes(splits)
    ctx.log(f"splits: {', '.join(splits)}; classes: {', '.join(classes)}")
    built = []
    for split, folder in splits.items():
        ctx.log(f"--- {split}")
        name = f"{params['prefix']}{split}"
        built += build_classification_datasets(folder, ctx.path(f"build/{split}"), shaping_of(params),
                                               [OutputSpec(name, 100)], params["shuffle"], params["seed"], ctx,
                                               classes=classes)
    return built


COCO_FILE = "_annotations.coco.json"


def run_coco(ctx, params: dict) -> list:
    source = prepare_source(ctx, Path(params["source"]))
    splits = {name: folder for name, folder in find_splits(source).items() if (folder / COCO_FILE).is_file()}
    if not splits:
        raise UserError(f"no {COCO_FILE} found in train/, validation/ or test/")
    documents = {name: load_coco(folder / COCO_FILE) for name, folder in splits.items()}
    categories = used_categories(list(documents.values()))
    names = [name for _, name in categories]
    index = {cid: i for i, (cid, _) in enumerate(categories)}
    ctx.log(f"splits: {', '.join(splits)}; classes: {', '.join(names) or '-'}")
    detection = DetectionParams(shaping_of(params), num_class=max(1, len(names)), grid_size=1, kind="boxes")
    built = []
    for split, folder in splits.items():
        ctx.log(f"--- {split}")
        coco = read_coco_split(documents[split], folder, index, f"{split}/{COCO_FILE}")
        boxes = sum(len(b) for b in coco.labels)
        ctx.log(f"{len(coco.images)} images, {boxes} boxes kept, {coco.dropped_annotations} annotations dropped")
        log_list(ctx, "", coco.problems)
        if not coco.images:
            ctx.log(f"no usable image in {split}: no dataset for it")
            continue
        built += convert_detection_items(coco.images, coco.labels, ctx.path(f"build/{split}"), detection,
                                         [OutputSpec(f"{params['prefix']}{split}", 100)], params["shuffle"],
                                         params["seed"], names, ctx)
    return built


def _listing(split: str, folder: Path) -> Path | None:
    """`<split>.json`, else the one JSON list in the folder (EasyMaker's test/ holds a train.json)."""
    named = folder / f"{folder.name}.json"
    if named.is_file():
        return named
    candidates = sorted(folder.glob("*.json"))
    return candidates[0] if len(candidates) == 1 else None


def run_segmentation(ctx, params: dict) -> list:
    source = prepare_source(ctx, Path(params["source"]))
    splits = find_splits(source)
    root = next(iter(splits.values())).parent
    label_map = next((root / "resources" / n for n in ("id2label.json", "id2lable.json")
                      if (root / "resources" / n).is_file()), None)
    if label_map is None:
        raise UserError("resources/id2label.json is missing: it maps each class id to its name")
    id2label = load_id2label(label_map)
    ctx.log(f"classes: {', '.join(f'{k}={v}' for k, v in sorted(id2label.items()))}")
    built = []
    for split, folder in splits.items():
        listing = _listing(split, folder)
        if listing is None:
            ctx.log(f"{split}: no {split}.json listing the image/seg_map pairs; no dataset for it")
            continue
        ctx.log(f"--- {split}")
        pairs, problems = read_pairs(listing, folder, f"{split}/{listing.name}")
        log_list(ctx, "", problems)
        if pairs:
            built += convert_segmentation(pairs, ctx.path(f"build/{split}"), shaping_of(params), id2label,
                                          OutputSpec(f"{params['prefix']}{split}", 100), params["shuffle"],
                                          params["seed"], ctx)
    if not built:
        raise UserError("no split had a usable image/seg_map pair")
    return built


def _prefix_errors(params: dict) -> dict[str, str]:
    from nnc_web.plugins.registry import NAME_PATTERN

    prefix = params.get("prefix") or ""
    params["prefix"] = prefix
    if prefix and not NAME_PATTERN.match(prefix + "x"):
        return {"prefix": "use letters, digits, '.', '_' or '-'"}
    return {}


def _layout_plugin(plugin_id: str, title: str, description: str, source_help: str, shaping: tuple,
                   runner) -> Plugin:
    """An EasyMaker layout import: one upload, one dataset per split, names with an optional prefix."""
    return register(Plugin(
        id=plugin_id, kind="preprocess", title=title, description=description,
        params=(
            Param("source", "file", required=True, label="Archive", help=source_help),
            *shaping,
            Param("shuffle", "bool", True, label="Shuffle", help="shuffle the rows of each dataset"),
            Param("seed", "int", 0, min=0, max=2**31 - 1, label="Random seed", help="shuffle seed"),
            Param("prefix", "text", "", label="Dataset name prefix",
                  help="prefix for the dataset names (e.g. 'flowers-' gives flowers-train)"),
        ),
        runner=runner, completer=register_datasets, cross_check=_prefix_errors,
    ))


CLASSIFICATION_PLUGIN = _layout_plugin(
    "easymaker_classification", "EasyMaker image classification folders (train/validation/test)",
    "Imports EasyMaker's classification layout - train/, validation/ and test/ folders, each with one folder "
    "of images per class - as up to three NNC datasets that share one label index. Images are shaped as in "
    "the Image Classification plugin.",
    f"{SOURCE_HELP} with train/, validation/, test/", shaping_params(width=224, height=224), run_classification)

COCO_PLUGIN = _layout_plugin(
    "coco_detection", "COCO object detection (EasyMaker layout)",
    "Imports EasyMaker's detection layout - train/, valid/ and test/ folders, each with its images and a "
    "_annotations.coco.json (bbox = [x, y, width, height] in pixels) - as up to three datasets of images and "
    "their boxes (x:image, y:boxes as 'class cx cy w h' text, normalised), shaped as chosen; the boxes follow "
    "trimming and padding.",
    f"{SOURCE_HELP} with train/, valid/, test/ and a {COCO_FILE} in each",
    shaping_params(width=512, height=512, mode="padding"), run_coco)

SEGMENTATION_PLUGIN = _layout_plugin(
    "easymaker_segmentation", "Semantic segmentation (EasyMaker layout)",
    "Imports EasyMaker's segmentation layout - train/, validation/, test/ with images/, annotations/ (one "
    "class id per pixel) and a <split>.json of {image, seg_map} pairs, plus resources/id2label.json - as "
    "datasets of images and masks (x:image, y:label). Masks are shaped with the image (nearest neighbour); "
    "padding and unknown ids become 255 (ignore).",
    f"{SOURCE_HELP} in EasyMaker's segmentation layout", shaping_params(width=512, height=512, mode="resize"),
    run_segmentation)
