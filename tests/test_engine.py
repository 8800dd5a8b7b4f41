"""The one stage-2 engine: `sf train`, `sf compare` and `sf ablate` get the same numbers from the same settings,
the run folder records its split, and the per-(config, seed) entry point is what every study calls."""

from __future__ import annotations

import json

import polars as pl
import pytest

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast import engine
from sf.forecast.config import TrainConfig
from sf.forecast.run_folder import read_split
from sf.studies.compare import CompareConfig, run_compare
from tests.fakes import make_dataset

SETTINGS = dict(epochs=3, seeds=2, patience=2, hidden=8)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("engine"), n=70, horizon=5)


@pytest.fixture(scope="module")
def trained(fake, tmp_path_factory):
    root, store = fake
    cfg = TrainConfig(features=store, data=root, out=tmp_path_factory.mktemp("run") / "r", **SETTINGS)
    return engine.train_run(cfg, progress=False, make_plots=False)


def test_compare_sf_row_equals_sf_train(fake, trained, tmp_path):
    root, store = fake
    cfg = CompareConfig(data=(root,), features=(store,), models=("sf",), workers=1, out=tmp_path,
                        train=TrainConfig(**SETTINGS))
    row = next(iter(run_compare(cfg, progress=False).tables.values()))[0]
    for split in ("val", "test"):
        assert row[split]["per_seed"] == trained.metrics[split]["per_seed"], split
        assert row[split]["mean"] == trained.metrics[split]["mean"]


def test_run_folder_records_the_split(fake, trained):
    root, store = fake
    saved = read_split(trained.out)
    assert saved == trained.prepared.product_split
    frame = pl.read_parquet(trained.out / "split.parquet")
    assert frame.columns == ["product_id", "split"] and frame.height == 70
    # a split given by product reproduces the parts exactly (what --resume and the ablation's second store use)
    again = engine.prepare(TrainConfig(**SETTINGS), load_features(store), load_dataset(root), split=saved)
    assert again.split_id == trained.prepared.split_id


def test_train_seed_is_the_unit_of_work(fake, trained):
    """One (config, seed) through the public entry point gives the run's own per-seed scores."""
    cfg = trained.config
    res = engine.train_seed(cfg, trained.prepared, seed=1)
    assert res.metrics["val"] == trained.metrics["val"]["per_seed"][1]
    assert res.forecasts["val"].shape == (len(trained.prepared.parts["val"]), 5)
    assert res.best_epoch == json.loads((trained.out / "metrics.json").read_text())["training"]["best_epoch"][1]


def test_saved_split_naming_unknown_products_is_refused(fake):
    root, store = fake
    with pytest.raises(SfError, match="split names 1 product"):
        engine.prepare(TrainConfig(), load_features(store), load_dataset(root),
                       split={"train": ["p0000", "nope"], "val": ["p0001"], "test": []})
