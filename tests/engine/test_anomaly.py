"""PaDiM and PatchCore on real textures (scikit-image brick with pasted grass), and their parts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from nnc_web.engine.anomaly import model as anomaly_model
from nnc_web.engine.anomaly.bundle import load_anomaly_bundle, save_anomaly_bundle
from nnc_web.engine.anomaly.coreset import greedy_coreset, nearest_neighbours
from nnc_web.engine.anomaly.data import load_anomaly_csv
from nnc_web.engine.anomaly.evaluation import best_f1_threshold, evaluate_anomaly
from nnc_web.engine.anomaly.features import check_rgb
from nnc_web.engine.anomaly.padim import Padim
from nnc_web.engine.anomaly.patchcore import Patchcore
from nnc_web.engine.reporting import ConsoleReporter, JobCancelled, UserError
from tests.sample_data import write_texture_set


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("textures")
    data = write_texture_set(folder, train=24, good=10, bad=10)
    data["mask_arrays"] = np.stack([np.asarray(Image.open(m)) > 0 for m in data["masks"]])
    return data


@pytest.fixture
def reporter(tmp_path):
    return ConsoleReporter(tmp_path / "work", quiet=True)


def aurocs(model, textures, reporter) -> tuple[float, float]:
    model.fit(textures["train"], reporter)
    prediction = model.predict(textures["test"])
    maps = np.stack(prediction.maps)
    return (roc_auc_score(textures["labels"], prediction.scores),
            roc_auc_score(textures["mask_arrays"].ravel(), maps.ravel()))


def make(method: str, pretrained: bool = True, **kwargs):
    torch.manual_seed(0)  # random-weight runs are reproducible
    if method == "padim":
        return Padim("efficientnet_lite0", kwargs.pop("gaussian", "dense"), pretrained=pretrained, **kwargs)
    return Patchcore("efficientnet_lite0", kwargs.pop("sample_ratio", 0.01), pretrained=pretrained, **kwargs)


@pytest.mark.parametrize("method", ["padim", "patchcore"])
def test_pretrained_lite0_finds_pasted_texture_and_random_weights_do_clearly_worse(method, textures, reporter):
    image_auroc, pixel_auroc = aurocs(make(method), textures, reporter)
    assert image_auroc >= 0.95 and pixel_auroc >= 0.95, (image_auroc, pixel_auroc)
    random_image, random_pixel = aurocs(make(method, pretrained=False), textures, reporter)
    assert random_pixel <= pixel_auroc - 0.05, (random_pixel, pixel_auroc)
    assert random_image + random_pixel <= image_auroc + pixel_auroc - 0.1


def test_gaussian_modes_give_the_model_sizes_they_promise(textures, reporter):
    sizes = {}
    for mode in ("dense", "1/16", "single"):
        model = make("padim", gaussian=mode)
        model.fit(textures["train"][:4], reporter)
        state = model.state()
        d = model.dim
        assert state["cov_inv"].shape == (model.gaussians, d, d) and state["mean"].shape == (model.gaussians, d)
        sizes[mode] = state["cov_inv"].numel() + state["mean"].numel()
        # the inverse covariances are symmetric positive definite
        eigenvalues = torch.linalg.eigvalsh(state["cov_inv"][:3].double())
        assert bool((eigenvalues > 0).all())
    assert make("padim").gaussians == 56 * 56  # lite0 at 224: the stride-4 grid
    assert sizes["dense"] == 16 * sizes["1/16"] and sizes["1/16"] == 14 * 14 * sizes["single"]
    assert "Gaussian(s) of" in "\n".join(reporter.lines) and "MB (float64)" in "\n".join(reporter.lines)


def test_online_float64_statistics_match_a_direct_computation(textures, reporter):
    model = make("padim", gaussian="single", feature_ratio=0.1)
    model.fit(textures["train"][:5], reporter, batch_size=2)  # three uneven batches
    with torch.no_grad():
        batch = torch.stack([model.transform(Image.open(p).convert("RGB")) for p in textures["train"][:5]])
        vectors = model.group(model.embed(batch))[0].double().numpy()
    covariance = np.cov(vectors, rowvar=False) + 0.01 * np.eye(model.dim)
    assert np.allclose(model.mean[0].numpy(), vectors.mean(0), atol=1e-4)
    assert np.allclose(model.cov_inv[0].double().numpy(), np.linalg.inv(covariance), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("method", ["padim", "patchcore"])
def test_scores_are_identical_after_save_and_reload(method, textures, reporter, tmp_path):
    model = make(method, feature_ratio=0.3, seed=7)
    model.fit(textures["train"][:8], reporter)
    before = model.predict(textures["test"][8:14])
    save_anomaly_bundle(tmp_path / "bundle", model, {"threshold": 1.0})
    loaded, manifest = load_anomaly_bundle(tmp_path / "bundle")
    after = loaded.predict(textures["test"][8:14])
    assert manifest["architecture"] == method and manifest["threshold"] == 1.0
    assert torch.equal(loaded.channels, model.channels)
    assert np.array_equal(before.scores, after.scores)
    assert all(np.array_equal(a, b) for a, b in zip(before.maps, after.maps, strict=True))


def naive_k_center(points: np.ndarray, size: int, start: int) -> list[int]:
    chosen = [start]
    nearest = np.linalg.norm(points - points[start], axis=1)
    for _ in range(size - 1):
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return chosen


def test_coreset_is_the_greedy_k_center_selection_and_covers_better_than_random():
    generator = torch.Generator().manual_seed(1)  # 3-d data in 24 dims, like patch features on a manifold
    points = torch.rand(3000, 3, generator=generator) @ torch.randn(3, 24, generator=generator)
    chosen = greedy_coreset(points, 60, seed=3, projection_dim=128)  # 24 dims: no projection
    assert chosen.tolist() == naive_k_center(points.numpy(), 60, int(chosen[0]))
    random_pick = torch.randperm(3000, generator=torch.Generator().manual_seed(0))[:60]
    radius = torch.cdist(points, points[chosen]).min(1).values.max()
    random_radius = torch.cdist(points, points[random_pick]).min(1).values.max()
    assert radius < 0.75 * random_radius
    projected = greedy_coreset(torch.randn(2000, 400), 50, seed=0, projection_dim=64)
    assert len(set(projected.tolist())) == 50


def test_coreset_reports_progress_and_can_be_cancelled(reporter):
    points = torch.randn(5000, 16)
    greedy_coreset(points, 600, reporter=reporter, report_every=100)
    assert reporter.last_progress == (600, 600)
    reporter.stop_requested = True
    with pytest.raises(JobCancelled):
        greedy_coreset(points, 600, reporter=reporter, report_every=100)


def test_chunked_nearest_neighbours_match_cdist(monkeypatch):
    from nnc_web.engine.anomaly import coreset

    monkeypatch.setattr(coreset, "QUERY_CHUNK_ELEMENTS", 700)  # many small chunks
    queries, bank = torch.randn(333, 20), torch.randn(90, 20)
    distances, indices = nearest_neighbours(queries, bank, k=3)
    exact = torch.cdist(queries, bank).topk(3, largest=False)
    assert torch.equal(indices, exact.indices)
    assert torch.allclose(distances, exact.values, atol=1e-4)


def test_patchcore_image_score_is_the_reweighted_worst_patch(textures, reporter):
    model = make("patchcore", sample_ratio=0.05)
    model.fit(textures["train"][:6], reporter)
    with torch.no_grad():
        batch = torch.stack([model.transform(Image.open(p).convert("RGB")) for p in textures["test"][15:17]])
        scores, maps = model.score_batch(batch)
        patches = model.embed(batch).permute(0, 2, 3, 1).reshape(2, -1, model.dim)
        distances = torch.cdist(patches, model.memory_bank[None].expand(2, -1, -1)).min(2).values
    worst = distances.max(1).values
    assert bool((scores <= worst + 1e-4).all()) and bool((scores > 0.3 * worst).all())
    assert maps.shape == (2, 224, 224)
    assert len(model.memory_bank) == int(6 * 28 * 28 * 0.05)


def test_best_f1_threshold_separates_separable_scores():
    labels = np.array([0, 0, 0, 1, 1])
    threshold = best_f1_threshold(labels, np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert 0.3 < threshold <= 0.8


def test_evaluation_writes_maps_heatmaps_csv_and_metrics(textures, reporter, tmp_path):
    folder = textures["test"][0].parent
    lines = ["x:image,y:label,mask:mask"]
    for image, label, mask in zip(textures["test"], textures["labels"], textures["masks"], strict=True):
        lines.append(f"./{image.name},{label},./{mask.name}")
    (folder / "valid.csv").write_text("\n".join(lines) + "\n")
    model = make("padim", gaussian="1/16")
    model.fit(textures["train"][:10], reporter)
    out = tmp_path / "result"
    out.mkdir()
    metrics = evaluate_anomaly(model, load_anomaly_csv(folder / "valid.csv"), out, reporter)
    assert metrics["image_auroc"] >= 0.9 and metrics["pixel_auroc"] >= 0.9
    assert metrics["histogram"]["counts"]["0"] and sum(metrics["histogram"]["counts"]["1"]) == 10
    assert metrics["at_threshold"]["tp"] + metrics["at_threshold"]["fn"] == 10
    assert len(metrics["most_anomalous"]) == 16 and set(metrics["most_anomalous"][:5]) <= set(range(10, 20))
    lines = (out / "output_result.csv").read_text().splitlines()
    assert lines[0] == "x:image,y:label,mask:mask,y',x',heatmap"
    written = [float(line.split(",")[3]) for line in lines[1:]]  # exact: the threshold is one of them
    counts = metrics["at_threshold"]
    assert sum(score >= metrics["threshold"] for score in written) == counts["tp"] + counts["fp"]
    assert np.load(out / "maps" / "000003.npy").shape == (224, 224)
    assert Image.open(out / "heatmaps" / "000003.png").size == (224, 224)
    assert Image.open(out / "most_anomalous.png").size == (640, 640)


def test_unlabelled_validation_still_gets_scores_and_maps(textures, reporter, tmp_path):
    folder = textures["test"][0].parent
    (folder / "unlabelled.csv").write_text("x:image\n" + "\n".join(p.name for p in textures["test"][:4]) + "\n")
    model = make("patchcore")
    model.fit(textures["train"][:4], reporter)
    metrics = evaluate_anomaly(model, load_anomaly_csv(folder / "unlabelled.csv"), tmp_path, reporter)
    assert metrics["image_auroc"] is None and metrics["pixel_auroc"] is None
    assert "95th percentile" in metrics["threshold_method"] and len(list((tmp_path / "maps").iterdir())) == 4


def test_grey_images_are_refused_with_their_names(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("L", (32, 32)).save(grey)
    with pytest.raises(UserError, match=r"3-channel.*grey.png \(1 channel\)"):
        check_rgb([grey], "training", 10**8)


def test_a_model_too_big_for_this_machine_is_refused_before_allocating(monkeypatch, textures, reporter):
    monkeypatch.setattr(anomaly_model, "physical_memory", lambda: 1 << 20)
    with pytest.raises(UserError, match="choose gaussian 1/16 or single"):
        make("padim").fit(textures["train"][:2], reporter)
