"""sf from Python, end to end: a catalogue as polars frames, features once, a forecaster, forecasts for
products that have never sold, their evaluation, one explanation and the HTML report.

    python examples/quickstart.py [OUT_FOLDER] [--small]

`--small` (what the test suite runs) uses a tiny catalogue, random image weights and a hashed-word text
encoder so it finishes in seconds anywhere; without it the example uses the best pretrained extractor this
machine has offline and sf's default settings (a few minutes on a laptop CPU).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import polars as pl

import sf

args = [a for a in sys.argv[1:] if not a.startswith("--")]
small = "--small" in sys.argv
out = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="sf-quickstart-"))

# 1. A catalogue. Your own data would be a folder in the data contract (docs/data.md) or these same frames.
folder = sf.demo_data(out / "shop", products=80 if small else 300, image_size=32 if small else 128)
products = pl.read_csv(folder / "products.csv", infer_schema=False)
sales = pl.read_csv(folder / "sales.csv", schema_overrides={"units": pl.Float64})
exog = pl.read_csv(folder / "exog.csv")
# The latest 10% of releases play the new products: no sales given to the model.
new_ids = products.sort("release_date").tail(len(products) // 10)["product_id"]
is_new = pl.col("product_id").is_in(new_ids.implode())
known = {"products": products.filter(~is_new), "sales": sales.filter(~is_new), "exog": exog,
         "dataset": {"name": "shop", "period": "week", "exog_link": ["category", "color"], "exog_lookback": 52},
         "images": folder / "images"}
new = {"products": products.filter(is_new), "exog": exog, "images": folder / "images",
       "dataset": known["dataset"]}
heldout = {**new, "sales": sales.filter(is_new)}

# 2. Stage 1, once: frozen image backbone + text encoder into a feature store.
extractor = dict(backbone="resnet18", weights="random", text_encoder="hash", image_size=32) if small else {}
if not small:
    from sf.extract import best_available_backbone

    extractor["backbone"], extractor["weights"] = best_available_backbone()
store = sf.extract(known, out / "shop.h5", **extractor)
print(store)

# 3. Stage 2: fusion + BiLSTM from the cached features, with a P10-P90 band.
settings = dict(epochs=3, patience=2) if small else {}
fc = sf.Forecaster(model="sf", fusion="i2t_image", head="bilstm", seeds=2, loss="quantile", quantiles=(0.1, 0.5, 0.9),
                   **settings)
fc.fit(store, known, out=out / "run")
val = fc.metrics["val"]
print(f"validation WAPE {val['mean']['WAPE']:.1f} ± {val['std']['WAPE']:.1f} "
      f"(training mean curve: {val['mean_curve']['WAPE']:.1f})")

# 4. New products: forecasts (one row per product and week) and, since we kept their sales, a score.
pred = fc.predict(new)
print(pred.group_by("product_id", maintain_order=True).agg(pl.col("yhat").sum().round(0).alias("total")).head())
scores = fc.evaluate(heldout)
print(f"held-out WAPE {scores['ensemble']['WAPE']:.1f} vs mean curve {scores['mean_curve']['WAPE']:.1f}")

# 5. Why: attention over one product's image and words, its analogs; and the whole run as one HTML page.
why = fc.explain(new_ids[0], new)
print(why["product_id"], [w for w, _ in why["words"][:3]], why["png"])
print("report:", fc.report())
fc.save(out / "saved")
assert sf.Forecaster.load(out / "saved").predict(new)["yhat"].to_list() == pred["yhat"].to_list()
