"""`sf report`: one self-contained HTML file whose numbers are the run's own (same code as explain/evaluate)."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from PIL import Image

from sf.forecast.config import TrainConfig
from sf.forecast.engine import train_run
from sf.report.browser import Chromium, find_chromium
from tests.fakes import make_dataset, refresh_hashes

H = 6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    root, store = make_dataset(base / "train", n=60, horizon=H)
    (root / "images").mkdir()
    Image.new("RGB", (40, 24), (200, 30, 30)).save(root / "images" / "p0003.png")
    refresh_hashes(root, store)  # the store's row for p0003 is "made from" this picture
    cfg = TrainConfig(features=store, data=root, out=base / "run", epochs=2, seeds=2, hidden=8, patience=2,
                      loss="quantile", quantiles=(0.1, 0.5, 0.9))
    train_run(cfg, progress=False)
    return base / "run"


def _products(html: str) -> dict[str, dict[str, str]]:
    return {m.group(1): dict(re.findall(r'data-(\w+)="([^"]*)"', m.group(0)))
            for m in re.finditer(r"<tbody class='product' data-id=\"([^\"]+)\"[^>]*>", html)}


def test_report_of_a_run_folder(run, cli):
    code, out, err = cli("report", run)
    assert code == 0, err
    html = (run / "report.html").read_text()
    assert str(run / "report.html") in out.replace("\n", "")
    # one product row per validation and test product, with the run's own forecasts (seed ensemble)
    pred = pl.read_parquet(run / "predictions.parquet").filter(pl.col("split") != "train")
    rows = _products(html)
    assert set(rows) == set(pred["product_id"].unique())
    ens = pred.group_by("product_id", "step").agg(pl.col("yhat_q0.5").mean(), pl.col("y").first(), pl.col("split").first())
    for pid, g in ens.group_by("product_id"):
        r = rows[pid[0]]
        assert float(r["forecast"]) == pytest.approx(g["yhat_q0.5"].sum(), rel=1e-4)
        assert float(r["actual"]) == pytest.approx(g["y"].sum(), rel=1e-6)
        assert r["split"] == g["split"][0]
        if g["y"].sum() > 0:
            wape = 100 * np.abs(g["y"] - g["yhat_q0.5"]).sum() / g["y"].sum()
            assert float(r["wape"]) == pytest.approx(wape, rel=1e-4)
    # the headline table shows metrics.json's numbers (validation WAPE, model and mean curve)
    m = json.loads((run / "metrics.json").read_text())
    assert f"{m['val']['mean']['WAPE']:,.1f}" in html and f"{m['val']['mean_curve']['WAPE']:,.1f}" in html
    # self-contained: no external script, stylesheet or image
    assert not re.search(r"""(src|href)=['"](https?:|//|/)""", html) and "<link" not in html
    assert html.count("data:image/jpeg;base64,") >= 1  # p0003's picture (and it as an analog)


def test_report_refuses_a_folder_that_is_neither_run_nor_demo(tmp_path, cli):
    (tmp_path / "x").mkdir()
    code, _, err = cli("report", tmp_path / "x")
    assert code == 2 and err.startswith("error:") and "neither a run folder" in err and "Traceback" not in err
    code, _, err = cli("report", tmp_path / "missing")
    assert code == 2 and "folder not found" in err


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_browser_check_sees_console_errors_and_exceptions(tmp_path):
    """The browser test's `errors == []` means something: an error logged or thrown in a page is reported."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); null.x;</script></body></html>")
    with Chromium() as b:
        b.open(page)
        errors = b.errors()
    assert any("boom" in e for e in errors) and any("exception" in e for e in errors), errors
