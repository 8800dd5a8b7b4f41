"""Training from cached features: fit / predict for every model, early stopping, reproducibility, quantiles,
and `sf train` end to end (run folder, checkpoints that rebuild the model, resume, fingerprint refusal)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch

from sf.cache.reader import load_features, read_attrs
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast.batching import TensorInputs, decode_target
from sf.forecast.models import MODELS
from sf.forecast.config import TrainConfig, load_config
from sf.forecast.inputs import build_inputs
from sf.forecast.metrics import compute_metrics, hit_threshold
from sf.forecast.checkpoints import check_fingerprint, load_run
from sf.forecast.engine import mean_curve, train_run
from sf.forecast.splits import make_split
from sf.forecast.fit import fit, predict
from tests.fakes import make_dataset, write_store

FAST = TrainConfig(epochs=4, patience=2, seeds=1, batch_size=32, device="cpu")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("train") / "d", n=160, horizon=6)
    inp = build_inputs(load_dataset(root), load_features(store))
    split = make_split(inp, "time")
    return root, store, inp, {k: inp.take(v) for k, v in split.items()}


def test_sf_model_learns_what_drives_sales_and_beats_the_mean_curve(fake):
    *_, parts = fake
    tr, va = parts["train"], parts["val"]
    fitted = fit("sf", tr, va, replace(FAST, epochs=25, patience=5), seed=0)
    thr = hit_threshold(tr.y, tr.y_mask)
    model = compute_metrics(va.y, predict(fitted, va), va.y_mask, thr)
    baseline = compute_metrics(va.y, np.tile(mean_curve(tr), (len(va), 1)), va.y_mask, thr)
    assert model["WAPE"] < 0.7 * baseline["WAPE"]
    assert model["AUC"] > 0.8
    losses = [h["val_loss"] for h in fitted.history]
    assert fitted.best_epoch == int(np.argmin(losses)) + 1
    assert len(fitted.history) <= min(25, fitted.best_epoch + 5)


@pytest.mark.numerics
def test_same_seed_same_forecasts_other_seed_others(fake):
    *_, parts = fake
    a = predict(fit("sf", parts["train"], parts["val"], FAST, seed=3), parts["val"])
    b = predict(fit("sf", parts["train"], parts["val"], FAST, seed=3), parts["val"])
    c = predict(fit("sf", parts["train"], parts["val"], FAST, seed=4), parts["val"])
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.numerics
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_fits_and_predicts_units(name, fake):
    *_, parts = fake
    fitted = fit(name, parts["train"], parts["val"], replace(FAST, epochs=1), seed=0)
    fitted.model.mc_passes = 0  # the units of one pass without dropout (MC dropout: test_mc_dropout_...)
    test = parts["test"]
    yhat = predict(fitted, test)
    assert yhat.shape == test.y.shape and (yhat >= 0).all() and np.isfinite(yhat).all()
    # Units: the model's outputs on a batch of the one builder, in the target it trained on, decoded.
    batch = TensorInputs.for_model(test, fitted.model, fitted.y_scale, fitted.target).batch_all()
    with torch.no_grad():
        raw = fitted.model.eval()(batch)[..., 0].numpy()
    expected = np.clip(decode_target(raw, fitted.y_scale, fitted.target), 0, None)
    # predict() builds its batches its own way and runs one thread, the reference may run more: same maths,
    # possibly another float32 summation order, ~K 2^-24 per layer for these K <= 64..256-wide layers, a few
    # layers deep: 1e-4 relative (atol for outputs clipped at 0). Measured: <= 1 ulp (gtm, |yhat| ~ 66).
    np.testing.assert_allclose(yhat, expected, rtol=1e-4, atol=1e-4)


def test_scaled_target_also_learns(fake):
    *_, parts = fake
    fitted = fit("sf", parts["train"], parts["val"], replace(FAST, target="scaled", epochs=25, patience=5), seed=0)
    va = parts["val"]
    thr = hit_threshold(parts["train"].y, parts["train"].y_mask)
    model = compute_metrics(va.y, predict(fitted, va), va.y_mask, thr)
    baseline = compute_metrics(va.y, np.tile(mean_curve(parts["train"]), (len(va), 1)), va.y_mask, thr)
    assert fitted.target == "scaled" and model["WAPE"] < 0.7 * baseline["WAPE"]


def test_observed_weeks_sharpen_the_forecast(fake):
    *_, parts = fake
    # Without image and text (fusion none) a product's level can only come from its first weeks of sales.
    # lr 3e-3: in 20 epochs at 1e-3 the two-layer head has barely learned to read the given weeks (ratio 0.90)
    cfg = replace(FAST, fusion="none", observe_max=4, epochs=20, patience=20, batch_size=8, hidden=16, lr=3e-3)
    fitted = fit("sf", parts["train"], parts["val"], cfg, seed=0)
    va = parts["val"]
    err = [np.abs(predict(fitted, va, observed_steps=k) - va.y)[:, 4:].sum() for k in (0, 4)]
    assert err[1] < 0.8 * err[0]  # the first 4 weeks given: better forecasts of the weeks after them


def test_sf_model_returns_its_attention_maps(fake):
    *_, parts = fake
    fitted = fit("sf", parts["train"], parts["val"], replace(FAST, epochs=1, fusion="biattn"), seed=0)
    va = parts["val"]
    batch = TensorInputs.for_model(va.take(np.arange(4)), fitted.model, fitted.y_scale, fitted.target).batch_all()
    with torch.no_grad():
        fused, att = fitted.model.representation(batch)
    L, R = va.text_tokens.shape[1], va.image_grid.shape[1]
    assert fused.shape == (4, fitted.hparams.get("hidden", 30))
    assert att["t2i"].shape == (4, L, R) and att["i2t"].shape == (4, R, L)


def test_quantile_loss_gives_ordered_quantiles(fake):
    *_, parts = fake
    cfg = replace(FAST, loss="quantile", quantiles=(0.1, 0.5, 0.9), epochs=3)
    fitted = fit("sf", parts["train"], parts["val"], cfg, seed=0)
    yq = predict(fitted, parts["val"])
    assert yq.shape == (*parts["val"].y.shape, 3)
    assert (np.diff(yq, axis=-1) >= 0).all()
    m = compute_metrics(parts["val"].y, yq, parts["val"].y_mask, 1.0, quantiles=cfg.quantiles)
    assert {"pinball", "coverage"} <= set(m)


def test_sf_train_end_to_end(fake, tmp_path, cli):
    root, store, *_ = fake
    args = ["train", "--features", store, "--data", root, "--seeds", "2", "--epochs", "3", "--hidden", "8", "--refit"]
    code, out, err = cli(*args, "--out", tmp_path / "a")
    assert code == 0, err
    assert "WAPE" in out and "mean curve" in out
    run = tmp_path / "a"
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        assert {"MAE", "RMSE", "R2", "AUC", "Accuracy", "WAPE", "WAPE_per_step"} <= set(metrics[split]["mean"])
        assert len(metrics[split]["per_seed"]) == 2 and "WAPE" in metrics[split]["mean_curve"]
        assert 0 <= metrics["split"][split]["no_image_share"] <= 1
    for png in ("learning_curves.png", "forecasts_val.png", "totals.png"):
        assert (run / png).stat().st_size > 1000
    config = json.loads((run / "config.json").read_text())
    assert config["hidden"] == 8 and config["store"]["fingerprint"] == read_attrs(store)["fingerprint"]

    # Same seed, same data: the same metrics.
    cfg = load_config(None, features=store, data=root, seeds=2, epochs=3, hidden=8, refit=True, out=tmp_path / "b")
    again = train_run(cfg, progress=False, make_plots=False).metrics
    assert again["val"]["per_seed"] == metrics["val"]["per_seed"]
    assert again["test"]["per_seed"] == metrics["test"]["per_seed"]

    # The checkpoints alone rebuild the models and reproduce the saved forecasts.
    pred = pl.read_parquet(run / "predictions.parquet")
    assert set(pred.columns) >= {"product_id", "split", "step", "y", "yhat", "seed"}
    n_eval = metrics["split"]["val"]["products"] + metrics["split"]["test"]["products"]
    assert pred.height == n_eval * 6 * 2
    loaded = load_run(run)
    assert [m.seed for m in loaded.models] == [0, 1] and loaded.horizon == 6
    inp = build_inputs(load_dataset(root), load_features(store), attribute_vocab=loaded.attribute_vocab)
    # (test: the saved model is the refit on train + validation, whose validation forecasts are the selection fit's)
    test_ids = pred.filter((pl.col("split") == "test") & (pl.col("seed") == 1)).sort("product_id", "step")
    rows = [inp.product_ids.index(p) for p in test_ids["product_id"].unique(maintain_order=True)]
    np.testing.assert_allclose(predict(loaded.models[1], inp.take(rows)).reshape(-1), test_ids["yhat"].to_numpy(),
                               rtol=1e-5, atol=1e-4)

    # --resume reuses finished seeds instead of retraining them.
    code, out, err = cli(*args, "--out", run, "--resume")
    assert code == 0, err
    assert "reused" in err  # a note: stderr, with the progress
    assert json.loads((run / "metrics.json").read_text())["val"]["per_seed"] == metrics["val"]["per_seed"]


def test_another_store_is_refused_with_what_differs(fake, tmp_path, cli):
    root, store, *_ = fake
    cfg = load_config(None, features=store, data=root, seeds=1, epochs=1, out=tmp_path / "r")
    train_run(cfg, progress=False, make_plots=False)
    f = load_features(store)
    other = write_store(tmp_path / "other.h5", f.keys, f.image_pooled.astype(np.float32),
                        f.text_pooled.astype(np.float32), backbone="fake_resnet18",
                        content_hashes=list(f.content_hash))
    code, _, err = cli("train", "--features", other, "--data", root, "--seeds", "1", "--epochs", "1",
                       "--out", tmp_path / "r", "--resume")
    assert code == 2
    assert "backbone" in err and "fake_resnet18" in err
    with pytest.raises(SfError, match="backbone"):
        check_fingerprint(tmp_path / "r", read_attrs(other))
    check_fingerprint(tmp_path / "r", read_attrs(store))  # the right store passes


def test_config_file_flags_and_errors(tmp_path):
    toml = tmp_path / "train.toml"
    toml.write_text('fusion = "concat"\nhead = "lstm"\nquantiles = [0.1, 0.9]\nepochs = 7\n')
    cfg = load_config(toml, epochs=9)
    assert (cfg.fusion, cfg.head, cfg.quantiles, cfg.epochs) == ("concat", "lstm", (0.1, 0.9), 9)
    toml.write_text('epochz = 3\n')
    with pytest.raises(SfError, match="epochz"):
        load_config(toml)
    toml.write_text('epochs = "many"\n')
    with pytest.raises(SfError, match="epochs"):
        load_config(toml)
    with pytest.raises(SfError, match="fusion"):
        load_config(None, fusion="sideways").resolved()
    with pytest.raises(SfError, match="quantiles"):
        load_config(None, loss="quantile", quantiles=(0.9, 0.1)).resolved()


def test_weight_averaging_scores_and_keeps_the_averaged_weights(tmp_path):
    """With ema, validation scores the averaged weights and the fit keeps them (not the last step's)."""
    from sf.forecast.fit import evaluate as val_loss_of
    from sf.forecast.batching import TensorInputs

    root, store = make_dataset(tmp_path, n=64, horizon=6)
    inp = build_inputs(load_dataset(root), load_features(store))
    tr, va = inp.take(np.arange(48)), inp.take(np.arange(48, 64))
    fitted = fit("sf", tr, va, TrainConfig(epochs=3, patience=3, hidden=8, ema=0.9), seed=0)
    from sf.forecast.losses import Objective
    from sf.forecast.popularity import with_popularity

    data = TensorInputs(with_popularity(va, fitted.popularity), fitted.y_scale, reads=fitted.model.reads,
                        target=fitted.target)
    best = fitted.history[fitted.best_epoch - 1]["val_loss"]
    assert val_loss_of(fitted.model, data, Objective(fitted.loss))[0] == pytest.approx(best, rel=1e-5)
    plain = fit("sf", tr, va, TrainConfig(epochs=3, patience=3, hidden=8, ema=0.0), seed=0)
    assert [h["val_loss"] for h in plain.history] != [h["val_loss"] for h in fitted.history]


def test_each_epochs_validation_wape_is_the_one_predict_gives(fake):
    """The history's val_wape (what `sf tune` prunes on) of the kept epoch is the pooled WAPE of `predict` in one
    pass without dropout; sf's MC-dropout forecast is then scored on its own (the epoch is chosen without it)."""
    *_, parts = fake
    tr, va = parts["train"], parts["val"]
    # the last: a point quantile that is not the middle one (0.5 of four)
    for over in ({"target": "log"}, {"target": "scaled"}, {"loss": "quantile", "quantiles": (0.1, 0.5, 0.9, 0.95)}):
        fitted = fit("sf", tr, va, replace(FAST, hidden=8, **over), seed=1)
        passes, fitted.model.mc_passes = fitted.model.mc_passes, 0
        wape = compute_metrics(va.y, predict(fitted, va), va.y_mask, 1.0, over.get("quantiles"))["WAPE"]
        assert fitted.history[fitted.best_epoch - 1]["val_wape"] == pytest.approx(wape, rel=1e-4)
        assert all(np.isfinite(h["val_wape"]) for h in fitted.history)
        fitted.model.mc_passes = passes
        mc = compute_metrics(va.y, predict(fitted, va), va.y_mask, 1.0, over.get("quantiles"))["WAPE"]
        assert passes == 20 and np.isfinite(mc) and mc != pytest.approx(wape, rel=1e-4)


def test_recency_weights_favour_the_latest_releases(fake):
    from sf.forecast.fit import recency_weights

    *_, parts = fake
    tr = parts["train"]
    assert torch.equal(recency_weights(tr, 0.0), torch.ones(len(tr)))
    days = tr.release.astype("datetime64[D]").astype(np.int64)
    w = recency_weights(tr, 30.0).numpy()
    assert w.mean() == pytest.approx(1.0, rel=1e-5)
    latest, earliest = int(np.argmax(days)), int(np.argmin(days))
    gap = days[latest] - days[earliest]
    assert w[latest] / w[earliest] == pytest.approx(2.0 ** (gap / 30.0), rel=1e-4) and gap > 0
    undated = replace(tr, release=np.where(np.arange(len(tr)) == 0, np.datetime64("NaT"), tr.release))
    wu = recency_weights(undated, 30.0).numpy()
    assert wu[0] == pytest.approx(1.0, rel=1e-5) and wu[1:].mean() == pytest.approx(1.0, rel=1e-5)  # the dated mean
    # The weights reach the loss: the same seed trains another model with them.
    plain = predict(fit("sf", tr, parts["val"], FAST, seed=0), parts["val"])
    recent = predict(fit("sf", tr, parts["val"], replace(FAST, recency_half_life=30.0), seed=0), parts["val"])
    assert not np.allclose(plain, recent)


def test_checkpoints_record_every_model_argument_and_old_ones_load(fake, tmp_path):
    """A default that changes (sf's head went from one BiLSTM layer to two) must not rebuild a saved model
    differently: checkpoints record every constructor argument, and older ones get the defaults of their day."""
    from sf.forecast.checkpoints import load_checkpoint, save_checkpoint

    *_, parts = fake
    tr, va = parts["train"], parts["val"]
    fitted = fit("sf", tr, va, replace(FAST, epochs=1, hparams={"fused_dropout": 0.3}), seed=0)
    path = save_checkpoint(tmp_path / "new.pt", fitted, FAST, {}, tr.attribute_vocab)
    assert torch.load(path, weights_only=True)["hparams"]["layers"] == 2
    assert load_checkpoint(path).model.head.rnn.num_layers == 2

    one = fit("sf", tr, va, replace(FAST, epochs=1, hparams={"layers": 1}), seed=0)
    old = save_checkpoint(tmp_path / "old.pt", one, FAST, {}, tr.attribute_vocab)
    payload = torch.load(old, weights_only=True)
    payload["hparams"] = {k: v for k, v in payload["hparams"].items() if k not in ("layers", "mc_passes")}  # as written before
    torch.save(payload, old)
    loaded = load_checkpoint(old)
    assert loaded.model.head.rnn.num_layers == 1 and loaded.model.mc_passes == 0
    one.model.mc_passes = 0  # what such a model did: one pass without dropout
    np.testing.assert_array_equal(predict(loaded, va), predict(one, va))

    # Written before fused_dropout (2026-12-01): its MC passes never silenced the fused vector, whatever the
    # default is now.
    payload = torch.load(path, weights_only=True)
    del payload["hparams"]["fused_dropout"]
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.model.fused_dropout == 0.0 and loaded.model.mc_passes > 0
    fitted.model.fused_dropout = 0.0
    np.testing.assert_array_equal(predict(loaded, va), predict(fitted, va))


def _static_blocks(model, batch_of):
    """The head's input split into sf's fused vector F, trends summary z and popularity summary p (B, d each)."""
    seen = {}
    handle = model.head.register_forward_pre_hook(lambda _, args: seen.update(x=args[0][:, 0].detach()))
    model(batch_of)
    handle.remove()
    d = model.fusion.out_dim
    return seen["x"][:, :d], seen["x"][:, d:2 * d], seen["x"][:, 2 * d:3 * d]


def test_block_dropout_silences_whole_blocks_per_product_only_while_dropout_is_on(fake):
    """sf's fused-vector dropout zeroes a product's whole F (never part of it, never the trends or popularity
    blocks) at about its rate; modality dropout zeroes F, z and p each; both only while dropout is on."""
    from sf.forecast.batching import TensorInputs

    *_, parts = fake
    tr, va = parts["train"], parts["val"]
    fitted = fit("sf", tr, va, replace(FAST, epochs=1, hparams={"fused_dropout": 0.4}), seed=0)
    model = fitted.model
    big = tr.take(np.resize(np.arange(len(tr)), 3000))
    batch = TensorInputs.for_model(big, model, fitted.y_scale).batch_all()
    assert model.summarise_lookback and model.popularity is not None  # all three blocks are there
    silent = lambda block: (block == 0).all(1).float().mean().item()  # noqa: E731
    model.train()
    torch.manual_seed(0)
    # The mechanism on a block of its own: whole rows or nothing (F itself also has elementwise dropout).
    block = torch.rand(4000, 6) + 0.5
    out = model.drop_block(block, 0.3)
    rows = (out == 0).all(1)
    assert torch.equal(out[~rows], block[~rows]) and ((out == 0).any(1) == rows).all()
    assert 0.27 < rows.float().mean().item() < 0.33
    assert torch.equal(model.drop_block(block, 0.0), block)
    f, z, p = _static_blocks(model, batch)
    assert 0.36 < silent(f) < 0.44 and silent(z) == 0 and silent(p) == 0
    model.eval()
    assert torch.equal(model.drop_block(block, 0.3), block)
    f, z, p = _static_blocks(model, batch)
    assert silent(f) == 0
    model.train()
    model.fused_dropout, model.modality_dropout = 0.0, 0.3
    f, z, p = _static_blocks(model, batch)
    assert all(0.26 < silent(b) < 0.34 for b in (f, z, p))
    model.fused_dropout = model.modality_dropout = 0.0
    assert silent(_static_blocks(model, batch)[0]) == 0
    model.eval()
    for name in ("modality_dropout", "fused_dropout"):
        with pytest.raises(SfError, match=name):
            fit("sf", tr, va, replace(FAST, epochs=1, hparams={name: 1.0}), seed=0)


def test_mc_dropout_forecast_is_the_mean_of_dropout_passes_and_reproducible(fake):
    """sf forecasts with MC dropout (the mean of passes with dropout on): the same inputs always give the same
    forecast, the caller's random state is untouched, and 0 passes is the plain forecast without dropout."""
    *_, parts = fake
    tr, va = parts["train"], parts["val"]
    fitted = fit("sf", tr, va, replace(FAST, epochs=2, hparams={"mc_passes": 8}), seed=3)
    assert fitted.model.mc_passes == 8
    torch.manual_seed(99)
    state = torch.get_rng_state()
    a = predict(fitted, va)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(a, predict(fitted, va))
    assert not fitted.model.training
    rows = [3, 0]  # a product's forecast does not depend on the other products in the call
    np.testing.assert_array_equal(predict(fitted, va.take(rows)), a[rows])
    fitted.model.mc_passes = 0
    plain = predict(fitted, va)
    one = []
    fitted.model.mc_passes = 1
    for k in range(2):
        one.append(predict(fitted, va))
    np.testing.assert_array_equal(one[0], one[1])
    assert np.abs(a - plain).max() > 0 and np.abs(one[0] - plain).max() > 0  # dropout was on
    # 8 passes average out more of the dropout noise than 1: closer to every other 8-pass draw.
    fitted.model.mc_passes = 8
    fitted.seed = 4
    b = predict(fitted, va)
    assert np.abs(a - b).mean() < np.abs(one[0] - a).mean()
    with pytest.raises(SfError, match="mc_passes"):
        fit("sf", tr, va, replace(FAST, epochs=1, hparams={"mc_passes": -1}), seed=0)


def test_mc_dropout_of_a_model_without_keyed_draws_runs_one_product_per_call(fake):
    """A model whose dropout draws come from the global stream (ForecastModel.keyed_draws False) cannot share a
    forward call with other products: its passes run one product at a time, seeded per product, and keep the same
    promises (reproducible, independent of the other rows, the caller's random state untouched)."""
    *_, parts = fake
    tr, va = parts["train"], parts["val"]
    fitted = fit("sf", tr, va, replace(FAST, epochs=2, hparams={"mc_passes": 8}), seed=3)
    keyed = predict(fitted, va)
    fitted.model.keyed_draws = False
    torch.manual_seed(99)
    state = torch.get_rng_state()
    a = predict(fitted, va)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(a, predict(fitted, va))
    rows = [3, 0]
    np.testing.assert_array_equal(predict(fitted, va.take(rows)), a[rows])
    assert np.abs(a - keyed).max() > 0  # the other path: the global stream's draws, not the keyed ones
