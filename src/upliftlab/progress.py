"""Progress bars and status lines for long work: shown on a terminal, silent in CI, pipes and
tests. Wraps tqdm so that every long step in upliftlab looks and behaves the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


@contextmanager
def status(desc: str, *, every: float = 0.5) -> Iterator[None]:
    """A status line with the elapsed time, refreshed every `every` seconds on a terminal, for
    a step without a natural count (a model fit, writing files); nothing when quiet. Bars
    opened inside it appear below it."""
    if not progress_enabled():
        yield
        return
    import threading

    from tqdm.auto import tqdm

    line = tqdm(total=None, desc=desc, bar_format="{desc} ... {elapsed}", leave=False,
                file=sys.stderr)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            line.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        line.close()
