"""`sf ablate`: the 8-row grid (backbone x fusion x head) plus extras, every row on the same split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.studies.ablate import EXTRAS, GRID_FUSIONS, GRID_HEADS, AblateConfig, alt_store_path, run_ablation
from sf.forecast.config import TrainConfig
from sf.forecast.engine import split_id
from sf.forecast.inputs import build_inputs
from sf.forecast.splits import make_split
from tests.fakes import dataset_hashes, make_dataset, write_store

FAST = TrainConfig(epochs=2, seeds=2, patience=2)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("abl"), n=120, horizon=6)
    keys = pl.read_csv(root / "products.csv")["product_id"].to_list()
    rng = np.random.default_rng(5)
    alt = write_store(root / "store_small.h5", keys, rng.standard_normal((120, 8)).astype(np.float32),
                      rng.standard_normal((120, 12)).astype(np.float32), backbone="small",
                      content_hashes=dataset_hashes(load_dataset(root)))
    return root, store, alt


@pytest.fixture(scope="module")
def grid_result(fake, tmp_path_factory):
    root, store, alt = fake
    out = tmp_path_factory.mktemp("abl_out")
    cfg = AblateConfig(features=store, data=root, backbone="small", features_alt=alt, extras=True, workers=2,
                       out=out, train=FAST)
    return run_ablation(cfg, progress=False), root, store


def test_grid_is_backbone_x_fusion_x_head_over_the_seeds(grid_result):
    result, _, _ = grid_result
    grid = [s for s in result.summary if s["group"] == "grid"]
    assert len(grid) == 8
    assert {(s["backbone"], s["fusion"], s["head"]) for s in grid} == {
        (b, f, h) for b in ("fake", "small") for f in GRID_FUSIONS for h in GRID_HEADS}
    assert [s for s in result.summary if s["group"] == "extra"].__len__() == len(EXTRAS)
    for s in grid:
        assert s["seeds"] == [0, 1]
        per_seed = [r["WAPE"] for r in s["test"]["per_seed"]]
        assert s["test"]["mean"]["WAPE"] == pytest.approx(np.mean(per_seed))
        assert s["test"]["std"]["WAPE"] == pytest.approx(np.std(per_seed, ddof=1))


def test_each_row_is_fitted_once_per_seed(grid_result):
    """The grid's rows differ by backbone, fusion and head only: no per-seed choice of fused dropout (which
    `sf train` makes), so every row and seed is one fit with the model's default, recorded with the run."""
    result, _, _ = grid_result
    train = json.loads((result.out / "ablation.json").read_text())["train"]
    assert train["choose_on_validation"] is False and "fused_dropout" not in train["hparams"]


def test_every_row_uses_the_same_split_made_from_the_dataset(grid_result):
    result, root, store = grid_result
    inp = build_inputs(load_dataset(root), load_features(store))
    expected = make_split(inp, "auto", seed=FAST.split_seed, fractions=FAST.fractions)
    expected_id = split_id({k: inp.take(v) for k, v in expected.items()})
    ids = {i for s in result.summary for i in s["split_ids"]}
    assert ids == {expected_id}
    assert result.split["split_id"] == expected_id
    assert result.split["train"]["products"] == len(expected["train"])


def test_outputs_are_written(grid_result):
    result, _, _ = grid_result
    out = result.out
    csv = pl.read_csv(out / "ablation.csv")
    assert csv.height == 2 * len(result.summary)  # a val and a test line per row
    assert {"row", "split", "WAPE_mean", "WAPE_std", "backbone", "fusion", "head"} <= set(csv.columns)
    payload = json.loads((out / "ablation.json").read_text())
    assert len(payload["rows"]) == len(result.summary) and payload["split"]["kind"] == "time"
    assert json.loads((out / "config.json").read_text())["train"]["seeds"] == 2
    with Image.open(out / "ablation.png") as im:
        assert im.width > 200 and im.height > 200


def test_missing_alternative_store_names_the_extract_command(fake, tmp_path):
    root, store, _ = fake
    cfg = AblateConfig(features=store, data=root, backbone="resnet18", extras=False, workers=1, out=tmp_path / "o",
                       train=TrainConfig(epochs=1, seeds=1))
    result = run_ablation(cfg, progress=False)
    expected = alt_store_path(store, "fake", "resnet18")
    assert expected == store.with_name("store_resnet18.h5")
    assert any(f"sf extract --data {root} --backbone resnet18 --out {expected}" in n for n in result.notes)
    assert len([s for s in result.summary if s["group"] == "grid"]) == 4


def test_default_is_the_papers_8_rows_and_extras_only_when_asked():
    from sf.studies.ablate import plan

    default = AblateConfig(features=Path("a.h5"), data=Path("d"))
    rows = plan("lite0", "resnet18", default.extras)
    assert [v.group for v in rows].count("grid") == 8 and not any(v.group == "extra" for v in rows)
    assert sum(v.group == "extra" for v in plan("lite0", "resnet18", True)) == 6


def test_alt_store_name_swaps_the_backbone():
    assert alt_store_path(Path("cache/visuelle_resnet101.h5"), "resnet101", "resnet18") == Path("cache/visuelle_resnet18.h5")


def test_cli_ablate_and_its_errors(cli, fake, tmp_path):
    root, store, alt = fake
    out = tmp_path / "cli"
    code, stdout, _ = cli("ablate", "--features", store, "--data", root, "--backbone", "small", "--features-alt", alt,
                          "--no-extras", "--seeds", "1", "--epochs", "1", "--workers", "1", "--out", out)
    assert code == 0, stdout
    assert "small · concat · lstm" in stdout and (out / "ablation.json").exists()
    before = (out / "ablation.json").read_bytes()
    code, _, err = cli("ablate", "--features", store, "--data", root, "--backbone", "fake", "--out", out)
    assert code == 2 and "error:" in err and "main store's backbone" in err
    code, _, err = cli("ablate", "--features", tmp_path / "nope.h5", "--data", root, "--out", out)
    assert code == 2 and "nope.h5" in err
    assert (out / "ablation.json").read_bytes() == before  # a failed run leaves the old result alone
