"""Numeric settings checked the same way everywhere: NaN and infinity are never a setting.

`float("nan")` passes every `x < 0` / `x <= 0` test, so a typed range check alone lets `--lr nan`
reach the optimiser; configs call `non_finite` first and name the field.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass


def _bad(v) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def non_finite(config) -> list[tuple[str, object]]:
    """(field, value) for every float field (or float in a tuple/list field) of a dataclass that is NaN or infinite."""
    assert is_dataclass(config)
    out = []
    for f in fields(config):
        v = getattr(config, f.name)
        if _bad(v) or (isinstance(v, (tuple, list)) and any(_bad(x) for x in v)):
            out.append((f.name, v))
    return out
