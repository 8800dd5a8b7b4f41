"""Fusion variants: turn a product's image regions and description words into one vector F.

Every variant is an `sf.fusion.base.Fusion` built as `create_fusion(name, image_dim=, text_dim=, regions=,
text_len=, width=, out_dim=, dropout=)`; `forward(batch)` reads the batch dict of `sf.forecast.base.to_batch`
and returns `FusionOutput(F (B, out_dim), attention)`. `--fusion NAME` and the ablation grid are lookups here.

    biattn  bidirectional attention: words attend to regions and regions attend to words (the paper)
    t2i     one way: words attend to image regions only
    i2t     one way: image regions attend to words only
    concat  pooled image ⊕ pooled text, no attention (the paper's "fusion removed")
    image   image only (the text is left out)
    text    text only (the image is left out)
    none    neither: F is one learned vector, so the head sees only dates, exogenous series and attributes
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sf.registry import Registry


@dataclass(frozen=True)
class FusionEntry:
    name: str
    cls: Callable[..., object]
    description: str
    uses_image: bool
    uses_text: bool


FUSIONS: Registry[FusionEntry] = Registry("fusion", FusionEntry)


def register_fusion(name: str, description: str):
    """Class decorator: `@register_fusion("biattn", "...")` makes the variant buildable by name."""

    def deco(cls):
        cls.name = name
        return FUSIONS.register(name, description, uses_image=cls.uses_image, uses_text=cls.uses_text)(cls)

    return deco


def create_fusion(name: str, **kwargs):
    return FUSIONS.create(name, **kwargs)


# Imported last: each module registers itself through register_fusion above.
from sf.fusion import biattn, t2i, i2t, concat, image_only, text_only, none  # noqa: E402,F401
