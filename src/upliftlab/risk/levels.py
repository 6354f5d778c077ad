"""Risk levels high / medium / low: by probability thresholds, or by shares of the customers
(the top `high` share is high, the next `medium` share medium), turned into thresholds once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from upliftlab.errors import InputError

LEVELS = ("high", "medium", "low")


@dataclass(frozen=True)
class RiskLevels:
    """risk >= high: "high"; risk >= medium: "medium"; else "low" (0 <= medium <= high <= 1)."""

    high: float
    medium: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.medium <= self.high <= 1.0):
            raise InputError(f"risk levels: need 0 <= medium ({self.medium}) <= high "
                             f"({self.high}) <= 1")

    @classmethod
    def from_shares(cls, risk: Any, high: float, medium: float) -> "RiskLevels":
        """Thresholds that put the top `high` share of `risk` in high and the next `medium`."""
        if not (0 < high and 0 <= medium and high + medium < 1):
            raise InputError(f"level shares: need high > 0, medium >= 0 and high + medium < 1, "
                             f"got high={high}, medium={medium}")
        r = np.asarray(risk, dtype=np.float64)
        if len(r) == 0:
            raise InputError("level shares: no customers to take shares of")
        t_high, t_med = np.quantile(r, [1 - high, 1 - high - medium])
        return cls(float(t_high), float(t_med))

    def sql(self, column: str) -> str:
        """The level of `column` as a SQL CASE."""
        return (f"CASE WHEN {column} >= {self.high!r} THEN 'high' WHEN {column} >= "
                f"{self.medium!r} THEN 'medium' ELSE 'low' END")

    def label(self, risk: Any) -> np.ndarray:
        r = np.asarray(risk, dtype=np.float64)
        return np.where(r >= self.high, "high", np.where(r >= self.medium, "medium", "low"))

    def to_dict(self) -> dict[str, float]:
        return {"high": self.high, "medium": self.medium}


def parse_levels(text: str, what: str = "levels") -> dict[str, float]:
    """``"high=0.5,medium=0.2"`` -> {"high": 0.5, "medium": 0.2}."""
    out: dict[str, float] = {}
    for part in str(text).split(","):
        name, sep, value = (x.strip() for x in part.partition("="))
        try:
            if not sep or name not in ("high", "medium") or name in out:
                raise ValueError
            out[name] = float(value)
        except ValueError:
            raise InputError(f"{what} {text!r}: expected high=X,medium=Y") from None
    if set(out) != {"high", "medium"}:
        raise InputError(f"{what} {text!r}: expected high=X,medium=Y")
    return out


__all__ = ["LEVELS", "RiskLevels", "parse_levels"]
