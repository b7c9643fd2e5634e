"""Input sizes that keep an image's aspect ratio (issue 26 item 6): the size rule, the embedder, the compiled
copy, build-index and compare."""

import numpy as np
import pytest
from PIL import Image

from simsearch.data.transforms import (
    MAX_ASPECT,
    input_shape,
    input_size_for,
    kept_aspect,
    parse_size,
    resize_rgb,
    size_config,
)


def test_kept_aspect_puts_the_side_on_the_short_side():
    assert kept_aspect(224, [(768, 1024)]) == (224, 304)  # 298.7 -> the nearest multiple of 16
    assert kept_aspect(224, [(1250, 500)]) == (560, 224)
    assert kept_aspect(224, [(900, 900)]) == 224
    assert kept_aspect(224, [(300, 310)]) == 224  # nearly square: no rectangle for 3 %
    assert kept_aspect(224, []) == 224


def test_kept_aspect_caps_the_ratio_and_takes_the_median():
    assert kept_aspect(100, [(100, 5000)]) == (100, int(100 * MAX_ASPECT))
    assert kept_aspect(224, [(768, 1024), (768, 1024), (900, 900)]) == (224, 304)


def test_parse_size_accepts_a_side_or_height_width_and_refuses_the_rest():
    assert parse_size(224) == 224
    assert parse_size([224, 304]) == (224, 304)
    assert parse_size([224, 224]) == 224
    for bad in (0, 5000, 1.5, True, "224", [224], [224, 304, 3], None, [224, 1e9]):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert size_config((224, 304)) == [224, 304] and size_config(224) == 224


def test_resize_rgb_gives_height_by_width():
    image = np.zeros((100, 300, 3), np.uint8)
    assert resize_rgb(image, (32, 96)).shape == (32, 96, 3)
    assert resize_rgb(image, 64).shape == (64, 64, 3)
    assert input_shape((32, 96)) == (32, 96)


def test_input_size_for_reads_headers_with_the_exif_rotation(tmp_path):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (400, 100)).save(wide)
    assert input_size_for([wide], 64) == (64, 256)
    assert input_size_for([wide], 64, "square") == 64
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # turned 90 degrees: read as 100 wide, 400 high
    Image.new("RGB", (400, 100)).save(rotated, exif=exif)
    assert input_size_for([rotated], 64) == (256, 64)
    with pytest.raises(ValueError):
        input_size_for([wide], 64, "stretch")


def test_compare_runs_its_methods_at_the_kept_aspect_and_says_so(tmp_path):
    from simsearch.baselines.compare import CompareSettings, input_size_of
    from simsearch.data.callbacks import Callbacks
    from simsearch.data.datasets import Sample
    from simsearch.data.splits import Split

    path = tmp_path / "a.png"
    Image.new("RGB", (300, 100)).save(path)
    notes = []
    settings = input_size_of(CompareSettings(image_size=64), [Split(0, [Sample(path, False)], [])],
                             Callbacks(note=notes.append))
    assert settings.image_size == (64, 192) and "aspect ratio kept" in notes[0]
    square = input_size_of(CompareSettings(image_size=64, aspect="square"), [Split(0, [Sample(path, False)], [])])
    assert square.image_size == 64
