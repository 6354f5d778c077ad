"""Budgeted allocation on Spark: the policy's prices (Lagrange multipliers of the budget and the
capacities) found on the driver, the arms chosen for every customer on Spark by the price rule.

1. A sample of the scores (at most `sample_size` customers) reaches the driver and the policy
   (`BudgetedPolicy`, its budget and capacities scaled to the sample) finds the prices there.
2. The prices are refined over all customers without collecting them: each pass evaluates,
   in every partition, the price vectors on lines through the current prices (the budget
   price, each capacity price, all together) and returns a few sums per candidate (cost,
   customers per arm, value, the Lagrangian dual); the plan of most value that fits the budget
   and every capacity wins, and the lines narrow around it.
3. The plan is the price rule "the arm with the largest g - lambda c - mu if positive" at those
   prices, a pure function of a customer's scores, applied in partitions (`mapInPandas`) by
   `BudgetedPolicy.predict`, the single-machine rule itself.

The plan is feasible by construction (checked on every customer) and its gap to the dual bound
(an upper bound on the optimum, the smallest over all prices evaluated) is reported. The
single-machine solver also repairs and fills the last few customers at the price boundary; on
Spark those are left untreated, which the gap states.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from upliftlab.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from upliftlab.engine.spark import SparkEngine
    from upliftlab.policy import BudgetedPolicy

UPLIFT_PREFIX = "uplift_"
NONE = "none"  # the arm label of a customer left untreated (as in the policy's targeting file)


@dataclass(frozen=True)
class SparkAllocation:
    """A plan made on Spark: `plan` (customer_id, arm, expected_uplift, expected_cost; lazy) and
    what it is expected to deliver, summed on Spark. `gap_to_dual_bound` = (bound - value) /
    |bound|, bound = the smallest Lagrangian dual over the prices evaluated."""

    plan: "DataFrame"
    arms: tuple[str, ...]
    lambda_: float
    mu_: dict[str, float]
    counts: dict[str, int]
    n_customers: int
    expected_value: float
    expected_incremental_reactivations: float
    expected_cost: float
    budget: float
    dual_bound: float
    gap_to_dual_bound: float
    sample_size: int
    sample_prices: tuple[float, dict[str, float]]
    passes: int
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The figures (no plan) as plain values, for JSON."""
        return {"arms": list(self.arms), "lambda": self.lambda_, "mu": self.mu_,
                "counts": self.counts, "n_customers": self.n_customers,
                "expected_value": self.expected_value,
                "expected_incremental_reactivations": self.expected_incremental_reactivations,
                "expected_cost": self.expected_cost,
                "budget": self.budget if math.isfinite(self.budget) else None,
                "dual_bound": self.dual_bound, "gap_to_dual_bound": self.gap_to_dual_bound,
                "sample_size": self.sample_size,
                "sample_lambda": self.sample_prices[0], "sample_mu": self.sample_prices[1],
                "passes": self.passes}


def with_prices(policy: "BudgetedPolicy", lam: float, mu: Sequence[float],
                arms: Sequence[str]) -> "BudgetedPolicy":
    """A copy of `policy` that predicts with the prices (lam, mu): the fitted state that
    `BudgetedPolicy.fit` would leave, without solving."""
    from upliftlab.policy import BudgetedPolicy

    out = BudgetedPolicy(**{**policy.get_params(), "arms": tuple(arms)})
    out.lambda_ = float(lam)
    out.mu_ = np.asarray(mu, dtype=float)
    out.arms_ = tuple(arms)
    return out


def _batch_problem(policy: "BudgetedPolicy", batch: "pd.DataFrame", arms: Sequence[str]):
    """The policy's problem (gains, costs, uplifts) of one batch; budget and capacities are the
    whole population's business, so none here."""
    from upliftlab.policy import make_problem

    params = policy.get_params()
    return make_problem(batch["base"].to_numpy(dtype=float),
                        {a: batch[UPLIFT_PREFIX + a].to_numpy(dtype=float) for a in arms},
                        arms=tuple(arms), budget=None, capacity=None,
                        cost_per_contact=params["cost_per_contact"],
                        cost_per_conversion=params["cost_per_conversion"],
                        objective=params["objective"],
                        value_per_reactivation=params["value_per_reactivation"])


