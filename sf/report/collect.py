"""What `sf report` shows, read from a run folder or a demo folder (never re-derived from other data on disk).

    run folder   (sf train's: config.json + checkpoints/) -> its validation and test products, the metrics
                 it wrote, beside the training mean curve
    demo folder  (sf demo's: model/, heldout/, evaluate_heldout/, ablation/, compare/) -> the held-out new
                 products scored against their real sales, the ablation and the comparison
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from sf.errors import SfError

THUMB = 176  # px, the product image in the browser
ANALOG_THUMB = 72


@dataclass
class ProductView:
    product_id: str
    split: str
    attributes: dict[str, str]
    text: str
    image: str | None  # data URI (JPEG), framed as the backbone saw it
    regions: np.ndarray | None  # (grid_h, grid_w) share of attention
    words: list[tuple[str, float]]
    forecast: np.ndarray  # (H,)
    band: np.ndarray | None  # (H, 2)
    actual: np.ndarray | None  # (H,) NaN where not observed
    analogs: list[dict]  # product_id, similarity, image (data URI | None), total
    notes: list[str]

    @property
    def observed(self) -> np.ndarray:
        return np.isfinite(self.actual) if self.actual is not None else np.zeros(len(self.forecast), bool)

    @property
    def total_actual(self) -> float | None:
        return float(np.nansum(self.actual)) if self.observed.any() else None

    @property
    def total_forecast(self) -> float:
        return float(np.sum(self.forecast))

    @property
    def wape(self) -> float | None:
        """100 · Σ|y − ŷ| / Σy over this product's observed steps (None when it sold nothing or is unknown)."""
        m = self.observed
        denom = float(self.actual[m].sum()) if m.any() else 0.0
        return 100.0 * float(np.abs(self.actual[m] - self.forecast[m]).sum()) / denom if denom > 0 else None

    @property
    def mae(self) -> float | None:
        m = self.observed
        return float(np.abs(self.actual[m] - self.forecast[m]).mean()) if m.any() else None


@dataclass
class Report:
    title: str
    folder: Path
    kind: str  # "run" | "demo"
    run: Path
    subtitle: str
    headline: list[dict]  # {"split", "rows": [{"name", "mean": {...}, "std": {...} | None}], "products"}
    ablation: dict | None
    compare: dict | None
    products: list[ProductView]
    quantiles: tuple[float, ...]
    reference: np.ndarray | None
    similarity: str
    notes: list[str] = field(default_factory=list)
    new_products: object | None = None  # sf.report.forecasts.NewForecasts: `sf predict`'s output in the folder


def _unfinished_run(folder: Path) -> None:
    """A run killed before its last seed is refused as such (the same line sf predict gives), not as a bare folder."""
    from sf.forecast.checkpoints import checkpoint_paths, load_checkpoint
    from sf.forecast.run_state import check_whole

    paths = checkpoint_paths(folder)
    config = load_checkpoint(paths[0]).config if paths else None
    check_whole(folder, paths, config.seed_list if config else None)


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SfError(f"{path}: not readable as JSON ({e})") from None


def _thumb(path: Path | None, size: int, fit: str = "pad") -> str | None:
    """The image as a small JPEG data URI, letterboxed (or centre-cropped) to a square as the backbone saw it."""
    if path is None or not Path(path).is_file():
        return None
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            im = im.convert("RGB")
            if fit == "crop":
                im = ImageOps.fit(im, (size, size), Image.Resampling.BILINEAR)
            else:
                im = ImageOps.pad(im, (size, size), Image.Resampling.BILINEAR, color=(255, 255, 255))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=82)
    except OSError:
        return None  # an unreadable picture is shown as "no image", as the store recorded it
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _headline_rows(block: dict, seeds: int) -> list[dict]:
    """One sf row (the seed ensemble: what `sf predict` forecasts; else the seeds' mean), then the references;
    the seeds' mean ± std goes in the row's `per_seed` for the caption."""
    per_seed = {"mean": block.get("mean", {}), "std": block.get("std"), "seeds": seeds}
    if block.get("ensemble"):
        rows = [{"name": f"sf: seed ensemble of {seeds} seed(s)", "mean": block["ensemble"], "std": None,
                 "per_seed": per_seed}]
    else:
        rows = [{"name": f"sf: mean ± std over {seeds} seed(s)", "mean": block.get("mean", {}), "std": block.get("std")}]
    if block.get("mean_curve"):
        rows.append({"name": "mean training curve (baseline)", "mean": block["mean_curve"], "std": None})
    rows += [{"name": f"{name} (baseline)", "mean": m, "std": None} for name, m in block.get("baselines", {}).items()]
    return rows


