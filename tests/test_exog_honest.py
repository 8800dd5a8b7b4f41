"""Honest inputs: by default no model reads the exogenous series after a product's release (a retailer
does not have them); `exog_future=True` (known-future covariates) is an explicit, recorded choice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.forecast.batching import TensorInputs
from sf.forecast.config import TrainConfig
from sf.forecast.models import Dims
from sf.forecast.inputs import build_inputs
from sf.forecast.run_table import run_table
from sf.forecast.fit import fit, predict
from tests.fakes import make_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def inp(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("fake"), n=64, horizon=6)
    return build_inputs(load_dataset(root), load_features(store))


def future_changed(inp):
    """The same products with other exog values over the horizon weeks only."""
    exog = inp.exog.copy()
    exog[:, inp.lookback:] = np.random.default_rng(1).uniform(0, 1, exog[:, inp.lookback:].shape)
    return replace(inp, exog=exog)


def test_batches_stop_at_the_release_unless_asked(inp):
    idx = np.arange(4)
    import torch

    honest = TensorInputs(inp, 1.0).batch(torch.as_tensor(idx))["exog"]
    future = TensorInputs(inp, 1.0, exog_future=True).batch(torch.as_tensor(idx))["exog"]
    assert inp.lookback > 0 and honest.shape[1] == inp.lookback
    assert future.shape[1] == inp.lookback + inp.horizon


@pytest.mark.parametrize("name", ["sf", "gtm", "ekambaram"])
def test_default_forecast_ignores_exog_after_release(inp, name):
    train, val = inp.take(np.arange(48)), inp.take(np.arange(48, 64))
    # lr 1e-2: two epochs at the default rate leave a two-layer head's forecasts all clipped at 0, which no input moves
    cfg = TrainConfig(epochs=2, seeds=1, hidden=8, lr=1e-2)
    other = future_changed(val)
    honest = fit(name, train, val, cfg, seed=0)
    assert honest.hparams["exog_future"] is False
    np.testing.assert_array_equal(predict(honest, val), predict(honest, other))
    # The flag is the only way in: then the horizon weeks do move the forecast.
    known = fit(name, train, val, replace(cfg, exog_future=True), seed=0)
    assert not np.allclose(predict(known, val), predict(known, other))


def test_tables_say_which_inputs(inp):
    metrics = {"name": "r", "model": "sf", "seeds": [0], "split": {"kind": "time", **{
        s: {"products": 1, "no_image_share": 0.0, "no_text_share": 0.0} for s in ("train", "val", "test")}},
        "val": {"mean": {"WAPE": 50.0}, "std": {}, "mean_curve": {"WAPE": 60.0}}}
    assert "pre-release inputs" in run_table(metrics).title
    assert "known-future covariates" in run_table({**metrics, "exog_future": True}).title


def test_popularity_signals_use_only_earlier_training_products(inp):
    from sf.forecast.popularity import PopularityReference, popularity_features

    ref = PopularityReference.from_inputs(inp, 1.0)
    feats = popularity_features(inp, ref)
    order = np.argsort(inp.release)
    first = order[0]
    # The earliest product has no earlier product: every signal says "no evidence".
    a = inp.attributes.shape[1]
    levels = [*range(0, 2 * a, 2), 2 * a, 2 * a + 1, *range(2 * a + 2, feats.shape[1], 2)]
    counts = [*range(1, 2 * a, 2), *range(2 * a + 3, feats.shape[1], 2)]
    assert np.allclose(feats[first, levels], ref.overall) and np.all(feats[first, counts] == 0)
    # Changing a product's own sales (and every later product's) leaves its signals unchanged, except the
    # "no evidence" constant (the reference's overall mean level, the same for every product).
    later = inp.release >= inp.release[order[len(order) // 2]]
    y = inp.y.copy()
    y[later] *= 10
    ref2 = PopularityReference.from_inputs(replace(inp, y=y), 1.0)
    mid = order[len(order) // 2]
    again = popularity_features(inp.take([mid]), ref2)[0]
    evidence = feats[mid] != ref.overall
    assert evidence.sum() >= 3
    np.testing.assert_allclose(again[evidence], feats[mid][evidence], rtol=1e-6)
    assert not np.allclose(popularity_features(inp.take(later), ref2), popularity_features(inp.take(later), ref))


def test_popularity_signals_never_read_a_week_sold_after_the_release(inp):
    """Products released shortly before p were still selling when p came out: the weeks they sold after
    p's release must not move p's signals, however large; the weeks before it are what p's buyer knew."""
    from sf.forecast.popularity import PopularityReference, popularity_features

    ref = PopularityReference.from_inputs(inp, 1.0)
    p = int(np.argsort(inp.release)[-1])
    week_ends = inp.release[:, None] + np.arange(1, inp.horizon + 1)[None, :] * np.timedelta64(inp.period_days, "D")
    after, before = week_ends > inp.release[p], week_ends <= inp.release[p]
    assert after[inp.release < inp.release[p]].any()  # the fixture has products still on sale at p's release
    signals = lambda y: popularity_features(inp.take([p]), PopularityReference.from_inputs(replace(inp, y=y), 1.0))[0]
    np.testing.assert_allclose(signals(np.where(after, inp.y * 50, inp.y)), signals(inp.y), rtol=1e-6)
    assert not np.allclose(signals(np.where(before, inp.y * 50, inp.y)), signals(inp.y))


