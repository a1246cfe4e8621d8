"""Shaping modes (exact sizes, where cropping/padding happens), channels and image checks."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from nnc_web.engine.imaging import (
    ImageRejected,
    ShapeBox,
    convert_image,
    load_shaped,
    open_checked,
    shape_box,
    shape_image,
    to_channels,
)
from tests.sample_data import photo


def striped(width: int, height: int, split: int, axis: str) -> Image.Image:
    """Red outer bands of `split` pixels and a green centre, along columns ('x') or rows ('y')."""
    array = np.zeros((height, width, 3), np.uint8)
    array[..., 0] = 255
    if axis == "x":
        array[:, split:width - split] = (0, 255, 0)
    else:
        array[split:height - split, :] = (0, 255, 0)
    return Image.fromarray(array)


def test_trimming_box_crops_the_long_side_symmetrically():
    assert shape_box(100, 50, 20, 20, "trimming") == ShapeBox(25, 0, 75, 50)
    assert shape_box(50, 100, 20, 20, "trimming") == ShapeBox(0, 25, 50, 75)
    assert shape_box(101, 50, 20, 20, "trimming") == ShapeBox(25, 0, 75, 50)  # (101-50)//2 left
    assert shape_box(640, 480, 224, 224, "trimming") == ShapeBox(80, 0, 560, 480)


def test_padding_box_letterboxes_with_the_remainder_at_the_end():
    assert shape_box(100, 50, 20, 20, "padding") == ShapeBox(0, -25, 100, 75)
    assert shape_box(50, 100, 20, 20, "padding") == ShapeBox(-25, 0, 75, 100)
    box = shape_box(100, 51, 20, 20, "padding")  # 49 rows of padding: 24 on top, 25 below
    assert (box.top, box.bottom - 51) == (-24, 25)


def test_equal_aspect_is_a_plain_resize_in_every_mode():
    for mode in ("trimming", "padding", "resize"):
        assert shape_box(640, 480, 320, 240, mode) == ShapeBox(0, 0, 640, 480)


def test_trimming_keeps_only_the_centre():
    result = np.asarray(shape_image(striped(100, 50, 25, "x"), 20, 20, "trimming"))
    assert result.shape == (20, 20, 3)
    assert (result[..., 1] >= 250).all() and (result[..., 0] <= 5).all()


def test_padding_adds_black_bars_above_and_below():
    white = Image.new("RGB", (100, 50), (255, 255, 255))
    result = np.asarray(shape_image(white, 20, 20, "padding"))
    assert result.shape == (20, 20, 3)
    assert (result[:4] == 0).all() and (result[16:] == 0).all()
    assert (result[6:14] == 255).all()


def test_padding_adds_black_bars_left_and_right():
    white = Image.new("RGB", (50, 100), (255, 255, 255))
    result = np.asarray(shape_image(white, 20, 20, "padding"))
    assert (result[:, :4] == 0).all() and (result[:, 16:] == 0).all()
    assert (result[:, 6:14] == 255).all()


def test_resize_keeps_everything_and_ignores_aspect():
    result = np.asarray(shape_image(striped(100, 50, 25, "x"), 20, 20, "resize"))
    assert result[:, :4, 0].min() >= 250 and result[:, 16:, 0].min() >= 250
    assert result[:, 8:12, 1].min() >= 250


@pytest.mark.parametrize("mode", ["trimming", "padding", "resize"])
def test_output_size_is_always_exact(mode):
    for (w, h), (tw, th) in itertools.product([(1, 1), (7, 3), (3, 7), (640, 480), (33, 97)],
                                              [(1, 1), (28, 28), (224, 224), (64, 32), (31, 17)]):
        image = Image.new("RGB", (w, h), (9, 9, 9))
        assert shape_image(image, tw, th, mode).size == (tw, th)


def test_same_size_is_untouched():
    image = photo("chelsea").resize((64, 48))
    assert shape_image(image, 64, 48, "trimming") is image


def test_rgb_to_gray_uses_itu_601_luma():
    image = Image.fromarray(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8))
    gray = np.asarray(to_channels(image, 1))
    assert gray.tolist() == [[76, 150, 29]]


def test_gray_to_rgb_copies_the_plane():
    gray = Image.fromarray(np.array([[10, 200]], np.uint8), "L")
    assert np.asarray(to_channels(gray, 3)).tolist() == [[[10, 10, 10], [200, 200, 200]]]


def test_rgba_is_flattened_onto_black_and_16_bit_is_scaled():
    rgba = Image.fromarray(np.array([[[255, 255, 255, 0], [255, 255, 255, 255]]], np.uint8), "RGBA")
    assert np.asarray(to_channels(rgba, 3)).tolist() == [[[0, 0, 0], [255, 255, 255]]]
    deep = Image.fromarray(np.array([[0, 65535]], np.uint16))
    assert np.asarray(to_channels(deep, 1)).tolist() == [[0, 255]]


def test_jpeg_draft_still_gives_the_exact_target(tmp_path):
    path = tmp_path / "cat.jpg"
    photo("chelsea").resize((640, 480)).save(path, "JPEG")
    result = load_shaped(path, 224, 224, "trimming", 3)
    shaped = result.image
    assert shaped.size == (224, 224) and result.source_size == (640, 480)
    assert result.fractions == (80 / 640, 0.0, 560 / 640, 1.0)  # the same crop at the drafted scale
    reference = shape_image(Image.open(path).convert("RGB"), 224, 224, "trimming")
    difference = np.abs(np.asarray(shaped, float) - np.asarray(reference, float)).mean()
    assert difference < 6  # DCT shrink-on-load looks the same as a full decode


def test_convert_image_writes_a_png_of_the_right_shape(tmp_path):
    source = tmp_path / "in.jpg"
    photo("coffee").save(source, "JPEG")
    convert_image(source, tmp_path / "out" / "a.png", 32, 24, "padding", 1)
    with Image.open(tmp_path / "out" / "a.png") as out:
        assert (out.format, out.mode, out.size) == ("PNG", "L", (32, 24))


def test_non_images_bombs_and_odd_formats_are_rejected(tmp_path):
    text = tmp_path / "a.png"
    text.write_bytes(b"this is not a picture")
    with pytest.raises(ImageRejected, match="not a readable image"):
        open_checked(text)
    big = tmp_path / "big.png"
    Image.new("L", (2000, 2000)).save(big)
    with pytest.raises(ImageRejected, match="pixel limit"):
        open_checked(big, max_pixels=1_000_000)
    ppm = tmp_path / "a.ppm"
    Image.new("RGB", (4, 4)).save(ppm)
    with pytest.raises(ImageRejected, match="not allowed"):
        open_checked(ppm)


def test_pruning_thumbnails_removes_only_those_whose_source_is_gone(tmp_path):
    from nnc_web.engine.imaging import cached_thumbnail, prune_thumbnails

    root = tmp_path / "users" / "7"
    kept, gone = root / "runs" / "1" / "a.png", root / "runs" / "2" / "b.png"
    for path in (kept, gone):
        path.parent.mkdir(parents=True)
        Image.new("RGB", (40, 40), "red").save(path)
    outside = tmp_path / "shared" / "c.png"  # a source outside the user's folder is keyed by its full path
    outside.parent.mkdir()
    Image.new("RGB", (40, 40)).save(outside)
    thumbs = [cached_thumbnail(p, root / ".thumbs" / f"{k}.jpg", 16)
              for p, k in ((kept, "runs/1/a.png"), (gone, "runs/2/b.png"),
                           (outside, outside.as_posix().lstrip("/")))]
    assert all(t.exists() for t in thumbs)
    gone.unlink()
    gone.parent.rmdir()
    assert prune_thumbnails(root) == 1
    assert [t.exists() for t in thumbs] == [True, False, True]
    assert not (root / ".thumbs" / "runs" / "2").exists()  # emptied folders go too
    assert prune_thumbnails(root) == 0 and prune_thumbnails(tmp_path / "nobody") == 0
