"""`sf predict`: forecasts for products the model never saw, from features made by the model's extractor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sf.errors import SfError
from sf.forecast.config import TrainConfig
from sf.apply.predict import PredictConfig, leading_observed, predict_new, quantile_column
from sf.forecast.engine import train_run
from tests.fakes import dataset_hashes, make_dataset, write_store

H = 6
N_NEW = 10
NO_IMAGE = {"new00", "new03", "new07"}


def _train(root: Path, store: Path, out: Path, **kw) -> Path:
    cfg = TrainConfig(features=store, data=root, out=out, epochs=3, seeds=1, hidden=8, patience=3, **kw)
    train_run(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A quantile model that may use up to 2 observed weeks, trained on the fake catalogue."""
    base = tmp_path_factory.mktemp("predict")
    root, store = make_dataset(base / "train", n=90, horizon=H)
    run = _train(root, store, base / "run", loss="quantile", quantiles=(0.1, 0.5, 0.9), observe_max=2)
    return root, store, run


def _new_products(folder: Path, with_sales: bool = False) -> Path:
    """New products: a products table (+ the images it names); no sales unless asked; no dataset.toml/exog."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"new{i:02d}" for i in range(N_NEW)]
    pl.DataFrame({
        "product_id": ids,
        "image": ["" if p in NO_IMAGE else f"{p}.png" for p in ids],
        "text": [f"new item {p}" for p in ids],
        "release_date": [str(np.datetime64("2021-06-07") + 7 * i) for i in range(N_NEW - 1)] + [""],  # new09: unknown
        "category": ["a", "b", "c", "a", "b", "c", "a", "b", "c", "zzz"],  # zzz: a value the model never saw
    }).write_csv(folder / "products.csv")
    if with_sales:  # the first two weeks of the first four products are known
        pl.DataFrame({"product_id": np.repeat(ids[:4], 2), "step": np.tile([0, 1], 4),
                      "units": [40.0, 30.0] * 4}).write_csv(folder / "sales.csv")
    return folder


class FakeExtract:
    """Stands in for stage 1: writes the new products' rows with the training store's extractor settings."""

    def __init__(self, backbone: str = "fake", precision: str = "fp32"):
        self.backbone, self.precision, self.calls = backbone, precision, []

    def __call__(self, ds, like, out):
        self.calls.append((ds.root, like, out))
        rng = np.random.default_rng(1)
        keys = ds.product_ids
        has_image = np.array([bool(x) for x in ds.products["image"].to_list()])
        write_store(out, keys, rng.standard_normal((len(keys), 16)), rng.standard_normal((len(keys), 12)),
                    has_image=has_image, backbone=self.backbone, precision=self.precision,
                    content_hashes=dataset_hashes(ds))
        return out


def test_predict_unseen_products(trained, tmp_path):
    root, store, run = trained
    new = _new_products(tmp_path / "new")
    extract = FakeExtract()
    result = predict_new(PredictConfig(model=run, data=new), extract=extract)

    # features come from the model's own extractor, into a store beside the run
    assert extract.calls == [(new, store, run / "features_new.h5")]
    assert result.store == run / "features_new.h5"
    df = pl.read_parquet(result.out)
    assert result.out == run / "forecasts_new.parquet"
    assert df.columns == ["product_id", "step", "date", "yhat", "p10", "p50", "p90", "observed"]
    assert df.height == N_NEW * H
    assert sorted(set(df["product_id"])) == sorted(f"new{i:02d}" for i in range(N_NEW))
    assert df["yhat"].is_finite().all() and (df["yhat"] >= 0).all()
    assert df["observed"].null_count() == df.height  # no sales given
    # date = release + step weeks
    first = df.filter(pl.col("product_id") == "new02").sort("step")
    assert first["date"].to_list()[0].isoformat() == "2021-06-21"
    assert first["date"].to_list()[3].isoformat() == "2021-07-12"
    assert df.filter(pl.col("product_id") == "new09")["date"].null_count() == H  # no release date, no dates
    # products without an image still get a forecast, and are recognised as such
    inp = result.inputs
    no_image = {p for p, h in zip(inp.product_ids, inp.has_image) if not h}
    assert no_image == NO_IMAGE
    assert df.filter(pl.col("product_id").is_in(list(NO_IMAGE)))["yhat"].is_finite().all()
    # the unknown attribute value is reported, not fatal
    assert any("never saw" in n for n in result.notes)
    # resolved settings and a plot beside the table
    side = json.loads(result.out.with_suffix(".json").read_text())
    assert side["products"] == N_NEW and side["without_image"] == len(NO_IMAGE)
    assert result.out.with_suffix(".png").stat().st_size > 1000


def test_totals_and_orders_beside_the_forecasts(trained, tmp_path):
    _, _, run = trained
    out = tmp_path / "f.parquet"
    result = predict_new(PredictConfig(model=run, data=_new_products(tmp_path / "new"), out=out, service_level=0.9),
                         extract=FakeExtract())
    tot = pl.read_parquet(tmp_path / "f_totals.parquet")
    assert tot.columns == ["product_id", "release_date", "total", "total_p10", "total_p90", "order_qty", "critical_ratio"]
    weekly = pl.read_parquet(out).group_by("product_id").agg(pl.col("yhat").sum(), pl.col("p10").sum(),
                                                             pl.col("p90").sum())
    both = tot.join(weekly, on="product_id")
    np.testing.assert_allclose(both["total"], both["yhat"], rtol=1e-4)  # the total is the weekly point's sum
    assert (both["total_p10"] <= both["total_p90"]).all()
    assert (both["order_qty"] >= both["total_p10"].floor()).all() and (tot["critical_ratio"] == 0.9).all()
    # the interval comes from sample paths times validation ratios, not from summing weekly quantiles
    assert not np.allclose(both["total_p90"], both["p90"], rtol=0.05)
    side = json.loads(out.with_suffix(".json").read_text())
    assert "0.9 quantile" in side["totals"]["order_rule"] and "validation" in side["totals"]["method"]
    assert result.totals.samples > 1
    # the paths are every seed's every MC pass: their mean is the forecast itself
    from sf.apply.predict import forecast_paths
    from sf.forecast.checkpoints import load_run
    paths = forecast_paths(load_run(run), result.inputs, result.observed)
    assert paths.shape[1] > 1
    np.testing.assert_allclose(paths.mean(1), result.yhat, rtol=1e-4, atol=1e-4)


def test_cli_refuses_a_bad_service_level(trained, tmp_path, cli):
    _, _, run = trained
    code, _, err = cli("predict", "--model", run, "--data", _new_products(tmp_path / "new"), "--service-level", "1.5",
                       "--out", tmp_path / "f.csv")
    assert code == 2 and err.startswith("error: --service-level") and not (tmp_path / "f.csv").exists()


def test_quantiles_are_ordered_and_point_is_median(trained, tmp_path):
    _, _, run = trained
    result = predict_new(PredictConfig(model=run, data=_new_products(tmp_path / "new"), out=tmp_path / "f.csv"),
                         extract=FakeExtract())
    df = pl.read_csv(tmp_path / "f.csv")
    assert (df["p10"] <= df["p50"] + 1e-4).all() and (df["p50"] <= df["p90"] + 1e-4).all()
    assert (df["p90"] - df["p10"]).max() > 0  # a real band, not one line
    np.testing.assert_allclose(df["yhat"].to_numpy(), df["p50"].to_numpy(), rtol=1e-4)
    assert result.quantiles == (0.1, 0.5, 0.9)


def test_refuses_store_from_another_extractor(trained, tmp_path):
    _, _, run = trained
    new = _new_products(tmp_path / "new")
    wrong = FakeExtract(backbone="other")(_loaded(new), None, tmp_path / "wrong.h5")
    extract = FakeExtract()
    with pytest.raises(SfError, match=r"wrong\.h5.*backbone: 'fake' != 'other'"):
        predict_new(PredictConfig(model=run, data=new, store=wrong, out=tmp_path / "f.parquet"), extract=extract)
    assert extract.calls == []  # refused before extracting anything
    assert not (tmp_path / "f.parquet").exists()


def test_cli_refuses_mismatched_store_in_one_line(trained, tmp_path, cli):
    _, _, run = trained
    new = _new_products(tmp_path / "new")
    FakeExtract(backbone="other")(_loaded(new), None, tmp_path / "wrong.h5")
    code, out, err = cli("predict", "--model", run, "--data", new, "--store", tmp_path / "wrong.h5", "--no-extract")
    assert code == 2
    assert err.startswith("error:") and "backbone" in err and "Traceback" not in err


def test_cli_predict_with_a_ready_store(trained, tmp_path, cli):
    _, _, run = trained
    new = _new_products(tmp_path / "new")
    FakeExtract()(_loaded(new), None, tmp_path / "ready.h5")
    code, out, err = cli("predict", "--model", run, "--data", new, "--store", tmp_path / "ready.h5", "--no-extract",
                         "--out", tmp_path / "f.parquet")
    assert code == 0, err
    assert "f.parquet" in out and "new00" in out
    assert pl.read_parquet(tmp_path / "f.parquet").height == N_NEW * H


def test_no_store_and_no_extractor_says_how_to_make_one(trained, tmp_path):
    _, _, run = trained
    with pytest.raises(SfError, match="sf extract"):
        predict_new(PredictConfig(model=run, data=_new_products(tmp_path / "new"), store=tmp_path / "none.h5"))


@pytest.mark.numerics
def test_short_observation_uses_given_weeks(trained, tmp_path):
    _, _, run = trained
    blind = predict_new(PredictConfig(model=run, data=_new_products(tmp_path / "blind"), out=tmp_path / "a.parquet"),
                        extract=FakeExtract())
    seen = predict_new(PredictConfig(model=run, data=_new_products(tmp_path / "seen", with_sales=True),
                                     out=tmp_path / "b.parquet"), extract=FakeExtract())
    assert seen.observed.tolist() == [2] * 4 + [0] * (N_NEW - 4)
    a, b = pl.read_parquet(tmp_path / "a.parquet"), pl.read_parquet(tmp_path / "b.parquet")
    given = b.filter(pl.col("observed").is_not_null())
    assert sorted(set(given["product_id"])) == [f"new{i:02d}" for i in range(4)]
    assert sorted(set(given["step"])) == [0, 1]
    # The given weeks change those products' forecasts, and only theirs. The others are the same products
    # with the same inputs, but forecast in a batch of 6 rows instead of 10 (the model runs one batch per
    # number of given weeks), and CPU kernels may pick another blocking, so another float32 summation order,
    # for another shape (an AMX CPU does: 3.8e-6 = 2 float32 ulps at |yhat| ~ 28; AVX2/AVX-512 give equal
    # bits). Reordering a K-term float32 sum moves it by <= K * 2^-24 of the sum of |terms|; K <= 64 in
    # this model's layers (hidden 8, 16 + 12 feature dims, ~2 x 8 gates), so 2^-18 per layer, and a few
    # layers (fusion, 2 BiLSTM directions, head, expm1 decode) at most ~4x that: 2^-16 ≈ 1.5e-5 of the
    # forecasts' scale. A real change must stand 16x clear of that (the given weeks move forecasts by 0.5-1.5%).
    ya, yb = a["yhat"].to_numpy().reshape(N_NEW, H), b["yhat"].to_numpy().reshape(N_NEW, H)
    changed = np.abs(ya - yb).max(axis=1) / np.abs(ya).max()
    rounding = 2.0**-16
    assert (changed[:4] > 16 * rounding).all() and (changed[4:] <= rounding).all(), changed
    # --observed 0 ignores them
    none = predict_new(PredictConfig(model=run, data=tmp_path / "seen", observed=0, out=tmp_path / "c.parquet"),
                       extract=FakeExtract())
    np.testing.assert_array_equal(none.yhat, blind.yhat)  # the same 10 rows in the same batch: the same bits


def test_predict_and_cache_info_say_when_the_store_precision_differs(trained, tmp_path, cli):
    _, _, run = trained
    same = predict_new(PredictConfig(model=run, data=_new_products(tmp_path / "a"), store=tmp_path / "fp32.h5"),
                       extract=FakeExtract())
    assert not [n for n in same.notes if "precision" in n or "bf16" in n]
    other = predict_new(PredictConfig(model=run, data=_new_products(tmp_path / "b"), store=tmp_path / "bf16.h5"),
                        extract=FakeExtract(precision="bf16"))
    assert [n for n in other.notes if "holds bf16 features but the model was trained on fp32 features" in n]

    code, out, err = cli("cache", "info", tmp_path / "bf16.h5", "--model", run, "--json", tmp_path / "i.json")
    assert code == 0 and "holds bf16 features but the model was trained on fp32" in " ".join(err.split())  # a note
    assert "bf16" in json.loads((tmp_path / "i.json").read_text())["model"]["precision_note"]
    code, out, err = cli("cache", "info", tmp_path / "fp32.h5", "--model", run)
    assert code == 0 and "fits" in err and "holds" not in err + out
    FakeExtract(backbone="other")(_loaded(_new_products(tmp_path / "c")), None, tmp_path / "other.h5")
    code, _, err = cli("cache", "info", tmp_path / "other.h5", "--model", run)
    assert code == 2 and err.startswith("error:") and "backbone" in err and "Traceback" not in err


def test_leading_observed_stops_at_first_gap():
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1]], bool)
    assert leading_observed(mask).tolist() == [2, 0, 4]
    assert quantile_column(0.1) == "p10" and quantile_column(0.025) == "p2.5"


def _loaded(folder: Path):
    df = pl.read_csv(folder / "products.csv")
    return type("D", (), {"product_ids": df["product_id"].to_list(), "root": folder,
                          "products": df.with_columns(pl.col("image").fill_null(""))})()


def test_refuses_new_products_counted_in_another_period(trained, tmp_path):
    root, _, run = trained
    new = _new_products(tmp_path / "new")
    meta = (root / "dataset.toml").read_text()
    (new / "dataset.toml").write_text(meta.replace('period = "week"', 'period = "month"'))
    extract = FakeExtract()
    with pytest.raises(SfError, match=r"dataset\.toml: period 'month'.*'week'"):
        predict_new(PredictConfig(model=run, data=new, out=tmp_path / "f.parquet"), extract=extract)
    assert extract.calls == [] and not (tmp_path / "f.parquet").exists()