def test_popularity_reference_travels_with_the_fit(inp):
    train, val = inp.take(np.arange(48)), inp.take(np.arange(48, 64))
    fitted = fit("sf", train, val, TrainConfig(epochs=1, seeds=1, hidden=8, popularity=True), seed=0)
    assert fitted.dims.popularity > 0 and "popularity" in fitted.model.reads
    assert predict(fitted, val).shape == (16, val.horizon)


def test_recent_sales_signals_can_be_left_out(inp):
    """recent_sales = False (tuning-log row 78): the reference then carries no weekly units, and a checkpoint's
    reference says which signals its model reads, so predict computes the same ones."""
    from sf.forecast.popularity import n_features

    train, val = inp.take(np.arange(48)), inp.take(np.arange(48, 64))
    n_attr = inp.attributes.shape[1]
    sizes = {}
    for recent in (False, True):
        fitted = fit("sf", train, val, TrainConfig(epochs=1, seeds=1, hidden=8, recent_sales=recent), seed=0)
        assert fitted.popularity.recent is recent
        sizes[recent] = fitted.dims.popularity
        assert predict(fitted, val).shape == (16, val.horizon)
    assert TrainConfig().recent_sales is False
    assert sizes == {False: n_features(n_attr, recent=False), True: n_features(n_attr, recent=True)}
    assert sizes[True] > sizes[False]


def test_popularity_signals_are_computed_once_per_split(inp, monkeypatch):
    """The fits of a study or a seed loop reuse the split's signals; new inputs (or a refit) compute their own."""
    from sf.forecast import fit as fit_module

    calls = []
    real = fit_module.PopularityReference.from_inputs
    monkeypatch.setattr(fit_module.PopularityReference, "from_inputs",
                        staticmethod(lambda *a, **k: calls.append(1) or real(*a, **k)))
    train, val = inp.take(np.arange(48)), inp.take(np.arange(48, 64))
    cfg = TrainConfig(epochs=1, seeds=1, hidden=8, popularity=True)
    first, second = (fit("sf", train, val, cfg, seed=s) for s in (0, 1))
    assert len(calls) == 1 and first.popularity is second.popularity
    other = fit("sf", train, inp.take(np.arange(48, 64)), cfg, seed=0)  # equal data, other object: computed again
    assert len(calls) == 2
    np.testing.assert_array_equal(predict(other, val), predict(first, val))
    fit("sf", train, train.take([]), cfg, seed=0)  # a refit computes its own reference
    assert len(calls) == 3


def test_the_papers_config_stays_a_named_preset(tmp_path):
    from sf.forecast.config import load_config

    paper = load_config("paper", seeds=2)
    assert (paper.model, paper.fusion, paper.head, paper.hidden, paper.loss, paper.target) == (
        "sf", "biattn", "bilstm", 30, "mse", "scaled")
    assert not paper.popularity and paper.ema == 0 and paper.seeds == 2
    # The paper's head has one BiLSTM layer; sf's default stacks two.
    from sf.forecast.fit import model_hparams
    from sf.forecast.models import create_model

    dims = Dims(image_channels=4, regions=4, text_dim=6, text_len=5, exog_terms=1, lookback=2, horizon=3,
                calendar=2, attribute_cardinalities=(3,))
    layers = {name: create_model("sf", dims, **model_hparams("sf", cfg)).head.rnn.num_layers
              for name, cfg in (("paper", paper), ("default", load_config()))}
    assert layers == {"paper": 1, "default": 2}
    passes = {name: create_model("sf", dims, **model_hparams("sf", cfg)).mc_passes
              for name, cfg in (("paper", paper), ("default", load_config()))}
    assert passes == {"paper": 0, "default": 20}  # the paper forecasts in one pass without dropout
    with pytest.raises(Exception, match="preset"):
        load_config(tmp_path / "nope.toml")
