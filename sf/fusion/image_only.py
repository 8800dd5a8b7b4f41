"""Image only (the ablation "text removed"): F = GELU(W_F W_I x̄ + b_F), x̄ the pooled image vector."""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion.base import Fusion, FusionOutput, register_fusion


@register_fusion("image", "image only: the pooled image vector (the text is left out)")
class ImageOnly(Fusion):
    uses_text = False
    uses_tokens = False

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.combine = nn.Linear(self.width, self.out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> FusionOutput:
        return FusionOutput(self.drop(nn.functional.gelu(self.combine(self.image_pooled(batch)))), {})
