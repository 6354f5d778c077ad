"""Reading scores and experiments for a policy, and writing the policy folder (targeting file,
policy.json, budget curve, policy.md / policy.html) atomically.

The imperative shell around `allocate`, `explore` and `ope`: files in, files out.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from upliftlab.errors import InputError

UPLIFT_PREFIX = "uplift_"


@dataclass(frozen=True, eq=False)
class Scores:
    """Per customer: id, P(reactivate) under control, uplift per treatment arm (column-major)."""

    customer_id: np.ndarray
    base: np.ndarray
    uplift: dict[str, np.ndarray]
    source: str

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self.uplift)


def read_scores(source: Any, *, customer_col: str = "customer_id") -> Scores:
    """Read a scores table (`customer_id`, `base`, `uplift_<arm>` ...) and check it: no missing
    ids, no duplicate ids, no missing or non-numeric scores."""
    from upliftlab.sources import connect, describe, quote, register, require_columns

    where = describe(source)
    con = connect()
    try:
        cols = register(con, source, "scores")
        require_columns(cols, [customer_col, "base"], where)
        up_cols = [c for c in cols if c.startswith(UPLIFT_PREFIX) and len(c) > len(UPLIFT_PREFIX)]
        if not up_cols:
            raise InputError(f"{where}: no uplift columns (expected one column "
                             f"'{UPLIFT_PREFIX}<arm>' per treatment arm; found: {', '.join(cols)})")
        cid = quote(customer_col)
        checks = [f"count(*) FILTER (WHERE {cid} IS NULL)"] + [
            f"count(*) FILTER (WHERE TRY_CAST({quote(c)} AS DOUBLE) IS NULL "
            f"OR isnan(TRY_CAST({quote(c)} AS DOUBLE)))" for c in ["base"] + up_cols]
        row = con.execute(f"SELECT count(*), {', '.join(checks)} FROM scores").fetchone()
        if row[0] == 0:
            raise InputError(f"{where}: no rows")
        if row[1]:
            raise InputError(f"{where}: {row[1]} rows have no {customer_col}")
        for c, bad in zip(["base"] + up_cols, row[2:]):
            if bad:
                raise InputError(f"{where}: column {c!r} has {bad} missing or non-numeric values")
        dup = con.execute(f"SELECT {cid}, count(*) AS c FROM scores GROUP BY 1 HAVING c > 1 "
                          "ORDER BY c DESC LIMIT 3").fetchall()
        if dup:
            shown = ", ".join(str(d[0]) for d in dup)
            raise InputError(f"{where}: duplicate {customer_col} values (e.g. {shown})")
        sel = ", ".join([f"{cid} AS customer_id", "CAST(base AS DOUBLE) AS base"] + [
            f"CAST({quote(c)} AS DOUBLE) AS {quote(c)}" for c in up_cols])
        data = con.execute(f"SELECT {sel} FROM scores").fetchnumpy()
    finally:
        con.close()
    ids = np.asarray(data["customer_id"])
    return Scores(ids, np.asarray(data["base"], dtype=float),
                  {c[len(UPLIFT_PREFIX):]: np.asarray(data[c], dtype=float) for c in up_cols},
                  where)


def scores_from_model(model_dir: str, customers: Any, *, customer_col: str = "customer_id"
                      ) -> Scores:
    """Score customers with a fitted uplift model directory (issue 5's `save_model`)."""
    try:
        from upliftlab.uplift import load_model
        from upliftlab.uplift.io import check_customers, scores_frame
    except ImportError:
        raise InputError("{model_dir} needs a fitted uplift model directory, and the uplift "
                         "model code (upliftlab.uplift) is not available in this installation; "
                         "use {scores} FILE", params=["model_dir", "scores"]) from None
    from upliftlab.sources import connect, describe, register, require_columns

    if not Path(model_dir).is_dir():
        raise InputError(f"{model_dir}: not a fitted model directory (see `upliftlab model`)")
    model = load_model(model_dir)
    con = connect()
    try:
        cols = register(con, customers, "customers")
        require_columns(cols, [customer_col], describe(customers))

        check_customers(con, "customers", customer_col,
                        [str(c) for c in model.feature_names_in_ if str(c) in cols],
                        describe(customers))
        frame = con.execute("SELECT * FROM customers").df()
    finally:
        con.close()
    if frame[customer_col].isna().any():
        raise InputError(f"{describe(customers)}: rows without {customer_col}")
    if frame[customer_col].duplicated().any():
        raise InputError(f"{describe(customers)}: duplicate {customer_col} values")
    mu = model.predict_outcomes(frame.drop(columns=[customer_col]))
    control = str(getattr(model, "control", "control"))
    arms = [str(a) for a in mu.columns]
    if control not in arms:
        raise InputError(f"{model_dir}: the model has no control arm {control!r}")
    # the scores file's own rule (`upliftlab model score`): probabilities of a binary outcome
    # are clipped to [0, 1], a revenue model's predictions are read as they are
    table = scores_frame(frame[customer_col].to_numpy(), mu.set_axis(arms, axis=1), control,
                         [a for a in arms if a != control], getattr(model, "outcome", "binary"))
    return Scores(table["customer_id"].to_numpy(), table["base"].to_numpy(dtype=float),
                  {c[len(UPLIFT_PREFIX):]: table[c].to_numpy(dtype=float)
                   for c in table.columns if c.startswith(UPLIFT_PREFIX)}, str(model_dir))


@dataclass(frozen=True, eq=False)
class Experiment:
    """A randomised experiment: arm column index per customer (0 = control) and outcome."""

    customer_id: np.ndarray
    arm: np.ndarray
    y: np.ndarray
    arms: tuple[str, ...]
    source: str
    fold: np.ndarray | None = None   # cross-fitting fold per customer (oof_scores.parquet)


def read_experiment(source: Any, arms: tuple[str, ...], *, customer_col: str = "customer_id",
                    arm_col: str = "arm", outcome_col: str = "reactivated",
                    control: str = "control") -> Experiment:
    """Read customer id, arm label and 0/1 outcome; arms must be `control` or a scored arm."""
    from upliftlab.sources import connect, describe, quote, register, require_columns

    where = describe(source)
    con = connect()
    try:
        cols = register(con, source, "experiment")
        require_columns(cols, [customer_col, arm_col, outcome_col], where)
        fold_sql = ", TRY_CAST(fold AS BIGINT) AS fold" if "fold" in cols else ""
        data = con.execute(
            f"SELECT {quote(customer_col)} AS cid, CAST({quote(arm_col)} AS VARCHAR) AS arm, "
            f"TRY_CAST({quote(outcome_col)} AS DOUBLE) AS y{fold_sql} FROM experiment").df()
    finally:
        con.close()
    if data["cid"].isna().any():
        raise InputError(f"{where}: rows without {customer_col}")
    if data["cid"].duplicated().any():
        raise InputError(f"{where}: duplicate {customer_col} values")
    if data["y"].isna().any() or not data["y"].isin([0.0, 1.0]).all():
        raise InputError(f"{where}: column {outcome_col!r} must be 0/1 for every customer")
    names = (control,) + tuple(arms)
    bad = sorted(set(data["arm"].astype(str)) - set(names))
    if bad:
        raise InputError(f"{where}: arms {bad} in column {arm_col!r} are neither {control!r} nor "
                         f"a scored arm ({', '.join(arms)})")
    index = {a: j for j, a in enumerate(names)}
    arm = data["arm"].astype(str).map(index).to_numpy(dtype=np.int64)
    fold = None
    if "fold" in data:
        if data["fold"].isna().any():
            raise InputError(f"{where}: column 'fold' must be an integer fold id for every row")
        fold = data["fold"].to_numpy(dtype=np.int64)
    return Experiment(data["cid"].to_numpy(), arm, data["y"].to_numpy(dtype=float), names, where,
                      fold)


def align(experiment: Experiment, scores: Scores) -> np.ndarray:
    """Row of `scores` for each experiment customer (InputError if some have no scores)."""
    import pandas as pd

    pos = pd.Index(pd.Series(scores.customer_id).astype(str)).get_indexer(
        pd.Series(experiment.customer_id).astype(str))
    missing = int((pos < 0).sum())
    if missing:
        raise InputError(f"{experiment.source}: {missing} experiment customers have no scores in "
                         f"{scores.source}")
    return pos


# --------------------------------------------------------------------------------------------
# writing


def write_targeting(path: Path, customer_id: np.ndarray, labels: np.ndarray,
                    expected_uplift: np.ndarray, expected_cost: np.ndarray,
                    explore: np.ndarray, propensity: np.ndarray, names: tuple[str, ...],
                    fmt: str = "csv") -> None:
    """customer_id, arm, expected_uplift, expected_cost, explore and propensity_<arm> for every
    arm ("none" first: each customer's probability of that arm under the plan); by DuckDB."""
    import duckdb
    import pyarrow as pa

    from upliftlab.sources import literal

    cols = {"customer_id": pa.array(customer_id),
            "arm": pa.array(labels.astype(str)),
            "expected_uplift": pa.array(expected_uplift),
            "expected_cost": pa.array(expected_cost),
            "explore": pa.array(explore.astype(bool))}
    for j, name in enumerate(names):
        cols[f"propensity_{name}"] = pa.array(propensity[:, j])
    table = pa.table(cols)
    con = duckdb.connect()
    try:
        con.register("t", table)
        opts = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT csv, HEADER true)"
        con.execute(f"COPY t TO {literal(path)} {opts}")
    finally:
        con.close()


