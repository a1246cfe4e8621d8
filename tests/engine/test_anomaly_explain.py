"""Anomaly bundles through the explanation methods' interface (engine.anomaly.explain): one output, the
image anomaly score the evaluation gives, differentiable, with Grad-CAM hot on the pasted defect."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nnc_web.engine.anomaly.bundle import save_anomaly_bundle
from nnc_web.engine.anomaly.padim import Padim
from nnc_web.engine.anomaly.patchcore import Patchcore
from nnc_web.engine.reporting import ConsoleReporter, UserError
from nnc_web.engine.xai.classifier import load_image_classifier, read_image
from nnc_web.engine.xai.gradcam import grad_cam, upsample
from tests.sample_data import write_texture_set

SIZE = 96  # the smallest input at which the pasted square (a sixth to a quarter of the crop) spans cells


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    return write_texture_set(tmp_path_factory.mktemp("textures"), train=6, good=1, bad=3, size=SIZE)


@pytest.mark.parametrize("method", ["padim", "patchcore"])
def test_the_explained_score_is_the_evaluations_and_grad_cam_is_hot_on_the_defect(method, textures, tmp_path):
    torch.manual_seed(0)
    model = (Padim("efficientnet_lite0", "1/16", input_size=SIZE) if method == "padim"
             else Patchcore("efficientnet_lite0", 0.1, input_size=SIZE))
    model.fit(textures["train"], ConsoleReporter(tmp_path / "work", quiet=True))
    predicted = model.predict(textures["test"]).scores
    save_anomaly_bundle(tmp_path / "bundle", model, {"threshold": 1.0})

    classifier = load_image_classifier(tmp_path / "bundle", torch.device("cpu"), "Grad-CAM")
    assert classifier.num_classes == 1 and classifier.class_label(0) == "0 (anomaly score)"
    assert classifier.layer_names == model.layers and classifier.default_layer == model.layers[-1]
    with pytest.raises(UserError, match="out of range: this model has 1 classes"):
        classifier.check_class(1)
    inputs = torch.cat([classifier.tensor(read_image(path)) for path in textures["test"]])
    with torch.no_grad():
        scores = classifier.model(inputs)
    assert scores.shape == (4, 1)
    np.testing.assert_allclose(scores[:, 0].numpy(), predicted, rtol=1e-4)
    assert predicted[1:].min() > predicted[0]  # the three defective crops score above the normal one

    # Grad-CAM of the score at the default (deepest) layer: at least twice as hot inside the defect
    _, layer = classifier.layer(None)
    cams = upsample(grad_cam(classifier.model, layer, inputs[1:], [0, 0, 0]), SIZE)
    for cam, mask_path in zip(cams, textures["masks"][1:], strict=True):
        mask = np.asarray(Image.open(mask_path)) > 0
        assert cam[mask].mean() >= 2 * cam[~mask].mean(), (cam[mask].mean(), cam[~mask].mean())
