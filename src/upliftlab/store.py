"""The DuckDB store: experiments, assignments, allocations, checks and weekly results.

The one owner of these tables: their DDL and every read and write of them are methods here (the
stages and the CLI call them; none queries a table by name). Every run opens the store, does all
its writes in one transaction and commits or rolls back, so a failed run leaves it as it was.
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
from upliftlab.rules import HOLDOUT_ARM

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


REPORT_SCHEMA_VERSION = 2
REPORT_DDL = [
    # append-only: one row per experiment version, report date and revision, holding the week's
    # report.json (so the trend needs no re-computation of old weeks). A re-run of a week with
    # other numbers adds a revision beside the earlier ones; the trend reads the latest.
    """CREATE TABLE IF NOT EXISTS weekly_results (
        experiment VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        as_of DATE NOT NULL,
        revision INTEGER NOT NULL,
        computed_at TIMESTAMP NOT NULL,
        analysis VARCHAR NOT NULL,
        fingerprint VARCHAR NOT NULL,
        report_json JSON NOT NULL,
        PRIMARY KEY (experiment, version, as_of, revision)
    )""",
]
# the latest revision of each week: what the trend and `weekly_history` read
LATEST_WEEKS = """SELECT * FROM weekly_results w WHERE experiment = ? AND version = ?
    AND revision = (SELECT max(revision) FROM weekly_results v WHERE v.experiment = w.experiment
                    AND v.version = w.version AND v.as_of = w.as_of)"""


def now() -> dt.datetime:
    """The store's clock: the time in UTC, without a zone (as the TIMESTAMP columns hold it)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("could not set lock" in text or "conflicting lock" in text)


