"""The refit on train + validation (TrainConfig.refit): chosen on validation, scored honestly, kept."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.forecast import engine
from sf.forecast.checkpoints import load_run
from sf.forecast.config import TrainConfig
from sf.forecast.inputs import build_inputs
from tests.fakes import make_dataset

CFG = TrainConfig(epochs=6, patience=2, seeds=1, hidden=8, batch_size=16, lr=1e-2, device="cpu", refit=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("refit") / "d", n=160, horizon=6)
    return root, store, build_inputs(load_dataset(root), load_features(store))


def test_validation_scores_come_from_the_selection_fit_and_test_from_the_refit(data):
    *_, inp = data
    plain = engine.prepare(replace(CFG, refit=False), inputs=inp, store_attrs={})
    refit = engine.prepare(CFG, inputs=inp, store_attrs={})
    a, b = engine.train_seed(replace(CFG, refit=False), plain, 0), engine.train_seed(CFG, refit, 0)
    # The same selection fit: validation is untouched by the refit, which trained on those products.
    np.testing.assert_array_equal(a.forecasts["val"], b.forecasts["val"])
    assert a.metrics["val"] == b.metrics["val"]
    # Test comes from a different model, trained for the epoch count validation chose on more products.
    assert a.forecasts["test"].any() and b.forecasts["test"].any()
    assert not np.allclose(a.forecasts["test"], b.forecasts["test"])
    assert b.fitted.selection is not None and b.fitted.best_epoch == a.fitted.best_epoch
    assert len(b.fitted.history) == a.fitted.best_epoch
    assert [h["val_loss"] for h in b.fitted.selection_history] == [h["val_loss"] for h in a.fitted.history]
    # Both popularity references hold the sales of train + validation (each product counting only weeks sold
    # before its release), never a test product's.
    assert len(b.fitted.popularity.level) == len(a.fitted.popularity.level) == len(plain.parts["train"]) + len(plain.parts["val"])


def test_a_refit_seed_reports_the_epochs_its_selection_ran(data):
    *_, inp = data
    cfg = replace(CFG, epochs=20, lr=3e-2)  # early stopping ends this one after its best epoch
    res = engine.train_seed(cfg, engine.prepare(cfg, inputs=inp, store_attrs={}), 0)
    assert res.best_epoch < len(res.fitted.selection_history)
    assert res.epochs_run == len(res.fitted.selection_history)  # as metrics.json says, not the refit's length


def test_the_refit_knows_attribute_values_only_validation_products_have(data):
    *_, inp = data
    rows = engine.make_split(inp, "time")
    codes = inp.attributes.copy()
    codes[rows["val"], 0] = codes.max() + 1  # a value first seen in the validation season
    vocab = {**inp.attribute_vocab, inp.attribute_names[0]: [*inp.attribute_vocab[inp.attribute_names[0]], "new"]}
    inp = replace(inp, attributes=codes, attribute_vocab=vocab)
    prepared = engine.prepare(CFG, inputs=inp, store_attrs={})
    assert "new" not in prepared.parts["train"].attribute_vocab[inp.attribute_names[0]]
    assert "new" in prepared.final_train.attribute_vocab[inp.attribute_names[0]]
    assert (prepared.parts["val"].attributes[:, 0] == 0).all()  # unknown to the selection fit


def test_a_refit_run_folder_keeps_its_honest_validation_figures(data, tmp_path):
    root, store, _ = data
    cfg = replace(CFG, features=store, data=root, out=tmp_path / "run", seeds=2)
    first = engine.train_run(cfg, progress=False, make_plots=False)
    assert first.metrics["training"]["refit"] == [True, True]
    again = engine.train_run(cfg, resume=True, progress=False, make_plots=False)
    assert again.metrics["val"]["per_seed"] == first.metrics["val"]["per_seed"]
    assert again.metrics["test"]["per_seed"] == first.metrics["test"]["per_seed"]
    loaded = load_run(tmp_path / "run")
    assert all(m.selection is not None and len(m.selection["val"]) == len(first.prepared.parts["val"])
               for m in loaded.models)


def test_baselines_are_refit_like_the_models(data):
    """Test compares like with like: after a refit, a baseline too is fitted on train + validation for test."""
    *_, inp = data
    prepared = engine.prepare(CFG, inputs=inp, store_attrs={})
    res = engine.fit_baseline("mean_curve", prepared)
    np.testing.assert_allclose(res.forecasts["val"][0], engine.mean_curve(prepared.parts["train"]), rtol=1e-6)
    np.testing.assert_allclose(res.forecasts["test"][0], engine.mean_curve(prepared.final_train), rtol=1e-6)
    assert not np.allclose(engine.mean_curve(prepared.parts["train"]), engine.mean_curve(prepared.final_train))
