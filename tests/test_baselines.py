"""Baselines of `sf compare`: shapes, sign, and that each computes exactly what its docstring says."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.forecast.baselines import BASELINES, create_baseline
from sf.forecast.baselines.attribute_mean import MIN_COUNTS
from sf.forecast.inputs import build_inputs
from tests.fakes import make_dataset


@pytest.fixture(scope="module")
def inp(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("fake"), n=160, horizon=6)
    return build_inputs(load_dataset(root), load_features(store))


def split(inp, n_train=120):
    return inp.take(np.arange(n_train)), inp.take(np.arange(n_train, len(inp)))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_gives_finite_nonnegative_curves(inp, name):
    from sf.forecast.baselines import gbm

    if name in gbm.NAMES and not gbm.available():
        pytest.skip(gbm.missing_reason())
    train, test = split(inp)
    pred = create_baseline(name).fit(train).predict(test)
    assert pred.shape == (len(test), inp.horizon)
    assert np.isfinite(pred).all() and (pred >= 0).all()
    assert BASELINES[name].description


def test_registry_names_are_the_issue_s():
    assert {"mean_curve", "attribute_mean", "knn_image", "knn_attributes", "knn_both"} <= set(BASELINES)


def test_mean_curve_is_the_training_mean_over_observed_steps(inp):
    train, test = split(inp)
    mask = train.y_mask.copy()
    mask[:10, -1] = False  # a missing figure is not a zero
    train = replace(train, y_mask=mask)
    pred = create_baseline("mean_curve").fit(train).predict(test)
    expected = np.array([train.y[mask[:, h], h].mean() for h in range(inp.horizon)])
    np.testing.assert_allclose(pred, np.tile(expected, (len(test), 1)), rtol=1e-5)


def with_attributes(inp, codes: np.ndarray):
    names = ["category", "color", "fabric"]
    vocab = {n: [f"{n}{k}" for k in range(1, int(codes[:, j].max()) + 1)] for j, n in enumerate(names)}
    return replace(inp, attributes=codes, attribute_names=names, attribute_vocab=vocab, exog_names=[])


def test_attribute_mean_backs_off_by_dropping_the_last_attribute(inp):
    rng = np.random.default_rng(1)
    codes = np.stack([rng.integers(1, 3, len(inp)), rng.integers(1, 3, len(inp)), rng.integers(1, 3, len(inp))], 1)
    codes[:120][codes[:120, 0] == 2, 2] = 1  # category 2 never seen with fabric 2 in training
    full = with_attributes(inp, codes)
    train = full.take(np.arange(120))
    queries = full.take(np.arange(120, 124))
    queries.attributes[:] = [[1, 1, 2], [2, 2, 2], [2, 0, 1], [3, 1, 1]]
    # codes: all three seen / (cat 2, color 2) seen but not with fabric 2 / colour unknown / category unseen
    queries.attribute_vocab["category"].append("category3")
    model = create_baseline("attribute_mean", min_count=1).fit(train)
    pred = model.predict(queries)

    def mean_of(rows):
        return train.y[rows].mean(axis=0)

    a = train.attributes
    np.testing.assert_allclose(pred[0], mean_of((a == [1, 1, 2]).all(1)), rtol=1e-5)
    np.testing.assert_allclose(pred[1], mean_of((a[:, :2] == [2, 2]).all(1)), rtol=1e-5)
    np.testing.assert_allclose(pred[2], mean_of(a[:, 0] == 2), rtol=1e-5)
    np.testing.assert_allclose(pred[3], train.y.mean(axis=0), rtol=1e-5)
    assert model.levels_.tolist() == [3, 2, 1, 0]


def test_attribute_mean_min_count_backs_off_rare_combinations(inp):
    codes = np.ones((len(inp), 3), dtype=np.int64)
    codes[0] = [1, 1, 2]  # a combination held by one training product only
    codes[100:120, 1] = 2  # so the (category, color) level differs from the global mean
    full = with_attributes(inp, codes)
    train, test = full.take(np.arange(120)), full.take([0])
    rare = create_baseline("attribute_mean", min_count=2).fit(train)
    same_prefix = (train.attributes[:, :2] == [1, 1]).all(1)
    np.testing.assert_allclose(rare.predict(test)[0], train.y[same_prefix].mean(0), rtol=1e-5)
    assert not np.allclose(train.y[same_prefix].mean(0), train.y.mean(0))
    assert rare.levels_.tolist() == [2]
    exact = create_baseline("attribute_mean", min_count=1).fit(train)
    np.testing.assert_allclose(exact.predict(test)[0], train.y[0], rtol=1e-5)


def test_attribute_mean_min_count_is_chosen_by_leave_one_out_on_training(inp):
    rng = np.random.default_rng(3)
    full = with_attributes(inp, np.stack([rng.integers(1, 4, len(inp)), rng.integers(1, 4, len(inp)),
                                          rng.integers(1, 3, len(inp))], 1))
    train = full.take(np.arange(60))
    chosen = create_baseline("attribute_mean").fit(train).min_count_
    errors = {}
    for mc in MIN_COUNTS:  # each training product predicted by a model fitted on the others
        err = 0.0
        for i in range(len(train)):
            others = train.take(np.delete(np.arange(len(train)), i))
            pred = create_baseline("attribute_mean", min_count=mc).fit(others).predict(train.take([i]))
            err += np.abs(pred[0] - train.y[i]).sum()
        errors[mc] = err
    best = min(errors.values())
    assert errors[chosen] == pytest.approx(best, rel=1e-4)


def manual_knn(train_vecs, query_vec, y, k, eps):
    """The docstring's rule by hand: the k most similar (and any tied with the k-th), weights 1/(d + eps)."""
    sim = train_vecs @ query_vec
    kth = np.sort(sim)[::-1][k - 1]
    near = sim >= kth - 1e-6
    w = 1.0 / (np.clip(1 - sim[near], 0, None) + eps)
    return (w[:, None] * y[near]).sum(0) / w.sum()


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_knn_image_is_the_distance_weighted_mean_of_the_nearest_training_curves(inp):
    train, test = split(inp)
    model = create_baseline("knn_image", k=5, eps=0.01).fit(train)
    pred = model.predict(test)
    for i in (0, 7):
        expected = manual_knn(unit(train.image_pooled), unit(test.image_pooled[i]), train.y, 5, 0.01)
        np.testing.assert_allclose(pred[i], expected, rtol=1e-4)
    # and it uses what the image says: closer than the mean curve on products whose sales follow the image
    mean = create_baseline("mean_curve").fit(train).predict(test)
    assert np.abs(pred - test.y).sum() < np.abs(mean - test.y).sum()


