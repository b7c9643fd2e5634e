"""The `simsearch` Typer app. Every command module adds its commands to it the same way, with `@app.command()` at
module level (a group: `app.add_typer`); `simsearch.cli.main` imports those modules, in --help order."""

from __future__ import annotations

import typer

from simsearch.cli.output import OneLineErrorsGroup

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, cls=OneLineErrorsGroup,
                  help="Similarity search for visual inspection: index good parts, score new ones by kNN distance.")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        import simsearch
        try:
            number = version("simsearch")
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = simsearch.__version__
        typer.echo(f"simsearch {number}")
        raise typer.Exit()


@app.callback()
def _root(show_version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                            help="Print the installed version and exit.")) -> None:
    """Similarity search for visual inspection: index good parts, score new ones by kNN distance."""
