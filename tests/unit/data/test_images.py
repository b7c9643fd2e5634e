import numpy as np
import pytest
from PIL import Image

from simsearch.data.callbacks import Callbacks
from simsearch.data.images import ImageError, as_rgb_array, iter_readable_images, list_image_files, read_image


def test_gray_bmp_1024x768_becomes_three_channels(tmp_path):
    pixels = (np.arange(768 * 1024) % 251).astype(np.uint8).reshape(768, 1024)
    path = tmp_path / "3説明.bmp"  # factory cameras: 8-bit gray BMP, non-ASCII names
    Image.fromarray(pixels, mode="L").save(path)
    image = read_image(path)
    assert image.shape == (768, 1024, 3) and image.dtype == np.uint8
    assert np.array_equal(image[:, :, 0], pixels) and np.array_equal(image[:, :, 2], pixels)


def test_16bit_png_is_stretched_not_clipped(tmp_path):
    pixels = np.linspace(1000, 60000, 64 * 32).astype(np.uint16).reshape(32, 64)
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    image = read_image(path)
    assert image.shape == (32, 64, 3)
    assert image.min() == 0 and image.max() == 255  # the full 16-bit range maps onto 8 bits
    assert np.all(np.diff(image[0, :, 0].astype(int)) >= 0)


def test_tiff_and_jpeg_read(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.tif")
    Image.fromarray(rgb).save(tmp_path / "b.jpg", quality=95)
    assert np.array_equal(read_image(tmp_path / "a.tif"), rgb)
    assert read_image(tmp_path / "b.jpg").shape == (20, 30, 3)


def test_truncated_jpeg_is_an_image_error(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_not_an_image_and_missing_file(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "absent.png")


def test_pixel_cap_refuses_before_decoding(tmp_path):
    Image.new("L", (400, 300)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="megapixels"):
        read_image(tmp_path / "big.png", max_pixels=100_000)


def test_folder_walk_is_recursive_and_skips_bad_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "b" / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "y.bmp")
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG nonsense")
    (tmp_path / "readme.txt").write_text("not an image suffix, ignored")
    files = list_image_files([tmp_path])
    assert [f.name for f in files] == ["x.png", "broken.png", "y.bmp"]  # sorted by path parts
    skipped = []
    kept = list(iter_readable_images(files, Callbacks(skip=lambda name, reason: skipped.append(name))))
    assert [files[i].name for i, _, _ in kept] == ["x.png", "y.bmp"] and skipped == [str(files[1])]


def test_only_input_unreadable_is_an_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"nope")
    with pytest.raises(ImageError):
        list(iter_readable_images([tmp_path / "broken.png"]))


def test_arrays_and_pil_images_are_accepted():
    assert as_rgb_array(np.zeros((5, 6), dtype=np.uint8)).shape == (5, 6, 3)
    assert as_rgb_array(np.ones((5, 6, 3), dtype=np.float32)).max() == 255
    assert as_rgb_array(Image.new("RGBA", (6, 5))).shape == (5, 6, 3)
    with pytest.raises(ImageError):
        as_rgb_array(np.zeros((2, 3, 7)))


def test_read_image_bytes_decodes_like_read_image_and_checks_pixels_first(tmp_path):
    import io as _io

    from simsearch.data.images import ImageError, ImageTooLargeError, read_image, read_image_bytes

    pixels = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    assert np.array_equal(read_image_bytes(path.read_bytes()), read_image(path))
    buffer = _io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    with pytest.raises(ImageTooLargeError, match="megapixels"):
        read_image_bytes(buffer.getvalue(), max_pixels=100, name="shot.png")
    with pytest.raises(ImageError) as error:
        read_image_bytes(b"not an image", name="notes.txt")
    assert not isinstance(error.value, ImageTooLargeError) and "notes.txt" in str(error.value)
