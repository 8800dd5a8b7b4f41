"""Sequence heads: map per-step inputs (B, H, in_dim) to outputs for every step at once (B, H, n_outputs).

Non-autoregressive: each step's input is known before the season starts (fused product vector, dates,
exogenous values, observed sales + mask), so the whole horizon is read and emitted in one pass.
`--head NAME` is a lookup here; `create_head(name, in_dim=, hidden=, n_outputs=, dropout=, layers=)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sf.errors import SfError


@dataclass(frozen=True)
class HeadEntry:
    name: str
    cls: Callable[..., object]
    description: str
    causal: bool  # True: the output at step t reads only steps <= t


HEADS: dict[str, HeadEntry] = {}


def register_head(name: str, description: str, causal: bool):
    """Class decorator: `@register_head("bilstm", "...", causal=False)` makes the head buildable by name."""

    def deco(cls):
        HEADS[name] = HeadEntry(name, cls, description, causal)
        return cls

    return deco


def create_head(name: str, **kwargs):
    if name not in HEADS:
        raise SfError(f"unknown head {name!r}; choose from {', '.join(HEADS)}")
    return HEADS[name].cls(**kwargs)


# Imported last: each module registers itself through register_head above.
from sf.forecast.heads import bilstm, lstm  # noqa: E402,F401
