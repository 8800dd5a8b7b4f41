"""The notebook API: frames and an images folder in, the input's kind of frame out, nothing written in the
working directory, errors in Python terms."""

from __future__ import annotations

import os

import polars as pl
import pytest

import sf
from sf.errors import SfError

EXTRACT = dict(backbone="resnet18", weights="random", text_encoder="hash", image_size=32)


@pytest.mark.slow
def test_fit_frames_then_predict_a_pandas_frame(tmp_path, monkeypatch):
    data = sf.demo_data(tmp_path / "shop", products=60, image_size=32)
    products = pl.read_csv(data / "products.csv", infer_schema=False).to_pandas()
    sales = pl.read_csv(data / "sales.csv").to_pandas()
    work = tmp_path / "notebook"
    work.mkdir()
    monkeypatch.chdir(work)
    fc = sf.Forecaster(seeds=1, epochs=2, hidden=8)
    fc.fit(products.iloc[:50], sales[sales["product_id"].isin(products["product_id"].iloc[:50])],
           images=data / "images", extract_options=EXTRACT)
    pred = fc.predict(products.iloc[50:], images=data / "images")
    assert type(pred).__module__.startswith("pandas")  # pandas in, pandas out
    assert set(pred["product_id"]) == set(products["product_id"].iloc[50:])
    assert list(os.listdir(work)) == []  # nothing written where the notebook runs
    before = sorted(p.name for p in fc.run_dir.iterdir())
    fc.predict(pl.from_pandas(products.iloc[50:]), images=data / "images")
    assert sorted(p.name for p in fc.run_dir.iterdir()) == before  # predict leaves the model folder alone
    with pytest.raises(SfError) as e:
        sf.Forecaster(seeds=1, epochs=1, hidden=4).fit(products, sales, out=fc.run_dir.parent, images=data / "images",
                                                       extract_options=EXTRACT)
    assert "--" not in str(e.value)
