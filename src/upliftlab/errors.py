"""Errors a user can fix: bad input, a bad spec, a store in the wrong state.

The CLI turns every UpliftlabError into one line `error: <message>` and exit code 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UpliftlabError(Exception):
    """Bad input or state that the user can fix; the message says what and where."""


class InputError(UpliftlabError):
    """A data file or frame is missing, unreadable, or has wrong columns or values."""


class SpecError(UpliftlabError):
    """An experiment spec is invalid (unknown key, wrong type, inconsistent arms, ...)."""


class StoreError(UpliftlabError):
    """The store refuses the operation (locked, or it would change a running experiment)."""
