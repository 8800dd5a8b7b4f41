"""Sequence heads: map per-step inputs (B, H, in_dim) to outputs for every step at once (B, H, n_outputs).

Non-autoregressive: each step's input is known before the season starts (fused product vector, dates,
exogenous values, observed sales + mask), so the whole horizon is read and emitted in one pass.
`--head NAME` is a lookup here; `create_head(name, in_dim=, hidden=, n_outputs=, dropout=, layers=)`.
"""

from __future__ import annotations

from sf.forecast.heads.base import HEADS, Head, HeadEntry, register_head

__all__ = ["HEADS", "Head", "HeadEntry", "create_head", "register_head"]


def create_head(name: str, **kwargs) -> Head:
    return HEADS.create(name, **kwargs)


# Importing the heads registers each of them in HEADS (sf.forecast.heads.base).
from sf.forecast.heads import bilstm, lstm  # noqa: E402,F401
