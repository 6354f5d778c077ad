"""Progress bars for long work: shown on a terminal, silent in CI, pipes and tests.

Wraps tqdm so that every long loop in upliftlab looks and behaves the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any


def progress_enabled() -> bool:
    """True when stderr is a terminal and we are not in CI (CI=true, or UPLIFTLAB_QUIET set)."""
    if os.environ.get("CI") or os.environ.get("UPLIFTLAB_QUIET"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None,
             desc: str | None = None, unit: str = "it") -> Any:
    """A tqdm bar over `iterable` (or a manual bar when None) that disappears when quiet."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False,
                disable=not progress_enabled(), file=sys.stderr)
