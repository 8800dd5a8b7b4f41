"""Text only (the ablation "image removed"): F = GELU(W_F W_T s + b_F), s the sentence vector."""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion.base import Fusion, FusionOutput, register_fusion


@register_fusion("text", "text only: the sentence vector (the image is left out)")
class TextOnly(Fusion):
    uses_image = False
    uses_tokens = False

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.combine = nn.Linear(self.width, self.out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> FusionOutput:
        return FusionOutput(self.drop(nn.functional.gelu(self.combine(self.text_pooled(batch)))), {})
