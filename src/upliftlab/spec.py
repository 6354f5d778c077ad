"""Experiment specs: one TOML file per experiment, validated by pydantic, unknown keys refused.

`load_spec(path)` turns every validation problem into a one-line `SpecError` naming the file and
the field; `spec_hash` / `randomisation_hash` fingerprint the whole spec and the part that decides
who gets which arm.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from upliftlab.errors import SpecError
# the rules the spec shares with the stages (re-exported: `from upliftlab.spec import HOLDOUT_ARM`)
from upliftlab.rules import (DEFAULT_TIERS_TEXT, HOLDOUT_ARM, TIER_NAME, Tier,  # noqa: F401
                             check_dormant_after, check_tiers, parse_tiers)

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
WEIGHT_TOLERANCE = 1e-9
# columns the assignment itself adds; a stratum or covariate must not shadow them
DERIVED_COLUMNS = ("value_band",)

SafeName = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _error(message: str) -> PydanticCustomError:
    return PydanticCustomError("spec", message)


class OutcomeColumnsSpec(_Model):
    """Names of the transaction columns in a source table; the keys are the CLI flags' names
    (`customer_col` is `--customer-col`, ...)."""

    customer_col: str = "customer_id"
    time_col: str = "ts"
    amount_col: str = "amount"

    def column_map(self) -> Any:
        from upliftlab.sources import ColumnMap

        return ColumnMap(customer_id=self.customer_col, timestamp=self.time_col,
                         amount=self.amount_col)


class ColumnsSpec(OutcomeColumnsSpec):
    """The cohort's transaction columns; `discount_col` feeds the cohort's discount_share when
    the table has it (its absence is stated, never silent)."""

    discount_col: str = "discount_used"


class OutcomesSpec(_Model):
    """Where the purchases after the campaign start are: a path or glob (relative to the spec),
    with its own column names (default: the cohort's). `--transactions` overrides the path."""

    transactions: str | None = None
    columns: OutcomeColumnsSpec | None = None


class CohortSpec(_Model):
    """Who is in the experiment: the dormant cohort of a transactions table at `as_of`.

    `table` is the alternative for a cohort computed elsewhere (one row per customer, a
    `customer_id` column and the feature columns); exactly one of the two is given.

    `kind = "at_risk"`: instead of the dormant, the customers still active at `as_of` whose
    churn risk (the `model` folder of `upliftlab risk fit`) is at least `min_level`, or the top
    `share` by risk; their `tier` is the risk level (high, medium, low). The primary metric
    "reactivation" (a purchase within the window) then reads as "stays active".
    """

    kind: Literal["dormant", "at_risk"] = "dormant"
    transactions: str | None = None
    table: str | None = None
    as_of: dt.date
    dormant_after: int = Field(90, gt=0)
    tiers: str = "short=180,mid=365,long"
    columns: ColumnsSpec = ColumnsSpec()
    model: str | None = None
    min_level: Literal["high", "medium", "low"] | None = None
    share: float | None = Field(None, gt=0, le=1)

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, v: str, info: ValidationInfo) -> str:
        try:  # the one tier rule (`parse_tiers`), from the spec's own dormant_after
            parse_tiers(v, info.data.get("dormant_after", 90))
        except SpecError as exc:
            raise _error(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "CohortSpec":
        if (self.transactions is None) == (self.table is None):
            raise _error("give exactly one of 'transactions' (a transactions table) or "
                         "'table' (a ready cohort)")
        if self.kind == "at_risk":
            if self.model is None:
                raise _error("kind = 'at_risk' needs 'model' (a folder written by "
                             "`upliftlab risk fit`)")
            if self.transactions is None:
                raise _error("kind = 'at_risk' needs 'transactions' (risk is scored from them)")
            if self.min_level is not None and self.share is not None:
                raise _error("give 'min_level' or 'share', not both")
        elif (self.model, self.min_level, self.share) != (None, None, None):
            raise _error("'model', 'min_level' and 'share' belong to kind = 'at_risk'")
        return self

    def tier_names(self) -> list[str]:
        if self.kind == "at_risk":  # the risk levels the cohort can hold, highest first
            levels = ["high", "medium", "low"]
            return levels[:levels.index(self.min_level) + 1] if self.min_level else levels
        return [t.name for t in parse_tiers(self.tiers, self.dormant_after)]


class ArmSpec(_Model):
    """One arm: its share of the cohort, its costs, an optional capacity."""

    name: SafeName
    weight: float = Field(ge=0)
    cost_per_contact: float = Field(0.0, ge=0)
    cost_per_conversion: float = Field(0.0, ge=0)
    capacity: int | None = Field(None, gt=0)
    control: bool = False
    description: str = ""

    @field_validator("name")
    @classmethod
    def _not_holdout(cls, v: str) -> str:
        if v == HOLDOUT_ARM:
            raise _error(f"'{HOLDOUT_ARM}' is reserved for the global holdout")
        return v


class MetricsSpec(_Model):
    primary: Literal["reactivation"] = "reactivation"
    secondary: list[Literal["revenue", "orders"]] = ["revenue", "orders"]


class BaselineSpec(_Model):
    """Baseline reactivation rate per tier: given, or measured at an earlier as-of date."""

    rates: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None
    history_as_of: dt.date | None = None

    @model_validator(mode="after")
    def _one(self) -> "BaselineSpec":
        if (self.rates is None) == (self.history_as_of is None):
            raise _error("give exactly one of 'rates' (per tier) or 'history_as_of' (a date)")
        return self


class ValueBandSpec(_Model):
    """The derived stratum column `value_band`: bands of `column` cut at thresholds.

    Thresholds are given, or are quantiles of `column` over the cohort. A customer is in band i
    when exactly i thresholds are strictly below the value (bins (t[i-1], t[i]]), so zero spend
    stays in the lowest band even when a threshold is 0.
    """

    column: str = "revenue_365d"
    thresholds: list[float] | None = None
    quantiles: list[Annotated[float, Field(gt=0, lt=1)]] | None = None
    labels: list[SafeName] | None = None

    @model_validator(mode="after")
    def _cuts(self) -> "ValueBandSpec":
        if self.thresholds is not None and self.quantiles is not None:
            raise _error("give 'thresholds' or 'quantiles', not both")
        cuts = self.cuts()
        if not cuts:
            raise _error("needs at least one threshold or quantile")
        if any(b <= a for a, b in zip(cuts, cuts[1:])):
            raise _error("thresholds/quantiles must be strictly increasing")
        if self.labels is not None and len(self.labels) != len(cuts) + 1:
            raise _error(f"needs {len(cuts) + 1} labels for {len(cuts)} cuts, "
                         f"got {len(self.labels)}")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise _error("labels must be distinct")
        return self

    def cuts(self) -> list[float]:
        if self.thresholds is not None:
            return list(self.thresholds)
        return list(self.quantiles) if self.quantiles is not None else [1 / 3, 2 / 3]

    def band_labels(self) -> list[str]:
        if self.labels is not None:
            return list(self.labels)
        k = len(self.cuts()) + 1
        return ["low", "mid", "high"] if k == 3 else (
            ["low", "high"] if k == 2 else [f"b{i}" for i in range(k)])


class AssignmentSpec(_Model):
    mode: Literal["stratified", "simple"] = "stratified"


class HoldoutSpec(_Model):
    """A share of all customers, chosen by a salt shared by every experiment, never treated."""

    share: float = Field(0.0, ge=0, le=0.5)
    salt: str = Field("global-holdout", min_length=1)


class _TouchColumnsBase(_Model):
    def column_map(self) -> Any:
        from upliftlab.touches import TouchColumns

        return TouchColumns(**self.model_dump())


def _touch_columns_spec() -> type[_TouchColumnsBase]:
    """[touches.columns]: the keys and defaults of `upliftlab.touches.TouchColumns` (one
    definition), as a pydantic model that refuses unknown keys."""
    import dataclasses

    from pydantic import create_model

    from upliftlab.touches import TouchColumns

    fields: dict[str, Any] = {f.name: (str, f.default) for f in dataclasses.fields(TouchColumns)}
    return create_model("TouchColumnsSpec", __base__=_TouchColumnsBase, **fields)


TouchColumnsSpec = _touch_columns_spec()


class TouchesSpec(_Model):
    """The campaign's touch log (sent, delivered, opened, clicked, redeemed per channel): the
    report adds the funnel and the effect on the customers actually reached."""

    source: str = Field(min_length=1)
    columns: TouchColumnsSpec = TouchColumnsSpec()
    channels: list[str] | None = None
    """Known channels; a touch on another is an error. None: any channel."""


class ExperimentSpec(_Model):
    """An experiment as written in experiments/NAME.toml."""

    name: SafeName
    version: int = Field(1, ge=1)
    salt: str = Field(min_length=1)
    description: str = ""
    cohort: CohortSpec
    outcome_window_days: int = Field(60, gt=0)
    arms: list[ArmSpec] = Field(min_length=2)
    metrics: MetricsSpec = MetricsSpec()
    covariates: list[str] = ["revenue_365d"]
    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)
    mde: float | None = Field(None, gt=0, lt=1)
    mde_relative: float | None = Field(None, gt=0)
    baseline: BaselineSpec | None = None
    strata: list[str] = ["tier"]
    value_band: ValueBandSpec = ValueBandSpec()
    assignment: AssignmentSpec = AssignmentSpec()
    holdout: HoldoutSpec = HoldoutSpec()
    outcomes: OutcomesSpec = OutcomesSpec()
    # an ISO 4217 code (EUR) or a currency symbol (€); every report shows money in it
    currency: str = "USD"
    touches: TouchesSpec | None = None
    # where the heavy steps run (`--engine` overrides it): not part of the experiment, so not
    # part of its hash (the same arms and statistics on either engine)
    engine: Literal["duckdb", "spark"] = "duckdb"

    _base_dir: Path | None = PrivateAttr(default=None)
    _path: Path | None = PrivateAttr(default=None)

    @field_validator("salt")
    @classmethod
    def _salt(cls, v: str) -> str:
        if not v.strip():
            raise _error("must not be blank")
        return v

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        from upliftlab.money import check_currency

        try:
            return check_currency(v)
        except ValueError as exc:
            raise _error(str(exc)) from None

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: list[ArmSpec]) -> list[ArmSpec]:
        names = [a.name for a in arms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise _error(f"arm names must be distinct, {', '.join(map(repr, dup))} repeated")
        controls = [a.name for a in arms if a.control]
        if len(controls) != 1:
            found = "none" if not controls else ", ".join(map(repr, controls))
            raise _error(f"exactly one arm must have control = true (found {found})")
        total = sum(a.weight for a in arms)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise _error(f"weights sum to {total:.12g}, must sum to 1 (within 1e-9)")
        control = next(a for a in arms if a.control)
        if control.weight <= 0:
            raise _error(f"the control arm {control.name!r} needs a weight > 0")
        if control.capacity is not None:
            raise _error(f"the control arm {control.name!r} cannot have a capacity: customers "
                         "a capped arm cannot take go to control")
        return arms

    @field_validator("strata", "covariates")
    @classmethod
    def _columns(cls, v: list[str]) -> list[str]:
        dup = sorted({c for c in v if v.count(c) > 1})
        if dup:
            raise _error(f"{', '.join(map(repr, dup))} listed twice")
        for c in v:
            if not c.strip():
                raise _error("column names must not be blank")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentSpec":
        if self.mde is not None and self.mde_relative is not None:
            raise _error("give 'mde' (absolute) or 'mde_relative', not both")
        b = self.baseline
        if b is not None and b.rates is not None and self.cohort.transactions is not None:
            tiers = self.cohort.tier_names()
            missing = [t for t in tiers if t not in b.rates]
            if missing:
                raise _error(f"baseline.rates: no rate for tier {', '.join(missing)} (the "
                             f"cohort's tiers are {', '.join(tiers)})")
        if b is not None and b.history_as_of is not None and self.cohort.kind == "at_risk":
            raise _error("baseline.history_as_of measures a dormant cohort's reactivation; for "
                         "kind = 'at_risk' give baseline.rates per risk level")
        if b is not None and b.history_as_of is not None:
            if self.cohort.transactions is None:
                raise _error("baseline.history_as_of needs cohort.transactions (it measures "
                             "reactivation from the transactions)")
            end = b.history_as_of + dt.timedelta(days=self.outcome_window_days)
            if end > self.cohort.as_of:
                raise _error(f"baseline.history_as_of {b.history_as_of} plus the outcome window "
                             f"({self.outcome_window_days} days) ends {end}, after cohort.as_of "
                             f"{self.cohort.as_of}: the baseline must be fully observed before "
                             "the experiment starts")
        return self

    # ---- derived values ---------------------------------------------------------------------
    @property
    def control_arm(self) -> ArmSpec:
        return next(a for a in self.arms if a.control)

    @property
    def treatment_arms(self) -> list[ArmSpec]:
        return [a for a in self.arms if not a.control]

    def outcome_columns(self) -> Any:
        """The outcome source's ColumnMap: [outcomes.columns], else the cohort's."""
        cols = self.outcomes.columns or self.cohort.columns
        return cols.column_map()

    @property
    def path(self) -> Path | None:
        return self._path

    def resolve(self, location: str) -> str:
        """A path of the spec relative to the spec file's folder (`file.duckdb:table` too)."""
        base = self._base_dir
        db, sep, table = location.partition(":")
        if sep and db.endswith(".duckdb"):
            return self.resolve(db) + ":" + table
        p = Path(location).expanduser()
        if not p.is_absolute() and base is not None:
            p = base / p
        return os.path.normpath(str(p))

    def exact_weights(self) -> dict[str, Fraction]:
        """Weights as exact fractions of their decimal text, normalised to sum to exactly 1."""
        raw = {a.name: Fraction(repr(a.weight)) for a in self.arms}
        total = sum(raw.values())
        return {k: v / total for k, v in raw.items()}


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_TEMPLATES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "missing": "required, missing",
    "string_too_short": "must not be empty",
    "too_short": "needs at least {min_length} entries",
}


