"""Sequence heads: map per-step inputs (B, H, in_dim) to outputs for every step at once (B, H, n_outputs).

Non-autoregressive: each step's input is known before the season starts (fused product vector, dates,
exogenous values, observed sales + mask), so the whole horizon is read and emitted in one pass.
`--head NAME` is a lookup here; `create_head(name, in_dim=, hidden=, n_outputs=, dropout=, layers=)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sf.registry import Registry


@dataclass(frozen=True)
class HeadEntry:
    name: str
    cls: Callable[..., object]
    description: str
    causal: bool  # True: the output at step t reads only steps <= t


HEADS: Registry[HeadEntry] = Registry("head", HeadEntry)


def register_head(name: str, description: str, causal: bool):
    """Class decorator: `@register_head("bilstm", "...", causal=False)` makes the head buildable by name."""
    return HEADS.register(name, description, causal=causal)


def create_head(name: str, **kwargs):
    return HEADS.create(name, **kwargs)


# Imported last: each module registers itself through register_head above.
from sf.forecast.heads import bilstm, lstm  # noqa: E402,F401
