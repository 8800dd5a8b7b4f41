"""`sf data check`: validate a dataset folder (via the contract loader) and summarise what is in it.

Contract violations raise SfError from `load_dataset`. Things that are legal but worth knowing
(an image file that is not on disk, attribute values without an exog series) become warnings.
"""

from __future__ import annotations

import json
from datetime import timedelta
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sf.data.atomic import atomic_write_text
from sf.data.contract import MAX_PROBLEMS, PERIOD_DAYS, SPLITS, Dataset, load_dataset

MAX_EXAMPLES = 5
MANY_VALUES = 100  # a category with this many values is rarely one (a price, a size in cm, an id)


@dataclass
class Summary:
    path: str
    name: str
    period: str
    products: int
    attributes: dict[str, int]  # attribute column -> number of distinct non-empty values
    numeric: dict[str, dict]  # numeric column -> min, max, mean, missing (products without a value)
    images_referenced: int
    images_found: int
    images_missing: int
    missing_image_examples: list[str]
    products_with_text: int
    sales_rows: int
    products_with_sales: int
    units_total: float
    horizon_min: int | None  # per product with sales: last step + 1
    horizon_median: float | None
    horizon_max: int | None
    release_first: str | None
    release_last: str | None
    products_without_release: int
    splits: dict[str, int]  # empty when products has no split column
    exog_terms: int
    exog_first: str | None
    exog_last: str | None
    exog_link: list[str]
    exog_lookback: int
    exog_linked_products: int  # products with at least one linked value that names an exog column
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the tables were read (rows summed, zero periods filled)


def _image_counts(ds: Dataset) -> tuple[int, int, list[str]]:
    referenced = [img for img in ds.products["image"].to_list() if img]
    missing = [img for img in referenced if not (ds.images_dir / img).is_file()]
    return len(referenced), len(missing), missing


def _horizons(ds: Dataset) -> np.ndarray:
    if not ds.sales.height:
        return np.zeros(0, dtype=np.int64)
    return (ds.sales.group_by("product_id").agg(pl.col("step").max())["step"].to_numpy() + 1).astype(np.int64)


def _exog_link_report(ds: Dataset) -> tuple[int, list[str]]:
    """How many products link to at least one exog column, and warnings about values that link to none."""
    link = list(ds.meta.exog_link)
    if not link:
        return 0, []
    if ds.exog is None:
        return 0, [f"dataset.toml sets exog_link = {link} but there is no exog table"]
    terms = set(ds.exog.columns) - {"date"}
    linked = pl.any_horizontal([pl.col(c).is_in(list(terms)) for c in link])
    n_linked = int(ds.products.select(linked.sum()).item())
    warnings = []
    for c in link:
        values = {v for v in ds.products[c].to_list() if v}
        unknown = sorted(values - terms)
        if unknown:
            eg = ", ".join(repr(v) for v in unknown[:MAX_EXAMPLES])
            warnings.append(f"{len(unknown)} of {len(values)} '{c}' values have no exog column (e.g. {eg}); those products get zeros")
    return n_linked, warnings


def _exog_coverage_warning(ds: Dataset) -> list[str]:
    """Products whose look-back window starts before the exog table does."""
    if ds.exog is None or not ds.meta.exog_link or not ds.exog.height:
        return []
    first = ds.exog["date"].min()
    lookback_days = int(round(ds.meta.exog_lookback * PERIOD_DAYS[ds.meta.period]))
    release = ds.products["release_date"].drop_nulls()
    early = int((release < first + timedelta(days=lookback_days)).sum())
    if not early:
        return []
    return [f"{early} products are released less than exog_lookback={ds.meta.exog_lookback} {ds.meta.period}s "
            f"after the first exog date {first}; the missing part of their window is zeros"]


def category_warnings(ds: Dataset) -> list[str]:
    """Attribute columns that look like numbers, or have hundreds of values, used as categories."""
    out = []
    for c in ds.attribute_columns:
        values = ds.products[c].filter(ds.products[c] != "")
        n = values.n_unique()
        looks_numeric = n > 12 and values.str.strip_chars().cast(pl.Float64, strict=False).is_not_null().all()
        if looks_numeric or n >= MANY_VALUES:
            what = "looks numeric" if looks_numeric else "has many values"
            out.append(f"attribute '{c}' {what} ({n:,} distinct) and is read as a category, so a value not seen in "
                       f"training counts as unknown; declare it with numeric = [\"{c}\"] in dataset.toml if it is a number")
    return out


def _numeric_summary(ds: Dataset) -> dict[str, dict]:
    out = {}
    for c in ds.numeric_columns:
        col = ds.products[c]
        out[c] = {"min": col.min(), "max": col.max(), "mean": col.mean(), "missing": int(col.is_null().sum())}
    return out


def _iso(d) -> str | None:
    return None if d is None else str(d)


