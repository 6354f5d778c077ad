"""The seams between stages (issue 12): a session per run that owns the connection, its time zone
and its temporary names; stages that hand each other typed handles and refuse a bare
connection; the store as the only owner of its tables; library errors that name parameters
(the CLI names flags); one copy of each rule."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from _helpers import spec_toml, two_arms

from upliftlab.errors import InputError, UpliftlabError
from upliftlab.session import Session
from upliftlab.store import open_store

SRC = Path(__file__).resolve().parents[1] / "src" / "upliftlab"
START = dt.date(2026, 1, 5)

SPEC = spec_toml(
    "seam", "seam-test", version=1, strata=["tier"], covariates=["revenue_365d"],
    outcome_window_days=30, mde=0.02,
    cohort={"table": "cohort.parquet", "as_of": START},
    arms=two_arms(cost_per_contact=0.1),
    tables={"baseline": {"rates": {"short": 0.05, "long": 0.02}}, "holdout": {"share": 0.1}})


@pytest.fixture
def project(tmp_path):
    """A spec over a cohort table, its store after `assign`, and purchases after the start."""
    from upliftlab.assign import assign_experiment
    from upliftlab.spec import load_spec

    rng = np.random.default_rng(3)
    n = 1200
    pd.DataFrame({"customer_id": np.arange(n, dtype="int64"),
                  "tier": rng.choice(["short", "long"], n),
                  "revenue_365d": rng.gamma(2.0, 40.0, n)}).to_parquet(tmp_path / "cohort.parquet")
    buyers = rng.choice(n, 300, replace=False)
    pd.DataFrame({"customer_id": buyers,
                  "ts": [dt.datetime(2026, 1, 6) + dt.timedelta(hours=int(h))
                         for h in rng.integers(0, 24 * 40, len(buyers))],
                  "amount": rng.gamma(2.0, 20.0, len(buyers))}).to_csv(tmp_path / "tx.csv",
                                                                      index=False)
    (tmp_path / "seam.toml").write_text(SPEC)
    spec = load_spec(tmp_path / "seam.toml")
    with open_store(tmp_path / "s.duckdb") as store:
        assign_experiment(spec, store)
    return tmp_path, spec


def temp_relations(con) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()}


# ---- 1. a session per run, typed handles ------------------------------------------------------
def test_session_sets_utc_on_the_connection_and_names_its_relations():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    session = Session(con)
    assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"
    names = {session.temp_name("cohort") for _ in range(3)}
    assert len(names) == 3
    session.close()                      # an adopted connection stays open
    assert con.execute("SELECT 1").fetchone() == (1,)
    with Session() as own:
        inner = own.con
    with pytest.raises(duckdb.ConnectionException):
        inner.execute("SELECT 1")       # its own connection is closed with it


def test_the_store_runs_on_a_utc_session(project):
    tmp, _ = project
    with open_store(tmp / "s.duckdb", read_only=True) as store:
        assert store.session.store is store
        assert store.con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"


def _stages(tmp, spec):
    from upliftlab.assign import Design, assign_sql
    from upliftlab.outcomes import OutcomeSource, check_outcome_source, spec_outcomes
    from upliftlab.power import measure_baseline, spec_power
    from upliftlab.spec_cohort import spec_cohort

    tx = str(tmp / "tx.csv")
    return {
        "spec_cohort": lambda s: spec_cohort(s, spec),
        "spec_outcomes": lambda s: spec_outcomes(s, spec, tx, START, dt.date(2026, 2, 1)),
        "spec_power": lambda s: spec_power(spec, s),
        "measure_baseline": lambda s: measure_baseline(s, tx, START, 30),
        "assign_sql": lambda s: assign_sql(s, "pool", Design.of("x", {"a": 0.5, "b": 0.5})),
        "check_outcome_source": lambda s: check_outcome_source(
            s, OutcomeSource(tx, spec.outcome_columns(), "given"), "SELECT '1' AS customer_id",
            START),
    }


@pytest.mark.parametrize("stage", ["spec_cohort", "spec_outcomes", "spec_power",
                                   "measure_baseline", "assign_sql", "check_outcome_source"])
def test_a_stage_refuses_a_bare_connection(project, stage):
    tmp, spec = project
    con = duckdb.connect()
    with pytest.raises(TypeError, match=rf"{stage} needs an upliftlab Session .* bare connection"):
        _stages(tmp, spec)[stage](con)
    assert not temp_relations(con)      # refused before it touched the connection


def test_a_stage_that_reads_the_store_refuses_a_session_without_one(project):
    tmp, spec = project
    with Session() as session, pytest.raises(TypeError, match="reads the store"):
        _stages(tmp, spec)["spec_outcomes"](session)


def test_stages_hand_over_handles_not_the_names_of_views(project):
    """Outcomes joined with the cohort the cohort stage handed over; every relation has a name
    of its own (no shared ul_cohort / ul_outcomes that a later stage reads by name)."""
    from upliftlab.outcomes import spec_outcomes
    from upliftlab.spec_cohort import spec_cohort

    tmp, spec = project
    with open_store(tmp / "s.duckdb") as store:
        con = store.con
        cohort = spec_cohort(store.session, spec)
        first = spec_outcomes(store.session, spec, str(tmp / "tx.csv"), START,
                              dt.date(2026, 2, 1), cohort=cohort)
        second = spec_outcomes(store.session, spec, str(tmp / "tx.csv"), START,
                               dt.date(2026, 2, 1))
        assert first.cohort is cohort and second.cohort.name != cohort.name
        assert len({first.table, first.outcomes, second.table, second.outcomes}) == 4
        assert not {"ul_cohort", "ul_outcomes", "ul_assigned", "ul_report"} & temp_relations(con)
        # every assigned customer outside the holdout, once (the store's table, read directly)
        n = con.execute("SELECT count(*) FROM assignments WHERE arm <> 'holdout'").fetchall()[0][0]
        assert len(first.relation().df()) == n
        assert first.n_holdout == con.execute(
            "SELECT count(*) FROM assignments WHERE arm = 'holdout'").fetchall()[0][0] > 0
        assert first.covariates == ("revenue_365d",) and first.segments == ("tier", "stratum")
        got = first.relation().df().set_index("customer_id")
        cov = cohort.relation().df().assign(customer_id=lambda d: d.customer_id.astype(str))
        cov = cov.set_index("customer_id").loc[got.index, "revenue_365d"]
        np.testing.assert_allclose(got["revenue_365d"], cov)


def test_training_data_reads_the_cohort_from_the_cohort_stage(project):
    from upliftlab.uplift.io import spec_training_data

    tmp, spec = project
    X, y, t, prop, control = spec_training_data(str(tmp / "seam.toml"), "2026-02-10",
                                                str(tmp / "s.duckdb"),
                                                transactions=str(tmp / "tx.csv"))
    with open_store(tmp / "s.duckdb", read_only=True) as store:
        stored = store.assignments("seam", 1)
    kept = stored[stored.arm != "holdout"].set_index("customer_id")
    assert sorted(X.index) == sorted(kept.index)
    assert list(t) == list(kept.loc[X.index, "arm"])
    tx = pd.read_csv(tmp / "tx.csv", parse_dates=["ts"])
    bought = set(tx[tx.ts < "2026-02-04"].customer_id.astype(str))   # the 30-day window
    assert list(y) == [float(c in bought) for c in X.index]
    assert control == "control" and set(prop) == {"control", "coupon"}
    assert {"revenue_365d", "tier"} <= set(X.columns)


# ---- 2. the store owns its tables ------------------------------------------------------------
def test_store_reads_agree_with_its_tables(project):
    tmp, _ = project
    with open_store(tmp / "s.duckdb", read_only=True) as store:
        raw = store.con.execute("SELECT customer_id, arm, stratum, batch FROM assignments").df()
        assert store.latest_version("seam") == 1 and store.latest_version("nope") is None
        got = store.assignments("seam", 1, holdout_as="control")
        want = raw.assign(arm=raw.arm.replace({"holdout": "control"})).sort_values(
            "customer_id")[["customer_id", "arm"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
        counts = store.stratum_counts("seam", 1)
        ref = raw[raw.arm != "holdout"].groupby(["stratum", "arm"]).size()
        assert {(s, a): n for s, a, n in counts} == ref.to_dict()
        weights = store.allocated_weights("seam", 1)
        shares = raw[raw.arm != "holdout"].arm.value_counts(normalize=True)
        total = sum(weights.values())
        for arm, w in weights.items():
            assert w / total == pytest.approx(shares[arm], abs=0.05)
        rows = store.con.execute(store.assignments_sql("seam", 1, holdout=False)).df()
        assert len(rows) == (raw.arm != "holdout").sum()


def test_no_module_but_the_store_names_its_tables():
    """Every read and write of the store's tables is a Store method (the DDL included)."""
    tables = "assignments|allocations|checks|experiments|weekly_results|schema_version"
    pattern = re.compile(rf"\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+({tables})\b")
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.name != "store.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_one_clock_for_the_store():
    """Timestamps written to the store come from `store.now` (no private copies)."""
    import upliftlab.outcomes as outcomes
    from upliftlab.store import now

    assert not hasattr(outcomes, "_now")
    for p in SRC.rglob("*.py"):
        assert "store import _now" not in p.read_text(), p
    t = now()
    assert t.tzinfo is None
    assert abs((dt.datetime.now(dt.UTC).replace(tzinfo=None) - t).total_seconds()) < 5


