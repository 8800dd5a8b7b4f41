"""The report as one self-contained HTML file: CSS and JavaScript inline, images as data URIs, charts as SVG.

The table is rendered here (it reads without JavaScript); the inline script only sorts, filters and opens
a product's detail row. Each product is one <tbody class="product"> (a summary row + its detail row), so
sorting moves whole products.
"""

from __future__ import annotations

import math
from html import escape
from importlib import resources

import numpy as np

from sf.report import svg
from sf.report.collect import ProductView, Report
from sf.studies.tables import shows_ensemble

METRICS = ("WAPE", "MAE", "RMSE", "R2", "AUC", "Accuracy", "pinball", "coverage")
LOWER_IS_BETTER = {"WAPE", "MAE", "RMSE", "pinball"}


def _asset(name: str) -> str:
    return resources.files("sf.report").joinpath(name).read_text(encoding="utf-8")


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:,.{digits}f}"


def _metric(mean: dict, std: dict | None, key: str) -> str:
    v = mean.get(key)
    if v is None:
        return "–"
    d = 1 if key == "WAPE" else 3 if key in ("R2", "AUC", "Accuracy", "coverage") else 2
    s = (std or {}).get(key)
    return _fmt(v, d) + (f" ± {_fmt(s, d)}" if s else "")


def _headline(report: Report) -> str:
    parts = []
    for block in report.headline:
        keys = [k for k in METRICS if any(k in r["mean"] for r in block["rows"])]
        head = "".join(f"<th>{k}{' ↓' if k in LOWER_IS_BETTER else ' ↑'}</th>" for k in keys)
        body = "".join(
            f"<tr><td>{escape(r['name'])}</td>" + "".join(f"<td class='num'>{_metric(r['mean'], r['std'], k)}</td>" for k in keys)
            + "</tr>" for r in block["rows"])
        per_seed = next((r["per_seed"] for r in block["rows"] if r.get("per_seed")), None)
        caption = (f"<p class='note'>The same products scored per seed: WAPE {_metric(per_seed['mean'], per_seed['std'], 'WAPE')} "
                   f"(mean ± std over {per_seed['seeds']} seeds).</p>" if per_seed else "")
        parts.append(f"<h3>scope: {escape(block['split'])} ({block['products']} products)</h3>"
                     f"<div class='scroll'><table class='metrics'><thead><tr><th></th>{head}</tr></thead><tbody>{body}"
                     f"</tbody></table></div>{caption}")
        wape = [(r["name"], r["mean"].get("WAPE"), (r["std"] or {}).get("WAPE", 0.0)) for r in block["rows"]]
        wape = [w for w in wape if w[1] is not None]
        if wape:
            parts.append(svg.bars([w[0] for w in wape], [w[1] for w in wape], [w[2] for w in wape],
                                  title=f"pooled WAPE on {block['split']} (lower is better)",
                                  highlight={w[0] for w in wape if w[0].startswith("sf")},
                                  unit="pooled WAPE, % of units sold"))
    return "".join(parts)


