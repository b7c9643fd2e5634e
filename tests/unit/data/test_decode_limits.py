"""Decoding untrusted images: 16-bit without float64 copies, large images reduced on decode within a memory
budget, the pixel cap from the header without process-wide state, EXIF orientation, first-frame notes,
and the limits on defect types."""

from __future__ import annotations

import concurrent.futures
import io
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image

from simsearch.data.datasets import MAX_NAME_LENGTH, check_defect_type, normalise_label
from simsearch.data.images import DecodeBudget, decode_image, read_image, to_rgb_array
from simsearch.errors import InputError


def _png(array: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def test_sixteen_bit_stretch_uses_no_float64_copies():
    values = (np.arange(1500 * 1500, dtype=np.uint32) % 4000 + 1000).astype(np.uint16).reshape(1500, 1500)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    tracemalloc.start()
    try:
        rgb = to_rgb_array(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the 16-bit copy, one byte of gray and three of RGB per pixel, and a 64 K table; float64 copies are 16
    assert peak < 1500 * 1500 * 7
    assert rgb.dtype == np.uint8 and rgb[..., 0].min() == 0 and rgb[..., 0].max() == 255
    expected = np.round((values.astype(np.float64) - 1000) / 3999 * 255).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected)


def test_large_image_is_reduced_on_decode_and_keeps_its_original_size():
    values = np.zeros((1000, 3000), dtype=np.uint16)
    values[:, 1500:] = 60000
    decoded = decode_image(_png(values), "wide.png", max_side=512)
    assert max(decoded.pixels.shape[:2]) <= 512 and decoded.original_size == (1000, 3000)
    assert decoded.scale == pytest.approx((1000 / decoded.pixels.shape[0], 3000 / decoded.pixels.shape[1]))
    assert decoded.pixels[:, -1, 0].min() == 255 and decoded.pixels[:, 0, 0].max() == 0
    jpeg = io.BytesIO()
    Image.fromarray(np.full((1600, 1200, 3), 128, np.uint8)).save(jpeg, format="JPEG")
    jpeg.seek(0)
    decoded = decode_image(jpeg, "big.jpg", max_side=300)  # draft mode: decoded at 1/8 scale by the codec
    assert max(decoded.pixels.shape[:2]) <= 300 and decoded.original_size == (1600, 1200)


def test_decode_budget_holds_back_a_decode_that_does_not_fit():
    budget = DecodeBudget(100)
    entered, release = threading.Event(), threading.Event()

    def second() -> None:
        with budget.hold(60):
            entered.set()
            release.wait(30)

    with budget.hold(60):
        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(timeout=0.3)
        assert not entered.is_set() and budget.used == 60  # 60 + 60 does not fit in 100
    assert entered.wait(30) and budget.used == 60
    release.set()
    waiter.join(timeout=30)
    assert budget.used == 0
    with budget.hold(1000):  # larger than the whole budget: runs alone, never deadlocks
        assert budget.used == 100


def test_pixel_cap_touches_no_process_wide_state(monkeypatch):
    # 90 MP is under simsearch's 100 MP cap and over Pillow's own warning limit: concurrent decodes used to
    # flip the process-wide warnings filter and refuse each other's images.
    calls = []
    monkeypatch.setattr(warnings, "simplefilter", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(warnings, "catch_warnings", lambda *a, **k: calls.append(a))
    data = _png(np.zeros((9000, 10000), dtype=np.uint8)).getvalue()
    max_pixels = Image.MAX_IMAGE_PIXELS

    def decode(_: int):
        return decode_image(io.BytesIO(data), "flat.png", max_side=256).original_size

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(decode, range(4))) == [(9000, 10000)] * 4
    assert calls == [] and Image.MAX_IMAGE_PIXELS == max_pixels


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:10, :10] = (255, 0, 0)  # red in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show rotated 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
    upright = read_image(path)
    assert upright.shape == (40, 20, 3)
    assert upright[:10, -10:, 0].mean() > 200 and upright[:10, :10, 0].mean() < 50  # now top-right


def test_animated_gif_scores_its_first_frame_and_says_so(tmp_path, caplog):
    frames = [Image.fromarray(np.full((8, 8), value, np.uint8)) for value in (10, 200)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    decoded = decode_image(path, "anim.gif")
    assert decoded.notes and "first" in decoded.notes[0]
    with caplog.at_level("WARNING", logger="simsearch"):
        read_image(path)
    assert "only the first is scored" in caplog.text


def test_defect_type_limits():
    assert check_defect_type("  scratch ") == "scratch" and check_defect_type("  ") is None
    assert check_defect_type("[/]") == "[/]"  # markup is text: the faces escape it
    for bad in ("x" * (MAX_NAME_LENGTH + 1), "nul\x00byte", "line\nbreak", "esc\x1b[31m", "rtl\u202eevil"):
        with pytest.raises(InputError) as raised:
            check_defect_type(bad, parameter="type")
        assert raised.value.parameter == "type" and len(str(raised.value)) < 200
    with pytest.raises(InputError) as raised:
        normalise_label("g" * 100_000)
    assert len(str(raised.value)) < 200


def test_a_decode_over_the_per_image_memory_cap_is_refused_with_the_fix(tmp_path, monkeypatch):
    """Issue 29 item 17: a PNG is decoded whole before it is reduced; one whose decode would hold more than
    MAX_DECODE_BYTES (300 MB by default) is refused in one line naming what to do, never decoded."""
    from PIL import Image

    from simsearch.data import images

    path = tmp_path / "large.png"
    Image.new("RGB", (1000, 800)).save(path)
    monkeypatch.setattr(images, "MAX_DECODE_BYTES", 2 * 2 ** 20)  # 1000x800 RGB: about 9 MB at its peak
    with pytest.raises(images.ImageTooLargeError, match="over the 2 MB one decode may use") as caught:
        images.read_input(path)
    assert "SIMSEARCH_MAX_DECODE_MB" in caught.value.hint and "\n" not in str(caught.value)
    monkeypatch.setattr(images, "MAX_DECODE_BYTES", 16 * 2 ** 20)
    assert images.read_input(path)[0].shape == (800, 1000, 3)
