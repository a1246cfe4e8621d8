"""The analysis engine (cross tabulation, parameter stats, t-SNE, tiles, face ITA, scatter, outputs)
on real data (scikit-learn digits, scikit-image photos), checked against independent computations
(pandas, numpy, scikit-learn, scikit-image)."""
from __future__ import annotations

import csv
import json
import math
import struct

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from skimage import data as skdata
from skimage.color import rgb2lab
from sklearn.datasets import load_digits
from sklearn.manifold import trustworthiness

from nnc_web.engine.analysis import ita, outputs, scatter, tiles, tsne
from nnc_web.engine.analysis.crosstab import cross_tabulation, write_cross_tabulation
from nnc_web.engine.analysis.parameter_stats import (
    bundle_weight_files,
    parameter_stats,
    write_parameter_stats,
)
from nnc_web.engine.analysis.table import (
    CellResolver,
    Table,
    find_columns,
    is_image_cell,
    load_image,
    load_table,
    variable_names,
)
from nnc_web.engine.reporting import ConsoleReporter, JobCancelled, UserError


def write_table(path, header, rows) -> Table:
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:  # with a BOM, as Excel writes
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    return load_table(path)


@pytest.fixture
def reporter(tmp_path):
    return ConsoleReporter(tmp_path / "work", quiet=True)


# -- table -----------------------------------------------------------------------------------------

def test_variable_names_and_column_lookup_follow_nnc_header_syntax():
    header = ["x:image", "y:label;cat;dog", "# name", "y'__0", "y'__1", "z__0:Age", "z__1:Sex=M"]
    assert variable_names(header) == ["x", "y", "y'", "z", "y'__0", "y'__1", "z__0", "z__1"]
    assert find_columns(header, "y'") == [3, 4]
    assert find_columns(header, "y'__1") == [4]
    assert find_columns(header, "x:image") == [0]
    assert find_columns(header, "z__1") == [6]  # the dropdown's name for `z__1:Sex=M`
    assert find_columns(["a__0", "a"], "a") == [1]  # the exact cell wins over the variable name
    with pytest.raises(UserError, match=r"no variable 'w' in result.csv; variables: x, y, y', z, y'__0"):
        find_columns(header, "w", "result.csv")
    with pytest.raises(UserError, match="no variable"):
        find_columns(header, "# name")  # comments are not variables


def test_image_cells_are_recognised_by_nnc_extension_rule():
    assert is_image_cell("./a/b.PNG") and is_image_cell("x.jpeg") and is_image_cell("scan.tiff")
    assert is_image_cell("x.bmp") and is_image_cell("/abs/p.gif")
    assert not is_image_cell("0.25") and not is_image_cell("data.npy") and not is_image_cell("m.csv")


def test_load_table_reads_a_bom_and_refuses_short_rows(tmp_path):
    table = write_table(tmp_path / "t.csv", ["x", "y"], [["1", "2"]])
    assert table.header == ["x", "y"] and table.rows == [["1", "2"]] and table.name == "t.csv"
    (tmp_path / "short.csv").write_text("x,y\n1,2\n3\n")
    with pytest.raises(UserError, match="short.csv line 3: 1 cells, the header has 2"):
        load_table(tmp_path / "short.csv")
    with pytest.raises(UserError, match="missing.csv not found"):
        load_table(tmp_path / "missing.csv")


@pytest.fixture
def resolver_tree(tmp_path):
    result, dataset, outside = tmp_path / "run", tmp_path / "dataset", tmp_path / "secret"
    for folder in (result, dataset / "images", outside):
        folder.mkdir(parents=True)
    Image.new("RGB", (2, 2), (10, 20, 30)).save(dataset / "images" / "a.png")
    Image.new("RGB", (2, 2)).save(result / "own.png")
    Image.new("RGB", (2, 2)).save(outside / "s.png")
    (result / "link.png").symlink_to(outside / "s.png")
    return result, dataset, outside, CellResolver(result, [dataset])


def test_resolver_finds_cells_in_the_csv_folder_then_the_roots(resolver_tree):
    result, dataset, _, resolver = resolver_tree
    assert resolver.resolve("./own.png") == (result / "own.png").resolve()
    assert resolver.resolve("./images/a.png") == (dataset / "images" / "a.png").resolve()
    assert resolver.resolve("images\\a.png") == (dataset / "images" / "a.png").resolve()
    absolute = str((dataset / "images" / "a.png").resolve())  # output_result.csv stores these
    assert resolver.resolve(absolute) == (dataset / "images" / "a.png").resolve()
    assert load_image(resolver, "images/a.png").getpixel((0, 0)) == (10, 20, 30)


