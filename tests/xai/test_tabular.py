"""Tabular explanations (LIME, Kernel SHAP) on tabular MLP bundles whose truth is known: hand-set
weights that read one feature only, a linear regressor (closed-form Shapley values), a random
nonlinear MLP checked against a brute-force Shapley sum; one-hot groups as one feature; bad input."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from lime.discretize import QuartileDiscretizer
from scipy.stats import kstest, truncnorm

from nnc_web.engine.reporting import ConsoleReporter, JobCancelled, UserError
from nnc_web.engine.training.tabular_mlp import TabularData, TabularMLP, save_tabular_bundle
from nnc_web.engine.xai.lime_tabular import QuartileSampler, TabularLime, truncated_normal
from nnc_web.engine.xai.shap_tabular import (
    TabularKernelShap,
    check_memory,
    exhaustive,
    memory_estimate_gib,
)
from nnc_web.engine.xai.tabular import (
    Encoding,
    features_of,
    load_tabular_model,
    pick_row,
    read_rows,
)

CPU = torch.device("cpu")
HEADER = ["x__0:a", "x__1:b", "x__2:c", "x__3:colour=blue", "x__4:colour=green", "x__5:colour=red"]
SCHEMA = [{"column": "a", "kind": "numeric"}, {"column": "b", "kind": "numeric"}, {"column": "c", "kind": "numeric"},
          {"column": "colour", "kind": "categorical", "categories": ["blue", "green", "red"]}]


def table(rows: int = 200, seed: int = 0) -> np.ndarray:
    """a, b, c ~ N(0, 1) and a colour one-hot over three values."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, 3))
    colour = np.eye(3)[rng.integers(0, 3, rows)]
    return np.column_stack([numbers, colour]).astype(np.float32)


def make_bundle(folder, weight: np.ndarray | None = None, bias: np.ndarray | None = None, classes=("no", "yes"),
                x: np.ndarray | None = None, layers: int = 0, seed: int = 0, schema=SCHEMA, header=HEADER):
    """A tabular MLP bundle: a linear layer with the given weights (layers=0), or a random MLP."""
    x = table() if x is None else x
    outputs = len(classes) if classes else 1
    torch.manual_seed(seed)
    model = TabularMLP(x.shape[1], outputs, hidden=16, layers=layers, dropout=0.0)
    if weight is not None:
        with torch.no_grad():
            model.net[-1].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            model.net[-1].bias.copy_(torch.as_tensor(bias if bias is not None else np.zeros(outputs)))
    else:
        model.mean.copy_(torch.from_numpy(x.mean(axis=0)))
        model.std.copy_(torch.from_numpy(x.std(axis=0)))
    data = TabularData([*header, "y:t"], [], x, np.zeros(len(x), np.float32), list(classes), schema)
    save_tabular_bundle(folder, model, data, {"hidden": 16, "layers": layers, "dropout": 0.0})
    return load_tabular_model(folder, CPU)


def only(column: int, scale: float = 4.0) -> np.ndarray:
    """Two-class weights whose logits read one input column only."""
    weight = np.zeros((2, len(HEADER)))
    weight[1, column], weight[0, column] = scale, -scale
    return weight


def write_csv(path, header, x) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, "y:t;no;yes"])
        writer.writerows([[f"{v:g}" for v in row] + ["0"] for row in x])


# -- features ----------------------------------------------------------------------------------------

def test_one_hot_groups_are_one_feature_from_the_encoding_or_the_header_labels(tmp_path):
    x = table()
    for schema in (SCHEMA, None):  # the bundle's encoding, or NNC's `colour=red` labels alone
        model = make_bundle(tmp_path / str(schema is None), only(1), x=x, schema=schema)
        features = features_of(model, x)
        assert [f.name for f in features] == ["x__0:a", "x__1:b", "x__2:c", "x__3..5:colour"]
        assert features[3].categories == ("blue", "green", "red") and features[3].columns == (3, 4, 5)
        encoding = Encoding(features, x.shape[1])
        grouped = encoding.group(x)
        assert np.array_equal(grouped[:, 3], x[:, 3:].argmax(axis=1))
        assert np.array_equal(encoding.expand(grouped), x)  # and back, exactly


def test_unlabelled_columns_are_named_by_their_header_cell(tmp_path):
    x = table()[:, :3]
    model = make_bundle(tmp_path, np.zeros((2, 3)), x=x, schema=None, header=["x__0", "x__1", "x__2"])
    features = features_of(model, x)
    assert [(f.name, f.label) for f in features] == [("x__0", "x__0"), ("x__1", "x__1"), ("x__2", "x__2")]
    assert TabularLime(model, features, x).explain(x[0], 1).conditions[2].count("'x__2'") == 1


