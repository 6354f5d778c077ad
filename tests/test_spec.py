"""Experiment specs: validation messages name the file and the field; hashes; the examples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from _helpers import cli_process
from upliftlab.errors import SpecError
from upliftlab.spec import (load_spec, parse_spec, randomisation_hash, spec_hash)

ROOT = Path(__file__).resolve().parents[1]

BASE = """
name = "test_exp"
salt = "s1"
strata = ["tier"]

[cohort]
transactions = "data/tx.parquet"
as_of = 2026-01-05

[[arms]]
name = "control"
weight = 0.5
control = true

[[arms]]
name = "coupon"
weight = 0.3
cost_per_contact = 0.1
cost_per_conversion = 10

[[arms]]
name = "content"
weight = 0.2
"""


def write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> str:
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        load_spec(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: ")
    assert "\n" not in msg
    return msg[len(str(p)) + 2:]


def test_examples_load():
    for path in sorted((ROOT / "experiments").glob("*.toml")):
        spec = load_spec(path)
        assert spec.control_arm.weight > 0
    spec = load_spec(ROOT / "experiments" / "reactivation_2026q1.toml")
    assert [a.name for a in spec.arms] == ["control", "coupon", "content", "advisor"]
    assert spec.arms[3].capacity == 5000
    # relative paths resolve against the spec's folder, not the working directory
    assert spec.resolve(spec.cohort.transactions) == str(
        ROOT / "reports" / "demo" / "world" / "transactions.parquet")


def test_valid_base(tmp_path):
    spec = load_spec(write(tmp_path, BASE))
    assert spec.version == 1 and spec.holdout.share == 0 and spec.assignment.mode == "stratified"
    assert spec.resolve(spec.cohort.transactions) == str(tmp_path / "data" / "tx.parquet")
    assert spec.resolve("/abs/t.duckdb:tx") == "/abs/t.duckdb:tx"
    assert spec.resolve("w.duckdb:tx") == f"{tmp_path / 'w.duckdb'}:tx"


@pytest.mark.parametrize("edit, expected", [
    (("weight = 0.2\n", "weight = 0.2\nwieght = 1\n"), "unknown key 'wieght' in arms[2]"),
    (('salt = "s1"\n', 'salt = "s1"\nsalts = "x"\n'), "unknown key 'salts'"),
    (("as_of = 2026-01-05\n", "as_of = 2026-01-05\nasof = 1\n"), "unknown key 'asof' in cohort"),
    (("weight = 0.2\n", "weight = -0.2\n"), "arms[2].weight: must be >= 0 (got -0.2)"),
    (("weight = 0.3\n", "weight = 0.4\n"), "arms: weights sum to 1.1, must sum to 1 (within 1e-9)"),
    (("control = true\n", ""), "arms: exactly one arm must have control = true (found none)"),
    (("weight = 0.2\n", "weight = 0.2\ncontrol = true\n"),
     "arms: exactly one arm must have control = true (found 'control', 'content')"),
    (("cost_per_contact = 0.1", "cost_per_contact = -0.1"),
     "arms[1].cost_per_contact: must be >= 0 (got -0.1)"),
    (("cost_per_conversion = 10", "cost_per_conversion = -10"),
     "arms[1].cost_per_conversion: must be >= 0 (got -10)"),
    (('name = "test_exp"', 'name = "Test-Exp"'), "name: must be a safe identifier"),
    (('name = "test_exp"', 'name = "drop table; x"'), "name: must be a safe identifier"),
    (('name = "coupon"', 'name = "holdout"'), "arms[1].name: 'holdout' is reserved"),
    (('name = "coupon"', 'name = "control"'), "arms: arm names must be distinct"),
    (('salt = "s1"', 'salt = ""'), "salt: must not be empty"),
    (("weight = 0.2\n", "weight = 0.2\ncapacity = 0\n"), "arms[2].capacity: must be > 0"),
    (('strata = ["tier"]', 'strata = ["tier"]\nalpha = 1.5'), "alpha: must be < 1"),
    (('strata = ["tier"]', 'strata = ["tier"]\n[holdout]\nshare = 0.7'),
     "holdout.share: must be <= 0.5"),
    (('strata = ["tier"]', 'strata = ["tier"]\n[assignment]\nmode = "blocked"'),
     "assignment.mode: input should be 'stratified' or 'simple'"),
    (('transactions = "data/tx.parquet"', ""), "cohort: give exactly one of 'transactions'"),
    (('strata = ["tier"]', 'strata = ["tier"]\n[baseline]\nhistory_as_of = 2025-12-01'),
     "after cohort.as_of"),
])
def test_bad_specs_name_file_and_field(tmp_path, edit, expected):
    old, new = edit
    assert old in BASE
    msg = error_of(tmp_path, BASE.replace(old, new, 1))
    assert msg.startswith(expected) or expected in msg, msg


def test_invalid_toml_and_missing_file(tmp_path):
    assert "invalid TOML" in error_of(tmp_path, BASE + "\n[[arms]\n")
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.toml")


def test_missing_required_field(tmp_path):
    assert error_of(tmp_path, BASE.replace('salt = "s1"\n', "")).startswith("salt: required")


def test_hashes():
    import tomllib

    data = tomllib.loads(BASE)
    a = parse_spec(data)
    assert spec_hash(a) == spec_hash(parse_spec(tomllib.loads(BASE)))
    assert len(randomisation_hash(a)) == 64

    def variant(old: str, new: str):
        return parse_spec(tomllib.loads(BASE.replace(old, new, 1)))

    # costs, descriptions: the whole-spec hash moves, the randomisation hash does not
    cost = variant("cost_per_contact = 0.1", "cost_per_contact = 0.2")
    assert spec_hash(cost) != spec_hash(a) and randomisation_hash(cost) == randomisation_hash(a)
    desc = variant('salt = "s1"\n', 'salt = "s1"\ndescription = "hello"\n')
    assert randomisation_hash(desc) == randomisation_hash(a)
    # anything that moves customers between arms moves the randomisation hash
    for old, new in [("weight = 0.3", "weight = 0.25\n"), ('salt = "s1"', 'salt = "s2"'),
                     ('strata = ["tier"]', "strata = []"),
                     ('strata = ["tier"]', 'strata = ["tier"]\n[assignment]\nmode = "simple"'),
                     ('strata = ["tier"]', 'strata = ["tier"]\n[holdout]\nshare = 0.05'),
                     ("weight = 0.2\n", "weight = 0.2\ncapacity = 10\n"),
                     ('name = "content"', 'name = "push"')]:
        text = BASE.replace(old, new, 1)
        if old == "weight = 0.3":
            text = text.replace("weight = 0.2\n", "weight = 0.25\n", 1)
        b = parse_spec(tomllib.loads(text))
        assert randomisation_hash(b) != randomisation_hash(a), (old, new)


@pytest.mark.slow
def test_cli_bad_spec_exit_2_one_line(tmp_path):
    p = write(tmp_path, BASE.replace("weight = 0.2\n", "weight = 0.2\nwieght = 1\n"))
    store = tmp_path / "s.duckdb"
    for cmd in ("assign", "power"):
        out = cli_process(cmd, p, "--store", store)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0] == f"error: {p}: unknown key 'wieght' in arms[2]"
        assert not store.exists()


def test_a_misspelled_required_key_is_named_before_the_missing_field(tmp_path):
    # 'wieght' is both unknown and leaves 'weight' missing: the typo is what the user must see
    text = BASE.replace("weight = 0.5", "wieght = 0.5")
    assert error_of(tmp_path, text).startswith("unknown key 'wieght' in arms[0]")


@pytest.mark.parametrize("tiers, dormant_after, expected", [
    ("short=80,long", 90, "must be greater than dormant-after (90 days)"),
    ("short=180,short=365,long", 90, "duplicate tier name 'short'"),
    ("short=180,mid=365,long=500", 90, "the last tier 'long' must be open-ended"),
    ("a;b=180,long", 90, "bad tier name 'a;b'"),
    ("short=200,long", 200, "must be greater than dormant-after (200 days)"),
])
def test_spec_tiers_follow_the_one_tier_rule(tmp_path, tiers, dormant_after, expected):
    text = BASE.replace("as_of = 2026-01-05",
                        f'as_of = 2026-01-05\ndormant_after = {dormant_after}\ntiers = "{tiers}"')
    msg = error_of(tmp_path, text)
    assert msg.startswith("cohort.tiers: ") and expected in msg, msg


def test_spec_tiers_accept_what_the_cohort_accepts(tmp_path):
    from upliftlab.cohort import parse_tiers

    tiers = "Short=120,mid-term=400,long dormant"
    spec = load_spec(write(tmp_path, BASE.replace(
        "as_of = 2026-01-05", f'as_of = 2026-01-05\ndormant_after = 60\ntiers = "{tiers}"')))
    assert spec.cohort.tier_names() == [t.name for t in parse_tiers(tiers, 60)] == [
        "Short", "mid-term", "long dormant"]
