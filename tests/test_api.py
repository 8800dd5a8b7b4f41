"""The Python API is the CLI's engine: same config and seeds, same numbers; frames (polars or pandas) in,
polars out; its docstring examples and examples/quickstart.py run."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import sf
from sf.errors import SfError
from tests.fakes import make_dataset

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")
SETTINGS = dict(seeds=2, epochs=3, patience=2, hidden=8, loss="quantile", quantiles=(0.1, 0.5, 0.9))


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("api") / "data", n=60, horizon=6)


def _metrics(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    return {k: m[k] for k in ("val", "test", "train_mean_curve", "split", "hit_threshold")}


def test_api_and_cli_give_identical_numbers(fake, tmp_path, cli):
    root, store = fake
    code, _, err = cli("train", "--features", store, "--data", root, "--out", tmp_path / "cli", "--seeds", 2,
                       "--epochs", 3, "--patience", 2, "--hidden", 8, "--loss", "quantile", "--quantiles", "0.1,0.5,0.9")
    assert code == 0, err
    fc = sf.Forecaster(model="sf", fusion="i2t_image", head="bilstm", **SETTINGS).fit(sf.FeatureStore(store), root,
                                                                                  out=tmp_path / "api")
    assert fc.metrics == json.loads((tmp_path / "api" / "metrics.json").read_text())
    assert _metrics(tmp_path / "api") == _metrics(tmp_path / "cli")
    a = pl.read_parquet(tmp_path / "api" / "predictions.parquet")
    assert a.equals(pl.read_parquet(tmp_path / "cli" / "predictions.parquet"))
    # predict: the API's frame is the table `sf predict` writes
    code, _, err = cli("predict", "--model", tmp_path / "cli", "--data", root, "--store", store, "--no-extract",
                       "--out", tmp_path / "cli.parquet")
    assert code == 0, err
    pred = fc.predict(root, store=store, extract=False)
    assert pred.equals(pl.read_parquet(tmp_path / "cli.parquet"))
    assert pred.columns[:4] == ["product_id", "step", "date", "yhat"] and {"p10", "p50", "p90"} <= set(pred.columns)
    assert pred.height == 60 * 6


def test_frames_polars_or_pandas_are_the_folder(fake, tmp_path):
    root, store = fake
    by_folder = sf.Forecaster(**SETTINGS).fit(store, root, out=tmp_path / "folder")
    tables = {name: pl.read_csv(root / f"{name}.csv", infer_schema=False) for name in ("products", "sales", "exog")}
    tables["sales"] = tables["sales"].with_columns(pl.col("step").cast(pl.Int64), pl.col("units").cast(pl.Float64))
    tables["exog"] = tables["exog"].with_columns(pl.exclude("date").cast(pl.Float64))
    meta = {"name": "fake", "period": "week", "exog_link": ["category"], "exog_lookback": 8}
    by_polars = sf.Forecaster(**SETTINGS).fit(store, {**tables, "dataset": meta}, out=tmp_path / "polars")
    pandas = {k: v.to_pandas() for k, v in tables.items()}
    by_pandas = sf.Forecaster(**SETTINGS).fit(store, {**pandas, "dataset": meta}, out=tmp_path / "pandas")
    for other in (by_polars, by_pandas):
        assert other.metrics["val"] == by_folder.metrics["val"] and other.metrics["test"] == by_folder.metrics["test"]
    # evaluate and explain read the run folder, like the CLI
    scores = by_pandas.evaluate({**pandas, "dataset": meta}, store=store, extract=False)
    assert scores["products"] == 60 and np.isfinite(scores["ensemble"]["WAPE"])
    why = by_folder.explain("p0003")
    assert why["product_id"] == "p0003" and Path(why["png"]).is_file() and len(why["analogs"]) == 5
    # save / load: the same forecasts from the copied folder
    by_folder.save(tmp_path / "saved")
    again = sf.Forecaster.load(tmp_path / "saved")
    assert again.config.fusion == "i2t_image" and again.config.seeds == 2
    assert again.predict(root, store=store, extract=False).equals(by_folder.predict(root, store=store, extract=False))


def test_bad_input_is_one_clear_error(fake, tmp_path):
    root, store = fake
    with pytest.raises(SfError, match="not fitted"):
        sf.Forecaster().predict(root)
    with pytest.raises(SfError, match="'products' frame is required"):
        sf.Forecaster(**SETTINGS).fit(store, {"sales": pl.DataFrame({"x": [1]})}, out=tmp_path / "r")
    with pytest.raises(SfError, match="expected a polars or pandas DataFrame"):
        sf.Forecaster(**SETTINGS).fit(store, {"products": [1, 2]}, out=tmp_path / "r")
    with pytest.raises(SfError, match="not a run folder"):
        sf.Forecaster.load(tmp_path)


def test_import_sf_stays_light():
    code = "import sys, sf; sf.Forecaster; print(sorted(m for m in ('torch', 'h5py', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "[]"


def test_docstring_examples_run(tmp_path, monkeypatch):
    import sf.api

    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(sf.api, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 20


def test_example_script_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path), "--small"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "validation WAPE" in done.stdout and "held-out WAPE" in done.stdout
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "saved" / "metrics.json").is_file()


def test_studies_return_their_csv_as_polars(fake, tmp_path):
    root, store = fake
    abl = sf.ablate(store, root, extras=False, seeds=1, epochs=1, hidden=8, workers=1, out=tmp_path / "abl")
    assert abl.equals(pl.read_csv(tmp_path / "abl" / "ablation.csv"))
    assert {"WAPE_mean", "WAPE_std"} <= set(abl.columns) and abl.height >= 4  # 2 fusions x 2 heads (one store)
    cmp = sf.compare(store, root, models=("mean_curve", "sf"), seeds=1, epochs=1, hidden=8, workers=1,
                     out=tmp_path / "cmp")
    assert cmp.equals(pl.read_csv(tmp_path / "cmp" / "compare.csv")) and "rank" in cmp.columns


def test_frames_never_replace_a_folder_sf_did_not_write(tmp_path):
    """Frames are written to a scratch folder that a later fit replaces; a user's own folder there is refused."""
    from sf.api import write_dataset

    frames = {"products": pl.DataFrame({"product_id": ["a", "b"], "text": ["red shirt", "blue bag"]})}
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(SfError, match="was not written from frames by sf"):
        write_dataset(frames, mine)
    assert (mine / "notes.txt").read_text() == "keep me"

    scratch = write_dataset(frames, tmp_path / "scratch")
    (scratch / "stale.parquet").write_text("from an earlier write")
    again = write_dataset(frames, scratch)
    assert not (again / "stale.parquet").exists()
    assert pl.read_parquet(again / "products.parquet")["product_id"].to_list() == ["a", "b"]
