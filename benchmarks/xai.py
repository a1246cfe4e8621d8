"""Image explanations on EfficientNet-Lite0 at 224 px (ImageNet backbone, a seeded 2-class head), same run:

- LIME image at 1,000 samples, 10 segments: the perturbed images through the model in the plugin's
  batches (8 on a CPU, 64 on a GPU) vs one per pass on the model as loaded (NNC's loop), same code and
  seed (the weights must match). Target >= 3x.
- Grad-CAM batch: the plugin's engine end to end (read the CSV, decode the images, maps, overlay PNGs,
  float16 .npy, the output CSV) in images/s vs a bare captum loop (the same PNGs decoded and resized,
  LayerGradCam in the same batches of 16, the maps upsampled to the input size, no files) on the model
  as PyTorch loads it; target >= 0.9. Also against the bare loop on our channels-last model (the
  explanation loader's CPU layout), which isolates what the plugin adds.
- `--png`: the batch writer's PNG encoder (`pictures.encode_png`) vs OpenCV's `imencode` (level 1, with
  and without its run-length strategy) and Pillow's, on 224 px Grad-CAM-like overlays, noise and a smooth
  gradient: ms per picture and bytes (ours is kept while it is the fastest, its files at most a few %
  larger on photo-like pictures).
- `--pointing`: the pointing game behind the model store's default Grad-CAM layer (a head trained on
  squares vs discs at 224 px, then "at least 2x hotter inside the object's box" per candidate layer).

    .venv/bin/python benchmarks/xai.py [--lime | --gradcam | --png | --pointing]
"""
from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from captum.attr import LayerAttribution, LayerGradCam  # noqa: E402

from nnc_web.engine.analysis.table import CellResolver  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.training.bundle import save_bundle  # noqa: E402
from nnc_web.engine.training.data import load_classification_csv  # noqa: E402
from nnc_web.engine.training.model import TransferClassifier  # noqa: E402
from nnc_web.engine.training.trainer import TrainConfig, Trainer, resolve_device  # noqa: E402
from nnc_web.engine.xai.batch import BatchSpec, explain_table  # noqa: E402
from nnc_web.engine.xai.classifier import load_image_classifier, read_image, to_pixels  # noqa: E402
from nnc_web.engine.xai.gradcam import grad_cam, overlays, upsample  # noqa: E402
from nnc_web.engine.xai.lime_image import default_batch, lime_weights, superpixels  # noqa: E402
from tests.sample_data import photo  # noqa: E402
from tests.xai.shapes import CLASSES, hot_inside, write_shapes  # noqa: E402

SIZE = 224
GRADCAM_IMAGES = 48
CHUNK = 16
LIME_SAMPLES, LIME_ROUNDS = 1000, 3
GRADCAM_ROUNDS = 6


def lite0_classifier(root: Path, device: torch.device):
    torch.manual_seed(0)
    model = TransferClassifier("efficientnet_lite0", 2, pretrained=True)
    save_bundle(root / "model", model, "efficientnet_lite0", list(CLASSES), SIZE, {}, {})
    return load_image_classifier(root / "model", device)


def lime_benchmark(classifier) -> None:
    """Whole 1,000-sample explanations, LIME_ROUNDS of each way interleaved (the order rotating) so that
    all see the same load on a shared machine, at two segment counts of the same photo (SLIC's 10 asked
    gives it 5; 15 asked gives 10). Ours: the plugin's batch for the device (`default_batch`) on the
    loader's model (channels-last on a CPU), each distinct mask through the model once; `batched_every`
    the same without reusing repeated masks; NNC's loop: every sample, one per pass, on the model as
    PyTorch loads it. The weights of ours and NNC's loop are compared (64 samples)."""
    unit = classifier.unit(photo("chelsea"))
    as_loaded = dataclasses.replace(classifier,
                                    model=copy.deepcopy(classifier.model).to(memory_format=torch.contiguous_format))
    ways = {"ours": (classifier, None, True), "batched_every": (classifier, None, False),
            "one_per_pass": (as_loaded, 1, False)}
    print(f"RESULT lime_batch={default_batch(classifier.device)}")
    for asked in (10, 15):
        segments, _ = superpixels(to_pixels(unit), asked)
        same = np.allclose(lime_weights(classifier, unit, segments, 0, 64),
                           lime_weights(as_loaded, unit, segments, 0, 64, batch_size=1, reuse=False), atol=1e-5)
        wall, cpu = dict.fromkeys(ways, 0.0), dict.fromkeys(ways, 0.0)
        names = list(ways)
        for round_ in range(LIME_ROUNDS):
            for name in names[round_ % 3:] + names[:round_ % 3]:
                who, batch, reuse = ways[name]
                start, start_cpu = time.perf_counter(), time.process_time()
                lime_weights(who, unit, segments, 0, LIME_SAMPLES, batch_size=batch, seed=round_, reuse=reuse)
                wall[name] += (time.perf_counter() - start) / LIME_ROUNDS
                cpu[name] += (time.process_time() - start_cpu) / LIME_ROUNDS
        tag = f"lime_{segments.max() + 1}_segments"
        print(f"RESULT {tag}_same_weights={int(same)}")
        for name in ways:
            print(f"RESULT {tag}_{name}_s={wall[name]:.2f}")
            print(f"RESULT {tag}_{name}_cpu_s={cpu[name]:.2f}")
        print(f"RESULT {tag}_speedup={wall['one_per_pass'] / wall['ours']:.2f}")
        print(f"RESULT {tag}_speedup_batching_alone={wall['one_per_pass'] / wall['batched_every']:.2f}")


