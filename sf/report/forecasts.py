"""The report's first section for products with no sales yet: `sf predict`'s forecasts, totals and orders.

    forecasts.parquet|csv        product_id, step, date, yhat [, p..]   (per product and week)
    forecasts_totals.parquet|csv product_id, release_date, total, total_p10, total_p90, order_qty, critical_ratio
    forecasts.json               the order rule and how the total's interval was made

Per product the page carries only its weekly numbers (a data attribute, ~10 bytes a week); its chart is drawn
by the script when the row is opened, so a 5,000-product page stays a few MB (bench/report_size.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

import polars as pl

from sf.errors import SfError
from sf.report import svg

TABLE_COLUMNS = (  # key, header, type: what the table shows and the CSV holds, in this order
    ("id", "product", "text"), ("category", "category", "text"), ("release", "release", "text"),
    ("total", "total (units)", "num"), ("lo", "p10", "num"), ("hi", "p90", "num"), ("order", "order (units)", "num"))
OVERVIEW_BARS = 20  # products in the overview chart (the largest totals)


@dataclass
class NewForecasts:
    source: Path  # the weekly forecasts file
    weekly: pl.DataFrame
    totals: pl.DataFrame
    side: dict  # the .json beside it
    categories: dict[str, str]  # product_id -> category ("" unknown)

    @property
    def horizon(self) -> int:
        return int(self.weekly["step"].max()) + 1 if self.weekly.height else 0


def _read(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path) if path.suffix.lower() == ".parquet" else pl.read_csv(path, try_parse_dates=True)
    except Exception as e:  # polars raises many types for a damaged table
        raise SfError(f"{path}: not readable as a forecasts table ({type(e).__name__})") from None


def load_forecasts(path: str | Path) -> NewForecasts:
    """`sf predict`'s output (the weekly file; its _totals file and .json beside it)."""
    path = Path(path)
    totals_file = path.with_name(f"{path.stem}_totals{path.suffix}")
    for need in (path, totals_file, path.with_suffix(".json")):
        if not need.is_file():
            raise SfError(f"{need}: not found (sf report FILE reads `sf predict`'s output: the forecasts, their "
                          f"_totals table and .json beside them; rerun `sf predict`)")
    side = json.loads(path.with_suffix(".json").read_text())
    weekly, totals = _read(path), _read(totals_file)
    missing = [c for c in ("product_id", "step", "yhat") if c not in weekly.columns]
    missing += [c for c in ("product_id", "total", "total_p10", "total_p90", "order_qty") if c not in totals.columns]
    if missing:
        raise SfError(f"{path}: column(s) {', '.join(missing)} missing; rerun `sf predict`")
    return NewForecasts(path, weekly.with_columns(pl.col("product_id").cast(pl.Utf8)),
                        totals.with_columns(pl.col("product_id").cast(pl.Utf8)), side, _categories(side))


def _categories(side: dict) -> dict[str, str]:
    """The products' category from the folder `sf predict` read, when it is still there."""
    data = (side.get("config") or {}).get("data")
    for name in ("products.parquet", "products.csv"):
        p = Path(data) / name if data else None
        if p is not None and p.is_file():
            df = pl.read_parquet(p) if name.endswith("parquet") else pl.read_csv(p, infer_schema_length=0)
            if "category" in df.columns:
                return dict(zip(df["product_id"].cast(pl.Utf8).to_list(),
                                df["category"].cast(pl.Utf8).fill_null("").to_list()))
    return {}


