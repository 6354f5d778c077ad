"""The `upliftlab` command line: a thin shell over the library.

Each module in this package defines `commands` (a list of click commands); they are found and
registered here. Bad input exits 2 with one line `error: ...`; heavy libraries are imported
inside the commands that need them, so `upliftlab --help` starts fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import NoReturn

import click

from upliftlab import __version__
from upliftlab.errors import UpliftlabError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="upliftlab")
def app() -> None:
    """Experiments and uplift measurement for reactivating dormant customers.

    \b
    The flow: simulate (or bring) transactions -> cohort -> power -> assign -> report
    -> model -> policy. Run `upliftlab COMMAND --help` for each step.
    """


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "commands", []):
            app.add_command(command)


_register()


def fail(message: str) -> NoReturn:
    """Print `error: message` on one line and exit 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def library_error(exc: BaseException) -> str | None:
    """The one-line message for an error of a library at the boundary (DuckDB, the OS, pickle),
    or None for anything else (a bug, which keeps its traceback).

    These are the user's problems the library could not foresee: a disk full, a folder that
    cannot be written, a file changed while it was read, a damaged file. Modules are looked up
    in `sys.modules` so that the CLI imports none of them to start.
    """
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(exc, duckdb.Error):
        from upliftlab.sources import engine_message

        return engine_message(exc)
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror or str(exc)
        return f"{where}: {what}" if where else what
    pickle = sys.modules.get("pickle")
    if pickle is not None and isinstance(exc, pickle.PickleError):
        return f"cannot unpickle: {exc}"
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps user errors to exit code 2 and one line.

    The one boundary of every command: UpliftlabError and the errors of the libraries the
    commands use (`library_error`) become `error: ...` and exit 2; the store's transactions and
    the staged outputs have already rolled back by the time the error gets here.
    """
    try:
        app.main(args=argv, prog_name="upliftlab", standalone_mode=False)
    except UpliftlabError as exc:
        from upliftlab.cli._params import FLAGS

        fail(" ".join(str(exc.named(FLAGS)).split("\n")))
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: unknown option, missing argument
        fail(" ".join(exc.format_message().split("\n")))
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # `upliftlab ... | head`
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - filtered by library_error, else re-raised
        message = library_error(exc)
        if message is None:
            raise
        fail(" ".join(message.split("\n")))