def test_resolver_refuses_paths_out_of_its_roots_without_naming_server_paths(resolver_tree, tmp_path):
    _, _, outside, resolver = resolver_tree
    cases = {"../secret/s.png": "not a file of this result or dataset",
             str(outside / "s.png"): "not a file of this result or dataset",
             "link.png": "not a file of this result or dataset",  # a symlink pointing out
             "/etc/passwd": "not a file of this result or dataset",
             "images/missing.png": "images/missing.png: file not found"}
    for cell, message in cases.items():
        with pytest.raises(UserError, match=message) as caught:
            resolver.resolve(cell)
        assert str(tmp_path) not in str(caught.value) and "/etc" not in str(caught.value)
    (tmp_path / "run" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="bad.png: not a readable image"):
        load_image(resolver, "bad.png")


# -- cross tabulation ------------------------------------------------------------------------------

@pytest.fixture
def result_table(tmp_path):
    """An output_result.csv: labels 0, 1 and 3 (class 2 has no rows), softmax-like scores over 3 classes
    that mostly favour the label."""
    rng = np.random.default_rng(7)
    labels = rng.choice([0, 1, 3], size=300, p=[0.5, 0.3, 0.2])
    logits = rng.normal(size=(300, 3))
    logits[np.arange(300), np.minimum(labels, 2)] += 1.5
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    header = ["x:image", "y:label;a;b;c;d", "y'__0", "y'__1", "y'__2"]
    rows = [[f"/data/{i}.png", str(label), *(f"{s:.6g}" for s in score)]
            for i, (label, score) in enumerate(zip(labels, scores, strict=True))]
    table = write_table(tmp_path / "output_result.csv", header, rows)
    predicted = np.asarray([[float(c) for c in row[2:]] for row in table.rows]).argmax(axis=1)
    return table, labels, predicted


def body(rows):
    return [row[1:] for row in rows[4:]]


def test_counts_match_pandas_crosstab_with_an_empty_row(result_table):
    table, labels, predicted = result_table
    rows = cross_tabulation(table, "y", "y'")
    expected = pd.crosstab(labels, predicted).reindex(index=range(4), columns=range(3), fill_value=0)
    assert rows[:4] == [["Row variable", "y"], ["Column variable", "y'"], [],
                        ["", "y' = 0", "y' = 1", "y' = 2"]]
    assert [row[0] for row in rows[4:]] == ["y = 0", "y = 1", "y = 2", "y = 3"]
    assert body(rows) == expected.to_numpy().tolist()
    assert body(rows)[2] == [0, 0, 0]


def test_ratio_mode_matches_pandas_and_keeps_integer_zeros_for_empty_rows(result_table):
    table, labels, predicted = result_table
    rows = cross_tabulation(table, "y", "y'", output_in_ratio=True)
    expected = pd.crosstab(labels, predicted, normalize="index").reindex(index=range(4), columns=range(3))
    values = body(rows)
    for index in (0, 1, 3):
        assert values[index] == pytest.approx(expected.loc[index].tolist(), abs=1e-15)
        assert all(type(v) is float for v in values[index]) and sum(values[index]) == pytest.approx(1)
    assert values[2] == [0, 0, 0] and all(type(v) is int for v in values[2])


def test_variable2_eval_counts_correct_and_incorrect(result_table):
    table, labels, predicted = result_table
    rows = cross_tabulation(table, "y", "y", variable2_eval="y'")
    assert rows[1] == ["Column variable", "y = y'"] and rows[3] == ["", "Correct", "Incorrect"]
    wrong = pd.crosstab(labels, labels != predicted).reindex(index=range(4), columns=[False, True],
                                                             fill_value=0)
    assert body(rows) == wrong.to_numpy().tolist()
    assert body(rows)[3] == [0, int((labels == 3).sum())]  # class 3 can never be predicted


def test_cross_tabulation_csv_text_is_nnc_layout_with_crlf(tmp_path):
    # y' is one probability column (a `.` in a cell): binarised at 0.5; y is an integer column.
    table = write_table(tmp_path / "r.csv", ["y", "y'"],
                        [["0", "0.2"], ["0", "0.7"], ["1", "0.9"], ["1", "0.5"], ["1", "0.1"]])
    write_cross_tabulation(tmp_path / "ct.csv", cross_tabulation(table, "y", "y'"))
    assert (tmp_path / "ct.csv").read_bytes() == (
        b"Row variable,y\r\nColumn variable,y'\r\n\r\n,y' = 0,y' = 1\r\ny = 0,1,1\r\ny = 1,1,2\r\n")
    write_cross_tabulation(tmp_path / "ratio.csv", cross_tabulation(table, "y", "y'", output_in_ratio=True))
    assert (tmp_path / "ratio.csv").read_bytes().splitlines()[4:] == [
        b"y = 0,0.5,0.5", b"y = 1,0.3333333333333333,0.6666666666666666"]


def test_cross_tabulation_names_what_is_wrong(tmp_path):
    table = write_table(tmp_path / "r.csv", ["y", "y'"], [["0", "1"], ["x", "0"]])
    with pytest.raises(UserError, match="y: r.csv line 3 has 'x', not an integer"):
        cross_tabulation(table, "y", "y'")
    with pytest.raises(UserError, match="no variable 'q' in r.csv; variables: y, y'"):
        cross_tabulation(table, "q", "y'")


