"""Turn user data (CSV, Parquet, a DuckDB table, a pandas DataFrame) into DuckDB views.

Every command reads its tables through here, so file errors and missing columns produce the
same clear `error: ...` everywhere, and no table ever has to pass through pandas row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upliftlab.errors import InputError, param_names

if TYPE_CHECKING:
    import duckdb

Source = Any  # str | Path | pandas.DataFrame | duckdb.DuckDBPyRelation

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".tsv", ".txt", ".csv.zst")


@dataclass(frozen=True)
class ColumnMap:
    """Names of the transaction columns in the user's table (mappable, e.g. --customer-col)."""

    customer_id: str = "customer_id"
    timestamp: str = "ts"
    amount: str = "amount"


def connect(database: str = ":memory:", *, read_only: bool = False) -> "duckdb.DuckDBPyConnection":
    """A DuckDB connection with settings that keep memory bounded on a small machine.

    DuckDB's own progress bar is off: it writes to stdout even when piped (into a scheduler's
    log or a JSON consumer); long steps show upliftlab's status line on a terminal instead."""
    import duckdb

    con = duckdb.connect(database, read_only=read_only)
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    return con


def parse_date(value: Any, what: str) -> "date":
    """A date from a date, a datetime (its day) or a YYYY-MM-DD string; InputError naming
    `what` otherwise: a label (e.g. "--as-of"), or a parameter written "{as_of}" (the error then
    names it as a parameter, which the CLI shows as its flag). Every date argument of upliftlab is
    read through here."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        if not isinstance(value, str):  # a number such as 20250301 is not taken for a date
            raise ValueError
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"{what} {value!r} is not a date (expected YYYY-MM-DD)",
                         params=param_names(what)) from None


def describe(source: Source) -> str:
    """A short label for messages: the file name, or what kind of object it is."""
    if isinstance(source, (str, Path)):
        return str(source)
    return type(source).__name__


def register(con: "duckdb.DuckDBPyConnection", source: Source, view: str) -> list[str]:
    """Make `source` available in `con` as the view `view`; return its column names.

    A path is read by its suffix (Parquet or CSV; a glob such as `world/transactions*.parquet`
    reads every matching file as one table); `file.duckdb:table` reads a table of a DuckDB file;
    a DataFrame or DuckDB relation is registered as it is.
    """
    import duckdb

    if isinstance(source, (str, Path)):
        try:
            sql = _read_sql(con, str(source), view)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view)} AS {sql}")
            columns = [d[0] for d in con.execute(f"SELECT * FROM {quote(view)} LIMIT 0"
                                                 ).description]
        except duckdb.Error as exc:
            raise InputError(_csv_error(exc, str(source))) from None
        return columns
    if isinstance(source, duckdb.DuckDBPyRelation):
        # a relation belongs to the connection that made it and may not be usable from `con`:
        # materialise it as an Arrow table (a view on its own connection would be lazier, but
        # callers pass relations from their own connections)
        source = source.to_arrow_table()
    source = _contiguous(source)
    try:
        con.register(f"{view}__src", source)
    except (duckdb.Error, TypeError, ValueError) as exc:
        raise InputError(f"cannot use {describe(source)} as a table: {_first_line(exc)}") from None
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view)} AS SELECT * FROM {quote(view + '__src')}")
    return [d[0] for d in con.execute(f"SELECT * FROM {quote(view)} LIMIT 0").description]


def _contiguous(source: Any) -> Any:
    """A DataFrame whose columns DuckDB can scan: it fails on negative strides
    (e.g. `df.iloc[::-1]`) with `std::bad_cast`, so such frames are copied once."""
    import pandas as pd

    if not isinstance(source, pd.DataFrame):
        return source
    for name in source.columns:
        # numpy-backed columns (numbers, datetimes) keep their ndarray in `_ndarray`
        arr = getattr(source[name].array, "_ndarray", None)
        if arr is not None and arr.ndim == 1 and arr.strides[0] < 0:
            return source.copy()
    return source


def column_notes(source: Source, used: list[str], optional: dict[str, str],
                 have: list[str] | None = None) -> list[str]:
    """Lines that name what a command will not use: each optional column (name -> what its
    absence means) missing from `source`, and the columns neither used nor optional (`have`:
    its columns as another engine read them; default: DuckDB reads them)."""
    if have is None:
        con = connect()
        try:
            have = register(con, source, "ul_notes")
        finally:
            con.close()
    lines = [f"optional column {name!r} is absent from {describe(source)} ({meaning})"
             for name, meaning in optional.items() if name not in have]
    ignored = [c for c in have if c not in used and c not in optional]
    if ignored:
        lines.append(f"columns of {describe(source)} not used: {', '.join(ignored)}")
    return lines


def require_columns(columns: list[str], required: list[str], where: str) -> None:
    """Raise InputError naming the missing columns and the ones that are there."""
    missing = [c for c in required if c not in columns]
    if missing:
        have = ", ".join(columns) if columns else "no columns"
        noun = "column" if len(missing) == 1 else "columns"
        raise InputError(f"{where}: missing {noun} {', '.join(repr(m) for m in missing)} "
                         f"(found: {have})")


# ---- DuckDB column types: one definition of each family --------------------------------------
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT")
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
NUMBER_TYPES = (*INTEGER_TYPES, *FLOAT_TYPES, "DECIMAL")
TEXT_TYPES = ("VARCHAR", "UUID")


def is_number(type_name: str, *, boolean: bool = False) -> bool:
    """Whether a DuckDB type (as DESCRIBE writes it, e.g. DECIMAL(18,2)) holds numbers; with
    `boolean`, a BOOLEAN counts as the numbers 0/1 (a metric or a covariate may be one)."""
    kind = str(type_name).upper()
    return kind.startswith(NUMBER_TYPES) or (boolean and kind.startswith("BOOLEAN"))


def quote(name: str) -> str:
    """A SQL identifier in double quotes, safe for any column name."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _read_sql(con: "duckdb.DuckDBPyConnection", path: str, view: str) -> str:
    if ":" in path and path.split(":", 1)[0].endswith(".duckdb"):
        db, table = path.split(":", 1)
        _check_file(db)
        alias = f"{view}__db"
        con.execute(f"ATTACH IF NOT EXISTS {literal(db)} AS {quote(alias)} (READ_ONLY)")
        return f"SELECT * FROM {quote(alias)}.{quote(table)}"
    _check_file(path)
    lower = path.lower()
    if lower.endswith(_PARQUET):
        _same_columns(path)
        return f"SELECT * FROM read_parquet({literal(path)})"
    if lower.endswith(_CSV):
        return _csv_sql(path)
    if Path(path).is_dir():
        return f"SELECT * FROM read_parquet({literal(str(Path(path) / '*.parquet'))})"
    raise InputError(f"{path}: unknown file type (expected .parquet, .csv or .csv.gz)")