def _candidate_sums(policy: "BudgetedPolicy", arms: Sequence[str],
                    prices: Sequence[tuple[float, np.ndarray]]):
    """The mapInPandas function of a refinement pass: per batch and candidate price vector,
    the sums of the price rule's plan (cost, value, reactivations, dual term, counts)."""
    import pandas as pd

    from upliftlab.policy.problem import arm_counts

    k = len(arms)

    def run(batches: Iterator["pd.DataFrame"]) -> Iterator["pd.DataFrame"]:
        for batch in batches:
            if batch.empty:
                continue
            problem = _batch_problem(policy, batch, arms)
            rows = []
            for j, (lam, mu) in enumerate(prices):
                # the price rule as BudgetedPolicy.predict applies it: first arm with the largest
                # reduced gain, if positive (tests/spark/test_spark_allocate.py holds them equal)
                reduced = problem.gain - lam * problem.cost - mu[:, None]
                best = reduced.max(axis=0)
                arm = np.where(best > 0, reduced.argmax(axis=0) + 1, 0)  # row a is arm a + 1
                idx = np.flatnonzero(arm)
                row = arm[idx] - 1
                rows.append([j, float(problem.cost[row, idx].sum()),
                             float(problem.gain[row, idx].sum()),
                             float(problem.uplift[row, idx].sum()),
                             float(np.maximum(best, 0.0).sum()),
                             *arm_counts(problem, arm).tolist()])
            yield pd.DataFrame(rows, columns=["j", "cost", "value", "react", "dual",
                                              *(f"n{a}" for a in range(k))])

    return run


def _evaluate(frame: "DataFrame", policy: "BudgetedPolicy", arms: Sequence[str],
              prices: list[tuple[float, np.ndarray]]) -> list[dict[str, Any]]:
    """One pass over the customers: the totals of the price rule at every candidate."""
    from pyspark.sql import functions as F

    k = len(arms)
    schema = ", ".join(["j long", "cost double", "value double", "react double", "dual double",
                        *(f"n{a} long" for a in range(k))])
    sums = (frame.mapInPandas(_candidate_sums(policy, arms, prices), schema)
            .groupBy("j").agg(*(F.sum(c).alias(c) for c in
                                ["cost", "value", "react", "dual",
                                 *(f"n{a}" for a in range(k))]))
            .collect())
    out = [dict(j=j, cost=0.0, value=0.0, react=0.0, dual=0.0, counts=[0] * k)
           for j in range(len(prices))]
    for r in sums:
        o = out[int(r["j"])]
        o.update(cost=float(r["cost"]), value=float(r["value"]), react=float(r["react"]),
                 dual=float(r["dual"]), counts=[int(r[f"n{a}"]) for a in range(k)])
    return out