# -- parameter stats -------------------------------------------------------------------------------

def real_state_dict() -> dict[str, torch.Tensor]:
    """A small trained-looking network's weights: conv (4-D), BatchNorm (incl. its int64 scalar
    counter), linear (2-D, 1-D), plus a float16 and an int32 tensor."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.Flatten(),
                              torch.nn.Linear(16, 10))
    net(torch.randn(4, 3, 3, 3))  # one training-mode pass: running stats and the counter move
    state = dict(net.state_dict())
    state["extra.half"] = torch.randn(5, 7).half()
    state["extra.index"] = torch.arange(-3, 9, dtype=torch.int32)
    return state


def header_order(path) -> list[str]:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return [k for k in json.loads(handle.read(length)) if k != "__metadata__"]


def test_parameter_stats_match_numpy_in_float64(tmp_path):
    state = real_state_dict()
    save_file(state, str(tmp_path / "weights.safetensors"))
    stats = parameter_stats(tmp_path / "weights.safetensors")
    assert [s["name"] for s in stats] == header_order(tmp_path / "weights.safetensors")
    assert sorted(s["name"] for s in stats) == sorted(state)
    for row in stats:
        values = state[row["name"]].numpy().astype(np.float64).ravel()
        mean = math.fsum(values) / len(values)
        assert row["size"] == values.size
        assert row["max"] == values.max() and row["min"] == values.min()
        assert row["max_abs"] == np.abs(values).max() and row["min_abs"] == np.abs(values).min()
        assert row["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15)
        assert row["stdev"] == pytest.approx(math.sqrt(math.fsum((values - mean) ** 2) / len(values)),
                                             rel=1e-12, abs=1e-15)
    by_name = {s["name"]: s for s in stats}
    assert by_name["0.weight"]["shape"] == "16 x 3 x 3 x 3" and by_name["0.weight"]["size"] == 432
    assert by_name["3.bias"]["shape"] == "10"
    counter = by_name["1.num_batches_tracked"]  # an int64 scalar, cast like the rest
    assert (counter["shape"], counter["size"], counter["max"], counter["stdev"]) == ("1", 1, 1.0, 0.0)
    assert by_name["extra.index"]["min_abs"] == 0.0 and by_name["extra.index"]["max_abs"] == 8.0


def test_parameter_stats_of_a_bundle_with_several_files_prefix_the_file(tmp_path, reporter):
    save_file({"mean": torch.ones(2, 3)}, str(tmp_path / "weights.safetensors"))
    save_file({"bank": torch.zeros(4)}, str(tmp_path / "memory.safetensors"))
    files = bundle_weight_files(tmp_path)
    assert [f.name for f in files] == ["memory.safetensors", "weights.safetensors"]
    stats = parameter_stats(files)
    assert [s["name"] for s in stats] == ["memory/bank", "weights/mean"]
    write_parameter_stats(tmp_path / "parameter_stats.csv", stats)
    lines = (tmp_path / "parameter_stats.csv").read_text().splitlines()
    assert lines == ["name,shape,size,max,min,max_abs,min_abs,mean,stdev",
                     "memory/bank,4,4,0.0,0.0,0.0,0.0,0.0,0.0",
                     "weights/mean,2 x 3,6,1.0,1.0,1.0,1.0,1.0,0.0"]
    with pytest.raises(UserError, match="no weights file"):
        bundle_weight_files(tmp_path / "work")
    (tmp_path / "broken.safetensors").write_bytes(b"\x01")
    with pytest.raises(UserError, match="broken.safetensors: not a readable safetensors file"):
        parameter_stats(tmp_path / "broken.safetensors")


# -- t-SNE -----------------------------------------------------------------------------------------

def digits_table(path, count: int) -> tuple[Table, np.ndarray]:
    digits = load_digits()
    data = digits.data[:count]
    header = [f"x__{i}" for i in range(64)] + ["y:label"]
    rows = [[f"{v:g}" for v in row] + [str(t)] for row, t in zip(data, digits.target[:count], strict=True)]
    return write_table(path, header, rows), data


def test_tsne_of_digits_keeps_neighbourhoods_and_appends_columns(tmp_path, reporter):
    table, data = digits_table(tmp_path / "digits.csv", 500)
    vectors, indices, skipped = tsne.load_vectors(table, "x", CellResolver(tmp_path, []), reporter)
    assert vectors.shape == (500, 64) and indices == list(range(500)) and skipped == []
    np.testing.assert_array_equal(vectors, data.astype(np.float32))
    embedding = tsne.embed(vectors, dim=2, reporter=reporter)
    assert embedding.shape == (500, 2) and embedding.dtype == np.float32
    assert trustworthiness(data, embedding, n_neighbors=5) >= 0.9
    assert reporter.last_progress == (750, 750)
    columns = tsne.tsne_columns("x", 2)
    assert columns == ["x_tsne__0", "x_tsne__1"]
    outputs.append_columns_csv(table, columns, tsne.embedding_columns(embedding, indices, 500),
                               tmp_path / "tsne.csv")
    written = load_table(tmp_path / "tsne.csv")
    assert written.header == table.header + columns
    assert [row[:-2] for row in written.rows] == table.rows
    np.testing.assert_array_equal(np.asarray([row[-2:] for row in written.rows], dtype=np.float32), embedding)


def test_tsne_of_many_rows_takes_the_fft_path_and_keeps_classes_apart(reporter):
    """Above FFT_ROWS the map uses FFT gradients with one interpolation point: still trustworthy, and
    each digit's points stay together (nearest neighbours in the map share the label)."""
    from sklearn.neighbors import KNeighborsClassifier

    digits = load_digits()
    padded = np.pad(digits.images, ((0, 0), (1, 1), (1, 1)))
    shifted = np.concatenate([digits.images, padded[:, 2:, 1:-1]]).reshape(-1, 64)  # + moved up a pixel
    labels = np.concatenate([digits.target, digits.target])
    pick = np.random.default_rng(0).choice(len(shifted), tsne.FFT_ROWS + 500, replace=False)
    data, labels = shifted[pick], labels[pick]
    embedding = tsne.embed(data.astype(np.float32), reporter=reporter)
    assert trustworthiness(data, embedding, n_neighbors=5) >= 0.99
    knn = KNeighborsClassifier(5).fit(embedding[::2], labels[::2])
    assert knn.score(embedding[1::2], labels[1::2]) >= 0.9


