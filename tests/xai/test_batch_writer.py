"""The batch form's background writer on a tiny Grad-CAM model: every row's PNG and .npy land (whole,
nothing left beside them) when it succeeds; a write that fails ends the job with a message naming the
file, promptly (never a hang, never a silently short output); a cancel stops the writer too."""
from __future__ import annotations

import errno
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nnc_web.engine.analysis.table import CellResolver
from nnc_web.engine.errors import JobCancelled, UserError
from nnc_web.engine.reporting import ConsoleReporter
from nnc_web.engine.xai import batch
from nnc_web.engine.xai.batch import BatchSpec, explain_table, result_cell
from nnc_web.engine.xai.classifier import ImageClassifier
from nnc_web.engine.xai.gradcam import overlays
from nnc_web.engine.xai.pictures import gradcam_overlay

SIZE, ROWS, CHUNK = 16, 10, 3
NORMALIZATION = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


class Recorder(ConsoleReporter):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder, quiet=True)
        self.seen: list[tuple[int, int]] = []

    def progress(self, done: int, total: int) -> None:
        super().progress(done, total)
        self.seen.append((done, total))


@pytest.fixture
def tiny(tmp_path) -> tuple[ImageClassifier, Path]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    classifier = ImageClassifier(net, {"input_size": SIZE, "num_classes": 2, "normalization": NORMALIZATION},
                                 torch.device("cpu"))
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    lines = ["x:image,y:label"]
    for i in range(ROWS):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        lines.append(f"./images/{i}.png,{i % 2}")
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    return classifier, tmp_path


def run(classifier: ImageClassifier, folder: Path, reporter: ConsoleReporter, explain=None) -> int:
    """explain_table on a thread, so that a hang fails the test instead of stalling the suite."""
    layer = classifier.model[2]
    explain = explain or (lambda items: overlays(classifier, layer, items, draw_later=True))
    outcome: dict = {}

    def body() -> None:
        try:
            outcome["done"] = explain_table(reporter, folder / "in.csv", CellResolver(folder, [folder]), "x", "y",
                                            classifier, folder / "gradcam.csv", BatchSpec("gradcam", "gradcam_map",
                                                                                          CHUNK), explain, 10**8)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=body)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "explain_table hung"
    assert not [t for t in threading.enumerate() if t.name == "xai-batch-writer"], "the writer thread outlived the job"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["done"]


def test_every_row_is_written_whole_and_progress_counts_written_rows(tiny):
    classifier, folder = tiny
    reporter = Recorder(folder / "log")
    assert run(classifier, folder, reporter) == ROWS
    lines = (folder / "gradcam.csv").read_text().splitlines()
    assert lines[0] == "gradcam,x:image,y:label,gradcam_map"
    assert [line.split(",")[0] for line in lines[1:]] == [result_cell("gradcam", i) for i in range(ROWS)]
    assert [line.split(",")[-1] for line in lines[1:]] == [f"gradcam/0000/{i}.npy" for i in range(ROWS)]
    files = sorted(p.name for p in (folder / "gradcam" / "0000").iterdir())
    assert files == sorted([f"{i}.png" for i in range(ROWS)] + [f"{i}.npy" for i in range(ROWS)])  # no .partial
    for i in range(ROWS):
        raw = np.load(folder / f"gradcam/0000/{i}.npy")
        assert raw.dtype == np.float16 and raw.shape == (SIZE, SIZE) and raw.min() == 0 and 0.5 < raw.max() <= 1
        pixels = np.asarray(Image.open(folder / f"images/{i}.png"))
        picture = np.asarray(Image.open(folder / f"gradcam/0000/{i}.png")).astype(int)
        expected = gradcam_overlay(pixels, raw.astype(np.float32)).astype(int)
        assert np.abs(picture - expected).max() <= 1  # drawn on the writer thread from the same map
    done = [d for d, _ in reporter.seen]
    assert done == sorted(done) and reporter.seen[-1] == (ROWS, ROWS) and all(t == ROWS for _, t in reporter.seen)


def test_a_failing_write_fails_the_job_naming_the_file(tiny, monkeypatch):
    classifier, folder = tiny
    save_png, calls = batch.save_png, []

    def failing(array, path: Path):
        calls.append(path.name)
        if path.name == "4.png":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return save_png(array, path)

    monkeypatch.setattr(batch, "save_png", failing)
    with pytest.raises(UserError, match=r"^could not write gradcam/0000/4\.png: No space left on device$") as caught:
        run(classifier, folder, ConsoleReporter(folder / "log", quiet=True))
    assert str(folder) not in str(caught.value)  # no server path in the message
    assert not (folder / "gradcam.csv").exists()  # no output CSV that lists pictures which are not there
    assert calls == [f"{i}.png" for i in range(5)]  # what was queued after the failure was dropped
    assert all((folder / f"gradcam/0000/{i}.png").exists() for i in range(4))
    assert not list((folder / "gradcam" / "0000").glob("*.partial"))


def test_an_unwritable_output_folder_and_a_drawing_bug_surface(tiny, monkeypatch):
    classifier, folder = tiny
    (folder / "gradcam").write_text("a file where the picture folder goes")  # a real OS error, not a mock
    with pytest.raises(UserError, match=r"^could not write gradcam/0000/0\.png: Not a directory$"):
        run(classifier, folder, ConsoleReporter(folder / "log", quiet=True))
    (folder / "gradcam").unlink()

    def broken(items):
        return [batch.Explained(lambda: np.zeros((SIZE, SIZE, 5), dtype=np.uint8))] * len(items)  # not a picture

    with pytest.raises(TypeError):  # a bug is not turned into a user message, nor swallowed
        run(classifier, folder, ConsoleReporter(folder / "log", quiet=True), broken)


def test_a_cancel_stops_the_explaining_and_the_writer(tiny):
    classifier, folder = tiny
    reporter = ConsoleReporter(folder / "log", quiet=True)
    layer = classifier.model[2]
    calls = []

    def stop_after_first_chunk(items):
        calls.append(len(items))
        reporter.stop_requested = True
        return overlays(classifier, layer, items, draw_later=True)

    with pytest.raises(JobCancelled):
        run(classifier, folder, reporter, stop_after_first_chunk)
    assert calls == [CHUNK] and not (folder / "gradcam.csv").exists()