def _check_scores(engine: "SparkEngine", view: str, id_col: str, arms: Sequence[str],
                  where: str) -> int:
    """The checks of the policy's `read_scores` and `make_problem`, as one Spark aggregate:
    ids present and once, scores present and numbers, base and base + uplift probabilities.
    Returns the number of customers."""
    from upliftlab.sources import quote

    tol = 1e-9
    cid = quote(id_col)
    cols = ["base", *(UPLIFT_PREFIX + a for a in arms)]
    parts = [f"count({cid}) AS ids", f"count(DISTINCT {cid}) AS distinct_ids",
             *(f"count(*) FILTER (WHERE {quote(c)} IS NULL OR isnan({quote(c)})) AS bad_{i}"
               for i, c in enumerate(cols)),  # (non-numeric text is NULL after TRY_CAST)
             f"min(base) AS base_min", f"max(base) AS base_max",
             *(f"min(base + {quote(c)}) AS lo_{i}, max(base + {quote(c)}) AS hi_{i}"
               for i, c in enumerate(cols[1:]))]
    typed = ", ".join([cid, *(f"TRY_CAST({quote(c)} AS DOUBLE) AS {quote(c)}" for c in cols)])
    row = engine.execute(f"SELECT count(*) AS n, {', '.join(parts)} "
                         f"FROM (SELECT {typed} FROM {quote(view)}) AS s").fetchall()[0]
    n, ids, distinct, *rest = row
    bad, (base_min, base_max), spans = rest[:len(cols)], rest[len(cols):len(cols) + 2], \
        rest[len(cols) + 2:]
    if n == 0:
        raise InputError(f"{where}: no rows")
    if ids < n:
        raise InputError(f"{where}: {n - ids} rows have no {id_col}")
    if distinct < ids:
        raise InputError(f"{where}: {ids - distinct} duplicate {id_col} values; each customer "
                         "must appear once")
    for c, b in zip(cols, bad):
        if b:
            raise InputError(f"{where}: column {c!r} has {b} missing or non-numeric values")
    if base_min < -tol or base_max > 1 + tol:
        raise InputError(f"{where}: base must be a probability in [0, 1] (found "
                         f"{base_min:.4g} .. {base_max:.4g})")
    for a, lo, hi in zip(arms, spans[0::2], spans[1::2]):
        if lo < -tol or hi > 1 + tol:
            raise InputError(f"{where}: base + uplift of arm {a!r} must be a probability in "
                             f"[0, 1] (found {lo:.4g} .. {hi:.4g})")
    return int(n)


def _feasible(total: dict[str, Any], budget: float, cap: np.ndarray) -> bool:
    return (total["cost"] <= budget * (1 + 1e-12) + 1e-12
            and all(c <= m for c, m in zip(total["counts"], cap)))


