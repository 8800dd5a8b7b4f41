"""Stage 2's check that a store's features were made from *this* dataset's images and descriptions.

A store row carries the sha256 of the image file and text it was extracted from. Before features are
joined with sales, every product's image + text is hashed again (once per file per process, see
sf.cache.content) and compared; any difference (another catalogue with the same product ids, an image
replaced since extraction) is refused, naming the products and the `sf extract` that updates the store.
`--allow-stale-features` skips the check for a user who knows why the files changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sf.cache.content import stale_products
from sf.cache.reader import Features
from sf.errors import SfError

OVERRIDE_FLAG = "--allow-stale-features"


def check_fresh(feats: Features, ds, ids: list[str], rows: np.ndarray) -> None:
    """Raise SfError if any of `ids` (store rows `rows`) no longer matches its image file or text in `ds`."""
    if feats.content_hash is None:
        return
    paths = ds.image_paths()
    texts = dict(ds.products.select("product_id", "text").iter_rows())
    stored = [str(feats.content_hash[r]) for r in rows]
    stale = stale_products(ids, stored, [(paths.get(p), texts.get(p) or "") for p in ids])
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise SfError(
            f"{feats.path}: features of {len(stale)} of {len(ids)} product(s) were not made from the image/text in "
            f"{ds.root} ({shown}); update the store with `{update_command(ds.root, feats.path, feats.attrs)}`, "
            f"or pass {OVERRIDE_FLAG} to use them anyway"
        )


def update_command(data: Path, store: Path, attrs: dict) -> str:
    """The `sf extract` call that re-extracts changed rows into `store` with the extractor it was made with."""
    parts = ["sf extract", f"--data {data}", f"--out {store}", f"--backbone {attrs.get('backbone')}"]
    weights = str(attrs.get("weights") or "imagenet")
    if weights == "file":
        weights = str(attrs.get("weights_path") or "WEIGHTS_FILE")
    if weights != "imagenet":
        parts.append(f"--weights {weights}")
    if weights == "random" and attrs.get("weights_seed") not in (None, "", 0):
        parts.append(f"--seed {attrs['weights_seed']}")
    parts.append(f"--text-encoder {attrs.get('text_encoder') or 'none'}")
    if attrs.get("text_len") not in (None, "", 32):
        parts.append(f"--text-len {attrs['text_len']}")
    try:
        image = json.loads(attrs.get("preprocessing") or "{}").get("image", {})
    except (TypeError, ValueError):
        image = {}
    if image.get("image_size") is not None:
        parts.append(f"--image-size {image['image_size']}")
    if image.get("fit", "pad") != "pad":
        parts.append(f"--fit {image['fit']}")
    if attrs.get("pooled_only"):
        parts.append("--pooled-only")
    return " ".join(parts)