def test_library_errors_name_parameters_and_the_cli_names_flags(project, capsys):
    from upliftlab.cli import main
    from upliftlab.cli._params import FLAGS
    from upliftlab.outcomes import outcome_source
    from upliftlab.spec import load_spec
    from upliftlab.uplift.io import spec_training_data

    tmp, _ = project
    with pytest.raises(InputError) as info:   # the spec names no outcome source
        outcome_source(load_spec(tmp / "seam.toml"))
    assert "give transactions FILE" in str(info.value)
    assert "--transactions" not in str(info.value)
    assert "give --transactions FILE" in str(info.value.named(FLAGS))
    with pytest.raises(InputError, match=r"^as_of 2026-01-20: the outcome windows"):
        spec_training_data(str(tmp / "seam.toml"), "2026-01-20", str(tmp / "s.duckdb"),
                           transactions=str(tmp / "tx.csv"))
    with pytest.raises(InputError, match=r"^outcome 'profit'"):
        spec_training_data(str(tmp / "seam.toml"), "2026-02-10", str(tmp / "s.duckdb"),
                           outcome="profit", transactions=str(tmp / "tx.csv"))
    with pytest.raises(UpliftlabError, match=r"^fmt must be csv or parquet"):
        from upliftlab.assign import export_contacts

        with open_store(tmp / "s.duckdb", read_only=True) as store:
            export_contacts(load_spec(tmp / "seam.toml"), store, str(tmp / "out"), "xlsx")
    from upliftlab.outcomes import report_spec

    with pytest.raises(InputError, match=r"^as_of '2026-13-01' is not a date"):
        report_spec(str(tmp / "seam.toml"), as_of="2026-13-01", out=str(tmp / "r"),
                    store_path=str(tmp / "s.duckdb"))
    with pytest.raises(UpliftlabError, match=r"^store .*: not a new folder or file name"):
        with open_store(tmp / "nope" / ".."):
            pass
    # the CLI's one error line names the flag
    with pytest.raises(SystemExit) as code:
        main(["report", str(tmp / "seam.toml"), "--as-of", "2026-01-01", "--store",
              str(tmp / "s.duckdb"), "--out", str(tmp / "r")])
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: --as-of 2026-01-01 is not after the campaign start")


