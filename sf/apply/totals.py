"""A product's total over the horizon, its interval and the order quantity a buyer places (newsvendor).

    sample paths  every seed's every MC-dropout pass (sf.forecast.fit.predict_paths), each summed over the
                  weeks: the model's own uncertainty about the total (summed weekly quantiles are not one:
                  they assume every week is at its p90 at once)
    residuals     the paths alone only know what the model is unsure of, not how wrong it is, so each path's
                  total is multiplied by every ratio actual / forecast total seen on the run's VALIDATION
                  products (predictions.parquet, seed ensemble): known before any new product sells
    interval      the TOTAL_LEVELS quantiles of those samples
    order         newsvendor: the critical-ratio quantile of the same samples, critical ratio =
                  service level, or cost_under / (cost_under + cost_over) per unit short / overstocked
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sf.errors import SfError
from sf.forecast.metrics import point_index

TOTAL_LEVELS = (0.1, 0.9)  # the total's interval: 80% nominal
MAX_RATIOS = 200  # validation ratios kept per product (evenly spaced quantiles): samples stay N x P x 200
DEFAULT_SERVICE_LEVEL = 0.8


@dataclass(frozen=True)
class OrderRule:
    """How much to order: the `critical_ratio` quantile of the total's distribution."""

    critical_ratio: float
    cost_over: float | None = None  # cost of one unit left over (if given with cost_under)
    cost_under: float | None = None  # cost of one unit short (lost margin)

    @property
    def text(self) -> str:
        if self.cost_over is not None:
            return (f"order = the {self.critical_ratio:.3g} quantile of the total (newsvendor: cost under "
                    f"{self.cost_under:g} / (under {self.cost_under:g} + over {self.cost_over:g}))")
        return f"order = the {self.critical_ratio:.3g} quantile of the total (newsvendor at service level {self.critical_ratio:.3g})"

    def costs(self) -> tuple[float, float]:
        """(per unit over, per unit short): the costs given, else 1 - ratio and ratio (the same critical ratio)."""
        if self.cost_over is not None:
            return float(self.cost_over), float(self.cost_under)
        return 1.0 - self.critical_ratio, self.critical_ratio


def order_rule(service_level: float | None = None, cost_over: float | None = None,
               cost_under: float | None = None) -> OrderRule:
    """The rule from `--service-level` or `--cost-over/--cost-under` (not both); SfError naming the option."""
    if (cost_over is None) != (cost_under is None):
        raise SfError("--cost-over and --cost-under go together (cost of a unit left over, of a unit short)")
    if cost_over is not None:
        if service_level is not None:
            raise SfError("give --service-level or --cost-over/--cost-under, not both")
        if not (cost_over > 0 and cost_under > 0):
            raise SfError(f"--cost-over and --cost-under must be > 0, got {cost_over} and {cost_under}")
        return OrderRule(cost_under / (cost_under + cost_over), float(cost_over), float(cost_under))
    level = DEFAULT_SERVICE_LEVEL if service_level is None else float(service_level)
    if not 0 < level < 1:
        raise SfError(f"--service-level must be between 0 and 1 (exclusive), got {service_level}")
    return OrderRule(level)


def validation_ratios(run_dir: Path) -> np.ndarray | None:
    """actual / forecast total of each validation product of a train run (seed ensemble), None if not kept."""
    path = Path(run_dir) / "predictions.parquet"
    if not path.is_file():
        return None
    df = pl.read_parquet(path).filter(pl.col("split") == "val")
    if df.height == 0:
        return None
    qcols = sorted((c for c in df.columns if c.startswith("yhat_q")), key=lambda c: float(c[6:]))
    point = pl.col("yhat_q0.5") if "yhat_q0.5" in qcols else pl.col("yhat")
    per_cell = (df.filter(pl.col("y").is_not_null())
                .group_by("product_id", "step").agg(pl.col("y").first(), point.mean().alias("f")))
    tot = per_cell.group_by("product_id").agg(pl.col("y").sum(), pl.col("f").sum()).filter(pl.col("f") > 0)
    if tot.height == 0:
        return None
    return (tot["y"].to_numpy() / tot["f"].to_numpy()).astype(np.float64)


