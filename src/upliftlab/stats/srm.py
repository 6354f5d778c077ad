"""Sample-ratio mismatch: are the arm counts what the design's weights promise?

Pearson's chi-square of observed counts against expected = total x weight, df = k - 1; flagged
below p = 0.001, the convention of GrowthBook and Eppo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SRMResult:
    chi2: float
    df: int
    p_value: float
    ok: bool
    counts: dict[str, int]
    expected: dict[str, float]


def srm_test(counts: Mapping[str, int], weights: Mapping[str, float],
             threshold: float = SRM_THRESHOLD) -> SRMResult:
    """Chi-square test of `counts` per arm against design `weights` (normalised to sum 1).

    Arms with weight zero are left out (they cannot receive customers by design).
    """
    from scipy.stats import chi2 as chi2_dist

    arms = [a for a in weights if weights[a] > 0]
    total_w = sum(weights[a] for a in arms)
    n = sum(int(counts.get(a, 0)) for a in arms)
    expected = {a: n * weights[a] / total_w for a in arms}
    if n == 0 or len(arms) < 2:
        return SRMResult(0.0, max(len(arms) - 1, 0), 1.0, True,
                         {a: int(counts.get(a, 0)) for a in arms}, expected)
    stat = sum((int(counts.get(a, 0)) - expected[a]) ** 2 / expected[a] for a in arms)
    df = len(arms) - 1
    p = float(chi2_dist.sf(stat, df))
    return SRMResult(float(stat), df, p, p >= threshold,
                     {a: int(counts.get(a, 0)) for a in arms}, expected)
