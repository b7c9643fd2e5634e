"""`simsearch verify IDX --weights FILE`: check an index's compiled copy and vectors against trusted weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from simsearch.cli.app import app
from simsearch.cli.options import JsonObjectOption
from simsearch.cli.output import EXIT_INDEX, chosen_index, console, err_console, handle_errors


@app.command()
def verify(
    folder: Optional[Path] = typer.Argument(None, help="Index folder (default artifacts/index)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="The backbone weights file you trust (the "
                                           "one the index was built from, kept elsewhere)."),
    images: int = typer.Option(4, "--images", min=2, max=64, help="Images both networks embed: the index's "
                               "exemplars where their files are there, else seeded synthetic ones."),
    sign: bool = typer.Option(False, "--sign", help="Once verified, sign the folder with the key "
                              "SIMSEARCH_SIGNING_KEY_FILE names (see docs/usage.md, Trust)."),
    as_json: bool = JsonObjectOption,
) -> None:
    """Check that the index runs the network your weights file gives: its compiled copy and stored vectors
    against torch's (exit 3 and what differs, otherwise)."""
    with handle_errors():
        from simsearch.index.trust import verify_index

        index = chosen_index(folder)
        result = verify_index(index, weights=weights, images=images, sign=sign)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            for check in result.checks:
                mark = "ok" if check.ok else "DIFFERS"
                console.print(f"{mark:7} {escape(check.name)}: {escape(check.detail)}", highlight=False,
                              soft_wrap=True)
            if result.ok:
                console.print(f"verified {escape(str(index))}" + (", and signed" if result.signed else ""),
                              highlight=False, soft_wrap=True)
            else:
                names = ", ".join(check.name for check in result.differences)
                err_console.print(f"{escape(str(index))} is not what the trusted weights give: {escape(names)} "
                                  "differ(s); do not use it: rebuild it from trusted files", highlight=False,
                                  soft_wrap=True)
        if not result.ok:
            raise typer.Exit(EXIT_INDEX)
