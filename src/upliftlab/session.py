"""One run's DuckDB session: the connection, its settings (UTC) and the names of its temporary
relations; the stages take it and hand each other typed handles, never the names of temp views.

A stage (`spec_cohort`, `spec_outcomes`, `spec_power`, the assignment of a spec) called with a
bare DuckDB connection raises a TypeError saying so, instead of failing later on a missing view.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from upliftlab.sources import quote

if TYPE_CHECKING:
    import duckdb

    from upliftlab.store import Store

DIALECT = "duckdb"


class Session:
    """A DuckDB connection set up for upliftlab: time zone UTC (timestamps with a zone are read
    in UTC everywhere), and a counter that gives every temporary relation a name of its own.

    `Session()` opens an in-memory connection (closed with the session); `Session(con)` adopts
    a connection (the store's: `Store.session`), which the session then does not close; `store`
    is the store whose tables that connection holds (None for a session without a store).
    """

    def __init__(self, con: "duckdb.DuckDBPyConnection | None" = None, *,
                 store: "Store | None" = None) -> None:
        from upliftlab.sources import connect

        self._owns = con is None
        self.con: duckdb.DuckDBPyConnection = connect() if con is None else con
        self.store = store
        self.dialect = DIALECT
        self._ids = itertools.count(1)
        self.con.execute("SET TimeZone = 'UTC'")

    def temp_name(self, stem: str) -> str:
        """A name for a new temporary relation of this session (never one another stage uses)."""
        return f"ul_{stem}_{next(self._ids)}"

    def drop(self, *names: str) -> None:
        """Drop temporary relations (a view or a table of that name) if they exist."""
        for name in names:
            kind = self.con.execute(
                "SELECT 'TABLE' FROM duckdb_tables() WHERE temporary AND table_name = $n "
                "UNION ALL SELECT 'VIEW' FROM duckdb_views() WHERE temporary AND view_name = $n",
                {"n": name}).fetchall()
            if kind:
                self.con.execute(f"DROP {kind[0][0]} IF EXISTS {quote(name)}")

    def close(self) -> None:
        if self._owns:
            self.con.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def require_session(session: Any, stage: str) -> Session:
    """`session` if it is a Session, else a TypeError naming the stage (a bare connection has
    neither the settings nor the handles a stage relies on)."""
    if isinstance(session, Session):
        return session
    raise TypeError(f"{stage} needs an upliftlab Session (upliftlab.session.Session, or a store's "
                    f"`Store.session`), not {type(session).__name__}: a stage does not run on a "
                    "bare connection")


def require_store(session: Any, stage: str) -> "Store":
    """The store of `session` (a TypeError when the session has none: the stage reads its
    tables)."""
    store = require_session(session, stage).store
    if store is None:
        raise TypeError(f"{stage} reads the store: give the store's session (`Store.session`)")
    return store


# ---- the handles that stages hand each other ------------------------------------------------------
@dataclass(frozen=True)
class CohortHandle:
    """The spec's cohort, a temporary table of `session`: `columns` in order; `where` names it
    in messages ("cohort of <source>")."""

    session: Session
    name: str
    columns: tuple[str, ...]
    where: str

    @property
    def sql(self) -> str:
        """The table as a FROM item."""
        return quote(self.name)

    def relation(self) -> "duckdb.DuckDBPyRelation":
        return self.session.con.table(self.name)

    def drop(self) -> None:
        self.session.drop(self.name)


@dataclass(frozen=True)
class OutcomesHandle:
    """A designed experiment's outcomes: `outcomes` (one row per assigned customer: arm,
    stratum, reactivated, revenue, orders, ...) and `table` (the same rows with the cohort's
    covariates and tier, what the report analyses), both temporary relations of `session`;
    `cohort` the cohort they were joined with."""

    session: Session
    outcomes: str
    table: str
    cohort: CohortHandle
    n_holdout: int
    covariates: tuple[str, ...]
    segments: tuple[str, ...]

    def relation(self) -> "duckdb.DuckDBPyRelation":
        return self.session.con.table(self.table)
