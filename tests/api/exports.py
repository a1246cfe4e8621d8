"""Check a run's TorchScript and ONNX downloads against its bundle: same outputs, by name, for a batch."""
from __future__ import annotations

import io

import numpy as np
import torch

from nnc_web.projects.models import Run


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if hasattr(response, "streaming_content") else response.content


def assert_exports_match_the_bundle(client, run_id: int, load, outputs: tuple[str, ...]) -> None:
    import onnxruntime

    model, manifest = load(Run.objects.get(pk=run_id).folder() / "model")
    size = manifest["input_size"]
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))  # a batch: dynamic axis
    with torch.no_grad():
        expected = model.eval()(images)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    onnx = client.get(f"/api/runs/{run_id}/export/?to=onnx")
    assert onnx.status_code == 200, onnx.content[:300]
    session = onnxruntime.InferenceSession(_body(onnx), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(outputs)
    got = session.run(None, {"image": images.numpy()})
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have, want.numpy(), atol=1e-4, rtol=1e-3)
    script = client.get(f"/api/runs/{run_id}/export/?to=torchscript")
    assert script.status_code == 200
    traced = torch.jit.load(io.BytesIO(_body(script)))
    with torch.no_grad():
        again = traced(images)
    again = [again] if isinstance(again, torch.Tensor) else list(again)
    for want, have in zip(expected, again, strict=True):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4)