def allocate_spark(engine: "SparkEngine", scores: Any, policy: "BudgetedPolicy", *,
                   id_col: str = "customer_id", sample_size: int = 200_000, seed: int = 0,
                   grid: int = 12, rounds: int = 6, view: str = "ul_spark_alloc"
                   ) -> SparkAllocation:
    """Allocate the customers of `scores` (a Parquet path, a Spark or pandas DataFrame with
    `id_col`, base and uplift_<arm>) under `policy` (an unfitted `BudgetedPolicy`: its budget
    and capacities are totals for all the customers) on Spark.

    The prices come from the policy fitted on a sample (`sample_size` customers, `seed`), then
    up to `rounds` passes over all customers evaluate `grid` values on each line through them
    (see the module's docstring). Only the sample and a few sums per candidate reach the driver.
    """
    from upliftlab.sources import require_columns

    if policy.get_params()["objective"] == "revenue":
        raise InputError("objective 'revenue' is not available on Spark (it needs the revenue "
                         "uplift per arm); use reactivations or net_value, or the default engine")
    if sample_size < 1000:
        raise InputError(f"sample_size must be >= 1000 (got {sample_size})")
    where = str(scores) if isinstance(scores, (str, os.PathLike)) else "scores"
    columns = engine.register(str(scores) if isinstance(scores, os.PathLike) else scores, view)
    require_columns(columns, [id_col, "base"], where)
    found = tuple(c[len(UPLIFT_PREFIX):] for c in columns
                  if c.startswith(UPLIFT_PREFIX) and len(c) > len(UPLIFT_PREFIX))
    arms = tuple(policy.arms) if policy.arms is not None else found
    require_columns(columns, [UPLIFT_PREFIX + a for a in arms], where)
    if not arms:
        raise InputError(f"{where}: no uplift columns (expected one column "
                         f"'{UPLIFT_PREFIX}<arm>' per treatment arm)")
    n = _check_scores(engine, view, id_col, arms, where)
    src = engine.spark.table(view)
    frame = src.select(src[id_col].alias("customer_id"), src["base"].cast("double").alias("base"),
                       *(src[UPLIFT_PREFIX + a].cast("double").alias(UPLIFT_PREFIX + a)
                         for a in arms))

    # 1. prices on the driver, from a sample (all customers when there are few)
    fraction = min(1.0, sample_size / n)
    sample = (frame if fraction >= 1.0 else frame.sample(fraction=fraction, seed=seed)
              ).drop("customer_id").toPandas()
    if len(sample) == 0:
        sample = frame.limit(sample_size).drop("customer_id").toPandas()
    share = len(sample) / n
    fitted = policy.scaled(share) if share < 1.0 else policy
    fitted = type(policy)(**{**fitted.get_params(), "arms": arms}).fit(
        sample["base"].to_numpy(), {a: sample[UPLIFT_PREFIX + a].to_numpy() for a in arms})
    lam0, mu0 = float(fitted.lambda_), np.asarray(fitted.mu_, dtype=float)

    # 2. refined over all customers: the feasible plan of most value on lines through the
    # current prices (the budget price, each capacity price, all together), narrowing each pass
    budget = float("inf") if policy.budget is None else float(policy.budget)
    cap = _capacities(policy, arms)
    hint = _starting_price(sample, policy, arms)  # where a price of zero has to start from
    frame = frame.persist()
    passes, best, bound = 0, None, math.inf
    lam, mu, spread = lam0, mu0.copy(), 2.0
    try:
        for _ in range(rounds):
            prices = _candidates(lam, mu, spread, grid, hint, budget, cap)
            totals = _evaluate(frame, policy, arms, prices)
            passes += 1
            for (p_lam, p_mu), tot in zip(prices, totals):
                dual = tot["dual"] + (p_lam * budget if math.isfinite(budget) else 0.0)
                dual += float(sum(m * c for m, c in zip(p_mu, cap) if math.isfinite(c)))
                bound = min(bound, dual)
                tot.update(lam=p_lam, mu=p_mu)
            ok = [tot for tot in totals if _feasible(tot, budget, cap)]
            if not ok:  # every candidate spends too much: higher prices, wider lines
                lam, mu = max(lam, hint) * spread * 4, np.where(np.isfinite(cap),
                                                                np.maximum(mu, hint), 0.0) * 4
                spread *= 4
                continue
            top = max(ok, key=lambda tot: tot["value"])
            if best is None or top["value"] > best["value"]:
                best = top
            lam, mu = best["lam"], np.asarray(best["mu"], dtype=float)
            spread = spread ** 0.35
            if len(prices) == 1 or spread - 1 < 1e-6:
                break  # nothing binds (no price to find), or the lines have closed in
        if best is None:
            raise InputError("allocation on Spark: no prices found that keep the plan within "
                             "the budget and capacities; check them against the costs")
    finally:
        frame.unpersist()

    # 3. the plan: BudgetedPolicy's own price rule in partitions
    lam, mu = best["lam"], np.asarray(best["mu"], dtype=float)
    priced = with_prices(policy, lam, mu, arms)
    plan = frame.mapInPandas(_plan_rows(priced, arms, policy),
                             f"customer_id {frame.schema['customer_id'].dataType.simpleString()}"
                             ", arm string, expected_uplift double, expected_cost double")
    value = best["value"]
    return SparkAllocation(
        plan=plan, arms=arms, lambda_=lam, mu_={a: float(m) for a, m in zip(arms, mu)},
        counts={a: int(c) for a, c in zip(arms, best["counts"])}, n_customers=n,
        expected_value=value, expected_incremental_reactivations=best["react"],
        expected_cost=best["cost"], budget=budget, dual_bound=bound,
        gap_to_dual_bound=(bound - value) / abs(bound) if bound and math.isfinite(bound)
        else 0.0,
        sample_size=len(sample), sample_prices=(float(fitted.lambda_),
                                                {a: float(m) for a, m in zip(arms, fitted.mu_)}),
        passes=passes)