def gradcam_benchmark(classifier, root: Path) -> None:
    """Both ways decode the same PNGs, resize and normalise them as evaluation does, run LayerGradCam
    on the same weights, device and batches, and end with the maps at the input size; ours also writes
    what the product must (an overlay PNG and a float16 .npy per image, the output CSV), the bare loop
    writes nothing. Two bare loops: on the model as PyTorch loads it (NCHW: what a user's captum script
    runs; the target's baseline) and on ours, which the explanation loader makes channels-last on a CPU
    (the same layout: what our plugin adds). The maps are checked to be the same."""
    csv_path, _ = write_shapes(root / "shapes", GRADCAM_IMAGES, SIZE, seed=0)
    labels = [i % 2 for i in range(GRADCAM_IMAGES)]
    paths = [csv_path.parent / "images" / f"{i}.png" for i in range(GRADCAM_IMAGES)]
    name, layer = classifier.layer(None)
    as_loaded = copy.deepcopy(classifier.model).to(memory_format=torch.contiguous_format)
    models = {"bare": (as_loaded, as_loaded.get_submodule(classifier.layer_prefix + name)),
              "bare_same_layout": (classifier.model, layer)}

    def bare(way: str = "bare", chunk: int = CHUNK) -> tuple[float, list[torch.Tensor]]:
        model, target = models[way]
        start, maps = time.perf_counter(), []
        for i in range(0, GRADCAM_IMAGES, chunk):
            inputs = torch.cat([classifier.tensor(read_image(p)) for p in paths[i:i + chunk]])
            raw = LayerGradCam(model, target).attribute(inputs, target=labels[i:i + chunk], relu_attributions=True)
            maps.append(LayerAttribution.interpolate(raw, (SIZE, SIZE), interpolate_mode="bilinear").detach())
        return time.perf_counter() - start, maps

    def ours(run: int) -> float:
        reporter = ConsoleReporter(root / "log", quiet=True)
        out = root / f"gradcam_{run}.csv"
        start = time.perf_counter()
        explain_table(reporter, csv_path, CellResolver(csv_path.parent, [csv_path.parent]), "x", "y", classifier,
                      out, BatchSpec("gradcam", "gradcam_map", CHUNK),
                      lambda items: overlays(classifier, layer, items, draw_later=True), max_pixels=10**8)
        return time.perf_counter() - start

    bare(), bare("bare_same_layout"), ours(-1)  # warm-up (the allocator, the page cache)
    ways = ("ours", "bare", "bare_same_layout")
    timings, cpu = dict.fromkeys(ways, 0.0), dict.fromkeys(ways, 0.0)
    for round_ in range(GRADCAM_ROUNDS):  # interleaved, the order rotating: the box is shared
        for way in ways[round_ % 3:] + ways[:round_ % 3]:
            start_cpu = time.process_time()  # every thread's (the writer's too): other processes' load aside
            timings[way] += ours(round_) if way == "ours" else bare(way)[0]
            cpu[way] += time.process_time() - start_cpu
    images = GRADCAM_ROUNDS * GRADCAM_IMAGES
    single_s = bare("bare", 1)[0]
    # the same maps: bare captum's, min-max normalised (NNC's step) and upsampled, vs our float16 .npy
    inputs = torch.cat([classifier.tensor(read_image(p)) for p in paths[:CHUNK]])
    expected = upsample(grad_cam(as_loaded, models["bare"][1], inputs, labels[:CHUNK]), SIZE)
    written = np.stack([np.load(root / "gradcam_0" / "0000" / f"{i}.npy") for i in range(CHUNK)])
    print(f"RESULT gradcam_layer={name}")
    print(f"RESULT gradcam_map_max_diff={np.abs(written.astype(np.float32) - expected).max():.4f}")
    print(f"RESULT gradcam_ours_images_per_s={images / timings['ours']:.2f}")
    print(f"RESULT gradcam_bare_captum_images_per_s={images / timings['bare']:.2f}")
    print(f"RESULT gradcam_bare_captum_same_layout_images_per_s={images / timings['bare_same_layout']:.2f}")
    print(f"RESULT gradcam_bare_captum_one_per_pass_images_per_s={GRADCAM_IMAGES / single_s:.2f}")
    print(f"RESULT gradcam_ratio={timings['bare'] / timings['ours']:.2f}")
    print(f"RESULT gradcam_ratio_same_layout={timings['bare_same_layout'] / timings['ours']:.2f}")
    for way in ways:
        print(f"RESULT gradcam_{way}_cpu_ms_per_image={cpu[way] / images * 1000:.1f}")
    print(f"RESULT gradcam_cpu_ratio={cpu['bare'] / cpu['ours']:.2f}")
    print(f"RESULT gradcam_cpu_ratio_same_layout={cpu['bare_same_layout'] / cpu['ours']:.2f}")


