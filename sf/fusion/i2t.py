"""One-way attention, image → text: each region attends to the words; F = GELU(W_F u^{I→T} + b_F).

`i2t_image` adds the image's own content beside it: F = GELU(W_F [u^{I→T} ; mean_j v^I_j] + b_F). u^{I→T} is a
mix of word vectors, so i2t alone reads a picture only through the words its regions pick (a product with an
image and no description gets nothing from the image); the mean of the projected regions carries what the
picture shows whatever the words say.
"""

from __future__ import annotations

import torch
from torch import nn

from sf.fusion.base import register_fusion
from sf.fusion.t2i import OneWayAttention


@register_fusion("i2t", "one-way attention: image regions attend to words (the text as seen by the image)")
class ImageToText(OneWayAttention):
    direction = "i2t"


@register_fusion("i2t_image", "i2t beside the mean of the image regions (the words the image picks, and the image)")
class ImageToTextAndImage(ImageToText):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        # Replaces the one-way W_F built above rather than sizing it there: that draw stays in the seed's random
        # stream, so the figures measured with this fusion (tuning-log row 80b) reproduce exactly.
        self.combine = nn.Linear(2 * self.width, self.out_dim)

    def pooled(self, att: dict[str, torch.Tensor], regions: torch.Tensor) -> list[torch.Tensor]:
        return [*super().pooled(att, regions), regions.mean(1)]
