"""The spec's cohort as a stage of a run: built on the session from the spec's source (a table,
the dormant cohort of its transactions, or the at-risk customers of a risk model), value bands
added, ids, strata and covariates checked; handed on as a `CohortHandle`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from upliftlab.errors import InputError, SpecError
from upliftlab.session import CohortHandle, require_session
from upliftlab.sources import INTEGER_TYPES, TEXT_TYPES, literal, quote

if TYPE_CHECKING:
    import duckdb

    from upliftlab.session import Session
    from upliftlab.spec import ExperimentSpec, ValueBandSpec


def spec_cohort(session: "Session", spec: "ExperimentSpec") -> CohortHandle:
    """Build the spec's cohort into a temporary table of `session` (plus value_band when it is
    a stratum); validate ids, duplicates, strata and covariates; return its handle."""
    from upliftlab.sources import register

    session = require_session(session, "spec_cohort")
    con = session.con
    c = spec.cohort
    src, raw = session.temp_name("cohort_src"), session.temp_name("cohort_raw")
    if c.table is not None:
        source = spec.resolve(c.table)
        register(con, source, src)
    elif c.kind == "at_risk":
        from upliftlab.risk.workflow import at_risk_view

        source = spec.resolve(c.transactions)
        at_risk_view(con, spec.resolve(c.model), source, c.as_of, src,
                     min_level=c.min_level or "high", share=c.share,
                     columns=c.columns.column_map(), discount_col=c.columns.discount_col)
    else:
        source = spec.resolve(c.transactions)
        from upliftlab.cohort import build_cohort_relation

        # timestamps with a zone are read in UTC: the session's setting
        rel = build_cohort_relation(con, source, c.as_of, dormant_after=c.dormant_after,
                                    tiers=c.tiers, columns=c.columns.column_map(),
                                    discount_col=c.columns.discount_col)
        # (a relation of this connection: its SQL reads the temp views it registered)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(src)} AS {rel.sql_query()}")
    where = f"cohort of {source}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(raw)} AS SELECT * FROM {quote(src)}")
    if not con.execute(f"SELECT count(*) FROM {quote(raw)}").fetchone()[0]:
        raise InputError(f"{where}: no customers (the cohort is empty)")
    check_covariates(con, raw, spec, where)
    name = raw
    if "value_band" in spec.strata:
        banded, name = session.temp_name("cohort_banded"), session.temp_name("cohort")
        add_value_band(con, raw, spec.value_band, banded, where)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS SELECT * FROM {quote(banded)}")
        session.drop(banded, raw)
    columns = validate_cohort(con, name, where, [*spec.strata, *spec.covariates])
    return CohortHandle(session, name, tuple(columns), where)


def check_covariates(con: "duckdb.DuckDBPyConnection", view: str, spec: "ExperimentSpec",
                     where: str) -> None:
    """The spec's covariates must be numeric columns of the cohort: they adjust the outcome
    (CUPED / Lin) and are checked for balance, which a text column cannot do."""
    types = {r[0]: str(r[1]).upper() for r in con.execute(f"DESCRIBE {quote(view)}").fetchall()}
    for c in spec.covariates:
        kind = types.get(c)
        if kind is not None and (kind in TEXT_TYPES or kind.startswith(("BOOL", "DATE", "TIME"))):
            raise SpecError(f"{spec.path or spec.name}: covariate {c!r} is a {kind} column of the "
                            f"{where}, not a number (covariates adjust the outcome; use it as a "
                            "stratum instead)")


def validate_cohort(con: "duckdb.DuckDBPyConnection", view: str, where: str,
                    required: Sequence[str] = ()) -> list[str]:
    """Check the cohort has usable, unique customer ids and the required columns."""
    from upliftlab.sources import require_columns

    described = con.execute(f"DESCRIBE {quote(view)}").fetchall()
    types = {row[0]: str(row[1]).upper() for row in described}
    require_columns(list(types), ["customer_id", *required], where)
    kind = types["customer_id"]
    if kind not in INTEGER_TYPES and kind not in TEXT_TYPES:
        raise InputError(f"{where}: customer_id must be integers or text, not {kind} "
                         "(1 and 1.0 would hash differently)")
    nulls = con.execute(f"SELECT count(*) FROM {quote(view)} WHERE customer_id IS NULL"
                        ).fetchone()[0]
    if nulls:
        raise InputError(f"{where}: {nulls} rows have no customer_id")
    dup = con.execute(duplicate_ids_sql(view)).fetchone()
    if dup:
        raise InputError(f"{where}: customer_id {dup[0]!r} appears {dup[1]} times "
                         f"({dup[2]} ids are duplicated); each customer must appear once")
    return list(types)


def add_value_band(con: "duckdb.DuckDBPyConnection", view: str, spec: "ValueBandSpec",
                   out: str, where: str) -> list[float]:
    """Create `out` = `view` plus the column value_band; return the cut points used.

    Cuts are the spec's thresholds, or its quantiles of the column over the whole cohort (as it
    is at this run). Band i holds values with exactly i cuts strictly below them; NULL -> lowest.
    """
    from upliftlab.sources import require_columns

    cols = [r[0] for r in con.execute(f"DESCRIBE {quote(view)}").fetchall()]
    require_columns(cols, [spec.column], f"{where} (value_band)")
    if spec.thresholds is not None:
        cuts = [float(t) for t in spec.thresholds]
    else:
        got = con.execute(value_band_cuts_sql(view, spec.column, spec.quantiles or spec.cuts())
                          ).fetchone()[0]
        cuts = [float(x) if x is not None else 0.0 for x in (got or [0.0] * len(spec.cuts()))]
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(out)} AS "
                + value_band_sql(view, cols, spec.column, cuts, spec.band_labels()))
    return cuts


def duplicate_ids_sql(view: str) -> str:
    """The most duplicated customer id of `view` (id text, its rows, how many ids repeat)."""
    return f"""
        SELECT CAST(customer_id AS VARCHAR) AS id, count(*) AS n, count(*) OVER () AS ids
        FROM {quote(view)} GROUP BY customer_id HAVING count(*) > 1 ORDER BY n DESC, id LIMIT 1
    """


def value_band_cuts_sql(view: str, column: str, quantiles: Sequence[float]) -> str:
    """The `quantiles` of `column` over `view`, as one list (linear interpolation)."""
    qs = ", ".join(repr(float(q)) for q in quantiles)
    return f"SELECT quantile_cont({quote(column)}, [{qs}]) FROM {quote(view)}"


# A value within this distance (relative, at least absolute) of a cut counts as on it, so in the
# band below: a sum of money comes out a few units in the last place apart when added in
# another order (Spark's partitions, DuckDB's threads), and would otherwise cross a cut it
# equals; amounts in cents are never that close to a cut without being on it.
BAND_TOLERANCE = 1e-9


def band_edge_sql(cut: float) -> str:
    """The cut, moved up by `BAND_TOLERANCE`, as a DOUBLE literal that DuckDB and Spark read
    alike (with an exponent: a plain decimal is a DECIMAL, converted to DOUBLE differently)."""
    text = repr(float(cut) + BAND_TOLERANCE * max(1.0, abs(float(cut))))
    return text if "e" in text else text + "e0"


def value_band_sql(view: str, columns: Sequence[str], column: str, cuts: Sequence[float],
                   labels: Sequence[str]) -> str:
    """`view`'s `columns` plus value_band: band i holds values with exactly i cuts strictly
    below them (a value within `BAND_TOLERANCE` of a cut is on it); NULL -> the lowest."""
    col = quote(column)
    whens = " ".join(f"WHEN {col} > {band_edge_sql(cuts[i - 1])} THEN {literal(labels[i])}"
                     for i in range(len(cuts), 0, -1))
    others = ", ".join(quote(c) for c in columns if c != "value_band")
    return (f"SELECT {others}, CASE {whens} ELSE {literal(labels[0])} END AS value_band "
            f"FROM {quote(view)}")