def test_a_group_that_is_not_one_hot_stays_separate_numbers(tmp_path):
    x = table()
    model = make_bundle(tmp_path, only(1), x=x)
    broken = x.copy()
    broken[7, 3:] = 1.0  # a row with three colours at once
    assert [f.name for f in features_of(model, x, broken)] == [
        "x__0:a", "x__1:b", "x__2:c", "x__3:colour=blue", "x__4:colour=green", "x__5:colour=red"]


# -- LIME --------------------------------------------------------------------------------------------

def test_lime_ranks_first_the_only_feature_the_model_reads(tmp_path):
    x = table()
    model = make_bundle(tmp_path, only(1), x=x)
    features = features_of(model, x)
    lime = TabularLime(model, features, x, num_samples=1000)
    for row in range(12):
        explanation = lime.explain(x[row], 1)
        ranked = np.argsort(-np.abs(explanation.weights))
        assert ranked[0] == 1, (row, explanation.weights)
        assert np.abs(explanation.weights[[0, 2, 3]]).max() < 0.2 * abs(explanation.weights[1])
        assert explanation.prediction == pytest.approx(1 / (1 + math.exp(-8 * float(x[row, 1]))), abs=1e-5)
    low, high = np.argmin(x[:, 1]), np.argmax(x[:, 1])
    assert lime.explain(x[low], 1).weights[1] < 0 < lime.explain(x[high], 1).weights[1]
    again = lime.explain(x[3], 1)
    assert np.array_equal(again.weights, lime.explain(x[3], 1).weights)  # seeded per row: reproducible


def test_lime_explains_a_categorical_column_as_one_feature(tmp_path):
    x = table()
    weight = np.zeros((2, len(HEADER)))
    weight[1, 5] = 3.0  # only "colour is red" matters
    model = make_bundle(tmp_path, weight, x=x)
    features = features_of(model, x)
    lime = TabularLime(model, features, x)
    red = int(np.flatnonzero(x[:, 5] == 1)[0])
    explanation = lime.explain(x[red], 1)
    assert explanation.conditions[3] == "'colour' = red"
    assert np.argmax(np.abs(explanation.weights)) == 3 and explanation.weights[3] > 0
    quartiles = np.percentile(x[:, 0], [25, 50, 75])
    a = float(x[red, 0])
    k = int(np.searchsorted(quartiles, a))
    expected = ([f"'a' <= {quartiles[0]:.2f}"] + [f"{quartiles[i - 1]:.2f} < 'a' <= {quartiles[i]:.2f}"
                                                   for i in (1, 2)] + [f"{quartiles[2]:.2f} < 'a'"])[k]
    assert explanation.conditions[0] == expected  # NNC's condition text


def test_lime_works_for_a_regressor(tmp_path):
    x = table()
    weight = np.zeros((1, len(HEADER)))
    weight[0, 0] = 3.0  # y = 3a + 1
    model = make_bundle(tmp_path, weight, np.array([1.0]), classes=(), x=x)
    features = features_of(model, x)
    lime = TabularLime(model, features, x)
    low, high = np.argmin(x[:, 0]), np.argmax(x[:, 0])
    for row, sign in ((low, -1), (high, 1)):
        explanation = lime.explain(x[row], 0)
        assert np.argmax(np.abs(explanation.weights)) == 0 and np.sign(explanation.weights[0]) == sign
        assert explanation.prediction == pytest.approx(3 * float(x[row, 0]) + 1, abs=1e-4)


def test_quartile_sampler_keeps_lime_bins_and_fixes_single_value_bins():
    rng = np.random.default_rng(1)
    data = np.column_stack([np.r_[np.full(60, 5.0), np.arange(6.0, 46.0)], rng.normal(size=100)])
    ours = QuartileSampler(data, [], ["p", "q"], random_state=np.random.RandomState(0))
    theirs = QuartileDiscretizer(data, [], ["p", "q"], random_state=np.random.RandomState(0))
    assert ours.names == theirs.names  # the same bins and lime's own names
    bins = np.tile(np.arange(4), 50)[:, None].repeat(2, axis=1).astype(float)
    bins[:, 0] = np.minimum(bins[:, 0], len(ours.quartiles[0]))
    drawn = ours.undiscretize(bins)
    for f in (0, 1):
        for b in np.unique(bins[:, f]).astype(int):
            values = drawn[bins[:, f] == b, f]
            assert (values >= ours.mins[f][b] - 1e-9).all() and (values <= ours.maxs[f][b] + 1e-9).all()
    assert (drawn[bins[:, 0] == 0, 0] == 5.0).all()  # bin 0 of p holds only 5s
    assert (theirs.undiscretize(bins)[bins[:, 0] == 0, 0] == 0.0).all()  # lime gives the z-score instead