def _study_table(rows: list[dict], title: str, split: str, own: set[str], extra_col: str | None = None) -> str:
    """Rows of `sf ablate` / `sf compare` (each with val/test mean + std): a table and a WAPE bar chart."""
    if not rows:
        return ""
    splits = [s for s in ("val", "test") if any(isinstance(r.get(s), dict) for r in rows)]
    keys = ("WAPE", "MAE", "AUC")
    # The seeds' mean forecast, from studies since 2026-11-30.
    ensembles = [s for s in splits if shows_ensemble(rows) and any("ensemble" in (r.get(s) or {}) for r in rows)]
    head = "".join(f"<th>{s} {k}</th>" for s in splits for k in keys) + "".join(
        f"<th>{s} WAPE, seed ensemble</th>" for s in ensembles)
    body = []
    for r in rows:
        cells = "".join(f"<td class='num'>{_metric((r.get(s) or {}).get('mean', {}), (r.get(s) or {}).get('std'), k)}</td>"
                        for s in splits for k in keys)
        cells += "".join(f"<td class='num'>{_metric((r.get(s) or {}).get('ensemble') or {}, None, 'WAPE')}</td>"
                         for s in ensembles)
        extra = f"<td class='num'>{r.get(extra_col, '')}</td>" if extra_col else ""
        cls = " class='own'" if r["row"] in own else ""
        body.append(f"<tr{cls}><td>{escape(str(r['row']))}</td>{extra}{cells}</tr>")
    extra_head = f"<th>{extra_col}</th>" if extra_col else ""
    table = (f"<div class='scroll'><table class='metrics study'><thead><tr><th>{escape(title)}</th>{extra_head}{head}"
             f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    shown = [r for r in rows if isinstance(r.get(split), dict)]
    chart = svg.bars([str(r["row"]) for r in shown], [r[split]["mean"].get("WAPE") for r in shown],
                     [(r[split].get("std") or {}).get("WAPE", 0.0) for r in shown],
                     title=f"pooled WAPE on {split} (± std over seeds)", highlight=own,
                     unit="pooled WAPE, % of units sold")
    return table + chart


def _studies(report: Report) -> str:
    out = []
    if report.compare:
        out.append("<section id='comparison'>")
        for name, rows in (report.compare.get("tables") or {}).items():
            out.append(f"<h2>Comparison: {escape(name)}</h2>"
                       "<p>Scope: every model on the demo catalogue's own split (sf compare; shorter training, --study-epochs), "
                       "not the held-out products above; rank by pooled WAPE on test.</p>"
                       + _study_table(rows, "model", "test", {"sf"}, extra_col="rank"))
        out += [f"<p class='note'>{escape(note)}</p>" for note in report.compare.get("notes", [])]
        out.append("</section>")
    if report.ablation:
        rows = report.ablation.get("rows", [])
        own = {r["row"] for r in rows if "biattn · bilstm" in str(r["row"])}
        out.append("<section id='ablation'><h2>Ablation</h2><p>Backbone × fusion × head and one change at a time "
                   "(sf ablate) on the demo catalogue's own split, shorter training (--study-epochs): scope differs from the "
                   "headline's; choose on validation, test beside it.</p>"
                   + _study_table(rows, "row", report.ablation.get("reported_split", "test"), own) + "</section>")
    return "".join(out)


def _analog(a: dict) -> str:
    pic = (f"<img src='{a['image']}' width='72' height='72' alt='{escape(a['product_id'])}'>" if a["image"]
           else "<div class='noimg-s'>no image</div>")
    return (f"<figure class='analog'>{pic}<figcaption>{escape(a['product_id'])}<br>"
            f"sim {a['similarity']:.2f} · {a['total']:.0f} units</figcaption></figure>")


def _detail(p: ProductView, report: Report) -> str:
    image = "<div class='noimg'>no image</div>"
    if p.image:
        overlay = svg.attention_grid(p.regions, 176) if p.regions is not None else ""
        image = (f"<div class='imgbox'><img src='{p.image}' width='176' height='176' alt='{escape(p.product_id)}'>"
                 f"{overlay}</div>")
        if p.regions is not None:
            image += "<div class='caption'>attention each image region receives from the description's words</div>"
    words = "".join(f"<li><span class='bar' style='width:{max(2, 100 * s):.0f}px'></span>{escape(w)} "
                    f"<span class='share'>{100 * s:.0f}%</span></li>" for w, s in p.words)
    words = f"<ol class='words'>{words}</ol>" if words else "<p class='note'>no word attention</p>"
    chart = svg.forecast(p.forecast, p.band, p.actual, report.reference, title=f"{p.product_id}: forecast vs actual")
    lo, hi = (report.quantiles[0], report.quantiles[-1]) if p.band is not None else (None, None)
    legend = ("<div class='legend'><span class='k model'></span>forecast"
              + (f" <span class='k band'></span>P{100 * lo:.0f}–P{100 * hi:.0f}" if lo is not None else "")
              + " <span class='k actual'></span>actual <span class='k reference'></span>training mean curve</div>")
    analogs = "".join(_analog(a) for a in p.analogs)
    attrs = ", ".join(f"{escape(k)}: {escape(v)}" for k, v in p.attributes.items() if v)
    notes = "".join(f"<li>{escape(n)}</li>" for n in p.notes)
    return (f"<div class='detail-grid'><div>{image}</div>"
            f"<div><p class='desc'>{escape(p.text) or '<i>no description</i>'}</p><p class='attrs'>{attrs}</p>"
            f"<h4>most attended words</h4>{words}</div>"
            f"<div>{chart}{legend}</div>"
            f"<div><h4>analogs (training products)</h4><div class='analogs'>{analogs or '–'}</div>"
            f"{f'<ul class=notes>{notes}</ul>' if notes else ''}</div></div>")


def _row(p: ProductView, report: Report, category_col: str | None) -> str:
    cat = p.attributes.get(category_col, "") if category_col else ""
    thumb = f"<img src='{p.image}' width='44' height='44' alt=''>" if p.image else "<span class='noimg-s'>–</span>"
    top = escape(p.words[0][0]) if p.words else ""
    data = {"id": p.product_id, "category": cat, "split": p.split, "actual": p.total_actual, "forecast": p.total_forecast,
            "wape": p.wape, "mae": p.mae, "image": int(p.image is not None)}
    attrs = " ".join(f'data-{k}="{escape("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)))}"'
                     for k, v in data.items())
    search = escape(" ".join([p.product_id, p.text, *p.attributes.values()]).lower())
    return (f"<tbody class='product' {attrs} data-search=\"{search}\">"
            f"<tr class='summary' tabindex='0'><td>{thumb}</td><td class='pid'>{escape(p.product_id)}</td>"
            f"<td>{escape(cat)}</td><td>{escape(p.split)}</td>"
            f"<td class='num'>{_fmt(p.total_actual, 0)}</td><td class='num'>{_fmt(p.total_forecast, 0)}</td>"
            f"<td class='num'>{_fmt(p.wape, 1)}</td><td class='num'>{_fmt(p.mae, 2)}</td><td>{top}</td></tr>"
            f"<tr class='detail' hidden><td colspan='9'>{_detail(p, report)}</td></tr></tbody>")


PRODUCT_CSV = ("product", "category", "split", "actual total", "forecast total", "WAPE %", "MAE", "top word")


def _products_csv(report: Report, category_col: str | None) -> str:
    """The product table's text columns as CSV (what its cells show), URL-encoded for a data: link."""
    from urllib.parse import quote

    from sf.report.forecasts import csv_rows

    rows = [[p.product_id, p.attributes.get(category_col, "") if category_col else "", p.split,
             _fmt(p.total_actual, 0).replace(",", ""), _fmt(p.total_forecast, 0).replace(",", ""),
             _fmt(p.wape, 1).replace(",", ""), _fmt(p.mae, 2).replace(",", ""), p.words[0][0] if p.words else ""]
            for p in report.products]
    return quote(csv_rows(PRODUCT_CSV, rows))


def _browser(report: Report) -> str:
    if not report.products:
        return "<section id='products'><h2>Products</h2><p>No products to show.</p></section>"
    cols = list(report.products[0].attributes)
    category_col = "category" if "category" in cols else next((c for c in cols if c != "release"), None)
    cats = sorted({p.attributes.get(category_col, "") for p in report.products} - {""}) if category_col else []
    options = "".join(f"<option value='{escape(c)}'>{escape(c)}</option>" for c in cats)
    splits = sorted({p.split for p in report.products} - {""})
    split_opts = "".join(f"<option value='{escape(s)}'>{escape(s)}</option>" for s in splits)
    head = "".join(
        f"<th data-key='{k}' data-type='{t}' class='sortable'><button type='button'>{label}</button></th>" if k
        else f"<th>{label}</th>"
        for k, t, label in (("", "", ""), ("id", "text", "product"), ("category", "text", escape(category_col or "category")),
                            ("split", "text", "split"), ("actual", "num", "actual total"),
                            ("forecast", "num", "forecast total"), ("wape", "num", "WAPE %"), ("mae", "num", "MAE"),
                            ("", "", "top word")))
    rows = "".join(_row(p, report, category_col) for p in report.products)
    return (f"<section id='products'><h2>Products ({len(report.products)})</h2>"
            "<p>Every forecast product: click a row for its image with the attention overlay, its words, the forecast "
            "with its band against the actual sales, and the training products the model finds most similar. "
            "Click a column header (or Tab to it and press Enter) to sort.</p>"
            f"<p><a id='csv-products' href='data:text/csv;charset=utf-8,{_products_csv(report, category_col)}' "
            "download='products.csv'>download this table (CSV)</a></p>"
            "<div class='filters'><label>search <input id='f-search' type='search' placeholder='id, word, attribute'></label>"
            f"<label>{escape(category_col or 'category')} <select id='f-category'><option value=''>all</option>{options}</select></label>"
            f"<label>split <select id='f-split'><option value=''>all</option>{split_opts}</select></label>"
            "<label>WAPE ≥ <input id='f-wape' type='number' min='0' step='5' value=''></label>"
            "<label><input id='f-image' type='checkbox'> with image only</label>"
            "<span id='f-count'></span></div>"
            f"<div class='scroll'><table id='product-table'><thead><tr>{head}</tr></thead>{rows}</table></div></section>")


def _nav(sections: list[tuple[str, str]]) -> str:
    return "<nav>" + " ".join(f"<a href='#{i}'>{escape(label)}</a>" for i, label in sections) + "</nav>"


def _page(title: str, subtitle: str, summary: str, nav: str, body: str, scripts: tuple[str, ...]) -> str:
    js = "".join(f"<script>{_asset(s)}</script>" for s in scripts)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{_asset('page.css')}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p><p class='note'>{escape(summary)}</p>{nav}</header>"
            f"<main>{body}</main>{js}</body></html>")


