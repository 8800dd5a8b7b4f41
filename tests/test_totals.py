"""A product's total over the horizon: interval from sample paths (not summed weekly quantiles), the newsvendor order."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sf.apply.totals import (OrderRule, coverage, order_costs, order_rule, path_totals, total_distribution,
                             validation_ratios)
from sf.errors import SfError


def test_order_rule_from_service_level_or_costs():
    assert order_rule().critical_ratio == 0.8
    assert order_rule(service_level=0.95).critical_ratio == 0.95
    r = order_rule(cost_over=1.0, cost_under=3.0)
    assert r.critical_ratio == pytest.approx(0.75) and r.costs() == (1.0, 3.0)
    assert "0.75 quantile" in r.text and "newsvendor" in r.text
    assert order_rule(service_level=0.9).costs() == pytest.approx((0.1, 0.9))  # same critical ratio


@pytest.mark.parametrize("kw, match", [
    ({"service_level": 1.0}, "--service-level"), ({"service_level": 0.0}, "--service-level"),
    ({"cost_over": 1.0}, "--cost-under"), ({"cost_over": 1.0, "cost_under": -1.0}, "> 0"),
    ({"service_level": 0.5, "cost_over": 1.0, "cost_under": 1.0}, "not both")])
def test_order_rule_refuses_bad_settings(kw, match):
    with pytest.raises(SfError, match=match):
        order_rule(**kw)


def test_total_interval_is_not_the_sum_of_weekly_quantiles():
    """Independent weekly noise: the total's spread grows like sqrt(H), summed weekly quantiles like H."""
    rng = np.random.default_rng(0)
    n, p, h = 50, 400, 12
    paths = 10 + rng.standard_normal((n, p, h))
    tot = path_totals(paths, ())
    t = total_distribution(tot, paths.mean(1).sum(1), None, OrderRule(0.5))
    width = (t.hi - t.lo).mean()
    summed = (np.quantile(paths, 0.9, axis=1) - np.quantile(paths, 0.1, axis=1)).sum(1).mean()
    assert width == pytest.approx(2 * 1.2816 * np.sqrt(h), rel=0.15)
    assert summed > 2.5 * width
    assert np.allclose(t.order, t.point, rtol=0.02)  # the median of a symmetric total


def test_validation_ratios_widen_the_interval_to_cover_real_errors():
    """Paths that know nothing of the model's error under-cover; times the validation ratios they cover ~80%."""
    rng = np.random.default_rng(1)
    n = 4000
    point = rng.uniform(50, 150, n)
    actual = point * rng.lognormal(0, 0.4, n)  # the model's real error on every product
    val_ratios = rng.lognormal(0, 0.4, 300)  # the same error seen on validation products
    paths = point[:, None] * (1 + 0.02 * rng.standard_normal((n, 20)))
    rule = OrderRule(0.8)
    naive = coverage(actual, total_distribution(paths, point, None, rule))
    t = total_distribution(paths, point, val_ratios, rule)
    good = coverage(actual, t)
    assert naive["covered"] < 0.2
    assert abs(good["covered"] - 0.8) < 3 * good["se"] + 0.03
    assert good["products"] == n and good["below"] + good["above"] + good["covered"] == pytest.approx(1)
    # the order at 0.8 runs short on about 20% of products
    assert np.mean(actual > t.order) == pytest.approx(0.2, abs=0.04)


def test_quantile_model_paths_use_each_path_median():
    paths = np.zeros((2, 3, 4, 3))
    paths[..., 1] = 2.0  # the p50 column
    paths[..., 2] = 9.0
    assert path_totals(paths, (0.1, 0.5, 0.9)).tolist() == [[8.0] * 3] * 2
    scored = np.array([[True, True, False, False]] * 2)
    assert path_totals(paths, (0.1, 0.5, 0.9), scored).tolist() == [[4.0] * 3] * 2


def test_order_costs_count_units_over_and_short():
    actual = np.array([10.0, 20.0, 0.0])
    out = order_costs(actual, {"a": np.array([12.0, 15.0, 1.0])}, OrderRule(0.75, 1.0, 3.0))["a"]
    assert out == {"ordered": 28.0, "overstock": 3.0, "short": 5.0, "cost": 3.0 + 15.0}


def test_validation_ratios_read_from_the_runs_predictions(tmp_path):
    rows = []
    for seed, f in ((0, 4.0), (1, 6.0)):  # ensemble forecast 5 per step
        for pid, y, split in (("a", 10.0, "val"), ("b", 5.0, "val"), ("c", 99.0, "test")):
            rows += [{"product_id": pid, "split": split, "step": s, "y": y, "yhat": f, "seed": seed} for s in range(2)]
    pl.DataFrame(rows).write_parquet(tmp_path / "predictions.parquet")
    assert sorted(validation_ratios(tmp_path).tolist()) == [1.0, 2.0]
    assert validation_ratios(tmp_path / "nowhere") is None