def _sources(folder: Path) -> tuple[str, Path, Path | None, dict, Path]:
    """(kind, run folder, products folder or None for the run's own data, metrics, metrics file)."""
    if (folder / "model" / "config.json").is_file() and (folder / "heldout").is_dir():
        metrics_file = folder / "evaluate_heldout" / "metrics.json"
        metrics = _read_json(metrics_file)
        if metrics is None:
            raise SfError(f"{folder}: demo folder without evaluate_heldout/metrics.json; rerun `sf demo`")
        return "demo", folder / "model", folder / "heldout", metrics, metrics_file
    if (folder / "config.json").is_file() and (folder / "checkpoints").is_dir():
        metrics_file = folder / "metrics.json"
        metrics = _read_json(metrics_file)
        if metrics is None:
            _unfinished_run(folder)
            raise SfError(f"{folder}: run folder without metrics.json (did `sf train` finish?)")
        return "run", folder, None, metrics, metrics_file
    raise SfError(f"{folder}: neither a run folder (config.json + checkpoints/ from `sf train`) nor a demo "
                  f"folder (model/ + heldout/ from `sf demo`)")


def collect(folder: str | Path, max_products: int | None = None, device: str = "cpu") -> Report:
    """Everything the report shows, computed with the same code `sf explain` and `sf evaluate` use."""
    from sf.extract.tokens import token_strings
    from sf.apply.explain import _preprocessing, _product_source, explain_products
    from sf.apply.new_products import training_side
    from sf.forecast.checkpoints import load_run

    folder = Path(folder)
    if not folder.is_dir():
        raise SfError(f"{folder}: folder not found")
    kind, run_dir, data, metrics, metrics_file = _sources(folder)
    run = load_run(run_dir, device)
    notes: list[str] = []
    side, more = training_side(run)
    notes += more
    ds, feats = _product_source(run, data, None, side, None, None, notes)
    ds, splits, headline, subtitle = _scope(kind, folder, run_dir, metrics, ds)
    if max_products is not None:
        ds = _subset(ds, ds.product_ids[:max_products])
    explanations = explain_products(run, ds, feats, side, token_strings)
    products = _product_views(explanations, splits, _attributes(ds), _preprocessing(feats.attrs).get("fit", "pad"),
                              notes)
    if kind == "run":
        _use_saved_forecasts(products, run_dir / "predictions.parquet")
    first = explanations[0] if explanations else None
    return Report(new_products=_new_forecasts(folder),
        title=f"sf report — {folder.name}", folder=folder, kind=kind, run=run_dir, subtitle=subtitle,
        headline=headline, ablation=_read_json(folder / "ablation" / "ablation.json") if kind == "demo" else None,
        compare=_read_json(folder / "compare" / "compare.json") if kind == "demo" else None, products=products,
        quantiles=tuple(run.quantiles), reference=None if first is None else first.reference,
        similarity=first.similarity if first else "", notes=notes + [f"metrics: {metrics_file}"],
    )


