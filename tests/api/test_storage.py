"""Storage housekeeping that the launcher runs now and then."""
from __future__ import annotations

from PIL import Image

from nnc_web import storage
from nnc_web.engine.imaging import cached_thumbnail


def test_thumbnail_caches_of_every_user_are_pruned(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    thumbs = []
    for user in (1, 2):
        source = storage.user_dir(user) / "runs" / "1" / "a.png"
        source.parent.mkdir(parents=True)
        Image.new("RGB", (20, 20)).save(source)
        thumbs.append(cached_thumbnail(source, storage.user_dir(user) / ".thumbs" / "runs/1/a.png.jpg", 8))
        source.unlink()
    (tmp_path / "users" / "stray-file").write_text("not a user folder")
    assert storage.prune_thumbnail_caches() == 2 and not any(t.exists() for t in thumbs)