def test_truncated_normal_draws_follow_scipys_truncnorm_even_far_in_the_tail():
    random = np.random.RandomState(0)
    for a, b in ((-1.0, 2.0), (-4.0, -3.5), (0.5, 0.7), (6.0, 9.0), (-40.0, -39.0)):
        z = truncated_normal(np.full(4000, a), np.full(4000, b), random)
        assert (z >= a).all() and (z <= b).all()
        assert z.mean() == pytest.approx(truncnorm(a, b).mean(), abs=0.03), (a, b)
        if a > -30:  # beyond that the CDF underflows and every draw is the end nearer the mean
            assert kstest(z, truncnorm(a, b).cdf).pvalue > 0.01, (a, b)


# -- Kernel SHAP -------------------------------------------------------------------------------------

def brute_force_shapley(model, x_row, background, groups, k) -> np.ndarray:
    """Shapley values by their definition: every coalition's mean output over the background, then
    phi_j = sum over coalitions S without j of |S|! (M - |S| - 1)! / M! (v(S + j) - v(S))."""
    count = len(groups)
    masks = (np.arange(2 ** count)[:, None] >> np.arange(count)) & 1  # coalition number -> members
    columns = np.zeros((2 ** count, len(x_row)), dtype=bool)
    for j, group in enumerate(groups):
        columns[:, group] = masks[:, j:j + 1].astype(bool)
    rows = np.where(columns[:, None, :], x_row[None, None, :], background[None])
    value = model.predict_numpy(rows.reshape(-1, len(x_row)))[:, k].reshape(2 ** count, -1).mean(axis=1)
    sizes = masks.sum(axis=1)
    phi = np.zeros(count)
    for j in range(count):
        without = np.flatnonzero(masks[:, j] == 0)
        weight = np.array([math.factorial(s) * math.factorial(count - s - 1) for s in sizes[without]])
        phi[j] = (weight * (value[without + 2 ** j] - value[without])).sum() / math.factorial(count)
    return phi


def test_kernel_shap_adds_up_and_equals_the_exact_shapley_values(tmp_path):
    x = table(120)
    model = make_bundle(tmp_path, x=x, layers=2, classes=("p", "q", "r"), seed=3)  # a random nonlinear MLP
    features = features_of(model, x)
    shap = TabularKernelShap(model, features, x)
    base = model.predict_numpy(x).mean(axis=0)
    for row in (0, 5, 17):
        for k in (0, 2):
            explanation = shap.explain(x[row], k)
            assert explanation.exact
            fx = model.predict_numpy(x[row:row + 1])[0, k]
            assert explanation.base == pytest.approx(base[k], abs=1e-6)
            assert explanation.prediction == pytest.approx(fx, abs=1e-6)
            assert abs(explanation.values.sum() - (fx - base[k])) <= 1e-4
            exact = brute_force_shapley(model, x[row], x, [list(f.columns) for f in features], k)
            assert np.allclose(explanation.values, exact, atol=2e-5), (explanation.values, exact)


def test_kernel_shap_of_a_linear_regressor_is_weight_times_distance_to_the_mean(tmp_path):
    x = table()
    weight = np.array([[2.0, -1.0, 0.5, 0.3, -0.7, 1.1]])
    model = make_bundle(tmp_path, weight, np.array([4.0]), classes=(), x=x)
    features = features_of(model, x)
    explanation = TabularKernelShap(model, features, x).explain(x[9], 0)
    contribution = weight[0] * (x[9] - x.mean(axis=0))  # exact for a linear model
    expected = [*contribution[:3], contribution[3:].sum()]  # the colour group's three columns together
    assert np.allclose(explanation.values, expected, atol=1e-4)


def test_kernel_shap_samples_beyond_eleven_features_and_still_adds_up(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 12)).astype(np.float32)
    header = [f"x__{i}:f{i}" for i in range(12)]
    model = make_bundle(tmp_path, x=x, layers=1, classes=("p", "q"), seed=1, schema=None, header=header)
    features = features_of(model, x)
    assert not exhaustive(len(features))
    explanation = TabularKernelShap(model, features, x).explain(x[0], 1)
    assert not explanation.exact
    assert abs(explanation.values.sum() - (explanation.prediction - explanation.base)) <= 1e-4
    exact = brute_force_shapley(model, x[0], x, [[i] for i in range(12)], 1)
    assert np.corrcoef(explanation.values, exact)[0, 1] > 0.95


