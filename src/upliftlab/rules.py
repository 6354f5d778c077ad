"""The rules the spec and the stages share that need no validation library: the holdout arm's
label and the dormancy tiers (imported by the cohort without loading pydantic, which spec.py does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from upliftlab.errors import SpecError

# arm label of customers in the global holdout; no arm may use it
HOLDOUT_ARM = "holdout"

# ------------------------------------------------------------------------------------- tiers
# The one rule for dormancy tiers, for a spec's `tiers` and `upliftlab cohort --tiers` alike.

DEFAULT_TIERS_TEXT = "short=180,mid=365,long"
TIER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]*$")


@dataclass(frozen=True)
class Tier:
    """A dormancy tier: customers with lower <= days_since_last < upper (upper None: open)."""

    name: str
    lower: int
    upper: int | None

    def __str__(self) -> str:
        return f"{self.name} [{self.lower}, {'inf' if self.upper is None else self.upper})"


def check_dormant_after(dormant_after: Any) -> None:
    """Refuse a dormant-after that is not a whole number of days >= 1 (SpecError)."""
    if isinstance(dormant_after, bool) or not isinstance(dormant_after, int) or dormant_after < 1:
        raise SpecError(f"dormant-after must be a whole number of days >= 1, got {dormant_after!r}")


def parse_tiers(text: str, dormant_after: int = 90) -> tuple[Tier, ...]:
    """Tiers from ``"short=180,mid=365,long"``: names with exclusive upper bounds in days.

    The first tier starts at `dormant_after`, each next one at the previous bound, the last one
    has no bound. Raises SpecError for bad syntax, duplicate names or bounds that do not
    increase from `dormant_after`.
    """
    check_dormant_after(dormant_after)
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"tiers {text!r}: empty (expected e.g. {DEFAULT_TIERS_TEXT!r})")
    items = [item.strip() for item in text.split(",")]
    tiers: list[Tier] = []
    lower = dormant_after
    for i, item in enumerate(items):
        last = i == len(items) - 1
        name, sep, bound = (part.strip() for part in item.partition("="))
        if not name or not TIER_NAME.match(name):
            raise SpecError(f"tiers {text!r}: bad tier name {name!r} in {item!r} "
                            f"(expected e.g. {DEFAULT_TIERS_TEXT!r})")
        if last:
            if sep:
                raise SpecError(f"tiers {text!r}: the last tier {name!r} must be open-ended "
                                f"(write {name!r} without '=DAYS')")
            tiers.append(Tier(name, lower, None))
            break
        if not sep:
            raise SpecError(f"tiers {text!r}: tier {name!r} needs an upper bound in days "
                            f"(e.g. {name}=180); only the last tier is open-ended")
        if not re.fullmatch(r"\d+", bound):
            raise SpecError(f"tiers {text!r}: bound {bound!r} of tier {name!r} is not a whole "
                            "number of days")
        upper = int(bound)
        if upper <= lower:
            what = (f"dormant-after ({dormant_after} days)" if i == 0
                    else f"the previous bound ({lower})")
            raise SpecError(f"tiers {text!r}: bound {upper} of tier {name!r} must be greater "
                            f"than {what}")
        tiers.append(Tier(name, lower, upper))
        lower = upper
    return check_tiers(tuple(tiers), dormant_after, text)


def check_tiers(tiers: tuple[Tier, ...], dormant_after: int, where: str = "") -> tuple[Tier, ...]:
    """`tiers` if they are distinct, contiguous from `dormant_after` and open-ended at the end;
    else SpecError (`where`: the text they were read from, for the message)."""
    label = f"tiers {where!r}" if where else "tiers"
    if not tiers:
        raise SpecError(f"{label}: no tiers")
    names = [t.name for t in tiers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{label}: duplicate tier name {dupes[0]!r}")
    if tiers[0].lower != dormant_after:
        raise SpecError(f"{label}: the first tier starts at {tiers[0].lower} days, but "
                        f"dormant-after is {dormant_after}")
    for prev, nxt in zip(tiers, tiers[1:]):
        if prev.upper is None or nxt.lower != prev.upper:
            raise SpecError(f"{label}: tier {nxt.name!r} must start where {prev.name!r} ends")
    for t in tiers:
        if t.upper is not None and t.upper <= t.lower:
            raise SpecError(f"{label}: tier {t.name!r} has upper bound {t.upper} <= {t.lower}")
    if tiers[-1].upper is not None:
        raise SpecError(f"{label}: the last tier {tiers[-1].name!r} must be open-ended")
    return tiers
