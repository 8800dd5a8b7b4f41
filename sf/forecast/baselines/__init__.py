"""Non-neural baselines, one file each: `fit(train: Inputs) -> self`, then `predict(inp: Inputs) -> (N, H)` units.

They read the same in-memory Inputs as the neural models, so `sf compare` scores every model on the same
split, products and metrics. Importing this package registers them all in BASELINES.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sf.errors import SfError


@dataclass(frozen=True)
class BaselineEntry:
    name: str
    cls: Callable[..., object]
    description: str


BASELINES: dict[str, BaselineEntry] = {}


def register_baseline(name: str, description: str):
    """Class decorator: `@register_baseline("mean_curve", "...")` makes the baseline buildable by name."""

    def deco(cls):
        BASELINES[name] = BaselineEntry(name, cls, description)
        return cls

    return deco


def create_baseline(name: str, **params):
    if name not in BASELINES:
        raise SfError(f"unknown baseline {name!r}; choose from {', '.join(sorted(BASELINES))}")
    return BASELINES[name].cls(**params)


# Imported last: each module registers itself through register_baseline above.
from sf.forecast.baselines import attribute_mean, knn, mean_curve  # noqa: E402,F401