def render(report: Report) -> str:
    from sf.report.forecasts import section as forecasts_section

    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    errors = [p.wape for p in report.products if p.wape is not None]
    summary = (f"{len(report.products)} products; median product WAPE {np.median(errors):.1f}" if errors
               else f"{len(report.products)} products")
    new = forecasts_section(report.new_products) if report.new_products is not None else ""
    studies = _studies(report)
    sections = [(i, label) for i, label, shown in (
        ("new-products", "new products: forecasts and orders", bool(new)), ("headline", "headline", True),
        ("comparison", "comparison", "id='comparison'" in studies), ("ablation", "ablation", "id='ablation'" in studies),
        ("products", "products", True)) if shown]
    body = (f"{new}<section id='headline'><h2>Headline metrics</h2><p>Pooled over products and weeks, in units; the "
            f"baseline is the training products' mean curve.</p>{_headline(report)}</section>"
            f"{studies}{_browser(report)}"
            f"<footer><ul class='notes'>{notes}</ul><p>Analogs: {escape(report.similarity)}.</p></footer>")
    return _page(report.title, report.subtitle, summary, _nav(sections), body, ("table.js", "page.js", "forecasts.js"))


def render_forecasts(fc) -> str:
    """A page of `sf predict`'s output alone: new products have no sales, so no metrics, only what to order."""
    from sf.report.forecasts import section

    side = fc.side
    subtitle = (f"sf predict: {side.get('products', fc.totals.height)} new products, model {side.get('run', '?')}, "
                f"{len(side.get('seeds', []))} seed(s)")
    notes = "".join(f"<li>{escape(n)}</li>" for n in side.get("notes", []))
    body = section(fc) + (f"<footer><ul class='notes'>{notes}</ul></footer>" if notes else "")
    return _page(f"sf report — {fc.source.stem}", subtitle, f"{fc.totals.height} products, {fc.horizon} weeks",
                 _nav([("new-products", "new products: forecasts and orders")]), body, ("table.js", "forecasts.js"))
