"""Errors a user can fix: bad input, a bad spec, a store in the wrong state.

The CLI turns every UpliftlabError into one line `error: <message>` and exit code 2; any other
exception is a bug and keeps its traceback. A library error names the parameters it is about
(`params`, written `{name}` in its message); the CLI renames them to its flags (`named`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class UpliftlabError(Exception):
    """Bad input or state that the user can fix; the message says what and where.

    `params`: the names of the parameters the message is about, each written `{name}` in it and
    shown as the name itself (`str(error)`) unless renamed with `named`.
    """

    def __init__(self, message: str = "", *, params: Iterable[str] = ()) -> None:
        self.template = message
        self.params = tuple(params)
        super().__init__(_fill(message, {p: p for p in self.params}))

    def named(self, names: Mapping[str, str]) -> "UpliftlabError":
        """The same error with its parameters called as `names` says (e.g. the CLI's flags)."""
        return type(self)(_fill(self.template, {p: names.get(p, p) for p in self.params}))


def param_names(what: str) -> list[str]:
    """[name] when `what` is a parameter written `{name}` (to be given as `params`), else []."""
    return [what[1:-1]] if what.startswith("{") and what.endswith("}") else []


def _fill(message: str, names: Mapping[str, str]) -> str:
    for param, name in names.items():
        message = message.replace("{" + param + "}", name)
    return message


class InputError(UpliftlabError):
    """A data file or frame is missing, unreadable, or has wrong columns or values."""


class SpecError(UpliftlabError):
    """An experiment spec is invalid (unknown key, wrong type, inconsistent arms, ...)."""


class StoreError(UpliftlabError):
    """The store refuses the operation (locked, or it would change a running experiment)."""
