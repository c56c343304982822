"""The root of the `semzoo` command line.

Each command group lives in its own module under ``zoo.cli`` and exposes ``register(app)``;
commands stay thin and import their heavy machinery (TensorFlow) only when they run, so
``semzoo --help`` is instant.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

import zoo
from zoo._quiet import quiet_cli
from zoo.errors import UserError

# The command modules, in the order `semzoo --help` lists them.
COMMAND_MODULES = (
    "info",
    "simulate",
    "prepare",
    "train",
    "evaluate",
    "publish",
    "zoo_group",
    "serve",
    "enhance",
    "watch",
    "finetune",
    "bench",
)


class SemzooGroup(TyperGroup):
    """Turns errors into one line on stderr: a user's mistake exits 2, a bug exits 1."""

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # registration order, not alphabetical

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort, BrokenPipeError):
            raise  # usage errors and exits: typer prints and exits as usual
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(UserError.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - no traceback reaches a CLI user
            if os.environ.get("SEMZOO_DEBUG"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            typer.echo(
                f"error: internal error ({type(exc).__name__}: {message}); "
                "rerun with SEMZOO_DEBUG=1 for a traceback and please report it",
                err=True,
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    name="semzoo",
    cls=SemzooGroup,
    help="Super-resolution for SEM images: simulate, register, train, publish, serve and enhance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"semzoo {zoo.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Super-resolution for SEM images (de Haan et al., Sci. Rep. 9, 12050, 2019)."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"zoo.cli.{_name}").register(app)


def run() -> None:
    """Console-script entry point."""
    quiet_cli()
    try:
        app(prog_name="semzoo")
    except BrokenPipeError:
        # `semzoo zoo list | head`: the reader left; say nothing more (Python docs' recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
