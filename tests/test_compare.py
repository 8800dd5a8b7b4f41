"""`sf compare`: every model in one harness (same split, metrics, seeds); a broken model ranks below the baselines."""

from __future__ import annotations

import json

import polars as pl
import pytest

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.forecast.baselines import BASELINES
from sf.studies.compare import CompareConfig, Contender, contenders, honesty_notes, run_compare
from sf.forecast.config import TrainConfig
from sf.forecast.engine import split_id
from sf.forecast.inputs import build_inputs
from sf.forecast.splits import make_split
from tests.fakes import make_dataset

BASELINE_NAMES = ["mean_curve", "attribute_mean", "knn_image", "knn_attributes", "knn_both"]


@pytest.fixture(scope="module")
def sanity(tmp_path_factory):
    """sf and sf with shuffled features against every baseline, on data whose sales follow the features."""
    root, store = make_dataset(tmp_path_factory.mktemp("cmp"), n=300, horizon=6)
    cfg = CompareConfig(data=(root,), features=(store,), models=(*BASELINE_NAMES, "sf"), shuffled_control=True,
                        workers=2, out=tmp_path_factory.mktemp("cmp_out"),
                        train=TrainConfig(epochs=15, seeds=2, patience=5))
    return run_compare(cfg, progress=False), root, store


def test_broken_model_ranks_below_every_baseline(sanity):
    result, _, _ = sanity
    table = {s["row"]: s for s in next(iter(result.tables.values()))}
    broken = table["sf (shuffled features)"]
    for split in ("val", "test"):
        for name in BASELINE_NAMES:
            assert broken[split]["mean"]["WAPE"] > table[name][split]["mean"]["WAPE"], (split, name)
    assert all(broken["rank"] > table[name]["rank"] for name in BASELINE_NAMES)
    # ...and the same model on its real features beats the mean curve: the features carry the signal
    assert table["sf"]["rank"] < table["mean_curve"]["rank"]


def test_every_model_is_scored_on_the_same_split(sanity):
    result, root, store = sanity
    inp = build_inputs(load_dataset(root), load_features(store))
    split = make_split(inp, "auto", seed=0)
    expected = split_id({k: inp.take(v) for k, v in split.items()})
    summary = next(iter(result.tables.values()))
    assert {i for s in summary for i in s["split_ids"]} == {expected}
    assert all(s["seeds"] == [0, 1] for s in summary if s["model"] == "sf")
    assert all(s["seeds"] == [0] for s in summary if s["model"] in BASELINES)  # deterministic: one run


def test_outputs_are_written(sanity):
    result, _, _ = sanity
    out = result.out
    for name in ("compare.csv", "compare.json", "compare.png", "compare_steps.png", "config.json"):
        assert (out / name).stat().st_size > 0, name
    csv = pl.read_csv(out / "compare.csv")
    assert set(csv["row"]) == {*BASELINE_NAMES, "sf", "sf (shuffled features)"}
    steps = json.loads((out / "compare.json").read_text())["tables"]
    row = next(iter(steps.values()))[0]
    assert len(row["test"]["mean"]["WAPE_per_step"]) == 6


def test_across_data_sets_and_comparison_models(tmp_path, cli):
    a, sa = make_dataset(tmp_path / "a", n=80, horizon=5, seed=1)
    b, sb = make_dataset(tmp_path / "b", n=90, horizon=5, seed=2)
    (b / "dataset.toml").write_text((b / "dataset.toml").read_text().replace('name = "fake"', 'name = "other"'))
    out = tmp_path / "out"
    code, stdout, _ = cli("compare", "--data", a, "--features", sa, "--data", b, "--features", sb,
                          "--models", "mean_curve,knn_both,gtm,ekambaram", "--seeds", "1", "--epochs", "2",
                          "--workers", "2", "--out", out)
    assert code == 0, stdout
    assert "Across data sets" in stdout and "ekambaram" in stdout
    csv = pl.read_csv(out / "compare.csv")
    assert set(csv["dataset"]) == {"fake", "other"}
    assert set(csv["row"]) == {"mean_curve", "knn_both", "gtm", "ekambaram"}
    assert (out / "compare_steps.png").exists() and (out / "compare_fake.png").exists()


def test_cli_errors_are_one_line(cli, tmp_path):
    root, store = make_dataset(tmp_path / "d", n=40, horizon=4)
    code, _, err = cli("compare", "--data", root, "--models", "mean_curve,nope")
    assert code == 2 and "nope" in err and "knn_image" in err
    code, _, err = cli("compare", "--data", root)  # default store cache/fake_resnet101.h5 does not exist
    assert code == 2 and "sf extract --data" in err and "--backbone resnet101" in err
    code, _, err = cli("compare", "--data", root, "--data", root, "--features", store)
    assert code == 2 and "one --features per --data" in err


