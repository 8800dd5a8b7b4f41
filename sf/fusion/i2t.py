"""One-way attention, image → text: each region attends to the words; F = GELU(W_F u^{I→T} + b_F)."""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion import register_fusion
from sf.fusion.base import Fusion, FusionOutput, cross_attention


@register_fusion("i2t", "one-way attention: image regions attend to words (the text as seen by the image)")
class ImageToText(Fusion):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.combine = nn.Linear(self.width, self.out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> FusionOutput:
        vt, tmask = self.text_tokens(batch)
        att = cross_attention(vt, tmask, self.image_tokens(batch))
        maps = self.full_length({"i2t": att["i2t"]}, batch["text_mask"].shape[1])
        return FusionOutput(self.drop(nn.functional.gelu(self.combine(att["u_i2t"]))), maps)
