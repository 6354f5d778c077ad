"""Training data and scoring for uplift models from files: read an experiment table, build the
training data of a designed experiment from the store, and score a customers file in batches.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from upliftlab._files import staged_file
from upliftlab.errors import InputError, StoreError

# cohort columns that identify or date a customer rather than describe them; value_band is a
# stratum that `assign` derives from revenue_730d (already a feature) and that `upliftlab cohort`
# files lack, so leaving it out keeps the model scorable on a plain cohort file
_NOT_FEATURES = {"customer_id", "first_purchase", "last_purchase", "arm", "stratum", "value_band"}


def read_experiment_table(path: str, columns: list[str]) -> pd.DataFrame:
    """The `columns` of a CSV/Parquet/DuckDB table as a DataFrame (missing columns: InputError)."""
    from upliftlab.sources import connect, quote, register, require_columns

    con = connect()
    try:
        have = register(con, path, "ul_model_data")
        require_columns(have, columns, str(path))
        cols = ", ".join(quote(c) for c in dict.fromkeys(columns))
        df = con.execute(f"SELECT {cols} FROM ul_model_data").df()
    finally:
        con.close()
    if len(df) == 0:
        raise InputError(f"{path}: no rows")
    return df


def check_customers(con: Any, view: str, id_col: str, features: list[str], where: str) -> None:
    """Customers to score: every id present and once, no infinite feature value (a model would
    score them silently, and a plan would count a customer twice)."""
    from upliftlab.sources import FLOAT_TYPES, quote

    cid = quote(id_col)
    missing = con.execute(f"SELECT count(*) FROM {quote(view)} WHERE {cid} IS NULL").fetchone()[0]
    if missing:
        raise InputError(f"{where}: {missing:,} rows have no {id_col}")
    dup = con.execute(f"""SELECT CAST({cid} AS VARCHAR), count(*) OVER () FROM {quote(view)}
                          GROUP BY {cid} HAVING count(*) > 1 LIMIT 1""").fetchone()
    if dup:
        raise InputError(f"{where}: {dup[1]:,} duplicate {id_col} values (e.g. {dup[0]!r}); each "
                         "customer must appear once")
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {quote(view)})"
                             ).fetchall())
    floats = [c for c in features if str(types.get(c, "")).upper() in FLOAT_TYPES]
    if floats:
        counts = con.execute("SELECT " + ", ".join(
            f"count(*) FILTER (WHERE isinf({quote(c)}))" for c in floats)
            + f" FROM {quote(view)}").fetchone()
        bad = [f"{c!r} ({n:,})" for c, n in zip(floats, counts) if n]
        if bad:
            raise InputError(f"{where}: infinite values in {', '.join(bad)}; a model cannot "
                             "score them")


def binary_or_continuous(y: pd.Series, where: str) -> str:
    """'binary' when the outcome takes only 0/1 values (or booleans), else 'continuous'."""
    try:
        vals = pd.to_numeric(y)
    except (TypeError, ValueError):
        raise InputError(f"{where}: the outcome must be numbers or 0/1") from None
    return "binary" if vals.dropna().isin([0, 1]).all() else "continuous"


def spec_training_data(spec_path: str, as_of: Any, store_path: str, outcome: str = "reactivated",
                       transactions: str | None = None, columns: Any = None
                       ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, float], str]:
    """Features, outcome, arms and design propensities of a designed experiment.

    Assignments and design weights from the store, outcomes (`reactivated`, `revenue`, `orders`)
    from the transactions after the campaign start, features = every column of the spec's cohort
    (as of the campaign start, i.e. before treatment). The outcome windows must be closed by
    `as_of`: a model fitted on half-observed windows would learn the wrong outcome.
    Returns (X indexed by customer_id, y, treatment, propensity, control).
    """
    from upliftlab.outcomes import design_weights, outcome_source, spec_outcomes
    from upliftlab.sources import parse_date, quote
    from upliftlab.spec import load_spec
    from upliftlab.spec_cohort import spec_cohort
    from upliftlab.store import open_store

    spec = load_spec(spec_path)
    if as_of is None:
        raise InputError("model fit SPEC needs {as_of} DATE (YYYY-MM-DD)", params=["as_of"])
    day = parse_date(as_of, "{as_of}")
    start = spec.cohort.as_of
    end = start + dt.timedelta(days=spec.outcome_window_days)
    if day < end:
        raise InputError(f"{{as_of}} {day}: the outcome windows of {spec_path} close on {end}; "
                         "fit the uplift model once they are closed", params=["as_of"])
    if outcome not in ("reactivated", "revenue", "orders"):
        raise InputError(f"{{outcome}} {outcome!r}: a designed experiment has reactivated, "
                         "revenue or orders", params=["outcome"])
    tx = outcome_source(spec, transactions, columns)  # [outcomes], transactions, mapping
    if not Path(store_path).exists():
        raise StoreError(f"store {store_path} does not exist (run `upliftlab assign` first)")
    with open_store(store_path) as store:
        if store.experiment(spec.name, spec.version) is None:
            raise StoreError(f"experiment '{spec.name}' v{spec.version} is not in {store_path}")
        # the cohort from the cohort stage, the outcomes from the outcomes stage (joined with it)
        cohort = spec_cohort(store.session, spec)
        got = spec_outcomes(store.session, spec, tx, start, day, cohort=cohort)
        weights = design_weights(store, spec)
        cohort_cols = [c for c in cohort.columns if c not in _NOT_FEATURES]
        sel = ", ".join(f"c.{quote(c)}" for c in cohort_cols)
        df = store.con.execute(f"""SELECT o.customer_id AS ul_customer_id, o.arm,
            o.{quote(outcome)} AS y, {sel} FROM {quote(got.outcomes)} o
            JOIN {cohort.sql} c ON CAST(c.customer_id AS VARCHAR) = o.customer_id
            ORDER BY o.customer_id""").df()
    if len(df) == 0:
        raise InputError(f"{spec_path}: no assigned customers with cohort features")
    total = sum(weights.values()) or 1.0
    prop = {a: w / total for a, w in weights.items()}
    # the customer ids index the features, so predictions (same index) can be traced back
    X = df[cohort_cols].set_axis(pd.Index(df["ul_customer_id"].to_numpy(), name="customer_id"))
    return X, df["y"].to_numpy(dtype=float), df["arm"].astype(str).to_numpy(), prop, \
        spec.control_arm.name


def scores_frame(customer_id: Any, outcomes: pd.DataFrame, control: Any, arms: Any,
                 outcome: str = "binary") -> pd.DataFrame:
    """The scores table `upliftlab policy` reads: customer_id, base (predicted outcome under
    control) and uplift_<arm> per treatment arm, from per-arm predicted outcomes.

    For a binary outcome the predicted probabilities are clipped to [0, 1] first (the X- and
    DR-learners can step slightly outside), so base + uplift is always a probability.
    """
    pred = outcomes.to_numpy(dtype=float)
    if outcome == "binary":
        pred = np.clip(pred, 0.0, 1.0)
    cols = list(outcomes.columns)
    base = pred[:, cols.index(control)]
    res = pd.DataFrame({"customer_id": np.asarray(customer_id), "base": base})
    for arm in arms:
        res[f"uplift_{arm}"] = pred[:, cols.index(arm)] - base
    return res


def score_file(model: Any, customers: str, out: str, id_col: str = "customer_id",
               batch_size: int = 200_000) -> int:
    """Score a customers file in batches into `out` (.parquet or .csv): customer_id, base,
    uplift_<arm>... (`base` = predicted outcome under control). Memory is bounded by the batch
    size; the output is written to a temporary file and renamed, so it is whole or absent.
    Returns the number of rows scored."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from upliftlab.progress import progress
    from upliftlab.sources import connect, quote, register, require_columns

    suffix = out.lower()
    if not suffix.endswith((".parquet", ".csv")):
        raise InputError(f"{{out}} {out}: expected a .parquet or .csv file", params=["out"])
    features = [str(c) for c in model.feature_names_in_]
    con = connect()
    writer = None
    n_done = 0
    try:
        with staged_file(out) as tmp:
            have = register(con, customers, "ul_score_src")
            require_columns(have, [id_col] + features, str(customers))
            check_customers(con, "ul_score_src", id_col, features, str(customers))
            total = con.execute("SELECT count(*) FROM ul_score_src").fetchall()[0][0]
            cols = ", ".join(quote(c) for c in dict.fromkeys([id_col] + features))
            # a relation streams its batches; con.execute(...) would materialise every row first
            reader = con.sql(f"SELECT {cols} FROM ul_score_src").to_arrow_reader(batch_size)
            with progress(total=total, desc="scoring", unit="customers") as bar:
                for batch in reader:
                    df = batch.to_pandas()
                    try:
                        pred = model.predict_outcomes(df[features])
                    except InputError as exc:
                        raise InputError(f"{customers}: {exc}") from None
                    res = scores_frame(df[id_col].to_numpy(), pred, model.control_,
                                       model.treatment_arms_, model.outcome)
                    table = pa.Table.from_pandas(res, preserve_index=False)
                    if writer is None:
                        writer = (pq.ParquetWriter(tmp, table.schema)
                                  if suffix.endswith(".parquet")
                                  else pacsv.CSVWriter(tmp, table.schema))
                    writer.write_table(table)
                    n_done += len(res)
                    bar.update(len(res))
            if writer is None:
                raise InputError(f"{customers}: no rows to score")
            writer.close()
            writer = None
    finally:
        if writer is not None:
            writer.close()
        con.close()
    return n_done
