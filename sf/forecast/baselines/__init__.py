"""Non-neural baselines, one file each: `fit(train: Inputs) -> self`, then `predict(inp: Inputs) -> (N, H)` units.

They read the same in-memory Inputs as the neural models, so `sf compare` scores every model on the same
split, products and metrics. Importing this package registers them all in BASELINES.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sf.registry import Registry


@dataclass(frozen=True)
class BaselineEntry:
    name: str
    cls: Callable[..., object]
    description: str


BASELINES: Registry[BaselineEntry] = Registry("baseline", BaselineEntry)


def register_baseline(name: str, description: str):
    """Class decorator: `@register_baseline("mean_curve", "...")` makes the baseline buildable by name."""
    return BASELINES.register(name, description)


def create_baseline(name: str, **params):
    return BASELINES.create(name, **params)


# Imported last: each module registers itself through register_baseline above.
from sf.forecast.baselines import attribute_mean, knn, mean_curve  # noqa: E402,F401
