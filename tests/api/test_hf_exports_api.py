"""DETR's and SegFormer's exports through the studio's download (`/api/runs/<id>/export/`): tiny
random-initialised bundles (NNC_TINY_HF_CONFIGS=1) saved into a run's folder, downloaded as ONNX and
TorchScript (SegFormer's) by the owner (another user gets 404), run with onnxruntime: the output names and shapes, the
eager model's numbers. Two first downloads at once each write their own temporary file."""
from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import torch

from nnc_web.engine.reporting import ConsoleReporter
from nnc_web.projects import services
from nnc_web.projects.models import Project, Run
from tests.api.exports import _body
from tests.engine.test_detr_segformer import tiny  # noqa: F401 - the autouse fixture: tiny configs, empty caches

pytestmark = pytest.mark.django_db

SMALL = 32  # the smallest input both models take: each export traces a whole forward pass
BOXES = ["red", "green"]
MASKS = ["background", "square", "disc"]


def _run_with_bundle(owner, which: str, tmp_path) -> tuple[Run, torch.nn.Module]:
    """A finished run of `which` as the plugins leave it: its tiny bundle in <run folder>/model."""
    project = Project.objects.create(owner=owner, name=which)
    run = Run.objects.create(project=project, name="run 1",
                             plugin_id="detr_resnet50" if which == "detr" else "segformer_b3")
    reporter = ConsoleReporter(tmp_path / "log", quiet=True)
    folder = run.folder() / "model"
    if which == "detr":
        from nnc_web.engine.detection_training.detr import build_detr, save_detr
        from nnc_web.engine.exports import DetrOutputs

        model = build_detr(BOXES, pretrained=True, reporter=reporter)  # tiny: no weights needed
        save_detr(folder, model, BOXES, SMALL, 0.5, {}, {})
        return run, DetrOutputs(model).eval()
    from nnc_web.engine.exports import SegformerOutputs
    from nnc_web.engine.segmentation_training.segformer import build_segformer, save_segformer

    model = build_segformer(MASKS, pretrained=True, reporter=reporter)
    save_segformer(folder, model, MASKS, SMALL, {}, {})
    return run, SegformerOutputs(model).eval()


@pytest.mark.parametrize("which", ["detr", "segformer"])
def test_detr_and_segformer_exports_download_for_their_owner_only(which, alice, bob, client_for, tmp_path):
    import onnxruntime

    run, eager = _run_with_bundle(alice, which, tmp_path)
    owner, other = client_for(alice), client_for(bob)
    assert owner.get(f"/api/runs/{run.pk}/").json()["exportable"] is True
    for to in ("onnx", "torchscript"):  # before the owner's first download: nothing is made for a stranger
        assert other.get(f"/api/runs/{run.pk}/export/?to={to}").status_code == 404
    assert not list((run.folder() / "model").glob("model.*"))

    response = owner.get(f"/api/runs/{run.pk}/export/?to=onnx")
    assert response.status_code == 200, response.content[:300]
    assert f'filename="run{run.pk}-model.onnx"' in response["Content-Disposition"]
    onnx_bytes = _body(response)
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    images = torch.rand(3, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(0))  # not the trace's batch
    got = session.run(None, {"image": images.numpy()})
    with torch.no_grad():
        want = eager(images)
    want = list(want) if isinstance(want, tuple) else [want]
    if which == "detr":  # 10 queries in the tiny config; classes + "no object"; (cx, cy, w, h) in 0..1
        assert [o.name for o in session.get_outputs()] == ["logits", "pred_boxes"]
        assert [g.shape for g in got] == [(3, 10, len(BOXES) + 1), (3, 10, 4)]
        assert 0 <= got[1].min() and got[1].max() <= 1
    else:  # per-pixel logits at the input's size
        assert [o.name for o in session.get_outputs()] == ["logits"]
        assert [g.shape for g in got] == [(3, len(MASKS), SMALL, SMALL)]
    for have, expected in zip(got, want, strict=True):
        np.testing.assert_allclose(have, expected.numpy(), atol=1e-4, rtol=1e-3)

    made = ["model.onnx"]
    if which == "segformer":  # DETR's trace is the slow one (a ResNet-18); the engine tests check it
        script = owner.get(f"/api/runs/{run.pk}/export/?to=torchscript")
        assert script.status_code == 200
        with torch.no_grad():
            again = torch.jit.load(io.BytesIO(_body(script)))(images)
        torch.testing.assert_close(again, want[0], atol=1e-4, rtol=1e-3)
        made.append("model.torchscript.pt")
    for to in ("onnx", "torchscript"):  # made now, still not the stranger's
        assert other.get(f"/api/runs/{run.pk}/export/?to={to}").status_code == 404
    assert sorted(p.name for p in (run.folder() / "model").iterdir() if p.name.startswith("model.")) == made
    kept = (run.folder() / "model" / "model.onnx").stat().st_ino
    assert _body(owner.get(f"/api/runs/{run.pk}/export/?to=onnx")) == onnx_bytes
    assert (run.folder() / "model" / "model.onnx").stat().st_ino == kept  # made once, not replaced again


def test_two_first_downloads_at_once_each_write_their_own_file(alice, monkeypatch):
    """Both requests are inside the export together (a barrier holds each between its two halves): with one
    shared temporary name the second truncated the first's file and one rename found nothing."""
    from nnc_web.engine import exports

    run = Run.objects.select_related("project").get(pk=Run.objects.create(
        project=Project.objects.create(owner=alice, name="p"), name="r", plugin_id="segformer_b3").pk)
    folder = run.folder() / "model"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"architecture": "segformer_segmenter"}))
    both_inside = threading.Barrier(2, timeout=10)
    written = []

    def slow_export(bundle, export_format, path):
        with open(path, "wb") as handle:
            handle.write(b"a" * 1000)
            handle.flush()
            both_inside.wait()
            handle.write(b"b" * 1000)
        written.append(path)
        return path

    monkeypatch.setattr(exports, "export_bundle", slow_export)
    answers, errors = [], []

    def download() -> None:
        try:
            answers.append(services.export_run(run, "onnx"))
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=download) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors, errors
    assert answers == [folder / "model.onnx"] * 2 and len(set(written)) == 2  # two temporary names
    assert (folder / "model.onnx").read_bytes() == b"a" * 1000 + b"b" * 1000  # whole, not interleaved
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.onnx"]
