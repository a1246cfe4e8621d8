"""PaDiM and PatchCore on real textures (scikit-image brick with pasted grass), and their parts."""
from __future__ import annotations

import json

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
from nnc_web.engine.anomaly.features import check_rgb, feature_shapes, kept_counts, parse_feature_ratio
from nnc_web.engine.anomaly.padim import Padim
from nnc_web.engine.anomaly.patchcore import Patchcore
from nnc_web.engine.model_store import get_backbone
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
    image_auroc, pixel_auroc = aurocs(make(method), textures, reporter)  # feature_ratio auto
    assert image_auroc >= 0.95 and pixel_auroc >= 0.95, (image_auroc, pixel_auroc)
    random_image, random_pixel = aurocs(make(method, pretrained=False), textures, reporter)
    assert random_pixel <= pixel_auroc - 0.05, (random_pixel, pixel_auroc)
    assert random_image + random_pixel <= image_auroc + pixel_auroc - 0.1
    # auto (PaDiM 100 of 176 channels, PatchCore all 152) scores at least what NNC's 0.25 scored
    quarter_image, quarter_pixel = aurocs(make(method, feature_ratio=0.25), textures, reporter)
    assert image_auroc >= quarter_image and pixel_auroc >= quarter_pixel, (image_auroc, pixel_auroc,
                                                                          quarter_image, quarter_pixel)


@pytest.mark.parametrize(("backbone", "padim", "patchcore"), [
    ("efficientnet_lite0", (100, 176), (152, 152)),
    ("resnet18", (100, 448), (384, 384)),
    ("wide_resnet50_2", (100, 1792), (1024, 1536)),
])
def test_auto_keeps_the_papers_dimensions_for_each_backbone(backbone, padim, patchcore):
    """Counted from the architecture on the meta device: no weights needed."""
    for method, (kept, total) in ((Padim, padim), (Patchcore, patchcore)):
        layers = get_backbone(backbone).feature_layers[method.layer_slice]
        channels = [c for c, _, _ in feature_shapes(backbone, layers, 224)]
        counts = kept_counts(channels, "auto", method.auto_dims)
        assert sum(channels) == total and sum(counts) == kept
        # shared in proportion to the layers' widths (within one channel), never more than a layer has
        assert all(abs(k - kept * c / total) < 1 and 1 <= k <= c for k, c in zip(counts, channels, strict=True))
    assert feature_shapes(backbone, get_backbone(backbone).feature_layers, 224)[0][1:] == (56, 56)


def test_auto_and_ratios_on_a_real_model(reporter, textures):
    model = make("padim", pretrained=False, gaussian="single")
    assert model.dim == 100 and model.feature_ratio == "auto"
    model.fit(textures["train"][:2], reporter)
    assert "PaDiM: 100 of 176 channels (auto: the paper's 100)" in reporter.lines
    assert make("padim", pretrained=False, feature_ratio=0.25).dim == 6 + 10 + 28  # NNC's rule per layer
    assert make("patchcore", pretrained=False).dim == 152
    assert kept_counts((24, 40), "auto", 100) == [24, 40]  # a narrow backbone: everything it has
    assert parse_feature_ratio(" Auto ") == "auto" and parse_feature_ratio("0.5") == 0.5
    for wrong in (0, 1.5, "half", True, None):
        with pytest.raises(UserError, match="auto or a number above 0 and at most 1"):
            parse_feature_ratio(wrong)


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
    # single: one Gaussian each for the interior, the border ring less its corners, and the corners
    assert sizes["dense"] == 16 * sizes["1/16"] and 3 * sizes["1/16"] == 14 * 14 * sizes["single"]
    log = "\n".join(reporter.lines)
    assert "Gaussian(s) of" in log and "statistics 126.7 MB (float32, accumulated in place" in log  # 3136 x 100 x 101


@pytest.mark.parametrize("mode", ["dense", "1/16", "single"])
def test_float32_running_statistics_match_a_float64_computation(mode, textures, reporter):
    model = make("padim", gaussian=mode, feature_ratio=0.1)
    model.fit(textures["train"][:7], reporter, batch_size=3)  # three uneven batches: 3 + 3 + 1
    with torch.no_grad():
        batch = torch.stack([model.transform(Image.open(p).convert("RGB")) for p in textures["train"][:7]])
        embedding = model.embed(batch)
    if mode == "single":  # the interior's, the ring's (less corners) and the corners' vectors, each its own
        assert model.gaussians == 3
        flat = embedding.permute(0, 2, 3, 1).reshape(len(batch), -1, model.dim)
        groups = [flat[:, positions].reshape(-1, model.dim).double() for positions in model.regions()]
    else:
        groups = list(model.group(embedding).double())
    assert model.mean.dtype == model.cov_inv.dtype == torch.float32
    for g, vectors in enumerate(groups):
        mean = vectors.mean(0)
        centred = vectors - mean
        covariance = centred.T @ centred / (len(vectors) - 1) + 0.01 * torch.eye(model.dim)
        inverse = torch.linalg.inv(covariance)
        assert torch.allclose(model.mean[g].double(), mean, rtol=1e-5, atol=1e-5)
        # as close as float32 gets (a direct float32 covariance is 0.7-4e-3 off here: condition numbers ~1e5)
        error = float((model.cov_inv[g].double() - inverse).abs().max() / inverse.abs().max())
        assert error < 2e-3, error
        delta, ours = vectors - mean, vectors - model.mean[g].double()
        truth = ((delta @ inverse) * delta).sum(-1).sqrt()
        distances = ((ours @ model.cov_inv[g].double()) * ours).sum(-1).sqrt()
        assert float(((distances - truth).abs() / truth).max()) < 1e-3  # what the maps are made of


