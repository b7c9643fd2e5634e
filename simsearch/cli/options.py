"""Options shared by several commands, declared once."""

from __future__ import annotations

import typer

AspectOption = typer.Option("keep", "--aspect", help="keep: the images' aspect ratio (--image-size is the short "
                            "side; 1024x768 pictures run at 224x304); square: squash them to --image-size.")