def _message(err: dict[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        where = _loc(loc[:-1])
        return f"unknown key {loc[-1]!r}" + (f" in {where}" if where else "")
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        text = "must be a safe identifier: lower-case letter, then up to 62 of a-z, 0-9, _"
    elif kind in _TEMPLATES:
        text = _TEMPLATES[kind].format(**{k: f"{v:g}" if isinstance(v, float) else v
                                          for k, v in ctx.items()})
    elif kind == "spec":
        text = err["msg"]
    else:
        text = err.get("msg", "invalid")
        text = text[:1].lower() + text[1:]
    value = err.get("input")
    if kind not in ("missing", "spec", "model_type") and isinstance(value, (int, float, str)):
        text += f" (got {value!r})"
    where = _loc(loc)
    return f"{where}: {text}" if where else text


def parse_spec(data: dict[str, Any], *, source: str = "<spec>",
               base_dir: Path | None = None) -> ExperimentSpec:
    """Validate a spec given as a dict (as read from TOML); errors name `source` and the field."""
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # an unknown key is usually a typo that also causes the "missing" errors: name it first
        first = min(errors, key=lambda e: e.get("type") != "extra_forbidden")
        more = exc.error_count() - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise SpecError(f"{source}: {_message(first)}{suffix}") from None
    spec._base_dir = base_dir
    return spec


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment spec (TOML); relative paths resolve against its folder."""
    import tomllib

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    spec = parse_spec(data, source=str(path), base_dir=p.resolve().parent)
    spec._path = p
    return spec


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, dates as ISO text: the same bytes on every machine."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def randomisation_fields(spec: ExperimentSpec) -> dict[str, Any]:
    """What decides who gets which arm: arms (name, weight, control, capacity, order), salt,
    strata (and the value-band definition when it is a stratum), mode and holdout."""
    fields: dict[str, Any] = {
        "salt": spec.salt,
        "arms": [{"name": a.name, "weight": a.weight, "control": a.control,
                  "capacity": a.capacity} for a in spec.arms],
        "strata": list(spec.strata),
        "mode": spec.assignment.mode,
        "holdout": {"share": spec.holdout.share, "salt": spec.holdout.salt},
    }
    if "value_band" in spec.strata:
        fields["value_band"] = spec.value_band.model_dump(mode="json")
    if "tier" in spec.strata:
        # the tier bounds decide a customer's stratum as much as the value bands do
        fields["tiers"] = spec.cohort.tiers
    return fields


def randomisation_hash(spec: ExperimentSpec) -> str:
    """sha256 of the canonical JSON of `randomisation_fields`."""
    return hashlib.sha256(canonical_json(randomisation_fields(spec)).encode()).hexdigest()


def spec_hash(spec: ExperimentSpec) -> str:
    """sha256 of the canonical JSON of the whole spec (paths as written in the file)."""
    return hashlib.sha256(canonical_json(spec_json(spec)).encode()).hexdigest()


def spec_json(spec: ExperimentSpec) -> dict[str, Any]:
    out = spec.model_dump(mode="json")
    out.pop("engine")
    if spec.cohort.kind == "dormant":
        # the at-risk keys are left out of a dormant cohort, so its hash is what it was before
        for key in ("kind", "model", "min_level", "share"):
            out["cohort"].pop(key)
    return out


def randomisation_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the randomisation fields that differ (for the refusal message)."""
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        if k == "arms":
            a, b = old.get(k) or [], new.get(k) or []
            if [x["name"] for x in a] != [x["name"] for x in b]:
                out.append("arms")
            else:
                for attr in ("weight", "control", "capacity"):
                    if [x.get(attr) for x in a] != [x.get(attr) for x in b]:
                        out.append(attr if attr != "weight" else "weights")
        elif old.get(k) != new.get(k):
            out.append(k)
    return out