def test_honesty_notes_say_where_a_baseline_wins():
    def row(name, wape, mae):
        return {"row": name, "test": {"mean": {"WAPE": wape, "MAE": mae}}}

    summary = [row("mean_curve", 60.0, 30.0), row("sf", 62.0, 29.0), row("sf (shuffled features)", 50.0, 20.0)]
    rows = [Contender("mean_curve", "mean_curve", "baseline"), Contender("sf", "sf", "neural"),
            Contender("sf (shuffled features)", "sf", "neural", perturb="shuffled_features")]
    notes = honesty_notes("demo", summary, rows, "test")
    assert len(notes) == 1 and "WAPE" in notes[0] and "mean_curve" in notes[0]  # not MAE, not the control row


def test_contenders_lookup():
    names = [c.name for c in contenders(["mean_curve", "gtm"], shuffled_control=True)]
    assert names == ["mean_curve", "gtm", "sf (shuffled features)"]


def test_pool_and_one_process_give_the_same_numbers(tmp_path):
    root, store = make_dataset(tmp_path / "d", n=80, horizon=4)
    metrics = []
    for workers in (1, 2):
        cfg = CompareConfig(data=(root,), features=(store,), models=("gtm", "sf"), workers=workers,
                            out=tmp_path / f"w{workers}", train=TrainConfig(epochs=1, seeds=2))
        summary = next(iter(run_compare(cfg, progress=False).tables.values()))
        metrics.append({s["row"]: s["test"]["per_seed"] for s in summary})
    assert metrics[0] == metrics[1]


def test_each_row_reports_its_seed_ensemble(sanity):
    """Beside mean ± std over seeds, each row scores the seeds' mean forecast (what `sf predict` gives):
    the same number as averaging the seeds' own forecasts; a deterministic baseline's is its own score."""
    import numpy as np

    from sf.forecast import engine
    from sf.forecast.metrics import compute_metrics

    result, root, store = sanity
    rows = {s["row"]: s for s in next(iter(result.tables.values()))}
    cfg = TrainConfig(epochs=15, seeds=2, patience=5, threads=1)
    prepared = engine.prepare(cfg, load_features(store), load_dataset(root))
    seeds = [engine.train_seed(cfg, prepared, s) for s in cfg.seed_list]
    for split in ("val", "test"):
        part = prepared.parts[split]
        mean = np.mean([r.forecasts[split] for r in seeds], axis=0)
        expected = compute_metrics(part.y, mean, part.y_mask, prepared.hit_threshold)["WAPE"]
        assert rows["sf"][split]["ensemble"]["WAPE"] == pytest.approx(expected, rel=1e-5)
        assert rows["sf"][split]["ensemble"]["WAPE"] != pytest.approx(rows["sf"][split]["mean"]["WAPE"], rel=1e-6)
        assert rows["mean_curve"][split]["ensemble"]["WAPE"] == pytest.approx(rows["mean_curve"][split]["mean"]["WAPE"])
    csv = pl.read_csv(result.out / "compare.csv")
    assert csv.filter((pl.col("row") == "sf") & (pl.col("split") == "test"))["WAPE_ensemble"][0] == pytest.approx(
        rows["sf"]["test"]["ensemble"]["WAPE"])


def test_tables_and_reports_show_the_seed_ensemble_only_with_several_seeds(sanity):
    """The CLI table, the HTML report and the demo's REPORT.md add the ensemble column when rows have several
    seeds; with one seed a row it would only repeat the row's own score, so it is left out."""
    from sf.demo_report import _study_table as markdown_table
    from sf.report.page import _study_table as html_table
    from sf.studies.compare import compare_table

    result, _, _ = sanity
    label, rows = next(iter(result.tables.items()))
    value = f"{next(r for r in rows if r['row'] == 'sf')['test']['ensemble']['WAPE']:.1f}"
    assert "WAPE of the seed ensemble" in [c.header for c in compare_table(result, label).columns]
    assert "test WAPE, seed ensemble</th>" in html_table(rows, "model", "test", {"sf"}) and value in html_table(
        rows, "model", "test", {"sf"})
    assert "| WAPE, seed ensemble |" in markdown_table(rows, "test")
    single = [{**r, "seeds": r["seeds"][:1]} for r in rows]
    assert "seed ensemble" not in html_table(single, "model", "test", {"sf"})
    assert "seed ensemble" not in markdown_table(single, "test")
