"""The LightGBM baseline: what it reads (nothing after a product's release), early stopping on the validation
products the engine gives it, and a clean skip where lightgbm is not installed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast import engine
from sf.forecast.baselines import create_baseline, gbm
from sf.forecast.config import TrainConfig
from sf.forecast.inputs import build_inputs
from sf.studies import compare
from tests.fakes import make_dataset

needs_lightgbm = pytest.mark.skipif(not gbm.available(), reason=gbm.missing_reason())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("gbm"), n=300, horizon=6)
    cfg = TrainConfig(features=store, data=root)
    return engine.prepare(cfg, load_features(store), load_dataset(root))


@needs_lightgbm
def test_lightgbm_with_image_components_beats_the_mean_curve_where_the_features_drive_sales(prepared):
    mean = engine.fit_baseline("mean_curve", prepared)
    for name in ("lightgbm_pca",):
        res = engine.fit_baseline(name, prepared)
        assert res.metrics["test"]["WAPE"] < mean.metrics["test"]["WAPE"] - 5, name
        assert res.metrics["val"]["WAPE"] < mean.metrics["val"]["WAPE"] - 5, name


@needs_lightgbm
def test_lightgbm_stops_early_on_the_validation_products_it_is_given(prepared, monkeypatch):
    parts = prepared.parts
    given = create_baseline("lightgbm", max_rounds=400).fit(parts["train"], val=parts["val"])
    carved = create_baseline("lightgbm", max_rounds=400).fit(parts["train"])  # its own latest 20%
    assert given.best_rounds_ != carved.best_rounds_ or not np.allclose(given.predict(parts["test"]),
                                                                      carved.predict(parts["test"]))
    seen = []

    def record(self, train, val=None):
        seen.append(val)
        return self

    monkeypatch.setattr(gbm.LightGBMBaseline, "fit", record)
    monkeypatch.setattr(gbm.LightGBMBaseline, "predict", lambda self, inp: np.zeros((len(inp), inp.horizon)))
    engine.fit_baseline("lightgbm", prepared)
    assert seen[0] is parts["val"]  # the engine hands it the validation products the neural models stop on


@needs_lightgbm
@pytest.mark.parametrize("per_step", [False, True])
def test_lightgbm_reads_nothing_after_a_product_s_release(prepared, per_step):
    parts = prepared.parts
    model = create_baseline("lightgbm_pca", max_rounds=100, per_step=per_step).fit(parts["train"], val=parts["val"])
    assert len(model.models_) == (parts["train"].horizon if per_step else 1)
    test = parts["test"]
    base = model.predict(test)
    rng = np.random.default_rng(0)
    later = replace(test, y=rng.uniform(0, 1e4, test.y.shape).astype(np.float32), y_mask=~test.y_mask,
                    exog=np.concatenate([test.exog[:, : test.lookback],
                                         rng.uniform(0, 1, test.exog[:, test.lookback:].shape).astype(np.float32)], 1))
    np.testing.assert_array_equal(model.predict(later), base)  # own sales and post-release exog changed: same
    # ...while what it does read moves the forecast (the image components, here)
    moved = replace(test, image_pooled=test.image_pooled[::-1].copy())
    assert not np.array_equal(model.predict(moved), base)


def test_without_lightgbm_the_default_rows_skip_it_with_a_reason(monkeypatch):
    monkeypatch.setattr(gbm, "available", lambda: False)
    rows = [c.name for c in compare.contenders(compare.DEFAULT_MODELS)]
    assert "lightgbm" not in rows and "lightgbm_pca" not in rows and "sf" in rows
    assert compare.skipped_note(compare.DEFAULT_MODELS) == [f"lightgbm, lightgbm_pca skipped: {gbm.missing_reason()}"]
    with pytest.raises(SfError, match=r"lightgbm is not installed \(pip install 'sf\[lightgbm\]'\)"):
        compare.contenders(("mean_curve", "lightgbm"))
    with pytest.raises(SfError, match="lightgbm is not installed"):
        gbm.LightGBMBaseline().fit(None)
