"""YOLO v2 and CenterNet targets: golden values computed by hand, and boxes surviving shaping."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nnc_web.engine.classification_dataset import ShapingParams
from nnc_web.engine.dataset_outputs import OutputSpec
from nnc_web.engine.detection import (
    Box,
    centernet_targets,
    decode_yolo,
    gaussian_radius,
    iou,
    kmeans_anchors,
    read_yolo_labels,
    warp_box,
    yolo_targets,
)
from nnc_web.engine.detection_dataset import DetectionParams, build_detection_datasets
from nnc_web.engine.reporting import ConsoleReporter, UserError


def test_yolo_golden_cell_anchor_and_log_sizes():
    anchors = np.array([[0.1, 0.1], [0.5, 0.25]])  # small square, wide box
    box = Box(2, cx=0.40, cy=0.70, w=0.5, h=0.25)  # grid 4x4: centre cell x=int(1.6)=1, y=int(2.8)=2
    label, region = yolo_targets([box], anchors, grid_w=4, grid_h=4)
    assert label.shape == (2, 4, 4) and region.shape == (2, 4, 4, 4)
    assert label[1, 2, 1] == 2 and (label == -1).sum() == 2 * 16 - 1  # anchor 1: IoU 1 with the box
    tx, ty, tw, th = region[1, 2, 1]
    assert tx == pytest.approx(0.6) and ty == pytest.approx(0.8)
    assert tw == pytest.approx(math.log(2.0)) and th == pytest.approx(math.log(1.0))  # ln(size in cells)
    assert np.count_nonzero(region) == 3  # th = ln(1) = 0


def test_yolo_box_on_the_far_edge_stays_in_the_grid_and_later_boxes_win():
    anchors = np.array([[0.2, 0.2]])
    label, _ = yolo_targets([Box(0, 1.0, 1.0, 0.2, 0.2)], anchors, 4, 4)
    assert label[0, 3, 3] == 0
    label, _ = yolo_targets([Box(0, 0.1, 0.1, 0.2, 0.2), Box(3, 0.12, 0.12, 0.2, 0.2)], anchors, 4, 4)
    assert label[0, 0, 0] == 3


def test_decode_gives_the_boxes_back():
    anchors = np.array([[0.1, 0.1], [0.3, 0.6]])
    boxes = [Box(1, 0.3, 0.4, 0.2, 0.5), Box(0, 0.8, 0.2, 0.1, 0.1)]
    decoded = sorted(decode_yolo(*yolo_targets(boxes, anchors, 8, 8)), key=lambda b: b.cx)
    for got, want in zip(decoded, boxes, strict=True):
        assert got.cls == want.cls and iou(got, want) == pytest.approx(1.0)


def test_kmeans_anchors_are_seeded_and_sorted_by_area():
    sizes = np.array([[0.1, 0.1]] * 10 + [[0.5, 0.5]] * 10 + [[0.3, 0.1]] * 10)
    anchors = kmeans_anchors(sizes, 3)
    assert np.allclose(anchors, [[0.1, 0.1], [0.3, 0.1], [0.5, 0.5]])
    assert np.array_equal(anchors, kmeans_anchors(sizes, 3))
    few = kmeans_anchors(np.array([[0.2, 0.2]] * 4 + [[0.4, 0.1]] * 4), 3)  # 2 distinct sizes, 3 anchors
    assert np.allclose(few, [[0.4, 0.1], [0.2, 0.2], [0.2, 0.2]])


def test_centernet_peak_at_the_centre_with_cornernet_radius():
    box = Box(1, cx=0.5, cy=0.5, w=0.5, h=0.5)  # grid 16: centre cell (8, 8), 8x8 cells big
    heat, region = centernet_targets([box], num_class=3, grid_w=16, grid_h=16)
    assert heat.shape == (3, 16, 16) and region.shape == (1, 16, 16, 4)
    assert heat[1, 8, 8] == 1.0 and heat[1].max() == 1.0 and heat[0].max() == heat[2].max() == 0
    radius = int(gaussian_radius(8, 8))
    assert radius == 2  # the smallest of CornerNet's three roots for an 8x8 box at IoU 0.7
    sigma = (2 * radius + 1) / 6
    assert heat[1, 8, 9] == pytest.approx(math.exp(-1 / (2 * sigma ** 2)))
    assert heat[1, 8, 8 + radius + 1] == 0  # nothing outside the kernel
    assert list(region[0, 8, 8]) == pytest.approx([0.0, 0.0, math.log(8), math.log(8)])


def test_label_problems_are_reported_with_line_numbers(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("0 0.5 0.5 0.2 0.2\nbad line\n7 0.5 0.5 0.1 0.1\n1 1.5 0.5 0.1 0.1\n1 0.5 0.5 0 0.1\n"
                    "1.5 0.5 0.5 0.1 0.1\n\n2 0.1 0.9 0.1 0.1 extra\n")
    parsed = read_yolo_labels(path, num_class=3)
    assert parsed.boxes == [Box(0, 0.5, 0.5, 0.2, 0.2)]
    assert [p.split(":")[0] for p in parsed.problems] == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 8"]
    assert "class 7 >= num_class 3" in parsed.problems[1] and "out of range" in parsed.problems[2]


def test_warp_matches_nnc_centernet_formulas():
    box = Box(0, 0.45, 0.6, 0.2, 0.1)
    # trimming a 200x100 source to a square keeps x in [50, 150]: s_w = 2
    trimmed = warp_box(box, (0.25, 0.0, 0.75, 1.0))
    assert (trimmed.cx, trimmed.w, trimmed.cy) == pytest.approx(((0.45 - (1 - 1 / 2) / 2) * 2, 0.4, 0.6))
    clipped = warp_box(Box(0, 0.3, 0.6, 0.2, 0.1), (0.25, 0.0, 0.75, 1.0))  # x in [-0.1, 0.3] -> [0, 0.3]
    assert (clipped.cx, clipped.w) == pytest.approx((0.15, 0.3))
    # padding a 100x200 source to a square adds 50 columns each side: s_w = 0.5
    padded = warp_box(box, (-0.5, 0.0, 1.5, 1.0))
    assert (padded.cx, padded.w, padded.cy) == pytest.approx((0.45 * 0.5 + 0.25, 0.1, 0.6))
    assert warp_box(Box(0, 0.05, 0.5, 0.1, 0.1), (0.25, 0.0, 0.75, 1.0)) is None  # cropped away


def make_source(root, count=6, size=(320, 200)):
    """Images with one filled rectangle each (colour = class) and their YOLO labels."""
    rng = np.random.default_rng(1)
    colours = [(255, 0, 0), (0, 255, 0)]
    truth = {}
    for i in range(count):
        w, h = size
        bw, bh = int(rng.integers(30, 80)), int(rng.integers(30, 80))
        x0, y0 = int(rng.integers(70, w - 70 - bw)), int(rng.integers(10, h - 10 - bh))
        cls = i % 2
        image = Image.new("RGB", size, (0, 0, 0))
        ImageDraw.Draw(image).rectangle([x0, y0, x0 + bw - 1, y0 + bh - 1], fill=colours[cls])
        folder = root / ("sub" if i % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(f"{cls} {(x0 + bw / 2) / w} {(y0 + bh / 2) / h} {bw / w} {bh / h}\n")
        truth[f"img{i}"] = cls
    return truth


def rectangle_in(image_path) -> Box:
    """The coloured rectangle found in an output image, as a normalised box."""
    array = np.asarray(Image.open(image_path).convert("RGB")).max(axis=2) > 127
    ys, xs = np.nonzero(array)
    h, w = array.shape
    return Box(0, (xs.min() + xs.max() + 1) / 2 / w, (ys.min() + ys.max() + 1) / 2 / h,
               (xs.max() - xs.min() + 1) / w, (ys.max() - ys.min() + 1) / h)


@pytest.mark.parametrize("mode", ["trimming", "padding", "resize"])
@pytest.mark.parametrize("kind", ["yolo", "centernet"])
def test_boxes_land_on_the_objects_after_shaping(tmp_path, mode, kind):
    truth = make_source(tmp_path / "src")
    params = DetectionParams(ShapingParams(128, 128, mode, 3), num_class=2, grid_size=16, kind=kind, num_anchor=2)
    reporter = ConsoleReporter(tmp_path / "work", quiet=True)
    (dataset,) = build_detection_datasets(tmp_path / "src", tmp_path / "work", params, [OutputSpec("train", 100)],
                                          shuffle=False, seed=0, class_names=["red", "green"], reporter=reporter)
    lines = (dataset.folder / "train.csv").read_text().splitlines()
    assert lines[0] == "x:image,y:label,r:region,#boxes" and len(lines) == 7
    for line in lines[1:]:
        image, label_csv, region_csv, boxes_txt = (dataset.folder / cell[2:] for cell in line.split(","))
        found = rectangle_in(image)
        stem = image.stem
        if kind == "yolo":
            label = np.loadtxt(label_csv, delimiter=",", dtype=int, ndmin=2).reshape(2, 8, 8)
            region = np.loadtxt(region_csv, delimiter=",", ndmin=2).reshape(2, 8, 8, 4)
            (decoded,) = decode_yolo(label, region)
            assert decoded.cls == truth[stem]
        else:
            heat = np.loadtxt(label_csv, delimiter=",", ndmin=2).reshape(2, 8, 8)
            assert heat[truth[stem]].max() == 1.0 and heat[1 - truth[stem]].max() == 0.0
            cls, *numbers = boxes_txt.read_text().split()
            decoded = Box(int(cls), *map(float, numbers))
        assert iou(decoded, found) >= 0.9, (mode, stem, decoded, found)
    assert any(line.startswith("./data/sub/") for line in lines[1:])  # subfolders are kept


def test_grid_must_divide_the_size():
    with pytest.raises(UserError, match="divisible by grid_size"):
        DetectionParams(ShapingParams(100, 96), num_class=2, grid_size=16)
