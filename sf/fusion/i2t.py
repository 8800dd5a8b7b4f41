"""One-way attention, image → text: each region attends to the words; F = GELU(W_F u^{I→T} + b_F)."""

from __future__ import annotations

from sf.fusion.base import register_fusion
from sf.fusion.t2i import OneWayAttention


@register_fusion("i2t", "one-way attention: image regions attend to words (the text as seen by the image)")
class ImageToText(OneWayAttention):
    direction = "i2t"