def test_output_targets_are_named_by_parameter_and_the_cli_names_the_flag(tmp_path):
    """`_files` and `score_file` name the parameter `out` (or what the caller says); the CLI's
    FLAGS turn it into --out (the CLI side: test_faults, the --out cases)."""
    from upliftlab._files import check_target, staged_dir, staged_file
    from upliftlab.cli._params import FLAGS
    from upliftlab.uplift.io import score_file

    def raised(fn, *args, **kw) -> InputError:
        with pytest.raises(InputError) as info:
            fn(*args, **kw)
        return info.value

    for err, rest in (
            (raised(check_target, tmp_path / "x" / ".."), r"\.\.: not a new folder"),
            (raised(score_file, None, "c.parquet", str(tmp_path / "s.xlsx")),
             r"s\.xlsx: expected a \.parquet or \.csv file")):
        assert err.params == ("out",)
        assert re.match(r"^out \S+" + rest, str(err)), str(err)
        assert str(err.named(FLAGS)).startswith("--out ")
    with pytest.raises(InputError, match=r"^out .*: is a folder, expected a file name"):
        with staged_file(tmp_path):
            pass
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match=r"^model folder .*mine: the folder holds files") as info:
        with staged_dir(tmp_path / "mine", owner="model", what="model folder"):
            pass
    assert info.value.params == () and str(info.value.named(FLAGS)).startswith("model folder")


