"""LightGBM on (product, step) rows: the model practitioners reach for first in cold-start forecasting.

It reads the inputs the neural models read at a product's release, nothing later:
    attribute codes      (categorical; code 0 = a value the training products do not have)
    release calendar     week-of-year sine / cosine, month, has a release date
    pre-release exog     per linked series over the lookback window: mean, mean of its last 4 and 13 weeks, last
                         value, and the last 4 weeks' mean minus the 13 weeks' (the trend at release)
    popularity signals   sf.forecast.popularity, from the training products whose sales were in by the release
    step                 the horizon step: one model for every step (default), or with `per_step` one per step
    with `pca > 0`       the first `pca` principal components of the pooled image and of the pooled text vectors,
                         fitted on the training products

Target: units / ū (ū the training products' mean units per observed cell), L1 objective (pooled WAPE's
minimiser is the median). Boosting stops early on the validation products when `fit` is given them (the
engine gives every baseline that takes `val` the fold's validation part), else on the latest 20% of the
training products by release date. Deterministic: one thread, fixed seed.
"""

from __future__ import annotations

import numpy as np

from sf.errors import SfError
from sf.forecast.baselines.base import register_baseline
from sf.forecast.inputs import Inputs, concat
from sf.forecast.popularity import PopularityReference, popularity_features

EARLY_STOPPING = 50  # rounds without a better validation L1
NAMES = ("lightgbm", "lightgbm_pca")  # the baselines that need the lightgbm package


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("lightgbm") is not None


def missing_reason() -> str:
    return "lightgbm is not installed (pip install 'sf[lightgbm]')"


def _exog_summaries(inp: Inputs) -> np.ndarray:
    lb = inp.lookback
    if lb == 0 or inp.exog.shape[2] == 0:
        return np.zeros((len(inp), 0), np.float32)
    past = inp.exog[:, :lb]  # up to the release only
    last4, last13 = past[:, -min(4, lb):].mean(1), past[:, -min(13, lb):].mean(1)
    return np.concatenate([past.mean(1), last4, last13, past[:, -1], last4 - last13], axis=1).astype(np.float32)


def _calendar(inp: Inputs) -> np.ndarray:
    known = ~np.isnat(inp.release)
    month = np.where(known, inp.release.astype("datetime64[M]").astype(np.int64) % 12 + 1, 0)
    return np.column_stack([inp.calendar[:, 0, 0], inp.calendar[:, 0, 1], month, known]).astype(np.float32)


class _PCA:
    def __init__(self, x: np.ndarray, k: int) -> None:
        x = np.asarray(x, np.float64)
        self.mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.axes = vt[:k]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) @ self.axes.T).astype(np.float32)


@register_baseline("lightgbm", "LightGBM (L1) on attributes, release calendar, pre-release exog summaries and "
                   "popularity signals; one model over (product, step) rows; no image or text")