def test_memory_guard_is_nncs_estimate():
    assert memory_estimate_gib(1000, 10, 10) == pytest.approx(1000 * 10 * (2048 + 20) * 8 / 2 ** 30)
    assert check_memory(100, 6, 4, limit_gib=1.0) < 1.0
    with pytest.raises(UserError, match=r"would need about 1\.54 GiB .* above the memory limit of 1\.00 GiB"):
        check_memory(10_000, 10, 10, limit_gib=1.0)


# -- bad input ---------------------------------------------------------------------------------------

def test_bad_input_gives_clear_messages(tmp_path):
    x = table(20)
    classifier = make_bundle(tmp_path / "c", only(1), x=x)
    regressor = make_bundle(tmp_path / "r", np.ones((1, len(HEADER))), classes=(), x=x)
    with pytest.raises(UserError, match=r"class_index 2 is out of range: this model has 2 classes \(0 = no, 1 = yes"):
        classifier.check_class(2)
    with pytest.raises(UserError, match="class_index -1 is out of range"):
        classifier.check_class(-1)
    with pytest.raises(UserError, match="regressor, so class_index must be 0"):
        regressor.check_class(1)
    path = tmp_path / "rows.csv"
    write_csv(path, HEADER, x)
    rows = read_rows(path, classifier)
    assert pick_row(rows, 1) == 0 and pick_row(rows, 20) == 19
    for index in (0, 21):
        with pytest.raises(UserError, match=f"index {index} is out of range: the index is 1-based, from 1 to 20 "
                                            r"\(the rows of rows.csv\)"):
            pick_row(rows, index)
    other = tmp_path / "other.csv"
    write_csv(other, HEADER[:3], x[:, :3])
    with pytest.raises(UserError, match="the x columns of other.csv are not this model's inputs: it has 3"):
        read_rows(other, classifier)
    image = tmp_path / "image_model"
    image.mkdir()
    (image / "manifest.json").write_text(json.dumps({"format": "nnc-web-classifier/1",
                                                     "architecture": "transfer_classifier"}))
    with pytest.raises(UserError, match="needs a tabular model .* this run's model is transfer_classifier"):
        load_tabular_model(image, CPU)


# -- the plugins' batch loop: progress per row, cancellable --------------------------------------------

class StopAfter(ConsoleReporter):
    def __init__(self, workdir, rows: int) -> None:
        super().__init__(workdir, quiet=True)
        self.rows = rows
        self.seen: list[tuple[int, int]] = []

    def progress(self, done: int, total: int) -> None:
        self.seen.append((done, total))

    def should_stop(self) -> bool:
        return len(self.seen) >= self.rows


@pytest.mark.parametrize("plugin", ["lime_tabular_batch", "shap_tabular_batch"])
def test_batch_forms_report_every_row_and_can_be_cancelled(tmp_path, plugin):
    from nnc_web.plugins import lime_tabular, shap_tabular
    from nnc_web.plugins.context import Workspace

    x = table(30)
    make_bundle(tmp_path / "model", only(1), x=x)
    write_csv(tmp_path / "rows.csv", HEADER, x[:6])
    write_csv(tmp_path / "train.csv", HEADER, x)
    runner = (lime_tabular.BATCH if plugin == "lime_tabular_batch" else shap_tabular.BATCH).runner
    params = {"model": tmp_path / "model", "input": tmp_path / "rows.csv", "train": tmp_path / "train.csv",
              "class_index": 1, "num_samples": 200, "alpha": 0.0, "memory_limit": None,
              "output": f"{plugin}.csv", "_workspace": Workspace(folder=tmp_path, roots=(tmp_path,), csvs={})}
    done = StopAfter(tmp_path, rows=99)
    produced = runner(done, dict(params))
    assert done.seen == [(i, 6) for i in range(1, 7)]
    assert [p.name for p in produced][0] == f"{plugin}.csv"
    stopped = StopAfter(tmp_path, rows=2)
    with pytest.raises(JobCancelled):
        runner(stopped, dict(params, output="again.csv"))
    assert stopped.seen == [(1, 6), (2, 6)] and not (tmp_path / "again.csv").exists()