def test_tsne_in_three_dimensions_and_small_tables(tmp_path, reporter):
    table, data = digits_table(tmp_path / "digits.csv", 60)
    vectors, _, _ = tsne.load_vectors(table, "x", CellResolver(tmp_path, []), reporter)
    assert tsne.embed(vectors, dim=3).shape == (60, 3)
    assert tsne.embed(vectors[:10], reporter=reporter).shape == (10, 2)
    assert "perplexity lowered to 3: only 10 rows" in reporter.lines
    small = write_table(tmp_path / "tiny.csv", ["x"], [["1"], ["2"]])
    two, _, _ = tsne.load_vectors(small, "x", CellResolver(tmp_path, []), reporter)
    with pytest.raises(UserError, match="t-SNE needs at least 4 rows; tiny.csv has 2"):
        tsne.embed(two, source=small.name)
    with pytest.raises(UserError, match="all 5 rows of same.csv have the same values"):
        tsne.embed(np.ones((5, 3)), source="same.csv")
    with pytest.raises(UserError, match="dim must be 2 or 3"):
        tsne.embed(vectors, dim=4)


def test_tsne_loads_images_arrays_and_skips_unreadable_rows(tmp_path, reporter):
    digits = load_digits()
    images = [(digits.images[i] / 16 * 255).astype(np.uint8) for i in range(6)]
    for i, pixels in enumerate(images):
        Image.fromarray(pixels, "L").save(tmp_path / f"{i}.png")
    Image.fromarray(images[5], "L").resize((16, 16), Image.Resampling.BILINEAR).save(tmp_path / "big.png")
    (tmp_path / "broken.png").write_bytes(b"junk")
    cells = ["./0.png", "1.png", "broken.png", "2.png", "missing.png", "3.png", "big.png"]
    table = write_table(tmp_path / "images.csv", ["x:image"], [[c] for c in cells])
    vectors, indices, skipped = tsne.load_vectors(table, "x", CellResolver(tmp_path, []), reporter)
    assert indices == [0, 1, 3, 5, 6]
    assert skipped == ["line 4: broken.png: not a readable image", "line 6: missing.png: file not found"]
    np.testing.assert_allclose(vectors[:4], np.stack([images[i] for i in range(4)]).reshape(4, 64) / 255.0,
                               atol=1e-7)
    resized = np.asarray(Image.open(tmp_path / "big.png").resize((8, 8), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(vectors[4], resized.ravel() / 255.0, atol=1e-7)

    np.save(tmp_path / "a.npy", np.arange(6, dtype=np.float64).reshape(2, 3))
    np.savetxt(tmp_path / "b.csv", np.ones((3, 2)), delimiter=",")
    np.save(tmp_path / "c.npy", np.zeros(5))
    files = write_table(tmp_path / "files.csv", ["x"], [["a.npy"], ["b.csv"], ["c.npy"], ["nope"]])
    vectors, indices, skipped = tsne.load_vectors(files, "x", CellResolver(tmp_path, []), reporter)
    np.testing.assert_array_equal(vectors, [np.arange(6), np.ones(6)])
    assert indices == [0, 1] and skipped[0] == "line 4: 5 values where the first row has 6"
    assert skipped[1].startswith("line 5: 'nope' is neither a number")


def test_tsne_stops_when_cancelled(tmp_path, reporter):
    table, _ = digits_table(tmp_path / "digits.csv", 50)
    reporter.stop_requested = True
    with pytest.raises(JobCancelled):
        tsne.load_vectors(table, "x", CellResolver(tmp_path, []), reporter)
    with pytest.raises(JobCancelled):
        tsne.embed(np.asarray(table.rows, dtype=float)[:, :64], reporter=reporter)


def test_features_variable_uses_the_classifier_bundle(tmp_path, reporter):
    from nnc_web.engine.training.bundle import save_bundle
    from nnc_web.engine.training.model import TransferClassifier
    from nnc_web.engine.training.trainer import transforms_for

    torch.manual_seed(0)
    model = TransferClassifier("efficientnet_lite0", 3, pretrained=False).eval()
    save_bundle(tmp_path / "model", model, "efficientnet_lite0", ["a", "b", "c"], 64, {}, {})
    paths = []
    for i, name in enumerate(["astronaut", "chelsea", "coffee"]):
        Image.fromarray(getattr(skdata, name)()).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    (tmp_path / "damaged.png").write_bytes(b"\x89PNG not really")
    features, kept, skipped = tsne.features_of_images(tmp_path / "model", [paths[0], tmp_path / "damaged.png",
                                                                          *paths[1:]], "cpu", reporter, batch_size=2)
    transform = transforms_for("efficientnet_lite0", 64, [])
    with torch.no_grad():
        expected = model.features(torch.stack([transform(Image.open(p).convert("RGB")) for p in paths]))
    assert features.shape == (3, 1280) and kept == [0, 2, 3]
    assert skipped == ["damaged.png: not a readable image"]  # listed and left out, not fatal
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    (tmp_path / "model" / "manifest.json").write_text(json.dumps(manifest | {"architecture": "padim"}))
    with pytest.raises(UserError, match="needs an image-classifier model; this run's model is padim"):
        tsne.features_of_images(tmp_path / "model", paths, "cpu", reporter)


# -- tile images -----------------------------------------------------------------------------------

@pytest.fixture
def tile_set(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {f"c{i}.png": rng.integers(0, 256, (3, 4, 3), dtype=np.uint8) for i in range(5)}
    for name, pixels in arrays.items():
        Image.fromarray(pixels).save(tmp_path / name)
    gray = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    arrays["gray.png"] = np.repeat(gray[:, :, None], 3, axis=2)  # spread to 3 channels
    large = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(large).save(tmp_path / "large.png")
    arrays["large.png"] = np.asarray(Image.fromarray(large).resize((4, 3), Image.Resampling.BILINEAR))
    header = ["x:image", "y:label", "z:image"]
    rows = [["c0.png", "0", "gray.png"], ["c1.png", "1", "large.png"], ["c2.png", "0", "c3.png"],
            ["c4.png", "1", "0.5"]]
    return write_table(tmp_path / "result.csv", header, rows), arrays, CellResolver(tmp_path, [])


def grid(tiles_in_order: list[np.ndarray], columns: int) -> np.ndarray:
    h, w = tiles_in_order[0].shape[:2]
    canvas = np.zeros((h * math.ceil(len(tiles_in_order) / columns), w * columns, 3), np.uint8)
    for i, tile in enumerate(tiles_in_order):
        r, c = divmod(i, columns)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return canvas


def test_tiles_go_row_by_row_in_header_order(tile_set):
    table, arrays, resolver = tile_set
    image, skipped = tiles.tile_images(table, resolver, None, num_column=3)
    order = ["c0.png", "gray.png", "c1.png", "large.png", "c2.png", "c3.png", "c4.png"]
    assert skipped == [] and image.mode == "RGB" and image.size == (12, 9)
    np.testing.assert_array_equal(np.asarray(image), grid([arrays[n] for n in order], 3))
    reordered, _ = tiles.tile_images(table, resolver, ["z", "x"], num_column=3)  # header order, not typed
    np.testing.assert_array_equal(np.asarray(reordered), np.asarray(image))


def test_tiles_of_a_row_range_and_one_variable(tile_set):
    table, arrays, resolver = tile_set
    image, _ = tiles.tile_images(table, resolver, ["z"], num_column=2, start_index=1, end_index=99)
    # the first image of the range (8 x 6) sets the automatic tile size; c3 (4 x 3) is enlarged
    large = np.asarray(Image.open(resolver.resolve("large.png")))
    enlarged = np.asarray(Image.fromarray(arrays["c3.png"]).resize((8, 6), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(np.asarray(image), grid([large, enlarged], 2))
    image, _ = tiles.tile_images(table, resolver, ["x"], num_column=4, start_index=1, end_index=2)
    np.testing.assert_array_equal(np.asarray(image), grid([arrays["c1.png"], arrays["c2.png"]], 4))
    assert image.size == (16, 3)  # the canvas is always num_column tiles wide


def test_tiles_with_an_explicit_size_resize_every_image(tile_set, tmp_path):
    table, _, resolver = tile_set
    image, _ = tiles.tile_images(table, resolver, ["x"], image_width=2, image_height=5, num_column=2)
    expected = [np.asarray(Image.open(tmp_path / f"c{i}.png").resize((2, 5), Image.Resampling.BILINEAR))
                for i in (0, 1, 2, 4)]
    np.testing.assert_array_equal(np.asarray(image), grid(expected, 2))


def test_automatic_tiles_wider_than_3840_are_scaled_down_and_truncated(tmp_path):
    photo = Image.fromarray(skdata.astronaut()).resize((24, 24), Image.Resampling.BILINEAR)
    photo.save(tmp_path / "p.png")
    table = write_table(tmp_path / "r.csv", ["x:image"], [["p.png"], ["p.png"]])
    resolver = CellResolver(tmp_path, [])
    image, _ = tiles.tile_images(table, resolver, None, num_column=200)
    assert image.size == (3800, 19)  # 24 * 3840 / 4800 = 19.2 -> 19 px tiles
    expected = np.asarray(photo.resize((19, 19), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(np.asarray(image)[:, :38], np.concatenate([expected, expected], axis=1))
    assert not np.asarray(image)[:, 38:].any()
    truncated, _ = tiles.tile_images(table, resolver, None, num_column=300)
    assert truncated.size == (3600, 12)  # 12.8 px truncated to 12, not rounded to 13
    explicit, _ = tiles.tile_images(table, resolver, None, image_width=24, image_height=24, num_column=200)
    assert explicit.size == (4800, 24)  # only an automatic size is scaled


def test_tiles_skip_unreadable_images_and_refuse_tables_without_images(tile_set, tmp_path):
    table, arrays, resolver = tile_set
    (tmp_path / "c2.png").write_bytes(b"junk")
    image, skipped = tiles.tile_images(table, resolver, ["x"], num_column=2)
    assert skipped == ["c2.png: not a readable image"]
    np.testing.assert_array_equal(np.asarray(image), grid([arrays["c0.png"], arrays["c1.png"],
                                                           arrays["c4.png"]], 2))
    plain = write_table(tmp_path / "plain.csv", ["a", "b:label"], [["1", "2"]])
    with pytest.raises(UserError, match="no image column in plain.csv; columns: a, b:label"):
        tiles.tile_images(plain, resolver, None)
    with pytest.raises(UserError, match="over the 100 pixel limit"):
        tiles.tile_images(table, resolver, None, num_column=32, max_pixels=100)


# -- face evaluation (ITA) -------------------------------------------------------------------------

def skimage_ita(pixels: np.ndarray) -> float:
    """The same patch procedure with scikit-image's float64 Lab: the independent check."""
    pixels = pixels.reshape(-1, 3)
    pixels = pixels[pixels.astype(np.int64).sum(axis=1) > 0]
    lab = rgb2lab(pixels.reshape(1, -1, 3) / 255.0).reshape(-1, 3)
    degrees = np.degrees(np.arctan((lab[:, 0] - 50) / lab[:, 2]))
    counts, edges = np.histogram(degrees, bins=1000)
    return float(edges[np.argmax(counts)])


def test_patch_ita_matches_scikit_image_lab(tmp_path):
    # Skin colours of a real face (astronaut's cheek) with distinct frequencies: the fullest bin is
    # then decided by the colours, not by which of two equally full bins a rounding lands in.
    rng = np.random.default_rng(5)
    face = skdata.astronaut()[117:149, 214:233].reshape(-1, 3)
    palette = face[rng.choice(len(face), 12, replace=False)]
    pixels = np.concatenate([np.repeat(palette[i:i + 1], 5 + 7 * i, axis=0) for i in range(12)])
    pixels = np.concatenate([pixels, np.zeros((40, 3), np.uint8)])  # black pixels are left out
    rng.shuffle(pixels)
    assert abs(ita.patch_ita(pixels) - skimage_ita(pixels)) < 0.5
    assert math.isnan(ita.patch_ita(np.zeros((4, 4, 3), np.uint8)))


def test_light_skin_gives_about_55_degrees_not_nnc_wrapped_value():
    light = np.tile(np.array([224, 188, 160], np.uint8), (64, 1))
    lab = rgb2lab(light[:1].reshape(1, 1, 3) / 255.0).ravel()
    expected = math.degrees(math.atan((lab[0] - 50) / lab[2]))
    assert 54 <= expected <= 59
    assert ita.patch_ita(light) == pytest.approx(expected, abs=0.1)
    # A colour whose channels sum past 255 is not black (NNC's uint8 sum wraps to 0 here).
    olive = np.tile(np.array([128, 128, 0], np.uint8), (10, 1))
    assert ita.patch_ita(olive) == pytest.approx(skimage_ita(olive), abs=0.1)


def test_categories_at_band_edges():
    cases = {70: "very light", 55.01: "very light", 55: "light", 41.01: "light", 41: "intermediate",
             28.01: "intermediate", 28: "tan", 10.01: "tan", 10: "brown", -29.99: "brown", -30: "dark",
             -80: "dark"}
    assert {value: ita.ita_category(value) for value in cases} == cases


def test_faces_in_real_photos(tmp_path, reporter):
    astronaut = skdata.astronaut()
    assert len(ita.detect_faces(astronaut)) == 1
    value = ita.face_ita(astronaut)
    assert isinstance(value, float) and 20 <= value <= 70 and value == round(value, 2)
    assert ita.ita_category(value) in ("light", "very light")
    assert ita.face_ita(np.repeat(skdata.brick()[:, :, None], 3, axis=2)) == "No face detected"
    assert ita.face_ita(np.concatenate([astronaut, astronaut], axis=1)) == "More than two faces detected"

    Image.fromarray(astronaut).save(tmp_path / "astronaut.jpg", quality=95)
    Image.fromarray(skdata.chelsea()).save(tmp_path / "cat.png")
    (tmp_path / "broken.png").write_bytes(b"junk")
    table = write_table(tmp_path / "faces.csv", ["x:image", "y:label"],
                        [["./astronaut.jpg", "0"], ["cat.png", "1"], ["broken.png", "0"], ["gone.png", "1"]])
    rows = ita.evaluate_faces(table, CellResolver(tmp_path, []), reporter)
    assert rows[1:] == [["cat.png", "No face detected", ""], ["broken.png", "Cannot read image", ""],
                        ["gone.png", "Cannot read image", ""]]
    assert rows[0][0] == "./astronaut.jpg" and abs(float(rows[0][1]) - value) < 3
    assert rows[0][2] == ita.ita_category(float(rows[0][1]))
    item = ita.ita_histogram_item([float(rows[0][1]), 30.0, 31.0, "No face detected"])
    text = json.dumps(item)
    assert "CustomJS" not in text
    bands = find_model(item, lambda m: m.get("attributes", {}).get("name") == "bands")
    entries = dict(bands["attributes"]["data"]["entries"])
    assert entries["count"][ita.BAND_LABELS.index("intermediate (28–41°)")] == 2
    assert sum(entries["count"]) == 3
    plain = write_table(tmp_path / "plain.csv", ["y", "x:image"], [["1", "cat.png"]])
    with pytest.raises(UserError, match=r"the first column of plain.csv \(y\) holds no images"):
        ita.evaluate_faces(plain, CellResolver(tmp_path, []), reporter)


# -- scatter ---------------------------------------------------------------------------------------

def bokeh_models(item: dict) -> list[dict]:
    """Every model object in a json_item's document, however deeply nested."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(item["doc"])
    return found


def find_model(item: dict, predicate) -> dict:
    found = [model for model in bokeh_models(item) if predicate(model)]
    assert len(found) == 1, found
    return found[0]


def model_types(item: dict) -> set[str]:
    return {model["name"] for model in bokeh_models(item)}


def points_of(item: dict) -> dict:
    source = find_model(item, lambda m: m["name"] == "ColumnDataSource"
                        and m.get("attributes", {}).get("name") == "points")
    return dict(source["attributes"]["data"]["entries"])


def test_column_lookup_prefers_the_exact_header_cell(tmp_path):
    table = write_table(tmp_path / "r.csv", ["x:image", "a__0", "a", "y'__0", "y'__1"],
                        [["p.png", "1", "2", "0.25", "0.75"], ["q.png", "3", "4", "0.5", "0.5"]])
    values, used = scatter.column_values(table, "a")
    assert used == "a" and values.tolist() == [2.0, 4.0]
    values, used = scatter.column_values(table, "y'")
    assert used == "y'__0" and values.tolist() == [0.25, 0.5]
    assert scatter.column_values(table, "y'__1")[0].tolist() == [0.75, 0.5]
    with pytest.raises(UserError, match=r"r.csv line 2, column x:image: 'p.png' is not a number"):
        scatter.column_values(table, "x")


def test_scatter_item_is_data_only_webgl_with_escaped_hover():
    n = 5
    x, y, c = np.arange(n, dtype=float), np.arange(n, dtype=float) ** 2, np.linspace(0, 1, n)
    hover = {"<b>name</b>": ["<script>alert(1)</script>", "b", "c", "d", "e"], "y:label": list("01010")}
    item = scatter.scatter_item(x, y, c, x_label="y'", y_label="y", c_label="score", rows=[3, 4, 5, 6, 7],
                                thumbs=[f"/thumbs/{i}.png" for i in range(n)], hover=hover)
    text = json.dumps(item)
    assert "CustomJS" not in text and not any("JS" in name for name in model_types(item))
    plot = find_model(item, lambda m: m["name"] == "Figure")
    assert plot["attributes"]["output_backend"] == "webgl"
    points = points_of(item)
    assert {"x", "y", "row", "c", "thumb", "h0", "h1"} <= set(points)
    assert points["x"]["shape"] == [n] and points["x"]["dtype"] == "float32"
    assert points["h0"][0] == "<script>alert(1)</script>"  # the cell is data ...
    hover_tool = find_model(item, lambda m: m["name"] == "HoverTool")
    template = hover_tool["attributes"]["tooltips"]
    assert "<script>" not in template and "&lt;b&gt;name&lt;/b&gt;" in template  # ... never template
    assert '<img src="@thumb"' in template and "{safe}" not in template and "@h0" in template
    assert "ColorBar" in model_types(item) and "LinearColorMapper" in model_types(item)
    grid_colours = {m["attributes"].get("grid_line_color") for m in json_models(item, "Grid")}
    assert grid_colours == {"#c0c0c0"}
    assert json_models(item, "Scatter")[0]["attributes"]["size"] == {"type": "value", "value": 12.0}


def json_models(item: dict, name: str) -> list[dict]:
    return [model for model in bokeh_models(item) if model.get("name") == name]


def test_scatter_of_100k_points_stays_small_and_plain_hover_uses_text_labels():
    rng = np.random.default_rng(0)
    n = 100_000
    item = scatter.scatter_item(rng.normal(size=n), rng.normal(size=n), None, x_label="x", y_label="y",
                                rows=list(range(n)))
    assert len(json.dumps(item)) < 2_000_000  # binary float32/int32 columns, no per-point strings
    points = points_of(item)
    assert set(points) == {"x", "y", "row"} and points["row"]["dtype"] == "int32"
    assert json_models(item, "Scatter")[0]["attributes"]["size"]["value"] < 5
    tooltips = find_model(item, lambda m: m["name"] == "HoverTool")["attributes"]["tooltips"]
    assert tooltips == [["x", "@x"], ["y", "@y"], ["row", "@row"]]
    with pytest.raises(ValueError, match="every column needs"):
        scatter.scatter_item(np.zeros(3), np.zeros(2), None, x_label="x", y_label="y", rows=[0, 1, 2])


# -- outputs ---------------------------------------------------------------------------------------

def test_reserve_output_never_reuses_a_name(tmp_path):
    (tmp_path / "tsne.csv").write_text("first run")
    assert outputs.reserve_output(tmp_path, "tsne.csv") == tmp_path / "tsne_1.csv"
    assert outputs.reserve_output(tmp_path, "tsne.csv") == tmp_path / "tsne_2.csv"
    assert (tmp_path / "tsne.csv").read_text() == "first run" and (tmp_path / "tsne_1.csv").exists()
    assert outputs.reserve_output(tmp_path, "tiles.PNG", (".png",)) == tmp_path / "tiles.PNG"
    assert outputs.reserve_output(tmp_path, "tiles.PNG", (".png",)) == tmp_path / "tiles_1.PNG"
    assert outputs.reserve_output(tmp_path, "s.bokeh.json", (".bokeh.json",)) == tmp_path / "s.bokeh.json"
    assert outputs.reserve_output(tmp_path, "s.bokeh.json", (".bokeh.json",)) == tmp_path / "s_1.bokeh.json"
    for bad in ["../x.csv", "a/b.csv", "/tmp/x.csv", "x y.csv", "", ".csv", "x.png", "x" * 97 + ".csv",
                "tsne.csv\x00", "é.csv"]:
        with pytest.raises(UserError, match="output"):
            outputs.reserve_output(tmp_path, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "s.bokeh.json", "s_1.bokeh.json", "tiles.PNG", "tiles_1.PNG", "tsne.csv", "tsne_1.csv", "tsne_2.csv"]


def test_column_writers_append_and_prepend(tmp_path):
    table = write_table(tmp_path / "in.csv", ["x:image", "y"], [["a.png", "0"], ["b.png", "1"]])
    columns = [["1.5", ""], ["2", ""]]  # one list per new column, a cell per row
    outputs.append_columns_csv(table, ["x_tsne__0", "x_tsne__1"], columns, tmp_path / "o.csv")
    assert (tmp_path / "o.csv").read_text() == "x:image,y,x_tsne__0,x_tsne__1\na.png,0,1.5,2\nb.png,1,,\n"
    outputs.prepend_column_csv(table, "gradcam", ["g0.png", "g1.png"], tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text() == "gradcam,x:image,y\ng0.png,a.png,0\ng1.png,b.png,1\n"
    with pytest.raises(ValueError):
        outputs.prepend_column_csv(table, "g", ["only one"], tmp_path / "q.csv")


def test_scatter_colours_a_label_column_by_class_with_a_legend():
    item = scatter.scatter_item(np.arange(6.0), np.arange(6.0), np.array([0, 1, 2, 0, 1, 2.0]), x_label="a",
                                y_label="b", c_label="y", rows=list(range(6)), c_classes=["cat", "dog", "eel"])
    assert "CategoricalColorMapper" in model_types(item) and "ColorBar" not in model_types(item)
    assert "Legend" in model_types(item)  # hues per class, named in a legend, not a ramp
    assert list(points_of(item)["c_class"]) == ["cat", "dog", "eel", "cat", "dog", "eel"]
    ramp = scatter.scatter_item(np.arange(3.0), np.arange(3.0), np.array([0.1, 0.5, 2.5]), x_label="a",
                                y_label="b", rows=[0, 1, 2], c_classes=["cat", "dog"])
    assert "ColorBar" in model_types(ramp) and "CategoricalColorMapper" not in model_types(ramp)