class LightGBMBaseline:
    pca = 0  # principal components of the pooled image / text vectors (the `lightgbm_pca` variant sets it)

    def __init__(self, learning_rate: float = 0.05, num_leaves: int = 31, min_data_in_leaf: int = 20,
                 max_rounds: int = 2000, feature_fraction: float = 0.8, seed: int = 0, pca: int | None = None,
                 per_step: bool = False) -> None:
        self.params = {"objective": "l1", "learning_rate": learning_rate, "num_leaves": num_leaves,
                       "min_data_in_leaf": min_data_in_leaf, "feature_fraction": feature_fraction,
                       "bagging_seed": seed, "feature_fraction_seed": seed, "seed": seed, "num_threads": 1,
                       "deterministic": True, "force_row_wise": True, "verbose": -1}
        self.max_rounds, self.per_step = max_rounds, per_step
        self.pca = self.pca if pca is None else pca

    # -- features
    def _static(self, inp: Inputs) -> np.ndarray:
        blocks = [inp.attributes.astype(np.float32), _calendar(inp), _exog_summaries(inp),
                  popularity_features(inp, self.reference_)]
        if self.pca:
            blocks += [self.image_pca_(inp.image_pooled) * inp.has_image[:, None],
                       self.text_pca_(inp.text_pooled) * inp.has_text[:, None]]
        return np.concatenate(blocks, axis=1)

    def _rows(self, inp: Inputs, observed_only: bool):
        static = self._static(inp)
        n, h = len(inp), inp.horizon
        x = np.concatenate([np.repeat(static, h, axis=0), np.tile(np.arange(h, dtype=np.float32), n)[:, None]], axis=1)
        y = (inp.y / self.scale_).reshape(-1)
        keep = inp.y_mask.reshape(-1) if observed_only else np.ones(n * h, bool)
        return x[keep], y[keep], x[keep, -1].astype(np.int64)

    # -- fit / predict
    def fit(self, train: Inputs, val: Inputs | None = None) -> "LightGBMBaseline":
        if not available():
            raise SfError(f"baseline lightgbm: {missing_reason()}")
        import lightgbm as lgb

        if val is None or not val.y_mask.any():
            train, val = _latest(train)
        seen = concat([train, val])  # every product whose sales the fit reads, as the neural fit's reference
        obs = seen.y[seen.y_mask]
        self.scale_ = float(max(obs.mean() if obs.size else 1.0, 1e-6))
        self.reference_ = PopularityReference.from_inputs(seen, self.scale_, recent=False)
        if self.pca:
            k = min(self.pca, len(train) - 1)
            self.image_pca_ = _PCA(train.image_pooled[train.has_image] if train.has_image.any() else train.image_pooled, k)
            self.text_pca_ = _PCA(train.text_pooled[train.has_text] if train.has_text.any() else train.text_pooled, k)
        cats = list(range(train.attributes.shape[1]))
        (xt, yt, st), (xv, yv, sv) = self._rows(train, True), self._rows(val, True)
        self.models_ = []  # (booster, its best round count): one, or one per step
        for step in range(train.horizon) if self.per_step else [None]:
            t, v = (slice(None), slice(None)) if step is None else (st == step, sv == step)
            dtrain = lgb.Dataset(xt[t], yt[t], categorical_feature=cats, free_raw_data=False)
            dval = lgb.Dataset(xv[v], yv[v], categorical_feature=cats, reference=dtrain)
            booster = lgb.train(self.params, dtrain, num_boost_round=self.max_rounds, valid_sets=[dval],
                                callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)])
            self.models_.append((booster, int(booster.best_iteration or self.max_rounds)))
        self.best_rounds_ = [r for _, r in self.models_]
        return self

    def predict(self, inp: Inputs) -> np.ndarray:
        x, _, steps = self._rows(inp, observed_only=False)
        yhat = np.zeros(len(x))
        for step, (booster, rounds) in enumerate(self.models_):
            rows = slice(None) if not self.per_step else steps == step
            yhat[rows] = booster.predict(x[rows], num_iteration=rounds)
        return np.clip(yhat * self.scale_, 0.0, None).reshape(len(inp), inp.horizon).astype(np.float32)


@register_baseline("lightgbm_pca", "LightGBM as `lightgbm`, plus 8 principal components each of the pooled image "
                   "and text vectors")
class LightGBMWithPCA(LightGBMBaseline):
    pca = 8


def _latest(train: Inputs, share: float = 0.2) -> tuple[Inputs, Inputs]:
    """The training products without, and with, the latest `share` of them by release date (undated: kept in)."""
    from sf.forecast.splits import make_split

    rows = make_split(train, "time", fractions=(1 - share, share, 0.0))
    if not len(rows["val"]):
        raise SfError(f"baseline lightgbm: no validation products for early stopping ({len(train)} in all)")
    return train.take(rows["train"]), train.take(rows["val"])
