"""Dropout noise drawn per product, so the MC-dropout forecast can run many products in one batch.

An MC-dropout forecast (sf.forecast.fit._mc_dropout) must not depend on the other products of the call: a
product's passes are seeded by the fit's seed and its id. Drawing each product's masks from the global stream
allowed that only one product at a time (a forward call per product: 9 ms each for VISUELLE's validation
products on the project machine, about a fifth of a default `sf train` there; bench/mc_predict.py). Inside
`keyed_rows(seeds, repeats)` every draw of the modules below comes instead from one generator per product, each
product's `repeats` rows (its passes) from its own generator: the draws a product gets depend only on its seed
and on the order of the draws inside the model's forward pass, which is the same for every batch. Outside that
block they are ordinary dropout on the global stream (training).

A model's every random draw in training mode must go through `rand`, `dropout` or `Dropout` for its MC forecast
to be batched (ForecastModel.keyed_draws); a built-in op with its own dropout (nn.LSTM between layers) cannot,
so the heads run such layers one at a time inside the block (sf.forecast.heads.lstm).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

_ACTIVE: list[tuple[list[torch.Generator], int]] = []  # (one generator per product, rows per product)


@contextmanager
def keyed_rows(seeds: Sequence[int], repeats: int) -> Iterator[None]:
    """Within the block, draws for a batch of len(seeds) * repeats rows come row-block by row-block from one
    CPU generator per seed (rows i * repeats .. (i + 1) * repeats - 1 from seeds[i])."""
    _ACTIVE.append(([torch.Generator().manual_seed(int(s)) for s in seeds], repeats))
    try:
        yield
    finally:
        _ACTIVE.pop()


def active() -> bool:
    return bool(_ACTIVE)


def rand(shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform [0, 1) of `shape` (rows first): per product inside `keyed_rows`, the global stream outside it."""
    if not _ACTIVE:
        return torch.rand(tuple(shape), device=device)
    gens, repeats = _ACTIVE[-1]
    if shape[0] != len(gens) * repeats:
        raise ValueError(f"keyed noise: {shape[0]} rows drawn, the block keys {len(gens)} x {repeats}")
    block = (repeats, *shape[1:])
    return torch.cat([torch.rand(block, generator=g) for g in gens]).to(device)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout (as nn.functional.dropout): zeroed with probability p, the rest scaled by 1 / (1 - p)."""
    if not training or p == 0:
        return x
    if not _ACTIVE:
        return nn.functional.dropout(x, p, True)
    return x * (rand(x.shape, x.device) >= p).to(x.dtype) / (1 - p)


class Dropout(nn.Dropout):
    """nn.Dropout whose draws are keyed per product inside `keyed_rows` (no parameters: checkpoints unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
