"""Inputs of every stage: paths, folders, PIL images or arrays -> readable items, and the one batch loop
with progress and skip callbacks that embedding, scoring and the baselines share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from simsearch.data.images import ImageLike, iter_readable_images, list_image_files
from simsearch.files import file_sha256

Progress = Callable[[int], None]  # called with how many more images are done
OnSkip = Callable[[str, str], None]  # called with (path, reason) for an unreadable file


@dataclass
class Item:
    """An input image once read: where it came from and its pixels."""

    path: str | None
    pixels: np.ndarray
    position: int  # index in the input list

    def sha256(self) -> str:
        """The file's hash, or the pixels' for in-memory images (only adding an exemplar needs it)."""
        return file_sha256(self.path) if self.path is not None else hashlib.sha256(self.pixels.tobytes()).hexdigest()


def expand_inputs(images: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """A path, folder, PIL image, array or a list of them -> a flat list (folders walked recursively)."""
    if isinstance(images, (str, Path, Image.Image, np.ndarray)):
        images = [images]
    expanded: list[ImageLike] = []
    for image in images:
        if isinstance(image, (str, Path)):
            expanded.extend(list_image_files([image]))
        else:
            expanded.append(image)
    return expanded


def iter_items(images: Sequence[ImageLike], on_skip: OnSkip | None = None) -> Iterator[Item]:
    """Read inputs one by one; unreadable files are reported and skipped."""
    for position, pixels in iter_readable_images(images, on_skip):
        source = images[position]
        yield Item(str(source) if isinstance(source, (str, Path)) else None, pixels, position)



def iter_batches(images: Sequence[ImageLike], batch_size: int, on_skip: OnSkip | None = None) -> Iterator[list[Item]]:
    """Readable inputs in lists of up to batch_size items (unreadable ones go to on_skip)."""
    batch: list[Item] = []
    for item in iter_items(images, on_skip):
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