def _new_forecasts(folder: Path):
    """`sf predict`'s latest output in the folder (the demo's forecasts_new.csv, a run's forecasts_*.parquet)."""
    from sf.report.forecasts import load_forecasts

    found = sorted((p for p in folder.glob("forecasts_*_totals.*") if p.suffix in (".csv", ".parquet")),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    t = found[-1]
    return load_forecasts(t.with_name(t.stem.removesuffix("_totals") + t.suffix))


def _scope(kind: str, folder: Path, run_dir: Path, metrics: dict, ds):
    """Which products the report shows (a run's validation and test products, or a demo's new ones), the split
    each is in, the headline metric blocks and the subtitle."""
    if kind == "run":
        splits: dict[str, str] = {}
        pred = run_dir / "predictions.parquet"
        if pred.is_file():
            frame = pl.read_parquet(pred, columns=["product_id", "split"]).unique().filter(pl.col("split") != "train")
            splits = dict(zip(frame["product_id"].to_list(), frame["split"].to_list()))
        ds = _subset(ds, [p for p in ds.product_ids if p in splits])
        headline = [{"split": s, "products": int(metrics[s]["mean"].get("n_products", 0)),
                     "rows": _headline_rows(metrics[s], len(metrics.get("seeds", [])))}
                    for s in ("val", "test") if isinstance(metrics.get(s), dict)]
        subtitle = (f"run {run_dir.name}: {metrics.get('model', 'sf')} "
                    f"({metrics.get('fusion', '')} + {metrics.get('head', '')}), {len(metrics.get('seeds', []))} seed(s); "
                    f"products: the validation and test products of its {metrics.get('split', {}).get('kind', '')} split")
        return ds, splits, headline, subtitle
    headline = [{"split": "held-out new products", "products": int(metrics.get("products", 0)),
                 "rows": _headline_rows(metrics, len(metrics.get("seeds", [])))}]
    subtitle = (f"sf demo in {folder}: the {metrics.get('products', 0)} latest releases held out as new products, "
                f"forecast by {run_dir} and scored against their real sales")
    return ds, {p: "new" for p in ds.product_ids}, headline, subtitle


def _attributes(ds) -> dict[str, dict[str, str]]:
    """Per product, its attribute values (and release date) as text."""
    attr_cols = [c for c in ds.products.columns if c not in ("product_id", "image", "text", "release_date", "split")]
    attrs = {r["product_id"]: {c: ("" if r[c] is None else str(r[c])) for c in attr_cols}
             for r in ds.products.select(["product_id", *attr_cols]).iter_rows(named=True)}
    if "release_date" in ds.products.columns:
        for r in ds.products.select("product_id", "release_date").iter_rows(named=True):
            attrs[r["product_id"]]["release"] = "" if r["release_date"] is None else str(r["release_date"])[:10]
    return attrs


def _product_views(explanations, splits: dict, attrs: dict, fit: str, notes: list[str]) -> list[ProductView]:
    thumbs: dict[str, str | None] = {}
    products = []
    for e in explanations:
        actual = None
        if e.actual is not None:
            actual = np.where(e.actual_mask, e.actual, np.nan).astype(float)
        analogs = []
        for a in e.analogs:
            if a.product_id not in thumbs:
                thumbs[a.product_id] = _thumb(a.image, ANALOG_THUMB, fit)
            analogs.append({"product_id": a.product_id, "similarity": a.similarity, "image": thumbs[a.product_id],
                            "total": float(np.where(a.mask, a.y, 0).sum())})
        products.append(ProductView(
            product_id=e.product_id, split=splits.get(e.product_id, ""), attributes=attrs.get(e.product_id, {}),
            text=e.text, image=_thumb(e.image, THUMB, fit) if e.has_image else None, regions=e.regions,
            words=e.words, forecast=np.asarray(e.forecast, float),
            band=None if e.band is None else np.asarray(e.band, float), actual=actual, analogs=analogs,
            notes=[n for n in e.notes if n not in notes],
        ))
    return products


def _use_saved_forecasts(products: list[ProductView], path: Path) -> None:
    """A run's validation and test products show the forecasts the run scored (predictions.parquet, seed mean),
    not a new forecast by its saved models: after a refit those were trained on the validation products."""
    if not path.is_file():
        return
    frame = pl.read_parquet(path).filter(pl.col("split") != "train")
    q_cols = sorted((c for c in frame.columns if c.startswith("yhat_q")), key=lambda c: float(c[6:]))
    mean = frame.group_by("product_id", "step").agg(pl.col(["yhat", *q_cols]).mean()).sort("product_id", "step")
    by_product = {pid[0]: g for pid, g in mean.group_by("product_id")}
    for p in products:
        g = by_product.get(p.product_id)
        if g is None or g.height != len(p.forecast):
            continue
        p.forecast = g["yhat"].to_numpy().astype(float)
        if len(q_cols) >= 2:
            p.band = np.stack([g[q_cols[0]].to_numpy(), g[q_cols[-1]].to_numpy()], axis=-1).astype(float)


def _subset(ds, ids: list[str]):
    from dataclasses import replace

    return replace(ds, products=ds.products.filter(pl.col("product_id").is_in(ids)))
