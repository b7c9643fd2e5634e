"""The loader behind every batch loop: order, per-item skips, the in-thread path, early stops."""

import hashlib
import random
import threading
import time

import numpy as np
import pytest
from PIL import Image

from simsearch.data.callbacks import Callbacks
from simsearch.data.images import ImageError
from simsearch.data.inputs import iter_batches, iter_loaded


def _write(folder, count, broken=()):
    paths = []
    for number in range(count):
        path = folder / f"{number:03d}.png"
        if number in broken:
            path.write_bytes(b"not an image")
        else:
            Image.fromarray(np.full((8 + number, 10, 3), number, np.uint8)).save(path)
        paths.append(path)
    return paths


def _jittered(pixels):
    time.sleep(random.uniform(0, 0.01))  # later inputs often finish first on the threads
    return pixels[:4, :4]


@pytest.mark.parametrize("workers", [0, 1, 4])
def test_items_come_in_input_order_with_their_size_as_read(tmp_path, workers):
    paths = _write(tmp_path, 30)
    batches = list(iter_batches(paths, 7, prepare=_jittered, workers=workers))
    assert [len(b) for b in batches] == [7, 7, 7, 7, 2]
    items = [item for batch in batches for item in batch]
    assert [item.position for item in items] == list(range(30))
    assert [item.path for item in items] == [str(p) for p in paths]
    assert all(item.pixels[0, 0, 0] == item.position for item in items)
    assert [item.size for item in items] == [(8 + n, 10) for n in range(30)]  # before `prepare` shrank them
    assert all(item.pixels.shape == (4, 4, 3) for item in items)


@pytest.mark.parametrize("workers", [0, 3])
def test_unreadable_inputs_are_reported_one_by_one_in_order(tmp_path, workers):
    paths = _write(tmp_path, 12, broken={2, 3, 9})
    skipped = []
    items = list(iter_loaded(paths, Callbacks(skip=lambda name, reason: skipped.append((name, reason))),
                             workers=workers))
    assert [item.position for item in items] == [0, 1, 4, 5, 6, 7, 8, 10, 11]
    assert [name for name, _ in skipped] == [str(paths[n]) for n in (2, 3, 9)]
    assert all("not a readable image" in reason for _, reason in skipped)


@pytest.mark.parametrize("workers", [0, 3])
def test_nothing_readable_is_an_error_and_so_is_one_unreadable_input(tmp_path, workers):
    paths = _write(tmp_path, 3, broken={0, 1, 2})
    with pytest.raises(ImageError, match="none of the 3 inputs"):
        list(iter_loaded(paths, workers=workers))
    with pytest.raises(ImageError, match="not a readable image"):
        list(iter_loaded(paths[:1], workers=workers))


def test_in_memory_inputs_are_skipped_by_position_and_hash_as_read(tmp_path):
    good = np.full((6, 6, 3), 9, np.uint8)
    skipped = []
    items = list(iter_loaded([good, np.zeros((2, 2, 2, 2)), Image.fromarray(good)],
                             Callbacks(skip=lambda name, reason: skipped.append(name)), prepare=lambda p: p[:1, :1],
                             workers=2))
    assert [name for name in skipped] == ["input 1"]
    assert items[0].path is None and items[0].pixels.shape == (1, 1, 3)
    # the hash is the image's as read, not the prepared pixels': an exemplar keeps one identity
    assert items[0].sha256() == items[1].sha256() != hashlib.sha256(items[0].pixels.tobytes()).hexdigest()


def test_workers_zero_reads_in_the_callers_thread_and_workers_on_loader_threads(tmp_path):
    paths = _write(tmp_path, 6)
    threads = []

    def record(pixels):
        threads.append(threading.current_thread().name)
        return pixels

    list(iter_loaded(paths, prepare=record, workers=0))
    assert set(threads) == {threading.current_thread().name}
    threads.clear()
    list(iter_loaded(paths, prepare=record, workers=2))
    assert threads and all(name.startswith("simsearch-loader") for name in threads)


def test_reading_ahead_is_bounded_and_stops_with_the_consumer(tmp_path):
    paths = _write(tmp_path, 40)
    started = []
    loader = iter_loaded(paths, prepare=lambda p: started.append(1) or p, workers=2, prefetch=5)
    next(loader)
    time.sleep(0.2)
    assert len(started) <= 6  # the window plus the item handed out, not the whole input
    loader.close()  # returns once the threads are done; nothing more is read after
    count = len(started)
    time.sleep(0.1)
    assert len(started) == count and count < 40
    assert not [t for t in threading.enumerate() if t.name.startswith("simsearch-loader")]


def test_a_failure_other_than_an_unreadable_image_propagates(tmp_path):
    paths = _write(tmp_path, 10)

    def fail_on_fifth(pixels):
        if pixels[0, 0, 0] == 4:
            raise RuntimeError("prepare broke")
        return pixels

    with pytest.raises(RuntimeError, match="prepare broke"):
        list(iter_loaded(paths, prepare=fail_on_fifth, workers=3))


@pytest.mark.parametrize("mode", ["L", "1", "I;16"])
def test_gray_files_resize_once_on_the_loader_with_the_same_pixels(tmp_path, mode):
    """A gray file is read as a view of its one channel, so the loader's resize runs on one channel, not
    three (on the loader's threads or not): the prepared pixels are the ones an RGB read gives, and items hold
    plain writable arrays."""
    from simsearch.data.images import gray_channel, read_image
    from simsearch.data.transforms import resize_rgb

    rng = np.random.default_rng(0)
    values = rng.integers(0, 4096 if mode == "I;16" else 256, (300, 410))
    if mode == "I;16":
        image = Image.fromarray(values.astype(np.uint16))
    else:
        image = Image.fromarray(values.astype(np.uint8)).convert(mode)
    path = tmp_path / "gray.png"
    image.save(path)
    view = read_image(path, gray_view=True)
    plain = read_image(path)
    assert gray_channel(view) is not None and not view.flags.writeable and gray_channel(plain) is None
    np.testing.assert_array_equal(view, plain)
    np.testing.assert_array_equal(resize_rgb(view, 64), resize_rgb(plain, 64))
    for workers in (2, 0):  # on the loader's threads, and in this thread (one image, or workers=0)
        views = []

        def prepare(pixels, views=views):
            views.append(gray_channel(pixels) is not None)
            return resize_rgb(pixels, 64)

        [item] = [i for batch in iter_batches([path, path], 2, prepare=prepare, workers=workers)
                  for i in batch][:1]
        assert views == [True, True]  # the resize saw the one channel
        np.testing.assert_array_equal(item.pixels, resize_rgb(plain, 64))
        assert item.size == (300, 410)
        [unprepared] = list(iter_batches([path, path], 2, workers=workers))[0][:1]
        assert unprepared.pixels.flags.writeable and gray_channel(unprepared.pixels) is None
        np.testing.assert_array_equal(unprepared.pixels, plain)
