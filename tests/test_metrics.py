"""Metrics against hand computations and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sf.forecast.metrics import aggregate, auc, compute_metrics, hit_threshold


def test_perfect_forecast_scores_perfectly():
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 10, (40, 5))
    m = compute_metrics(y, y, np.ones_like(y, bool), hit_threshold(y, np.ones_like(y, bool)))
    assert m["MAE"] == 0 and m["RMSE"] == 0 and m["WAPE"] == 0 and m["R2"] == 1
    assert m["AUC"] == 1 and m["Accuracy"] == 1
    assert m["WAPE_per_step"] == [0.0] * 5


def test_pooled_wape_mae_rmse_r2_by_hand():
    y = np.array([[10.0, 0.0], [2.0, 4.0]])
    yhat = np.array([[7.0, 1.0], [2.0, 8.0]])
    mask = np.ones_like(y, bool)
    m = compute_metrics(y, yhat, mask, hit_threshold=5.0)
    assert m["MAE"] == pytest.approx((3 + 1 + 0 + 4) / 4)
    assert m["RMSE"] == pytest.approx(np.sqrt((9 + 1 + 0 + 16) / 4))
    assert m["WAPE"] == pytest.approx(100 * 8 / 16)  # pooled: Σ|e| / Σy, not a mean of per-product ratios
    assert m["WAPE_per_step"] == pytest.approx([100 * 3 / 12, 100 * 5 / 4])
    assert m["R2"] == pytest.approx(1 - 26 / ((10 - 4) ** 2 + 4 ** 2 + 2 ** 2 + 0))
    # totals: actual 10, 6 (both > 5: hits); predicted 8, 10
    assert m["Accuracy"] == 1.0 and np.isnan(m["AUC"])  # one class only: AUC undefined


def test_unobserved_cells_are_ignored():
    rng = np.random.default_rng(1)
    y, yhat = rng.uniform(0, 5, (30, 4)), rng.uniform(0, 5, (30, 4))
    mask = rng.uniform(size=y.shape) > 0.3
    a = compute_metrics(y, yhat, mask, 8.0)
    b = compute_metrics(np.where(mask, y, 1e6), np.where(mask, yhat, -7), mask, 8.0)
    for k in ("MAE", "RMSE", "R2", "WAPE", "AUC", "Accuracy"):
        assert a[k] == pytest.approx(b[k])


def test_auc_is_the_pairwise_probability_with_ties_counted_half():
    rng = np.random.default_rng(2)
    labels = rng.uniform(size=60) > 0.6
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    pos, neg = scores[labels], scores[~labels]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)])
    assert auc(labels, scores) == pytest.approx(brute)


def test_hit_threshold_is_the_median_total():
    y = np.array([[1.0, 1.0], [5.0, 0.0], [2.0, 2.0], [9.0, 9.0]])
    assert hit_threshold(y, np.ones_like(y, bool)) == pytest.approx(np.median([2, 5, 4, 18]))


def test_quantile_metrics_by_hand():
    y = np.array([[1.0, 3.0]])
    yq = np.array([[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]])  # the second cell lies above the interval
    m = compute_metrics(y, yq, np.ones_like(y, bool), 1.0, quantiles=(0.1, 0.5, 0.9))
    # cell 1: pinball q.1 (1-0)*.1=.1, q.5 0, q.9 (2-1)*.1=.1 ; cell 2: (3)*.1=.3, (2)*.5=1, (1)*.9=.9
    assert m["pinball"] == pytest.approx((0.1 + 0 + 0.1 + 0.3 + 1.0 + 0.9) / 6)
    assert m["coverage"] == pytest.approx(0.5) and m["coverage_nominal"] == pytest.approx(0.8)
    assert m["MAE"] == pytest.approx((0 + 2) / 2)  # point metrics use the median


def test_aggregate_mean_std_elementwise_and_nan_skipping():
    runs = [{"MAE": 1.0, "AUC": float("nan"), "WAPE_per_step": [1.0, 2.0]},
            {"MAE": 3.0, "AUC": 0.5, "WAPE_per_step": [3.0, 2.0]}]
    agg = aggregate(runs)
    assert agg["MAE"] == {"mean": 2.0, "std": pytest.approx(np.sqrt(2))}
    assert agg["AUC"] == {"mean": 0.5, "std": 0.0}
    assert agg["WAPE_per_step"]["mean"] == [2.0, 2.0]
