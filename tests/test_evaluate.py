"""`sf evaluate`: every metric of `sf train` on another dataset, beside the training mean curve."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast.config import TrainConfig
from sf.apply.evaluate import EvaluateConfig, evaluate_run, training_reference
from sf.forecast.metrics import compute_metrics
from sf.forecast.checkpoints import load_run
from sf.forecast.engine import train_run
from sf.forecast.run_folder import read_split
from tests.fakes import make_dataset

H = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("evaluate")
    root, store = make_dataset(base / "train", n=90, horizon=H)
    cfg = TrainConfig(features=store, data=root, out=base / "run", epochs=3, seeds=2, hidden=8, patience=3,
                      loss="quantile", quantiles=(0.1, 0.5, 0.9), refit=True)
    result = train_run(cfg, progress=False)
    _, y, m = load_dataset(root).sales_matrix(result.prepared.product_split["train"], horizon=H)
    curve = np.where(m, y, 0).sum(0) / m.sum(0)
    total = np.where(m, y, 0).sum(1)
    # next season: other products (other features, other sales), with their own store
    nxt, nxt_store = make_dataset(base / "next", n=40, horizon=H, seed=1)
    return base / "run", curve, float(np.median(total)), nxt, nxt_store


def test_metrics_beside_training_mean_curve(setup, tmp_path):
    run, curve, thr, nxt, nxt_store = setup
    res = evaluate_run(EvaluateConfig(model=run, data=nxt, store=nxt_store, out=tmp_path / "ev"))
    m = res.metrics
    for key in ("MAE", "RMSE", "R2", "AUC", "Accuracy", "WAPE", "pinball", "coverage"):
        assert np.isfinite(m["mean"][key]) and np.isfinite(m["ensemble"][key]), key
        assert key in m["std"]
    assert len(m["per_seed"]) == 2 and len(m["ensemble"]["WAPE_per_step"]) == H
    # the baseline is the TRAINING products' mean curve, scored with the training hit threshold
    _, y, mask = load_dataset(nxt).sales_matrix(horizon=H)
    expected = compute_metrics(y, np.tile(curve, (len(y), 1)), mask, thr)
    for key in ("MAE", "RMSE", "R2", "WAPE", "Accuracy"):
        assert m["mean_curve"][key] == pytest.approx(expected[key], rel=1e-6)
    assert m["hit_threshold"] == pytest.approx(thr, rel=1e-6)
    # the ensemble's numbers are those of the saved predictions
    pred = pl.read_parquet(tmp_path / "ev" / "predictions.parquet")
    assert set(pred["seed"].unique()) == {-1, 0, 1}
    ens = pred.filter(pl.col("seed") == -1).sort("product_id", "step")
    mae = (ens["yhat"] - ens["y"]).abs().mean()
    assert mae == pytest.approx(m["ensemble"]["MAE"], rel=1e-4)
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["products"] == 40
    for png in ("forecasts.png", "totals.png"):
        assert (tmp_path / "ev" / png).stat().st_size > 1000


def test_reference_recomputed_when_the_run_does_not_keep_it(setup, tmp_path):
    run, curve, thr, *_ = setup
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "metrics.json").unlink()
    ref = training_reference(load_run(copy))
    np.testing.assert_allclose(ref.mean_curve, curve, rtol=1e-6)
    assert ref.hit_threshold == pytest.approx(thr, rel=1e-6)
    assert "recomputed" in ref.source


def test_observed_weeks_beyond_training_refused(setup):
    run, _, _, nxt, nxt_store = setup
    with pytest.raises(SfError, match="observe-max"):
        evaluate_run(EvaluateConfig(model=run, data=nxt, store=nxt_store, observed=2))


def test_folder_without_sales_refused(setup, tmp_path):
    run, _, _, nxt, nxt_store = setup
    shutil.copytree(nxt, tmp_path / "nosales")
    (tmp_path / "nosales" / "sales.csv").unlink()
    with pytest.raises(SfError, match="sales"):
        evaluate_run(EvaluateConfig(model=run, data=tmp_path / "nosales", store=nxt_store))


def test_cli_evaluate(setup, tmp_path, cli):
    run, _, _, nxt, nxt_store = setup
    code, out, err = cli("evaluate", "--model", run, "--data", nxt, "--store", nxt_store, "--no-extract",
                         "--out", tmp_path / "ev")
    assert code == 0, err
    assert "mean curve" in out and "WAPE" in out and str(tmp_path / "ev") in out.replace("\n", "")


def test_training_folder_uses_the_training_store(setup, tmp_path):
    run, *_ = setup
    train_dir = run.parent / "train"

    def no_extraction(*args):
        raise AssertionError("features of the training folder are already in the training store")

    res = evaluate_run(EvaluateConfig(model=run, data=train_dir, out=tmp_path / "ev"), extract=no_extraction)
    assert res.metrics["store"] == str(train_dir / "store.h5") and res.metrics["products"] == 90


def test_baselines_fitted_on_the_training_products_scored_beside(setup, tmp_path):
    run, *_, nxt, nxt_store = setup
    res = evaluate_run(EvaluateConfig(model=run, data=nxt, store=nxt_store, out=tmp_path / "ev",
                                      baselines=("mean_curve", "knn_image")))
    m = res.metrics
    assert list(m["baselines"]) == ["mean_curve", "knn_image"]
    # the registered mean_curve baseline is fitted on exactly the products the saved (refit) seeds were fitted
    # on: the run's train + validation products
    assert all(getattr(f, "selection", None) is not None for f in load_run(run).models)
    split = read_split(run)
    _, y, mask = load_dataset(run.parent / "train").sales_matrix(split["train"] + split["val"], horizon=H)
    curve = np.where(mask, y, 0).sum(0) / mask.sum(0)
    _, yn, mn = load_dataset(nxt).sales_matrix(horizon=H)
    expected = compute_metrics(yn, np.tile(curve, (len(yn), 1)), mn, m["hit_threshold"])
    for key in ("MAE", "RMSE", "WAPE", "Accuracy"):
        assert m["baselines"]["mean_curve"][key] == pytest.approx(expected[key], rel=1e-5)
    assert any("train + validation" in n for n in m["notes"])
    assert np.isfinite(m["baselines"]["knn_image"]["WAPE"])
    assert m["baselines"]["knn_image"]["WAPE"] != pytest.approx(m["mean_curve"]["WAPE"])
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["baselines"].keys() == {"mean_curve", "knn_image"}


def test_unknown_baseline_and_missing_training_data_refused(setup, tmp_path):
    run, *_, nxt, nxt_store = setup
    with pytest.raises(SfError, match="knn_nope"):
        evaluate_run(EvaluateConfig(model=run, data=nxt, store=nxt_store, out=tmp_path / "a", baselines=("knn_nope",)))
    loaded = load_run(run)
    moved = replace(loaded, config=replace(loaded.config, data=tmp_path / "gone"))  # the training data moved away
    with pytest.raises(SfError, match="training products.*not at hand"):
        evaluate_run(EvaluateConfig(model=run, data=nxt, store=nxt_store, out=tmp_path / "b", baselines=("knn_image",)),
                     run=moved)


def test_cli_evaluate_with_baselines(setup, tmp_path, cli):
    run, _, _, nxt, nxt_store = setup
    code, out, err = cli("evaluate", "--model", run, "--data", nxt, "--store", nxt_store, "--no-extract",
                         "--baselines", "attribute_mean,knn_both", "--out", tmp_path / "ev")
    assert code == 0, err
    assert "attribute_mean" in out and "knn_both" in out
    code, _, err = cli("evaluate", "--model", run, "--data", nxt, "--store", nxt_store, "--no-extract",
                       "--baselines", "nope", "--out", tmp_path / "ev2")
    assert code == 2 and "error:" in err and "nope" in err


def test_orders_scored_against_point_forecast_and_mean_curve(setup, tmp_path):
    run, curve, _, nxt, nxt_store = setup
    m = evaluate_run(EvaluateConfig(model=run, data=nxt, store=nxt_store, out=tmp_path / "ev",
                                    cost_over=1.0, cost_under=4.0)).metrics["totals"]
    _, y, mask = load_dataset(nxt).sales_matrix(horizon=H)
    actual = np.where(mask, y, 0).sum(1)
    assert m["coverage"]["products"] == 40 and 0 <= m["coverage"]["covered"] <= 1
    assert m["cost_per_unit"] == {"over": 1.0, "short": 4.0} and "0.8 quantile" in m["order_rule"]
    mean = m["orders"]["mean curve"]
    ordered = np.where(mask, curve[None, :], 0).sum(1)  # the mean curve's total over each product's known weeks
    assert mean["ordered"] == pytest.approx(ordered.sum(), rel=1e-5)
    assert mean["short"] == pytest.approx(np.clip(actual - ordered, 0, None).sum(), rel=1e-5)
    assert mean["cost"] == pytest.approx(mean["overstock"] + 4 * mean["short"], rel=1e-9)
    assert set(m["orders"]) == {"sf order", "point forecast", "mean curve"}
    # ordering the 0.8 quantile orders more than the median forecast
    assert m["orders"]["sf order"]["ordered"] > m["orders"]["point forecast"]["ordered"]