def test_a_dense_fit_needs_the_models_size_not_a_list_of_embeddings(textures, tmp_path):
    """In a fresh process, 100 dims, 3136 Gaussians: the float32 statistics are 126.7 MB and are all a
    fit adds to the backbone's activations; float64 accumulators plus a separate model (the old way)
    were 383 MB, and anomalib keeps 1.25 MB of embeddings per image until it allocates its
    covariances and their inverses. Peak anonymous memory (RssAnon sampled every 2 ms; large blocks
    mmapped, so freed memory leaves the process) during a forward pass of a batch, then during the fit."""
    import os
    import subprocess
    import sys

    script = f"""
import json, threading, time, torch
from pathlib import Path
from nnc_web.engine.anomaly.padim import Padim
from nnc_web.engine.reporting import ConsoleReporter

def anonymous():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon"))

def peak_while(work):
    peak, done = [anonymous()], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anonymous())
            time.sleep(0.002)
    sampler = threading.Thread(target=sample)
    sampler.start()
    work()
    done.set()
    sampler.join()
    return max(peak[0], anonymous())

torch.set_num_threads(1)
paths = [Path(p) for p in {[str(p) for p in textures["train"][:16]]!r}]
model = Padim("efficientnet_lite0", "dense", pretrained=False)
forward = peak_while(lambda: model.group(model.embed(next(model.training_batches(paths, 8))[1])))
fit = peak_while(lambda: model.fit(paths, ConsoleReporter(Path({str(tmp_path)!r}), quiet=True), batch_size=8))
print(json.dumps({{"growth": fit - forward, "plan": model.memory_plan(batch_size=8)}}))
"""
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=environment)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["plan"]["statistics"] == 3136 * 100 * 101 * 4
    assert result["plan"]["statistics"] * 0.9 < result["growth"] < 0.6 * 383e6, result


@pytest.mark.parametrize("method", ["padim", "patchcore"])
def test_scores_are_identical_after_save_and_reload(method, textures, reporter, tmp_path, monkeypatch):
    model = make(method, seed=7, **({"gaussian": "1/16"} if method == "padim" else {}))  # feature_ratio auto
    model.fit(textures["train"][:8], reporter)
    before = model.predict(textures["test"][8:14])
    save_anomaly_bundle(tmp_path / "bundle", model, {"threshold": 1.0})

    def no_new_selection(*args, **kwargs):
        raise AssertionError("the saved channels must be reused, not chosen again")

    monkeypatch.setattr(anomaly_model, "select_channels", no_new_selection)
    loaded, manifest = load_anomaly_bundle(tmp_path / "bundle")
    after = loaded.predict(textures["test"][8:14])
    assert manifest["architecture"] == method and manifest["threshold"] == 1.0 and manifest["feature_ratio"] == "auto"
    assert torch.equal(loaded.channels, model.channels) and loaded.dim == model.dim
    assert np.array_equal(before.scores, after.scores)
    assert all(np.array_equal(a, b) for a, b in zip(before.maps, after.maps, strict=True))


def naive_k_center(points: np.ndarray, size: int, start: int) -> list[int]:
    chosen = [start]
    nearest = np.linalg.norm(points - points[start], axis=1)
    for _ in range(size - 1):
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return chosen


