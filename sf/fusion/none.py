"""Neither image nor text: F = f, one learned vector, so the head sees only dates, exog and attributes.

The floor every content-based variant must beat: what the sales history alone explains.
"""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion.base import Fusion, FusionOutput, register_fusion


@register_fusion("none", "neither image nor text: F is one learned vector (dates, exog, attributes only)")
class NoContent(Fusion):
    uses_image = False
    uses_text = False
    uses_tokens = False

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.constant = nn.Parameter(0.02 * torch.randn(self.out_dim))

    def forward(self, batch: dict[str, torch.Tensor]) -> FusionOutput:
        return FusionOutput(self.constant.expand(batch["has_image"].shape[0], -1), {})
