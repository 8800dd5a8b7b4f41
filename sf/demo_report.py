"""`sf demo`'s REPORT.md: markdown tables of every step's results, the figures, timings and the commands."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sf.data.atomic import atomic_write_text
from sf.forecast.metrics import METRIC_FORMATS, format_metric, metric_label, point_forecast
from sf.forecast.run_table import choice_line
from sf.studies import tables as T


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _metric_rows(cols: list[tuple[dict, dict | None]]) -> list[list[str]]:
    """One row per metric; per column (means, stds or None)."""
    rows = []
    for key in METRIC_FORMATS:
        if any(key in m for m, _ in cols):
            rows.append([metric_label(key)] + [format_metric(key, m.get(key), sd.get(key) if sd and m.get(key) is not None
                                                             else None) for m, sd in cols])
    return rows


def _study_table(summary: list[dict], split: str, label: str = "row") -> str:
    """The ablation's or the comparison's rows as markdown: WAPE, MAE, R², AUC on `split`."""
    ensemble = T.shows_ensemble(summary)
    rows = [[s["row"]] + [T.cell(s, split, k) for k in ("WAPE", "MAE", "R2", "AUC")]
            + ([T.ensemble_cell(s, split)] if ensemble else []) for s in summary if s.get(split)]
    return _md_table([label, f"WAPE ({split}, pooled)", "MAE", "R²", "AUC"] + (["WAPE, seed ensemble"] if ensemble else []),
                     rows)


@dataclass
class DemoOutputs:
    """What each demo step produced, for the report."""

    extracted: object  # sf.extract.job's report of the store
    trained: object  # engine.RunResult
    ablation: object | None
    comparison: object | None
    predicted: object  # apply.predict.PredictResult
    evaluated: object  # apply.evaluate.EvaluateResult
    explained: object  # apply.explain.Explanation
    extractor: tuple[str, str, str]  # backbone, weights, text encoder


def write_report(path: Path, s, o: DemoOutputs, seconds: dict, notes: list[str]) -> Path:
    """REPORT.md beside the demo's outputs (links relative to it), and demo_settings.json."""
    out = path.parent
    rel = lambda p: Path(os.path.relpath(p, out)).as_posix()  # noqa: E731
    lines = [
        "# sf demo report",
        "",
        f"Made by `sf demo` ({s.products} products, seed {s.seed}) in **{seconds['total']:.0f} s** on "
        f"{os.cpu_count()} CPU core(s). Everything below can be rerun step by step with the commands at the end.",
        "",
    ]
    if notes:
        lines += [f"> **Note:** {n}" for n in notes] + [""]
    lines += _catalogue_and_features(o, out, rel) + _training(o.trained, rel) + _studies(s, o, rel)
    lines += _new_products(o, out, rel) + _timing_and_commands(s, o, seconds, out)
    atomic_write_text(path, "\n".join(lines))
    atomic_write_text(out / "demo_settings.json", _json({**asdict(s), "out": str(s.out)}))
    return path


def _catalogue_and_features(o: DemoOutputs, out: Path, rel) -> list[str]:
    backbone, weights, text_encoder = o.extractor
    ex = o.extracted
    return [
        "## 1. Catalogue",
        "",
        f"A synthetic catalogue whose sales depend on the pictures' colour shade and pattern, on words only the "
        f"descriptions carry and on pre-release trends (rules: [{rel(out / 'data' / 'README.md')}]"
        f"({rel(out / 'data' / 'README.md')})). The {len(o.predicted.inputs)} latest releases were held out as **new "
        f"products**: `{rel(out / 'new')}` has only their products table and images (what `sf predict` gets), "
        f"`{rel(out / 'heldout')}` also their real sales (what `sf evaluate` scores against).",
        "",
        "## 2. Features (extracted once)",
        "",
        _md_table(["", ""], [
            ["image backbone", f"{backbone} ({weights} weights), input {ex.attrs.get('image_size')} px, "
                               f"grid {ex.attrs.get('grid_h')}×{ex.attrs.get('grid_w')} × {ex.attrs.get('channels')}"],
            ["text encoder", f"{text_encoder} ({ex.attrs.get('text_dim')}-d, up to {ex.attrs.get('text_len')} tokens)"],
            ["rows", f"{ex.rows}: " + ", ".join(f"{k} {v}" for k, v in ex.counts.items())],
            ["speed", f"{ex.rows_per_s:.1f} products/s (decode → forward → write)"],
            ["store", f"`{rel(ex.out)}`"],
        ]),
        "",
    ]