def _same_columns(pattern: str, reader: str = "read_parquet({})") -> None:
    """Refuse a glob whose files have different columns (DuckDB would read the first file's
    columns and fail, or read NULLs, later)."""
    if not any(ch in pattern for ch in "*?["):
        return
    import glob

    files = sorted(glob.glob(pattern, recursive=True))
    con = connect()  # its own connection, as in `_csv_sql`
    try:
        _compare_columns(con, pattern, files, reader)
    finally:
        con.close()


def _compare_columns(con: "duckdb.DuckDBPyConnection", pattern: str, files: list[str],
                     reader: str) -> None:
    first = None
    for f in files:
        names = [r[0] for r in con.execute(
            f"DESCRIBE SELECT * FROM {reader.format(literal(f))}").fetchall()]
        if first is None:
            first = (f, names)
        elif names != first[1]:
            raise InputError(f"{pattern}: the files have different columns: {first[0]} "
                             f"({', '.join(first[1])}) and {f} ({', '.join(names)})")


def _csv_sql(path: str) -> str:
    """The SELECT of a CSV file with types that hold for every row, so that no query fails
    later on a value beyond DuckDB's type sample (its first 20,480 rows).

    One scan converts every column with the sample's types (cheaper than DuckDB's whole-file
    sniff, which is taken only when that scan fails). A column that the sample takes for
    numbers or dates but that holds text further down is a bad value, not a text column: it is
    refused naming the file, the line and the column; a column that only widens (a decimal after
    whole numbers) is read with the wider type.
    """
    # the checks run on a connection of their own: a failed scan would abort the caller's
    # transaction (e.g. the store's), and the error raised here must stay the one that is shown
    check = connect()
    try:
        return _checked_csv_sql(check, path)
    finally:
        check.close()