def _rows(fc: NewForecasts) -> list[dict]:
    """One dict per product: the table's cells as text (what the CSV holds too) and its weekly numbers."""
    lo = "p10" if "p10" in fc.weekly.columns else None
    hi = "p90" if "p90" in fc.weekly.columns else None
    weeks = fc.weekly.sort("product_id", "step").group_by("product_id", maintain_order=True).agg(
        pl.col("yhat"), *(pl.col(c) for c in (lo, hi) if c), pl.col("date").first().alias("start")
        if "date" in fc.weekly.columns else pl.lit(None).alias("start"))
    by_id = {r["product_id"]: r for r in weeks.iter_rows(named=True)}
    out = []
    for r in fc.totals.sort("total", descending=True).iter_rows(named=True):
        w = by_id.get(r["product_id"], {})
        rel = r.get("release_date")
        out.append({
            "id": r["product_id"], "category": fc.categories.get(r["product_id"], ""),
            "release": "" if rel is None else str(rel)[:10],
            "total": f"{r['total']:.0f}", "lo": f"{r['total_p10']:.0f}", "hi": f"{r['total_p90']:.0f}",
            "order": f"{r['order_qty']:.0f}",
            "weeks": " ".join(f"{v:.3g}" for v in w.get("yhat") or []),
            "band": ";".join(f"{a:.3g} {b:.3g}" for a, b in zip(w.get(lo) or [], w.get(hi) or [])) if lo and hi else "",
            "start": "" if w.get("start") is None else str(w["start"])[:10],
        })
    return out


def csv_rows(header, rows) -> str:
    """A table's header and text cells as CSV (RFC 4180 quoting)."""
    def cell(v: str) -> str:
        return f'"{v.replace(chr(34), chr(34) * 2)}"' if any(c in v for c in ',"\n') else v

    return "".join(",".join(cell(str(v)) for v in line) + "\n" for line in [list(header), *rows])


def csv_text(rows: list[dict]) -> str:
    """The forecast table as CSV: its columns, its cells, nothing else."""
    return csv_rows([h for _, h, _ in TABLE_COLUMNS], [[r[k] for k, _, _ in TABLE_COLUMNS] for r in rows])


def overview(rows: list[dict], horizon: int) -> str:
    """The largest forecasts: total with its p10–p90 interval and the order placed."""
    shown = rows[:OVERVIEW_BARS]
    return svg.interval_bars([r["id"] for r in shown], [float(r["total"]) for r in shown],
                             [(float(r["lo"]), float(r["hi"])) for r in shown], [float(r["order"]) for r in shown],
                             title=f"forecast total over {horizon} weeks, p10–p90 and order"
                                   + (f" (largest {len(shown)} of {len(rows)})" if len(rows) > len(shown) else ""),
                             unit=f"units over {horizon} weeks")


def section(fc: NewForecasts) -> str:
    """<section id='new-products'>: the rule, the overview chart, the sortable table with its CSV link."""
    rows = _rows(fc)
    t = fc.side.get("totals") or {}
    period = "week"
    head = "".join(f"<th data-key='{k}' data-type='{ty}' class='sortable{' num' if ty == 'num' else ''}'>"
                   f"<button type='button'>{escape(h)}</button></th>" for k, h, ty in TABLE_COLUMNS)
    body = []
    for r in rows:
        data = " ".join(f'data-{k}="{escape(r[k])}"' for k in ("id", "category", "release", "total", "lo", "hi",
                                                             "order", "weeks", "band", "start"))
        cells = "".join(f"<td class='num'>{escape(r[k])}</td>" if ty == "num" else f"<td>{escape(r[k])}</td>"
                        for k, _, ty in TABLE_COLUMNS)
        body.append(f"<tbody class='forecast' {data}><tr class='summary' tabindex='0'>{cells}</tr>"
                    f"<tr class='detail' hidden><td colspan='{len(TABLE_COLUMNS)}'></td></tr></tbody>")
    csv = quote(csv_text(rows))
    name = f"{fc.source.stem}_table.csv"
    return (f"<section id='new-products'><h2>New products: forecasts and orders ({len(rows)})</h2>"
            f"<p>{escape(t.get('order_rule', ''))}. Interval: {escape(t.get('method', ''))}. "
            f"Units summed over the {fc.horizon}-{period} horizon from each product's release; "
            "click or press Enter on a row for its weekly forecast.</p>"
            f"<p><a id='csv-new-products' href='data:text/csv;charset=utf-8,{csv}' download='{escape(name)}'>"
            f"download this table (CSV)</a> · source: {escape(str(fc.source))}</p>"
            f"<div class='np-grid'><div class='scroll np-table'><table id='forecast-table'><thead><tr>{head}</tr></thead>"
            f"{''.join(body)}</table></div><div>{overview(rows, fc.horizon)}</div></div>"
            "</section>")
