"""The contract of a baseline, and the registry `sf compare --models` looks names up in."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sf.forecast.inputs import Inputs
from sf.registry import Entry, Registry


class Baseline(Protocol):
    """Built as `cls(**params)`; `fit(train) -> self`, then `predict(inp) -> (N, H)` units, deterministic."""

    def fit(self, train: Inputs) -> "Baseline": ...

    def predict(self, inp: Inputs) -> np.ndarray: ...


BASELINES: Registry[Entry] = Registry("baseline", "sf.forecast.baselines")


def register_baseline(name: str, description: str):
    """Class decorator: `@register_baseline("mean_curve", "...")` makes the baseline buildable by name."""
    return BASELINES.register(name, description)