def test_policy_and_programme_errors_name_parameters_and_the_cli_names_the_flags(tmp_path):
    """The policy's and the programme's input errors name the library's parameters; the CLI's
    FLAGS turn them into the flags (the CLI side: the policy and programme cases of
    test_faults and test_programme_faults)."""
    from upliftlab.cli._params import FLAGS
    from upliftlab.policy.explore import ExploreBudget, explore_weights
    from upliftlab.programme import programme_report

    def raised(fn, *args, **kw) -> InputError:
        with pytest.raises(InputError) as info:
            fn(*args, **kw)
        return info.value

    cases = [
        (raised(ExploreBudget.parse, "lots"), ("explore_budget",),
         "explore_budget: expected a share", "--explore-budget: expected a share"),
        (raised(ExploreBudget.parse("900").money, 500.0), ("explore_budget",),
         "explore_budget 900.00 is more than the budget", "--explore-budget 900.00 is more"),
        (raised(explore_weights, {"sms": 1.0}, ["coupon"]), ("weights",),
         "weights for unknown arm 'sms'", "--weight for unknown arm 'sms'"),
        (raised(explore_weights, {"control": 1.0, "coupon": 0.0}, ["coupon"]),
         ("weights", "explore_budget"), "weights: arm(s) coupon have no weight",
         "--weight: arm(s) coupon have no weight"),
        (raised(programme_report, str(tmp_path / "store.duckdb"), as_of="2026-06-01", out=None),
         ("out",), "programme: missing out DIR", "programme: missing --out DIR"),
    ]
    for err, params, library, cli_text in cases:
        assert err.params == params
        assert str(err).startswith(library), str(err)
        assert str(err.named(FLAGS)).startswith(cli_text), str(err.named(FLAGS))
        assert "{" not in str(err) and "{" not in str(err.named(FLAGS))
    assert "--explore-budget 0 for no exploration" in str(cases[3][0].named(FLAGS))
    # the engine's and the simulator's errors too (checked without starting Spark)
    from upliftlab.engine.spark_cohort import require_parquet
    from upliftlab.simulate import check_world_target

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("keep")
    for err, param, flag in (
            (raised(require_parquet, str(tmp_path / "tx.csv"), "transactions"), "engine",
             "--engine spark reads Parquet"),
            (raised(check_world_target, tmp_path / "full"), "force", "(use --force)")):
        assert err.params == (param,) and "--" not in str(err), str(err)
        assert flag in str(err.named(FLAGS))


