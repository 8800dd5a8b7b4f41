"""The one stage-2 engine: `sf train`, `sf compare` and `sf ablate` get the same numbers from the same settings,
the run folder records its split, and the per-(config, seed) entry point is what every study calls."""

from __future__ import annotations

import json
from dataclasses import replace

import polars as pl
import pytest

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast import engine
from sf.forecast.checkpoints import load_run
from sf.forecast.config import TrainConfig
from sf.forecast.run_folder import read_split
from sf.forecast.run_table import run_table
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


def test_sf_keeps_the_fused_dropout_its_validation_scores_better(fake, trained):
    """Each seed fits sf with fused dropout 0 and 0.2 and keeps the lower validation WAPE: the run's per-seed
    scores, its checkpoints and metrics.json are the kept fit's, and the record says what was tried."""
    cfg = trained.config
    record = json.loads((trained.out / "metrics.json").read_text())["training"]["choice"]
    loaded = load_run(trained.out).models
    for i, choice in enumerate(record):
        assert [t["fused_dropout"] for t in choice["tried"]] == [0.0, 0.2]
        best = min(choice["tried"], key=lambda t: t["val_wape"])
        assert choice["chosen"] == {"fused_dropout": best["fused_dropout"]}
        assert trained.metrics["val"]["per_seed"][i]["WAPE"] == best["val_wape"]
        assert trained.fits[i].hparams["fused_dropout"] == loaded[i].hparams["fused_dropout"] == best["fused_dropout"]
        assert loaded[i].choice == choice
    assert f"fused_dropout {', '.join(str(c['chosen']['fused_dropout']) for c in record)}" in run_table(trained.metrics).caption
    # each candidate is exactly the fit its setting makes alone, which then chooses nothing
    alone = engine.train_seed(replace(cfg, hparams={"fused_dropout": 0.2}), trained.prepared, seed=cfg.seed)
    assert alone.fitted.choice is None
    assert alone.metrics["val"]["WAPE"] == record[0]["tried"][1]["val_wape"]


@pytest.mark.parametrize("cfg, model, hparams", [
    (TrainConfig(), "sf", {"fused_dropout": 0.0}),  # set in the call
    (TrainConfig(hparams={"fused_dropout": 0.3}), "sf", None),  # set in the config
    (TrainConfig(choose_on_validation=False), "sf", None),  # switched off
    (TrainConfig(hparams={"modality_dropout": 0.2}), "sf", None),  # modality dropout drops F already
    (TrainConfig(), "ekambaram", None),  # a model that declares no choice
])
def test_a_choice_is_made_only_when_left_open(cfg, model, hparams):
    assert engine.choice_candidates(model, cfg, hparams) == [{}]


def test_sf_leaves_its_fused_dropout_to_validation_by_default():
    assert engine.choice_candidates("sf", TrainConfig()) == [{"fused_dropout": 0.0}, {"fused_dropout": 0.2}]
