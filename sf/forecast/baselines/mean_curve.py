"""The mean sales curve of the training products, the same forecast for every new product."""

from __future__ import annotations

import numpy as np

from sf.forecast.baselines.base import register_baseline
from sf.forecast.baselines.common import masked_mean_curve
from sf.forecast.inputs import Inputs


@register_baseline("mean_curve", "mean training curve per step, the same for every product")
class MeanCurve:
    def __init__(self) -> None:
        self.curve_: np.ndarray | None = None

    def fit(self, train: Inputs) -> "MeanCurve":
        self.curve_ = masked_mean_curve(train.y, train.y_mask)
        return self

    def predict(self, inp: Inputs) -> np.ndarray:
        return np.tile(self.curve_[: inp.horizon], (len(inp), 1))
