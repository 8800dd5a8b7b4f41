"""One modality only (the ablations "text removed" and "image removed"): F = GELU(W_F v + b_F), where v is the
projected pooled image vector W_I x̄ (`image`) or the projected sentence vector W_T s (`text`)."""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion.base import Fusion, FusionOutput, register_fusion


class OneModality(Fusion):
    uses_tokens = False

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.combine = nn.Linear(self.width, self.out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> FusionOutput:
        v = self.image_pooled(batch) if self.uses_image else self.text_pooled(batch)
        return FusionOutput(self.drop(nn.functional.gelu(self.combine(v))), {})


@register_fusion("image", "image only: the pooled image vector (the text is left out)")
class ImageOnly(OneModality):
    uses_text = False


@register_fusion("text", "text only: the sentence vector (the image is left out)")
class TextOnly(OneModality):
    uses_image = False