def _kept(ratios: np.ndarray) -> np.ndarray:
    if len(ratios) <= MAX_RATIOS:
        return np.sort(ratios)
    return np.quantile(ratios, (np.arange(MAX_RATIOS) + 0.5) / MAX_RATIOS)


@dataclass
class Totals:
    point: np.ndarray  # (N,) the forecast's total (sum of the seed-averaged point forecast)
    lo: np.ndarray  # (N,) TOTAL_LEVELS[0] quantile of the total
    hi: np.ndarray  # (N,)
    order: np.ndarray  # (N,) the rule's quantile of the total
    rule: OrderRule
    method: str  # how the distribution was made, in one line
    samples: int  # sample totals per product

    def frame(self, product_ids, release=None) -> pl.DataFrame:
        lo, hi = (f"total_p{round(100 * q):d}" for q in TOTAL_LEVELS)
        cols = {"product_id": list(product_ids)}
        if release is not None:
            cols["release_date"] = pl.Series(release).cast(pl.Date)
        cols.update({"total": self.point.astype(np.float32), lo: self.lo.astype(np.float32),
                     hi: self.hi.astype(np.float32), "order_qty": np.ceil(self.order).astype(np.int64),
                     "critical_ratio": np.full(len(self.point), self.rule.critical_ratio, np.float32)})
        return pl.DataFrame(cols)


def path_totals(paths: np.ndarray, quantiles, scored: np.ndarray | None = None) -> np.ndarray:
    """(N, P, H[, Q]) paths -> (N, P) totals of each path's point forecast over the (scored) weeks."""
    point = paths[..., point_index(quantiles)] if paths.ndim == 4 else paths
    if scored is not None:
        point = np.where(scored[:, None, :], point, 0.0)
    return point.sum(-1)


def total_distribution(path_tot: np.ndarray, point: np.ndarray, ratios: np.ndarray | None, rule: OrderRule,
                       ) -> Totals:
    """Quantiles of each product's sample totals: its paths, times the validation ratios when there are any."""
    if ratios is not None and len(ratios):
        r = _kept(ratios)
        # Each path centred on the point total, then scaled by every validation ratio.
        samples = (point[:, None, None] + (path_tot - path_tot.mean(1, keepdims=True))[:, :, None]) * r[None, None, :]
        samples = np.clip(samples.reshape(len(point), -1), 0, None)
        method = (f"{path_tot.shape[1]} sample paths (seeds x MC-dropout passes) per product, each times "
                  f"{len(ratios)} validation products' actual/forecast total ratios")
    else:
        samples = path_tot
        method = (f"{path_tot.shape[1]} sample paths (seeds x MC-dropout passes) per product; no validation "
                  "ratios in the run folder, so the interval knows only the model's own uncertainty (too narrow)")
    probs = (*TOTAL_LEVELS, rule.critical_ratio)
    q = np.quantile(samples, probs, axis=1) if samples.size else np.zeros((3, len(point)))
    return Totals(point=point, lo=q[0], hi=q[1], order=q[2], rule=rule, method=method, samples=samples.shape[1])


def order_costs(actual: np.ndarray, orders: dict[str, np.ndarray], rule: OrderRule) -> dict[str, dict]:
    """Per order policy: units overstocked and short summed over products, and their cost under the rule's costs."""
    c_over, c_under = rule.costs()
    out = {}
    for name, q in orders.items():
        over = float(np.clip(q - actual, 0, None).sum())
        short = float(np.clip(actual - q, 0, None).sum())
        out[name] = {"ordered": float(q.sum()), "overstock": over, "short": short,
                     "cost": c_over * over + c_under * short}
    return out


def coverage(actual: np.ndarray, totals: Totals) -> dict:
    """Share of products whose actual total lies in the interval, with its binomial standard error."""
    n = len(actual)
    inside = (actual >= totals.lo) & (actual <= totals.hi)
    share = float(inside.mean()) if n else float("nan")
    nominal = TOTAL_LEVELS[1] - TOTAL_LEVELS[0]
    return {"nominal": nominal, "covered": share, "products": n,
            "se": float(np.sqrt(nominal * (1 - nominal) / n)) if n else float("nan"),
            "below": float((actual < totals.lo).mean()) if n else float("nan"),
            "above": float((actual > totals.hi).mean()) if n else float("nan")}
