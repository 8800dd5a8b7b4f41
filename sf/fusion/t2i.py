"""One-way attention, text → image: each word attends to the image regions; F = GELU(W_F u^{T→I} + b_F).

`OneWayAttention` also serves the image → text direction (sf/fusion/i2t.py); only `direction` differs.
"""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion.base import Fusion, FusionOutput, cross_attention, register_fusion


class OneWayAttention(Fusion):
    direction = "t2i"  # which half of the bi-attention to keep: "t2i" or "i2t"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.combine = nn.Linear(self.width, self.out_dim)

    def pooled(self, att: dict[str, torch.Tensor], regions: torch.Tensor) -> list[torch.Tensor]:
        """What W_F reads, concatenated: the kept direction's pooled vector (a variant may add more)."""
        return [att[f"u_{self.direction}"]]

    def forward(self, batch: dict[str, torch.Tensor]) -> FusionOutput:
        vt, tmask = self.text_tokens(batch)
        vi = self.image_tokens(batch)
        att = cross_attention(vt, tmask, vi)
        maps = self.full_length({self.direction: att[self.direction]}, batch["text_mask"].shape[1])
        fused = nn.functional.gelu(self.combine(torch.cat(self.pooled(att, vi), dim=1)))
        return FusionOutput(self.drop(fused), maps)


@register_fusion("t2i", "one-way attention: words attend to image regions (the image as seen by the text)")
class TextToImage(OneWayAttention):
    direction = "t2i"