def _checked_csv_sql(con: "duckdb.DuckDBPyConnection", path: str) -> str:
    import duckdb

    _same_columns(path, "read_csv({}, header = true)")
    sampled = _csv_types(con, f"read_csv({literal(path)}, header = true)")
    try:
        return _typed_csv(path, _checked_types(con, path, sampled))
    except duckdb.ConversionException:
        pass
    except duckdb.Error as exc:  # a row with too many columns, a broken quote, ...
        raise InputError(_csv_error(exc, path)) from None
    whole = _csv_types(con, f"read_csv({literal(path)}, header = true, sample_size = -1)")
    bad = {n: k for n, k in sampled.items() if whole.get(n) == "VARCHAR" and k != "VARCHAR"}
    try:
        types = _checked_types(con, path, {**whole, **bad})
    except duckdb.Error as exc:
        raise InputError(_csv_error(exc, path)) from None
    if bad:  # not reached when DuckDB reports the bad value; kept so a bad file never passes
        raise InputError(f"{path}: column {next(iter(bad))!r} holds text beyond its first rows")
    return _typed_csv(path, types)


def _checked_types(con: "duckdb.DuckDBPyConnection", path: str,
                   types: dict[str, str]) -> dict[str, str]:
    """`types` after one scan that converts every value of every column (duckdb.Error where a
    value does not fit), with integer columns widened to DOUBLE where a row holds a fraction
    (DuckDB would round "2.5" to an integer silently)."""
    scan = {n: ("DOUBLE" if t in INTEGER_TYPES else t) for n, t in types.items()}
    ints = [n for n, t in types.items() if t in INTEGER_TYPES]
    # count(column) makes DuckDB convert every value (count(*) would not)
    parts = [f"count({quote(n)})" for n in types if n not in ints]
    parts += [f"count(*) FILTER (WHERE {quote(n)} <> trunc({quote(n)}))" for n in ints]
    got = con.execute(f"SELECT {', '.join(parts) or 'count(*)'} FROM "
                      f"({_typed_csv(path, scan)})").fetchone()
    fractions = dict(zip(ints, got[len(parts) - len(ints):]))
    return {n: ("DOUBLE" if fractions.get(n) else t) for n, t in types.items()}


def _csv_types(con: "duckdb.DuckDBPyConnection", reader: str) -> dict[str, str]:
    return dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                            f"{reader})").fetchall())


def _typed_csv(path: str, types: dict[str, str]) -> str:
    spec = "{" + ", ".join(f"{literal(n)}: {literal(t)}" for n, t in types.items()) + "}"
    return f"SELECT * FROM read_csv({literal(path)}, header = true, types = {spec})"


def _csv_error(exc: BaseException, path: str) -> str:
    message = engine_message(exc)
    return message if message.startswith(path) else f"cannot read {path}: {message}"


def _check_file(path: str) -> None:
    if any(ch in path for ch in "*?["):  # a glob: DuckDB reads all matching files
        import glob

        if not glob.glob(path, recursive=True):
            raise InputError(f"{path}: no file matches")
        return
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if p.is_file():
        try:
            with open(p, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def engine_message(exc: BaseException) -> str:
    """A DuckDB error as one line for the user: for a CSV error the file, the line and the
    column (`data.csv: line 60002, column "x": Could not convert string "abc" to 'DOUBLE'`),
    else the error's first line."""
    import re

    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    file = re.search(r"^\s*file = (.+)$", text, re.MULTILINE)
    column = re.search(r'Error when converting column "([^"]*)"\. (.*)$', text, re.MULTILINE)
    if line or column:
        where = [file.group(1).strip() if file else "CSV file"]
        if line:
            where.append(f"line {line.group(1)}")
        if column:
            where.append(f"column {column.group(1)!r}")
            what = column.group(2).strip()
        else:
            rest = [ln.strip() for ln in text.splitlines()[1:] if ln.strip()
                    and not ln.strip().startswith(("Original Line", "Possible", "*", "file ="))]
            what = rest[0] if rest else _first_line(exc)
        return f"{', '.join(where)}: {what}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
