"""The DuckDB store: experiments, assignments, allocations and checks (weekly results later).

Every run opens it, does all its writes in one transaction and commits or rolls back, so a failed
run leaves it as it was; other modules add their tables with `Store.ensure_schema`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab.errors import StoreError

if TYPE_CHECKING:
    import duckdb

DEFAULT_STORE = "upliftlab.duckdb"

# (module, version) -> DDL; each module owns its tables and bumps its version when they change
DESIGN_SCHEMA_VERSION = 1
DESIGN_DDL = [
    """CREATE TABLE IF NOT EXISTS experiments (
        name VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        spec_json JSON NOT NULL,
        spec_hash VARCHAR NOT NULL,
        randomisation_hash VARCHAR NOT NULL,
        randomisation_json JSON NOT NULL,
        spec_path VARCHAR,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        PRIMARY KEY (name, version)
    )""",
    # customer_id is the text form of the id, the form the hash reads
    """CREATE TABLE IF NOT EXISTS assignments (
        experiment VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        customer_id VARCHAR NOT NULL,
        arm VARCHAR NOT NULL,
        stratum VARCHAR NOT NULL,
        batch INTEGER NOT NULL,
        assigned_at TIMESTAMP NOT NULL,
        method_version VARCHAR NOT NULL
    )""",
    # one row per arm per run: the weights the SRM check expects for that run's customers
    """CREATE TABLE IF NOT EXISTS allocations (
        experiment VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        batch INTEGER NOT NULL,
        arm VARCHAR NOT NULL,
        weight DOUBLE NOT NULL,
        effective_weight DOUBLE NOT NULL,
        capacity BIGINT,
        n_pool BIGINT NOT NULL,
        n_holdout BIGINT NOT NULL,
        assigned BIGINT NOT NULL,
        assigned_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS checks (
        experiment VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        run_at TIMESTAMP NOT NULL,
        kind VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        statistic DOUBLE,
        p_value DOUBLE,
        ok BOOLEAN NOT NULL,
        details JSON
    )""",
]


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("could not set lock" in text or "conflicting lock" in text)


class Store:
    """An open store. Use `open_store(path)`; `con` is the DuckDB connection."""

    def __init__(self, path: str | Path, *, read_only: bool = False,
                 file: str | Path | None = None) -> None:
        """`file`: where the database really is while a new store is being built beside
        `path` (see `open_store`); `path` is the store's name in messages."""
        import duckdb

        from upliftlab.sources import connect

        self.path = str(path)
        self.read_only = read_only
        self._open_transaction = False
        if read_only and not Path(self.path).exists():
            raise StoreError(f"store {self.path} does not exist (run `upliftlab assign` first)")
        try:
            self.con: duckdb.DuckDBPyConnection = connect(str(file or self.path),
                                                          read_only=read_only)
        except duckdb.IOException as exc:
            if _is_lock_error(exc):
                raise StoreError(f"store {self.path} is locked by another run") from None
            raise StoreError(f"cannot open store {self.path}: {str(exc).splitlines()[0]}") from None
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {str(exc).splitlines()[0]}") from None

    # ---- schema ---------------------------------------------------------------------------
    def has_table(self, table: str) -> bool:
        return bool(self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ?", [table]).fetchone()[0])

    def ensure_schema(self, module: str = "design", version: int = DESIGN_SCHEMA_VERSION,
                      ddl: Sequence[str] = tuple(DESIGN_DDL)) -> None:
        """Create `module`'s tables if missing and record its schema version.

        A store written by a newer version of the module is refused rather than misread.
        """
        self.con.execute("""CREATE TABLE IF NOT EXISTS schema_version (
            module VARCHAR PRIMARY KEY, version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)""")
        row = self.con.execute("SELECT version FROM schema_version WHERE module = ?",
                               [module]).fetchone()
        if row is not None and row[0] > version:
            raise StoreError(f"store {self.path}: tables of '{module}' are schema version "
                             f"{row[0]}, this upliftlab knows up to {version}; upgrade upliftlab")
        for statement in ddl:
            self.con.execute(statement)
        if row is None or row[0] < version:
            self.con.execute("INSERT OR REPLACE INTO schema_version VALUES (?, ?, ?)",
                             [module, version, _now()])

    # ---- transactions ---------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator["Store"]:
        """BEGIN ... COMMIT; ROLLBACK on any exception (the store is then as it was)."""
        self.con.execute("BEGIN TRANSACTION")
        self._open_transaction = True
        try:
            yield self
        except BaseException:
            if self._open_transaction:
                self._open_transaction = False
                self.con.execute("ROLLBACK")
            raise
        if self._open_transaction:
            self.commit()

    def commit(self) -> None:
        """Commit the open transaction now, before the end of its block: the weekly report
        commits right before its folder is swapped in, so no report lacks its stored row."""
        from upliftlab._files import fault_step

        self._open_transaction = False
        self.con.execute("COMMIT")
        fault_step("store commit")

    # ---- reads ----------------------------------------------------------------------------
    def experiment(self, name: str, version: int) -> dict[str, Any] | None:
        if not self.has_table("experiments"):
            return None
        cur = self.con.execute("SELECT * FROM experiments WHERE name = ? AND version = ?",
                               [name, version])
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([d[0] for d in cur.description], row))
        for key in ("spec_json", "randomisation_json"):
            if isinstance(out.get(key), str):
                out[key] = json.loads(out[key])
        return out

    def arm_counts(self, name: str, version: int) -> dict[str, int]:
        if not self.has_table("assignments"):
            return {}
        return {a: int(n) for a, n in self.con.execute(
            "SELECT arm, count(*) FROM assignments WHERE experiment = ? AND version = ? "
            "GROUP BY arm", [name, version]).fetchall()}

    def next_batch(self, name: str, version: int) -> int:
        if not self.has_table("allocations"):
            return 1
        return int(self.con.execute(
            "SELECT coalesce(max(batch), 0) + 1 FROM allocations WHERE experiment = ? AND "
            "version = ?", [name, version]).fetchone()[0])

    def assignments_frame(self, name: str, version: int) -> Any:
        """The stored assignments of one experiment version as a DataFrame."""
        if not self.has_table("assignments"):
            import pandas as pd

            return pd.DataFrame(columns=["customer_id", "arm", "stratum", "batch"])
        return self.con.execute(
            "SELECT customer_id, arm, stratum, batch, assigned_at, method_version FROM assignments "
            "WHERE experiment = ? AND version = ? ORDER BY customer_id", [name, version]).df()

    # ---- the programme: every experiment at once --------------------------------------------
    def experiment_specs(self) -> list[dict[str, Any]]:
        """name, version, spec (dict) and spec_path of the latest version of every experiment
        that has assignments, oldest campaign first."""
        if not (self.has_table("experiments") and self.has_table("assignments")):
            return []
        rows = self.con.execute(
            "SELECT e.name, e.version, e.spec_json, e.spec_path FROM experiments e "
            "JOIN (SELECT experiment, max(version) AS v FROM assignments GROUP BY experiment) l "
            "ON l.experiment = e.name AND l.v = e.version ORDER BY e.created_at, e.name").fetchall()
        return [{"name": n, "version": int(v),
                 "spec": json.loads(s) if isinstance(s, str) else s, "spec_path": p}
                for n, v, s, p in rows]

    def programme_assignments_sql(self, experiments: Sequence[tuple[str, int]]) -> str:
        """SQL of the assignments of `experiments` ((name, version) pairs): experiment,
        customer_id (text), arm, tier (the stratum's `tier=` part, else 'all')."""
        from upliftlab.sources import literal, quote

        if not experiments:
            raise StoreError(f"store {self.path}: no experiments to read")
        keys = " OR ".join(f"({quote('experiment')} = {literal(n)} AND {quote('version')} = "
                           f"{int(v)})" for n, v in experiments)
        return (f"SELECT experiment, customer_id, arm, COALESCE(NULLIF(regexp_extract("
                f"stratum, 'tier=([^|]+)', 1), ''), 'all') AS tier FROM assignments WHERE {keys}")

    def latest_results(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The newest stored weekly report.json of every experiment version."""
        if not self.has_table("weekly_results"):
            return {}
        rows = self.con.execute(
            "SELECT experiment, version, report_json FROM weekly_results QUALIFY row_number() "
            "OVER (PARTITION BY experiment, version ORDER BY as_of DESC) = 1").fetchall()
        return {(n, int(v)): json.loads(r) if isinstance(r, str) else r for n, v, r in rows}

    def dump(self) -> dict[str, list[tuple]]:
        """Every table's rows, sorted: equal dumps mean equal stores (for tests and audits)."""
        tables = [r[0] for r in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' ORDER BY table_name").fetchall()]
        return {t: sorted(self.con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
                for t in tables}

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:  # noqa: BLE001 - closing twice or after a failed open is harmless
            pass


@contextmanager
def open_store(path: str | Path = DEFAULT_STORE, *, read_only: bool = False) -> Iterator[Store]:
    """Open the store. A store that does not exist yet is built in a staging file beside `path`
    and appears at `path` only when the run succeeds: a failed or killed run leaves no store
    file (the leftovers of a killed one are removed by the next run)."""
    from upliftlab._files import check_target, clean_stale

    p = Path(path)
    if read_only or p.exists():
        store = Store(p, read_only=read_only)
        if not read_only:
            clean_stale(p)  # what a killed first run left beside the store
        try:
            yield store
        finally:
            store.close()
        return
    check_target(p, "--store")
    stage = _new_store_stage(p)
    store = Store(p, file=stage)
    try:
        yield store
        store.con.execute("CHECKPOINT")  # everything into the one file that is published
        store.close()
        _publish_store(stage, p)
    finally:
        store.close()
        for leftover in (stage, Path(str(stage) + ".wal")):
            leftover.unlink(missing_ok=True)


def _new_store_stage(p: Path) -> Path:
    import secrets

    from upliftlab._files import clean_stale, fault_step

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(p)
    except OSError as exc:
        raise StoreError(f"--store {p}: cannot create the store there ({exc.strerror})") from None
    fault_step("store staged")
    return p.with_name(f".{p.name}.stage-{os.getpid()}-{secrets.token_hex(4)}")


def _publish_store(stage: Path, p: Path) -> None:
    """Put the finished new store at `p`, unless another run created one there meanwhile (a
    hard link never replaces a file, unlike a rename)."""
    from upliftlab._files import fault_step

    fault_step("store closed")
    try:
        os.link(stage, p)
    except FileExistsError:
        raise StoreError(f"store {p} was created by another run meanwhile; run again to add "
                         "to it") from None
    except OSError:  # a file system without hard links
        os.rename(stage, p)
    fault_step("store published")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