def _training(trained, rel) -> list[str]:
    m = trained.metrics
    sp = m["split"]
    chosen = choice_line(m.get("training", {}).get("choice") or [])
    lines = [f"## 3. Training (sf: {m['fusion']} fusion + {m['head']} head, quantile loss)", "",
             f"{sp['kind']} split: train {sp['train']['products']}, validation {sp['val']['products']}, test "
             f"{sp['test']['products']} products; {len(m['seeds'])} seed(s), metrics in units (mean ± std over "
             f"seeds), beside the training products' mean sales curve." + (f" {chosen.capitalize()}." if chosen else ""),
             ""]
    cols, header = [], ["metric"]
    several = len(m["seeds"]) > 1  # a ± over one seed says nothing
    for split in ("val", "test"):
        if split in m:
            cols += [(m[split]["mean"], m[split]["std"] if several else None), (m[split]["mean_curve"], None)]
            header += [f"{split}: sf", f"{split}: mean curve"]
    return lines + [_md_table(header, _metric_rows(cols)), "",
                    f"![learning curves]({rel(trained.out / 'learning_curves.png')})",
                    f"![validation forecasts]({rel(trained.out / 'forecasts_val.png')})",
                    f"![totals]({rel(trained.out / 'totals.png')})", ""]


def _studies(s, o: DemoOutputs, rel) -> list[str]:
    lines = []
    if o.ablation:
        split = T.report_split(o.ablation.summary)
        lines += ["## 4. Ablation", "",
                  f"Same split and seeds for every row ({s.study_seeds} seed(s), up to {s.study_epochs} epochs each); "
                  f"`concat` = attention removed; text only / image only leave one modality out. The demo "
                  f"extracts one backbone only; `sf ablate` adds a second backbone's rows once its store exists.", "",
                  _study_table(o.ablation.summary, split), "",
                  f"![ablation]({rel(o.ablation.out / 'ablation.png')})", ""]
    if o.comparison:
        summary = next(iter(o.comparison.tables.values()))
        split = T.report_split(summary)
        lines += ["## 5. Comparison", "",
                  "Baselines and models on the same split; `sf (shuffled features)` is sf scored with every "
                  "product's image and text features given to another product — a control that should be worse.", "",
                  _study_table(summary, split, "model"), ""]
        lines += [f"- {n}" for n in o.comparison.notes] + ([""] if o.comparison.notes else [])
        lines += [f"![comparison]({rel(o.comparison.out / 'compare.png')})", ""]
    return lines