def test_sliced_channels_last_extraction_gives_each_images_own_features(textures):
    # CPU passes run channels-last in slices of CPU_SLICE images: a batch's features must be, in order,
    # what each image gives alone through the plain (contiguous, whole-batch) forward pass
    from nnc_web.engine.anomaly import features

    model = make("patchcore", pretrained=True)
    batch = torch.stack([model.transform(features.load_rgb(p, 10**8)) for p in textures["train"][:7]])
    assert len(batch) > features.CPU_SLICE
    sliced = model.extractor(batch)
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in sliced)
    alone = [model.extractor._layers(image[None].contiguous(), False) for image in batch]
    for layer, output in enumerate(sliced):
        expected = torch.cat([a[layer] for a in alone])
        assert output.shape == expected.shape
        assert torch.allclose(output, expected, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(output[:-1], expected[1:], atol=1e-2)  # order matters: images differ


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


def test_coreset_is_exact_on_narrow_features_and_projected_covers_like_exact():
    # 24 informative directions in 200 dims plus small noise, like patch features. Up to 256 channels the
    # default selection is the exact k-center; a 64-d projection onto the principal axes covers the full
    # space as well as the exact one, where the old default (a random 64-d Gaussian projection) has a
    # 1.08x covering radius here.
    generator = torch.Generator().manual_seed(0)
    points = (torch.randn(4000, 24, generator=generator) @ torch.randn(24, 200, generator=generator) / 24 ** 0.5
              + 0.05 * torch.randn(4000, 200, generator=generator))

    def radius(chosen: torch.Tensor) -> float:
        return float(torch.cdist(points, points[chosen]).min(1).values.max())

    exact = greedy_coreset(points, 200, seed=0, projection_dim=10 ** 9)
    assert torch.equal(greedy_coreset(points, 200, seed=0), exact)
    assert radius(greedy_coreset(points, 200, seed=0, projection_dim=64)) <= 1.02 * radius(exact)


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
    with pytest.raises(UserError, match="choose gaussian 1/16 \\(16x smaller\\) or single"):
        make("padim").fit(textures["train"][:2], reporter)
    assert not any("PaDiM dense:" in line for line in reporter.lines)  # refused before the fit began


def test_the_refusal_names_the_dimensions_that_would_fit(monkeypatch, textures, reporter):
    model = make("padim", pretrained=False)
    budget = sum(model.memory_plan(40).values()) + 1000  # room for 40 of the 100 dimensions
    monkeypatch.setattr(anomaly_model, "physical_memory", lambda: 2 * budget)
    with pytest.raises(UserError, match=r"dense, 100 dimensions\) would need .* keep at most 40 dimensions "
                                        r"\(feature_ratio 0\.22\), or choose gaussian 1/16"):
        model.fit(textures["train"][:2], reporter)
    smaller = make("padim", pretrained=False, feature_ratio=0.22)
    assert smaller.dim <= 40 and sum(smaller.memory_plan().values()) <= budget
    smaller.fit(textures["train"][:2], reporter)  # the advice is enough
    with pytest.raises(UserError, match="choose gaussian single"):
        monkeypatch.setattr(anomaly_model, "physical_memory", lambda: 1 << 16)
        make("padim", pretrained=False, gaussian="1/16").fit(textures["train"][:2], reporter)


def test_single_mode_bundles_from_before_the_border_ring_load_and_score_as_they_did(textures, reporter):
    """`single` now fits the border ring and its corners apart (zero padding makes border features unlike
    the interior's); a one-Gaussian model saved before the ring, and a two-Gaussian one saved before the
    corners, still load and score every position as they did."""
    old = make("padim", gaussian="single", feature_ratio=0.1, border=0)
    old.fit(textures["train"][:4], reporter)
    assert old.gaussians == 1
    ring = make("padim", gaussian="single", feature_ratio=0.1, corners=False)  # before the corners' Gaussian
    ring.channels = old.channels
    ring.fit(textures["train"][:4], reporter)
    assert ring.gaussians == 2
    images = torch.stack([old.transform(Image.open(p).convert("RGB")) for p in textures["test"][:2]])
    for saved, gaussians in ((old, 1), (ring, 2)):
        new = make("padim", gaussian="single", feature_ratio=0.1)
        assert new.border == 4 and new.corners and new.gaussians == 3
        new.channels = saved.channels
        new.load_state(saved.state())
        assert new.gaussians == gaussians and new.border == (4 if gaussians == 2 else 0) and not new.corners
        with torch.no_grad():
            assert torch.equal(saved.score_batch(images)[1], new.score_batch(images)[1])


def test_single_modes_regions_split_the_grid_into_interior_edges_and_corners():
    model = make("padim", pretrained=False, gaussian="single")
    interior, edges, corners = (set(r.tolist()) for r in model.regions())
    assert (model.height, model.width, model.border) == (56, 56, 4)
    assert len(interior) == 48 * 48 and len(corners) == 4 * 4 * 4 and len(edges) == 56 * 56 - 48 * 48 - 64
    assert interior | edges | corners == set(range(56 * 56)) and not (interior & edges or edges & corners)
    assert {0, 3, 3 * 56 + 3, 52, 55, 55 * 56 + 55} <= corners and {4, 51, 4 * 56} <= edges
    assert 4 * 56 + 4 in interior and 3 * 56 + 4 in edges
    ring = make("padim", pretrained=False, gaussian="single", corners=False)
    assert [len(r) for r in ring.regions()] == [48 * 48, 56 * 56 - 48 * 48]
