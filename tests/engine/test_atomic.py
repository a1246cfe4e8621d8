"""Files a reader may see are replaced whole: bundles (weights before their manifest), thumbnails."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from nnc_web.engine import atomic
from nnc_web.engine.imaging import cached_thumbnail


def test_a_bundle_whose_weights_fail_to_write_has_no_manifest(tmp_path, monkeypatch):
    def broken(tensors, path):
        open(path, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError):
        atomic.write_bundle(tmp_path / "model", {"w": torch.ones(2)}, {"format": 1})
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == []  # no manifest, no partial weights


def test_a_bundle_is_weights_then_manifest(tmp_path, monkeypatch):
    order = []
    original = atomic.replace_atomically
    monkeypatch.setattr(atomic, "replace_atomically", lambda path, write: (order.append(path.name), original(path, write)))
    atomic.write_bundle(tmp_path / "model", {"w": torch.ones(2)}, {"format": 1})
    assert order == ["weights.safetensors", "manifest.json"]


def test_a_thumbnail_that_fails_midway_leaves_no_cached_file(tmp_path, monkeypatch):
    source = tmp_path / "a.png"
    Image.new("RGB", (300, 200), "red").save(source)
    cache = tmp_path / "thumbs" / "a.png.jpg"
    monkeypatch.setattr(Image.Image, "save", lambda self, path, *a, **k: (open(path, "wb").write(b"x"),
                                                                          (_ for _ in ()).throw(OSError("full"))))
    with pytest.raises(OSError):
        cached_thumbnail(source, cache, 96)
    assert not cache.exists()
    monkeypatch.undo()
    assert Image.open(cached_thumbnail(source, cache, 96)).size == (96, 64)


def test_a_label_mask_thumbnail_is_visible(tmp_path):
    import numpy as np

    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 16:48] = 1  # a 0/1 defect mask: black to the eye as it is
    Image.fromarray(mask).save(tmp_path / "m.png")
    thumb = np.asarray(Image.open(cached_thumbnail(tmp_path / "m.png", tmp_path / "t.jpg", 32)).convert("L"))
    assert thumb[16, 16] > 200 and thumb[2, 2] < 30
