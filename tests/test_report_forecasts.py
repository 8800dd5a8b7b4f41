"""`sf report` of `sf predict`'s output: new products' forecasts, totals and orders, checked in Chromium."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import polars as pl
import pytest

from sf.report import write_report
from sf.report.browser import Chromium, find_chromium

H = 8


def _predict_output(folder: Path, n: int = 25) -> Path:
    """What `sf predict` writes: weekly table, _totals table, .json beside them (a category per product)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"p{i:03d}" for i in range(n)]
    level = rng.uniform(5, 100, n)
    pl.DataFrame({"product_id": ids, "category": [("dress", "bag, small", "shoe")[i % 3] for i in range(n)]}
                 ).write_csv(folder / "products.csv")
    weekly = pl.DataFrame({
        "product_id": np.repeat(ids, H), "step": np.tile(np.arange(H), n),
        "date": pl.Series([str(np.datetime64("2024-03-04") + 7 * s) for _ in ids for s in range(H)]).str.to_date(),
        "yhat": np.repeat(level, H), "p10": np.repeat(0.5 * level, H), "p90": np.repeat(2 * level, H)})
    weekly.write_parquet(folder / "forecasts_new.parquet")
    total = level * H
    pl.DataFrame({"product_id": ids, "release_date": pl.Series(["2024-03-04"] * n).str.to_date(), "total": total,
                  "total_p10": 0.7 * total, "total_p90": 1.5 * total, "order_qty": np.ceil(1.2 * total).astype(int),
                  "critical_ratio": [0.8] * n}).write_parquet(folder / "forecasts_new_totals.parquet")
    (folder / "forecasts_new.json").write_text(json.dumps({
        "config": {"data": str(folder)}, "products": n, "seeds": [0], "run": "runs/x",
        "totals": {"order_rule": "order = the 0.8 quantile of the total", "method": "test paths"}}))
    return folder / "forecasts_new.parquet"


def test_report_of_a_predict_output(tmp_path):
    path = write_report(_predict_output(tmp_path))
    assert path == tmp_path / "forecasts_new_report.html"
    html = path.read_text()
    assert html.count("<tbody class='forecast'") == 25 and "order = the 0.8 quantile" in html
    assert "units over 8 weeks" in html  # the overview's axis in units
    assert "Σ p10" not in html


def test_report_of_a_predict_output_refuses_a_missing_totals_file(tmp_path, cli):
    f = _predict_output(tmp_path)
    (tmp_path / "forecasts_new_totals.parquet").unlink()
    code, _, err = cli("report", f)
    assert code == 2 and err.startswith("error:") and "forecasts_new_totals.parquet: not found" in err


_TABLE = "Array.from(document.querySelectorAll('#forecast-table tbody.forecast tr.summary')).map(r => " \
         "Array.from(r.cells).map(c => c.textContent))"


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 400])
def test_forecast_report_in_a_real_browser(tmp_path, width):
    """No horizontal overflow, the CSV link holds what the table shows, every chart has axis labels with units,
    and the header sorts from the keyboard (Tab to its button, Enter)."""
    html = write_report(_predict_output(tmp_path))
    with Chromium(width=width, height=900) as b:
        b.open(html)
        b.evaluate("document.querySelector('#forecast-table tbody.forecast tr.summary').click()")  # a weekly chart
        assert b.evaluate("document.documentElement.scrollWidth") <= width
        header = b.evaluate("Array.from(document.querySelectorAll('#forecast-table th')).map(t => t.textContent)")
        rows = b.evaluate(_TABLE)
        link = b.evaluate("document.getElementById('csv-new-products').getAttribute('href')")
        parsed = list(csv.reader(io.StringIO(unquote(link.split(",", 1)[1]))))
        assert [h.rstrip() for h in parsed[0]] == [h.strip() for h in header] and parsed[1:] == rows
        assert any("," in r[1] for r in rows)  # a quoted cell survived the CSV
        labels = b.evaluate("Array.from(document.querySelectorAll('svg.chart')).map(s => "
                            "Array.from(s.querySelectorAll('.axis-label')).map(t => t.textContent))")
        assert len(labels) >= 2 and all(any("units" in t for t in ls) for ls in labels), labels
        assert any(any("week" in t for t in ls) for ls in labels)
        # keyboard: focus the "order" header's button and press Enter, twice
        b.evaluate("document.querySelector('#forecast-table th[data-key=order] button').focus()")
        orders = []
        for _ in range(2):
            for kind in ("keyDown", "keyUp"):
                b.call("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                  "windowsVirtualKeyCode": 13, "text": "\r" if kind == "keyDown" else ""})
            orders.append([float(r[-1]) for r in b.evaluate(_TABLE)])
        assert orders[0] == sorted(orders[0]) and orders[1] == sorted(orders[1], reverse=True)
        assert b.errors() == []
