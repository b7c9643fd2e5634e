"""Inputs of every stage: paths, folders, PIL images or arrays -> readable items, and the one batch loop
(unreadable inputs told to `Callbacks.skip`) that embedding, scoring and the baselines share."""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from simsearch.data.callbacks import Callbacks
from simsearch.data.images import (
    ImageError,
    ImageLike,
    as_rgb_array,
    gray_channel,
    input_name,
    iter_readable_images,
    list_image_files,
    read_input,
)
from simsearch.files import file_sha256
from simsearch.runtime import DEFAULT_WORKERS

Prepare = Callable[[np.ndarray], np.ndarray]  # per-image work done on the loader's threads (e.g. resizing)



@dataclass
class Item:
    """An input image once read: where it came from, its pixels (prepared, when the loader was given a
    `prepare` step) and its size as read."""

    path: str | None
    pixels: np.ndarray
    position: int  # index in the input list
    size: tuple[int, int] | None = None  # (height, width) as read, before any preparation
    source: ImageLike | None = None  # the in-memory input (PIL image or array) it was read from

    def __post_init__(self) -> None:
        if self.size is None:
            self.size = tuple(self.pixels.shape[:2])

    def sha256(self) -> str:
        """The file's hash, or the pixels' as read for in-memory images (only adding an exemplar needs it)."""
        if self.path is not None:
            return file_sha256(self.path)
        pixels = as_rgb_array(self.source) if self.source is not None else self.pixels
        return hashlib.sha256(pixels.tobytes()).hexdigest()


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


def _item(source: ImageLike, position: int, pixels: np.ndarray, prepare: Prepare | None,
          size: tuple[int, int] | None = None) -> Item:
    """`size`: the original's (height, width) where the pixels were reduced while decoding."""
    is_path = isinstance(source, (str, Path))
    ready = prepare(pixels) if prepare else pixels
    if isinstance(ready, np.ndarray) and gray_channel(ready) is not None:
        ready = np.ascontiguousarray(ready)  # a gray file read as a view (see iter_items): items keep plain arrays
    return Item(str(source) if is_path else None, ready, position,
                size or tuple(pixels.shape[:2]), None if is_path else source)


def iter_items(images: Sequence[ImageLike], callbacks: Callbacks | None = None,
               prepare: Prepare | None = None) -> Iterator[Item]:
    """Read inputs one by one, in this thread; unreadable files are reported and skipped."""
    # gray files as views of their one channel, here as on the loader's threads: a resize then does a third of
    # the work (_item hands on plain arrays)
    for position, pixels, size in iter_readable_images(images, callbacks, gray_view=True):
        yield _item(images[position], position, pixels, prepare, size)


def read_item(images: Sequence[ImageLike], position: int, prepare: Prepare | None = None) -> Item:
    """Input `position` read (and prepared); an ImageError when it cannot be."""
    pixels, size = read_input(images[position], gray_view=True)
    return _item(images[position], position, pixels, prepare, size)


def iter_loaded(images: Sequence[ImageLike], callbacks: Callbacks | None = None, prepare: Prepare | None = None,
                workers: int = DEFAULT_WORKERS, prefetch: int = 32) -> Iterator[Item]:
    """Like iter_items, with up to `prefetch` inputs read and prepared ahead on `workers` threads; items and
    skips come in input order. workers=0 reads in this thread."""
    if workers <= 0 or len(images) <= 1:
        yield from iter_items(images, callbacks, prepare)
        return
    readable = 0
    pending: deque[tuple[int, Future]] = deque()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simsearch-loader")
    try:
        submitted = 0
        while submitted < len(images) or pending:
            # Keep the window full: decoded images waiting for the network are bounded by `prefetch`.
            while submitted < len(images) and len(pending) < max(prefetch, workers):
                pending.append((submitted, executor.submit(read_item, images, submitted, prepare)))
                submitted += 1
            position, future = pending.popleft()
            try:
                item = future.result()
            except ImageError as error:
                (callbacks or Callbacks()).skip(input_name(images[position], position), str(error))
                continue
            readable += 1
            yield item
    finally:
        # An early stop (an error, or the consumer closing the generator) drops what is queued.
        executor.shutdown(wait=True, cancel_futures=True)
    if not readable:
        raise ImageError(f"none of the {len(images)} inputs could be read as an image")


def iter_batches(images: Sequence[ImageLike], batch_size: int, callbacks: Callbacks | None = None,
                 prepare: Prepare | None = None, workers: int = DEFAULT_WORKERS) -> Iterator[list[Item]]:
    """Readable inputs in lists of up to batch_size items, in input order (unreadable ones go to callbacks.skip),
    read and prepared ahead on `workers` loader threads (0: in this thread)."""
    batch: list[Item] = []
    for item in iter_loaded(images, callbacks, prepare, workers, prefetch=2 * batch_size):
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
