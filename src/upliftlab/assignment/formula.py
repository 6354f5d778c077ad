"""The assignment formula, pure: the salted md5 hash of an id, the design (arms, weights, mode,
strata, holdout), capacity and the per-stratum quotas (docs/assignment.md). No SQL, no I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from upliftlab.errors import SpecError
from upliftlab.rules import HOLDOUT_ARM

if TYPE_CHECKING:
    from upliftlab.spec import ExperimentSpec

TWO60 = 1 << 60
METHOD_VERSION = "md5-60/v1"


# ---- the formula ----------------------------------------------------------------------------
def hash_int(salt: str, customer_id: object) -> int:
    """Python reference of `hash_sql` for one id (its decimal or text form)."""
    return int(hashlib.md5(f"{salt}:{customer_id}".encode()).hexdigest()[:15], 16)


def unit_hash(salt: str, customer_id: object) -> float:
    """Python reference of u = hash_int / 2^60."""
    return hash_int(salt, customer_id) / TWO60


def thresholds(weights: Sequence[float]) -> list[int]:
    """Integer cut points T_a = ceil(C_a * 2^60) of the cumulative weights C_a (floats, summed in
    arm order): `u < C_a` and `hash < T_a` are the same test, and the integer one has no rounding.
    """
    return [math.ceil(Fraction(c) * TWO60) for c in accumulate(float(w) for w in weights)]


def simple_arm(salt: str, customer_id: object, names: Sequence[str],
               weights: Sequence[float]) -> str:
    """Python reference of simple mode: the first arm whose cumulative weight exceeds u."""
    x = hash_int(salt, customer_id)
    last = [n for n, w in zip(names, weights) if w > 0][-1]
    for name, w, t in zip(names, weights, thresholds(weights)):
        if w > 0 and x < t:
            return name
    return last


def holdout_threshold(share: float) -> int:
    """Customers whose holdout hash is below this integer (u_h < share) are the holdout."""
    return math.ceil(Fraction(share) * TWO60)


def hex_key(x: int) -> str:
    """A text key that compares with md5 hex text h as x compares with h's 60-bit integer:
    h < hex_key(T) exactly when int(h[:15], 16) < T.

    Fixed-width lower-case hex orders like the numbers it writes, and h (32 digits) is greater
    than its own 15-digit prefix; so the formula runs on the md5 text without converting it to an
    integer (a third of the cost of the md5 itself). 'g' sorts after every hex digit.
    """
    if x <= 0:
        return ""
    if x >= TWO60:
        return "g"
    return format(x, "015x")


# ---- the design -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    control: bool = False
    capacity: int | None = None


@dataclass(frozen=True)
class Design:
    """What decides the arms: salt, arms (in order), mode, strata columns and the holdout."""

    salt: str
    arms: tuple[Arm, ...]
    mode: str = "stratified"
    strata: tuple[str, ...] = ()
    holdout_share: float = 0.0
    holdout_salt: str = "global-holdout"
    # the experiment's name for reports (not part of the randomisation); default: the salt
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.salt:
            raise SpecError("design: salt must not be empty")
        if self.mode not in ("simple", "stratified"):
            raise SpecError(f"design: mode must be 'simple' or 'stratified', got {self.mode!r}")
        if len(self.arms) < 2:
            raise SpecError("design: needs at least two arms")
        if sum(a.control for a in self.arms) != 1:
            raise SpecError("design: exactly one arm must be the control")
        if any(a.weight < 0 for a in self.arms) or abs(sum(a.weight for a in self.arms) - 1) > 1e-9:
            raise SpecError("design: weights must be >= 0 and sum to 1")
        if len({a.name for a in self.arms}) != len(self.arms) or any(
                a.name == HOLDOUT_ARM for a in self.arms):
            raise SpecError("design: arm names must be distinct and not 'holdout'")
        if not 0 <= self.holdout_share <= 0.5:
            raise SpecError("design: holdout share must be in [0, 0.5]")

    @classmethod
    def from_spec(cls, spec: "ExperimentSpec") -> "Design":
        return cls(salt=spec.salt,
                   arms=tuple(Arm(a.name, a.weight, a.control, a.capacity) for a in spec.arms),
                   mode=spec.assignment.mode, strata=tuple(spec.strata),
                   holdout_share=spec.holdout.share, holdout_salt=spec.holdout.salt,
                   name=spec.name)

    @classmethod
    def of(cls, salt: str, weights: Mapping[str, float], *, control: str | None = None,
           capacity: Mapping[str, int] | None = None, **kwargs: Any) -> "Design":
        """A design from {arm: weight}; the control is `control` or the first arm."""
        control = control or next(iter(weights))
        capacity = capacity or {}
        return cls(salt=salt, arms=tuple(Arm(n, w, n == control, capacity.get(n))
                                         for n, w in weights.items()), **kwargs)

    @property
    def control(self) -> Arm:
        return next(a for a in self.arms if a.control)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.arms]

    def exact_weights(self) -> dict[str, Fraction]:
        """Weights as exact fractions of their decimal text, normalised to sum to exactly 1."""
        raw = {a.name: Fraction(repr(float(a.weight))) for a in self.arms}
        total = sum(raw.values())
        return {k: v / total for k, v in raw.items()}


@dataclass(frozen=True)
class ArmQuota:
    arm: str
    weight: float
    effective_weight: float
    capacity: int | None
    existing: int
    assigned: int


@dataclass(frozen=True)
class AssignmentQuotas:
    """What one assignment run did: pool size, holdout, and per arm the weights and counts."""

    mode: str
    n_pool: int
    n_holdout: int
    arms: tuple[ArmQuota, ...] = field(default_factory=tuple)

    @property
    def n_assigned(self) -> int:
        return self.n_pool - self.n_holdout

    def effective_weights(self) -> dict[str, float]:
        return {a.arm: a.effective_weight for a in self.arms}


# ---- capacity and quotas ----------------------------------------------------------------------
def capped_weights(design: Design, n: int, existing: Mapping[str, int] | None = None
                   ) -> dict[str, Fraction]:
    """Effective weights when capacities bind: w_a' = min(w_a, remaining_a / n), excess to control.

    Why control and not spread over the other treatments: control contacts cost nothing, so the
    other arms keep exactly the contacts (and the budget) they were designed with, and every
    comparison against control gains power from the larger control arm.
    """
    existing = existing or {}
    w = design.exact_weights()
    out = dict(w)
    excess = Fraction(0)
    for arm in design.arms:
        if arm.capacity is None:
            continue
        remaining = max(arm.capacity - int(existing.get(arm.name, 0)), 0)
        if n > 0 and w[arm.name] * n > remaining:
            out[arm.name] = Fraction(remaining, n)
            excess += w[arm.name] - out[arm.name]
    out[design.control.name] += excess
    return out


def stratum_phase(salt: str, stratum: str) -> Fraction:
    """The per-stratum rounding offset in [0, 1) (a hash, so no arm is favoured by rounding)."""
    return Fraction(hash_int(salt, f"stratum:{stratum}"), TWO60)


def cumulative_quotas(weights: Sequence[Fraction], n: int, phase: Fraction) -> list[int]:
    """Systematic rounding: Q_a = floor(C_a * n + phase), Q_last = n. Arm a gets Q_a - Q_{a-1},
    which is floor or ceil of w_a * n (so within 1 of it), and w_a * n on average over phases."""
    cum = list(accumulate(weights))
    return [math.floor(c * n + phase) for c in cum[:-1]] + [n]


def fit_capacity(design: Design, weights: dict[str, Fraction], sizes: Mapping[str, int],
                  remaining: Mapping[str, int]) -> tuple[dict[str, Fraction], dict[str, list[int]]]:
    """Quotas per stratum whose per-arm totals never exceed the remaining capacity.

    Rounding up in many strata could overshoot a capacity by up to one per stratum, so a capped
    arm's weight is lowered by the overshoot (and given to control) until the totals fit.
    """
    names = design.names
    control = design.control.name
    n = sum(sizes.values())
    w = dict(weights)
    for _ in range(64):
        quotas = {s: cumulative_quotas([w[a] for a in names], m, stratum_phase(design.salt, s))
                  for s, m in sizes.items()}
        over = {}
        for i, a in enumerate(names):
            if a in remaining:
                total = sum(q[i] - (q[i - 1] if i else 0) for q in quotas.values())
                if total > remaining[a]:
                    over[a] = total - remaining[a]
        if not over:
            return w, quotas
        for a, extra in over.items():
            cut = min(w[a], Fraction(extra, max(n, 1)))
            w[a] -= cut
            w[control] += cut
    # unreachable in practice; a weight of (remaining - strata) / n can never overshoot
    for a in remaining:
        cut = w[a] - Fraction(max(remaining[a] - len(sizes), 0), max(n, 1))
        if cut > 0:
            w[a] -= cut
            w[control] += cut
    quotas = {s: cumulative_quotas([w[a] for a in names], m, stratum_phase(design.salt, s))
              for s, m in sizes.items()}
    return w, quotas
