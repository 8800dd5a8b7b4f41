"""Bidirectional attention fusion (the paper's eq. (1)–(3), as implemented; see docs/model.md).

    F = GELU( W_F [u^{T→I} ; u^{I→T}] + b_F )

Taken literally, eq. (3) weights each modality's *own* vectors by its attention rows, which sum to 1,
so the text term collapses to the plain sum of word vectors. Here each direction pools the *other*
modality's vectors instead: the image as seen by the words, and the text as seen by the regions.
"""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion.base import Fusion, FusionOutput, cross_attention, register_fusion


@register_fusion("biattn", "bidirectional attention: words attend to regions and regions to words (the paper)")
class BiAttention(Fusion):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.combine = nn.Linear(2 * self.width, self.out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> FusionOutput:
        vt, tmask = self.text_tokens(batch)
        att = cross_attention(vt, tmask, self.image_tokens(batch))
        fused = nn.functional.gelu(self.combine(torch.cat([att["u_t2i"], att["u_i2t"]], dim=1)))
        maps = {"t2i": att["t2i"], "i2t": att["i2t"]}
        return FusionOutput(self.drop(fused), self.full_length(maps, batch["text_mask"].shape[1]))