def pointing_game(root: Path, device: torch.device) -> None:
    train_csv, _ = write_shapes(root / "train", 300, SIZE, seed=1)
    valid_csv, boxes = write_shapes(root / "valid", 60, SIZE, seed=2)
    train, valid = load_classification_csv(train_csv), load_classification_csv(valid_csv)
    result = Trainer("efficientnet_lite0", train, valid, TrainConfig(max_epoch=30, input_size=SIZE),
                     root / "work", ConsoleReporter(root / "log", quiet=True)).run()
    save_bundle(root / "trained", result.model, "efficientnet_lite0", list(CLASSES), SIZE, {}, {})
    classifier = load_image_classifier(root / "trained", device)
    print(f"RESULT pointing_valid_error={result.history[-1]['valid_error']:.3f}")
    for name in classifier.layer_names:
        hits = []
        for start in range(0, len(valid.images), CHUNK):
            inputs = torch.cat([classifier.tensor(read_image(p)) for p in valid.images[start:start + CHUNK]])
            maps = upsample(grad_cam(classifier.model, classifier.layer(name)[1], inputs,
                                     valid.labels[start:start + CHUNK]), SIZE)
            hits += [hot_inside(m, box) for m, box in zip(maps, boxes[start:start + CHUNK], strict=True)]
        print(f"RESULT pointing_{name}={np.mean(hits):.3f}")


def png_benchmark(repeats: int = 200) -> None:
    import io

    import cv2
    from PIL import Image

    from nnc_web.engine.xai.pictures import encode_png

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    gradient = np.broadcast_to(np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :, None], (SIZE, SIZE, 3)).copy()
    overlay = ((noise.astype(np.uint16) + gradient) // 2).astype(np.uint8)  # a 50/50 overlay on a textured photo

    def opencv(*params: int):
        return lambda a: cv2.imencode(".png", np.ascontiguousarray(a[:, :, ::-1]), list(params))[1].tobytes()

    def pillow(a: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(a).save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    encoders = {"ours": encode_png, "opencv_level1": opencv(cv2.IMWRITE_PNG_COMPRESSION, 1),
                "opencv_level1_rle": opencv(cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
                                            cv2.IMWRITE_PNG_STRATEGY_RLE),
                "pillow_level1": pillow}
    for picture, array in (("overlay", overlay), ("noise", noise), ("gradient", gradient)):
        for name, encode in encoders.items():
            data = encode(array)
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), array), name
            started = time.perf_counter()
            for _ in range(repeats):
                encode(array)
            print(f"RESULT png_{picture}_{name}_ms={(time.perf_counter() - started) / repeats * 1000:.2f}")
            print(f"RESULT png_{picture}_{name}_bytes={len(data)}")


def main() -> None:
    device = resolve_device("auto")
    root = Path(tempfile.mkdtemp(prefix="nnc-xai-bench-"))
    try:
        print(f"EfficientNet-Lite0 at {SIZE} px on {device}, {torch.get_num_threads()} threads, "
              f"load average {os.getloadavg()[0]:.1f}")
        if "--pointing" in sys.argv:
            pointing_game(root, device)
            return
        if "--png" in sys.argv:
            png_benchmark()
            return
        classifier = lite0_classifier(root, device)
        if "--gradcam" not in sys.argv:
            lime_benchmark(classifier)
        if "--lime" not in sys.argv:
            gradcam_benchmark(classifier, root)
        print(f"RESULT load_average={os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