def _candidates(lam: float, mu: np.ndarray, spread: float, grid: int, hint: float,
                budget: float, cap: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Price vectors on lines through (lam, mu): the budget price times factors in
    [1/spread, spread] (from `hint` when it is zero, and zero itself), each capacity price the
    same way, and both together. Prices of a constraint that cannot bind stay zero."""
    factors = np.geomspace(1 / spread, spread, grid)
    out: list[tuple[float, np.ndarray]] = [(lam, mu.copy())]
    if math.isfinite(budget):
        start = lam if lam > 0 else hint
        out += [(0.0, mu.copy())] + [(float(start * f), mu.copy()) for f in factors]
    for a in np.flatnonzero(np.isfinite(cap)):
        start = mu[a] if mu[a] > 0 else hint
        for f in [0.0, *factors]:
            m = mu.copy()
            m[a] = start * f
            out.append((lam, m))
    if math.isfinite(budget) and np.isfinite(cap).any():
        both = np.where(np.isfinite(cap), np.where(mu > 0, mu, hint), 0.0)
        out += [(float((lam if lam > 0 else hint) * f), both * f) for f in factors]
    return out


def _capacities(policy: "BudgetedPolicy", arms: Sequence[str]) -> np.ndarray:
    """The policy's capacities per arm (inf where none), validated as the policy validates."""
    from upliftlab.policy import make_problem

    problem = make_problem(np.zeros(1), {a: np.zeros(1) for a in arms}, arms=tuple(arms),
                           capacity=policy.get_params()["capacity"])
    return np.asarray(problem.capacity, dtype=float)


def _starting_price(sample: "pd.DataFrame", policy: "BudgetedPolicy",
                    arms: Sequence[str]) -> float:
    """A budget price to scale from when the sample's prices are zero: a thousandth of the
    best gain per unit cost in the sample (the grid then widens until the plan fits)."""
    problem = _batch_problem(policy, sample, arms)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(problem.cost > 0, problem.gain / problem.cost, 0.0)
    top = float(np.nanmax(ratio)) if ratio.size else 0.0
    return 1e-3 * top if top > 0 else 1e-6


def _plan_rows(priced: "BudgetedPolicy", arms: Sequence[str], policy: "BudgetedPolicy"):
    """The mapInPandas function of the plan: each customer's arm by `priced.predict`, with the
    chosen arm's uplift and expected cost (0 for none)."""
    import pandas as pd

    from upliftlab.policy.problem import chosen

    labels = np.array([NONE, *arms], dtype=object)

    def run(batches: Iterator["pd.DataFrame"]) -> Iterator["pd.DataFrame"]:
        for batch in batches:
            if batch.empty:
                continue
            base = batch["base"].to_numpy(dtype=float)
            uplift = {a: batch[UPLIFT_PREFIX + a].to_numpy(dtype=float) for a in arms}
            arm = priced.predict(base, uplift)  # 0 = none, j = the j-th arm
            _, cost, up = chosen(_batch_problem(policy, batch, arms), arm)
            yield pd.DataFrame({
                "customer_id": batch["customer_id"].to_numpy(),
                "arm": labels[arm],
                "expected_uplift": up,
                "expected_cost": cost})

    return run


def write_plan_spark(allocation: SparkAllocation, out: str | os.PathLike) -> None:
    """The plan as Parquet: `out` ending in .parquet is one file (whole or not at all), any
    other name a folder of parts as Spark writes them on a cluster (written whole, then
    renamed into place)."""
    from upliftlab._files import staged_file
    from upliftlab.engine.spark import spark_path
    from upliftlab.engine.spark_steps import spark_errors, write_one_file

    out = Path(out)
    with spark_errors(str(out)):
        if out.suffix.lower() == ".parquet":
            with staged_file(out) as tmp:
                write_one_file(allocation.plan, tmp, "parquet")
        else:
            from upliftlab._files import staged_dir

            with staged_dir(out, owner="plan") as tmp:
                allocation.plan.write.mode("overwrite").parquet(spark_path(tmp))


__all__ = ["NONE", "SparkAllocation", "allocate_spark", "with_prices", "write_plan_spark"]
