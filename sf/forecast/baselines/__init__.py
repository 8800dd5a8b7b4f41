"""Non-neural baselines, one file each: `fit(train: Inputs) -> self`, then `predict(inp: Inputs) -> (N, H)` units.

They read the same in-memory Inputs as the neural models, so `sf compare` scores every model on the same
split, products and metrics. Importing this package registers them all in BASELINES.
"""

from __future__ import annotations

from sf.forecast.baselines.base import BASELINES, Baseline, register_baseline

__all__ = ["BASELINES", "Baseline", "create_baseline", "register_baseline"]


def create_baseline(name: str, **params) -> Baseline:
    return BASELINES.create(name, **params)


# Importing the baselines registers each of them in BASELINES (sf.forecast.baselines.base).
from sf.forecast.baselines import attribute_mean, gbm, knn, mean_curve  # noqa: E402,F401