class Store:
    """An open store. Use `open_store(path)`; `con` is the DuckDB connection."""

    def __init__(self, path: str | Path, *, read_only: bool = False,
                 file: str | Path | None = None) -> None:
        """`file`: where the database really is while a new store is being built beside
        `path` (see `open_store`); `path` is the store's name in messages. `session` is the run's
        session on the store's connection (stages that read the store take it)."""
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
        from upliftlab.session import Session

        self.session = Session(self.con, store=self)

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
            self.con.execute("INSERT INTO schema_version VALUES (?, ?, ?) ON CONFLICT (module) "
                             "DO UPDATE SET version = excluded.version, "
                             "applied_at = excluded.applied_at", [module, version, now()])

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

    def latest_version(self, name: str) -> int | None:
        """The highest version of experiment `name` with assignments (None: none)."""
        if not self.has_table("assignments"):
            return None
        v = self.con.execute("SELECT max(version) FROM assignments WHERE experiment = ?",
                             [name]).fetchall()[0][0]
        return None if v is None else int(v)

    def assignments(self, name: str, version: int, *, holdout_as: str | None = None) -> Any:
        """customer_id (text) and arm of one experiment version as a DataFrame, by customer_id;
        `holdout_as` relabels the global holdout (e.g. 'control': untreated)."""
        from upliftlab.sources import literal

        arm = "arm" if holdout_as is None else (
            f"CASE WHEN arm = {literal(HOLDOUT_ARM)} THEN {literal(holdout_as)} ELSE arm END")
        return self.con.execute(
            f"SELECT customer_id, {arm} AS arm FROM assignments WHERE experiment = ? AND "
            "version = ? ORDER BY customer_id", [name, version]).df()

    def assignments_sql(self, name: str, version: int, *, holdout: bool = True,
                        columns: Sequence[str] = ("customer_id", "arm", "stratum")) -> str:
        """SQL of the stored assignments of one experiment version (`columns`; customer_id is
        the id's text), the global holdout included unless `holdout` is False."""
        from upliftlab.sources import literal, quote

        keep = "" if holdout else f" AND arm <> {literal(HOLDOUT_ARM)}"
        return (f"SELECT {', '.join(quote(c) for c in columns)} FROM assignments "
                f"WHERE {self._key(name, version)}{keep}")

    def not_assigned_sql(self, name: str, version: int, id_sql: str,
                         table: str = "assignments") -> str:
        """SQL predicate: the customer whose id (SQL `id_sql`) is not yet assigned in the
        experiment version (`table`: the assignments table, or a copy of its rows that another
        engine reads)."""
        from upliftlab.sources import literal, quote

        return (f"NOT EXISTS (SELECT 1 FROM {quote(table)} a WHERE a.experiment = {literal(name)} "
                f"AND a.version = {int(version)} AND a.customer_id = CAST({id_sql} AS VARCHAR))")

    def stratum_counts(self, name: str, version: int) -> list[tuple[str, str, int]]:
        """(stratum, arm, customers) of one experiment version, the holdout left out."""
        if not self.has_table("assignments"):
            return []
        return [(str(s), str(a), int(n)) for s, a, n in self.con.execute(
            "SELECT stratum, arm, count(*) FROM assignments WHERE experiment = ? AND version = ? "
            "AND arm <> ? GROUP BY ALL", [name, version, HOLDOUT_ARM]).fetchall()]

    def expected_sql(self, name: str, version: int, assigned: str) -> str:
        """SQL of the customers each (stratum, arm) should have: per run (batch), its customers
        of the stratum (`assigned`: a relation with batch, stratum, arm) times that run's
        effective weight of the arm (the holdout left out)."""
        from upliftlab.sources import literal, quote

        return f"""SELECT n.stratum, al.arm, sum(n.n * al.effective_weight) AS expected
        FROM (SELECT batch, stratum, count(*) AS n FROM {quote(assigned)}
              WHERE arm <> {literal(HOLDOUT_ARM)} GROUP BY ALL) n
        JOIN (SELECT * FROM allocations WHERE {self._key(name, version)}) al USING (batch)
        GROUP BY ALL"""

    def allocated_weights(self, name: str, version: int) -> dict[str, float]:
        """Expected share per arm over every run: each run's effective weights x its size (the
        holdout left out; empty when nothing is allocated)."""
        rows = self.con.execute(
            "SELECT arm, sum(effective_weight * n) FROM allocations JOIN (SELECT batch AS b, "
            "sum(assigned) AS n FROM allocations WHERE experiment = ? AND version = ? GROUP BY "
            "batch) ON batch = b WHERE experiment = ? AND version = ? GROUP BY arm",
            [name, version, name, version]).fetchall()
        return {a: float(w) for a, w in rows if a != HOLDOUT_ARM}

    @staticmethod
    def _key(name: str, version: int) -> str:
        from upliftlab.sources import literal

        return f"experiment = {literal(name)} AND version = {int(version)}"

    # ---- writes of a design run (inside the caller's transaction) ------------------------------
    def record_experiment(self, spec: Any, stored: dict[str, Any] | None, at: dt.datetime
                          ) -> bool:
        """Insert the spec's row, or update the stored one (`stored`) when its spec or
        randomisation hash differ; True when it updated a row."""
        from upliftlab.spec import randomisation_fields, randomisation_hash, spec_hash, spec_json

        s_hash, r_hash = spec_hash(spec), randomisation_hash(spec)
        body, fields = json.dumps(spec_json(spec)), json.dumps(randomisation_fields(spec))
        path = str(spec.path) if spec.path is not None else None
        if stored is None:
            self.con.execute("INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [spec.name, spec.version, body, s_hash, r_hash, fields, path, at, at])
            return False
        if stored["spec_hash"] == s_hash and stored["randomisation_hash"] == r_hash:
            return False
        self.con.execute("UPDATE experiments SET spec_json = ?, spec_hash = ?, randomisation_hash"
                         " = ?, randomisation_json = ?, spec_path = ?, updated_at = ? WHERE name"
                         " = ? AND version = ?",
                         [body, s_hash, r_hash, fields, path, at, spec.name, spec.version])
        return True

    def add_assignments(self, name: str, version: int, assigned: str, quotas: Any,
                        method: str, at: dt.datetime) -> int:
        """Append a run's new customers (`assigned`: a relation with customer_id text, arm,
        stratum) and its allocation (`quotas`: an `AssignmentQuotas`) as the next batch;
        return the batch."""
        from upliftlab.sources import quote

        batch = self.next_batch(name, version)
        self.con.execute(f"INSERT INTO assignments SELECT ?, ?, customer_id, arm, stratum, ?, ?, ? "
                         f"FROM {quote(assigned)}", [name, version, batch, at, method])
        self.con.executemany(
            "INSERT INTO allocations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[name, version, batch, a.arm, a.weight, a.effective_weight, a.capacity,
              quotas.n_pool, quotas.n_holdout, a.assigned, at] for a in quotas.arms])
        return batch

    def add_checks(self, name: str, version: int, checks: Sequence[Any], at: dt.datetime
                   ) -> None:
        """Append check results (kind, scope, statistic, p_value, ok, details)."""
        self.con.executemany("INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [[name, version, at, c.kind, c.scope, _finite(c.statistic),
                               _finite(c.p_value), c.ok, json.dumps(c.details, default=str)]
                              for c in checks])

    # ---- weekly results ------------------------------------------------------------------------
    def ensure_report_schema(self) -> None:
        """Create `weekly_results`, or move a version-1 table (one row per week, replaced on a
        re-run) to the append-only version 2, its rows becoming revision 1."""
        con = self.con
        old = self.has_table("schema_version") and con.execute(
            "SELECT version FROM schema_version WHERE module = 'report'").fetchone()
        if old and old[0] == 1 and self.has_table("weekly_results"):
            con.execute("ALTER TABLE weekly_results RENAME TO weekly_results_v1")
            con.execute(REPORT_DDL[0])
            con.execute("""INSERT INTO weekly_results SELECT experiment, version, as_of, 1,
                computed_at, analysis, md5(CAST(report_json AS VARCHAR)), report_json
                FROM weekly_results_v1""")
            con.execute("DROP TABLE weekly_results_v1")
        self.ensure_schema("report", REPORT_SCHEMA_VERSION, REPORT_DDL)

    def latest_week(self, name: str, version: int, day: dt.date
                    ) -> tuple[int, str, dt.datetime] | None:
        """(revision, fingerprint, computed_at) of the latest revision of the week `day`."""
        if not self.has_table("weekly_results"):
            return None
        row = self.con.execute(
            "SELECT revision, fingerprint, computed_at FROM weekly_results WHERE experiment = ? "
            "AND version = ? AND as_of = ? ORDER BY revision DESC LIMIT 1",
            [name, version, day]).fetchall()
        return None if not row else (int(row[0][0]), str(row[0][1]), row[0][2])

    def add_weekly_result(self, name: str, version: int, day: dt.date, revision: int,
                          analysis: str, fingerprint: str, report: dict) -> None:
        self.con.execute("INSERT INTO weekly_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [name, version, day, revision, now(), analysis, fingerprint,
                          json.dumps(report, allow_nan=False)])

    def weekly_history(self, name: str, version: int, before: dt.date | None = None
                       ) -> list[dict]:
        """The stored weekly report.json dicts (the latest revision of each week, before `before`
        when given), oldest first. A table of schema version 1 (one row per week) is read as it
        is, never migrated here."""
        if not self.has_table("weekly_results"):
            return []
        cols = [d[0] for d in self.con.execute("SELECT * FROM weekly_results LIMIT 0")
                .description]
        query = LATEST_WEEKS if "revision" in cols else (
            "SELECT * FROM weekly_results WHERE experiment = ? AND version = ?")
        where, params = ("WHERE as_of < ? ", [name, version, before]) if before is not None \
            else ("", [name, version])
        rows = self.con.execute(f"SELECT report_json FROM ({query}) {where}ORDER BY as_of",
                                params).fetchall()
        return [_json(r[0]) for r in rows]

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
        from upliftlab.sources import quote

        return {t: sorted(self.con.execute(f"SELECT * FROM {quote(t)}").fetchall(), key=repr)
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
    check_target(p, "{store}")
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
        raise StoreError(f"{{store}} {p}: cannot create the store there ({exc.strerror})",
                         params=["store"]) from None
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


def _finite(x: float | None) -> float | None:
    import math

    return None if x is None or not math.isfinite(x) else float(x)