def check_dataset(path: str | Path, max_problems: int | None = MAX_PROBLEMS) -> Summary:
    """Load `path` through the contract and summarise it; violations raise one DataProblems listing up to
    `max_problems` of them (None: SfError at the first)."""
    ds = load_dataset(path, max_problems=max_problems)
    p = ds.products
    referenced, n_missing, missing = _image_counts(ds)
    horizons = _horizons(ds)
    n_linked, warnings = _exog_link_report(ds)
    warnings += _exog_coverage_warning(ds)
    warnings += category_warnings(ds)
    if n_missing:
        eg = ", ".join(missing[:MAX_EXAMPLES])
        warnings.insert(0, f"{n_missing} of {referenced} image files are missing under {ds.images_dir} (e.g. {eg}); "
                           "those products are treated as having no image")
    release = p["release_date"]
    splits = {}
    if "split" in p.columns:
        counts = dict(p.group_by("split").len().iter_rows())
        splits = {k: counts[k] for k in SPLITS if k in counts}
    exog = ds.exog
    return Summary(
        path=str(ds.root),
        name=ds.meta.name,
        period=ds.meta.period,
        products=p.height,
        attributes={c: int(p.filter(pl.col(c) != "")[c].n_unique()) for c in ds.attribute_columns},
        numeric=_numeric_summary(ds),
        images_referenced=referenced,
        images_found=referenced - n_missing,
        images_missing=n_missing,
        missing_image_examples=missing[:MAX_EXAMPLES],
        products_with_text=int((p["text"].str.strip_chars() != "").sum()),
        sales_rows=ds.sales.height,
        products_with_sales=int(ds.sales["product_id"].n_unique()),
        units_total=float(ds.sales["units"].cast(pl.Float64).sum()),
        horizon_min=int(horizons.min()) if horizons.size else None,
        horizon_median=float(np.median(horizons)) if horizons.size else None,
        horizon_max=int(horizons.max()) if horizons.size else None,
        release_first=_iso(release.min()),
        release_last=_iso(release.max()),
        products_without_release=int(release.is_null().sum()),
        splits=splits,
        exog_terms=0 if exog is None else exog.width - 1,
        exog_first=None if exog is None else _iso(exog["date"].min()),
        exog_last=None if exog is None else _iso(exog["date"].max()),
        exog_link=list(ds.meta.exog_link),
        exog_lookback=ds.meta.exog_lookback,
        exog_linked_products=n_linked,
        warnings=warnings,
        notes=list(ds.notes),
    )


def _fmt_median(x: float | None) -> str:
    return "-" if x is None else (f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}")


def print_summary(s: Summary, console: Console, messages: Console | None = None) -> None:
    """The table on `console`; notes and warnings on `messages` (stderr in the CLI; default: `console`)."""
    t = Table(title=f"dataset '{s.name}' ({s.path})", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("products", f"{s.products:,}")
    t.add_row("images", f"{s.images_referenced:,} referenced, {s.images_found:,} found, {s.images_missing:,} missing")
    t.add_row("text", f"{s.products_with_text:,} products with a description")
    t.add_row("sales", f"{s.sales_rows:,} rows, {s.products_with_sales:,} products, {s.units_total:,.0f} units")
    if s.horizon_max is not None:
        t.add_row("horizon", f"{s.horizon_min} / {_fmt_median(s.horizon_median)} / {s.horizon_max} {s.period}s (min / median / max)")
    release = f"{s.release_first} .. {s.release_last}" if s.release_first else "-"
    if s.products_without_release:
        release += f" ({s.products_without_release:,} without a date)"
    t.add_row("release dates", release)
    if s.splits:
        t.add_row("split", ", ".join(f"{k} {v:,}" for k, v in s.splits.items()))
    if s.exog_terms:
        t.add_row("exog", f"{s.exog_terms} terms, {s.exog_first} .. {s.exog_last}")
    if s.exog_link:
        t.add_row("exog link", f"{s.exog_linked_products:,} products via {', '.join(s.exog_link)} "
                               f"({s.exog_lookback} {s.period}s look-back)")
    for col, n in s.attributes.items():
        t.add_row(f"attribute {col}", f"{n:,} values")
    for col, v in s.numeric.items():
        lo, hi, mean = (f"{x:,.4g}" if x is not None else "-" for x in (v["min"], v["max"], v["mean"]))
        t.add_row(f"numeric {col}", f"{lo} .. {hi}, mean {mean}" + (f", {v['missing']:,} missing" if v["missing"] else ""))
    console.print(t)
    messages = messages or console
    for n in s.notes:
        messages.print(f"[cyan]note:[/] {escape(n)}", highlight=False, soft_wrap=True)
    for w in s.warnings:
        messages.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)


def write_json(s: Summary, path: str | Path) -> Path:
    return atomic_write_text(path, json.dumps(asdict(s), indent=2) + "\n")
