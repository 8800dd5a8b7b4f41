"""`sf backtest` / `Forecaster.cross_validation` / `sf compare --backtest`: rolling-origin folds that know only
what was known at each cutoff, scored on the seed ensemble; a model that reads the forecast products' sales
gains nothing."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import sf
from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.forecast import engine
from sf.forecast.baselines import BASELINES, register_baseline
from sf.forecast.config import TrainConfig
from sf.forecast.folds import fold_inputs, known_at, make_folds
from sf.forecast.inputs import build_inputs
from sf.studies.backtest import BacktestConfig, fold_scores, run_backtest
from tests.fakes import make_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = TrainConfig(epochs=2, seeds=2, patience=2, choose_on_validation=False)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("bt"), n=200, horizon=6)


@pytest.fixture
def probe():
    """Baselines registered for one test: `probe` records what it is given, `oracle` forecasts the sales it is
    given at prediction time (a planted leak: if the forecast products' sales were there, it would be perfect)."""
    seen: dict[str, list] = {"fit": [], "predict": []}

    class Probe:
        def fit(self, train):
            seen["fit"].append(train)
            self.curve = np.where(train.y_mask, train.y, 0).mean(0)
            return self

        def predict(self, inp):
            seen["predict"].append(inp)
            return np.tile(self.curve, (len(inp), 1))

    class Oracle(Probe):
        def predict(self, inp):
            return np.where(inp.y_mask, inp.y, 0.0).astype(np.float32)

    register_baseline("probe", "records its inputs (tests)")(Probe)
    register_baseline("oracle", "forecasts the sales it is given (tests)")(Oracle)
    yield seen
    del BASELINES["probe"], BASELINES["oracle"]


def test_folds_train_before_the_cutoff_and_know_only_the_sales_by_then(catalogue):
    root, store = catalogue
    inp = build_inputs(load_dataset(root), load_features(store))
    folds, how = make_folds(inp, folds=3)
    assert len(folds) == 3 and "equal windows" in how
    rel = dict(zip(inp.product_ids, inp.release))
    for f in folds:
        assert all(rel[p] < f.cutoff for k in ("train", "val") for p in f.split[k])
        assert all(rel[p] >= f.cutoff for p in f.split["test"])
        # validation is the latest of the pre-cutoff products, as sf train's time split carves it
        assert max(rel[p] for p in f.split["train"]) <= min(rel[p] for p in f.split["val"])
        seen = fold_inputs(inp, f)
        row = {p: i for i, p in enumerate(inp.product_ids)}
        test = [row[p] for p in f.split["test"]]
        assert not seen.y_mask[test].any() and not seen.y[test].any()
        assert not seen.exog[:, inp.lookback:].any() and inp.exog[:, inp.lookback:].any()
        np.testing.assert_array_equal(seen.exog[:, : inp.lookback], inp.exog[:, : inp.lookback])
        # a sales week is kept only if it ended by the cutoff
        ends = inp.release[:, None] + (np.arange(1, inp.horizon + 1) * 7).astype("timedelta64[D]")
        np.testing.assert_array_equal(seen.y_mask, inp.y_mask & (ends <= f.cutoff) & known_at(inp, f.cutoff)
                                      & ~np.isin(np.arange(len(inp)), test)[:, None])
        assert (seen.y_mask.sum() < inp.y_mask.sum())


def test_what_every_fold_model_reads_was_known_at_its_cutoff(catalogue, probe, tmp_path):
    root, store = catalogue
    cfg = BacktestConfig(features=store, data=root, folds=3, models=("probe",), train=TINY, workers=1,
                         out=tmp_path / "bt")
    result = run_backtest(cfg, progress=False)
    assert len(probe["fit"]) == 3
    for fold, train, scored in zip(result.folds, probe["fit"], probe["predict"][1::2]):  # predict: val, test
        assert (train.release < fold.cutoff).all()
        assert set(train.product_ids) == set(fold.split["train"])
        assert not known_at(train, fold.cutoff)[train.y_mask].__invert__().any()  # no week after the cutoff
        assert set(scored.product_ids) == set(fold.split["test"])
        assert not scored.y_mask.any() and not scored.y.any()  # no sales of the forecast products
        assert not scored.exog[:, scored.lookback:].any()  # no exog after a product's release


def test_a_model_that_reads_the_forecast_products_sales_gains_nothing(catalogue, probe, tmp_path):
    root, store = catalogue
    cfg = BacktestConfig(features=store, data=root, folds=3, models=("oracle", "mean_curve"), train=TINY, workers=1,
                         out=tmp_path / "bt")
    result = run_backtest(cfg, progress=False)
    frame = result.forecasts.filter(pl.col("model") == "oracle")
    assert (frame["yhat"] == 0).all()  # it saw blanks where the sales are
    for s in result.scores["oracle"]:
        assert s["WAPE"] == pytest.approx(100.0)
    assert result.summary["mean_curve"]["rank"] < result.summary["oracle"]["rank"]
    # the same oracle given the real sales would have scored a perfect 0: the blanking is what catches it
    y = frame["y"].fill_null(0).to_numpy().reshape(-1, 6)
    assert fold_scores(y, y > 0, y, [y])["WAPE"] == 0


def test_the_scored_forecast_is_the_seed_ensemble(catalogue, tmp_path):
    root, store = catalogue
    cfg = BacktestConfig(features=store, data=root, folds=2, train=TINY, workers=1, out=tmp_path / "bt")
    result = run_backtest(cfg, progress=False)
    # recompute fold 2 independently: the same fold prepared again, each seed trained by the engine
    train_cfg = TrainConfig(**{**TINY.__dict__, "features": store, "data": root})
    ds, feats = load_dataset(root), load_features(store)
    inp, attrs = engine.load_inputs(train_cfg, feats, ds)
    fold = make_folds(inp, folds=2)[0][1]
    prepared = engine.prepare(train_cfg, split=fold.split, inputs=fold_inputs(inp, fold), store_attrs=attrs)
    seeds = [engine.train_seed(train_cfg, prepared, s).forecasts["test"] for s in train_cfg.seed_list]
    assert not np.allclose(seeds[0], seeds[1])
    got = result.forecasts.filter(pl.col("fold") == 2).sort(["product_id", "step"])
    order = np.argsort(prepared.parts["test"].product_ids)
    np.testing.assert_allclose(got["yhat"].to_numpy().reshape(-1, 6), np.mean(seeds, 0)[order], rtol=1e-5)
    # and the fold's WAPE is that forecast's pooled WAPE, not a mean of the seeds'
    y, yhat = got["y"].to_numpy(), got["yhat"].to_numpy()
    ok = ~np.isnan(y)
    wape = 100 * np.abs(y[ok] - yhat[ok]).sum() / y[ok].sum()
    assert result.scores["sf"][1]["WAPE"] == pytest.approx(wape, rel=1e-6)
    assert result.scores["sf"][1]["WAPE"] != pytest.approx(result.scores["sf"][1]["seed_WAPE"], rel=1e-6)


def test_cross_validation_and_the_cli_give_the_same_frame(catalogue, tmp_path, cli):
    root, store = catalogue
    code, out, err = cli("backtest", "--features", store, "--data", root, "--folds", "2", "--seeds", "1",
                         "--epochs", "2", "--patience", "2", "--workers", "1", "--out", tmp_path / "cli")
    assert code == 0, err
    assert "fold 1" not in err and "mean ± std" in out and "equal windows" in out.replace("\n", " ")
    frame = sf.Forecaster(seeds=1, epochs=2, patience=2).cross_validation(store, root, folds=2, workers=1,
                                                                           out=tmp_path / "api")
    from_cli = pl.read_parquet(tmp_path / "cli" / "forecasts.parquet")
    assert frame.columns == ["model", "fold", "cutoff", "product_id", "step", "y", "yhat"]
    assert frame.height == from_cli.height > 0
    assert frame.equals(from_cli)
    payload = json.loads((tmp_path / "cli" / "backtest.json").read_text())
    assert [f["fold"] for f in payload["folds"]] == [1, 2] and payload["summary"]["sf"]["mean"]["WAPE"] > 0
    assert (tmp_path / "cli" / "backtest.png").stat().st_size > 0


def test_compare_backtest_ranks_and_pairs_against_sf(catalogue, tmp_path, cli):
    root, store = catalogue
    code, out, err = cli("compare", "--backtest", "2", "--models", "mean_curve,knn_both,sf", "--features", store,
                         "--data", root, "--seeds", "1", "--epochs", "2", "--workers", "1", "--out", tmp_path / "c")
    assert code == 0, err
    payload = json.loads((tmp_path / "c" / "backtest.json").read_text())
    summary, scores = payload["summary"], payload["scores"]
    assert sorted(s["rank"] for s in summary.values()) == [1, 2, 3]
    for name in ("mean_curve", "knn_both"):
        p = summary[name]["paired"]
        diff = [a["WAPE"] - b["WAPE"] for a, b in zip(scores[name], scores["sf"])]
        assert p["WAPE_diff"] == pytest.approx(diff) and p["beats_reference"] == sum(d < 0 for d in diff)
    best = [min(scores, key=lambda n: scores[n][k]["WAPE"]) for k in range(2)]
    assert sum(summary[n]["paired"]["best_folds"] for n in summary) == 2 == len(best)
    assert "Δ WAPE vs sf" in out


def test_bad_backtest_settings_are_one_line(catalogue, tmp_path, cli):
    root, store = catalogue
    code, _, err = cli("backtest", "--features", store, "--data", root, "--cutoffs", "seasons", "--out", tmp_path / "a")
    assert code == 2 and err.strip().startswith("error:") and "season" in err and "Traceback" not in err
    code, _, err = cli("backtest", "--features", store, "--data", root, "--folds", "60", "--out", tmp_path / "b")
    assert code == 2 and err.strip().startswith("error:") and "--folds" in err
    code, _, err = cli("compare", "--backtest", "2", "--features", store, "--features", store, "--data", root,
                       "--data", root)
    assert code == 2 and "exactly one --data" in err


def test_a_backtest_with_other_settings_is_not_replaced_without_force(catalogue, probe, tmp_path, cli):
    root, store = catalogue
    args = ["backtest", "--features", store, "--data", root, "--folds", "2", "--model", "sf", "--seeds", "1",
            "--epochs", "1", "--workers", "1", "--out", tmp_path / "bt"]
    assert cli(*args)[0] == 0
    before = (tmp_path / "bt" / "backtest.json").read_text()
    code, _, err = cli(*args[:-6], "--epochs", "2", *args[-4:])
    assert code == 2 and "epochs" in err and (tmp_path / "bt" / "backtest.json").read_text() == before
    assert cli(*args[:-6], "--epochs", "2", *args[-4:], "--force")[0] == 0


def test_seasons_give_the_cutoffs_when_the_products_have_them(tmp_path):
    root, store = make_dataset(tmp_path / "s", n=160, horizon=6)
    products = pl.read_csv(root / "products.csv")
    season = pl.col("release_date").str.slice(0, 4) + pl.when(pl.col("release_date").str.slice(5, 2) < "07") \
        .then(pl.lit("a")).otherwise(pl.lit("b"))
    products.with_columns(season.alias("season")).write_csv(root / "products.csv")
    inp = build_inputs(load_dataset(root), load_features(store), check_content=False)
    seasons = dict(pl.read_csv(root / "products.csv").select("product_id", "season").iter_rows())
    folds, how = make_folds(inp, folds=2, seasons=seasons)
    assert "seasons" in how and [f.label for f in folds] == ["2021a", "2021b"]
    for f in folds:
        assert {seasons[p] for p in f.split["test"]} == {f.label}
        assert f.cutoff == min(inp.release[[inp.product_ids.index(p) for p in f.split["test"]]])
