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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps user errors to exit code 2 and one line."""
    try:
        app.main(args=argv, prog_name="upliftlab", standalone_mode=False)
    except UpliftlabError as exc:
        fail(" ".join(str(exc).split("\n")))
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
