"""No attention: the pooled image vector and the sentence vector, projected and concatenated.

    F = GELU( W_F [W_I x̄ ; W_T s] + b_F )     (learned missing embeddings where a modality is absent)

The paper's ablation "bidirectional attention removed". It never reads the region grid.
"""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion.base import Fusion, FusionOutput, register_fusion


@register_fusion("concat", "pooled image ⊕ pooled text, no attention (the paper's 'fusion removed')")
class Concat(Fusion):
    uses_tokens = False

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.combine = nn.Linear(2 * self.width, self.out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> FusionOutput:
        both = torch.cat([self.image_pooled(batch), self.text_pooled(batch)], dim=1)
        return FusionOutput(self.drop(nn.functional.gelu(self.combine(both))), {})