def test_knn_attributes_uses_hamming_and_both_concatenates_the_blocks(inp):
    rng = np.random.default_rng(2)
    codes = rng.integers(1, 4, (len(inp), 3))
    full = with_attributes(inp, codes)
    train, test = split(full)
    onehot = lambda c: np.concatenate([np.eye(3)[c[..., j] - 1] for j in range(3)], -1) / np.sqrt(3)  # noqa: E731
    i = 3
    pa = create_baseline("knn_attributes", k=7).fit(train).predict(test)
    np.testing.assert_allclose(pa[i], manual_knn(onehot(train.attributes), onehot(test.attributes[i]), train.y, 7, 1e-2),
                               rtol=1e-4)
    pb = create_baseline("knn_both", k=7).fit(train).predict(test)
    both = lambda img, c: np.concatenate([unit(img), onehot(c)], -1) / np.sqrt(2)  # noqa: E731
    expected = manual_knn(both(train.image_pooled, train.attributes), both(test.image_pooled[i], test.attributes[i]),
                          train.y, 7, 1e-2)
    np.testing.assert_allclose(pb[i], expected, rtol=1e-4)


def test_knn_without_an_image_falls_back_to_attributes(inp):
    train, test = split(inp)
    no_image = test.has_image.copy()
    no_image[:5] = False
    grid = test.image_pooled.copy()
    grid[:5] = 0
    test = replace(test, has_image=no_image, image_pooled=grid)
    # a training product without an image is never an image neighbour
    train_mask = train.has_image.copy()
    train_mask[:60] = False
    train = replace(train, has_image=train_mask)
    for name in ("knn_image", "knn_both"):
        model = create_baseline(name).fit(train)
        pred = model.predict(test)
        fallback = create_baseline("knn_attributes").fit(train).predict(test)
        np.testing.assert_allclose(pred[:5], fallback[:5], rtol=1e-5)
        w = model.weights(test.take(np.arange(5, len(test))))
        assert (w[:, :60] == 0).all() and (w[:, 60:] > 0).any(axis=1).all()


def test_knn_select_k_is_leave_one_out_on_the_training_products(inp):
    train, _ = split(inp)
    grid = (1, 5, 20)
    model = create_baseline("knn_image", select_k=True, k_grid=grid).fit(train)
    assert model.k in grid
    # leave-one-out by hand: each training product predicted from the others
    vec, errs = unit(train.image_pooled), {}
    for k in grid:
        preds = []
        for i in range(len(train)):
            others = np.delete(np.arange(len(train)), i)
            preds.append(manual_knn(vec[others], vec[i], train.y[others], k, 1e-2))
        errs[k] = np.abs(np.array(preds) - train.y).sum()
    assert model.k == min(errs, key=errs.get)
