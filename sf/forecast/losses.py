"""Training objectives over masked (product, step) cells, in scaled units.

    mse        mean over observed cells of (ŷ − y)²                                    (the paper)
    l1         mean over observed cells of |ŷ − y|: WAPE's own loss (pooled WAPE is Σ|y − ŷ| / Σy in units,
               so with target "scaled" (units / ū) it is WAPE up to a constant; its minimiser is the median)
    quantile   pinball loss averaged over cells and quantiles q_1 < ... < q_Q, on non-crossing outputs:
               ŷ_{q_1} = r_1,  ŷ_{q_k} = ŷ_{q_{k−1}} + softplus(r_k)    (r = the model's raw outputs)

The non-crossing map is applied here, by fit and predict, so every registered model gets ordered
quantiles without doing anything itself: its forward returns the raw (B, H, Q) outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


def non_crossing(raw: torch.Tensor) -> torch.Tensor:
    """(..., Q) raw outputs -> (..., Q) increasing along the last axis."""
    if raw.shape[-1] == 1:
        return raw
    return torch.cat([raw[..., :1], raw[..., :1] + torch.cumsum(F.softplus(raw[..., 1:]), dim=-1)], dim=-1)


@dataclass(frozen=True)
class Objective:
    loss: str = "mse"
    quantiles: tuple[float, ...] = ()

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Model outputs (B, H, n_outputs) -> forecasts (B, H, n_outputs) in scaled units."""
        return non_crossing(raw) if self.loss == "quantile" else raw

    def loss_sum(self, raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summed loss over the observed cells (divide by mask.sum() for the mean)."""
        m = mask.to(raw.dtype)
        out = self.outputs(raw)
        if self.loss == "mse":
            return (((out[..., 0] - y) ** 2) * m).sum()
        if self.loss == "l1":
            return ((out[..., 0] - y).abs() * m).sum()
        q = torch.as_tensor(self.quantiles, dtype=raw.dtype, device=raw.device)
        diff = y[..., None] - out
        return (torch.maximum(q * diff, (q - 1) * diff).mean(-1) * m).sum()