# ---- 4. one copy of each rule ------------------------------------------------------------------
def test_one_holdout_label_and_one_family_of_number_types():
    import upliftlab.analysis
    import upliftlab.assign
    import upliftlab.checks
    import upliftlab.cohort
    import upliftlab.spec
    from upliftlab.sources import is_number

    assert upliftlab.assign.HOLDOUT_ARM is upliftlab.spec.HOLDOUT_ARM
    assert upliftlab.checks.HOLDOUT_ARM is upliftlab.spec.HOLDOUT_ARM
    for module in (upliftlab.analysis, upliftlab.checks, upliftlab.cohort):
        assert not [n for n in vars(module) if "NUMERIC" in n], module
    holds = {t: is_number(t) for t in ("INTEGER", "UHUGEINT", "DECIMAL(18,2)", "REAL", "DOUBLE",
                                        "BOOLEAN", "VARCHAR", "DATE", "INTERVAL")}
    assert [t for t, ok in holds.items() if ok] == ["INTEGER", "UHUGEINT", "DECIMAL(18,2)",
                                                    "REAL", "DOUBLE"]
    assert is_number("BOOLEAN", boolean=True) and not is_number("VARCHAR", boolean=True)


def test_the_shared_rules_load_without_the_spec_validation_library():
    """The cohort, checks, outcomes, touches, the store and the programme take the holdout label
    and the tier rule from `upliftlab.rules`, so commands without a spec (cohort, risk, respond,
    programme) do not import pydantic (a quarter of a second at start-up); `upliftlab.spec`
    re-exports the same objects."""
    import subprocess
    import sys

    code = ("import sys, upliftlab.cohort, upliftlab.checks, upliftlab.outcomes, upliftlab.touches, "
            "upliftlab.store, upliftlab.programme, upliftlab.simtouch; "
            "print(sorted(m for m in sys.modules if m.startswith('pydantic')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={"PYTHONPATH": str(SRC.parent), "PATH": ""}).stdout
    assert out.strip() == "[]"
    import upliftlab.rules
    import upliftlab.spec

    assert upliftlab.spec.parse_tiers is upliftlab.rules.parse_tiers
    assert upliftlab.spec.HOLDOUT_ARM is upliftlab.rules.HOLDOUT_ARM


def test_the_assignment_summary_is_not_the_policy_allocation():
    import upliftlab.assign as assign

    assert not hasattr(assign, "Allocation")       # policy.allocate's name
    assert {"ArmQuota", "AssignmentQuotas"} <= set(assign.__all__)


def test_no_module_reaches_into_another_modules_privates():
    """No `from upliftlab.x import _name` and no `module._name` of an upliftlab module outside
    that module (engine/ included: it calls public, named functions)."""
    found = []
    for p in [*SRC.glob("engine/*.py"), *SRC.glob("assignment/*.py"), SRC / "cli" / "report.py",
              SRC / "outcomes.py", SRC / "power.py", SRC / "spec_cohort.py"]:
        tree = ast.parse(p.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("upliftlab"):
                found += [f"{p.name}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and a.name != "__version__"]
                for a in node.names:
                    if not a.name.startswith("_"):
                        aliases[a.asname or a.name] = node.module
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")):
                found.append(f"{p.name}: {node.value.id}.{node.attr}")
    assert found == []


def test_an_analysis_result_is_frozen():
    from upliftlab.analysis import analyze

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"arm": rng.choice(["control", "coupon"], 400),
                          "reactivated": rng.integers(0, 2, 400)})
    result = analyze(frame, arm="arm", control="control", metrics=["reactivated"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.method = {}
    changed = dataclasses.replace(result, method={**result.method, "note": "x"})
    assert changed.method["note"] == "x" and "note" not in result.method
