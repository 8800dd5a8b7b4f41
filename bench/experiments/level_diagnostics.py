"""Tuning-log row 86: where sf's validation error on VISUELLE comes from, and what a tabular learner makes of the
same static inputs.

    nice -n 10 python bench/experiments/level_diagnostics.py --seeds 3 \
        --features /work/cache/visuelle_efficientnet_lite0.h5 --data /work/cache/data/visuelle

Trains sf's defaults (no refit, as bench/tuning.py) and scores its validation and test forecasts four ways:
    as is            pooled WAPE per seed
    scaled by c      every forecast times c (is the under-forecast, forecast/actual ~0.8, costing WAPE?)
    oracle level     sf's weekly shape, each product's true total: the error left when the level is right
    oracle shape     the training products' mean weekly shape times each product's true total
Then a gradient-boosted level model (scikit-learn's HistGradientBoostingRegressor, which comes with the
[pretrained] extra's sentence-transformers; L1 on log mean weekly units, 3 seeds) on the static inputs sf reads
besides the pictures and words: attribute codes (categorical), the trends' means over the last 4 / 13 / 52 weeks
before the release and their last value, the popularity signals, whether the product has a picture, the release's
day of the year; its forecast is that level times the mean training shape.
Diagnostics only: nothing here chooses anything.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sf.cache.reader import load_features  # noqa: E402
from sf.data.contract import load_dataset  # noqa: E402
from sf.forecast import engine  # noqa: E402
from sf.forecast.config import TrainConfig  # noqa: E402
from sf.forecast.fit import _with_popularity  # noqa: E402
from sf.forecast.popularity import popularity_features  # noqa: E402

SCALES = (0.9, 1.0, 1.1, 1.2, 1.3)


def wape(part, forecast: np.ndarray) -> float:
    y = part.y * part.y_mask
    return float(100 * np.abs((forecast - y) * part.y_mask).sum() / y.sum())


def static_inputs(part) -> np.ndarray:
    lookback = part.exog[:, : part.exog.shape[1] - part.horizon]
    day = (part.release - np.datetime64("1970-01-01")).astype(np.float64)
    return np.concatenate([part.attributes.astype(np.float64), ((day % 365.25) / 365.25)[:, None],
                           lookback[:, -4:].mean(1), lookback[:, -13:].mean(1), lookback.mean(1), lookback[:, -1],
                           part.popularity, part.has_image[:, None].astype(np.float64)], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    from sklearn.ensemble import HistGradientBoostingRegressor

    base = TrainConfig(seeds=args.seeds, threads=1, refit=False, features=args.features, data=args.data)
    inputs, attrs = engine.load_inputs(base, load_features(args.features), load_dataset(args.data))
    prepared = engine.prepare(base, inputs=inputs, store_attrs=attrs, label=args.data.name)
    fits = [engine.train_seed(base, prepared, s) for s in base.seed_list]
    train = prepared.parts["train"]
    shape = (train.y * train.y_mask).sum(0)
    shape = shape / shape.sum()
    for split in ("val", "test"):
        part = prepared.parts[split]
        forecasts = [r.forecasts[split] for r in fits]
        print(f"{split}: sf per seed " + " ".join(f"{wape(part, f):.2f}" for f in forecasts))
        print(f"{split}: scaled by " + ", ".join(f"{c}: {np.mean([wape(part, c * f) for f in forecasts]):.2f}" for c in SCALES))
        total = (part.y * part.y_mask).sum(1, keepdims=True)
        level = [wape(part, f / np.maximum((f * part.y_mask).sum(1, keepdims=True), 1e-9) * total) for f in forecasts]
        print(f"{split}: oracle level (sf's shape, true total) {np.mean(level):.2f}; oracle shape (mean training "
              f"shape, true total) {wape(part, total * shape[None, :]):.2f}")

    reference, train, val = _with_popularity(train, prepared.parts["val"], base.recent_sales)
    test = replace(prepared.parts["test"], popularity=popularity_features(prepared.parts["test"], reference))
    weekly = lambda p: (p.y * p.y_mask).sum(1) / np.maximum(p.y_mask.sum(1), 1)  # noqa: E731
    scores = []
    for seed in range(3):
        gbm = HistGradientBoostingRegressor(loss="absolute_error", max_iter=400, learning_rate=0.03, l2_regularization=1.0,
                                            min_samples_leaf=30, categorical_features=list(range(train.attributes.shape[1])),
                                            early_stopping=False, random_state=seed)
        gbm.fit(static_inputs(train), np.log1p(weekly(train)))
        scores.append([wape(p, np.expm1(gbm.predict(static_inputs(p)))[:, None] * shape[None, :] * p.horizon)
                       for p in (val, test)])
    v, t = np.mean(scores, 0)
    print(f"gradient-boosted level x mean shape (3 seeds): val {v:.2f}, test {t:.2f}")


if __name__ == "__main__":
    main()
