"""How often the total's 80% interval (sf.apply.totals) holds a held-out product's actual total, and what the
order would have cost, on a train run's TEST products (never used for any choice).

    python bench/total_coverage.py --run runs/NAME [--service-level 0.8]

Reads the run folder (config, split.parquet, checkpoints, validation predictions for the ratios) and its
training data and store; prints coverage with its binomial standard error, and the same with the sample paths
alone (no validation ratios), and the orders' overstock / short against the point forecast and the mean curve.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from sf.apply.evaluate import training_reference  # noqa: E402
from sf.apply.new_products import training_side  # noqa: E402
from sf.apply.predict import forecast, forecast_paths  # noqa: E402
from sf.apply.totals import coverage, order_costs, order_rule, path_totals, total_distribution, validation_ratios  # noqa: E402
from sf.forecast.checkpoints import load_run  # noqa: E402
from sf.forecast.metrics import point_forecast  # noqa: E402
from sf.forecast.run_folder import read_split  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--service-level", type=float, default=0.8)
    a = ap.parse_args(argv)
    run = load_run(a.run)
    (_, _, every), notes = training_side(run)
    if every is None:
        raise SystemExit(f"training data or store not at hand: {notes}")
    index = {p: i for i, p in enumerate(every.product_ids)}
    test = every.take(np.asarray([index[p] for p in read_split(a.run)["test"]]))
    given = np.zeros(len(test), np.int64)
    rule = order_rule(a.service_level)
    yhat = forecast(run, test, given)
    point = point_forecast(yhat, run.quantiles).sum(1)
    paths = path_totals(forecast_paths(run, test, given), run.quantiles)
    actual = np.where(test.y_mask, test.y, 0).sum(1)
    ratios = validation_ratios(a.run)
    t = total_distribution(paths, point, ratios, rule)
    alone = total_distribution(paths, point, None, rule)
    mean_total = float(np.sum(training_reference(run).mean_curve))
    result = {"run": str(a.run), "test_products": len(test), "validation_ratios": 0 if ratios is None else len(ratios),
              "coverage": coverage(actual, t), "coverage_paths_alone": coverage(actual, alone), "method": t.method,
              "order_rule": rule.text, "orders": order_costs(actual, {
                  "sf order": np.ceil(t.order), "point forecast": point, "mean curve": np.full(len(test), mean_total)}, rule)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
