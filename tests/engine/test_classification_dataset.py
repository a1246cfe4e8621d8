"""Building image-classification datasets from class folders."""
from __future__ import annotations

import csv

import pytest
from PIL import Image

from nnc_web.engine.classification_dataset import (
    OutputSpec,
    ShapingParams,
    build_classification_datasets,
    scan_class_folders,
)
from nnc_web.engine.reporting import ConsoleReporter, JobCancelled, UserError
from tests.sample_data import digit_images


def write_folders(root, grouped, top=None):
    base = root / top if top else root
    for label, images in grouped.items():
        (base / label).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            image.save(base / label / f"img_{i:03d}.png")
    return root


def rows_of(dataset):
    with open(dataset.folder / dataset.csv_name) as handle:
        return list(csv.reader(handle))


def test_classes_are_sorted_folders_and_empty_ones_get_no_index(tmp_path):
    write_folders(tmp_path, digit_images(2, 3))
    (tmp_path / "aaa_empty").mkdir()
    (tmp_path / "0" / "readme.txt").write_text("x")
    scan = scan_class_folders(tmp_path)
    assert scan.classes == ["0", "1", "2"]
    assert [label for _, label in scan.items] == [0, 0, 1, 1, 2, 2]
    assert any("readme.txt: not an image file" in s for s in scan.skipped)


def test_a_single_wrapping_folder_is_tolerated(tmp_path):
    write_folders(tmp_path, digit_images(2, 2), top="my_digits")
    assert scan_class_folders(tmp_path).classes == ["0", "1"]


def test_no_images_is_a_clear_error(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "a.txt").write_text("x")
    with pytest.raises(UserError, match="no images found"):
        scan_class_folders(tmp_path)


def test_build_writes_nnc_csv_images_and_split(tmp_path):
    source = write_folders(tmp_path / "src", digit_images(10, 3, size=20))
    (source / "1" / "broken.png").write_bytes(b"not an image")
    reporter = ConsoleReporter(tmp_path / "work", quiet=True)
    built = build_classification_datasets(
        source, tmp_path / "work", ShapingParams(16, 12, "padding", 3),
        [OutputSpec("train", 70), OutputSpec("valid", 30)], shuffle=True, seed=3, reporter=reporter)
    train, valid = built
    assert (train.rows, valid.rows) == (21, 9)
    assert rows_of(train)[0] == ["x:image", "y:label;0;1;2"]
    assert [c.shape for c in train.columns] == ["3,12,16", "1"]
    paths = {r[0] for r in rows_of(train)[1:]} | {r[0] for r in rows_of(valid)[1:]}
    assert len(paths) == 30  # every kept image exactly once
    for path, label in rows_of(valid)[1:]:
        assert path.startswith(f"./{label}/")
        with Image.open(valid.folder / path) as image:
            assert (image.size, image.mode) == ((16, 12), "RGB")
    assert any("broken.png" in line and "skipped" in line for line in reporter.lines)
    assert "converted 30 of 31 images (1 skipped)" in reporter.lines
    assert reporter.last_progress == (31, 31)


def test_same_seed_same_split(tmp_path):
    source = write_folders(tmp_path / "src", digit_images(6, 2, size=12))

    def split(seed, name):
        reporter = ConsoleReporter(tmp_path / name, quiet=True)
        built = build_classification_datasets(source, tmp_path / name, ShapingParams(8, 8, "resize", 1),
                                              [OutputSpec("a", 50), OutputSpec("b", 50)], True, seed, reporter)
        return [r[0] for r in rows_of(built[0])[1:]]

    assert split(5, "w1") == split(5, "w2")
    assert split(5, "w1") != split(6, "w3")


def test_cancel_stops_the_conversion(tmp_path):
    source = write_folders(tmp_path / "src", digit_images(30, 2, size=12))
    reporter = ConsoleReporter(tmp_path / "work", quiet=True)
    reporter.stop_requested = True
    with pytest.raises(JobCancelled):
        build_classification_datasets(source, tmp_path / "work", ShapingParams(8, 8), [OutputSpec("a", 100)],
                                      False, 0, reporter)
