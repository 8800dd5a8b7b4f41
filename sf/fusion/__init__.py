"""Fusion variants: turn a product's image regions and description words into one vector F.

Every variant is an `sf.fusion.base.Fusion` built as `create_fusion(name, image_dim=, text_dim=, regions=,
text_len=, width=, out_dim=, dropout=)`; `forward(batch)` reads a batch of `sf.forecast.batching.TensorInputs`
and returns `FusionOutput(F (B, out_dim), attention)`. `--fusion NAME` and the ablation grid are lookups here.

    biattn  bidirectional attention: words attend to regions and regions attend to words (the paper)
    t2i     one way: words attend to image regions only
    i2t     one way: image regions attend to words only
    i2t_image  i2t beside the mean of the image regions (sf's default, tuning-log row 80b)
    concat  pooled image ⊕ pooled text, no attention (the paper's "fusion removed")
    image   image only (the text is left out)
    text    text only (the image is left out)
    none    neither: F is one learned vector, so the head sees only dates, exogenous series and attributes
"""

from __future__ import annotations

from sf.fusion.base import FUSIONS, Fusion, FusionEntry, FusionOutput, register_fusion

__all__ = ["FUSIONS", "Fusion", "FusionEntry", "FusionOutput", "create_fusion", "register_fusion"]


def create_fusion(name: str, **kwargs) -> Fusion:
    return FUSIONS.create(name, **kwargs)


# Importing the variants registers each of them in FUSIONS (sf.fusion.base).
from sf.fusion import biattn, t2i, i2t, concat, one_modality, none  # noqa: E402,F401  (this order: --help, errors)