def plot_budget_curve(curve: Any, budget: float, path: Path, chosen_reactivations: float) -> None:
    """Incremental reactivations against budget, the chosen budget marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    ax.plot(np.concatenate([[0], curve.budget]), np.concatenate([[0], curve.reactivations]),
            color="#1f6f8b", lw=2, label="the plan at each budget (exploration included)")
    if np.isfinite(budget):
        ax.axvline(budget, color="#c0392b", ls="--", lw=1)
        ax.plot([budget], [chosen_reactivations], "o", color="#c0392b",
                label=f"chosen budget: {chosen_reactivations:,.0f} reactivations")
    ax.set_xlabel("budget")
    ax.set_ylabel("expected incremental reactivations")
    ax.set_title("Incremental reactivations against budget")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


POLICY_FILES = ("targeting.csv", "targeting.parquet", "policy.json", "budget_curve.png",
                "policy.md", "policy.html")


def write_folder(out: str | os.PathLike, files: dict[str, Any]) -> None:
    """Write `files` (name -> bytes/str, or a callable(path) that writes it) as the policy
    folder `out`: staged beside it and swapped in whole (`upliftlab._files.staged_dir`), so
    `out` is always the old plan or the new one, never a mix."""
    from upliftlab._files import staged_dir

    with staged_dir(out, owner="policy", legacy=POLICY_FILES) as tmp:
        for name, content in files.items():
            target = tmp / name
            if callable(content):
                content(target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)


def to_json(obj: Any) -> str:
    """JSON with NaN/inf as null and numpy values as numbers (the one cleaner, `json_safe`)."""
    from upliftlab.jsonsafe import json_safe

    return json.dumps(json_safe(obj), indent=2) + "\n"