def _new_products(o: DemoOutputs, out: Path, rel) -> list[str]:
    predicted, ev, explained = o.predicted, o.evaluated.metrics, o.explained
    baselines = ev.get("baselines", {})
    inp = predicted.inputs
    lines = ["## 6. New products: forecasts", "",
             f"`sf predict` extracted the new products' features with the model's own backbone, weights, "
             f"preprocessing and text encoder into `{rel(predicted.store)}`, then forecast "
             f"{len(inp)} products × {inp.horizon} weeks: `{rel(predicted.out)}` (columns "
             f"{', '.join(predicted.forecasts.columns)}).", ""]
    point = point_forecast(predicted.yhat, predicted.quantiles)
    actual = dict(pl.read_csv(out / "heldout" / "sales.csv").group_by("product_id").agg(pl.col("units").sum()).iter_rows())
    rows = []
    for i in np.argsort(-point.sum(1))[:10]:
        pid = inp.product_ids[i]
        band = (f"{predicted.yhat[i, :, 0].sum():,.0f} – {predicted.yhat[i, :, -1].sum():,.0f}"
                if predicted.yhat.ndim == 3 else "–")
        rows.append([pid, "yes" if inp.has_image[i] else "no", f"{point[i].sum():,.0f}", band,
                     f"{actual.get(pid, 0):,.0f}"])
    lines += [_md_table(["product", "image", "forecast total", "Σ p10 – Σ p90", "actual total"], rows), "",
              f"![forecasts]({rel(predicted.out.with_suffix('.png'))})", "",
              "## 7. New products: evaluation against their real sales", "",
              f"{ev['products']} products, {len(ev['seeds'])} seed(s). Beside sf: the mean curve of the model's "
              f"training products and the baselines, fitted on the same training products (`sf evaluate "
              f"--baselines`): the attribute mean and k-NN analogs by attributes, by image features, and by both.",
              "", _md_table(["metric", "sf (mean ± std over seeds)", "sf (seed ensemble)", "mean curve", *baselines],
                            _metric_rows([(ev["mean"], ev["std"] if len(ev["seeds"]) > 1 else None),
                                          (ev["ensemble"], None), (ev["mean_curve"], None),
                                          *((b, None) for b in baselines.values())])),
              "", _margin(ev), "", f"![held-out forecasts]({rel(o.evaluated.out / 'forecasts.png')})", "",
              f"## 8. Why: `sf explain` for {explained.product_id}", "",
              "Attention over the image's regions and the description's words, the forecast with its P10–P90 band, "
              "and the training products most similar in the model's fused representation, with their real sales.",
              "", f"![explanation]({rel(explained.png)})", ""]
    return lines + [f"- {n}" for n in explained.notes] + ([""] if explained.notes else [])


def _margin(ev: dict) -> str:
    """One sentence: sf's pooled WAPE (mean over seeds) against the best reference on the same products."""
    refs = {"mean curve": ev["mean_curve"], **ev.get("baselines", {})}
    name, best = min(refs.items(), key=lambda kv: kv[1].get("WAPE", float("inf")))
    gap = best["WAPE"] - ev["mean"]["WAPE"]
    return (f"sf's pooled WAPE is **{abs(gap):.1f} points {'below' if gap >= 0 else 'above'}** the best of these "
            f"references ({name}, {best['WAPE']:.1f}).")


def _timing_and_commands(s, o: DemoOutputs, seconds: dict, out: Path) -> list[str]:
    backbone, weights, text_encoder = o.extractor
    store, model = o.extracted.out, o.trained.out
    return ["## Timing", "", _md_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in seconds.items()]), "",
            "## Rerun any step by hand", "", "```bash",
            f"sf extract --data {out / 'data'} --backbone {backbone} --weights {weights} "
            f"--text-encoder {text_encoder}" + (f" --image-size {s.extract_size}" if s.extract_size else "")
            + f" --out {store}",
            f"sf train --features {store} --data {out / 'data'} --loss quantile --quantiles 0.1,0.5,0.9 "
            f"--epochs {s.epochs} --seeds {s.seeds} --seed {s.seed} --patience {s.patience} --batch-size {s.batch_size} "
            f"--out {model}",
            f"sf predict --model {model} --data {out / 'new'}",
            f"sf evaluate --model {model} --data {out / 'heldout'} --baselines {','.join(o.evaluated.metrics.get('baselines', {}))}",
            f"sf explain --model {model} --product {o.explained.product_id} --data {out / 'new'}",
            "```", ""]


def _json(d: dict) -> str:
    return json.dumps(d, indent=2, default=str) + "\n"
